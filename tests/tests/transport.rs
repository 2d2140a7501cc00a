//! Networks that drop UDP: the agent reaches its gateways over HTTP/2 on TCP,
//! moves back to QUIC when it can, and keeps the same identity rules and
//! error semantics on either transport.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use residency_agent::config::AgentConfig;
use residency_agent::demo::mock_provider::MockOptions;
use residency_agent::AgentHandle;
use residency_tests::*;

const MUMBAI: &str = "aws:ap-south-1";

/// A `[[gateway]]` block for Mumbai at the firewall's address.
fn via(fw: &Firewall) -> String {
    gateway_block(MUMBAI, fw.addr)
}

fn mumbai_fleet() -> FleetOptions {
    FleetOptions {
        regions: vec![MUMBAI],
        default_region: MUMBAI,
        ..FleetOptions::default()
    }
}

async fn firewall_for(fleet: &Fleet) -> Firewall {
    let gw = fleet.gateways[0].as_ref().unwrap();
    Firewall::start(gw.local_addr(), gw.tcp_addr().expect("TCP listener on")).await
}

async fn audit_endpoints(agent: &AgentHandle) -> Vec<String> {
    let export =
        residency_agent::admin::agent_request_raw(&agent.admin_socket(), "/v1/admin/audit/export")
            .await
            .unwrap();
    export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["endpoint"].to_string())
        .collect()
}

#[tokio::test]
async fn with_udp_blocked_requests_go_over_http2_and_say_so() {
    let fleet = Fleet::start(mumbai_fleet()).await;
    let fw = firewall_for(&fleet).await;
    fw.block_udp(true);
    let started = Instant::now();
    let (agent, up) = fleet
        .agent_with_gateways(
            MUMBAI,
            &via(&fw),
            "[transport]\nquic_timeout_ms = 500\n",
            Duration::from_secs(10),
        )
        .await;
    assert!(up, "no connection over HTTP/2");
    let connected_in = started.elapsed();
    println!("connected over h2 after {connected_in:?}");
    let url = format!("{}/chat/completions", agent.base_url());
    let a = send("POST", &url, &chat("hello", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-transport"), "h2");
    assert_eq!(a.header("x-residency-region"), MUMBAI);
    let s = send("POST", &url, &chat("tell me a story", true)).await;
    assert_eq!(s.status, 200);
    assert!(s.body_error.is_none(), "{:?}", s.body_error);
    assert!(s.body.trim_end().ends_with("data: [DONE]"), "{}", s.body);
    assert_eq!(s.header("x-residency-transport"), "h2");
    assert!(fw.tcp_connections() >= 1);
    assert_eq!(fleet.providers[0].received_total(), 2);
    // The audit names the transport with the gateway.
    let endpoints = audit_endpoints(&agent).await;
    assert_eq!(endpoints.len(), 2, "{endpoints:?}");
    assert!(
        endpoints.iter().all(|e| e.ends_with("/h2\"")),
        "{endpoints:?}"
    );
    // Status, readiness and metrics show it too.
    let status = send(
        "GET",
        &format!("http://{}/v1/status", agent.observe_addr()),
        "",
    )
    .await;
    assert_eq!(
        status.json()["gateways"][0]["transport"],
        "h2",
        "{}",
        status.body
    );
    let ready = send(
        "GET",
        &format!("http://{}/readyz", agent.observe_addr()),
        "",
    )
    .await;
    assert_eq!(ready.status, 200);
    assert!(ready.body.contains("healthy over h2"), "{}", ready.body);
    let metrics = send(
        "GET",
        &format!("http://{}/metrics", agent.observe_addr()),
        "",
    )
    .await;
    assert!(
        metrics
            .body
            .contains(r#"residency_gateway_transport{region="aws:ap-south-1",endpoint="gw-aws-ap-south-1",transport="h2"} 1"#),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn when_udp_returns_traffic_moves_back_to_quic_and_a_long_stream_on_http2_completes() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let fleet = Fleet::start(FleetOptions {
        mock: MockOptions {
            chunk_delay: Duration::from_millis(5),
            hold_last_chunk: Some(gate.clone()),
            ..MockOptions::default()
        },
        ..mumbai_fleet()
    })
    .await;
    let fw = firewall_for(&fleet).await;
    fw.block_udp(true);
    let (agent, up) = fleet
        .agent_with_gateways(
            MUMBAI,
            &via(&fw),
            "[transport]\nquic_timeout_ms = 500\nreprobe_secs = 1\n",
            Duration::from_secs(10),
        )
        .await;
    assert!(up);
    let url = format!("{}/chat/completions", agent.base_url());
    // A stream that starts on HTTP/2 and is held open.
    let long = request("POST", &url, &chat("a long story", true), &[]).await;
    assert_eq!(long.status(), 200);
    assert_eq!(long.headers()["x-residency-transport"], "h2");
    fw.block_udp(false);
    // Within a few re-probe intervals new requests use QUIC.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        gate.add_permits(1);
        let a = send("POST", &url, &chat("hello", false)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        if a.header("x-residency-transport") == "quic" {
            break;
        }
        assert!(Instant::now() < deadline, "still on h2 after 15 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The stream that started on HTTP/2 finishes whole.
    gate.add_permits(1);
    let body = tokio::time::timeout(Duration::from_secs(10), long.into_body().collect())
        .await
        .expect("the long stream finished")
        .expect("the long stream was not cut");
    let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let status = send(
        "GET",
        &format!("http://{}/v1/status", agent.observe_addr()),
        "",
    )
    .await;
    assert_eq!(status.json()["gateways"][0]["transport"], "quic");
}

#[tokio::test]
async fn quic_mode_never_uses_tcp_and_h2_mode_never_uses_udp() {
    let fleet = Fleet::start(mumbai_fleet()).await;
    let fw = firewall_for(&fleet).await;
    let (quic, up) = fleet
        .agent_with_gateways(
            MUMBAI,
            &via(&fw),
            "[transport]\nmode = \"quic\"\n",
            Duration::from_secs(10),
        )
        .await;
    assert!(up);
    let a = send(
        "POST",
        &format!("{}/chat/completions", quic.base_url()),
        &chat("hi", false),
    )
    .await;
    assert_eq!(a.header("x-residency-transport"), "quic");
    assert_eq!(fw.tcp_connections(), 0);
    quic.shutdown(Duration::from_secs(1)).await;
    // With UDP blocked, QUIC mode does not fall back.
    fw.block_udp(true);
    let (stuck, up) = fleet
        .agent_with_gateways(
            MUMBAI,
            &via(&fw),
            "[transport]\nmode = \"quic\"\nquic_timeout_ms = 300\n",
            Duration::from_secs(3),
        )
        .await;
    assert!(!up, "connected with UDP blocked in quic mode");
    assert_eq!(fw.tcp_connections(), 0);
    let r = send(
        "POST",
        &format!("{}/chat/completions", stuck.base_url()),
        &chat("hi", false),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    stuck.shutdown(Duration::from_secs(1)).await;

    fw.block_udp(false);
    let before = fw.udp_datagrams();
    let (h2, up) = fleet
        .agent_with_gateways(
            MUMBAI,
            &via(&fw),
            "[transport]\nmode = \"h2\"\n",
            Duration::from_secs(10),
        )
        .await;
    assert!(up);
    let a = send(
        "POST",
        &format!("{}/chat/completions", h2.base_url()),
        &chat("hi", false),
    )
    .await;
    assert_eq!(a.header("x-residency-transport"), "h2");
    assert_eq!(fw.udp_datagrams(), before, "h2 mode sent UDP");
}

#[tokio::test]
async fn two_hundred_concurrent_requests_over_http2() {
    let fleet = Fleet::start(mumbai_fleet()).await;
    let gw = fleet.gateways[0].as_ref().unwrap();
    let (agent, up) = fleet
        .agent_with_gateways(
            MUMBAI,
            &gateway_block(MUMBAI, gw.tcp_addr().unwrap()),
            "[transport]\nmode = \"h2\"\n",
            Duration::from_secs(10),
        )
        .await;
    assert!(up);
    let url = format!("{}/chat/completions", agent.base_url());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(
                async move { send("POST", &url, &chat(&format!("q{i}"), i % 2 == 0)).await },
            )
        })
        .collect();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body_error.is_none());
        assert_eq!(a.header("x-residency-transport"), "h2");
    }
    assert_eq!(fleet.providers[0].received_total(), 200);
}

#[tokio::test]
async fn identity_rules_hold_over_http2() {
    let fleet = Fleet::start(FleetOptions {
        regions: vec![MUMBAI, "aws:us-east-1"],
        default_region: MUMBAI,
        ..FleetOptions::default()
    })
    .await;
    let mumbai = fleet.gateways[0].as_ref().unwrap().tcp_addr().unwrap();
    let virginia = fleet.gateways[1].as_ref().unwrap().tcp_addr().unwrap();
    let h2 = "[transport]\nmode = \"h2\"\n";

    // A gateway whose certificate names another region is refused: the
    // "Mumbai" address serves N. Virginia.
    let (agent, up) = fleet
        .agent_with_gateways(
            MUMBAI,
            &gateway_block(MUMBAI, virginia),
            h2,
            Duration::from_secs(3),
        )
        .await;
    assert!(!up, "connected to a gateway for another region");
    let link = agent.pool().links()[0].clone();
    let why = link.last_error().unwrap_or_default();
    assert!(why.contains("TLS"), "{why}");
    agent.shutdown(Duration::from_secs(1)).await;

    // An agent certificate from another CA is refused by the gateway.
    let other = tempfile::tempdir().unwrap();
    gen_keys(other.path());
    let foreign = format!(
        "{h2}[tls]\nca = \"certs/ca.pem\"\ncert = \"{0}/certs/agent.pem\"\nkey = \"{0}/certs/agent.key\"\n",
        other.path().display()
    );
    let text = agent_config_text(MUMBAI, &gateway_block(MUMBAI, mumbai), h2).replace(
        "[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/agent.pem\"\nkey = \"certs/agent.key\"\n",
        "",
    );
    let text = text.replacen(h2, &foreign, 1);
    let path = fleet.dir.path().join("foreign-agent.toml");
    std::fs::write(&path, text).unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    assert!(!agent.wait_connected(Duration::from_secs(3)).await);
    let why = agent.pool().links()[0].last_error().unwrap_or_default();
    assert!(!why.is_empty());
    let r = send(
        "POST",
        &format!("{}/chat/completions", agent.base_url()),
        &chat("hi", false),
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(fleet.providers[0].received_total(), 0);
}

#[tokio::test]
async fn a_gateway_killed_mid_stream_over_http2_is_an_error_not_a_short_answer() {
    let (dir, _mock, cfg) = slow_stream_gateway(MUMBAI).await;
    let (mut gateway, _, log) = spawn_gateway_logged(&cfg);
    let addr = logged_tcp_addr(&log);
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        agent_config_text(
            MUMBAI,
            &gateway_block(MUMBAI, addr),
            "[transport]\nmode = \"h2\"\n",
        ),
    )
    .unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    assert!(agent.wait_connected(Duration::from_secs(10)).await);
    let headers = kill_mid_body(&agent, &mut gateway).await;
    assert_eq!(headers["x-residency-transport"], "h2");
}
