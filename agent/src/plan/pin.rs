//! Conversation pinning: a conversation that carried restricted data stays in
//! the jurisdiction it was sent to for a while, even if a later message alone
//! looks public. Keys are SHA-256 hashes, never the session id or API key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use residency_proto::Jurisdiction;
use sha2::{Digest, Sha256};

/// Most conversations remembered at once; expired ones are dropped first.
const MAX_PINS: usize = 100_000;

/// What may tie a request to a conversation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signals<'a> {
    /// The `x-residency-session` header.
    pub session: Option<&'a str>,
    /// The conversation or previous response the body continues.
    pub conversation: Option<&'a str>,
    /// The body's `user` field.
    pub user: Option<&'a str>,
    /// The request's API key.
    pub api_key: Option<&'a str>,
    /// Key requests with no other signal by their API key (`[routing]
    /// pin_by_api_key`).
    pub by_api_key: bool,
}

/// The pinned conversations.
#[derive(Debug)]
pub struct Pins {
    /// The TTL in milliseconds (a reload may change it).
    ttl_ms: AtomicU64,
    map: Mutex<HashMap<[u8; 32], (Jurisdiction, Instant)>>,
}

impl Pins {
    /// Pins last `ttl`; a zero `ttl` turns pinning off.
    pub fn new(ttl: Duration) -> Self {
        Pins {
            ttl_ms: AtomicU64::new(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Changes the TTL of pins made from now on; zero turns pinning off.
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(
            u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    /// The conversation key, from the explicit conversation signals: the
    /// `x-residency-session` header; else the conversation the body continues
    /// (`conversation`, `previous_response_id`); else the API key plus the
    /// body's `user` field. With `by_api_key`, a request with none of these
    /// is keyed by its API key alone. `None` if nothing identifies one.
    pub fn key(signals: Signals<'_>) -> Option<[u8; 32]> {
        let mut h = Sha256::new();
        match signals {
            Signals {
                session: Some(s), ..
            } => {
                h.update(b"session\0");
                h.update(s.as_bytes());
            }
            Signals {
                conversation: Some(c),
                ..
            } => {
                h.update(b"conversation\0");
                h.update(c.as_bytes());
            }
            Signals {
                user: Some(u),
                api_key,
                ..
            } => {
                h.update(b"key-user\0");
                h.update(api_key.unwrap_or("").as_bytes());
                h.update(b"\0");
                h.update(u.as_bytes());
            }
            Signals {
                api_key: Some(k),
                by_api_key: true,
                ..
            } => {
                h.update(b"key-user\0");
                h.update(k.as_bytes());
                h.update(b"\0");
            }
            _ => return None,
        }
        Some(h.finalize().into())
    }

    /// The jurisdiction a conversation is pinned to at `now`, if any.
    pub fn get(&self, key: &[u8; 32], now: Instant) -> Option<Jurisdiction> {
        if self.ttl().is_zero() {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(_, until)| *until > now)
            .map(|(j, _)| *j)
    }

    /// Pins a conversation to `jurisdiction` from `now` for the TTL.
    pub fn pin(&self, key: [u8; 32], jurisdiction: Jurisdiction, now: Instant) {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_PINS {
            map.retain(|_, (_, until)| *until > now);
        }
        if map.len() < MAX_PINS || map.contains_key(&key) {
            map.insert(key, (jurisdiction, now + ttl));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_expire_and_keys_differ() {
        let pins = Pins::new(Duration::from_secs(10));
        let now = Instant::now();
        let a = Pins::key(Signals {
            session: Some("conv-1"),
            ..Signals::default()
        })
        .unwrap();
        let user = |u| Signals {
            api_key: Some("sk-1"),
            user: Some(u),
            ..Signals::default()
        };
        let (b, c) = (
            Pins::key(user("alice")).unwrap(),
            Pins::key(user("bob")).unwrap(),
        );
        assert_ne!(b, c);
        // The API key alone keys a conversation only when asked to.
        let key_only = Signals {
            api_key: Some("sk-1"),
            ..Signals::default()
        };
        assert!(Pins::key(key_only).is_none());
        assert!(Pins::key(Signals {
            by_api_key: true,
            ..key_only
        })
        .is_some());
        // A previous response ties a request to its conversation.
        let d = Pins::key(Signals {
            conversation: Some("resp_1"),
            ..key_only
        })
        .unwrap();
        assert_ne!(d, a);
        pins.pin(a, Jurisdiction::IN, now);
        assert_eq!(pins.get(&a, now), Some(Jurisdiction::IN));
        assert_eq!(pins.get(&b, now), None);
        assert_eq!(pins.get(&a, now + Duration::from_secs(11)), None);
        let off = Pins::new(Duration::ZERO);
        off.pin(a, Jurisdiction::IN, now);
        assert_eq!(off.get(&a, now), None);
    }
}
