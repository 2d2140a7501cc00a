//! The gateway's model map: which model names it serves, what its provider
//! calls each, on which API paths, and where the provider processes them;
//! and the one edit the gateway makes to a request body, the `model` name.

use std::collections::HashMap;
use std::ops::Range;

use residency_proto::{Jurisdiction, Processing, Tier};

use crate::config::GatewayConfig;

/// The models a gateway serves, looked up by name or alias.
#[derive(Debug, Clone, Default)]
pub struct ModelMap {
    /// Empty: any model is passed on as sent.
    entries: Vec<Served>,
    by_name: HashMap<String, usize>,
    /// The gateway region's jurisdiction.
    home: Option<Jurisdiction>,
}

/// One served model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The name applications send.
    pub name: String,
    /// What the provider calls it.
    pub upstream: String,
    /// API paths below `/v1/`; empty: all.
    pub apis: Vec<String>,
    /// Where the provider processes it.
    pub processing: Processing,
}

/// Why a request's model is not served here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotServed {
    /// No `[[model]]` has this name or alias.
    #[error("model {0:?} is not served here")]
    Unknown(String),
    /// The model is served, but not on this API path.
    #[error("model {model:?} is not served on /v1/{api}")]
    Api {
        /// The model.
        model: String,
        /// The path below `/v1/`.
        api: String,
    },
}

impl ModelMap {
    /// The map of `cfg`'s `[[model]]`s.
    pub fn new(cfg: &GatewayConfig) -> Self {
        let list = cfg.model_list();
        let mut by_name = HashMap::new();
        let entries = cfg
            .models
            .iter()
            .zip(list.models)
            .enumerate()
            .map(|(i, (m, offer))| {
                by_name.insert(m.name.clone(), i);
                for a in &m.aliases {
                    by_name.insert(a.clone(), i);
                }
                Served {
                    name: m.name.clone(),
                    upstream: m.upstream.clone().unwrap_or_else(|| m.name.clone()),
                    apis: m.apis.clone(),
                    processing: offer.processing,
                }
            })
            .collect();
        ModelMap {
            entries,
            by_name,
            home: cfg.catalogue().jurisdiction(&cfg.region),
        }
    }

    /// Whether any model name is passed on as sent.
    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry serving `model` on `api` (a path below `/v1/`, no query);
    /// `Ok(None)` when the map is open.
    pub fn resolve(&self, model: &str, api: &str) -> Result<Option<&Served>, NotServed> {
        if self.is_open() {
            return Ok(None);
        }
        let Some(m) = self.by_name.get(model).map(|&i| &self.entries[i]) else {
            return Err(NotServed::Unknown(model.to_owned()));
        };
        let offer = residency_proto::ModelOffer {
            name: String::new(),
            aliases: Vec::new(),
            apis: m.apis.clone(),
            processing: m.processing,
        };
        if !offer.serves_api(api) {
            return Err(NotServed::Api {
                model: model.to_owned(),
                api: api.to_owned(),
            });
        }
        Ok(Some(m))
    }

    /// The most sensitive tier the gateway forwards to `served`: its own
    /// limit, and no more than a gateway abroad would take when the model is
    /// processed outside the gateway's jurisdiction.
    pub fn max_tier(&self, served: Option<&Served>, gateway_max: Tier) -> Tier {
        match served {
            Some(s) if s.processing.jurisdiction(self.home) != self.home => {
                gateway_max.min(Tier::Confidential)
            }
            _ => gateway_max,
        }
    }
}

/// A body that names its top-level `model` more than once: providers read
/// the last, so which one is meant is ambiguous and the body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body names its model more than once")]
pub struct DuplicateModel;

/// The byte range of the top-level `"model"` value in a JSON object body,
/// quotes included, when it is a string; `None` if there is none (or the
/// body is not an object). Only the top level counts: a nested `model` is
/// content. Keys are compared decoded (`"mod\u0065l"` is `model`).
pub fn model_span(body: &[u8]) -> Result<Option<Range<usize>>, DuplicateModel> {
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return Ok(None);
    }
    i += 1;
    let mut found: Option<Option<Range<usize>>> = None;
    loop {
        i = skip_ws(body, i);
        match body.get(i) {
            Some(b'}') | None => return Ok(found.flatten()),
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(b'"') => {}
            Some(_) => return Ok(found.flatten()),
        }
        let Some(key_end) = string_end(body, i) else {
            return Ok(found.flatten());
        };
        let key = &body[i..key_end];
        i = skip_ws(body, key_end);
        if body.get(i) != Some(&b':') {
            return Ok(found.flatten());
        }
        i = skip_ws(body, i + 1);
        let Some(value_end) = value_end(body, i) else {
            return Ok(found.flatten());
        };
        let is_model = key == b"\"model\""
            || (key.contains(&b'\\')
                && serde_json::from_slice::<String>(key).is_ok_and(|k| k == "model"));
        if is_model {
            if found.is_some() {
                return Err(DuplicateModel);
            }
            found = Some((body.get(i) == Some(&b'"')).then_some(i..value_end));
        }
        i = value_end;
    }
}

/// The body with its top-level `model` replaced by `name`; `None` when the
/// body names no model as a string.
pub fn with_model(body: &[u8], name: &str) -> Result<Option<Vec<u8>>, DuplicateModel> {
    let Some(span) = model_span(body)? else {
        return Ok(None);
    };
    let Ok(quoted) = serde_json::to_string(name) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    Ok(Some(out))
}

/// Where a request body names its model: the top-level `model` of a JSON
/// body, the `model` field of a `multipart/form-data` one (an audio
/// transcription, an image edit). `Ok(None)` for other bodies and bodies
/// that name none.
pub fn model_in(content_type: Option<&str>, body: &[u8]) -> Result<Option<ModelAt>, ModelError> {
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|e| e.trim().to_ascii_lowercase());
    match essence.as_deref() {
        None | Some("" | "application/json") => {
            let Some(span) = model_span(body)? else {
                return Ok(None);
            };
            let Ok(name) = serde_json::from_slice::<String>(&body[span.clone()]) else {
                return Ok(None);
            };
            Ok(Some(ModelAt {
                name,
                span,
                json: true,
            }))
        }
        Some("multipart/form-data") => {
            let spans = crate::classify::field_spans(content_type.unwrap_or(""), body, "model")
                .map_err(ModelError::Form)?;
            match spans.as_slice() {
                [] => Ok(None),
                [span] => {
                    let name = std::str::from_utf8(&body[span.clone()])
                        .map_err(|_| ModelError::NotText)?
                        .trim()
                        .to_owned();
                    Ok(Some(ModelAt {
                        name,
                        span: span.clone(),
                        json: false,
                    }))
                }
                _ => Err(ModelError::Duplicate(DuplicateModel)),
            }
        }
        Some(_) => Ok(None),
    }
}

/// A model name in a body and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAt {
    /// The name, decoded.
    pub name: String,
    /// Its bytes in the body (a JSON string with its quotes, or a form
    /// field's content).
    pub span: Range<usize>,
    /// JSON (the replacement is quoted) or a form field (written as is).
    pub json: bool,
}

impl ModelAt {
    /// `body` with the model renamed to `name`; `None` if `name` cannot be
    /// written there (a line break in a form field).
    pub fn renamed(&self, body: &[u8], name: &str) -> Option<Vec<u8>> {
        let written = if self.json {
            serde_json::to_string(name).ok()?
        } else if name.contains(['\r', '\n']) {
            return None;
        } else {
            name.to_owned()
        };
        let mut out = Vec::with_capacity(body.len() + written.len());
        out.extend_from_slice(&body[..self.span.start]);
        out.extend_from_slice(written.as_bytes());
        out.extend_from_slice(&body[self.span.end..]);
        Some(out)
    }
}

/// Why the model a body names cannot be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// It is named more than once.
    #[error(transparent)]
    Duplicate(#[from] DuplicateModel),
    /// A form body that does not parse.
    #[error("the form body cannot be read: {0}")]
    Form(crate::classify::MultipartError),
    /// A form's model field is not UTF-8.
    #[error("the form's model field is not text")]
    NotText,
}

/// The top-level `model` of a JSON body, decoded.
pub fn body_model(body: &[u8]) -> Result<Option<String>, DuplicateModel> {
    Ok(model_span(body)?.and_then(|span| serde_json::from_slice(&body[span]).ok()))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index just past the string starting at `i` (a `"`).
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The index just past the JSON value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while !matches!(
                b.get(j),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_top_level_model_is_replaced_and_nothing_else_changes() {
        let body = br#"{ "messages":[{"role":"user","content":"use \"model\": x","model":"inner"}],
            "meta":{"model":"nested"}, "model" : "gpt-4o", "n":1 }"#;
        let out = with_model(body, "prod-gpt4o").unwrap().unwrap();
        let want = String::from_utf8_lossy(body)
            .replace(r#""model" : "gpt-4o""#, r#""model" : "prod-gpt4o""#);
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(body_model(body).unwrap().as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn escapes_are_decoded_and_written_safely() {
        let body = br#"{"model":"gpt\u002d4o","x":"\\"}"#;
        assert_eq!(body_model(body).unwrap().as_deref(), Some("gpt-4o"));
        let out = with_model(body, "a\"b").unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "a\"b");
        assert_eq!(v["x"], "\\");
    }

    #[test]
    fn bodies_without_a_top_level_string_model_are_left_alone() {
        for body in [
            &br#"{"input":"x","model_name":"y"}"#[..],
            br#"{"model":7}"#,
            br#"[{"model":"x"}]"#,
            br#"{"a":{"model":"x"}}"#,
            b"",
            br#"{"model":"unterminated"#,
        ] {
            assert_eq!(
                model_span(body),
                Ok(None),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(with_model(body, "z"), Ok(None));
        }
    }

    #[test]
    fn a_form_names_its_model_in_a_field_which_is_renamed_in_place() {
        let ct = "multipart/form-data; boundary=XyZ";
        let body = b"--XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"model\"\r\n\r\nRIFF\r\n--XyZ\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ--\r\n";
        let at = model_in(Some(ct), body).unwrap().unwrap();
        assert_eq!(at.name, "whisper-1");
        let out = at.renamed(body, "pune-whisper").unwrap();
        let want = String::from_utf8_lossy(body).replace("whisper-1", "pune-whisper");
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(at.renamed(body, "a\r\nb"), None);
        let twice = b"--XyZ\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\na\r\n--XyZ\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\nb\r\n--XyZ--\r\n";
        assert_eq!(
            model_in(Some(ct), twice),
            Err(ModelError::Duplicate(DuplicateModel))
        );
        assert!(matches!(
            model_in(Some(ct), b"garbage"),
            Err(ModelError::Form(_))
        ));
        assert_eq!(model_in(Some("text/plain"), b"{\"model\":\"x\"}"), Ok(None));
        let json = model_in(
            Some("application/json; charset=utf-8"),
            br#"{"model":"gpt-4o"}"#,
        );
        assert_eq!(json.unwrap().unwrap().name, "gpt-4o");
    }

    #[test]
    fn an_escaped_key_is_the_model_and_a_second_model_is_refused() {
        let body = br#"{"mod\u0065l":"global-41","n":1}"#;
        assert_eq!(body_model(body).unwrap().as_deref(), Some("global-41"));
        for body in [
            &br#"{"model":"gpt-4o","model":"global-41"}"#[..],
            br#"{"model":"gpt-4o","x":{},"mod\u0065l":"global-41"}"#,
            br#"{"model":7,"model":"global-41"}"#,
        ] {
            assert_eq!(
                model_span(body),
                Err(DuplicateModel),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
