//! The daemon's life as systemd drives it, against the real process: SIGHUP
//! reloads trusted keys without dropping a request, SIGTERM drains.

#![allow(clippy::unwrap_used)] // test code

use std::time::Duration;

use http_body_util::BodyExt;
use residency_agent::admin::agent_request;
use residency_agent::demo::mock_provider::MockOptions;
use residency_agent::policy::sign::{generate_keypair, sign};
use residency_tests::*;

fn signal(p: &Proc, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &p.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Reads systemd notifications from `sock` until `done` holds for all read so
/// far; panics naming `what` if they stop coming.
fn notified_until(
    sock: &std::os::unix::net::UnixDatagram,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    while !done(&seen) {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}; got {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    seen
}

/// Starts a long streaming chat completion at `url`, checks it was accepted
/// (from `region`, when given), and lets 300 ms of it flow.
async fn stream_in_flight(
    url: &str,
    region: Option<&str>,
) -> tokio::task::JoinHandle<Result<bytes::Bytes, hyper::Error>> {
    let resp = request("POST", url, &chat("story", true), &[]).await;
    assert_eq!(resp.status(), 200);
    if let Some(r) = region {
        assert_eq!(resp.headers()["x-residency-region"], r);
    }
    let streaming =
        tokio::spawn(async move { resp.into_body().collect().await.map(|c| c.to_bytes()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    streaming
}

/// The stream ended cleanly with `[DONE]` and no error event.
async fn assert_stream_completed(
    streaming: tokio::task::JoinHandle<Result<bytes::Bytes, hyper::Error>>,
    when: &str,
) {
    let body = streaming
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the stream failed {when}: {e}"));
    let body = String::from_utf8_lossy(&body);
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert!(!body.contains("event: error"), "{body}");
}

/// Sends public requests every 100 ms for up to 5 s until one is answered
/// from `region`; every one must succeed.
async fn answered_from(url: &str, region: &str) -> bool {
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let a = send("POST", url, &chat("hello", false)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        if a.header("x-residency-region") == region {
            return true;
        }
    }
    false
}

fn slow_fleet_options() -> FleetOptions {
    FleetOptions {
        mock: MockOptions {
            chunks: 30,
            chunk_delay: Duration::from_millis(50),
            ..MockOptions::default()
        },
        ..FleetOptions::default()
    }
}

#[tokio::test]
async fn sighup_reloads_trusted_keys_while_a_stream_keeps_flowing() {
    let fleet = Fleet::start(slow_fleet_options()).await;
    let dir = fleet.dir.path();
    let (key_a, pub_a) = generate_keypair().unwrap();
    let (key_b, pub_b) = generate_keypair().unwrap();
    std::fs::write(dir.join("a.pub"), pub_a.to_pem()).unwrap();
    std::fs::write(dir.join("b.pub"), pub_b.to_pem()).unwrap();
    let extra = format!(
        "[policy]\ntrusted_keys = [\"{}\"]\nbuiltin_baseline = true\n",
        dir.join("a.pub").display()
    );
    let log = dir.join("agent.log");
    let agent = spawn_agent(&fleet, &extra, &log).await;
    let text = "name = \"p\"\n[[rule]]\nname = \"all\"\n[rule.allow]\njurisdictions = [\"*\"]\n";
    let by_b = sign(text, 2, 2, &key_b).unwrap().encode();
    let (status, _) = agent_request(
        &agent.socket,
        http::Method::PUT,
        "/v1/admin/policy",
        by_b.clone().into(),
    )
    .await
    .unwrap();
    assert_eq!(status.as_u16(), 409, "key B is not trusted yet");
    let (status, _) = agent_request(
        &agent.socket,
        http::Method::PUT,
        "/v1/admin/policy",
        sign(text, 1, 1, &key_a).unwrap().encode().into(),
    )
    .await
    .unwrap();
    assert_eq!(status.as_u16(), 200);

    // A long stream is in flight while the config changes and SIGHUP lands.
    let streaming = stream_in_flight(&format!("{}/chat/completions", agent.base), None).await;
    let cfg = std::fs::read_to_string(&agent.config).unwrap();
    std::fs::write(&agent.config, cfg.replace("a.pub", "b.pub")).unwrap();
    signal(&agent.proc, "-HUP");
    let mut accepted = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, _) = agent_request(
            &agent.socket,
            http::Method::PUT,
            "/v1/admin/policy",
            by_b.clone().into(),
        )
        .await
        .unwrap();
        if status.as_u16() == 200 {
            accepted = true;
            break;
        }
    }
    assert!(accepted, "after SIGHUP the new trusted key was not used");
    assert_stream_completed(streaming, "during the reload").await;
    // A broken config on SIGHUP changes nothing and keeps serving.
    std::fs::write(&agent.config, "this is not toml").unwrap();
    signal(&agent.proc, "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = send(
        "POST",
        &format!("{}/chat/completions", agent.base),
        &chat("hi", false),
    )
    .await;
    assert_eq!(a.status, 200);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("reload refused"),
        "no log line about the refused reload"
    );
}

#[tokio::test]
async fn sigterm_drains_a_streaming_response_then_exits() {
    let fleet = Fleet::start(slow_fleet_options()).await;
    let log = fleet.dir.path().join("agent.log");
    // Started as systemd would: notify socket and watchdog.
    let notify_path = fleet.dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut agent = spawn_agent_with(&fleet, "", &log, Some(&notify_path)).await;
    notified_until(&notify, "READY=1 and WATCHDOG=1 from the agent", |s| {
        s.contains("READY=1") && s.contains("WATCHDOG=1")
    });
    let streaming = stream_in_flight(&format!("{}/chat/completions", agent.base), None).await;
    signal(&agent.proc, "-TERM");
    assert_stream_completed(streaming, "during the drain").await;
    // New connections are no longer accepted.
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(s) = agent.proc.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "agent did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(!logs.contains("still shared"), "the drain was skipped");
    notified_until(&notify, "STOPPING=1", |s| s.contains("STOPPING=1"));
    // Its last request is on record: the audit chain was flushed.
    let out = std::process::Command::new(agent_bin())
        .args(["audit", "export", "--state-dir"])
        .arg(&agent.state)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"outcome\":\"complete\""));
}

#[tokio::test]
async fn the_gateway_feeds_the_watchdog_only_while_its_request_path_answers() {
    // In process: the probe is a real QUIC + mTLS round trip to the listener.
    let fleet = Fleet::start(FleetOptions::default()).await;
    let mut fleet = fleet;
    let gw = fleet.gateways[0].take().unwrap();
    let prober = gw.prober();
    assert!(prober.alive().await, "a running gateway answers its probe");
    // The agents' request path still works alongside the probes.
    let a = send(
        "POST",
        &format!("{}/chat/completions", fleet.base()),
        &chat("hello", false),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    gw.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!prober.alive().await, "a closed gateway does not");

    // The real process under a systemd-like watchdog: READY=1, then WATCHDOG=1.
    let dir = tempfile::tempdir().unwrap();
    gen_keys(dir.path());
    let stem = residency_agent::keys::gateway_stem(
        &residency_proto::RegionId::new("aws:ap-south-1").unwrap(),
    );
    let cfg = write_gateway_config(
        dir.path(),
        "aws:ap-south-1",
        "http://127.0.0.1:9/v1",
        "127.0.0.1:0",
        &stem,
    );
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // WATCHDOG_PID must be the gateway's own pid, as systemd sets it.
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(agent_bin())
        .args(["gateway", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = Proc(child);
    notified_until(&notify, "READY=1 and WATCHDOG=1 from the gateway", |s| {
        s.contains("READY=1") && s.matches("WATCHDOG=1").count() >= 2
    });
    signal(&child, "-TERM");
    notified_until(&notify, "STOPPING=1", |s| s.contains("STOPPING=1"));
}

#[tokio::test]
async fn sighup_applies_gateway_and_routing_changes_while_a_stream_on_a_removed_gateway_finishes() {
    let fleet = Fleet::start(slow_fleet_options()).await;
    let log = fleet.dir.path().join("agent.log");
    let agent = spawn_agent(&fleet, "", &log).await;
    let url = format!("{}/chat/completions", agent.base);
    let a = send("POST", &url, &chat("hello", false)).await;
    assert_eq!(a.header("x-residency-region"), "aws:us-east-1");
    // A long public stream on N. Virginia is in flight...
    let streaming = stream_in_flight(&url, Some("aws:us-east-1")).await;
    // ...when the config drops that gateway and makes Mumbai the default.
    let us = fleet.gateways[2].as_ref().unwrap();
    assert_eq!(us.region().as_str(), "aws:us-east-1");
    let us_block = gateway_block("aws:us-east-1", us.local_addr());
    let original = std::fs::read_to_string(&agent.config).unwrap();
    assert!(original.contains(&us_block));
    let changed = original.replace(&us_block, "").replace(
        "default_region = \"aws:us-east-1\"",
        "default_region = \"aws:ap-south-1\"",
    );
    std::fs::write(&agent.config, &changed).unwrap();
    signal(&agent.proc, "-HUP");
    assert!(
        answered_from(&url, "aws:ap-south-1").await,
        "after SIGHUP public traffic did not move to the new default"
    );
    let before = fleet.provider("aws:us-east-1").received().len();
    for _ in 0..5 {
        let a = send("POST", &url, &chat("hello", false)).await;
        assert_eq!(a.header("x-residency-region"), "aws:ap-south-1");
    }
    assert_eq!(fleet.provider("aws:us-east-1").received().len(), before);
    // The stream on the removed gateway completed.
    assert_stream_completed(streaming, "during the reload").await;
    // Putting it back connects it again and routes to it.
    std::fs::write(&agent.config, &original).unwrap();
    signal(&agent.proc, "-HUP");
    assert!(
        answered_from(&url, "aws:us-east-1").await,
        "the re-added gateway was not used"
    );
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("gateway removed by reload"),
        "no removal log line"
    );
    assert!(
        logs.contains("gateway added by reload"),
        "no addition log line"
    );
}

#[tokio::test]
async fn sighup_reloads_the_gateway_without_dropping_its_agents() {
    use residency_agent::demo::mock_provider::MockProvider;
    let dir = tempfile::tempdir().unwrap();
    gen_keys(dir.path());
    let slow = slow_fleet_options().mock;
    let first = MockProvider::start(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            label: "first".into(),
            ..slow.clone()
        },
    )
    .await
    .unwrap();
    let second = MockProvider::start(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            label: "second".into(),
            ..slow
        },
    )
    .await
    .unwrap();
    let region = residency_proto::RegionId::new("aws:us-east-1").unwrap();
    let cfg = write_gateway_config(
        dir.path(),
        region.as_str(),
        &first.base_url(),
        "127.0.0.1:0",
        &residency_agent::keys::gateway_stem(&region),
    );
    let (gateway, addr) = spawn_gateway(&cfg);
    let agent_toml = dir.path().join("agent.toml");
    std::fs::write(
        &agent_toml,
        agent_config_text("aws:us-east-1", &gateway_block("aws:us-east-1", addr), ""),
    )
    .unwrap();
    let agent = residency_agent::AgentHandle::start(
        residency_agent::config::AgentConfig::load(&agent_toml).unwrap(),
    )
    .await
    .unwrap();
    assert!(agent.wait_connected(Duration::from_secs(10)).await);
    let url = format!("{}/chat/completions", agent.base_url());
    let streaming = stream_in_flight(&url, None).await;
    // New provider endpoint, stricter re-check.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&first.base_url(), &second.base_url());
    std::fs::write(&cfg, format!("{text}\n[recheck]\nmax_tier = \"public\"\n")).unwrap();
    signal(&gateway, "-HUP");
    let mut switched = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let a = send("POST", &url, &chat("hello", false)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        if second.received().len() == 1 {
            switched = true;
            break;
        }
    }
    assert!(
        switched,
        "after SIGHUP the gateway did not use the new upstream"
    );
    assert_stream_completed(streaming, "during the gateway's reload").await;
    // The new [recheck] applies: internal data (an IFSC code), which the
    // agent sends to its default region, is now refused by the gateway.
    let a = send("POST", &url, &chat("Branch IFSC SBIN0001234", false)).await;
    assert_eq!(a.status, 451, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "policy_denied", "{}", a.body);
    // The agent's connection was never dropped.
    let link = agent.pool().links()[0].clone();
    assert!(link.is_up());
    assert_eq!(link.failures.load(std::sync::atomic::Ordering::Relaxed), 0);
    agent.shutdown(Duration::from_secs(1)).await;
}
