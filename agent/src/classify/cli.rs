//! The `classify` command: lets people and tests check the classifier without running
//! the daemon. Output is compact JSON, one object per line (see the spec's
//! "Command-line contract"). Values are printed only with `--show-values`; request
//! mode prints counts only, never values.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::ser::{Serialize, Serializer};
use serde_json::Value;

use super::{tier_of, Classifier, Entity, EntityType, Tier};

/// What `classify` was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliOptions {
    /// `--text`: classify this text (otherwise stdin is read).
    pub text: Option<String>,
    /// `--jsonl`: stdin has one `{"id","text"}` object per line.
    pub jsonl: bool,
    /// `--show-values`: also print each entity's value (the output may land in logs).
    pub show_values: bool,
    /// `--request`: classify an OpenAI request body read from this file.
    pub request: Option<PathBuf>,
}

/// Why `classify` failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// More than one input mode was given.
    #[error("--text, --jsonl and --request cannot be combined; pick one input")]
    ConflictingInputs,
    /// Standard input could not be read.
    #[error("cannot read standard input: {0}")]
    ReadInput(#[source] std::io::Error),
    /// The request body file could not be read.
    #[error("cannot read request body {path}: {source}", path = .path.display())]
    ReadRequest {
        /// The file named by `--request`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The `--request` body cannot be scanned completely.
    #[error("cannot scan request body {path}: {reason}", path = .path.display())]
    UnscannableRequest {
        /// The file named by `--request`.
        path: PathBuf,
        /// Why (never the content).
        reason: super::UnscannableBody,
    },
    /// A `--jsonl` line is not a JSON object.
    #[error("line {line} of the --jsonl input is not valid JSON: {reason}")]
    BadJsonLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the line's content).
        reason: String,
    },
    /// A `--jsonl` line has no string `text` field.
    #[error("line {line} of the --jsonl input has no string \"text\" field")]
    MissingText {
        /// 1-based line number.
        line: usize,
    },
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Write(#[source] std::io::Error),
}

/// One entity in the output.
#[derive(serde::Serialize)]
struct EntityOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    start: usize,
    end: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
}

/// The report for one text.
#[derive(serde::Serialize)]
struct TextReport<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    tier: &'static str,
    entities: Vec<EntityOut<'a>>,
}

/// The report for a request body: counts, never values.
#[derive(serde::Serialize)]
struct RequestReport<'a> {
    tier: &'static str,
    entities: Counts<'a>,
    unscannable: &'a [String],
    texts_scanned: u32,
}

/// Per-type counts serialised as a JSON object in type order.
struct Counts<'a>(&'a [(EntityType, u32)]);

impl Serialize for Counts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, n)| (k.as_str(), n)))
    }
}

/// Runs `classify` with the given options, reading `stdin` and writing to `stdout`.
pub fn run(
    opts: &CliOptions,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
) -> Result<(), CliError> {
    let modes = usize::from(opts.text.is_some())
        + usize::from(opts.jsonl)
        + usize::from(opts.request.is_some());
    if modes > 1 {
        return Err(CliError::ConflictingInputs);
    }
    let classifier = Classifier::new();
    if let Some(path) = &opts.request {
        let body = std::fs::read(path).map_err(|source| CliError::ReadRequest {
            path: path.clone(),
            source,
        })?;
        let r = classifier
            .scan_request(&body, Tier::Restricted)
            .map_err(|e| CliError::UnscannableRequest {
                path: path.clone(),
                reason: e,
            })?;
        let report = RequestReport {
            tier: r.tier.as_str(),
            entities: Counts(&r.counts),
            unscannable: &r.unscannable,
            texts_scanned: r.texts_scanned,
        };
        return write_line(stdout, &report);
    }
    if opts.jsonl {
        return run_jsonl(&classifier, opts.show_values, stdin, stdout);
    }
    let text = match &opts.text {
        Some(t) => t.clone(),
        None => {
            let mut buf = Vec::new();
            stdin.read_to_end(&mut buf).map_err(CliError::ReadInput)?;
            String::from_utf8_lossy(&buf).into_owned()
        }
    };
    let mut found = Vec::new();
    classifier.scan_into(&text, &mut found);
    write_line(stdout, &report(None, &text, &found, opts.show_values))
}

fn run_jsonl(
    classifier: &Classifier,
    show_values: bool,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
) -> Result<(), CliError> {
    let mut line = Vec::new();
    let mut found = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        if stdin
            .read_until(b'\n', &mut line)
            .map_err(CliError::ReadInput)?
            == 0
        {
            break;
        }
        n += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // Parse to a `Value` first: serde_json's syntax errors name a position, never
        // the content, so the reason is safe to print.
        let v: Value = serde_json::from_slice(&line).map_err(|e| CliError::BadJsonLine {
            line: n,
            reason: e.to_string(),
        })?;
        let Value::Object(obj) = &v else {
            return Err(CliError::BadJsonLine {
                line: n,
                reason: "expected an object with \"id\" and \"text\"".to_owned(),
            });
        };
        let Some(Value::String(text)) = obj.get("text") else {
            return Err(CliError::MissingText { line: n });
        };
        found.clear();
        classifier.scan_into(text, &mut found);
        write_line(stdout, &report(obj.get("id"), text, &found, show_values))?;
    }
    stdout.flush().map_err(CliError::Write)
}

fn report<'a>(
    id: Option<&'a Value>,
    text: &'a str,
    found: &[Entity],
    show_values: bool,
) -> TextReport<'a> {
    TextReport {
        id,
        tier: tier_of(found).as_str(),
        entities: found
            .iter()
            .map(|e| EntityOut {
                kind: e.kind.as_str(),
                start: e.start,
                end: e.end,
                value: if show_values {
                    text.get(e.start..e.end)
                } else {
                    None
                },
            })
            .collect(),
    }
}

fn write_line<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CliError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| CliError::Write(e.into()))?;
    out.write_all(b"\n").map_err(CliError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_str(opts: &CliOptions, stdin: &str) -> Result<String, CliError> {
        let mut out = Vec::new();
        run(opts, &mut stdin.as_bytes(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn text_mode_prints_spans_without_values() {
        let opts = CliOptions {
            text: Some("Customer Imran shared Aadhaar 3417-7763-1706 for KYC".into()),
            ..CliOptions::default()
        };
        let out = run_str(&opts, "").unwrap();
        assert_eq!(
            out,
            "{\"tier\":\"restricted\",\"entities\":[{\"type\":\"aadhaar\",\"start\":30,\"end\":44}]}\n"
        );
        assert!(!out.contains("3417"));
    }

    #[test]
    fn stdin_text_and_show_values() {
        let opts = CliOptions {
            show_values: true,
            ..CliOptions::default()
        };
        let out = run_str(&opts, "mail deepa@gmail.com\n").unwrap();
        assert_eq!(
            out,
            "{\"tier\":\"confidential\",\"entities\":[{\"type\":\"email\",\"start\":5,\"end\":20,\"value\":\"deepa@gmail.com\"}]}\n"
        );
    }

    #[test]
    fn jsonl_mode_keeps_order_ids_and_skips_blank_lines() {
        let opts = CliOptions {
            jsonl: true,
            ..CliOptions::default()
        };
        let input = "{\"id\":\"x1\",\"text\":\"PAN NXAFQ3778H\"}\n\n  \n{\"id\":\"x2\",\"text\":\"hello\"}\n";
        let out = run_str(&opts, input).unwrap();
        assert_eq!(
            out,
            "{\"id\":\"x1\",\"tier\":\"confidential\",\"entities\":[{\"type\":\"pan\",\"start\":4,\"end\":14}]}\n\
             {\"id\":\"x2\",\"tier\":\"public\",\"entities\":[]}\n"
        );
    }

    #[test]
    fn jsonl_errors_name_the_line_not_the_content() {
        let opts = CliOptions {
            jsonl: true,
            ..CliOptions::default()
        };
        let err = run_str(
            &opts,
            "{\"id\":1,\"text\":\"ok\"}\n{\"id\": \"3417-7763-1706\", text}\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, CliError::BadJsonLine { line: 2, .. }),
            "{msg}"
        );
        assert!(!msg.contains("3417"), "{msg}");
        let err = run_str(&opts, "{\"id\":1}\n").unwrap_err();
        assert!(matches!(err, CliError::MissingText { line: 1 }));
        let err = run_str(&opts, "[1]\n").unwrap_err();
        assert!(matches!(err, CliError::BadJsonLine { line: 1, .. }));
    }

    #[test]
    fn request_mode_prints_counts_only() {
        let dir = std::env::temp_dir().join(format!("classify-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("body.json");
        std::fs::write(
            &path,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"Aadhaar 3417 7763 1706, call 9876543210"},{"type":"image_url","image_url":{"url":"x"}}]}]}"#,
        )
        .unwrap();
        let opts = CliOptions {
            request: Some(path.clone()),
            ..CliOptions::default()
        };
        let out = run_str(&opts, "").unwrap();
        // A body that cannot be scanned completely is an error naming the reason.
        std::fs::write(&path, b"{\"prompt\":\"\xff\"}").unwrap();
        let err = run_str(&opts, "").unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            out,
            "{\"tier\":\"restricted\",\"entities\":{\"aadhaar\":1,\"phone\":1},\"unscannable\":[\"image_url\"],\"texts_scanned\":6}\n"
        );
        let opts = CliOptions {
            request: Some(dir.join("missing.json")),
            ..CliOptions::default()
        };
        assert!(matches!(
            run_str(&opts, ""),
            Err(CliError::ReadRequest { .. })
        ));
    }

    #[test]
    fn conflicting_inputs_are_refused() {
        let opts = CliOptions {
            text: Some("x".into()),
            jsonl: true,
            ..CliOptions::default()
        };
        assert!(matches!(
            run_str(&opts, ""),
            Err(CliError::ConflictingInputs)
        ));
    }
}
