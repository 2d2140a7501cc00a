//! Classifies a whole OpenAI-style request body (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `/v1/responses`, and any other JSON body).
//!
//! Residency is about every byte that leaves, not only what the model reads, so the
//! walk scans **every JSON string value and every object key**, in every field
//! (`model`, `role`, `name`, `user`, `metadata`, `logit_bias` keys, tool schemas, stop
//! sequences, fields nobody here knows of), after JSON decoding; a repeated key is
//! scanned in every occurrence. A string value is scanned with its key as a label, so
//! `"account_no": "123456789012"` has its account context. Numbers, booleans and null
//! are not text (they are parameters or token ids). Adjacent text parts of one
//! message are also scanned as if joined, since the model reads them as one text.
//!
//! `arguments` (tool calls, legacy `function_call`) is JSON inside a string: it is
//! walked as JSON (its keys label its values), or scanned as text after decoding its
//! escapes when it is not JSON.
//!
//! Content the scanner cannot read (images, audio, files, Anthropic `image` and
//! `document` blocks other than text documents) is recorded by kind; its presence
//! raises the tier to the caller's `unscannable_tier`. Its other strings (a URL, a
//! file name, a media type) are still scanned; the base64 payload of a `data:` URL or
//! of such a block's `base64` source is not.
//!
//! A body that cannot be decoded completely (not UTF-8, not JSON, truncated, nested
//! deeper than [`MAX_DEPTH`]) is an [`UnscannableBody`] error: it is refused, never
//! scanned as raw bytes and forwarded.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::context::{ceil_boundary, floor_boundary};
use super::digits::digit_at;
use super::fold::may_fold;
use super::multipart::MultipartError;
use super::{Classifier, Entity, EntityType, Tier};

/// What a request contains: counts per entity type, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestClassification {
    /// The highest tier found, raised to the unscannable tier if anything was unscannable.
    pub tier: Tier,
    /// Entities found per type, sorted by type; types not found are absent.
    pub counts: Vec<(EntityType, u32)>,
    /// Kinds of content that could not be scanned (e.g. `image_url`), sorted, no repeats.
    pub unscannable: Vec<String>,
    /// How many string values were scanned (keys not counted).
    pub texts_scanned: u32,
}

/// Why a request body could not be scanned. The message names the reason, never the
/// content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnscannableBody {
    /// The body is not valid UTF-8.
    #[error("request body is not valid UTF-8 (invalid byte at offset {0}); it cannot be scanned, so it is not forwarded")]
    InvalidUtf8(usize),
    /// The JSON nests deeper than the scanner reads.
    #[error("request body nests JSON deeper than {MAX_DEPTH} levels; it cannot be scanned, so it is not forwarded")]
    TooDeep,
    /// The body is not one complete JSON document (syntax error, bad escape, truncated).
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A `multipart/form-data` body that does not parse; the reason is named.
    #[error("request body is not valid multipart/form-data: {0}; it cannot be scanned, so it is not forwarded")]
    InvalidMultipart(MultipartError),
}

/// Content part types that carry images, audio or files.
const UNSCANNABLE_TYPES: &[&str] = &[
    "image_url",
    "input_image",
    "image",
    "image_file",
    "input_audio",
    "audio",
    "file",
    "input_file",
];

/// Bytes on each side of a seam between text parts scanned for an entity across it:
/// room for the longest entity and its context words.
const SEAM_WINDOW: usize = 256;
/// An entity across a seam has a trigger ([`has_trigger`]) at most this far from it:
/// entities are shorter than this.
const SEAM_NEAR: usize = 96;

/// The deepest nesting the scanner reads (serde_json's recursion limit); a deeper body
/// is refused.
pub const MAX_DEPTH: usize = 128;

/// A parsed JSON value that borrows its strings from the body unless they contain
/// escapes, and keeps no numbers: what the walk needs, with few allocations.
pub(super) enum Json<'a> {
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    /// Every entry, repeated keys included, in order.
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
    /// Numbers, booleans and null.
    Other,
}

struct JsonVisitor;

/// State of one walk over a request body.
pub(super) struct Walk<'c> {
    classifier: &'c Classifier,
    counts: [u32; EntityType::ALL.len()],
    unscannable: Vec<String>,
    texts: u32,
    found: Vec<Entity>,
}

impl Default for RequestClassification {
    fn default() -> Self {
        RequestClassification {
            tier: Tier::Public,
            counts: Vec::new(),
            unscannable: Vec::new(),
            texts_scanned: 0,
        }
    }
}

impl RequestClassification {
    /// Types and counts only, e.g. `aadhaar:1,phone:2`; empty when nothing was found.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (kind, n) in &self.counts {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(kind.as_str());
            s.push(':');
            s.push_str(&n.to_string());
        }
        s
    }
}

impl Classifier {
    /// Classifies a JSON request body; content that cannot be scanned raises the tier
    /// to at least `unscannable_tier`. A body that cannot be decoded completely is an
    /// error.
    pub fn scan_request(
        &self,
        body: &[u8],
        unscannable_tier: Tier,
    ) -> Result<RequestClassification, UnscannableBody> {
        self.scan_request_with_headers(body, &[], unscannable_tier)
    }

    /// Like [`Classifier::scan_request`], also scanning the values of the headers
    /// that are forwarded with the body (each labelled by its name).
    pub fn scan_request_with_headers(
        &self,
        body: &[u8],
        headers: &[(&str, &str)],
        unscannable_tier: Tier,
    ) -> Result<RequestClassification, UnscannableBody> {
        let mut walk = Walk::new(self);
        walk.headers(headers);
        let v = parse(body)?;
        walk.document(&v);
        Ok(walk.finish(unscannable_tier))
    }
}

/// Parses a body completely, or says why it cannot be.
pub(super) fn parse(body: &[u8]) -> Result<Json<'_>, UnscannableBody> {
    // serde_json validates the UTF-8 of every string it reads (and any other byte
    // outside ASCII is a syntax error), so a body it parses is valid UTF-8. Only a
    // failed parse is checked again, to name the reason.
    serde_json::from_slice::<Json<'_>>(body).map_err(|e| {
        let msg = e.to_string();
        if let Err(u) = std::str::from_utf8(body) {
            UnscannableBody::InvalidUtf8(u.valid_up_to())
        } else if msg.starts_with("recursion limit exceeded") {
            UnscannableBody::TooDeep
        } else {
            UnscannableBody::InvalidJson(msg)
        }
    })
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json<'de>>()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<Json<'de>, Json<'de>>()? {
            // JSON object keys are always strings.
            if let Json::Str(key) = key {
                entries.push((key, value));
            }
        }
        Ok(Json::Obj(entries))
    }
}

impl Json<'_> {
    /// The value of `key` if this is an object that has it.
    fn get(&self, key: &str) -> Option<&Json<'_>> {
        match self {
            Json::Obj(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'c> Walk<'c> {
    pub(super) fn new(classifier: &'c Classifier) -> Self {
        Walk {
            classifier,
            counts: [0; EntityType::ALL.len()],
            unscannable: Vec::new(),
            texts: 0,
            found: Vec::new(),
        }
    }

    /// A whole JSON document (a body, a `.json` file, one JSON Lines line).
    pub(super) fn document(&mut self, v: &Json<'_>) {
        self.value(v, None, 0);
    }

    /// Text that is not JSON (a form value, a text file, a line of a JSON Lines file
    /// that is not JSON), labelled by its field name if it has one.
    pub(super) fn plain(&mut self, s: &str, label: Option<&str>) {
        self.texts += 1;
        self.text(s, label);
    }

    /// Text that should have been JSON but is not: scanned as text, after decoding
    /// its JSON escapes if it has any (so `\u0032` still reads as `2`).
    pub(super) fn not_json(&mut self, s: &str) {
        if s.contains('\\') {
            self.plain(&unescape_json_text(s), None);
        } else {
            self.plain(s, None);
        }
    }

    fn value(&mut self, v: &Json<'_>, key: Option<&str>, depth: usize) {
        match v {
            Json::Str(s) => self.string(s, key),
            Json::Arr(items) => {
                self.joined_parts(items);
                for item in items {
                    self.value(item, key, depth + 1);
                }
            }
            Json::Obj(_) => self.object(v, depth + 1),
            Json::Other => {}
        }
    }

    fn object(&mut self, obj: &Json<'_>, depth: usize) {
        let Json::Obj(entries) = obj else {
            return;
        };
        let mut unscannable = false;
        if let Some(Json::Str(t)) = obj.get("type") {
            // An Anthropic document block: a PDF (base64, URL, file id) cannot be
            // read; a text or content-block source is walked like any other field.
            let unread_document = t == "document"
                && obj.get("source").is_some_and(|s| {
                    !matches!(s.get("type"), Some(Json::Str(st)) if st == "text" || st == "content")
                });
            if UNSCANNABLE_TYPES.contains(&t.as_ref()) || unread_document {
                self.mark(t);
                unscannable = true;
            }
        }
        for (key, v) in entries {
            let key = key.as_ref();
            self.key(key);
            match (key, v) {
                ("arguments", Json::Str(s)) => self.arguments(s, depth),
                // The base64 payload of an image or document (Anthropic's
                // `"source": {"type": "base64", "data": ...}`) is content of the kind
                // just recorded, not text; the source's other fields are.
                ("source", Json::Obj(fields))
                    if unscannable
                        && matches!(v.get("type"), Some(Json::Str(st)) if st == "base64") =>
                {
                    for (k, fv) in fields {
                        self.key(k);
                        if !(k == "data" && matches!(fv, Json::Str(_))) {
                            self.value(fv, Some(k), depth + 1);
                        }
                    }
                }
                // An assistant message that refers to earlier audio output.
                ("audio", Json::Obj(_)) if obj.get("role").is_some() => {
                    self.mark("audio");
                    self.value(v, Some(key), depth);
                }
                _ => self.value(v, Some(key), depth),
            }
        }
    }

    /// Forwarded header values, each labelled by its name.
    pub(super) fn headers(&mut self, headers: &[(&str, &str)]) {
        for (name, value) in headers {
            self.text(value, Some(name));
        }
    }

    pub(super) fn mark(&mut self, kind: &str) {
        if !self.unscannable.iter().any(|k| k == kind) {
            self.unscannable.push(kind.to_owned());
        }
    }

    /// Tool-call arguments: JSON in a string, walked as JSON when it is.
    fn arguments(&mut self, s: &str, depth: usize) {
        match serde_json::from_str::<Json<'_>>(s) {
            Ok(v) if depth < MAX_DEPTH => self.value(&v, Some("arguments"), depth),
            _ if s.contains('\\') => self.string(&unescape_json_text(s), Some("arguments")),
            _ => self.string(s, Some("arguments")),
        }
    }

    /// A string value, labelled by its key. A `data:` URL's base64 payload is content
    /// of the kind its part declares, not text.
    fn string(&mut self, s: &str, key: Option<&str>) {
        self.texts += 1;
        let s = match s
            .strip_prefix("data:")
            .and_then(|r| r.split_once(";base64,"))
        {
            Some((media, _)) => media,
            None => s,
        };
        self.text(s, key);
    }

    fn key(&mut self, k: &str) {
        self.text(k, None);
    }

    pub(super) fn text(&mut self, s: &str, label: Option<&str>) {
        self.found.clear();
        self.classifier.scan_labelled(s, label, &mut self.found);
        for e in &self.found {
            self.counts[e.kind as usize] += 1;
        }
    }

    /// Adjacent text parts (`[{"type":"text","text":"..."}, ...]`) are also scanned
    /// joined, as the model reads them; only entities across a part boundary are
    /// counted (those inside one part are counted when the part is scanned). Joined
    /// directly and with a line break, so neither way of splitting a number hides it.
    fn joined_parts(&mut self, items: &[Json<'_>]) {
        let mut run: Vec<&str> = Vec::new();
        for item in items.iter().map(Some).chain([None]) {
            match item.and_then(|i| i.get("text")) {
                Some(Json::Str(t)) => run.push(t),
                _ => {
                    if run.len() >= 2 {
                        self.scan_joined(&run);
                    }
                    run.clear();
                }
            }
        }
    }

    fn scan_joined(&mut self, parts: &[&str]) {
        // (kind, part, offset in part) of each entity counted, across both joins.
        let mut counted: Vec<(EntityType, usize, usize)> = Vec::new();
        // Joined with a line break, a seam reads differently only where a letter or
        // digit meets another (`6789` + `0124`); elsewhere the direct join is enough.
        let glued: Vec<bool> = parts
            .windows(2)
            .map(|w| {
                let glues = |c: char| !c.is_whitespace() && !c.is_ascii_punctuation();
                w[0].chars().next_back().is_some_and(glues)
                    && w[1].chars().next().is_some_and(glues)
            })
            .collect();
        // Every entity holds a trigger ([`has_trigger`]): with none near a seam,
        // nothing can cross it.
        let may_cross: Vec<bool> = parts
            .windows(2)
            .map(|w| {
                let (l, r) = (w[0].as_bytes(), w[1].as_bytes());
                l.len() < SEAM_NEAR
                    || r.len() < SEAM_NEAR
                    || has_trigger(&l[l.len() - SEAM_NEAR..])
                    || has_trigger(&r[..SEAM_NEAR])
            })
            .collect();
        for sep in ["", "\n"] {
            let wanted = |k: usize| may_cross[k] && (sep.is_empty() || glued[k]);
            if !(0..may_cross.len()).any(wanted) {
                continue;
            }
            let mut joined = String::new();
            // (end of part i, start of part i + 1) in `joined`.
            let mut seams = Vec::with_capacity(parts.len());
            let mut starts = Vec::with_capacity(parts.len());
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    let end = joined.len();
                    joined.push_str(sep);
                    seams.push((end, joined.len()));
                }
                starts.push(joined.len());
                joined.push_str(p);
            }
            // Only the text around each seam: an entity and its context words are
            // far shorter than the window.
            for (k, &(end, next)) in seams.iter().enumerate() {
                if !wanted(k) {
                    continue;
                }
                let lo = floor_boundary(&joined, end.saturating_sub(SEAM_WINDOW));
                let hi = ceil_boundary(&joined, (next + SEAM_WINDOW).min(joined.len()));
                self.found.clear();
                self.classifier.scan_into(&joined[lo..hi], &mut self.found);
                for e in &self.found {
                    let (s, t) = (lo + e.start, lo + e.end);
                    if !(s < end && t > next) {
                        continue;
                    }
                    let part = starts.iter().rposition(|&p| p <= s).unwrap_or(0);
                    let id = (e.kind, part, s - starts[part]);
                    if !counted.contains(&id) {
                        counted.push(id);
                        self.counts[e.kind as usize] += 1;
                    }
                }
            }
        }
    }

    pub(super) fn finish(mut self, unscannable_tier: Tier) -> RequestClassification {
        let counts: Vec<(EntityType, u32)> = EntityType::ALL
            .into_iter()
            .filter(|&k| self.counts[k as usize] > 0)
            .map(|k| (k, self.counts[k as usize]))
            .collect();
        let mut tier = counts
            .iter()
            .map(|(k, _)| k.tier())
            .max()
            .unwrap_or(Tier::Public);
        if !self.unscannable.is_empty() {
            tier = tier.max(unscannable_tier);
        }
        self.unscannable.sort();
        RequestClassification {
            tier,
            counts,
            unscannable: self.unscannable,
            texts_scanned: self.texts,
        }
    }
}

/// Whether `b` holds a byte that may belong to an entity's trigger: an `@`, a digit of
/// any script, or the lead byte of a character that may fold to a digit.
fn has_trigger(b: &[u8]) -> bool {
    (0..b.len()).any(|i| b[i] == b'@' || may_fold(b[i]) || digit_at(b, i).is_some())
}

/// Decodes the escapes of JSON text held in a string (`\u0032` -> `2`, `\"` -> `"`),
/// leaving the structure otherwise as it is. Bad escapes are kept verbatim.
fn unescape_json_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('u') => {
                chars.next();
                let hi = hex4(&mut chars);
                let decoded = match hi {
                    Some(h @ 0xD800..=0xDBFF) => {
                        let mut look = chars.clone();
                        if look.next() == Some('\\') && look.next() == Some('u') {
                            match hex4(&mut look) {
                                Some(l @ 0xDC00..=0xDFFF) => {
                                    chars = look;
                                    char::from_u32(0x10000 + ((h - 0xD800) << 10) + (l - 0xDC00))
                                }
                                _ => None,
                            }
                        } else {
                            None
                        }
                    }
                    Some(h) => char::from_u32(h),
                    None => None,
                };
                out.push(decoded.unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            Some(e @ ('"' | '\\' | '/')) => {
                chars.next();
                out.push(e);
            }
            Some(e @ ('n' | 't' | 'r' | 'b' | 'f')) => {
                chars.next();
                out.push(if e == 't' { '\t' } else { '\n' });
            }
            _ => out.push('\\'),
        }
    }
    out
}

fn hex4(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..4 {
        let d = chars.peek()?.to_digit(16)?;
        chars.next();
        v = v * 16 + d;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(body: &str) -> RequestClassification {
        Classifier::new()
            .scan_request(body.as_bytes(), Tier::Restricted)
            .unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    fn count(r: &RequestClassification, k: EntityType) -> u32 {
        r.counts
            .iter()
            .find(|(t, _)| *t == k)
            .map_or(0, |(_, n)| *n)
    }

    const AADHAAR: &str = "3417 7763 1706";

    #[test]
    fn chat_messages_string_and_parts() {
        let body = format!(
            r#"{{"model":"gpt-4o","messages":[
                {{"role":"system","content":"You are a bank assistant."}},
                {{"role":"developer","content":"Mask PAN NXAFQ3778H"}},
                {{"role":"user","content":[{{"type":"text","text":"Aadhaar {AADHAAR}"}},
                                          {{"type":"input_text","text":"mail a.b@example.com"}}]}},
                {{"role":"assistant","content":[{{"type":"output_text","text":"ok 9876543210"}}]}}
            ]}}"#
        );
        let r = classify(&body);
        assert_eq!(r.tier, Tier::Restricted);
        assert_eq!(count(&r, EntityType::Aadhaar), 1);
        assert_eq!(count(&r, EntityType::Pan), 1);
        assert_eq!(count(&r, EntityType::Email), 1);
        assert_eq!(count(&r, EntityType::Phone), 1);
        assert!(r.unscannable.is_empty());
        // Every string value: model, 4 roles, 3 types, 5 texts.
        assert_eq!(r.texts_scanned, 13);
        assert_eq!(r.summary(), "aadhaar:1,pan:1,phone:1,email:1");
    }

    #[test]
    fn tool_calls_results_and_legacy_function_call() {
        let body = r#"{"messages":[
            {"role":"assistant","tool_calls":[{"id":"call_a1","type":"function",
              "function":{"name":"lookup","arguments":"{\"account_no\": \"123456789012345\"}"}}]},
            {"role":"tool","tool_call_id":"call_a1","content":"card 4111 1111 1111 1111"},
            {"role":"assistant","function_call":{"name":"f","arguments":"{\"vid\":\"\\u0032740885595406626\"}"}},
            {"role":"assistant","function_call":{"name":"g","arguments":"not json: acct 123456789012345"}}
        ]}"#;
        let r = classify(body);
        assert_eq!(count(&r, EntityType::BankAccount), 2, "{r:?}");
        assert_eq!(count(&r, EntityType::PaymentCard), 1, "{r:?}");
        assert_eq!(count(&r, EntityType::AadhaarVid), 1, "{r:?}");
    }

    #[test]
    fn embeddings_responses_and_completions_inputs() {
        let r = classify(r#"{"model":"text-embedding-3-small","input":"Aadhaar 3417-7763-1706"}"#);
        assert_eq!(count(&r, EntityType::Aadhaar), 1);
        let r = classify(r#"{"input":["PAN NXAFQ3778H", "nothing"]}"#);
        assert_eq!(count(&r, EntityType::Pan), 1);
        assert_eq!(r.texts_scanned, 2);
        // Token arrays: integers are never scanned, even if they look like numbers.
        let r = classify(r#"{"input":[[341777631706, 9876543210, 17]]}"#);
        assert_eq!(r.tier, Tier::Public);
        assert_eq!(r.texts_scanned, 0);
        let r = classify(
            r#"{"model":"gpt-4.1","instructions":"reply to deepa@okaxis",
                "input":[{"role":"user","content":[{"type":"input_text","text":"IFSC SBIN0001234"}]}]}"#,
        );
        assert_eq!(count(&r, EntityType::UpiId), 1);
        assert_eq!(count(&r, EntityType::Ifsc), 1);
        let r = classify(r#"{"model":"x","prompt":["a","IP 10.1.2.3"]}"#);
        assert_eq!(count(&r, EntityType::IpAddress), 1);
        assert_eq!(r.tier, Tier::Internal);
    }

    #[test]
    fn images_audio_and_files_are_unscannable() {
        let body = r#"{"messages":[{"role":"user","content":[
            {"type":"text","text":"what is this?"},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,NDExMTExMTExMTExMTExMQ=="}},
            {"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}"#;
        let r = Classifier::new()
            .scan_request(body.as_bytes(), Tier::Confidential)
            .unwrap();
        assert_eq!(r.tier, Tier::Confidential);
        assert_eq!(r.unscannable, vec!["image_url", "input_audio"]);
        assert!(r.counts.is_empty());
        let r = classify(
            r#"{"input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}"#,
        );
        assert_eq!(r.unscannable, vec!["input_file"]);
        assert_eq!(r.tier, Tier::Restricted);
        // The URL of an image is still text that leaves.
        let r = classify(
            r#"{"messages":[{"role":"user","content":[{"type":"image_url",
                "image_url":{"url":"https://kyc.example/2345-6789-0124.png"}}]}]}"#,
        );
        assert_eq!(count(&r, EntityType::Aadhaar), 1, "{r:?}");
    }

    #[test]
    fn anthropic_system_prompts_string_and_blocks() {
        let r = classify(
            r#"{"model":"claude-sonnet-4-5","max_tokens":1024,
                "system":"You help branch staff. Escalate to ops@bank.example.",
                "messages":[{"role":"user","content":"Status of PAN NXAFQ3778H?"}]}"#,
        );
        assert_eq!(r.summary(), "pan:1,email:1", "{r:?}");
        assert_eq!(r.tier, Tier::Confidential);
        let r = classify(&format!(
            r#"{{"model":"claude-sonnet-4-5","max_tokens":1024,
                "system":[{{"type":"text","text":"Customer Aadhaar {AADHAAR} is verified.",
                           "cache_control":{{"type":"ephemeral"}}}}],
                "messages":[{{"role":"user","content":"hello"}}]}}"#
        ));
        assert_eq!(r.counts, vec![(EntityType::Aadhaar, 1)], "{r:?}");
        assert_eq!(r.tier, Tier::Restricted);
        assert!(r.unscannable.is_empty());
    }

    #[test]
    fn anthropic_content_blocks_tool_use_and_tool_results() {
        let body = r#"{"model":"claude-sonnet-4-5","max_tokens":512,"messages":[
            {"role":"user","content":[{"type":"text","text":"Refund the customer"},
                                      {"type":"text","text":"at deepa@okaxis"}]},
            {"role":"assistant","content":[
                {"type":"text","text":"Looking up the account."},
                {"type":"tool_use","id":"toolu_01A","name":"lookup_account",
                 "input":{"account_no":"123456789012345","filters":{"ifsc":"SBIN0001234"}}}]},
            {"role":"user","content":[
                {"type":"tool_result","tool_use_id":"toolu_01A","content":"card 4111 1111 1111 1111 on file"},
                {"type":"tool_result","tool_use_id":"toolu_01B","is_error":false,
                 "content":[{"type":"text","text":"mobile +91 98765 43210"}]}]}]}"#;
        let r = classify(body);
        for k in [
            EntityType::UpiId,
            EntityType::BankAccount,
            EntityType::Ifsc,
            EntityType::PaymentCard,
            EntityType::Phone,
        ] {
            assert_eq!(count(&r, k), 1, "{k}: {r:?}");
        }
        assert_eq!(r.tier, Tier::Restricted);
        assert!(r.unscannable.is_empty(), "{r:?}");
    }

    #[test]
    fn anthropic_image_and_document_blocks_are_unscannable_and_their_data_unread() {
        // Base64 of "3417 7763 1706 NXAFQ3778H" would still not be read; here the data
        // holds the plain text, so scanning it would count entities.
        let body = format!(
            r#"{{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{{"role":"user","content":[
                {{"type":"image","source":{{"type":"base64","media_type":"image/jpeg","data":"Aadhaar {AADHAAR}"}}}},
                {{"type":"document","source":{{"type":"base64","media_type":"application/pdf","data":"PAN NXAFQ3778H"}},
                  "title":"Statement for 9876543210"}},
                {{"type":"text","text":"Summarise both."}}]}}]}}"#
        );
        let r = Classifier::new()
            .scan_request(body.as_bytes(), Tier::Confidential)
            .unwrap();
        assert_eq!(r.unscannable, vec!["document", "image"]);
        assert_eq!(r.tier, Tier::Confidential);
        // The title is text that leaves; the payloads are not read.
        assert_eq!(r.counts, vec![(EntityType::Phone, 1)], "{r:?}");
        // A URL source is unscannable too, and its URL is scanned.
        let r = classify(
            r#"{"messages":[{"role":"user","content":[{"type":"document",
                "source":{"type":"url","url":"https://kyc.example/NXAFQ3778H.pdf"}}]}]}"#,
        );
        assert_eq!(r.unscannable, vec!["document"]);
        assert_eq!(count(&r, EntityType::Pan), 1);
        // A plain-text document is read like any other text.
        let r = classify(&format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"document",
                "source":{{"type":"text","media_type":"text/plain","data":"Aadhaar {AADHAAR}"}}}}]}}]}}"#
        ));
        assert!(r.unscannable.is_empty(), "{r:?}");
        assert_eq!(count(&r, EntityType::Aadhaar), 1);
        // `"type": "base64"` outside an image or document is ordinary data.
        let r = classify(&format!(
            r#"{{"meta":{{"type":"base64","data":"Aadhaar {AADHAAR}"}}}}"#
        ));
        assert_eq!(count(&r, EntityType::Aadhaar), 1);
        assert!(r.unscannable.is_empty());
    }

    #[test]
    fn every_field_and_every_key_is_scanned() {
        let r = classify(
            r#"{"model":"NXAFQ3778H","user":"2345 6789 0124",
                "messages":[{"role":"deepa@okaxis","name":"Ravi 9876543210","content":"hello"}],
                "metadata":{"ticket":"ok","4111111111111111":"x"},
                "logit_bias":{"341777631706":5},
                "response_format":{"type":"json_schema","json_schema":{"name":"r",
                    "schema":{"type":"object","properties":{"v":{"enum":["SBIN0001234"]}}}}},
                "stop":["ABHA 12-3456-7890-1234"],
                "unknown_field":{"deep":["10.1.2.3"]}}"#,
        );
        // The user's Aadhaar and the logit_bias key (a valid Aadhaar too).
        assert_eq!(count(&r, EntityType::Aadhaar), 2, "{r:?}");
        for k in [
            EntityType::Pan,
            EntityType::UpiId,
            EntityType::Phone,
            EntityType::PaymentCard,
            EntityType::Ifsc,
            EntityType::Abha,
            EntityType::IpAddress,
        ] {
            assert_eq!(count(&r, k), 1, "{k}: {r:?}");
        }
        let r = classify(r#"{"logit_bias":{"234567890124":5}}"#);
        assert_eq!(r.tier, Tier::Restricted);
    }

    #[test]
    fn repeated_keys_are_scanned_in_every_occurrence() {
        let r =
            classify(r#"{"user":"ok","user":"Aadhaar 2345 6789 0124","user":"PAN NXAFQ3778H"}"#);
        assert_eq!(count(&r, EntityType::Aadhaar), 1);
        assert_eq!(count(&r, EntityType::Pan), 1);
    }

    #[test]
    fn keys_label_their_values() {
        let r =
            classify(r#"{"metadata":{"account_no":"123456789012345","invoiceNo":"9876543210"}}"#);
        assert_eq!(count(&r, EntityType::BankAccount), 1, "{r:?}");
        assert_eq!(count(&r, EntityType::Phone), 0, "an invoice number: {r:?}");
        let r = classify(r#"{"metadata":{"customer_mobile":"9876543210"}}"#);
        assert_eq!(count(&r, EntityType::Phone), 1, "{r:?}");
    }

    #[test]
    fn adjacent_text_parts_are_scanned_joined() {
        for (a, b) in [
            ("Aadhaar 2345 6789", " 0124"),
            ("Aadhaar 2345 6789 01", "24 please"),
            ("Aadhaar 2345 6789", "0124"),
        ] {
            let body = serde_json::json!({"messages":[{"role":"user","content":[
                {"type":"text","text":a},{"type":"text","text":b}]}]})
            .to_string();
            let r = classify(&body);
            assert_eq!(count(&r, EntityType::Aadhaar), 1, "{a:?} + {b:?}: {r:?}");
        }
        // Entities inside one part are counted once, not again for the join.
        let body = serde_json::json!({"input":[{"role":"user","content":[
            {"type":"input_text","text":"PAN NXAFQ3778H"},{"type":"input_text","text":"and more"}]}]})
        .to_string();
        assert_eq!(count(&classify(&body), EntityType::Pan), 1);
        // Separate messages are not joined (out of scope in the spec).
        let body = serde_json::json!({"messages":[
            {"role":"user","content":"Aadhaar 2345 6789"},{"role":"user","content":"0124"}]})
        .to_string();
        assert_eq!(count(&classify(&body), EntityType::Aadhaar), 0);
    }

    #[test]
    fn escaped_digits_are_decoded_before_scanning() {
        // "\u0033417..." is "3417 7763 1706" after JSON decoding.
        let r = classify(r#"{"prompt":"Aadhaar \u0033417 \u0037763 1706"}"#);
        assert_eq!(count(&r, EntityType::Aadhaar), 1);
        // Devanagari digits escaped as \u096X.
        let r = classify(
            r#"{"prompt":"आधार \u0969\u096a\u0967\u096d \u096d\u096d\u096c\u0969 \u0967\u096d\u0966\u096c"}"#,
        );
        assert_eq!(count(&r, EntityType::Aadhaar), 1, "{r:?}");
        // Invisible characters as escapes.
        let r = classify(r#"{"prompt":"Aadhaar 2345\u200b6789\u00ad0124"}"#);
        assert_eq!(count(&r, EntityType::Aadhaar), 1, "{r:?}");
    }

    #[test]
    fn bodies_that_cannot_be_decoded_are_refused_with_the_reason() {
        let c = Classifier::new();
        let scan = |b: &[u8]| c.scan_request(b, Tier::Public);
        // Invalid UTF-8, even next to escapes that would decode to digits.
        let mut body = br#"{"prompt":"Aadhaar \u0032345 6789 0124 "#.to_vec();
        body.extend_from_slice(b"\xff\"}");
        let e = scan(&body).unwrap_err();
        assert_eq!(e, UnscannableBody::InvalidUtf8(body.len() - 3));
        assert!(e.to_string().contains("UTF-8"), "{e}");
        // Nested deeper than the scanner reads.
        let deep = format!(
            r#"{{"a":{}"\u0032345 6789 0124"{}}}"#,
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let e = scan(deep.as_bytes()).unwrap_err();
        assert_eq!(e, UnscannableBody::TooDeep);
        assert!(e.to_string().contains("nests"), "{e}");
        // At the limit it is read.
        let ok = format!(
            r#"{}"\u0032345 6789 0124"{}"#,
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(scan(ok.as_bytes()).unwrap().tier, Tier::Restricted);
        // Bad escapes, lone surrogates, truncation, not JSON at all.
        for bad in [
            r#"{"prompt":"\q"}"#,
            r#"{"prompt":"\ud800"}"#,
            r#"{"prompt":"Aadhaar 2345 6789 0124"#,
            "Aadhaar 2345 6789 0124",
            "",
        ] {
            assert!(
                matches!(scan(bad.as_bytes()), Err(UnscannableBody::InvalidJson(_))),
                "{bad}"
            );
        }
        // The message never carries the content.
        let e = scan(br#"{"prompt":"Aadhaar 2345 6789 0124"#).unwrap_err();
        assert!(!e.to_string().contains("2345"), "{e}");
    }

    #[test]
    fn forwarded_headers_are_scanned() {
        let r = Classifier::new()
            .scan_request_with_headers(
                br#"{"prompt":"hi"}"#,
                &[("openai-project", "Aadhaar 2345 6789 0124")],
                Tier::Public,
            )
            .unwrap();
        assert_eq!(count(&r, EntityType::Aadhaar), 1);
    }

    #[test]
    fn unescape_handles_pairs_and_junk() {
        assert_eq!(
            unescape_json_text(r#"a\u0032\n\"x\"\ud83d\ude00\u12"#),
            "a2\n\"x\"😀\u{FFFD}"
        );
        assert_eq!(unescape_json_text(r"\q\"), r"\q\");
    }
}
