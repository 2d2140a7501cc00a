//! Splits a `multipart/form-data` body (RFC 7578 over RFC 2046) held in memory into
//! its parts: the raw headers of each part, its `content-disposition` `name` and
//! `filename`, its `content-type`, and its content. Nothing is decoded or skipped
//! here: the caller scans what it gets. The preamble and epilogue are returned too,
//! since they leave with the body.
//!
//! RFC 2046 ends lines with CRLF; a bare LF is accepted as well (some hand-written
//! clients send it), and the CR before a delimiter is not part of the content.
//! Anything that does not parse (no boundary, no opening or closing delimiter, a
//! part without `content-disposition: form-data; name=...`, headers too long) is an
//! error naming the problem: the body is refused, never forwarded on a guess.

use memchr::memmem;

/// The most parts a body may have.
pub(super) const MAX_PARTS: usize = 1000;
/// The most bytes of headers one part may have.
pub(super) const MAX_PART_HEADER_BYTES: usize = 16 * 1024;
/// The most headers one part may have.
const MAX_PART_HEADERS: usize = 64;
/// The longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;

/// Why a multipart body could not be split into parts. Parts are numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MultipartError {
    /// The content type has no `boundary` parameter.
    #[error("the content type has no boundary parameter")]
    NoBoundary,
    /// The boundary is empty, longer than 70 characters, or has characters RFC 2046 forbids.
    #[error("the boundary parameter is empty, longer than 70 characters or has characters RFC 2046 does not allow")]
    BadBoundary,
    /// The body has no opening boundary delimiter.
    #[error("the body has no opening boundary delimiter")]
    NoOpeningDelimiter,
    /// The body ends before the closing boundary delimiter.
    #[error("the body ends before the closing boundary delimiter")]
    Unterminated,
    /// A boundary delimiter is followed by something other than a line break or `--`.
    #[error("a boundary delimiter is followed by text on its line (before part {0})")]
    BadDelimiterLine(usize),
    /// More parts than the scanner reads.
    #[error("the body has more than {MAX_PARTS} parts")]
    TooManyParts,
    /// A part's headers are longer than the scanner reads, or too many.
    #[error("part {0} has more than {MAX_PART_HEADER_BYTES} bytes or {MAX_PART_HEADERS} lines of headers")]
    HeadersTooLarge(usize),
    /// A part's headers do not end with a blank line.
    #[error("part {0} has no blank line after its headers")]
    HeadersUnterminated(usize),
    /// A part has a header line that is not `name: value`, or not UTF-8.
    #[error("part {0} has a header line that is not `name: value` in UTF-8")]
    BadHeaderLine(usize),
    /// A part has no `content-disposition` header.
    #[error("part {0} has no content-disposition header")]
    NoDisposition(usize),
    /// A part's `content-disposition` is not `form-data` with a `name`.
    #[error("part {0} has a content-disposition that is not form-data with a name")]
    NotFormData(usize),
}

/// One part of the body. Strings borrow from the body unless they had escapes.
#[derive(Debug)]
pub(super) struct Part<'a> {
    /// Every header, `(name as sent, value)`, in order; folded lines joined.
    pub(super) headers: Vec<(&'a str, String)>,
    /// The `name` of the form field.
    pub(super) name: String,
    /// The `filename`, if the part is a file (`filename*` if only that is given).
    pub(super) filename: Option<String>,
    /// The `content-type` header's value, if any.
    pub(super) content_type: Option<String>,
    /// The `content-transfer-encoding` header's value, if any (deprecated by RFC 7578).
    pub(super) transfer_encoding: Option<String>,
    /// The content, without the line break before the next delimiter.
    pub(super) content: &'a [u8],
}

/// A body split into parts.
#[derive(Debug)]
pub(super) struct Multipart<'a> {
    /// Bytes before the first delimiter (usually none).
    pub(super) preamble: &'a [u8],
    pub(super) parts: Vec<Part<'a>>,
    /// Bytes after the closing delimiter (usually a line break or none).
    pub(super) epilogue: &'a [u8],
}

/// The byte ranges in `body` of the contents of the form fields called
/// `name` (a `multipart/form-data` body with content type `content_type`),
/// in order.
pub fn field_spans(
    content_type: &str,
    body: &[u8],
    name: &str,
) -> Result<Vec<std::ops::Range<usize>>, MultipartError> {
    let form = split(body, &boundary(content_type)?)?;
    let base = body.as_ptr() as usize;
    Ok(form
        .parts
        .iter()
        .filter(|p| p.name == name && p.filename.is_none())
        .map(|p| {
            let start = p.content.as_ptr() as usize - base;
            start..start + p.content.len()
        })
        .collect())
}

/// The `boundary` parameter of a `multipart/...` content type, checked against
/// RFC 2046's grammar.
pub(super) fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let b = params(content_type.split_once(';').map_or("", |(_, p)| p))
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .ok_or(MultipartError::NoBoundary)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
    if b.is_empty() || b.len() > MAX_BOUNDARY || !b.chars().all(allowed) || b.ends_with(' ') {
        return Err(MultipartError::BadBoundary);
    }
    Ok(b)
}

/// Splits `body` at `boundary` (as returned by [`boundary`]).
pub(super) fn split<'a>(body: &'a [u8], boundary: &str) -> Result<Multipart<'a>, MultipartError> {
    let delim = format!("--{boundary}");
    let line_delim = format!("\n{delim}");
    let finder = memmem::Finder::new(line_delim.as_bytes());
    // `pos` is where a delimiter's `--` starts.
    let mut pos = if body.starts_with(delim.as_bytes()) {
        0
    } else {
        finder
            .find(body)
            .map(|i| i + 1)
            .ok_or(MultipartError::NoOpeningDelimiter)?
    };
    let preamble = trim_line_break(&body[..pos]);
    let mut parts = Vec::new();
    loop {
        let mut at = pos + delim.len();
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(Multipart {
                preamble,
                parts,
                epilogue: &body[at + 2..],
            });
        }
        // Transport padding, then the line break.
        at += rest
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        match &body[at..] {
            [b'\r', b'\n', ..] => at += 2,
            [b'\n', ..] => at += 1,
            [] | [b'\r'] => return Err(MultipartError::Unterminated),
            _ => return Err(MultipartError::BadDelimiterLine(parts.len() + 1)),
        }
        if parts.len() == MAX_PARTS {
            return Err(MultipartError::TooManyParts);
        }
        // The line break just read may be the one before the next delimiter (an empty
        // part), so the search starts on it.
        let next = finder
            .find(&body[at - 1..])
            .map(|i| at - 1 + i)
            .ok_or(MultipartError::Unterminated)?;
        let raw = if next < at {
            &body[at..at]
        } else {
            trim_line_break(&body[at..next + 1])
        };
        parts.push(part(raw, parts.len() + 1)?);
        pos = next + 1;
    }
}

/// `b` without the line break (CRLF or LF) it ends with.
fn trim_line_break(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Parses one part: headers up to the first blank line, then content.
fn part(raw: &[u8], n: usize) -> Result<Part<'_>, MultipartError> {
    let mut headers: Vec<(&str, String)> = Vec::new();
    let mut at = 0;
    let content = loop {
        if at > MAX_PART_HEADER_BYTES || headers.len() > MAX_PART_HEADERS {
            return Err(MultipartError::HeadersTooLarge(n));
        }
        let Some(len) = memchr::memchr(b'\n', &raw[at..]) else {
            return Err(if raw.len() - at > MAX_PART_HEADER_BYTES {
                MultipartError::HeadersTooLarge(n)
            } else {
                MultipartError::HeadersUnterminated(n)
            });
        };
        let line = &raw[at..at + len];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at += len + 1;
        if line.is_empty() {
            break &raw[at..];
        }
        let line = std::str::from_utf8(line).map_err(|_| MultipartError::BadHeaderLine(n))?;
        if line.starts_with([' ', '\t']) {
            // An obsolete folded line continues the header before it.
            let (_, value) = headers.last_mut().ok_or(MultipartError::BadHeaderLine(n))?;
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(MultipartError::BadHeaderLine(n))?;
        let token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(MultipartError::BadHeaderLine(n));
        }
        headers.push((name, value.trim().to_owned()));
    };
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v.clone())
    };
    let disposition = header("content-disposition").ok_or(MultipartError::NoDisposition(n))?;
    let (kind, rest) = disposition.split_once(';').unwrap_or((&disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(MultipartError::NotFormData(n));
    }
    let ps = params(rest);
    let param = |wanted: &str| {
        ps.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v.clone())
    };
    let name = param("name").ok_or(MultipartError::NotFormData(n))?;
    let filename = param("filename").or_else(|| param("filename*").map(|v| ext_value(&v)));
    Ok(Part {
        content_type: header("content-type"),
        transfer_encoding: header("content-transfer-encoding"),
        headers,
        name,
        filename,
        content,
    })
}

/// `key=value` parameters after a header's first `;`: values are tokens or quoted
/// strings (backslash escapes decoded). Malformed pieces are kept as best read: the
/// whole header value is scanned as text anyway.
pub(super) fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|&c| c == ';' || c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|&c| c != '=' && c != ';') {
            key.push(c);
        }
        if chars.peek().is_none() && key.trim().is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
                // Anything after the closing quote up to the next `;` is ignored.
                while chars.next_if(|&c| c != ';').is_some() {}
            } else {
                while let Some(c) = chars.next_if(|&c| c != ';') {
                    value.push(c);
                }
                value = value.trim_end().to_owned();
            }
        }
        out.push((key.trim().to_owned(), value));
    }
}

/// An RFC 8187 extended value (`utf-8''na%C3%AFve.txt`): the text after the second
/// `'`, percent-decoded. Not UTF-8 after decoding: kept as sent.
fn ext_value(v: &str) -> String {
    let encoded = v.splitn(3, '\'').nth(2).unwrap_or(v);
    String::from_utf8(percent_decode(encoded.as_bytes(), false)).unwrap_or_else(|_| v.to_owned())
}

/// Decodes `%XX` escapes (and `+` as a space with `plus`); a `%` not followed by two
/// hex digits is kept as it is.
pub(super) fn percent_decode(b: &[u8], plus: bool) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let h = b.get(i + 1).copied().and_then(hex);
            let l = b.get(i + 2).copied().and_then(hex);
            if let (Some(h), Some(l)) = (h, l) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(if plus && c == b'+' { b' ' } else { c });
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(eol: &str) -> Vec<u8> {
        [
            "--XyZ",
            "Content-Disposition: form-data; name=\"purpose\"",
            "",
            "batch",
            "--XyZ",
            "Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".jsonl\"",
            "Content-Type: application/octet-stream",
            "",
            "line one",
            "line two",
            "--XyZ--",
            "",
        ]
        .join(eol)
        .into_bytes()
    }

    #[test]
    fn splits_parts_with_crlf_and_with_lf() {
        for eol in ["\r\n", "\n"] {
            let b = body(eol);
            let m = split(&b, "XyZ").unwrap();
            assert!(m.preamble.is_empty());
            assert_eq!(m.epilogue, eol.as_bytes());
            assert_eq!(m.parts.len(), 2);
            assert_eq!(m.parts[0].name, "purpose");
            assert_eq!(m.parts[0].filename, None);
            assert_eq!(m.parts[0].content, b"batch");
            let f = &m.parts[1];
            assert_eq!(f.name, "file");
            assert_eq!(f.filename.as_deref(), Some("a \"b\".jsonl"));
            assert_eq!(f.content_type.as_deref(), Some("application/octet-stream"));
            assert_eq!(f.content, format!("line one{eol}line two").as_bytes());
            assert_eq!(f.headers.len(), 2);
        }
    }

    #[test]
    fn boundary_is_read_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").unwrap(),
            "abc"
        );
        assert_eq!(
            boundary("multipart/form-data; charset=utf-8; BOUNDARY=\"a b:c\"").unwrap(),
            "a b:c"
        );
        assert_eq!(
            boundary("multipart/form-data"),
            Err(MultipartError::NoBoundary)
        );
        assert_eq!(
            boundary("multipart/form-data; boundary="),
            Err(MultipartError::BadBoundary)
        );
        let long = format!("multipart/form-data; boundary={}", "a".repeat(71));
        assert_eq!(boundary(&long), Err(MultipartError::BadBoundary));
    }

    #[test]
    fn preamble_empty_parts_and_delimiter_look_alikes() {
        let b = b"preamble\r\n--b\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n\
            --b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nsee --b inline\r\n--bb is not it\r\n--b--\r\nepilogue";
        let err = split(b, "b").unwrap_err();
        // `--bb` at the start of a line is a delimiter followed by text: refused, not guessed.
        assert_eq!(err, MultipartError::BadDelimiterLine(3));
        let b = b"preamble\r\n--b\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n\
            --b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nsee --b inline\r\n--b--\r\nepilogue";
        let m = split(b, "b").unwrap();
        assert_eq!(m.preamble, b"preamble");
        assert_eq!(m.parts[0].content, b"");
        assert_eq!(m.parts[1].content, b"see --b inline");
        assert_eq!(m.epilogue, b"\r\nepilogue");
    }

    #[test]
    fn malformed_bodies_name_the_problem() {
        let cd = "Content-Disposition: form-data; name=\"f\"";
        for (b, want) in [
            (
                "no delimiter at all".to_owned(),
                MultipartError::NoOpeningDelimiter,
            ),
            (
                format!("--b\r\n{cd}\r\n\r\nvalue"),
                MultipartError::Unterminated,
            ),
            (
                format!("--b\r\n{cd}\r\n\r\nvalue\r\n--b"),
                MultipartError::Unterminated,
            ),
            (
                "--b\r\nX-Other: 1\r\n\r\nvalue\r\n--b--".to_owned(),
                MultipartError::NoDisposition(1),
            ),
            (
                format!("--b\r\n{cd}\r\n\r\nv\r\n--b\r\n\r\nno headers\r\n--b--"),
                MultipartError::NoDisposition(2),
            ),
            (
                "--b\r\nContent-Disposition: attachment; name=\"f\"\r\n\r\nv\r\n--b--".to_owned(),
                MultipartError::NotFormData(1),
            ),
            (
                "--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--".to_owned(),
                MultipartError::NotFormData(1),
            ),
            (
                format!("--b\r\n{cd}\r\nno colon here\r\n\r\nv\r\n--b--"),
                MultipartError::BadHeaderLine(1),
            ),
            (
                format!("--b\r\n{cd}\r\n--b--"),
                MultipartError::HeadersUnterminated(1),
            ),
            (
                format!("--b junk\r\n{cd}\r\n\r\nv\r\n--b--"),
                MultipartError::BadDelimiterLine(1),
            ),
            (
                format!(
                    "--b\r\n{cd}\r\nX-Big: {}\r\n\r\nv\r\n--b--",
                    "a".repeat(MAX_PART_HEADER_BYTES)
                ),
                MultipartError::HeadersTooLarge(1),
            ),
        ] {
            assert_eq!(split(b.as_bytes(), "b").unwrap_err(), want, "{b:?}");
        }
        let mut many = String::new();
        for _ in 0..=MAX_PARTS {
            many.push_str(&format!("--b\r\n{cd}\r\n\r\nv\r\n"));
        }
        many.push_str("--b--");
        assert_eq!(
            split(many.as_bytes(), "b").unwrap_err(),
            MultipartError::TooManyParts
        );
        // Transport padding after a delimiter is allowed.
        let ok = format!("--b \t\r\n{cd}\r\n\r\nv\r\n--b--");
        assert_eq!(split(ok.as_bytes(), "b").unwrap().parts[0].content, b"v");
    }

    #[test]
    fn folded_headers_extended_file_names_and_percent_escapes() {
        let b = "--b\r\nContent-Disposition: form-data;\r\n name=\"f\"; filename*=utf-8''na%C3%AFve%20NXAFQ3778H.txt\r\n\r\nv\r\n--b--";
        let m = split(b.as_bytes(), "b").unwrap();
        assert_eq!(m.parts[0].name, "f");
        assert_eq!(
            m.parts[0].filename.as_deref(),
            Some("na\u{ef}ve NXAFQ3778H.txt")
        );
        assert_eq!(percent_decode(b"a+b%2Bc%zz%4", true), b"a b+c%zz%4");
        assert_eq!(percent_decode(b"a+b", false), b"a+b");
    }
}
