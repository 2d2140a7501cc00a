//! The redact stage's memory: each conversation's placeholders, so the same
//! value gets the same placeholder in every request of the conversation.
//! Kept only in memory, bounded in conversations and values, and forgotten
//! when a conversation has been idle for [`IDLE`]; never on disk, never in a
//! log or an audit record.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::redact::{PlaceholderStyle, Placeholders};

/// A conversation's placeholders are forgotten after this long unused.
pub const IDLE: Duration = Duration::from_secs(60 * 60);
/// The most conversations remembered; past it the least recently used goes.
pub const MAX_CONVERSATIONS: usize = 10_000;
/// The most values one conversation's table holds.
pub const MAX_VALUES: usize = 256;

/// Placeholder tables by conversation key.
pub struct Conversations {
    tables: Mutex<HashMap<[u8; 32], (Instant, String, Placeholders)>>,
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.tables.lock().map_or(0, |t| t.len());
        f.debug_struct("Conversations")
            .field("conversations", &n)
            .finish()
    }
}

impl Default for Conversations {
    fn default() -> Self {
        Conversations {
            tables: Mutex::new(HashMap::new()),
        }
    }
}

impl Conversations {
    /// The table of conversation `key` under `style` (a new one for a
    /// request without a conversation, for a new conversation, or when the
    /// rule's style changed).
    pub fn table(
        &self,
        key: Option<&[u8; 32]>,
        style: &PlaceholderStyle,
        style_text: &str,
        now: Instant,
    ) -> Placeholders {
        let fresh = || Placeholders::new(style.clone(), MAX_VALUES);
        let Some(key) = key else { return fresh() };
        let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        match tables.get(key) {
            Some((used, s, t)) if now.duration_since(*used) < IDLE && s == style_text => t.clone(),
            _ => fresh(),
        }
    }

    /// Keeps `table` as conversation `key`'s, evicting idle and, past the
    /// bound, the least recently used conversations.
    pub fn keep(&self, key: [u8; 32], style_text: &str, table: Placeholders, now: Instant) {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        if tables.len() >= MAX_CONVERSATIONS && !tables.contains_key(&key) {
            tables.retain(|_, (used, _, _)| now.duration_since(*used) < IDLE);
            if tables.len() >= MAX_CONVERSATIONS {
                if let Some(oldest) = tables
                    .iter()
                    .min_by_key(|(_, (u, _, _))| *u)
                    .map(|(k, _)| *k)
                {
                    tables.remove(&oldest);
                }
            }
        }
        tables.insert(key, (now, style_text.to_owned(), table));
    }

    /// How many conversations are remembered.
    pub fn len(&self) -> usize {
        self.tables.lock().map_or(0, |t| t.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
