//! The audit chain as an auditor relies on it: every answered request has a
//! record, the chain verifies after a hard kill, and no sensitive value is
//! ever in a log line, the audit store or its export.

#![allow(clippy::unwrap_used)] // test code

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use residency_agent::admin::agent_request_raw;
use residency_tests::*;

fn agent_cli(args: &[&str]) -> std::process::Output {
    Command::new(agent_bin()).args(args).output().unwrap()
}

fn grep_tree(dir: &Path, needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let text = String::from_utf8_lossy(&bytes);
                for n in needles {
                    if text.contains(n) {
                        hits.push(format!("{} contains {n}", p.display()));
                    }
                }
            }
        }
    }
    hits
}

#[tokio::test]
async fn sensitive_values_never_reach_logs_the_audit_store_or_the_export() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let log = fleet.dir.path().join("agent.log");
    let AgentProc {
        proc: mut agent,
        base,
        state,
        socket,
        ..
    } = spawn_agent(&fleet, "", &log).await;
    let url = format!("{base}/chat/completions");
    let prompts = [
        "Customer Aadhaar 2345 6789 0124, verify KYC",
        "Refund card 4111 1111 1111 1111 please",
        "Call the customer on +91 98765 43210",
        "UPI ramesh.k@okaxis and PAN ABCPE1234F",
    ];
    for (i, p) in prompts.iter().enumerate() {
        let a = send("POST", &url, &chat(p, i % 2 == 0)).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    // A refused request is audited too.
    let a = send("POST", &url, "{\"messages\": [\"Aadhaar 2345 6789 0124\"").await;
    assert_eq!(a.status, 400);
    let export = agent_request_raw(&socket, "/v1/admin/audit/export")
        .await
        .unwrap();
    let chats = export
        .lines()
        .filter(|l| l.contains("\"path\":\"/v1/chat/completions\""))
        .count();
    assert_eq!(chats, prompts.len() + 1, "{export}");
    assert!(
        export.contains("\"status\":400"),
        "the refusal is on record: {export}"
    );
    assert!(
        export.contains("\"aadhaar\""),
        "the export names entity types: {export}"
    );
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();

    let needles = [
        "2345 6789 0124",
        "234567890124",
        "4111 1111 1111 1111",
        "4111111111111111",
        "98765 43210",
        "9876543210",
        "ramesh.k@okaxis",
        "ABCPE1234F",
    ];
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.lines().count() > 10,
        "expected debug logs, got: {logs}"
    );
    for n in needles {
        assert!(!logs.contains(n), "a log line contains {n}");
        assert!(!export.contains(n), "the export contains {n}");
    }
    let hits = grep_tree(&state, &needles);
    assert!(hits.is_empty(), "{hits:?}");
}

#[tokio::test]
async fn kill_9_under_load_keeps_a_verifiable_chain_with_every_answered_request() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let log = fleet.dir.path().join("agent.log");
    let AgentProc {
        proc: mut agent,
        base,
        state,
        ..
    } = spawn_agent(&fleet, "", &log).await;
    let url = format!("{base}/chat/completions");
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (url, stop) = (url.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = if n % 2 == 0 {
                    chat("Aadhaar 2345 6789 0124 summary", i % 2 == 0)
                } else {
                    chat("monsoon haiku", i % 2 == 0)
                };
                let resp = match client()
                    .request(
                        hyper::Request::post(&url)
                            .header("content-type", "application/json")
                            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                            .unwrap(),
                    )
                    .await
                {
                    Ok(r) => r,
                    Err(_) => break,
                };
                let id = resp.headers()["x-residency-request-id"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let ok = resp.status() == 200;
                // Only a body read to its clean end counts as answered.
                if http_body_util::BodyExt::collect(resp.into_body())
                    .await
                    .is_ok()
                    && ok
                {
                    done.push(id);
                }
            }
            done
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut answered = Vec::new();
    for t in tasks {
        answered.extend(t.await.unwrap());
    }
    assert!(
        answered.len() > 20,
        "only {} requests answered",
        answered.len()
    );

    let state = state.to_str().unwrap();
    let out = agent_cli(&["audit", "verify", "--state-dir", state]);
    assert!(
        out.status.success(),
        "audit verify failed after kill -9: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = agent_cli(&["audit", "export", "--state-dir", state]);
    assert!(out.status.success());
    let export = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !export.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} answered requests have no record: {missing:?}",
        missing.len()
    );
    println!(
        "{} answered requests before kill -9, all on record; chain verifies",
        answered.len()
    );
}
