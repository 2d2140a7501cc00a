//! A small lexer over a JSON text that finds every string (keys and values)
//! with its byte span, its decoded text, the member name it is the value of,
//! and, when asked, its path. Redaction and restoration rewrite only the
//! strings they change and splice them back, so everything else of a body
//! or an event keeps its bytes.
//!
//! A path names array elements by their identifying members (`index`,
//! `item_id`, `output_index`, `content_index`) when they have some, so the
//! same stream of text (choice 1's content, tool call 0's arguments, one
//! Responses output item) has the same path in every event of a stream.

use std::borrow::Cow;

/// Members that identify an object among its siblings and across the
/// events of one stream.
const ID_MEMBERS: &[&str] = &["index", "item_id", "output_index", "content_index"];

/// How deep the lexer reads (deeper than the classifier, which has already
/// refused anything deeper than it reads).
const MAX_DEPTH: usize = 256;

/// One step of a path.
#[derive(Debug, Clone)]
pub(crate) enum Seg {
    /// An object member.
    Member(String),
    /// An array element: its position and, when it is an object, its frame.
    Elem(usize, Option<u32>),
}

/// One string of the text.
#[derive(Debug)]
pub(crate) struct Tok<'a> {
    /// The span of the token, quotes included.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The decoded text.
    pub(crate) text: Cow<'a, str>,
    /// Whether it is an object key.
    pub(crate) is_key: bool,
    /// For a value, the name of the member it is the value of.
    pub(crate) label: Option<Cow<'a, str>>,
    /// Where it is (empty unless paths were asked for).
    pub(crate) path: Vec<Seg>,
}

/// The strings of a text, and the identity of each object (frame) in it.
#[derive(Debug, Default)]
pub(crate) struct Lexed<'a> {
    pub(crate) toks: Vec<Tok<'a>>,
    /// Per object, in order of opening: its identifying members.
    ids: Vec<String>,
    root_object: bool,
}

/// Why a text is not JSON (a position, never content).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not valid JSON at byte {0}")]
pub(crate) struct NotJson(pub(crate) usize);

/// Lexes `text`, a complete JSON document.
pub(crate) fn lex(text: &str, paths: bool) -> Result<Lexed<'_>, NotJson> {
    let mut l = Lexer {
        s: text,
        b: text.as_bytes(),
        i: 0,
        paths,
        path: Vec::new(),
        out: Lexed::default(),
    };
    l.ws();
    l.out.root_object = l.b.get(l.i) == Some(&b'{');
    l.value(0, None)?;
    l.ws();
    if l.i != l.b.len() {
        return Err(NotJson(l.i));
    }
    Ok(l.out)
}

impl Lexed<'_> {
    /// The stream key of token `t`: its path with elements named by their
    /// identifying members, after the identity of the document itself.
    pub(crate) fn key(&self, t: &Tok<'_>) -> String {
        let mut k = String::new();
        if self.root_object {
            k.push_str(&self.ids[0]);
        }
        for seg in &t.path {
            match seg {
                Seg::Member(m) => {
                    k.push('/');
                    k.push_str(m);
                }
                Seg::Elem(pos, frame) => {
                    k.push('[');
                    match frame.and_then(|f| self.ids.get(f as usize)) {
                        Some(id) if !id.is_empty() => k.push_str(id),
                        _ => k.push_str(&pos.to_string()),
                    }
                    k.push(']');
                }
            }
        }
        k
    }
}

struct Lexer<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    paths: bool,
    path: Vec<Seg>,
    out: Lexed<'a>,
}

impl<'a> Lexer<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), NotJson> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(NotJson(self.i))
        }
    }

    fn value(&mut self, depth: usize, label: Option<Cow<'a, str>>) -> Result<(), NotJson> {
        if depth > MAX_DEPTH {
            return Err(NotJson(self.i));
        }
        self.ws();
        match self.b.get(self.i) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let (start, end, text) = self.string()?;
                let path = if self.paths {
                    self.path.clone()
                } else {
                    Vec::new()
                };
                self.out.toks.push(Tok {
                    start,
                    end,
                    text,
                    is_key: false,
                    label,
                    path,
                });
                Ok(())
            }
            Some(_) => {
                let start = self.i;
                while self.b.get(self.i).is_some_and(|c| {
                    !matches!(c, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                }) {
                    self.i += 1;
                }
                // A number, true, false or null.
                let raw = &self.b[start..self.i];
                let ok = matches!(raw, b"true" | b"false" | b"null")
                    || (!raw.is_empty()
                        && raw
                            .iter()
                            .all(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')));
                if ok {
                    Ok(())
                } else {
                    Err(NotJson(start))
                }
            }
            None => Err(NotJson(self.i)),
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), NotJson> {
        let frame = self.out.ids.len();
        self.out.ids.push(String::new());
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return Err(NotJson(self.i));
            }
            let (start, end, key) = self.string()?;
            let path = if self.paths {
                self.path.clone()
            } else {
                Vec::new()
            };
            self.out.toks.push(Tok {
                start,
                end,
                text: key.clone(),
                is_key: true,
                label: None,
                path,
            });
            self.expect(b':')?;
            self.ws();
            let value_start = self.i;
            if self.paths {
                self.path.push(Seg::Member(key.to_string()));
            }
            let id_member = ID_MEMBERS.contains(&key.as_ref());
            self.value(depth + 1, Some(key.clone()))?;
            if self.paths {
                self.path.pop();
            }
            if id_member && !matches!(self.b.get(value_start), Some(b'{' | b'[')) {
                let raw = &self.s[value_start..self.i];
                let id = &mut self.out.ids[frame];
                id.push_str(&key);
                id.push('=');
                id.push_str(raw);
                id.push(';');
            }
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(NotJson(self.i)),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), NotJson> {
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(());
        }
        let mut pos = 0;
        loop {
            self.ws();
            if self.paths {
                // An object element is the next frame to open.
                let frame =
                    (self.b.get(self.i) == Some(&b'{')).then_some(self.out.ids.len() as u32);
                self.path.push(Seg::Elem(pos, frame));
            }
            self.value(depth + 1, None)?;
            if self.paths {
                self.path.pop();
            }
            pos += 1;
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(NotJson(self.i)),
            }
        }
    }

    /// A string token at `self.i`: its span and decoded text.
    fn string(&mut self) -> Result<(usize, usize, Cow<'a, str>), NotJson> {
        let start = self.i;
        let mut j = start + 1;
        let mut escaped = false;
        loop {
            match memchr::memchr2(b'"', b'\\', &self.b[j..]) {
                None => return Err(NotJson(start)),
                Some(p) if self.b[j + p] == b'\\' => {
                    escaped = true;
                    j += p + 2;
                    if j > self.b.len() {
                        return Err(NotJson(start));
                    }
                }
                Some(p) => {
                    j += p + 1;
                    break;
                }
            }
        }
        self.i = j;
        let raw = &self.s[start..j];
        if raw.bytes().any(|c| c < 0x20) {
            return Err(NotJson(start));
        }
        let text = if escaped {
            Cow::Owned(serde_json::from_str::<String>(raw).map_err(|_| NotJson(start))?)
        } else {
            Cow::Borrowed(&raw[1..raw.len() - 1])
        };
        Ok((start, j, text))
    }
}

/// `text` encoded as a JSON string, quotes included.
pub(crate) fn encode(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// `text` with the spans of `edits` (sorted, not overlapping) replaced.
pub(crate) fn splice(text: &str, edits: &[(usize, usize, String)]) -> String {
    let mut out = String::with_capacity(text.len() + edits.len() * 16);
    let mut last = 0;
    for (s, e, new) in edits {
        out.push_str(&text[last..*s]);
        out.push_str(new);
        last = *e;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_string_with_its_span_label_and_decoded_text() {
        let text = r#" {"a": "x\u0032", "b": [1, "y", {"c": null}], "d": {"e": "z"}} "#;
        let l = lex(text, false).unwrap();
        let found: Vec<(&str, bool, Option<&str>, &str)> = l
            .toks
            .iter()
            .map(|t| {
                (
                    t.text.as_ref(),
                    t.is_key,
                    t.label.as_deref(),
                    &text[t.start..t.end],
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                ("a", true, None, "\"a\""),
                ("x2", false, Some("a"), "\"x\\u0032\""),
                ("b", true, None, "\"b\""),
                ("y", false, None, "\"y\""),
                ("c", true, None, "\"c\""),
                ("d", true, None, "\"d\""),
                ("e", true, None, "\"e\""),
                ("z", false, Some("e"), "\"z\""),
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            "",
            "{",
            r#"{"a":}"#,
            r#"{"a" 1}"#,
            r#"["a",]"#,
            r#""abc"#,
            r#""\q""#,
            "[1] x",
            "nul",
            "\"a\nb\"",
        ] {
            assert!(lex(bad, false).is_err(), "{bad:?}");
        }
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        assert!(lex(&deep, false).is_err());
    }

    #[test]
    fn keys_name_elements_by_their_identifying_members_wherever_those_stand() {
        let a = r#"{"choices":[{"delta":{"content":"x"},"index":1}]}"#;
        let b = r#"{"choices":[{"index":0,"delta":{"content":"y"}},{"index":1,"delta":{"content":"z"}}]}"#;
        let key_of = |text: &str, want: &str| {
            let l = lex(text, true).unwrap();
            let t = l.toks.iter().find(|t| t.text == want).unwrap();
            l.key(t)
        };
        assert_eq!(key_of(a, "x"), key_of(b, "z"));
        assert_ne!(key_of(b, "y"), key_of(b, "z"));
        // A document's own identity: Responses and Anthropic events.
        let r1 = r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"p"}"#;
        let r2 = r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"q","sequence_number":9}"#;
        let r3 = r#"{"type":"response.output_text.delta","item_id":"msg_2","output_index":1,"content_index":0,"delta":"s"}"#;
        assert_eq!(key_of(r1, "p"), key_of(r2, "q"));
        assert_ne!(key_of(r1, "p"), key_of(r3, "s"));
        // Plain arrays fall back to positions.
        assert_ne!(key_of(r#"["m","n"]"#, "m"), key_of(r#"["m","n"]"#, "n"));
    }

    #[test]
    fn splice_replaces_only_the_edited_spans() {
        let text = r#"{"a":"b","c":"d"}"#;
        let l = lex(text, false).unwrap();
        let t = l.toks.iter().find(|t| t.text == "d").unwrap();
        let out = splice(text, &[(t.start, t.end, encode("e\"f"))]);
        assert_eq!(out, r#"{"a":"b","c":"e\"f"}"#);
    }
}
