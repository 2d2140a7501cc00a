//! The request path end to end: application -> agent -> QUIC + mTLS ->
//! gateway -> mock provider, and back, streaming.

#![allow(clippy::unwrap_used)] // helpers below are test code too

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use residency_agent::config::{AgentConfig, GatewayConfig};
use residency_agent::demo::mock_provider::{MockOptions, MockProvider};
use residency_agent::keys::{self, KeysSpec};
use residency_agent::{AgentHandle, GatewayHandle};
use residency_proto::RegionId;
use residency_tests::*;
use tokio::sync::Semaphore;

#[tokio::test]
async fn plain_chat_round_trip_with_headers_and_provider_key() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let a = send_with(
        "POST",
        &format!("{}/chat/completions", fleet.base()),
        &chat("Write a haiku about the monsoon", false),
        &[("authorization", "Bearer sk-application-secret")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), "aws:us-east-1");
    assert_eq!(a.header("x-residency-endpoint"), "gw-aws-us-east-1");
    assert_eq!(a.header("x-residency-decision"), "allow");
    assert!(a.header("x-residency-request-id").starts_with("req_"));
    assert_eq!(
        a.json()["choices"][0]["message"]["content"],
        "Hello from the mock provider in aws:us-east-1."
    );

    // Exactly the chosen region's provider got it, with the gateway's key and
    // not the application's credentials.
    let got = fleet.provider("aws:us-east-1").received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(
        got[0].authorization.as_deref(),
        Some("Bearer provider-key-aws-us-east-1")
    );
    assert!(fleet.provider("aws:ap-south-1").received().is_empty());
    assert!(fleet.provider("aws:ap-south-2").received().is_empty());
}

#[tokio::test]
async fn every_openai_path_is_forwarded() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let base = fleet.base();
    let cases = [
        ("GET", "/models", ""),
        ("GET", "/models/mock-gpt", ""),
        (
            "POST",
            "/completions",
            r#"{"model":"mock-gpt","prompt":"Say hi"}"#,
        ),
        (
            "POST",
            "/embeddings",
            r#"{"model":"mock-embed","input":"monsoon"}"#,
        ),
        (
            "POST",
            "/responses",
            r#"{"model":"mock-gpt","input":"Say hi"}"#,
        ),
    ];
    for (method, path, body) in cases {
        let a = send(method, &format!("{base}{path}"), body).await;
        assert_eq!(a.status, 200, "{method} {path}: {}", a.body);
        assert_eq!(a.header("x-residency-region"), "aws:us-east-1", "{path}");
        assert!(!a.header("x-residency-request-id").is_empty());
    }
    let paths: Vec<String> = fleet
        .provider("aws:us-east-1")
        .received()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        [
            "/v1/models",
            "/v1/models/mock-gpt",
            "/v1/completions",
            "/v1/embeddings",
            "/v1/responses"
        ]
    );
}

#[tokio::test]
async fn streaming_is_not_buffered() {
    let gate = Arc::new(Semaphore::new(0));
    let fleet = Fleet::start(FleetOptions {
        mock: MockOptions {
            chunks: 4,
            chunk_delay: Duration::from_millis(1),
            hold_last_chunk: Some(gate.clone()),
            ..MockOptions::default()
        },
        ..FleetOptions::default()
    })
    .await;
    let resp = request(
        "POST",
        &format!("{}/chat/completions", fleet.base()),
        &chat("Stream please", true),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = resp.into_body();
    // The provider holds its last chunk until we say so: the first chunk can
    // only arrive now if nothing on the way buffers.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk arrived while the provider still held the last one")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    gate.add_permits(1);
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(all.matches("chat.completion.chunk").count(), 4);
    assert!(all.trim_end().ends_with("data: [DONE]"));
}

#[tokio::test]
async fn two_hundred_concurrent_requests_all_succeed() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let url = format!("{}/chat/completions", fleet.base());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let a = send("POST", &url, &chat(&format!("question {i}"), i % 2 == 0)).await;
            (a.status, a.header("x-residency-region").to_owned(), a.body)
        }));
    }
    for t in tasks {
        let (status, region, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(region, "aws:us-east-1");
    }
    assert_eq!(fleet.provider("aws:us-east-1").received().len(), 200);
}

/// Polls `f` every 50 ms until it holds or `limit` passes; whether it held.
async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

#[tokio::test]
async fn idle_provider_connections_are_capped_and_closed_after_the_idle_timeout() {
    let fleet = Fleet::start(FleetOptions {
        // Streamed answers keep each connection busy long enough that a
        // burst needs many.
        mock: MockOptions {
            chunk_delay: Duration::from_millis(40),
            ..MockOptions::default()
        },
        upstream_extra: "idle_timeout_secs = 2\nmax_idle_per_host = 3\n".into(),
        ..FleetOptions::default()
    })
    .await;
    let provider = fleet.provider("aws:us-east-1");
    let url = format!("{}/chat/completions", fleet.base());
    let mut tasks = Vec::new();
    for i in 0..24 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            send("POST", &url, &chat(&format!("burst {i}"), true)).await
        }));
    }
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
    }
    assert_eq!(provider.received_total(), 24);
    let peak = provider.peak_connections();
    assert!(
        peak > 3,
        "the burst needed more connections than the cap ({peak})"
    );
    // No more than the cap stays open once the burst is over...
    assert!(
        eventually(Duration::from_secs(1), || provider.open_connections() <= 3).await,
        "{} idle provider connections kept, cap is 3",
        provider.open_connections()
    );
    // ...and those close after the idle timeout.
    assert!(
        eventually(Duration::from_secs(10), || provider.open_connections() == 0).await,
        "{} provider connections still open after the idle timeout",
        provider.open_connections()
    );
    // The pool still works afterwards.
    let a = send("POST", &url, &chat("after", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn client_errors_are_openai_shaped() {
    let fleet = Fleet::start(FleetOptions {
        agent_extra: "max_body_bytes = 4096".into(),
        ..FleetOptions::default()
    })
    .await;
    let base = fleet.base();

    let a = send(
        "POST",
        &format!("{base}/chat/completions"),
        "{\"model\": \"x\",\n \"messages\": [}",
    )
    .await;
    assert_eq!(a.status, 400);
    let e = &a.json()["error"];
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["message"].as_str().unwrap().contains("line 2"), "{e}");

    let big = chat(&"a".repeat(5000), false);
    let a = send("POST", &format!("{base}/chat/completions"), &big).await;
    assert_eq!(a.status, 413);
    assert_eq!(a.json()["error"]["code"], "request_too_large");

    let a = send(
        "GET",
        &format!("{}/v2/models", base.trim_end_matches("/v1")),
        "",
    )
    .await;
    assert_eq!(a.status, 404);
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v2/models"));

    let a = send("PUT", &format!("{base}/chat/completions"), "").await;
    assert_eq!(a.status, 405);
    assert_eq!(a.json()["error"]["code"], "method_not_allowed");
    // Refusals carry the request id the audit record is filed under.
    assert!(a.header("x-residency-request-id").starts_with("req_"));
    assert_eq!(a.header("x-residency-decision"), "error");
    // HEAD is not a method the API has.
    let a = send("HEAD", &format!("{base}/models"), "").await;
    assert_eq!(a.status, 405);

    // None of these reached a provider.
    for r in REGIONS {
        assert!(fleet.provider(r).received().is_empty(), "{r}");
    }
}

#[tokio::test]
async fn no_reachable_gateway_is_503() {
    let dir = tempfile::tempdir().unwrap();
    gen_keys(dir.path());
    // A UDP port with nothing behind it.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = sock.local_addr().unwrap();
    drop(sock);
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        agent_config_text("aws:ap-south-1", &gateway_block("aws:ap-south-1", dead), ""),
    )
    .unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    let a = send(
        "POST",
        &format!("{}/chat/completions", agent.base_url()),
        &chat("hello", false),
    )
    .await;
    assert_eq!(a.status, 503);
    assert_eq!(a.json()["error"]["type"], "no_compliant_route");
    assert!(a.body.contains("aws:ap-south-1"), "{}", a.body);
    assert_eq!(a.header("x-residency-decision"), "no_route");
}

#[tokio::test]
async fn gateway_rejects_agent_certificate_from_another_ca() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    // A second, unrelated CA issues the agent certificate; the agent still
    // trusts the real fleet CA for gateways.
    let other = tempfile::tempdir().unwrap();
    let rogue = keys::generate(other.path(), &KeysSpec::default()).unwrap();
    let gw = fleet.gateways[0].as_ref().unwrap();
    let path = other.path().join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndefault_region = \"aws:ap-south-1\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n{}{FAST_QUIC}",
            fleet.keys.ca_cert.display(),
            rogue.agent.0.display(),
            rogue.agent.1.display(),
            gateway_block("aws:ap-south-1", gw.local_addr()),
        ),
    )
    .unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    assert!(!agent.wait_connected(Duration::from_secs(2)).await);
    let a = send(
        "POST",
        &format!("{}/chat/completions", agent.base_url()),
        &chat("hello", false),
    )
    .await;
    assert_eq!(a.status, 503);
    assert!(fleet.provider("aws:ap-south-1").received().is_empty());
    // Refused for its certificate, not for anything else.
    let why = agent.pool().links()[0].last_error().unwrap_or_default();
    assert!(
        why.to_ascii_lowercase().contains("certificate")
            || why.contains("UnknownCA")
            || why.contains("BadCertificate"),
        "{why}"
    );
    // An admin sees the same reason in the status.
    let st = send(
        "GET",
        &format!("http://{}/v1/status", agent.observe_addr()),
        "",
    )
    .await
    .json();
    assert_eq!(st["gateways"][0]["up"], false, "{st}");
    assert_eq!(st["gateways"][0]["last_error"], why.as_str(), "{st}");
}

#[tokio::test]
async fn agent_rejects_gateway_certificate_naming_another_region() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    // The config says Mumbai, but the address is the Virginia gateway, whose
    // certificate (valid, same CA) names aws:us-east-1.
    let virginia = fleet.gateways[2].as_ref().unwrap();
    let path = fleet.dir.path().join("misconfigured.toml");
    std::fs::write(
        &path,
        agent_config_text(
            "aws:ap-south-1",
            &gateway_block("aws:ap-south-1", virginia.local_addr()),
            "",
        ),
    )
    .unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    assert!(!agent.wait_connected(Duration::from_secs(2)).await);
    let a = send(
        "POST",
        &format!("{}/chat/completions", agent.base_url()),
        &chat("hello", false),
    )
    .await;
    assert_eq!(a.status, 503);
    assert!(fleet.provider("aws:us-east-1").received().is_empty());
    let why = agent.pool().links()[0].last_error().unwrap_or_default();
    assert!(why.contains("aws:us-east-1"), "{why}");
}

#[tokio::test]
async fn gateway_refuses_a_request_for_another_region() {
    // Defence in depth: even a hand-made request head naming another region
    // is refused by the gateway, and the provider never sees it.
    let fleet = Fleet::start(FleetOptions::default()).await;
    let frame = raw_request_via(
        &fleet,
        "aws:us-east-1",
        "aws:ap-south-1",
        "/v1/chat/completions",
        residency_proto::Tier::Restricted,
        chat("x", false).as_bytes(),
    )
    .await;
    match frame {
        residency_proto::Frame::Error(e) => {
            assert_eq!(e.code, residency_proto::ErrorCode::Misrouted)
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
    assert!(fleet.provider("aws:us-east-1").received().is_empty());
}

#[tokio::test]
async fn cancelling_the_client_cancels_upstream() {
    let fleet = Fleet::start(FleetOptions {
        mock: MockOptions {
            chunks: 200,
            chunk_delay: Duration::from_millis(20),
            ..MockOptions::default()
        },
        ..FleetOptions::default()
    })
    .await;
    let resp = request(
        "POST",
        &format!("{}/chat/completions", fleet.base()),
        &chat("a long story", true),
        &[],
    )
    .await;
    let mut body = resp.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    let provider = fleet.provider("aws:us-east-1");
    for _ in 0..100 {
        if provider.cancelled_streams() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the provider's stream was not cancelled within 5 s");
}

#[tokio::test]
async fn gateway_killed_mid_stream_is_an_error_not_a_truncated_success() {
    let (dir, _mock, cfg) = slow_stream_gateway("aws:ap-south-1").await;
    let (mut gateway, addr) = spawn_gateway(&cfg);
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        agent_config_text("aws:ap-south-1", &gateway_block("aws:ap-south-1", addr), ""),
    )
    .unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    assert!(agent.wait_connected(Duration::from_secs(10)).await);

    kill_mid_body(&agent, &mut gateway).await;
}

#[tokio::test]
async fn provider_unreachable_is_502() {
    let dir = tempfile::tempdir().unwrap();
    gen_keys(dir.path());
    let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/v1", sock.local_addr().unwrap());
    drop(sock);
    let stem = keys::gateway_stem(&RegionId::new("aws:ap-south-1").unwrap());
    let cfg = write_gateway_config(dir.path(), "aws:ap-south-1", &dead, "127.0.0.1:0", &stem);
    let gw = GatewayHandle::start(GatewayConfig::load(&cfg).unwrap())
        .await
        .unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        agent_config_text(
            "aws:ap-south-1",
            &gateway_block("aws:ap-south-1", gw.local_addr()),
            "",
        ),
    )
    .unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    assert!(agent.wait_connected(Duration::from_secs(10)).await);
    let a = send(
        "POST",
        &format!("{}/chat/completions", agent.base_url()),
        &chat("hello", false),
    )
    .await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "upstream_unavailable");
    assert!(!a.header("x-residency-request-id").is_empty());
}

#[tokio::test]
async fn gateway_abroad_rescans_and_refuses_restricted_data_whatever_the_agent_claims() {
    // Defence in depth: an agent that calls an Aadhaar request "public" and
    // sends it to N. Virginia is refused there; the provider never sees it.
    let fleet = Fleet::start(FleetOptions::default()).await;
    let lie = chat("Customer Aadhaar 2345 6789 0124", false);
    match raw_request(&fleet, "aws:us-east-1", residency_proto::Tier::Public, &lie).await {
        residency_proto::Frame::Error(e) => {
            assert_eq!(e.code, residency_proto::ErrorCode::PolicyDenied);
            assert!(e.message.contains("aadhaar:1"), "{}", e.message);
            assert!(!e.message.contains("2345"), "{}", e.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A request the agent itself marks restricted is refused the same way.
    let plain = chat("hello", false);
    match raw_request(
        &fleet,
        "aws:us-east-1",
        residency_proto::Tier::Restricted,
        &plain,
    )
    .await
    {
        residency_proto::Frame::Error(e) => {
            assert_eq!(e.code, residency_proto::ErrorCode::PolicyDenied)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(fleet.provider("aws:us-east-1").received().is_empty());
    // Public data abroad, and restricted data in India, are forwarded.
    match raw_request(
        &fleet,
        "aws:us-east-1",
        residency_proto::Tier::Public,
        &plain,
    )
    .await
    {
        residency_proto::Frame::ResponseHead(h) => assert_eq!(h.status, 200),
        other => panic!("expected an answer, got {other:?}"),
    }
    match raw_request(
        &fleet,
        "aws:ap-south-1",
        residency_proto::Tier::Public,
        &lie,
    )
    .await
    {
        residency_proto::Frame::ResponseHead(h) => assert_eq!(h.status, 200),
        other => panic!("expected an answer, got {other:?}"),
    }
    assert_eq!(fleet.provider("aws:us-east-1").received().len(), 1);
    assert_eq!(fleet.provider("aws:ap-south-1").received().len(), 1);
}

#[tokio::test]
async fn a_policy_that_sends_aadhaar_abroad_is_stopped_at_the_gateway() {
    use residency_agent::policy::sign::{generate_keypair, sign};
    let keydir = tempfile::tempdir().unwrap();
    let (secret, public) = generate_keypair().unwrap();
    let pubfile = keydir.path().join("p.pub");
    std::fs::write(&pubfile, public.to_pem()).unwrap();
    let fleet = Fleet::start(FleetOptions {
        agent_extra: format!("[policy]\ntrusted_keys = [\"{}\"]\n", pubfile.display()),
        ..FleetOptions::default()
    })
    .await;
    // A mistaken policy: everything anywhere, the default region first.
    let policy = "name = \"mistake\"\n[default.allow]\njurisdictions = [\"*\"]\n";
    let bundle = sign(policy, 1, 1, &secret).unwrap().encode();
    fleet.agent.policy().install(&bundle).unwrap();
    let url = format!("{}/chat/completions", fleet.base());
    let a = send(
        "POST",
        &url,
        &chat("Customer Aadhaar 2345 6789 0124", false),
    )
    .await;
    assert_eq!(a.status, 451, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "policy_denied", "{}", a.body);
    assert_eq!(a.header("x-residency-decision"), "deny");
    assert!(fleet.provider("aws:us-east-1").received().is_empty());
    // Public traffic under the same policy still flows.
    let a = send("POST", &url, &chat("hello", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), "aws:us-east-1");
}

#[tokio::test]
async fn a_gateway_configured_for_restricted_data_forwards_it() {
    let fleet = Fleet::start(FleetOptions {
        gateway_extra: "[recheck]\nmax_tier = \"restricted\"\n".into(),
        ..FleetOptions::default()
    })
    .await;
    let lie = chat("Customer Aadhaar 2345 6789 0124", false);
    match raw_request(&fleet, "aws:us-east-1", residency_proto::Tier::Public, &lie).await {
        residency_proto::Frame::ResponseHead(h) => assert_eq!(h.status, 200),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_probe_identity_may_only_ping() {
    // The gateway's own certificate is good for liveness probes: a policy
    // push made with it is refused as not permitted, and nothing changes.
    let fleet = Fleet::start(FleetOptions::default()).await;
    let gw = fleet.gateways[0].as_ref().unwrap();
    let prober = gw.prober();
    assert!(prober.alive().await);
    let push = residency_proto::Frame::PolicyBundle {
        bundle: vec![1, 2, 3],
    };
    match prober.ask(&push, Duration::from_secs(2)).await {
        Ok(residency_proto::Frame::Error(e)) => {
            assert_eq!(
                e.code,
                residency_proto::ErrorCode::NotPermitted,
                "{}",
                e.message
            );
            assert!(e.message.contains("probe"), "{}", e.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(gw.policy().version(), None, "nothing was installed");
}

#[tokio::test]
async fn an_admin_certificate_is_not_an_agent() {
    // An operator's certificate pushes policy; it may not hold an agent's
    // control stream or send requests, and an agent will not start with it.
    let fleet = Fleet::start(FleetOptions::default()).await;
    let gw = fleet.gateways[0].as_ref().unwrap();
    let files = residency_agent::transport::tls::TlsFiles {
        ca: fleet.keys.ca_cert.clone(),
        cert: fleet.keys.admin.0.clone(),
        key: fleet.keys.admin.1.clone(),
    };
    let material = residency_agent::transport::tls::TlsMaterial::load(&files).unwrap();
    let crypto = material.admin_client_config().unwrap();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(
            quinn::ClientConfig::new(Arc::new(quic)),
            gw.local_addr(),
            "localhost",
        )
        .unwrap()
        .await
        .unwrap();
    let conn = residency_agent::transport::stream::quic::Quic(conn);
    let codec = residency_proto::Codec::default();
    let hello = residency_proto::Frame::Hello(residency_proto::Hello {
        protocol_version: residency_proto::PROTOCOL_VERSION,
        role: residency_proto::Role::Agent,
        region: None,
        software: "test".into(),
    });
    let answer =
        residency_agent::transport::stream::call(&conn, &codec, &hello, Duration::from_secs(5))
            .await;
    match answer {
        Ok(residency_proto::Frame::Error(e)) => {
            assert_eq!(
                e.code,
                residency_proto::ErrorCode::NotPermitted,
                "{}",
                e.message
            );
            assert!(e.message.contains("admin"), "{}", e.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A ping is fine for anyone.
    let ping = residency_proto::Frame::Ping { nonce: 7 };
    match residency_agent::transport::stream::call(&conn, &codec, &ping, Duration::from_secs(5))
        .await
    {
        Ok(residency_proto::Frame::Pong { nonce: 7 }) => {}
        other => panic!("expected a pong, got {other:?}"),
    }
    conn.0.close(0u32.into(), b"done");

    // An agent configured with the admin certificate refuses to start.
    let text = agent_config_text(
        "aws:us-east-1",
        &gateway_block("aws:us-east-1", gw.local_addr()),
        "",
    )
    .replace("certs/agent.pem", "certs/admin.pem")
    .replace("certs/agent.key", "certs/admin.key");
    assert!(text.contains("certs/admin.pem"), "{text}");
    let path = fleet.dir.path().join("admin-agent.toml");
    std::fs::write(&path, text).unwrap();
    let err = match AgentHandle::start(AgentConfig::load(&path).unwrap()).await {
        Ok(_) => panic!("an agent started with an admin certificate"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("tls.cert") && err.contains("not an agent identity"),
        "{err}"
    );
}

#[tokio::test]
async fn a_gateway_logs_why_it_refused_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let keys = gen_keys(dir.path());
    let provider = MockProvider::start("127.0.0.1:0".parse().unwrap(), MockOptions::default())
        .await
        .unwrap();
    let region = RegionId::new("aws:ap-south-1").unwrap();
    let config = write_gateway_config(
        dir.path(),
        region.as_str(),
        &provider.base_url(),
        "127.0.0.1:0",
        &keys::gateway_stem(&region),
    );
    let (_gateway, addr, log) = spawn_gateway_logged(&config);
    // An agent whose certificate another CA issued.
    let other = tempfile::tempdir().unwrap();
    let rogue = keys::generate(other.path(), &KeysSpec::default()).unwrap();
    let path = other.path().join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndefault_region = \"aws:ap-south-1\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n{}{FAST_QUIC}",
            keys.ca_cert.display(),
            rogue.agent.0.display(),
            rogue.agent.1.display(),
            gateway_block("aws:ap-south-1", addr),
        ),
    )
    .unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    assert!(!agent.wait_connected(Duration::from_secs(2)).await);
    let refused = |l: &Vec<String>| {
        l.iter()
            .filter(|line| line.contains("handshake refused"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = refused(&log.lock().unwrap());
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = lines.first().expect("the gateway logged the refusal");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let fields = &v;
    assert_eq!(v["level"], "WARN", "{line}");
    assert!(
        fields["remote"]
            .as_str()
            .unwrap_or("")
            .starts_with("127.0.0.1:"),
        "{line}"
    );
    assert!(
        fields["reason"]
            .as_str()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("certificate"),
        "{line}"
    );
    let all = log.lock().unwrap().join("\n");
    assert!(!all.contains("PRIVATE KEY"), "key material in the log");
    assert!(provider.received().is_empty());
}
