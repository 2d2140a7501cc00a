//! The audit record, its hash, and the anchor a pruned chain starts from.
//!
//! A record holds facts about a request (ids, names, counts, sizes, the
//! decision) and never a value, a prompt or an answer: there is no field for
//! them, and every string is cut to a short bound and to a narrow character
//! set (no spaces, quotes or non-ASCII) when the record is sealed, so a
//! sentence cannot ride in through a name. The path loses its query string.
//!
//! Hash: `SHA-256("residency-agent/audit/v1\0" || postcard(body))`, where
//! `body` is every field of [`AuditRecord`] except `hash`, in declaration
//! order, `prev_hash` included. postcard is deterministic for these types
//! (varints, length-prefixed strings, `f64` as 8 little-endian bytes), so
//! the encoding is canonical. Changing a field's type or order changes the
//! hash of every record: bump the domain tag and keep the old encoder.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain tag hashed before the body, so an audit hash is never a valid hash
/// of anything else.
const HASH_DOMAIN: &[u8] = b"residency-agent/audit/v1\0";
/// `prev_hash` of the first record of a chain that was never pruned.
pub const GENESIS_HASH: [u8; 32] = [0; 32];
/// Longest request id, model or endpoint name kept, in bytes.
const MAX_ID: usize = 128;
/// Longest tier, rule, decision, outcome or other name kept, in bytes.
const MAX_NAME: usize = 64;
/// Longest path kept, in bytes.
const MAX_PATH: usize = 256;
/// Most entity types or unscannable parts listed.
const MAX_LIST: usize = 64;

/// Where a pruned chain now starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Seq of the last removed record; the chain continues at the next one.
    pub pruned_up_to_seq: u64,
    /// Hash of that record: the next record's `prev_hash` must equal it.
    #[serde(with = "hex32")]
    pub hash_of_last_pruned: [u8; 32],
    /// When the prune ran, unix milliseconds.
    pub pruned_at_ms: u64,
}

/// What the request path knows about a finished request; the writer turns
/// it into an [`AuditRecord`] by giving it a seq and linking it to the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRecord {
    /// When the request arrived, unix milliseconds.
    pub time_ms: u64,
    /// The `x-residency-request-id`.
    pub request_id: String,
    /// The calling app's configured name, if known.
    pub app: Option<String>,
    /// Client IP address as text.
    pub client: Option<String>,
    /// HTTP method.
    pub method: String,
    /// HTTP path (the query string is dropped).
    pub path: String,
    /// Model the client asked for.
    pub model: Option<String>,
    /// Data tier the classifier assigned.
    pub tier: String,
    /// Entity type names with how many were found (never the values).
    pub entities: Vec<(String, u32)>,
    /// Parts that could not be scanned (e.g. `image`, `audio`).
    pub unscannable: Vec<String>,
    /// Data subject's country (ISO code), if decided.
    pub subject_country: Option<String>,
    /// Where the country came from (`header`, `site`, `geoip`, `default`).
    pub country_source: String,
    /// Signed policy version; `None` for the built-in baseline or none.
    pub policy_version: Option<u64>,
    /// Policy label (e.g. `baseline`, a bundle's name).
    pub policy_label: String,
    /// The rule that decided.
    pub rule: String,
    /// `allow`, `deny`, `no_route` or `error`.
    pub decision: String,
    /// Region the request was sent to.
    pub region: Option<String>,
    /// Gateway endpoint it was sent through.
    pub endpoint: Option<String>,
    /// HTTP status the client saw.
    pub status: u16,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Total time, milliseconds.
    pub latency_ms: f64,
    /// How it ended: `complete`, `client_cancelled`, `upstream_failed`, ...
    pub outcome: String,
}

/// One link of the audit chain, as stored and exported. JSON carries the
/// hashes as lowercase hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, assigned by the writer.
    pub seq: u64,
    /// When the request arrived, unix milliseconds.
    pub time_ms: u64,
    /// The `x-residency-request-id`.
    pub request_id: String,
    /// The calling app's configured name, if known.
    pub app: Option<String>,
    /// Client IP address as text.
    pub client: Option<String>,
    /// HTTP method.
    pub method: String,
    /// HTTP path without query string.
    pub path: String,
    /// Model the client asked for.
    pub model: Option<String>,
    /// Data tier.
    pub tier: String,
    /// Entity type names with counts.
    pub entities: Vec<(String, u32)>,
    /// Parts that could not be scanned.
    pub unscannable: Vec<String>,
    /// Data subject's country.
    pub subject_country: Option<String>,
    /// Where the country came from.
    pub country_source: String,
    /// Signed policy version; `None` for the built-in baseline or none.
    pub policy_version: Option<u64>,
    /// Policy label.
    pub policy_label: String,
    /// The rule that decided.
    pub rule: String,
    /// `allow`, `deny`, `no_route` or `error`.
    pub decision: String,
    /// Region the request was sent to.
    pub region: Option<String>,
    /// Gateway endpoint.
    pub endpoint: Option<String>,
    /// HTTP status the client saw.
    pub status: u16,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Total time, milliseconds.
    pub latency_ms: f64,
    /// How it ended.
    pub outcome: String,
    /// Hash of the previous record (or the anchor's, or [`GENESIS_HASH`]).
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    /// This record's hash; see the module doc for what it covers.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

impl NewRecord {
    /// Applies the bounds of the module doc: every string cut short and
    /// reduced to `[A-Za-z0-9_.:/@+-]` (anything else becomes `_`), the
    /// query string dropped, lists capped.
    pub fn bounded(mut self) -> NewRecord {
        token(&mut self.request_id, MAX_ID);
        self.app.iter_mut().for_each(name);
        self.client.iter_mut().for_each(name);
        name(&mut self.method);
        if let Some(end) = self.path.find(['?', '#']) {
            self.path.truncate(end);
        }
        token(&mut self.path, MAX_PATH);
        self.model.iter_mut().for_each(|m| token(m, MAX_ID));
        name(&mut self.tier);
        self.entities.truncate(MAX_LIST);
        for (kind, _) in &mut self.entities {
            name(kind);
        }
        self.unscannable.truncate(MAX_LIST);
        self.unscannable.iter_mut().for_each(name);
        self.subject_country.iter_mut().for_each(name);
        name(&mut self.country_source);
        name(&mut self.policy_label);
        name(&mut self.rule);
        name(&mut self.decision);
        self.region.iter_mut().for_each(name);
        self.endpoint.iter_mut().for_each(|e| token(e, MAX_ID));
        name(&mut self.outcome);
        self
    }
}

impl AuditRecord {
    /// Makes record `seq` from `new` (after [`NewRecord::bounded`]), linked
    /// to `prev_hash`, with its hash computed.
    pub fn seal(new: NewRecord, seq: u64, prev_hash: [u8; 32]) -> AuditRecord {
        let mut rec = Self::link(new, seq, prev_hash);
        rec.hash = rec.compute_hash();
        rec
    }

    /// [`AuditRecord::seal`] and its storage encoding, encoding once.
    pub(crate) fn seal_encoded(
        new: NewRecord,
        seq: u64,
        prev_hash: [u8; 32],
    ) -> Result<(AuditRecord, Vec<u8>), postcard::Error> {
        let mut rec = Self::link(new, seq, prev_hash);
        let mut bytes = rec.encode()?;
        // `hash` is encoded last, as 32 raw bytes (see `compute_hash`).
        let body = bytes.len() - 32;
        rec.hash = hash_body(&bytes[..body]);
        bytes[body..].copy_from_slice(&rec.hash);
        Ok((rec, bytes))
    }

    /// `new`, bounded, as record `seq` after `prev_hash`, not yet hashed.
    fn link(new: NewRecord, seq: u64, prev_hash: [u8; 32]) -> AuditRecord {
        let n = new.bounded();
        AuditRecord {
            seq,
            time_ms: n.time_ms,
            request_id: n.request_id,
            app: n.app,
            client: n.client,
            method: n.method,
            path: n.path,
            model: n.model,
            tier: n.tier,
            entities: n.entities,
            unscannable: n.unscannable,
            subject_country: n.subject_country,
            country_source: n.country_source,
            policy_version: n.policy_version,
            policy_label: n.policy_label,
            rule: n.rule,
            decision: n.decision,
            region: n.region,
            endpoint: n.endpoint,
            status: n.status,
            bytes_in: n.bytes_in,
            bytes_out: n.bytes_out,
            latency_ms: n.latency_ms,
            outcome: n.outcome,
            prev_hash,
            hash: [0; 32],
        }
    }

    /// The hash this record's content should have (compare with `hash`).
    pub fn compute_hash(&self) -> [u8; 32] {
        // The hash covers the storage encoding without `hash`: postcard
        // writes struct fields back to back and `hash` comes last, as 32
        // raw bytes. Serialising plain structs, strings and numbers into a
        // Vec cannot fail; an empty body would give a hash that never
        // verifies.
        let mut body = self.encode().unwrap_or_default();
        body.truncate(body.len().saturating_sub(32));
        hash_body(&body)
    }

    /// The storage encoding (postcard).
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// Decodes the storage encoding.
    pub fn decode(bytes: &[u8]) -> Result<AuditRecord, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// The record hash of an encoded body (the encoding without `hash`).
fn hash_body(body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update(body);
    h.finalize().into()
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn clip(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

/// A name: at most [`MAX_NAME`] bytes of [`token`].
fn name(s: &mut String) {
    token(s, MAX_NAME)
}

/// Whether `c` may stay in a stored string.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.:/@+-".contains(c)
}

/// Clips `s` to `max` bytes and replaces anything outside
/// `[A-Za-z0-9_.:/@+-]` (spaces, quotes, control characters, non-ASCII)
/// with `_`. A string that is already clean is left in place.
fn token(s: &mut String, max: usize) {
    clip(s, max);
    if !s.chars().all(allowed) {
        *s = s
            .chars()
            .map(|c| if allowed(c) { c } else { '_' })
            .collect();
    }
}

/// Serialises a hash as lowercase hex for JSON, as 32 raw bytes for postcard.
pub(crate) mod hex32 {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(h))
        } else {
            serde::Serialize::serialize(h, s)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            let mut out = [0u8; 32];
            hex::decode_to_slice(&text, &mut out).map_err(D::Error::custom)?;
            Ok(out)
        } else {
            <[u8; 32]>::deserialize(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::sample;

    #[test]
    fn the_hash_of_a_known_record_never_changes() {
        // Chains already on disk must keep verifying: pin one hash.
        let rec = AuditRecord::seal(sample(5, 1), 1, GENESIS_HASH);
        assert_eq!(
            hex::encode(rec.hash),
            "e6211b29b0dbc39440c4a788ec636884fb9a6616d3c862454af99d2efedfa5c0"
        );
    }

    #[test]
    fn hash_covers_every_field_and_the_link() {
        let rec = AuditRecord::seal(sample(5, 1), 1, GENESIS_HASH);
        assert_eq!(rec.hash, rec.compute_hash());
        let mut m = rec.clone();
        m.entities[0].1 += 1;
        assert_ne!(m.compute_hash(), rec.hash);
        let mut m = rec.clone();
        m.latency_ms = 812.6;
        assert_ne!(m.compute_hash(), rec.hash);
        let mut m = rec.clone();
        m.prev_hash[31] ^= 1;
        assert_ne!(m.compute_hash(), rec.hash);
        let mut m = rec.clone();
        m.seq = 2;
        assert_ne!(m.compute_hash(), rec.hash);
        let mut m = rec.clone();
        m.app = None;
        assert_ne!(m.compute_hash(), rec.hash);
    }

    #[test]
    fn storage_round_trip_keeps_the_hash() {
        let rec = AuditRecord::seal(sample(5, 1), 9, [7; 32]);
        let back = AuditRecord::decode(&rec.encode().unwrap()).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.compute_hash(), back.hash);
    }

    #[test]
    fn json_has_exactly_the_expected_keys_and_hex_hashes() {
        let rec = AuditRecord::seal(sample(5, 1), 1, GENESIS_HASH);
        let v = serde_json::to_value(&rec).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = vec![
            "seq",
            "time_ms",
            "request_id",
            "app",
            "client",
            "method",
            "path",
            "model",
            "tier",
            "entities",
            "unscannable",
            "subject_country",
            "country_source",
            "policy_version",
            "policy_label",
            "rule",
            "decision",
            "region",
            "endpoint",
            "status",
            "bytes_in",
            "bytes_out",
            "latency_ms",
            "outcome",
            "prev_hash",
            "hash",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(v["prev_hash"], "0".repeat(64));
        assert_eq!(v["hash"], hex::encode(rec.hash));
        let back: AuditRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn no_field_keeps_free_text() {
        let prose = "my aadhaar is 2345 6789 0123 and my card 4111 1111 1111 1111, please help";
        let mut new = sample(5, 1);
        new.path = format!("/v1/chat/completions?q={prose}");
        new.outcome = prose.to_owned();
        new.rule = prose.to_owned();
        new.request_id = prose.repeat(10);
        new.entities = (0..500).map(|i| (format!("e{i}"), 1)).collect();
        let rec = AuditRecord::seal(new, 1, GENESIS_HASH);
        assert_eq!(rec.path, "/v1/chat/completions");
        assert!(!rec.outcome.contains(' ') && rec.outcome.len() <= MAX_NAME);
        assert!(!rec.rule.contains("2345 6789"));
        assert!(rec.request_id.len() <= MAX_ID);
        assert_eq!(rec.entities.len(), MAX_LIST);
        let json = serde_json::to_string(&rec).unwrap();
        assert!(!json.contains("2345 6789 0123"));
        assert!(!json.contains("4111 1111"));
    }

    #[test]
    fn clip_respects_char_boundaries() {
        let clipped = |s: &str, max| {
            let mut s = s.to_owned();
            clip(&mut s, max);
            s
        };
        assert_eq!(clipped("ab€", 3), "ab");
        assert_eq!(clipped("abc", 3), "abc");
        let tokened = |s: &str, max| {
            let mut s = s.to_owned();
            token(&mut s, max);
            s
        };
        assert_eq!(tokened("aws:ap-south-1", 64), "aws:ap-south-1");
        assert_eq!(tokened("a b\"é€", 64), "a_b___");
        assert_eq!(tokened("ab€cd", 4), "ab");
        assert_eq!(tokened("ab€cd", 5), "ab_");
    }

    #[test]
    fn the_stored_bytes_are_the_sealed_record() {
        let (rec, bytes) = AuditRecord::seal_encoded(sample(5, 1), 1, GENESIS_HASH).unwrap();
        assert_eq!(rec, AuditRecord::seal(sample(5, 1), 1, GENESIS_HASH));
        assert_eq!(bytes, rec.encode().unwrap());
        assert_eq!(
            AuditRecord::decode(&bytes).unwrap().compute_hash(),
            rec.hash
        );
    }
}
