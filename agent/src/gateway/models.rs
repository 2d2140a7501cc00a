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

/// The byte range of the top-level `"model"` string value in a JSON object
/// body, quotes included; `None` if there is none (or the body is not an
/// object). Only the top level counts: a nested `model` is content.
pub fn model_span(body: &[u8]) -> Option<Range<usize>> {
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(body, i);
        match body.get(i)? {
            b'}' => return None,
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key = i..string_end(body, i)?;
        i = skip_ws(body, key.end);
        if body.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(body, i + 1);
        let value_end = value_end(body, i)?;
        if &body[key] == b"\"model\"" && body.get(i) == Some(&b'"') {
            return Some(i..value_end);
        }
        i = value_end;
    }
}

/// The body with its top-level `model` replaced by `name`; `None` when the
/// body names no model.
pub fn with_model(body: &[u8], name: &str) -> Option<Vec<u8>> {
    let span = model_span(body)?;
    let quoted = serde_json::to_string(name).ok()?;
    let mut out = Vec::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    Some(out)
}

/// The top-level `model` of a JSON body, decoded.
pub fn body_model(body: &[u8]) -> Option<String> {
    let span = model_span(body)?;
    serde_json::from_slice(&body[span]).ok()
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
        let out = with_model(body, "prod-gpt4o").unwrap();
        let want = String::from_utf8_lossy(body)
            .replace(r#""model" : "gpt-4o""#, r#""model" : "prod-gpt4o""#);
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(body_model(body).as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn escapes_are_decoded_and_written_safely() {
        let body = br#"{"model":"gpt\u002d4o","x":"\\"}"#;
        assert_eq!(body_model(body).as_deref(), Some("gpt-4o"));
        let out = with_model(body, "a\"b").unwrap();
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
            assert_eq!(model_span(body), None, "{}", String::from_utf8_lossy(body));
            assert_eq!(with_model(body, "z"), None);
        }
    }
}
