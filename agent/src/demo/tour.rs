//! The scripted tour behind `demo --check`: plain and streaming requests
//! through the running demo, checking status, headers and bodies.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{Demo, DEMO_DEFAULT_REGION};
use crate::ingress::{HDR_DECISION, HDR_ENDPOINT, HDR_REGION, HDR_REQUEST_ID, HDR_TIER};

/// A public prompt: nothing in it is sensitive.
const HAIKU: &str = r#"{"model":"mock-gpt","messages":[{"role":"user","content":"Write a haiku about the monsoon"}]}"#;

/// What came back for one request.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Time from sending to the first body byte.
    pub first_byte: Duration,
    /// Time from sending to the end of the body.
    pub total: Duration,
}

impl Answer {
    /// A header as text ("" if missing).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request and reads the whole answer, timing the first byte.
pub async fn send(method: &str, url: &str, body: Option<&str>) -> Result<Answer, String> {
    send_typed(method, url, body, "application/json").await
}

/// [`send`] with another content type.
pub async fn send_typed(
    method: &str,
    url: &str,
    body: Option<&str>,
    content_type: &str,
) -> Result<Answer, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let (parts, mut body) = resp.into_parts();
    let mut out = Vec::new();
    let mut first_byte = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body failed: {e}"))?;
        if let Ok(d) = frame.into_data() {
            if first_byte.is_none() && !d.is_empty() {
                first_byte = Some(start.elapsed());
            }
            out.extend_from_slice(&d);
        }
    }
    let total = start.elapsed();
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: Bytes::from(out),
        first_byte: first_byte.unwrap_or(total),
        total,
    })
}

struct Tour {
    failures: usize,
}

impl Tour {
    fn step(&mut self, name: &str, result: Result<String, String>) {
        match result {
            Ok(detail) => println!("  ok    {name}: {detail}"),
            Err(why) => {
                self.failures += 1;
                println!("  FAIL  {name}: {why}");
            }
        }
    }
}

fn expect(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

fn routed(a: &Answer, region: &str) -> Result<(), String> {
    expect(a.status == 200, || {
        format!("status {} body {}", a.status, a.text())
    })?;
    for h in [
        HDR_REQUEST_ID,
        HDR_REGION,
        HDR_ENDPOINT,
        HDR_DECISION,
        HDR_TIER,
    ] {
        expect(!a.header(h).is_empty(), || format!("missing header {h}"))?;
    }
    expect(a.header(HDR_REGION) == region, || {
        format!("went to {} instead of {region}", a.header(HDR_REGION))
    })?;
    expect(a.header(HDR_DECISION) == "allow", || {
        format!("decision {}", a.header(HDR_DECISION))
    })
}

fn in_india(a: &Answer, tier: &str) -> Result<String, String> {
    expect(a.status == 200, || {
        format!("status {} body {}", a.status, a.text())
    })?;
    expect(a.header(HDR_TIER) == tier, || {
        format!("classified {} instead of {tier}", a.header(HDR_TIER))
    })?;
    let region = a.header(HDR_REGION);
    let india = region
        .parse::<residency_proto::RegionId>()
        .ok()
        .and_then(|r| r.catalogue_entry())
        .is_some_and(|r| r.jurisdiction == residency_proto::Jurisdiction::IN);
    expect(india, || format!("{tier} request went to {region}"))?;
    Ok(format!("tier {tier}, region {region}"))
}

/// Runs every step, printing one line each; true if all behaved.
pub async fn run(demo: &Demo) -> bool {
    let base = demo.agent.base_url();
    let chat = format!("{base}/chat/completions");
    let mut t = Tour { failures: 0 };
    println!("demo check against {base}");

    let r = send("GET", &format!("{base}/models"), None).await;
    t.step(
        "list models",
        r.and_then(|a| {
            routed(&a, DEMO_DEFAULT_REGION)?;
            expect(a.text().contains("mock-gpt"), || a.text())?;
            Ok(format!("region {}", a.header(HDR_REGION)))
        }),
    );

    let r = send("POST", &chat, Some(HAIKU)).await;
    t.step(
        "plain chat completion",
        r.and_then(|a| {
            routed(&a, DEMO_DEFAULT_REGION)?;
            let v: serde_json::Value =
                serde_json::from_slice(&a.body).map_err(|e| format!("not JSON: {e}"))?;
            let content = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
            expect(content.contains("mock provider"), || a.text())?;
            Ok(format!(
                "region {} via {} in {:.1} ms",
                a.header(HDR_REGION),
                a.header(HDR_ENDPOINT),
                a.total.as_secs_f64() * 1e3
            ))
        }),
    );

    let r = send(
        "POST",
        &chat,
        Some(r#"{"model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"Stream a greeting"}]}"#),
    )
    .await;
    t.step(
        "streaming chat completion",
        r.and_then(|a| {
            routed(&a, DEMO_DEFAULT_REGION)?;
            expect(
                a.header("content-type").starts_with("text/event-stream"),
                || format!("content-type {}", a.header("content-type")),
            )?;
            let text = a.text();
            let events = text.matches("data: ").count();
            expect(events >= 3, || format!("only {events} SSE events"))?;
            expect(text.trim_end().ends_with("data: [DONE]"), || {
                "stream did not end with [DONE]".into()
            })?;
            // The mock spaces its chunks; a buffering proxy would deliver
            // the first byte only at the end.
            expect(a.first_byte + Duration::from_millis(50) < a.total, || {
                format!(
                    "first byte at {:?} but end at {:?}: the stream was buffered",
                    a.first_byte, a.total
                )
            })?;
            Ok(format!(
                "{events} events, first after {:.0} ms, last after {:.0} ms",
                a.first_byte.as_secs_f64() * 1e3,
                a.total.as_secs_f64() * 1e3
            ))
        }),
    );

    let r = send(
        "POST",
        &format!("{base}/embeddings"),
        Some(r#"{"model":"mock-embed","input":["monsoon","mango"]}"#),
    )
    .await;
    t.step(
        "embeddings",
        r.and_then(|a| {
            routed(&a, DEMO_DEFAULT_REGION)?;
            let v: serde_json::Value =
                serde_json::from_slice(&a.body).map_err(|e| format!("not JSON: {e}"))?;
            let n = v["data"].as_array().map_or(0, Vec::len);
            expect(n == 2, || format!("{n} embeddings"))?;
            Ok("2 vectors".into())
        }),
    );

    // Restricted data (an Aadhaar number) must stay in India, streamed or not.
    let aadhaar = r#"{"model":"mock-gpt","messages":[{"role":"user","content":"Customer Aadhaar 2345 6789 0124, summarise the KYC notes"}]}"#;
    let r = send("POST", &chat, Some(aadhaar)).await;
    t.step(
        "Aadhaar number stays in India",
        r.and_then(|a| in_india(&a, "restricted")),
    );
    let streamed = aadhaar.replacen('{', r#"{"stream":true,"#, 1);
    let r = send("POST", &chat, Some(&streamed)).await;
    t.step(
        "streamed Aadhaar request stays in India",
        r.and_then(|a| {
            in_india(&a, "restricted")?;
            expect(a.text().trim_end().ends_with("data: [DONE]"), || a.text())?;
            Ok(format!("region {}", a.header(HDR_REGION)))
        }),
    );
    let pan = r#"{"model":"mock-gpt","messages":[{"role":"system","content":"You are a KYC assistant."},{"role":"user","content":"Check PAN ABCPE1234F and mobile +91 98765 43210"}]}"#;
    let r = send("POST", &chat, Some(pan)).await;
    t.step(
        "PAN and mobile (confidential) stay in India",
        r.and_then(|a| in_india(&a, "confidential")),
    );
    let leaked = demo
        .providers
        .iter()
        .zip(&demo.gateways)
        .filter(|(_, g)| g.region().as_str() == DEMO_DEFAULT_REGION)
        .flat_map(|(p, _)| p.received())
        .filter(|r| {
            let body = String::from_utf8_lossy(&r.body);
            body.contains("2345 6789 0124") || body.contains("ABCPE1234F")
        })
        .count();
    t.step(
        "the N. Virginia provider never saw the sensitive requests",
        expect(leaked == 0, || {
            format!("{leaked} sensitive requests reached {DEMO_DEFAULT_REGION}")
        })
        .map(|()| "0 received".into()),
    );

    // The Responses API streams typed events.
    let r = send(
        "POST",
        &format!("{base}/responses"),
        Some(r#"{"model":"mock-gpt","stream":true,"input":"Stream a greeting"}"#),
    )
    .await;
    t.step(
        "streaming response (Responses API)",
        r.and_then(|a| {
            routed(&a, DEMO_DEFAULT_REGION)?;
            let text = a.text();
            expect(text.contains("event: response.completed"), || {
                "no response.completed event".into()
            })?;
            Ok(format!("{} events", text.matches("event: ").count()))
        }),
    );

    // A stored response lives where it was made; its follow-up goes there.
    let r = send(
        "POST",
        &format!("{base}/responses"),
        Some(r#"{"model":"mock-gpt","input":"Customer Aadhaar 2345 6789 0124: draft the KYC letter"}"#),
    )
    .await;
    let stored = r.and_then(|a| {
        in_india(&a, "restricted")?;
        let v: serde_json::Value =
            serde_json::from_slice(&a.body).map_err(|e| format!("not JSON: {e}"))?;
        let id = v["id"].as_str().ok_or("no id")?.to_owned();
        Ok((id, a.header(HDR_REGION).to_owned()))
    });
    let follow = match &stored {
        Ok((id, home)) => {
            let body = format!(
                r#"{{"model":"mock-gpt","input":"make it shorter","previous_response_id":"{id}"}}"#
            );
            send("POST", &format!("{base}/responses"), Some(&body))
                .await
                .and_then(|a| {
                    routed(&a, home)?;
                    Ok(format!("{id} and its follow-up in {home}"))
                })
        }
        Err(e) => Err(e.clone()),
    };
    t.step("a stored response's follow-up goes where it lives", follow);

    // An uploaded file with an Aadhaar number stays in India, and the batch
    // made from it follows it.
    let boundary = "tourboundary";
    let upload = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
         --{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"kyc.jsonl\"\r\n\
         content-type: application/jsonl\r\n\r\n\
         {{\"custom_id\":\"1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"model\":\"mock-gpt\",\"messages\":[{{\"role\":\"user\",\"content\":\"verify Aadhaar 2345 6789 0124\"}}]}}}}\r\n\
         --{boundary}--\r\n"
    );
    let r = send_typed(
        "POST",
        &format!("{base}/files"),
        Some(&upload),
        &format!("multipart/form-data; boundary={boundary}"),
    )
    .await;
    let file = r.and_then(|a| {
        in_india(&a, "restricted")?;
        let v: serde_json::Value =
            serde_json::from_slice(&a.body).map_err(|e| format!("not JSON: {e}"))?;
        Ok((
            v["id"].as_str().ok_or("no id")?.to_owned(),
            a.header(HDR_REGION).to_owned(),
        ))
    });
    let batch = match &file {
        Ok((id, home)) => {
            let body = format!(
                r#"{{"input_file_id":"{id}","endpoint":"/v1/chat/completions","completion_window":"24h"}}"#
            );
            send("POST", &format!("{base}/batches"), Some(&body))
                .await
                .and_then(|a| {
                    routed(&a, home)?;
                    Ok(format!("{id} and its batch in {home}"))
                })
        }
        Err(e) => Err(e.clone()),
    };
    t.step("an uploaded KYC file and its batch stay in India", batch);

    let r = send("POST", &format!("{base}/nope"), Some("{}")).await;
    t.step(
        "unknown path is a 404 OpenAI error",
        r.and_then(|a| {
            expect(a.status == 404, || format!("status {}", a.status))?;
            let v: serde_json::Value =
                serde_json::from_slice(&a.body).map_err(|e| format!("not JSON: {e}"))?;
            expect(v["error"]["message"].is_string(), || a.text())?;
            Ok("404".into())
        }),
    );

    let r = send(
        "POST",
        &chat,
        Some(r#"{"model": "mock-gpt", "messages": ["#),
    )
    .await;
    t.step(
        "malformed JSON is a 400 that says where",
        r.and_then(|a| {
            expect(a.status == 400, || format!("status {}", a.status))?;
            expect(a.text().contains("column"), || a.text())?;
            Ok("400".into())
        }),
    );

    let r = push_live(demo).await;
    t.step(
        "signed policy pushed to the Mumbai gateway reaches the agent",
        r,
    );
    let r = send("POST", &chat, Some(HAIKU)).await;
    t.step(
        "after the push, public prompts stay in India too",
        r.and_then(|a| {
            expect(a.header("x-residency-policy") == "1", || {
                format!("policy header {}", a.header("x-residency-policy"))
            })?;
            expect(
                a.header("x-residency-rule") == "everything-stays-in-india",
                || format!("rule {}", a.header("x-residency-rule")),
            )?;
            in_india(&a, "public")
        }),
    );

    t.failures == 0
}

/// The policy the tour pushes: every request stays in India.
pub const DEMO_PUSHED_POLICY: &str = r#"name = "demo-india-only"
description = "Pushed live by the demo: every request stays in India."

[[rule]]
name = "everything-stays-in-india"
[rule.allow]
jurisdictions = ["IN"]
"#;

/// Signs [`DEMO_PUSHED_POLICY`] as version 1 with the demo's key, pushes it
/// to the Mumbai gateway with the admin certificate, and waits for the agent
/// to run it.
async fn push_live(demo: &Demo) -> Result<String, String> {
    let dir = &demo.state_dir;
    let key_pem = std::fs::read_to_string(dir.join("policy-keys/policy-signing.key"))
        .map_err(|e| e.to_string())?;
    let key = crate::policy::PolicySigningKey::from_pem(&key_pem).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let bundle = crate::policy::sign::sign(DEMO_PUSHED_POLICY, 1, now, &key)
        .map_err(|e| e.to_string())?
        .encode();
    let mumbai = demo
        .gateways
        .iter()
        .find(|g| g.region().as_str() == "aws:ap-south-1")
        .ok_or("no Mumbai gateway")?;
    let tls = crate::transport::tls::TlsFiles {
        ca: dir.join("certs/ca.pem"),
        cert: dir.join("certs/admin.pem"),
        key: dir.join("certs/admin.key"),
    };
    let started = Instant::now();
    let v =
        crate::admin::push_to_gateway(&mumbai.local_addr().to_string(), "localhost", &tls, bundle)
            .await
            .map_err(|e| e.to_string())?;
    while demo.agent.policy().version() != Some(v) {
        if started.elapsed() > Duration::from_secs(2) {
            return Err("the agent did not activate the pushed policy within 2 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(format!(
        "version {v} active on the agent {:.0} ms after the push",
        started.elapsed().as_secs_f64() * 1e3
    ))
}
