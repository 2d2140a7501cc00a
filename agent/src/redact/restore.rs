//! Putting the values back into an answer.
//!
//! A JSON answer is read whole and every string in it restored, decoded
//! first, so a placeholder written with escapes (`\u003cPAN_1\u003e`) is
//! found too; only the strings that change are rewritten.
//!
//! A stream of server-sent events is restored event by event, as each
//! arrives. A model writes a placeholder in pieces (`<P`, `AN_`, `1>`), so a
//! string that ends with what may be the start of an issued placeholder is
//! the one thing held back: its event waits for the next one. When the next
//! event continues the same text (the same choice's content, the same tool
//! call's arguments, the same Responses item), the held start moves into it
//! and the placeholder is restored there; when it does not, the held event
//! goes on unchanged. Every other event passes through at once and, unless
//! a placeholder is in it, byte for byte.

use bytes::Bytes;

use super::json::{self, Lexed};
use super::Placeholders;
use crate::body::{Event, Stage, Step};

/// The largest incomplete event held while waiting for its end; a larger
/// one is passed on as it comes.
const MAX_EVENT: usize = 8 << 20;

/// `body` (a JSON answer, or text) with every issued placeholder restored.
pub fn restore_json(body: &[u8], table: &Placeholders) -> Vec<u8> {
    if table.is_empty() {
        return body.to_vec();
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return body.to_vec();
    };
    let Ok(lexed) = json::lex(text, false) else {
        return table.restore_text(text, false).0.into_owned().into_bytes();
    };
    let lead = table.style.lead() as char;
    let edits: Vec<(usize, usize, String)> = lexed
        .toks
        .iter()
        .filter(|t| t.text.contains(lead))
        .filter_map(|t| match table.restore_text(&t.text, false).0 {
            std::borrow::Cow::Owned(new) => Some((t.start, t.end, json::encode(&new))),
            std::borrow::Cow::Borrowed(_) => None,
        })
        .collect();
    if edits.is_empty() {
        body.to_vec()
    } else {
        json::splice(text, &edits).into_bytes()
    }
}

/// Restores a JSON (or other non-streamed) answer: held until it ends, up
/// to a bound; past the bound it is restored as text as it passes.
#[derive(Debug)]
pub struct JsonRestorer {
    table: Placeholders,
    buf: Vec<u8>,
    max: usize,
    streaming: Option<TextStream>,
}

impl JsonRestorer {
    /// A restorer that holds at most `max_bytes` of the answer.
    pub fn new(table: Placeholders, max_bytes: usize) -> Self {
        JsonRestorer {
            table,
            buf: Vec::new(),
            max: max_bytes,
            streaming: None,
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if let Some(s) = &mut self.streaming {
            return s.push(&self.table, chunk);
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() <= self.max {
            return Vec::new();
        }
        let mut s = TextStream::default();
        let out = s.push(&self.table, &std::mem::take(&mut self.buf));
        self.streaming = Some(s);
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        match &mut self.streaming {
            Some(s) => s.finish(&self.table),
            None => restore_json(&std::mem::take(&mut self.buf), &self.table),
        }
    }
}

impl Stage for JsonRestorer {
    async fn on_event(&mut self, event: Event) -> Step {
        match event {
            Event::Data(d) => Step::Data(self.push(&d).into()),
            Event::End => Step::End(self.finish().into()),
            Event::Failed(e) => Step::Fail(self.finish().into(), e),
        }
    }
}

/// Text restored as it passes, a possible placeholder start (and an
/// incomplete UTF-8 character) carried to the next chunk.
#[derive(Debug, Default)]
struct TextStream {
    carry: Vec<u8>,
    /// Not UTF-8: passed on as it is.
    raw: bool,
}

impl TextStream {
    fn push(&mut self, table: &Placeholders, chunk: &[u8]) -> Vec<u8> {
        if self.raw {
            return chunk.to_vec();
        }
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(chunk);
        let valid = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => {
                self.raw = true;
                return bytes;
            }
        };
        let text = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        let (out, tail) = table.restore_text(text, true);
        let out = out.into_owned().into_bytes();
        self.carry = bytes[valid - tail..].to_vec();
        out
    }

    fn finish(&mut self, table: &Placeholders) -> Vec<u8> {
        let rest = std::mem::take(&mut self.carry);
        match std::str::from_utf8(&rest) {
            Ok(t) => table.restore_text(t, false).0.into_owned().into_bytes(),
            Err(_) => rest,
        }
    }
}

/// Restores a stream of server-sent events.
#[derive(Debug)]
pub struct SseRestorer {
    table: Placeholders,
    /// Bytes of an event whose end has not arrived.
    buf: Vec<u8>,
    /// An event held because a string in it may end with a placeholder's start.
    held: Option<Sse>,
}

/// One event: its bytes and, when its one data line is JSON, the strings
/// restoration changes or holds.
#[derive(Debug)]
struct Sse {
    raw: Vec<u8>,
    /// Where the data line's JSON is in `raw`.
    data: (usize, usize),
    edits: Vec<Edit>,
}

/// A string of an event's JSON.
#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    /// As received.
    orig: String,
    /// Restored, without `tail`.
    out: String,
    /// A possible placeholder start at its end, held.
    tail: String,
    /// Which text of the stream it belongs to.
    key: String,
    /// The tail moved into the next event.
    cut: bool,
}

impl SseRestorer {
    /// A restorer with the conversation's placeholders.
    pub fn new(table: Placeholders) -> Self {
        SseRestorer {
            table,
            buf: Vec::new(),
            held: None,
        }
    }

    /// What to pass on after `chunk`.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(end) = event_end(&self.buf[from..]) {
            let ev = self.buf[from..from + end].to_vec();
            from += end;
            self.event(ev, &mut out);
        }
        self.buf.drain(..from);
        if self.buf.len() > MAX_EVENT {
            self.release(&mut out);
            let rest = std::mem::take(&mut self.buf);
            out.extend_from_slice(&restore_plain(&rest, &self.table));
        }
        out
    }

    /// What to pass on at the end of the stream.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.release(&mut out);
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() {
            self.event(rest, &mut out);
            self.release(&mut out);
        }
        out
    }

    /// Passes the held event on as it is (its held starts were not continued).
    fn release(&mut self, out: &mut Vec<u8>) {
        if let Some(h) = self.held.take() {
            out.extend_from_slice(&self.render(&h));
        }
    }

    fn event(&mut self, raw: Vec<u8>, out: &mut Vec<u8>) {
        let Some(data) = data_line(&raw) else {
            self.release(out);
            out.extend_from_slice(&restore_plain(&raw, &self.table));
            return;
        };
        let lead = self.table.style.lead();
        let d = &raw[data.0..data.1];
        if self.held.is_none()
            && memchr::memchr(lead, d).is_none()
            && memchr::memmem::find(d, b"\\u").is_none()
        {
            out.extend_from_slice(&raw);
            return;
        }
        let Ok(text) = std::str::from_utf8(d) else {
            self.release(out);
            out.extend_from_slice(&raw);
            return;
        };
        let Ok(lexed) = json::lex(text, true) else {
            self.release(out);
            out.extend_from_slice(&restore_plain(&raw, &self.table));
            return;
        };
        // The held starts that this event continues move into it.
        let mut prepend: Vec<(usize, String)> = Vec::new();
        if let Some(mut h) = self.held.take() {
            let keys = value_keys(&lexed);
            for e in h.edits.iter_mut().filter(|e| !e.tail.is_empty()) {
                if let Some(&(i, _)) = keys.iter().find(|(_, k)| *k == e.key) {
                    if !prepend.iter().any(|(j, _)| *j == i) {
                        prepend.push((i, std::mem::take(&mut e.tail)));
                        e.cut = true;
                    }
                }
            }
            out.extend_from_slice(&self.render(&h));
        }
        let mut edits = Vec::new();
        for (i, t) in lexed.toks.iter().enumerate() {
            let before = prepend
                .iter()
                .find(|(j, _)| *j == i)
                .map(|(_, s)| s.as_str());
            if before.is_none() && !t.text.as_bytes().contains(&lead) {
                continue;
            }
            let joined;
            let text: &str = match before {
                Some(b) => {
                    joined = format!("{b}{}", t.text);
                    &joined
                }
                None => &t.text,
            };
            let (restored, tail) = self.table.restore_text(text, !t.is_key);
            let restored = restored.into_owned();
            let tail = text[text.len() - tail..].to_owned();
            if restored.len() + tail.len() == t.text.len() && before.is_none() && restored == t.text
            {
                continue;
            }
            edits.push(Edit {
                start: t.start,
                end: t.end,
                orig: t.text.to_string(),
                out: restored,
                key: if tail.is_empty() {
                    String::new()
                } else {
                    lexed.key(t)
                },
                tail,
                cut: false,
            });
        }
        let ev = Sse { raw, data, edits };
        if ev.edits.iter().any(|e| !e.tail.is_empty()) {
            self.held = Some(ev);
        } else {
            out.extend_from_slice(&self.render(&ev));
        }
    }

    /// An event's bytes with its changed strings rewritten.
    fn render(&self, ev: &Sse) -> Vec<u8> {
        let mut splices = Vec::new();
        for e in &ev.edits {
            let mut new = e.out.clone();
            if !e.cut {
                new.push_str(&self.table.restore_text(&e.tail, false).0);
            }
            if new != e.orig {
                splices.push((e.start, e.end, json::encode(&new)));
            }
        }
        if splices.is_empty() {
            return ev.raw.clone();
        }
        let text = std::str::from_utf8(&ev.raw[ev.data.0..ev.data.1]).unwrap_or_default();
        let mut out = Vec::with_capacity(ev.raw.len() + 32);
        out.extend_from_slice(&ev.raw[..ev.data.0]);
        out.extend_from_slice(json::splice(text, &splices).as_bytes());
        out.extend_from_slice(&ev.raw[ev.data.1..]);
        out
    }
}

impl Stage for SseRestorer {
    async fn on_event(&mut self, event: Event) -> Step {
        match event {
            Event::Data(d) => Step::Data(Bytes::from(self.push(&d))),
            Event::End => Step::End(Bytes::from(self.finish())),
            Event::Failed(e) => Step::Fail(Bytes::from(self.finish()), e),
        }
    }
}

/// The value strings of an event with their stream keys.
fn value_keys(lexed: &Lexed<'_>) -> Vec<(usize, String)> {
    lexed
        .toks
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.is_key)
        .map(|(i, t)| (i, lexed.key(t)))
        .collect()
}

/// Text (not JSON) with its placeholders restored.
fn restore_plain(raw: &[u8], table: &Placeholders) -> Vec<u8> {
    match std::str::from_utf8(raw) {
        Ok(t) => table.restore_text(t, false).0.into_owned().into_bytes(),
        Err(_) => raw.to_vec(),
    }
}

/// The length of the first complete event in `buf` (through its blank line).
fn event_end(buf: &[u8]) -> Option<usize> {
    for p in memchr::memchr_iter(b'\n', buf) {
        match &buf[p + 1..] {
            [b'\n', ..] => return Some(p + 2),
            [b'\r', b'\n', ..] => return Some(p + 3),
            _ => {}
        }
    }
    None
}

/// Where the value of an event's only `data:` line is.
fn data_line(ev: &[u8]) -> Option<(usize, usize)> {
    let mut found = None;
    let mut at = 0;
    for line in ev.split_inclusive(|&c| c == b'\n') {
        let start = at;
        at += line.len();
        let Some(rest) = line.strip_prefix(b"data:") else {
            continue;
        };
        if found.is_some() {
            return None;
        }
        let skip = usize::from(rest.first() == Some(&b' '));
        let mut end = at;
        while end > start && matches!(ev[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        found = Some((start + 5 + skip, end.max(start + 5 + skip)));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::{PlaceholderStyle, Placeholders};
    use super::*;
    use crate::classify::EntityType;

    const PAN: &str = "ABCPE1234F";
    const AADHAAR: &str = "2345 6789 0124";

    fn table() -> Placeholders {
        let mut t = Placeholders::new(PlaceholderStyle::default(), 16);
        assert_eq!(t.placeholder_for(EntityType::Pan, PAN).unwrap(), "<PAN_1>");
        assert_eq!(
            t.placeholder_for(EntityType::Aadhaar, AADHAAR).unwrap(),
            "<AADHAAR_1>"
        );
        t
    }

    fn chat_event(field: &str, piece: &str) -> String {
        let delta = match field {
            "content" => serde_json::json!({ "content": piece }),
            _ => serde_json::json!({"tool_calls":[{"index":0,"function":{"arguments":piece}}]}),
        };
        let v = serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":delta,"finish_reason":null}]});
        format!("data: {v}\n\n")
    }

    /// The text a chat stream's deltas add up to.
    fn joined(stream: &[u8], field: &str) -> String {
        let text = std::str::from_utf8(stream).unwrap();
        let mut out = String::new();
        for ev in text.split("\n\n") {
            let Some(d) = ev.strip_prefix("data: ") else {
                continue;
            };
            if d == "[DONE]" {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            let delta = &v["choices"][0]["delta"];
            let piece = match field {
                "content" => delta["content"].as_str(),
                _ => delta["tool_calls"][0]["function"]["arguments"].as_str(),
            };
            out.push_str(piece.unwrap_or(""));
        }
        out
    }

    /// Streams `text` in pieces of `n` bytes (of whole chars), events sent
    /// to the restorer in chunks of `chunk` bytes; returns what came out.
    fn stream(text: &str, field: &str, n: usize, chunk: usize) -> Vec<u8> {
        let mut input = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            let mut k = n.min(rest.len());
            while !rest.is_char_boundary(k) {
                k += 1;
            }
            input.push_str(&chat_event(field, &rest[..k]));
            rest = &rest[k..];
        }
        input.push_str("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        let mut r = SseRestorer::new(table());
        let mut out = Vec::new();
        for c in input.as_bytes().chunks(chunk) {
            out.extend(r.push(c));
        }
        out.extend(r.finish());
        out
    }

    #[test]
    fn placeholders_split_anywhere_are_restored_in_content_and_arguments() {
        let text = "PAN <PAN_1>, Aadhaar <AADHAAR_1>, and <PAN_2> stays, a < b.";
        let want = format!("PAN {PAN}, Aadhaar {AADHAAR}, and <PAN_2> stays, a < b.");
        for field in ["content", "arguments"] {
            for n in 1..=12 {
                for chunk in [1, 7, 64, 4096] {
                    let out = stream(text, field, n, chunk);
                    assert_eq!(joined(&out, field), want, "{field} n={n} chunk={chunk}");
                    let s = String::from_utf8(out).unwrap();
                    assert!(s.ends_with("data: [DONE]\n\n"), "{s}");
                }
            }
        }
    }

    #[test]
    fn events_without_placeholders_pass_byte_for_byte_and_at_once() {
        let mut r = SseRestorer::new(table());
        let ev = chat_event("content", "hello, world");
        assert_eq!(r.push(ev.as_bytes()), ev.as_bytes());
        // A keep-alive comment and an event with an `event:` line.
        let ka = ": keep-alive\n\n";
        assert_eq!(r.push(ka.as_bytes()), ka.as_bytes());
        let named = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"<PAN_1> ok\"}}\r\n\r\n";
        let out = String::from_utf8(r.push(named.as_bytes())).unwrap();
        assert_eq!(out, named.replace("<PAN_1>", PAN));
        // Only an event that ends with a possible start waits, and only for
        // the next event.
        let held = chat_event("content", "is <PA");
        assert!(r.push(held.as_bytes()).is_empty());
        let other = ": ping\n\n";
        let out = String::from_utf8(r.push(other.as_bytes())).unwrap();
        assert_eq!(out, format!("{held}{other}"));
    }

    #[test]
    fn a_held_start_goes_only_to_the_same_text() {
        // Choice 0 ends with a start; choice 1 comes next; then choice 0
        // goes on: the start stays with choice 0's event, unchanged.
        let c0 = r#"data: {"choices":[{"index":0,"delta":{"content":"x <PA"}}]}"#;
        let c1 = r#"data: {"choices":[{"index":1,"delta":{"content":"N_1> y"}}]}"#;
        let mut r = SseRestorer::new(table());
        let mut out = r.push(format!("{c0}\n\n{c1}\n\n").as_bytes());
        out.extend(r.finish());
        assert_eq!(String::from_utf8(out).unwrap(), format!("{c0}\n\n{c1}\n\n"));
        // Tool call 1 starting does not take tool call 0's held start.
        let t0 = r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":\"<PAN"}}]}}]}"#;
        let t1 = r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","function":{"name":"g","arguments":"_1>"}}]}}]}"#;
        let mut r = SseRestorer::new(table());
        let mut out = r.push(format!("{t0}\n\n{t1}\n\n").as_bytes());
        out.extend(r.finish());
        assert_eq!(String::from_utf8(out).unwrap(), format!("{t0}\n\n{t1}\n\n"));
    }

    #[test]
    fn responses_events_are_restored_by_item() {
        let ev = |seq: u32, d: &str| {
            format!(
                "event: response.output_text.delta\ndata: {}\n\n",
                serde_json::json!({"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":d,"sequence_number":seq})
            )
        };
        let mut r = SseRestorer::new(table());
        let mut out = Vec::new();
        for (i, d) in ["Your PAN: <PAN", "_", "1>."].iter().enumerate() {
            out.extend(r.push(ev(i as u32, d).as_bytes()));
        }
        let done = format!(
            "event: response.output_text.done\ndata: {}\n\n",
            serde_json::json!({"type":"response.output_text.done","item_id":"msg_1","output_index":0,"content_index":0,"text":"Your PAN: <PAN_1>.","sequence_number":3})
        );
        out.extend(r.push(done.as_bytes()));
        out.extend(r.finish());
        let text = String::from_utf8(out).unwrap();
        let mut deltas = String::new();
        let mut seqs = Vec::new();
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("data: ") {
                let v: serde_json::Value = serde_json::from_str(d).unwrap();
                seqs.push(v["sequence_number"].as_u64().unwrap());
                if let Some(p) = v["delta"].as_str() {
                    deltas.push_str(p);
                } else {
                    assert_eq!(v["text"], format!("Your PAN: {PAN}."));
                }
            }
        }
        assert_eq!(deltas, format!("Your PAN: {PAN}."));
        // Every event once, in order: none invented, none lost.
        assert_eq!(seqs, vec![0, 1, 2, 3]);
    }

    #[test]
    fn anthropic_text_and_tool_input_deltas_are_restored_across_events() {
        let text = |i: u32, d: &str| {
            format!(
                "event: content_block_delta\ndata: {}\n\n",
                serde_json::json!({"type":"content_block_delta","index":i,"delta":{"type":"text_delta","text":d}})
            )
        };
        let json = |i: u32, d: &str| {
            format!(
                "event: content_block_delta\ndata: {}\n\n",
                serde_json::json!({"type":"content_block_delta","index":i,"delta":{"type":"input_json_delta","partial_json":d}})
            )
        };
        let input = [
            text(0, "PAN <PA"),
            text(0, "N_1> and <AAD"),
            text(0, "HAAR_1>"),
            json(1, "{\"pan\": \"<PAN"),
            json(1, "_1>\"}"),
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned(),
        ]
        .concat();
        for chunk in [1, 5, 4096] {
            let mut r = SseRestorer::new(table());
            let mut out = Vec::new();
            for c in input.as_bytes().chunks(chunk) {
                out.extend(r.push(c));
            }
            out.extend(r.finish());
            let out = String::from_utf8(out).unwrap();
            let (mut said, mut args) = (String::new(), String::new());
            for line in out.lines() {
                if let Some(d) = line.strip_prefix("data: ") {
                    let v: serde_json::Value = serde_json::from_str(d).unwrap();
                    said.push_str(v["delta"]["text"].as_str().unwrap_or(""));
                    args.push_str(v["delta"]["partial_json"].as_str().unwrap_or(""));
                }
            }
            assert_eq!(said, format!("PAN {PAN} and {AADHAAR}"), "chunk={chunk}");
            assert_eq!(args, format!("{{\"pan\": \"{PAN}\"}}"), "chunk={chunk}");
            assert!(out.ends_with("{\"type\":\"message_stop\"}\n\n"), "{out}");
        }
    }

    #[test]
    fn json_answers_are_restored_with_escapes_and_nested_arguments() {
        let t = table();
        let body = br#"{"choices":[{"message":{"content":"PAN \u003cPAN_1\u003e","tool_calls":[{"function":{"arguments":"{\"id\":\"<AADHAAR_1>\"}"}}]}}],"usage":{"total_tokens":3}}"#;
        let out = restore_json(body, &t);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], format!("PAN {PAN}"));
        let args = v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let args: serde_json::Value = serde_json::from_str(args).unwrap();
        assert_eq!(args["id"], AADHAAR);
        // Nothing to restore: the same bytes.
        let plain = br#"{ "a" : "<b>" }"#;
        assert_eq!(restore_json(plain, &t), plain.to_vec());
        // Not JSON: restored as text.
        assert_eq!(
            restore_json(b"x <PAN_1> y", &t),
            format!("x {PAN} y").into_bytes()
        );
    }

    #[test]
    fn a_value_that_needs_escaping_stays_valid_json() {
        let mut t = Placeholders::new(PlaceholderStyle::default(), 4);
        t.placeholder_for(EntityType::Aadhaar, "2345\n6789\t0124")
            .unwrap();
        let body = br#"{"arguments":"{\"a\":\"<AADHAAR_1>\"}"}"#;
        let out = restore_json(body, &t);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let inner: serde_json::Value =
            serde_json::from_str(v["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(inner["a"], "2345 6789 0124");
    }

    #[test]
    fn a_large_answer_is_restored_as_it_passes() {
        let mut r = JsonRestorer::new(table(), 16);
        let body = "x".repeat(40) + " <PAN_1> " + &"y".repeat(40);
        let mut out = Vec::new();
        for c in body.as_bytes().chunks(3) {
            out.extend(r.push(c));
        }
        out.extend(r.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            body.replace("<PAN_1>", PAN)
        );
    }
}
