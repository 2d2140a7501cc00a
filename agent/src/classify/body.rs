//! Classifies a request body of any shape by its content type: JSON (walked as in
//! [`super::request`]), `multipart/form-data` uploads (`/v1/files`, `/v1/uploads`
//! parts, `/v1/audio/transcriptions`, `/v1/images/edits`), URL-encoded forms, plain
//! text, and bodies the scanner cannot read (audio, images, other binary), which are
//! recorded by kind and raise the tier to the caller's `unscannable_tier`.
//!
//! In a multipart body every part's header values are scanned (a file name can hold a
//! PAN), text fields are scanned labelled by their field name, and file parts by what
//! they hold: `.json` as JSON, `.jsonl` / NDJSON as JSON Lines (every non-empty line
//! one document, as the Batch API's input is; a line that is not JSON is scanned as
//! text, never skipped), other text as text. What a file's content type or extension
//! names as PDF, audio, image, video or other binary is unscannable (`file:pdf`,
//! `file:audio`, `file:image`, `file:video`, `file:binary`), and so is text that is
//! not UTF-8 or holds a NUL (UTF-16 and other encodings the scanner does not read).
//!
//! Unscannable kinds never repeat text from the request: a content type is named
//! only when it is a plain media type in which the scanner finds nothing.

use super::multipart::{self, Part};
use super::request::{parse, Walk};
use super::{Classifier, RequestClassification, Tier, UnscannableBody};

/// What a file part holds, as its content type and file name say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Json,
    JsonLines,
    Text,
    /// Content the scanner cannot read, by kind (`file:pdf`, ...).
    Unscannable(&'static str),
}

/// File name extensions of text the scanner reads.
const TEXT_EXTENSIONS: &[&str] = &["txt", "md", "markdown", "csv", "tsv", "text", "log"];
const AUDIO_EXTENSIONS: &[&str] = &[
    "mp3", "mpga", "mpeg", "m4a", "wav", "flac", "ogg", "oga", "opus", "webm", "aac", "amr",
];
const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff", "heic", "heif", "svg",
];
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "mov", "avi", "mkv", "m4v"];
/// Content types of JSON Lines in use (there is no registered one).
const JSON_LINES_TYPES: &[&str] = &[
    "application/jsonl",
    "application/x-jsonl",
    "application/jsonlines",
    "application/x-jsonlines",
    "application/ndjson",
    "application/x-ndjson",
];

impl Classifier {
    /// Classifies a request body by its content type (`content_type` is the header's
    /// value). `application/json`, no content type, and an empty body are read as
    /// [`Classifier::scan_request_with_headers`] reads them; `multipart/form-data`,
    /// `application/x-www-form-urlencoded` and `text/*` bodies are scanned part by
    /// part; any other body is recorded as unscannable (`body:<type>`). Unscannable
    /// content raises the tier to at least `unscannable_tier`. A body that cannot be
    /// decoded completely (JSON that does not parse, a malformed multipart body) is
    /// an error.
    ///
    /// `headers` are scanned as in [`Classifier::scan_request_with_headers`]. For a
    /// body not read as JSON the content type is scanned too, unless `headers`
    /// already holds it (the ingress forwards it, so it is usually there).
    pub fn scan_body(
        &self,
        content_type: Option<&str>,
        body: &[u8],
        headers: &[(&str, &str)],
        unscannable_tier: Tier,
    ) -> Result<RequestClassification, UnscannableBody> {
        let essence = content_type.map(media_type).filter(|e| !e.is_empty());
        let essence = match essence {
            // No content type (OpenAI clients send JSON; anything else fails to parse
            // and is refused) or an empty body: read as JSON, as before.
            Some(e) if !is_json(&e) && !body.is_empty() => e,
            _ => return self.scan_request_with_headers(body, headers, unscannable_tier),
        };
        let mut walk = Walk::new(self);
        walk.headers(headers);
        if let Some(ct) = content_type {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                walk.text(ct, Some("content-type"));
            }
        }
        let ct = content_type.unwrap_or_default();
        match essence.as_str() {
            "multipart/form-data" => {
                let boundary =
                    multipart::boundary(ct).map_err(UnscannableBody::InvalidMultipart)?;
                let m =
                    multipart::split(body, &boundary).map_err(UnscannableBody::InvalidMultipart)?;
                for edge in [m.preamble, m.epilogue] {
                    if !edge.iter().all(u8::is_ascii_whitespace) {
                        text_bytes(&mut walk, edge, None, "body:binary");
                    }
                }
                for part in &m.parts {
                    walk.part(part);
                }
            }
            "application/x-www-form-urlencoded" => walk.form(body),
            t if t.starts_with("text/") => {
                if charset_readable(ct) {
                    text_bytes(&mut walk, body, None, "body:binary");
                } else {
                    walk.mark("body:charset");
                }
            }
            _ => walk.mark(&unscannable_kind("body", &essence, self)),
        }
        Ok(walk.finish(unscannable_tier))
    }
}

impl Walk<'_> {
    /// One part of a multipart body.
    fn part(&mut self, part: &Part<'_>) {
        for (name, value) in &part.headers {
            self.text(value, Some(name));
        }
        // A name or file name may be escaped (`\"`), percent-encoded (browsers send `"`
        // as `%22`; RFC 8187 `filename*`): the provider may decode it, so each decoded
        // form not already in the raw header is scanned too.
        let raw = part
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-disposition"))
            .map_or("", |(_, v)| v.as_str());
        for value in [Some(&part.name), part.filename.as_ref()]
            .into_iter()
            .flatten()
        {
            let decoded = multipart::percent_decode(value.as_bytes(), false);
            let decoded = std::str::from_utf8(&decoded).ok().filter(|d| d != value);
            for v in [Some(value.as_str()), decoded].into_iter().flatten() {
                if !raw.contains(v) {
                    self.text(v, Some("content-disposition"));
                }
            }
        }
        if let Some(te) = &part.transfer_encoding {
            let te = te.trim().to_ascii_lowercase();
            if !matches!(te.as_str(), "7bit" | "8bit" | "binary") {
                // Base64 or quoted-printable content would be scanned as its encoding.
                self.mark("file:encoded");
                return;
            }
        }
        let ct = part.content_type.as_deref();
        let essence = ct.map(media_type).filter(|e| !e.is_empty());
        let kind = match (&part.filename, essence.as_deref()) {
            // A form field: text, unless it says it is something else.
            (None, None | Some("text/plain")) => {
                if ct.is_none_or(charset_readable) {
                    text_bytes(self, part.content, Some(&part.name), "file:binary");
                } else {
                    self.mark("file:charset");
                }
                return;
            }
            (filename, _) => file_kind(essence.as_deref(), filename.as_deref()),
        };
        // Nothing says what the file is (no type, no known extension: an
        // upload part, `data=b"..."`): text is read as text, anything else stays
        // unscannable.
        let untyped = essence
            .as_deref()
            .is_none_or(|e| e == "application/octet-stream");
        let kind = match kind {
            FileKind::Unscannable("file:binary") if untyped && looks_like_text(part.content) => {
                FileKind::Text
            }
            k => k,
        };
        let readable_kind = !matches!(kind, FileKind::Unscannable(_));
        if readable_kind && !ct.is_none_or(charset_readable) {
            self.mark("file:charset");
            return;
        }
        match kind {
            FileKind::Unscannable(k) => self.mark(k),
            FileKind::Text => text_bytes(self, part.content, None, "file:binary"),
            FileKind::Json => {
                let Some(text) = readable(part.content) else {
                    self.mark("file:binary");
                    return;
                };
                match parse(part.content) {
                    Ok(v) => self.document(&v),
                    Err(_) => self.not_json(text),
                }
            }
            FileKind::JsonLines => {
                let Some(text) = readable(part.content) else {
                    self.mark("file:binary");
                    return;
                };
                for line in text.lines() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match parse(line.as_bytes()) {
                        Ok(v) => self.document(&v),
                        Err(_) => self.not_json(line),
                    }
                }
            }
        }
    }

    /// An `application/x-www-form-urlencoded` body: every name and value, decoded.
    fn form(&mut self, body: &[u8]) {
        for pair in body.split(|&c| c == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = multipart::percent_decode(name, true);
            let value = multipart::percent_decode(value, true);
            let label = readable(&name);
            match label {
                Some(n) => self.plain(n, None),
                None => self.mark("form:binary"),
            }
            if !value.is_empty() {
                text_bytes(self, &value, label, "form:binary");
            }
        }
    }
}

/// Scans `b` as text when it is UTF-8 without NUL bytes; otherwise records `kind`.
fn text_bytes(walk: &mut Walk<'_>, b: &[u8], label: Option<&str>, kind: &str) {
    match readable(b) {
        Some(t) => walk.plain(t, label),
        None => walk.mark(kind),
    }
}

/// `b` as text, if it is UTF-8 and holds no NUL. A NUL is never in text people write,
/// and UTF-16 of ASCII text is valid UTF-8 with a NUL after every character: scanned
/// as UTF-8 it would hide every number.
fn readable(b: &[u8]) -> Option<&str> {
    if memchr::memchr(0, b).is_some() {
        return None;
    }
    std::str::from_utf8(b).ok()
}

/// The media type of a content type, lowercased, without parameters.
fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_json(essence: &str) -> bool {
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether a content type's `charset`, if it has one, is one the scanner reads.
fn charset_readable(ct: &str) -> bool {
    let params = multipart::params(ct.split_once(';').map_or("", |(_, p)| p));
    params
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("charset"))
        .all(|(_, v)| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "utf-8" | "utf8" | "us-ascii" | "ascii"
            )
        })
}

/// What a file part holds. Where the content type and the file name disagree, a
/// binary format either names wins (fail closed), then JSON Lines, JSON, text; a part
/// neither names as anything the scanner reads is binary.
/// Whether bytes are plain text: UTF-8 with no control characters but tab
/// and line breaks.
fn looks_like_text(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && std::str::from_utf8(bytes).is_ok_and(|t| {
            t.chars()
                .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        })
}

fn file_kind(essence: Option<&str>, filename: Option<&str>) -> FileKind {
    let ext = filename
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e.trim().to_ascii_lowercase());
    let by_ext = ext.as_deref().and_then(|e| match e {
        "json" => Some(FileKind::Json),
        "jsonl" | "ndjson" => Some(FileKind::JsonLines),
        "pdf" => Some(FileKind::Unscannable("file:pdf")),
        e if TEXT_EXTENSIONS.contains(&e) => Some(FileKind::Text),
        e if AUDIO_EXTENSIONS.contains(&e) => Some(FileKind::Unscannable("file:audio")),
        e if IMAGE_EXTENSIONS.contains(&e) => Some(FileKind::Unscannable("file:image")),
        e if VIDEO_EXTENSIONS.contains(&e) => Some(FileKind::Unscannable("file:video")),
        _ => None,
    });
    let by_type = essence.and_then(|t| match t {
        "application/octet-stream" => None,
        "application/pdf" => Some(FileKind::Unscannable("file:pdf")),
        t if is_json(t) => Some(FileKind::Json),
        t if JSON_LINES_TYPES.contains(&t) => Some(FileKind::JsonLines),
        t if t.starts_with("text/") => Some(FileKind::Text),
        t if t.starts_with("audio/") => Some(FileKind::Unscannable("file:audio")),
        t if t.starts_with("image/") => Some(FileKind::Unscannable("file:image")),
        t if t.starts_with("video/") => Some(FileKind::Unscannable("file:video")),
        _ => None,
    });
    let rank = |k: &FileKind| match k {
        FileKind::Unscannable(_) => 0,
        FileKind::JsonLines => 1,
        FileKind::Json => 2,
        FileKind::Text => 3,
    };
    // The first of equal rank is the content type's.
    [by_type, by_ext]
        .into_iter()
        .flatten()
        .min_by_key(rank)
        .unwrap_or(FileKind::Unscannable("file:binary"))
}

/// `<prefix>:<media type>` when the media type is plain (`audio/mpeg`) and holds no
/// entity, else `<prefix>:<top-level type>` for a registered one, else
/// `<prefix>:other`: a kind never carries text from the request.
fn unscannable_kind(prefix: &str, essence: &str, classifier: &Classifier) -> String {
    let plain = essence.len() <= 64
        && essence.split_once('/').is_some_and(|(t, s)| {
            let ok = |p: &str| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
            };
            ok(t) && ok(s)
        })
        && classifier.scan(essence).is_empty()
        && classifier.scan(&essence.to_ascii_uppercase()).is_empty();
    if plain {
        return format!("{prefix}:{essence}");
    }
    let top = essence.split('/').next().unwrap_or_default();
    const REGISTERED: &[&str] = &[
        "application",
        "audio",
        "font",
        "image",
        "message",
        "model",
        "multipart",
        "text",
        "video",
    ];
    if REGISTERED.contains(&top) {
        format!("{prefix}:{top}")
    } else {
        format!("{prefix}:other")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{EntityType, MultipartError};

    const BOUNDARY: &str = "----residency7MA4YWxkTrZu0gW";

    /// `(name, filename, content type, content)` of one part.
    type PartSpec<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);
    const AADHAAR: &str = "3417 7763 1706";

    /// A `multipart/form-data` body as the OpenAI SDKs send it, lines ended by `eol`.
    fn multipart_body(parts: &[PartSpec<'_>], eol: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, filename, ct, content) in parts {
            b.extend_from_slice(format!("--{BOUNDARY}{eol}").as_bytes());
            let mut cd = format!("Content-Disposition: form-data; name=\"{name}\"");
            if let Some(f) = filename {
                cd.push_str(&format!("; filename=\"{f}\""));
            }
            b.extend_from_slice(format!("{cd}{eol}").as_bytes());
            if let Some(ct) = ct {
                b.extend_from_slice(format!("Content-Type: {ct}{eol}").as_bytes());
            }
            b.extend_from_slice(eol.as_bytes());
            b.extend_from_slice(content);
            b.extend_from_slice(eol.as_bytes());
        }
        b.extend_from_slice(format!("--{BOUNDARY}--{eol}").as_bytes());
        b
    }

    fn multipart_type() -> String {
        format!("multipart/form-data; boundary={BOUNDARY}")
    }

    fn scan(ct: &str, body: &[u8], unscannable_tier: Tier) -> RequestClassification {
        Classifier::new()
            .scan_body(Some(ct), body, &[("content-type", ct)], unscannable_tier)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn upload(parts: &[PartSpec<'_>]) -> RequestClassification {
        scan(
            &multipart_type(),
            &multipart_body(parts, "\r\n"),
            Tier::Restricted,
        )
    }

    fn count(r: &RequestClassification, k: EntityType) -> u32 {
        r.counts
            .iter()
            .find(|(t, _)| *t == k)
            .map_or(0, |(_, n)| *n)
    }

    /// A Batch API input file: 40 chat requests, `pii` in line 37's first message.
    fn batch_jsonl(pii: &str) -> String {
        (1..=40)
            .map(|n| {
                let content = if n == 37 {
                    format!("Update KYC for the customer, Aadhaar {pii}, and confirm by mail.")
                } else {
                    format!("Summarise complaint number {n} about a delayed refund in two lines.")
                };
                serde_json::json!({
                    "custom_id": format!("request-{n}"),
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
                })
                .to_string()
                    + "\n"
            })
            .collect()
    }

    #[test]
    fn batch_file_upload_finds_the_aadhaar_in_line_37() {
        let file = batch_jsonl(AADHAAR);
        let r = upload(&[
            ("purpose", None, None, b"batch"),
            (
                "file",
                Some("batch.jsonl"),
                Some("application/octet-stream"),
                file.as_bytes(),
            ),
        ]);
        assert_eq!(r.tier, Tier::Restricted, "{r:?}");
        assert_eq!(r.counts, vec![(EntityType::Aadhaar, 1)]);
        assert!(r.unscannable.is_empty(), "{r:?}");
        // Every line walked as JSON: 6 strings per line, and the `purpose` field.
        assert_eq!(r.texts_scanned, 40 * 6 + 1);
        // Escaped digits in a line are decoded, as in a request body.
        let escaped = file.replace("Aadhaar 3417", "Aadhaar \\u0033417");
        assert_ne!(escaped, file);
        let r = upload(&[("file", Some("batch.jsonl"), None, escaped.as_bytes())]);
        assert_eq!(count(&r, EntityType::Aadhaar), 1, "{r:?}");
    }

    #[test]
    fn batch_file_without_personal_data_is_public() {
        let file = batch_jsonl("(on file)");
        for ct in [
            Some("application/octet-stream"),
            Some("application/jsonl"),
            None,
        ] {
            let r = upload(&[
                ("purpose", None, None, b"batch"),
                ("file", Some("batch.jsonl"), ct, file.as_bytes()),
            ]);
            assert_eq!(r.tier, Tier::Public, "{ct:?}: {r:?}");
            assert!(r.counts.is_empty() && r.unscannable.is_empty(), "{r:?}");
            assert_eq!(r.texts_scanned, 40 * 6 + 1);
        }
    }

    #[test]
    fn a_jsonl_line_that_is_not_json_is_scanned_as_text() {
        let mut file = batch_jsonl("(on file)");
        file.push_str("{\"custom_id\": \"request-41\", truncated PAN NXAFQ3778H\r\n\n   \n");
        let r = upload(&[("file", Some("batch.ndjson"), None, file.as_bytes())]);
        assert_eq!(r.counts, vec![(EntityType::Pan, 1)], "{r:?}");
        assert_eq!(r.tier, Tier::Confidential);
        assert_eq!(r.texts_scanned, 40 * 6 + 1, "blank lines are not texts");
    }

    #[test]
    fn csv_with_a_pan_column_is_confidential() {
        let csv = "customer_name,pan,city\r\nRavi Kumar,NXAFQ3778H,Pune\r\nAsha Rao,AAPFU0939F,Mumbai\r\n";
        let r = upload(&[
            ("purpose", None, None, b"assistants"),
            (
                "file",
                Some("customers.csv"),
                Some("text/csv"),
                csv.as_bytes(),
            ),
        ]);
        assert_eq!(r.counts, vec![(EntityType::Pan, 2)], "{r:?}");
        assert_eq!(r.tier, Tier::Confidential);
        // The same file sent as octet-stream is judged by its extension.
        let r = upload(&[(
            "file",
            Some("customers.csv"),
            Some("application/octet-stream"),
            csv.as_bytes(),
        )]);
        assert_eq!(count(&r, EntityType::Pan), 2, "{r:?}");
    }

    #[test]
    fn audio_upload_is_unscannable_and_takes_the_unscannable_tier() {
        let mut mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE\x00\x00\x00\x0f".to_vec();
        mp3.extend((0..=255u8).cycle().take(2048));
        let body = multipart_body(
            &[
                ("file", Some("file.mp3"), Some("audio/mpeg"), &mp3),
                ("model", None, None, b"whisper-1"),
                ("language", None, None, b"hi"),
            ],
            "\r\n",
        );
        for tier in [Tier::Internal, Tier::Restricted] {
            let r = scan(&multipart_type(), &body, tier);
            assert_eq!(r.unscannable, vec!["file:audio"]);
            assert_eq!(r.tier, tier);
            assert!(r.counts.is_empty());
        }
        // Judged by extension when the client sends octet-stream.
        let r = upload(&[(
            "file",
            Some("call.m4a"),
            Some("application/octet-stream"),
            &mp3,
        )]);
        assert_eq!(r.unscannable, vec!["file:audio"]);
    }

    #[test]
    fn pdfs_images_and_unknown_files_are_unscannable() {
        let pdf: &[u8] =
            b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n% Aadhaar 3417 7763 1706\n%%EOF\n";
        for (filename, ct, kind) in [
            ("statement.pdf", Some("application/pdf"), "file:pdf"),
            (
                "statement.pdf",
                Some("application/octet-stream"),
                "file:pdf",
            ),
            // A binary format named by either wins over text.
            ("statement.pdf", Some("text/plain"), "file:pdf"),
            ("scan.txt", Some("application/pdf"), "file:pdf"),
            ("photo.png", Some("image/png"), "file:image"),
            ("clip.mp4", None, "file:video"),
            ("archive.zip", Some("application/zip"), "file:binary"),
        ] {
            let r = upload(&[("file", Some(filename), ct, pdf)]);
            assert_eq!(r.unscannable, vec![kind], "{filename} {ct:?}");
            assert_eq!(r.tier, Tier::Restricted);
            assert!(r.counts.is_empty(), "the content is not scanned: {r:?}");
        }
        // `/v1/images/edits`: the image is unscannable, the prompt is scanned.
        let r = upload(&[
            (
                "image",
                Some("kyc.png"),
                Some("image/png"),
                b"\x89PNG\r\n\x1a\n",
            ),
            (
                "prompt",
                None,
                None,
                b"blur the PAN NXAFQ3778H on this card",
            ),
        ]);
        assert_eq!(r.unscannable, vec!["file:image"]);
        assert_eq!(count(&r, EntityType::Pan), 1);
    }

    #[test]
    fn a_file_nothing_describes_is_read_if_it_is_text() {
        // An upload part (`data=b"..."`): no type, no extension.
        let r = upload(&[(
            "data",
            Some("blob"),
            Some("application/octet-stream"),
            b"customer Aadhaar 3417 7763 1706\n",
        )]);
        assert_eq!(count(&r, EntityType::Aadhaar), 1, "{r:?}");
        assert!(r.unscannable.is_empty());
        let r = upload(&[("data", Some("blob"), None, b"plain notes, nothing more")]);
        assert_eq!((r.tier, r.unscannable.len()), (Tier::Public, 0), "{r:?}");
        // Bytes that are not text stay unscannable.
        let r = upload(&[("data", Some("blob"), None, b"\x00\x01\x02\xff")]);
        assert_eq!(r.unscannable, vec!["file:binary"]);
        assert_eq!(r.tier, Tier::Restricted);
    }

    #[test]
    fn a_pan_in_a_file_name_is_found() {
        let r = upload(&[
            ("purpose", None, None, b"user_data"),
            (
                "file",
                Some("NXAFQ3778H_form16.txt"),
                Some("text/plain"),
                b"salary statement",
            ),
        ]);
        assert_eq!(r.counts, vec![(EntityType::Pan, 1)], "{r:?}");
        // Percent-encoded, as a browser or RFC 8187 `filename*` sends it.
        let body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename*=utf-8''%4E%58%41%46%51%33%37%37%38%48.txt\r\n\r\nhello\r\n--{BOUNDARY}--\r\n"
        );
        let r = scan(&multipart_type(), body.as_bytes(), Tier::Restricted);
        assert_eq!(r.counts, vec![(EntityType::Pan, 1)], "{r:?}");
    }

    #[test]
    fn crlf_and_lf_only_bodies_are_read_alike() {
        let file = batch_jsonl(AADHAAR);
        let parts: &[PartSpec<'_>] = &[
            ("purpose", None, None, b"batch"),
            ("file", Some("batch.jsonl"), None, file.as_bytes()),
            ("note", None, None, b"mobile 9876543210"),
        ];
        let crlf = scan(
            &multipart_type(),
            &multipart_body(parts, "\r\n"),
            Tier::Restricted,
        );
        let lf = scan(
            &multipart_type(),
            &multipart_body(parts, "\n"),
            Tier::Restricted,
        );
        assert_eq!(crlf, lf);
        assert_eq!(crlf.summary(), "aadhaar:1,phone:1");
    }

    #[test]
    fn text_fields_are_labelled_by_their_name() {
        let r = upload(&[("account_no", None, None, b"123456789012345")]);
        assert_eq!(r.counts, vec![(EntityType::BankAccount, 1)], "{r:?}");
        let r = upload(&[("invoice_no", None, None, b"9876543210")]);
        assert!(r.counts.is_empty(), "{r:?}");
    }

    #[test]
    fn text_that_is_not_utf8_is_unscannable_not_an_error() {
        let utf16: Vec<u8> = "Aadhaar 3417 7763 1706"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        for (filename, content) in [
            ("notes.txt", &utf16[..]),
            ("notes.txt", b"caf\xe9 3417 7763 1706"),
            ("data.jsonl", &utf16[..]),
        ] {
            let r = upload(&[("file", Some(filename), Some("text/plain"), content)]);
            assert_eq!(r.unscannable, vec!["file:binary"], "{filename}");
            assert_eq!(r.tier, Tier::Restricted);
        }
        let r = upload(&[(
            "file",
            Some("notes.txt"),
            Some("text/plain; charset=utf-16le"),
            b"A\0B\0",
        )]);
        assert_eq!(r.unscannable, vec!["file:charset"]);
    }

    #[test]
    fn json_files_are_walked_as_json() {
        let json = br#"{"customer": {"mobile_no": "\u0039876543210", "note": "call after 6"}}"#;
        let r = upload(&[(
            "file",
            Some("customer.json"),
            Some("application/json"),
            json,
        )]);
        assert_eq!(r.counts, vec![(EntityType::Phone, 1)], "{r:?}");
        assert_eq!(r.texts_scanned, 2);
        // Not JSON after all: scanned as text, escapes decoded.
        let r = upload(&[(
            "file",
            Some("customer.json"),
            None,
            br#"{"mobile": "\u0039876543210""#,
        )]);
        assert_eq!(r.counts, vec![(EntityType::Phone, 1)], "{r:?}");
    }

    #[test]
    fn base64_transfer_encoding_is_unscannable() {
        let body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nMzQxNyA3NzYzIDE3MDY=\r\n--{BOUNDARY}--\r\n"
        );
        let r = scan(&multipart_type(), body.as_bytes(), Tier::Restricted);
        assert_eq!(r.unscannable, vec!["file:encoded"]);
    }

    #[test]
    fn preamble_and_epilogue_are_scanned() {
        let mut body = b"PAN NXAFQ3778H\r\n".to_vec();
        body.extend(multipart_body(&[("purpose", None, None, b"batch")], "\r\n"));
        body.extend_from_slice(b"mobile 9876543210");
        let r = scan(&multipart_type(), &body, Tier::Restricted);
        assert_eq!(r.summary(), "pan:1,phone:1");
    }

    #[test]
    fn malformed_multipart_is_refused_with_the_reason() {
        let c = Classifier::new();
        let good = multipart_body(
            &[("purpose", None, None, b"Aadhaar 3417 7763 1706")],
            "\r\n",
        );
        let e = c
            .scan_body(Some("multipart/form-data"), &good, &[], Tier::Public)
            .unwrap_err();
        assert_eq!(
            e,
            UnscannableBody::InvalidMultipart(MultipartError::NoBoundary)
        );
        assert!(e.to_string().contains("no boundary"), "{e}");
        let truncated = &good[..good.len() - 10];
        let e = c
            .scan_body(Some(&multipart_type()), truncated, &[], Tier::Public)
            .unwrap_err();
        assert_eq!(
            e,
            UnscannableBody::InvalidMultipart(MultipartError::Unterminated)
        );
        assert!(e.to_string().contains("closing boundary"), "{e}");
        let no_cd = format!("--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nAadhaar 3417 7763 1706\r\n--{BOUNDARY}--\r\n");
        let e = c
            .scan_body(Some(&multipart_type()), no_cd.as_bytes(), &[], Tier::Public)
            .unwrap_err();
        assert_eq!(
            e,
            UnscannableBody::InvalidMultipart(MultipartError::NoDisposition(1))
        );
        assert!(
            e.to_string().contains("part 1 has no content-disposition"),
            "{e}"
        );
        assert!(!e.to_string().contains("3417"), "{e}");
    }

    #[test]
    fn url_encoded_forms_are_decoded_and_scanned() {
        let body = b"purpose=fine-tune&customer%5Bpan%5D=NXAFQ3778H&note=Aadhaar+3417%207763+1706&acct_no=123456789012345&flag";
        let r = scan("application/x-www-form-urlencoded", body, Tier::Restricted);
        assert_eq!(r.summary(), "aadhaar:1,bank_account:1,pan:1", "{r:?}");
        assert!(r.unscannable.is_empty());
        // A decoded value that is not UTF-8.
        let r = scan(
            "application/x-www-form-urlencoded",
            b"a=%FF%FE",
            Tier::Confidential,
        );
        assert_eq!(r.unscannable, vec!["form:binary"]);
        assert_eq!(r.tier, Tier::Confidential);
    }

    #[test]
    fn text_bodies_are_scanned_and_others_are_unscannable() {
        let r = scan(
            "text/plain; charset=utf-8",
            b"Aadhaar 3417 7763 1706",
            Tier::Public,
        );
        assert_eq!(r.counts, vec![(EntityType::Aadhaar, 1)]);
        let r = scan("text/plain; charset=utf-16", b"A\0", Tier::Internal);
        assert_eq!(r.unscannable, vec!["body:charset"]);
        let r = scan("text/markdown", b"caf\xe9", Tier::Internal);
        assert_eq!(r.unscannable, vec!["body:binary"]);
        for (ct, kind) in [
            ("audio/wav", "body:audio/wav"),
            ("image/png", "body:image/png"),
            ("application/octet-stream", "body:application/octet-stream"),
            // A kind never repeats request text that holds an entity.
            ("audio/NXAFQ3778H", "body:audio"),
            ("x-secret/nxafq3778h 3417 7763 1706", "body:other"),
        ] {
            let r = scan(ct, b"\x00\x01RIFF", Tier::Confidential);
            assert_eq!(r.unscannable, vec![kind], "{ct}");
            assert_eq!(r.tier.max(Tier::Confidential), r.tier);
        }
    }

    #[test]
    fn json_no_content_type_and_empty_bodies_read_as_before() {
        let c = Classifier::new();
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Aadhaar 3417 7763 1706"}]}"#;
        let before = c
            .scan_request_with_headers(body, &[("user-agent", "x")], Tier::Restricted)
            .unwrap();
        for ct in [
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("application/vnd.api+json"),
            None,
        ] {
            let r = c
                .scan_body(ct, body, &[("user-agent", "x")], Tier::Restricted)
                .unwrap();
            assert_eq!(r, before, "{ct:?}");
        }
        for ct in [
            Some("application/json"),
            None,
            Some("multipart/form-data; boundary=x"),
        ] {
            assert!(matches!(
                c.scan_body(ct, b"", &[], Tier::Public),
                Err(UnscannableBody::InvalidJson(_))
            ));
        }
        assert!(matches!(
            c.scan_body(None, b"Aadhaar 3417", &[], Tier::Public),
            Err(UnscannableBody::InvalidJson(_))
        ));
        // A content type that is not among the headers is scanned itself.
        let r = c
            .scan_body(Some("text/plain; x=NXAFQ3778H"), b"hi", &[], Tier::Public)
            .unwrap();
        assert_eq!(r.counts, vec![(EntityType::Pan, 1)]);
    }
}
