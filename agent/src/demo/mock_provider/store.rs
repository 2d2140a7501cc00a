//! The objects the mock keeps between requests (files, uploads, batches,
//! vector stores, responses, conversations, stored chat completions), each
//! kind bounded: past the limit the oldest object is evicted.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use serde_json::Value;

/// One kind of object, at most `cap` of them, in creation order.
#[derive(Debug)]
pub(super) struct Bounded<T> {
    cap: usize,
    order: VecDeque<String>,
    map: HashMap<String, T>,
}

impl<T> Bounded<T> {
    pub(super) fn new(cap: usize) -> Self {
        Bounded {
            cap,
            order: VecDeque::new(),
            map: HashMap::new(),
        }
    }

    /// Keeps `v` under `id`, evicting the oldest object when full.
    pub(super) fn insert(&mut self, id: String, v: T) {
        if self.cap == 0 {
            return;
        }
        while self.map.len() >= self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        if self.map.insert(id.clone(), v).is_none() {
            self.order.push_back(id);
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<&T> {
        self.map.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.map.get_mut(id)
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id)
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<T> {
        let v = self.map.remove(id)?;
        self.order.retain(|k| k != id);
        Some(v)
    }

    /// Objects oldest first.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        self.order.iter().filter_map(|k| self.map.get(k))
    }
}

/// A stored file: its File object and its bytes.
#[derive(Debug)]
pub(super) struct StoredFile {
    pub(super) object: Value,
    pub(super) content: Bytes,
}

/// An upload and the parts added to it so far.
#[derive(Debug)]
pub(super) struct StoredUpload {
    pub(super) object: Value,
    pub(super) parts: Vec<(String, Bytes)>,
}

/// An object with the items that belong to it (a response's input items, a
/// conversation's items, a chat completion's messages, a vector store's files).
#[derive(Debug)]
pub(super) struct WithItems {
    pub(super) object: Value,
    pub(super) items: Vec<Value>,
}

/// Every kind the mock keeps.
#[derive(Debug)]
pub(super) struct Objects {
    pub(super) files: Bounded<StoredFile>,
    pub(super) uploads: Bounded<StoredUpload>,
    pub(super) batches: Bounded<Value>,
    pub(super) vector_stores: Bounded<WithItems>,
    pub(super) responses: Bounded<WithItems>,
    pub(super) conversations: Bounded<WithItems>,
    pub(super) chat_completions: Bounded<WithItems>,
}

impl Objects {
    pub(super) fn new(cap: usize) -> Self {
        Objects {
            files: Bounded::new(cap),
            uploads: Bounded::new(cap),
            batches: Bounded::new(cap),
            vector_stores: Bounded::new(cap),
            responses: Bounded::new(cap),
            conversations: Bounded::new(cap),
            chat_completions: Bounded::new(cap),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_oldest_past_the_limit() {
        let mut b = Bounded::new(2);
        b.insert("a".into(), 1);
        b.insert("b".into(), 2);
        b.insert("c".into(), 3);
        assert!(!b.contains("a"));
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(b.remove("b"), Some(2));
        assert_eq!(b.iter().count(), 1);
    }
}
