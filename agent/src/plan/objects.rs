//! Stored objects and where they live. A file, an upload, a batch, a vector
//! store, a stored response, a conversation or a stored chat completion is
//! created in one region and exists only there; a request that names one
//! must go to that region. This module finds the objects a request names
//! (in its path and its JSON body) and the object a response created (its
//! `id`); which region holds which object is the caller's map.

use residency_proto::{RegionId, Tier};

/// The id prefixes of the OpenAI objects that live in a region.
const PREFIXES: [&str; 7] = [
    "file-",
    "upload_",
    "batch_",
    "vs_",
    "resp_",
    "conv_",
    "chatcmpl-",
];

/// Longest id considered.
const MAX_ID: usize = 128;

/// How far into a response the created object's id is looked for.
pub const CREATED_LOOKAHEAD: usize = 64 * 1024;

/// Whether `s` looks like the id of a stored object.
pub fn is_object_id(s: &str) -> bool {
    s.len() <= MAX_ID
        && PREFIXES
            .iter()
            .any(|p| s.len() > p.len() && s.starts_with(p))
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An object a request names, and where the map says it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The object's id.
    pub id: String,
    /// The region that holds it.
    pub region: RegionId,
    /// The tier of the request that created it.
    pub tier: Tier,
}

/// Body keys whose string values (or arrays of strings) name objects.
fn names_objects(key: &str) -> bool {
    key == "conversation" || key.ends_with("_id") || key.ends_with("_ids")
}

/// The object ids a request names: path segments that are object ids
/// (`/v1/files/file-abc/content`, `/v1/vector_stores/vs_1/files/file-2`) and,
/// in a JSON body, the values of fields such as `previous_response_id`,
/// `conversation` (a string or `{"id"}`), `file_id`, `file_ids`,
/// `input_file_id`, `vector_store_ids`, at any depth. Sorted, no repeats.
pub fn referenced(path: &str, body: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split('/')
        .filter(|s| is_object_id(s))
        .map(str::to_owned)
        .collect();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        walk(&v, None, &mut out, 0);
    }
    out.sort();
    out.dedup();
    out
}

fn walk(v: &serde_json::Value, key: Option<&str>, out: &mut Vec<String>, depth: usize) {
    use serde_json::Value;
    if depth > 64 {
        return;
    }
    let named = key.is_some_and(names_objects);
    match v {
        Value::String(s) if named && is_object_id(s) => out.push(s.clone()),
        Value::Array(items) => {
            for i in items {
                // An array under `file_ids` names objects; an array of
                // objects is walked with its own keys.
                walk(i, key.filter(|_| named), out, depth + 1);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                // `"conversation": {"id": "conv_…"}`
                let k = if named && k == "id" {
                    "conversation"
                } else {
                    k
                };
                walk(v, Some(k), out, depth + 1);
            }
        }
        _ => {}
    }
}

/// The object a response created: the first `"id"` in its first
/// [`CREATED_LOOKAHEAD`] bytes that is an object id. Works on a JSON answer
/// (`{"id":"file-…",…}`) and on an event stream whose first event carries the
/// object (`response.created`).
pub fn created(head: &[u8]) -> Option<String> {
    let head = &head[..head.len().min(CREATED_LOOKAHEAD)];
    let mut rest = head;
    while let Some(at) = find(rest, b"\"id\"") {
        rest = &rest[at + 4..];
        let after = trim(rest);
        let Some(after) = after.strip_prefix(b":") else {
            continue;
        };
        let after = trim(after);
        let Some(value) = after.strip_prefix(b"\"") else {
            continue;
        };
        let end = value.iter().position(|b| *b == b'"')?;
        if let Ok(id) = std::str::from_utf8(&value[..end]) {
            if is_object_id(id) {
                return Some(id.to_owned());
            }
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[start..]
}

/// Whether a `DELETE` of `path` removes the object itself (not an item in
/// it): `/v1/files/file-1`, `/v1/vector_stores/vs_1`.
pub fn deleted(path: &str) -> Option<&str> {
    let path = path.split('?').next().unwrap_or("");
    let mut segs = path.trim_end_matches('/').rsplit('/');
    let last = segs.next()?;
    is_object_id(last).then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_in_paths_and_bodies() {
        assert_eq!(
            referenced("/v1/vector_stores/vs_1/files/file-2?limit=3", b""),
            ["file-2", "vs_1"]
        );
        let body = br#"{"model":"m","previous_response_id":"resp_9","input":"hi",
            "tools":[{"type":"file_search","vector_store_ids":["vs_a","vs_b"]}],
            "conversation":{"id":"conv_7"},"metadata":{"note":"file-not-a-ref"}}"#;
        assert_eq!(
            referenced("/v1/responses", body),
            ["conv_7", "resp_9", "vs_a", "vs_b"]
        );
        let batch = br#"{"input_file_id":"file-abc","endpoint":"/v1/chat/completions"}"#;
        assert_eq!(referenced("/v1/batches", batch), ["file-abc"]);
        // Plain text that happens to look like an id is not a reference.
        assert!(referenced(
            "/v1/chat/completions",
            br#"{"messages":[{"content":"file-abc"}]}"#
        )
        .is_empty());
        assert!(!is_object_id("file-"));
        assert!(!is_object_id("file-a/../b"));
    }

    #[test]
    fn created_objects_in_json_and_event_streams() {
        assert_eq!(
            created(br#"{"object":"file","id" : "file-xyz","bytes":3}"#).as_deref(),
            Some("file-xyz")
        );
        let sse = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\"}}\n\n";
        assert_eq!(created(sse).as_deref(), Some("resp_1"));
        assert_eq!(created(br#"{"id":"modr-1","results":[]}"#), None);
        assert_eq!(deleted("/v1/files/file-1"), Some("file-1"));
        assert_eq!(
            deleted("/v1/vector_stores/vs_1/files/file-2"),
            Some("file-2")
        );
        assert_eq!(deleted("/v1/files"), None);
    }
}
