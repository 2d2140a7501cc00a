//! Reversible redaction: a request's sensitive values replaced by typed
//! placeholders (`<PAN_1>`) before it leaves, and put back into the answer.
//!
//! Pure functions over bytes, like [`crate::classify`]: no I/O, no clock, no
//! logging. [`Placeholders`] is one conversation's table (value to
//! placeholder, and back); it is the only place a value is kept, and its
//! `Debug` shows counts, never values. [`redact_json`] rewrites a JSON body
//! string by string, keeping every other byte; [`restore`] puts the values
//! back into answers, plain JSON or server-sent events, with placeholders
//! split across events held back only until the next event completes them.

mod json;
pub mod restore;

use std::collections::HashMap;
use std::fmt;

use crate::classify::{canonical_value, Classifier, Entity, EntityType};

pub use restore::{restore_json, JsonRestorer, SseRestorer};

/// Why a request cannot be redacted. Names the reason, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    /// The placeholder style is not usable.
    #[error("{0}")]
    Style(String),
    /// The body is not one JSON document.
    #[error("the body cannot be redacted: it is not JSON ({0})")]
    NotJson(String),
    /// The conversation already holds as many values as it may.
    #[error("the conversation holds more than {0} distinct values to redact")]
    TooMany(usize),
}

/// How a placeholder is written: a marker, the type's name, a separator,
/// the number, a closing marker (`<TYPE_N>` gives `<PAN_1>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceholderStyle {
    prefix: String,
    middle: String,
    suffix: String,
}

impl Default for PlaceholderStyle {
    fn default() -> Self {
        PlaceholderStyle {
            prefix: "<".into(),
            middle: "_".into(),
            suffix: ">".into(),
        }
    }
}

impl PlaceholderStyle {
    /// Parses a style such as `<TYPE_N>` or `[[TYPE#N]]`: at most 32
    /// printable ASCII characters without spaces, quotes or backslashes,
    /// `TYPE` and `N` once each, `TYPE` first, after a marker.
    pub fn parse(style: &str) -> Result<Self, RedactError> {
        let ok_chars = style
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if style.len() > 32 || !ok_chars {
            return Err(RedactError::Style(format!(
                "{style:?}: a placeholder style is at most 32 printable ASCII characters, no spaces, quotes or backslashes"
            )));
        }
        let shape = || {
            RedactError::Style(format!(
                "{style:?}: write TYPE and N once each, TYPE first, after some marker such as <TYPE_N>"
            ))
        };
        let t = style.find("TYPE").ok_or_else(shape)?;
        let (prefix, rest) = (&style[..t], &style[t + 4..]);
        let n = rest.find('N').ok_or_else(shape)?;
        let (middle, suffix) = (&rest[..n], &rest[n + 1..]);
        if prefix.is_empty()
            || prefix.contains('N')
            || rest.contains("TYPE")
            || suffix.contains('N')
            || prefix.contains("TYPE")
        {
            return Err(shape());
        }
        Ok(PlaceholderStyle {
            prefix: prefix.into(),
            middle: middle.into(),
            suffix: suffix.into(),
        })
    }

    /// The `n`th placeholder of `kind`.
    pub fn render(&self, kind: EntityType, n: usize) -> String {
        format!(
            "{}{}{}{n}{}",
            self.prefix,
            kind.as_str().to_ascii_uppercase(),
            self.middle,
            self.suffix
        )
    }

    /// The first byte of every placeholder (ASCII).
    fn lead(&self) -> u8 {
        self.prefix.as_bytes()[0]
    }
}

/// One issued placeholder.
#[derive(Clone)]
struct Issued {
    placeholder: String,
    /// The value as first written, made safe to stand inside any JSON
    /// string (quotes, backslashes and control characters become spaces).
    shown: String,
}

/// One conversation's placeholders: the same value (however written) gets
/// the same placeholder, different values never share one, and the number
/// counts per type from 1.
#[derive(Clone)]
pub struct Placeholders {
    style: PlaceholderStyle,
    max_values: usize,
    by_value: HashMap<(EntityType, String), usize>,
    issued: Vec<Issued>,
    next: [usize; EntityType::ALL.len()],
    max_len: usize,
}

impl fmt::Debug for Placeholders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Placeholders")
            .field("style", &self.style)
            .field("values", &self.issued.len())
            .finish()
    }
}

impl Placeholders {
    /// An empty table holding at most `max_values` values.
    pub fn new(style: PlaceholderStyle, max_values: usize) -> Self {
        Placeholders {
            style,
            max_values,
            by_value: HashMap::new(),
            issued: Vec::new(),
            next: [0; EntityType::ALL.len()],
            max_len: 0,
        }
    }

    /// The placeholder of `value` (an entity of `kind` as written), issued
    /// now if the value is new.
    pub fn placeholder_for(&mut self, kind: EntityType, value: &str) -> Result<&str, RedactError> {
        let canon = (kind, canonical_value(kind, value));
        if let Some(&i) = self.by_value.get(&canon) {
            return Ok(&self.issued[i].placeholder);
        }
        if self.issued.len() >= self.max_values {
            return Err(RedactError::TooMany(self.max_values));
        }
        let n = &mut self.next[kind as usize];
        *n += 1;
        let placeholder = self.style.render(kind, *n);
        let shown = value
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || c.is_control() {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        self.max_len = self.max_len.max(placeholder.len());
        self.by_value.insert(canon, self.issued.len());
        self.issued.push(Issued { placeholder, shown });
        Ok(&self.issued[self.issued.len() - 1].placeholder)
    }

    /// The value `placeholder` stands for, if it was issued.
    pub fn value_of(&self, placeholder: &str) -> Option<&str> {
        self.issued
            .iter()
            .find(|i| i.placeholder == placeholder)
            .map(|i| i.shown.as_str())
    }

    /// How many values the table holds.
    pub fn len(&self) -> usize {
        self.issued.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.issued.is_empty()
    }

    /// The length of the longest placeholder issued.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The longest issued placeholder that `text` starts with, and its value.
    fn complete_at(&self, text: &str) -> Option<(usize, &str)> {
        self.issued
            .iter()
            .filter(|i| text.starts_with(i.placeholder.as_str()))
            .max_by_key(|i| i.placeholder.len())
            .map(|i| (i.placeholder.len(), i.shown.as_str()))
    }

    /// Whether `text` is the start of an issued placeholder longer than it.
    fn starts_one(&self, text: &str) -> bool {
        text.len() < self.max_len
            && self
                .issued
                .iter()
                .any(|i| i.placeholder.len() > text.len() && i.placeholder.starts_with(text))
    }

    /// `text` with every issued placeholder replaced by its value. With
    /// `hold`, a tail that may be the start of a placeholder continued in
    /// the next piece of the stream is left out: the second part is its
    /// length in `text`.
    pub(crate) fn restore_text<'t>(
        &self,
        text: &'t str,
        hold: bool,
    ) -> (std::borrow::Cow<'t, str>, usize) {
        if self.issued.is_empty() {
            return (text.into(), 0);
        }
        let lead = self.style.lead();
        let b = text.as_bytes();
        let mut out = String::new();
        let mut last = 0;
        let mut i = 0;
        let mut tail = 0;
        while let Some(p) = memchr::memchr(lead, &b[i..]) {
            let at = i + p;
            let rest = &text[at..];
            if hold && self.starts_one(rest) {
                tail = rest.len();
                break;
            }
            match self.complete_at(rest) {
                Some((len, value)) => {
                    out.push_str(&text[last..at]);
                    out.push_str(value);
                    last = at + len;
                    i = last;
                }
                None => i = at + 1,
            }
        }
        if last == 0 {
            return (text[..text.len() - tail].into(), tail);
        }
        out.push_str(&text[last..text.len() - tail]);
        (out.into(), tail)
    }
}

/// A body with its values replaced.
#[derive(Debug)]
pub struct Redacted {
    /// The redacted body.
    pub body: Vec<u8>,
    /// Entity types and how many values of each were replaced, by type.
    pub counts: Vec<(EntityType, usize)>,
}

/// Replaces every entity of `kinds` in every string (value and key) of the
/// JSON `body` with its placeholder from `table`. Tool-call `arguments`
/// that hold JSON are redacted as JSON; a `data:` URL's base64 payload is
/// not text and is left alone, as the classifier leaves it. The result is
/// to be classified again: a value the scan does not find in one string
/// (split across two text parts) is not replaced.
pub fn redact_json(
    body: &[u8],
    classifier: &Classifier,
    kinds: &[EntityType],
    table: &mut Placeholders,
) -> Result<Redacted, RedactError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| RedactError::NotJson(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let mut counts = [0usize; EntityType::ALL.len()];
    let out = redact_text_json(text, classifier, kinds, table, &mut counts, 0)?;
    Ok(Redacted {
        body: out.map_or_else(|| body.to_vec(), String::into_bytes),
        counts: EntityType::ALL
            .into_iter()
            .filter(|k| counts[*k as usize] > 0)
            .map(|k| (k, counts[k as usize]))
            .collect(),
    })
}

/// The redacted JSON text, or `None` when nothing in it changed.
fn redact_text_json(
    text: &str,
    classifier: &Classifier,
    kinds: &[EntityType],
    table: &mut Placeholders,
    counts: &mut [usize; EntityType::ALL.len()],
    depth: usize,
) -> Result<Option<String>, RedactError> {
    let lexed = json::lex(text, false).map_err(|e| RedactError::NotJson(e.to_string()))?;
    let mut edits = Vec::new();
    let mut found = Vec::new();
    for t in &lexed.toks {
        let label = t.label.as_deref();
        if !t.is_key && label == Some("arguments") && depth < 4 {
            // JSON inside a string: its own keys label its values.
            if json::lex(&t.text, false).is_ok() {
                if let Some(inner) =
                    redact_text_json(&t.text, classifier, kinds, table, counts, depth + 1)?
                {
                    edits.push((t.start, t.end, json::encode(&inner)));
                }
                continue;
            }
        }
        // A `data:` URL is text only up to its base64 payload.
        let scope = match t
            .text
            .strip_prefix("data:")
            .and_then(|r| r.split_once(";base64,"))
        {
            Some((media, _)) => &t.text[..5 + media.len()],
            None => &t.text[..],
        };
        found.clear();
        classifier.scan_labelled(scope, if t.is_key { None } else { label }, &mut found);
        found.retain(|e: &Entity| kinds.contains(&e.kind));
        if found.is_empty() {
            continue;
        }
        let mut new = String::with_capacity(t.text.len());
        let mut last = 0;
        for e in &found {
            new.push_str(&t.text[last..e.start]);
            new.push_str(table.placeholder_for(e.kind, &t.text[e.start..e.end])?);
            counts[e.kind as usize] += 1;
            last = e.end;
        }
        new.push_str(&t.text[last..]);
        edits.push((t.start, t.end, json::encode(&new)));
    }
    Ok((!edits.is_empty()).then(|| json::splice(text, &edits)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Placeholders {
        Placeholders::new(PlaceholderStyle::default(), 16)
    }

    const ALL: &[EntityType] = &EntityType::ALL;

    #[test]
    fn styles_parse_and_render() {
        let s = PlaceholderStyle::parse("<TYPE_N>").unwrap();
        assert_eq!(s, PlaceholderStyle::default());
        assert_eq!(s.render(EntityType::PaymentCard, 2), "<PAYMENT_CARD_2>");
        let s = PlaceholderStyle::parse("[[TYPE#N]]").unwrap();
        assert_eq!(s.render(EntityType::Pan, 1), "[[PAN#1]]");
        for bad in [
            "TYPE_N",
            "<N_TYPE>",
            "<TYPE>",
            "<TYPE N>",
            "<TYPE_N_N>",
            "<TYPE_TYPE_N>",
            "<\"TYPE_N>",
            "<TYPE_N>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>",
        ] {
            assert!(PlaceholderStyle::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_value_one_placeholder_however_written_and_never_shared() {
        let mut t = table();
        let a = t
            .placeholder_for(EntityType::Aadhaar, "2345 6789 0124")
            .unwrap()
            .to_owned();
        assert_eq!(a, "<AADHAAR_1>");
        assert_eq!(
            t.placeholder_for(EntityType::Aadhaar, "234567890124")
                .unwrap(),
            a
        );
        assert_eq!(
            t.placeholder_for(EntityType::Aadhaar, "2345\u{200b}6789-0124")
                .unwrap(),
            a
        );
        assert_eq!(
            t.placeholder_for(EntityType::Aadhaar, "३४१७ ७७६३ १७०६")
                .unwrap(),
            "<AADHAAR_2>"
        );
        assert_eq!(
            t.placeholder_for(EntityType::Aadhaar, "3417 7763 1706")
                .unwrap(),
            "<AADHAAR_2>"
        );
        assert_eq!(
            t.placeholder_for(EntityType::Pan, "abcpe1234f").unwrap(),
            "<PAN_1>"
        );
        assert_eq!(
            t.placeholder_for(EntityType::Pan, "ABCPE1234F").unwrap(),
            "<PAN_1>"
        );
        assert_eq!(
            t.placeholder_for(EntityType::Email, "a.b@x.in").unwrap(),
            "<EMAIL_1>"
        );
        assert_eq!(
            t.placeholder_for(EntityType::Email, "ab@x.in").unwrap(),
            "<EMAIL_2>"
        );
        // The first way it was written is what comes back.
        assert_eq!(t.value_of("<AADHAAR_1>"), Some("2345 6789 0124"));
        assert_eq!(t.value_of("<AADHAAR_9>"), None);
        // Debug output never holds a value.
        assert!(!format!("{t:?}").contains("2345"));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = Placeholders::new(PlaceholderStyle::default(), 1);
        t.placeholder_for(EntityType::Pan, "ABCPE1234F").unwrap();
        assert_eq!(
            t.placeholder_for(EntityType::Pan, "BNZPM2501F"),
            Err(RedactError::TooMany(1))
        );
        // A value already held still has its placeholder.
        assert!(t.placeholder_for(EntityType::Pan, "ABCPE1234F").is_ok());
    }

    #[test]
    fn redacts_every_string_and_keeps_every_other_byte() {
        let c = Classifier::new();
        let body = r#"{ "model" : "gpt-5", "user": "PAN ABCPE1234F",
            "messages": [{"role":"user","content":"Aadhaar 2345 6789 0124, again 234567890124"}],
            "metadata": {"ABCPE1234F": "x"}, "n": 1 }"#;
        let mut t = table();
        let r = redact_json(body.as_bytes(), &c, ALL, &mut t).unwrap();
        let out = String::from_utf8(r.body).unwrap();
        assert_eq!(
            out,
            r#"{ "model" : "gpt-5", "user": "PAN <PAN_1>",
            "messages": [{"role":"user","content":"Aadhaar <AADHAAR_1>, again <AADHAAR_1>"}],
            "metadata": {"<PAN_1>": "x"}, "n": 1 }"#
        );
        assert_eq!(
            r.counts,
            vec![(EntityType::Aadhaar, 2), (EntityType::Pan, 2)]
        );
        // The redacted body is public.
        let again = c.scan_request(out.as_bytes(), crate::classify::Tier::Public);
        assert_eq!(again.unwrap().tier, crate::classify::Tier::Public);
    }

    #[test]
    fn only_the_listed_types_are_replaced() {
        let c = Classifier::new();
        let body = br#"{"prompt":"PAN ABCPE1234F, mobile 9876543210"}"#;
        let mut t = table();
        let r = redact_json(body, &c, &[EntityType::Pan], &mut t).unwrap();
        let out = String::from_utf8(r.body).unwrap();
        assert!(
            out.contains("<PAN_1>") && out.contains("9876543210"),
            "{out}"
        );
    }

    #[test]
    fn escapes_labels_and_tool_arguments() {
        let c = Classifier::new();
        // An escaped value is found after decoding; a label gives context.
        let body = br#"{"prompt":"Aadhaar \u0032345 6789 0124","metadata":{"account_no":"123456789012345"},
            "messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f",
            "arguments":"{\"pan\":\"ABCPE1234F\"}"}}]}]}"#;
        let mut t = table();
        let r = redact_json(body, &c, ALL, &mut t).unwrap();
        let out = String::from_utf8(r.body).unwrap();
        assert!(out.contains(r#""Aadhaar <AADHAAR_1>""#), "{out}");
        assert!(out.contains(r#""<BANK_ACCOUNT_1>""#), "{out}");
        assert!(
            out.contains(r#""arguments":"{\"pan\":\"<PAN_1>\"}""#),
            "{out}"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v.is_object());
    }

    #[test]
    fn a_data_url_payload_is_left_alone() {
        let c = Classifier::new();
        let body =
            br#"{"image_url":{"url":"data:image/png;base64,QUJDUEUxMjM0Rg== PAN ABCPE1234F"}}"#;
        let mut t = table();
        let r = redact_json(body, &c, ALL, &mut t).unwrap();
        assert_eq!(r.body, body.to_vec());
        assert!(r.counts.is_empty());
    }

    #[test]
    fn a_body_that_is_not_json_cannot_be_redacted() {
        let c = Classifier::new();
        let mut t = table();
        for bad in [&b"PAN ABCPE1234F"[..], b"{\"a\":", b"\xff"] {
            let e = redact_json(bad, &c, ALL, &mut t).unwrap_err();
            assert!(matches!(e, RedactError::NotJson(_)), "{e}");
            assert!(!e.to_string().contains("ABCPE"), "{e}");
        }
    }

    #[test]
    fn restore_text_replaces_issued_placeholders_and_holds_a_possible_start() {
        let mut t = table();
        t.placeholder_for(EntityType::Pan, "ABCPE1234F").unwrap();
        let (s, tail) = t.restore_text("PAN <PAN_1>, <PAN_2> and <X>", false);
        assert_eq!((s.as_ref(), tail), ("PAN ABCPE1234F, <PAN_2> and <X>", 0));
        let (s, tail) = t.restore_text("is <PA", true);
        assert_eq!((s.as_ref(), tail), ("is ", 3));
        let (s, tail) = t.restore_text("is <PA", false);
        assert_eq!((s.as_ref(), tail), ("is <PA", 0));
        // A '<' that cannot start an issued placeholder is not held.
        let (s, tail) = t.restore_text("a <b", true);
        assert_eq!((s.as_ref(), tail), ("a <b", 0));
    }
}
