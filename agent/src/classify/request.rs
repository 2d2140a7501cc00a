//! Classifies a whole OpenAI-style request body (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `/v1/responses`).
//!
//! Rather than a list of the fields a model reads (which silently misses the next field
//! OpenAI adds), the walk is fail-closed: every JSON *string value* is scanned except the
//! values of a few keys that only hold identifiers or enum words (`model`, `role`, `type`,
//! `id`, `tool_call_id`, ...). Keys are never scanned; numbers, booleans and null are
//! never scanned (they are parameters or token ids). So `messages[].content` (string or
//! parts), `name`, tool results, `instructions`, `input`, `prompt`, `tools[]` descriptions
//! and `metadata` are all covered. `name` is scanned on purpose: it is free text that
//! reaches the provider and people put real names and numbers there.
//!
//! `arguments` (tool calls, legacy `function_call`) is JSON inside a string: it is scanned
//! as text after decoding its own `\uXXXX` escapes, so keys inside it still act as
//! context words (`{"account_no": "..."}`).
//!
//! Content the scanner cannot read (images, audio, files) is recorded by kind and skipped;
//! its presence raises the tier to the caller's `unscannable_tier`. A body that is not
//! JSON is scanned as (lossy UTF-8) text.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

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
    /// How many text fields were scanned.
    pub texts_scanned: u32,
}

/// Keys whose string values are identifiers or enum words, not text a model reads.
const SKIP_KEYS: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "tool_call_id",
    "call_id",
    "object",
    "encoding_format",
    "detail",
    "service_tier",
    "voice",
    "format",
    "reasoning_effort",
    "previous_response_id",
    "prompt_cache_key",
    "modalities",
];

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

/// The nesting depth after which a body is treated as text (serde_json stops at 128).
const MAX_DEPTH: usize = 128;

/// A parsed JSON value that borrows its strings from the body unless they contain
/// escapes, and keeps no numbers: what the walk needs, with few allocations.
enum Json<'a> {
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
    /// Numbers, booleans and null.
    Other,
}

struct JsonVisitor;

/// State of one walk over a request body.
struct Walk<'c> {
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
    /// Classifies a request body; content that cannot be scanned raises the tier to at
    /// least `unscannable_tier`.
    pub fn scan_request(&self, body: &[u8], unscannable_tier: Tier) -> RequestClassification {
        let mut walk = Walk {
            classifier: self,
            counts: [0; EntityType::ALL.len()],
            unscannable: Vec::new(),
            texts: 0,
            found: Vec::new(),
        };
        match serde_json::from_slice::<Json<'_>>(body) {
            Ok(v) => walk.value(&v, 0),
            Err(_) => walk.text(&String::from_utf8_lossy(body)),
        }
        walk.finish(unscannable_tier)
    }
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
            if !matches!(item, Json::Other) {
                items.push(item);
            }
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<Json<'de>, Json<'de>>()? {
            if let Json::Str(key) = key {
                if !matches!(value, Json::Other) {
                    entries.push((key, value));
                }
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

impl Walk<'_> {
    fn value(&mut self, v: &Json<'_>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match v {
            Json::Str(s) => self.text(s),
            Json::Arr(items) => {
                for item in items {
                    self.value(item, depth + 1);
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
        if let Some(Json::Str(t)) = obj.get("type") {
            if UNSCANNABLE_TYPES.contains(&t.as_ref()) {
                self.mark(t);
                return;
            }
        }
        for (key, v) in entries {
            let key = key.as_ref();
            if SKIP_KEYS.contains(&key) {
                continue;
            }
            match (key, v) {
                ("arguments", Json::Str(s)) => self.arguments(s),
                // An assistant message that refers to earlier audio output.
                ("audio", Json::Obj(_)) if obj.get("role").is_some() => self.mark("audio"),
                _ => self.value(v, depth),
            }
        }
    }

    fn mark(&mut self, kind: &str) {
        if !self.unscannable.iter().any(|k| k == kind) {
            self.unscannable.push(kind.to_owned());
        }
    }

    fn arguments(&mut self, s: &str) {
        if s.contains('\\') {
            self.text(&unescape_json_text(s));
        } else {
            self.text(s);
        }
    }

    fn text(&mut self, s: &str) {
        self.texts += 1;
        self.found.clear();
        self.classifier.scan_into(s, &mut self.found);
        for e in &self.found {
            self.counts[e.kind as usize] += 1;
        }
    }

    fn finish(mut self, unscannable_tier: Tier) -> RequestClassification {
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
        Classifier::new().scan_request(body.as_bytes(), Tier::Restricted)
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
        assert_eq!(r.texts_scanned, 5);
        assert_eq!(r.summary(), "aadhaar:1,pan:1,phone:1,email:1");
    }

    #[test]
    fn tool_calls_results_and_legacy_function_call() {
        let body = r#"{"messages":[
            {"role":"assistant","tool_calls":[{"id":"call_9876543210","type":"function",
              "function":{"name":"lookup","arguments":"{\"account_no\": \"123456789012345\"}"}}]},
            {"role":"tool","tool_call_id":"call_9876543210","content":"card 4111 1111 1111 1111"},
            {"role":"assistant","function_call":{"name":"f","arguments":"{\"vid\":\"\\u0032740885595406626\"}"}}
        ]}"#;
        let r = classify(body);
        assert_eq!(count(&r, EntityType::BankAccount), 1, "{r:?}");
        assert_eq!(count(&r, EntityType::PaymentCard), 1, "{r:?}");
        assert_eq!(count(&r, EntityType::AadhaarVid), 1, "{r:?}");
        assert_eq!(
            count(&r, EntityType::Phone),
            0,
            "ids are not scanned: {r:?}"
        );
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
        let r = Classifier::new().scan_request(body.as_bytes(), Tier::Confidential);
        assert_eq!(r.tier, Tier::Confidential);
        assert_eq!(r.unscannable, vec!["image_url", "input_audio"]);
        assert!(r.counts.is_empty());
        let r = classify(
            r#"{"input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}"#,
        );
        assert_eq!(r.unscannable, vec!["input_file"]);
        assert_eq!(r.tier, Tier::Restricted);
    }

    #[test]
    fn keys_model_role_and_type_are_not_scanned() {
        let r = classify(
            r#"{"model":"NXAFQ3778H","messages":[{"role":"deepa@okaxis","type":"9876543210",
                "NXAFQ3778H":1,"content":"hello"}]}"#,
        );
        assert_eq!(r.tier, Tier::Public, "{r:?}");
        assert_eq!(r.texts_scanned, 1);
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
    }

    #[test]
    fn non_json_body_is_scanned_as_text() {
        let r = classify("not json: Aadhaar 3417-7763-1706 \u{FFFD}");
        assert_eq!(count(&r, EntityType::Aadhaar), 1);
        assert_eq!(r.texts_scanned, 1);
        let r = Classifier::new().scan_request(b"card \xff 4111111111111111", Tier::Public);
        assert_eq!(count(&r, EntityType::PaymentCard), 1);
        let r = classify("");
        assert_eq!(r.tier, Tier::Public);
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
