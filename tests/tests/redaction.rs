//! Reversible redaction end to end: a redact rule sends a request abroad
//! with placeholders instead of its values, the provider never sees a digit
//! of them, and the application gets them back in the answer, plain and
//! streamed (placeholders split across chunks and inside tool-call argument
//! fragments included). Nothing of the values reaches a log, the audit or
//! the metrics.

#![allow(clippy::unwrap_used)] // test code

use std::path::Path;
use std::time::{Duration, Instant};

use residency_agent::admin::{agent_request_raw, push_to_gateway};
use residency_agent::demo::mock_provider::MockOptions;
use residency_agent::policy::sign::{generate_keypair, sign};
use residency_agent::transport::tls::TlsFiles;
use residency_tests::*;

const PAN: &str = "ABCPE1234F";
const PAN_2: &str = "BNZPM2501F";
const AADHAAR: &str = "2345 6789 0124";

/// Restricted requests for `gpt-5*` go to N. Virginia redacted; other
/// restricted requests stay in India.
const REDACT: &str = r#"
name = "redact-for-gpt5"
[[rule]]
name = "gpt5-redacted"
[rule.match]
tier = ["restricted", "confidential"]
model = ["gpt-5*"]
[rule.redact]
entities = ["aadhaar", "aadhaar_vid", "payment_card", "bank_account", "upi_id", "abha", "pan", "passport", "voter_id", "driving_licence", "phone", "email"]
regions = ["aws:us-east-1"]
[[rule]]
name = "restricted-in-india"
[rule.match]
tier_at_least = "confidential"
[rule.allow]
jurisdictions = ["IN"]
[[rule]]
name = "rest-anywhere"
[rule.allow]
jurisdictions = ["IN", "*"]
"#;

struct Setup {
    fleet: Fleet,
    agent: AgentProc,
    log: std::path::PathBuf,
    _keys: tempfile::TempDir,
}

/// A fleet whose mock echoes the last user message in pieces of `split`
/// bytes, the redact policy pushed, and the agent binary (debug logs).
async fn setup(split: usize) -> Setup {
    let keys = tempfile::tempdir().unwrap();
    let (secret, public) = generate_keypair().unwrap();
    let pub_path = keys.path().join("policy.pub");
    std::fs::write(&pub_path, public.to_pem()).unwrap();
    let trusted = format!(
        "[policy]\ntrusted_keys = [\"{}\"]\nbuiltin_baseline = true\n",
        pub_path.display()
    );
    let fleet = Fleet::start(FleetOptions {
        agent_extra: trusted.clone(),
        gateway_extra: trusted.clone(),
        mock: MockOptions {
            chunk_delay: Duration::from_millis(1),
            echo_split: Some(split),
            ..MockOptions::default()
        },
        ..FleetOptions::default()
    })
    .await;
    let bundle = sign(REDACT, 3, 1_790_000_003, &secret).unwrap().encode();
    let gw = fleet.gateways[0].as_ref().unwrap().local_addr().to_string();
    let tls = TlsFiles {
        ca: fleet.keys.ca_cert.clone(),
        cert: fleet.keys.admin.0.clone(),
        key: fleet.keys.admin.1.clone(),
    };
    assert_eq!(
        push_to_gateway(&gw, "localhost", &tls, bundle)
            .await
            .unwrap(),
        3
    );
    let log = fleet.dir.path().join("agent.log");
    let agent = spawn_agent(&fleet, &trusted, &log).await;
    // Wait until the agent runs the pushed policy.
    let t = Instant::now();
    loop {
        let a = send("GET", &format!("{}/models", agent.base), "").await;
        if a.header("x-residency-policy") == "3" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "policy 3 never active"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Setup {
        fleet,
        agent,
        log,
        _keys: keys,
    }
}

fn chat_body(messages: serde_json::Value, stream: bool, tools: bool) -> String {
    let mut b = serde_json::json!({"model": "gpt-5", "messages": messages, "stream": stream});
    if tools {
        b["tools"] = serde_json::json!([{"type":"function","function":{"name":"record","parameters":{"type":"object"}}}]);
    }
    b.to_string()
}

fn user(text: &str) -> serde_json::Value {
    serde_json::json!([{"role": "user", "content": text}])
}

/// The text the deltas of a chat completion stream add up to (content, or
/// the first tool call's arguments).
fn streamed_text(body: &str, field: &str) -> String {
    let mut out = String::new();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        let d = &v["choices"][0]["delta"];
        let piece = match field {
            "content" => d["content"].as_str(),
            _ => d["tool_calls"][0]["function"]["arguments"].as_str(),
        };
        out.push_str(piece.unwrap_or(""));
    }
    out
}

fn assert_provider_saw_no_value(s: &Setup) {
    for r in REGIONS {
        for q in s.fleet.provider(r).received() {
            let body = String::from_utf8_lossy(&q.body);
            for needle in [PAN, PAN_2, "2345", "6789", "0124", "1234", "2501"] {
                assert!(!body.contains(needle), "{r} received {needle}: {body}");
            }
        }
    }
}

#[tokio::test]
async fn values_are_replaced_before_leaving_and_restored_in_plain_and_streamed_answers() {
    for split in [2, 3, 7] {
        let s = setup(split).await;
        let url = format!("{}/chat/completions", s.agent.base);
        let text = format!("My PAN is {PAN} and my Aadhaar is {AADHAAR}.");
        let want = format!("You said: {text}");

        let a = send("POST", &url, &chat_body(user(&text), false, false)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("x-residency-decision"), "redacted");
        assert_eq!(a.header("x-residency-region"), "aws:us-east-1");
        let counts = a.header("x-residency-redacted");
        assert!(
            counts.contains("pan=1") && counts.contains("aadhaar=1"),
            "{counts}"
        );
        assert_eq!(a.json()["choices"][0]["message"]["content"], want.as_str());
        // What the provider got: placeholders only.
        let sent = s.fleet.provider("aws:us-east-1").received();
        let body = String::from_utf8_lossy(&sent.last().unwrap().body).into_owned();
        assert!(
            body.contains("<PAN_1>") && body.contains("<AADHAAR_1>"),
            "{body}"
        );

        let a = send("POST", &url, &chat_body(user(&text), true, false)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("x-residency-decision"), "redacted");
        assert_eq!(streamed_text(&a.body, "content"), want, "split {split}");

        let a = send("POST", &url, &chat_body(user(&text), true, true)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let args = streamed_text(&a.body, "arguments");
        let v: serde_json::Value =
            serde_json::from_str(&args).unwrap_or_else(|e| panic!("{e}: {args}"));
        assert_eq!(v["text"], want.as_str(), "split {split}");

        let a = send("POST", &url, &chat_body(user(&text), false, true)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let args = a.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(args.contains(PAN) && args.contains(AADHAAR), "{args}");
        assert_provider_saw_no_value(&s);
    }
}

#[tokio::test]
async fn a_value_keeps_its_placeholder_across_messages_and_requests_of_a_conversation() {
    let s = setup(64).await;
    let url = format!("{}/chat/completions", s.agent.base);
    let session = [("x-residency-session", "branch-42-ticket-7")];
    let first = serde_json::json!([
        {"role": "user", "content": format!("PAN {PAN}, Aadhaar {AADHAAR}")},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": format!("Again: {PAN}, Aadhaar 234567890124")},
    ]);
    let a = send_with("POST", &url, &chat_body(first, false, false), &session).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let got = s.fleet.provider("aws:us-east-1").received();
    let body = String::from_utf8_lossy(&got.last().unwrap().body).into_owned();
    assert_eq!(body.matches("<PAN_1>").count(), 2, "{body}");
    // The same number written two ways is one value.
    assert_eq!(body.matches("<AADHAAR_1>").count(), 2, "{body}");
    assert!(
        !body.contains("<PAN_2>") && !body.contains("<AADHAAR_2>"),
        "{body}"
    );
    let second = serde_json::json!([{"role": "user", "content": format!("{PAN_2} and {PAN}")}]);
    let a = send_with(
        "POST",
        &url,
        &chat_body(second.clone(), false, false),
        &session,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["choices"][0]["message"]["content"],
        format!("You said: {PAN_2} and {PAN}").as_str()
    );
    let got = s.fleet.provider("aws:us-east-1").received();
    let body = String::from_utf8_lossy(&got.last().unwrap().body).into_owned();
    assert!(body.contains("<PAN_2> and <PAN_1>"), "{body}");
    // Another conversation starts its own numbering.
    let other = [("x-residency-session", "another-ticket")];
    let a = send_with("POST", &url, &chat_body(second, false, false), &other).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let got = s.fleet.provider("aws:us-east-1").received();
    let body = String::from_utf8_lossy(&got.last().unwrap().body).into_owned();
    assert!(body.contains("<PAN_1> and <PAN_2>"), "{body}");
    assert_provider_saw_no_value(&s);
}

#[tokio::test]
async fn nothing_of_the_values_reaches_logs_audit_or_metrics() {
    let s = setup(3).await;
    let url = format!("{}/chat/completions", s.agent.base);
    let text = format!("My PAN is {PAN} and my Aadhaar is {AADHAAR}.");
    for stream in [false, true] {
        let a = send("POST", &url, &chat_body(user(&text), stream, false)).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    // Without the redact rule (another model), restricted stays in India.
    let other = serde_json::json!({"model": "gpt-4o", "messages": user(&text)}).to_string();
    let a = send("POST", &url, &other).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_ne!(a.header("x-residency-region"), "aws:us-east-1");
    assert_eq!(a.header("x-residency-decision"), "allow");
    let export = agent_request_raw(&s.agent.socket, "/v1/admin/audit/export")
        .await
        .unwrap();
    assert!(export.contains("\"decision\":\"redacted\""), "{export}");
    let metrics = send("GET", &format!("http://{}/metrics", s.agent.observe), "")
        .await
        .body;
    assert!(metrics.contains("decision=\"redacted\""), "{metrics}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = std::fs::read_to_string(&s.log).unwrap();
    assert!(logs.contains("redacted"), "expected a redaction log line");
    for n in [PAN, AADHAAR, "234567890124"] {
        assert!(!logs.contains(n), "a log line contains {n}");
        assert!(!export.contains(n), "the audit export contains {n}");
        assert!(!metrics.contains(n), "/metrics contains {n}");
    }
    assert!(grep_dir(&s.agent.state, &[PAN, AADHAAR, "234567890124"]).is_empty());
}

fn grep_dir(dir: &Path, needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let text = String::from_utf8_lossy(&bytes);
                hits.extend(
                    needles
                        .iter()
                        .filter(|n| text.contains(**n))
                        .map(|n| format!("{} contains {n}", p.display())),
                );
            }
        }
    }
    hits
}

#[tokio::test]
async fn responses_streams_are_restored_event_by_event() {
    let s = setup(3).await;
    let url = format!("{}/responses", s.agent.base);
    let text = format!("My PAN is {PAN} and my Aadhaar is {AADHAAR}.");
    let want = format!("You said: {text}");
    let body = serde_json::json!({"model": "gpt-5", "input": text, "stream": true}).to_string();
    let a = send("POST", &url, &body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-decision"), "redacted");
    let mut deltas = String::new();
    let mut done_text = None;
    let mut completed = None;
    let mut seqs = Vec::new();
    for line in a.body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        seqs.push(v["sequence_number"].as_u64().unwrap());
        match v["type"].as_str().unwrap() {
            "response.output_text.delta" => deltas.push_str(v["delta"].as_str().unwrap()),
            "response.output_text.done" => done_text = Some(v["text"].clone()),
            "response.completed" => {
                completed = Some(v["response"]["output"][0]["content"][0]["text"].clone())
            }
            _ => {}
        }
    }
    assert_eq!(deltas, want);
    assert_eq!(done_text.unwrap(), want.as_str());
    assert_eq!(completed.unwrap(), want.as_str());
    // Every event arrived once, in order.
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert_provider_saw_no_value(&s);
}

#[tokio::test]
async fn a_request_redaction_cannot_make_safe_is_refused_and_sent_nowhere() {
    let s = setup(8).await;
    let before: usize = REGIONS
        .iter()
        .map(|r| s.fleet.provider(r).received_total())
        .sum();
    // The Aadhaar number split across two text parts: found when the parts
    // are read together, but in neither part alone.
    let split = serde_json::json!([{"role": "user", "content": [
        {"type": "text", "text": "Aadhaar 2345 6789"}, {"type": "text", "text": " 0124"}]}]);
    let a = send(
        "POST",
        &format!("{}/chat/completions", s.agent.base),
        &chat_body(split, false, false),
    )
    .await;
    assert_eq!(a.status, 451, "{}", a.body);
    let err = &a.json()["error"];
    assert_eq!(err["code"], "redaction_failed", "{}", a.body);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("still restricted"),
        "{}",
        a.body
    );
    assert_eq!(a.header("x-should-retry"), "false");
    assert!(!a.body.contains("2345"), "{}", a.body);
    // An upload is not JSON: it cannot be redacted.
    let body = format!("--B0UND\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-5\r\n--B0UND\r\nContent-Disposition: form-data; name=\"file\"; filename=\"kyc.txt\"\r\nContent-Type: text/plain\r\n\r\nPAN {PAN}\r\n--B0UND--\r\n");
    let a = send_with(
        "POST",
        &format!("{}/files", s.agent.base),
        &body,
        &[("content-type", "multipart/form-data; boundary=B0UND")],
    )
    .await;
    assert_eq!(a.status, 451, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "redaction_failed", "{}", a.body);
    let after: usize = REGIONS
        .iter()
        .map(|r| s.fleet.provider(r).received_total())
        .sum();
    assert_eq!(after, before, "a refused request reached a provider");
    let export = agent_request_raw(&s.agent.socket, "/v1/admin/audit/export")
        .await
        .unwrap();
    assert!(export.contains("\"decision\":\"deny\""), "{export}");
}

#[tokio::test]
async fn embeddings_are_sent_redacted_and_answered_as_they_are() {
    let s = setup(8).await;
    let body =
        serde_json::json!({"model": "gpt-5-embed", "input": [format!("PAN {PAN}"), "hello"]})
            .to_string();
    let a = send("POST", &format!("{}/embeddings", s.agent.base), &body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-decision"), "redacted");
    assert_eq!(a.header("x-residency-region"), "aws:us-east-1");
    let v = a.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{}", a.body);
    let got = s.fleet.provider("aws:us-east-1").received();
    let sent = String::from_utf8_lossy(&got.last().unwrap().body).into_owned();
    assert!(sent.contains("PAN <PAN_1>"), "{sent}");
    assert_provider_saw_no_value(&s);
}
