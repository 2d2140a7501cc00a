//! A small `multipart/form-data` parser for the mock's file, image and audio
//! endpoints: the whole body is in memory, so parts are slices of it.

use bytes::Bytes;
use memchr::memmem;

/// One form field.
#[derive(Debug, Clone)]
pub(super) struct Part {
    /// The `name` of the field.
    pub(super) name: String,
    /// The `filename`, for a file field.
    pub(super) filename: Option<String>,
    /// The part's bytes.
    pub(super) data: Bytes,
}

impl Part {
    pub(super) fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// The boundary from a `content-type` header, if it is multipart/form-data.
pub(super) fn boundary(content_type: &str) -> Option<String> {
    let mut it = content_type.split(';');
    let kind = it.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    it.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
    .filter(|b| !b.is_empty())
}

/// Splits `body` into its parts; an error names what is malformed.
pub(super) fn parse(body: &Bytes, boundary: &str) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    let mut pos = memmem::find(body, delim.as_bytes())
        .ok_or("no multipart boundary in the body")?
        + delim.len();
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        if !rest.starts_with(b"\r\n") {
            return Err("malformed multipart boundary line".into());
        }
        pos += 2;
        let head_len =
            memmem::find(&body[pos..], b"\r\n\r\n").ok_or("multipart part without headers")?;
        let head = std::str::from_utf8(&body[pos..pos + head_len])
            .map_err(|_| "multipart headers are not UTF-8")?;
        pos += head_len + 4;
        let data_len = memmem::find(&body[pos..], next_delim.as_bytes())
            .ok_or("multipart body does not end with its closing boundary")?;
        let data = body.slice(pos..pos + data_len);
        pos += data_len + next_delim.len();
        let mut name = None;
        let mut filename = None;
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for p in v.split(';').skip(1) {
                if let Some((pk, pv)) = p.trim().split_once('=') {
                    let pv = pv.trim().trim_matches('"').to_owned();
                    match pk.trim() {
                        "name" => name = Some(pv),
                        "filename" => filename = Some(pv),
                        _ => {}
                    }
                }
            }
        }
        let name = name.ok_or("multipart part without a name")?;
        parts.push(Part {
            name,
            filename,
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_files() {
        let ct = "multipart/form-data; boundary=\"xyz\"";
        let b = boundary(ct).unwrap();
        let body = Bytes::from_static(
            b"--xyz\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n{\"a\":1}\r\n\r\n--xyz--\r\n",
        );
        let parts = parse(&body, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].text(), Some("batch"));
        assert_eq!(parts[1].filename.as_deref(), Some("a.jsonl"));
        assert_eq!(&parts[1].data[..], b"{\"a\":1}\r\n");
        assert!(parse(&Bytes::from_static(b"--xyz\r\nno end"), "xyz").is_err());
        assert_eq!(boundary("application/json"), None);
    }
}
