//! What an operator sees: `/metrics` parses as Prometheus text and its
//! counters match the requests sent; health and readiness say why.

#![allow(clippy::unwrap_used)] // test code

use residency_tests::*;

async fn metrics(fleet: &Fleet) -> prometheus_parse::Scrape {
    let a = send(
        "GET",
        &format!("http://{}/metrics", fleet.agent.observe_addr()),
        "",
    )
    .await;
    assert_eq!(a.status, 200);
    let lines = a.body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

fn counter(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_count_what_was_sent() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let url = format!("{}/chat/completions", fleet.base());
    for _ in 0..7 {
        assert_eq!(
            send("POST", &url, &chat("monsoon haiku", false))
                .await
                .status,
            200
        );
    }
    for _ in 0..3 {
        assert_eq!(
            send("POST", &url, &chat("Aadhaar 2345 6789 0124", false))
                .await
                .status,
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(send("POST", &url, "{oops").await.status, 400);
    }
    let s = metrics(&fleet).await;
    let total = "residency_requests_total";
    assert_eq!(
        counter(
            &s,
            total,
            &[
                ("tier", "public"),
                ("region", "aws:us-east-1"),
                ("status", "200")
            ]
        ),
        7.0
    );
    assert_eq!(
        counter(
            &s,
            total,
            &[
                ("tier", "restricted"),
                ("decision", "allow"),
                ("status", "200")
            ]
        ),
        3.0
    );
    assert_eq!(counter(&s, total, &[("status", "400")]), 2.0);
    assert_eq!(counter(&s, total, &[]), 12.0);
    assert_eq!(
        counter(
            &s,
            "residency_gateway_requests_total",
            &[("region", "aws:us-east-1")]
        ),
        7.0
    );
    assert_eq!(counter(&s, "residency_gateway_up", &[]), 3.0);
    assert!(counter(&s, "residency_classifier_bytes_total", &[]) > 0.0);
    // The overhead histogram saw every forwarded request.
    let count = s
        .samples
        .iter()
        .find(|x| x.metric == "residency_agent_overhead_seconds")
        .map(|x| match &x.value {
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            _ => 0.0,
        })
        .unwrap_or(0.0);
    assert_eq!(count, 10.0);
    // Every answered request, refusals included, was durable before its
    // answer, so the audit counters already hold all twelve.
    assert_eq!(counter(&s, "residency_audit_records_total", &[]), 12.0);
    let batches = counter(&s, "residency_audit_batches_total", &[]);
    assert!((1.0..=12.0).contains(&batches), "{batches} audit batches");
    assert_eq!(
        counter(&s, "residency_audit_failed_batches_total", &[]),
        0.0
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let mut fleet = Fleet::start(FleetOptions::default()).await;
    let base = format!("http://{}", fleet.agent.observe_addr());
    assert_eq!(
        send("GET", &format!("{base}/healthz"), "").await.status,
        200
    );
    assert_eq!(send("GET", &format!("{base}/readyz"), "").await.status, 200);
    let st = send("GET", &format!("{base}/v1/status"), "").await.json();
    assert_eq!(st["ready"], true);
    assert_eq!(st["audit_records"], 0, "nothing was sent yet");
    assert_eq!(st["gateways"].as_array().unwrap().len(), 3);
    // Virginia goes away: the US has no healthy gateway, so not ready.
    fleet.gateways[2].take().unwrap().abort();
    let t = std::time::Instant::now();
    loop {
        let a = send("GET", &format!("{base}/readyz"), "").await;
        if a.status == 503 {
            assert!(a.body.contains("no healthy gateway in US"), "{}", a.body);
            break;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn observability_answers_keep_their_types_and_unknown_urls_are_json() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let base = format!("http://{}", fleet.agent.observe_addr());
    let h = send("GET", &format!("{base}/healthz"), "").await;
    assert_eq!(
        (h.status, h.header("content-type"), h.body.as_str()),
        (200, "text/plain", "ok\n")
    );
    let r = send("GET", &format!("{base}/readyz"), "").await;
    assert_eq!(
        (r.status, r.header("content-type"), r.body.lines().next()),
        (200, "text/plain", Some("ready"))
    );
    // Then one line per gateway: region, name, health and transport.
    let gateways: Vec<&str> = r.body.lines().skip(1).collect();
    assert_eq!(gateways.len(), 3, "{}", r.body);
    assert!(
        gateways.contains(&"gateway aws:ap-south-1 gw-aws-ap-south-1: healthy over quic"),
        "{}",
        r.body
    );
    let m = send("GET", &format!("{base}/metrics"), "").await;
    assert_eq!(m.header("content-type"), "text/plain; version=0.0.4");
    let s = send("GET", &format!("{base}/v1/status"), "").await;
    assert_eq!(s.header("content-type"), "application/json");
    assert_eq!(s.json()["software"], residency_agent::SOFTWARE);

    let a = send("GET", &format!("{base}/nope"), "").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.header("content-type"), "application/json");
    let e = &a.json()["error"];
    assert_eq!(e["code"], "unknown_url");
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(e["message"], "Invalid URL (GET /nope)");
    assert!(e["param"].is_null() && e.get("param").is_some());

    let a = send("POST", &format!("{base}/metrics"), "").await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), "GET,HEAD");
    let e = &a.json()["error"];
    assert_eq!(e["code"], "method_not_allowed");
    assert_eq!(e["message"], "/metrics does not accept POST");
}

#[tokio::test]
async fn admin_socket_errors_keep_their_codes() {
    use residency_agent::admin::{agent_request, agent_request_raw};
    let fleet = Fleet::start(FleetOptions::default()).await;
    let socket = fleet.agent.admin_socket();
    let get = |path: &'static str| {
        let socket = socket.clone();
        async move {
            agent_request(&socket, http::Method::GET, path, bytes::Bytes::new())
                .await
                .unwrap()
        }
    };
    let (status, v) = get("/v1/admin/nope").await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["type"], "admin_error");
    assert_eq!(v["error"]["code"], "unknown_url");
    assert_eq!(
        v["error"]["message"],
        "no admin endpoint GET /v1/admin/nope"
    );
    assert!(v["error"]["param"].is_null());

    let (status, v) = agent_request(
        &socket,
        http::Method::DELETE,
        "/v1/admin/policy",
        bytes::Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(status, 405);
    assert_eq!(v["error"]["type"], "admin_error");
    assert_eq!(v["error"]["code"], "method_not_allowed");
    assert_eq!(
        v["error"]["message"],
        "/v1/admin/policy does not accept DELETE"
    );

    // A body over the bundle limit is refused with the size in the message.
    let big = bytes::Bytes::from(vec![
        b'x';
        residency_agent::policy::active::MAX_BUNDLE_BYTES + 1
    ]);
    let (status, v) = agent_request(&socket, http::Method::PUT, "/v1/admin/policy", big)
        .await
        .unwrap();
    assert_eq!(status, 413);
    assert_eq!(v["error"]["code"], "bundle_too_large");
    let limit = residency_agent::policy::active::MAX_BUNDLE_BYTES;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("cannot read the bundle (at most {limit} bytes): ")),
        "{v}"
    );

    let (status, v) = agent_request(
        &socket,
        http::Method::PUT,
        "/v1/admin/policy",
        bytes::Bytes::from_static(b"not a bundle"),
    )
    .await
    .unwrap();
    assert_eq!(status, 409);
    assert_eq!(v["error"]["code"], "bundle_refused");

    let (status, v) = get("/v1/admin/status").await;
    assert_eq!(status, 200);
    assert_eq!(v["gateways"].as_array().unwrap().len(), 3);
    let (status, v) = get("/v1/admin/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(v["ok"], true);

    let e = agent_request_raw(&socket, "/v1/admin/audit/export?since=garbage")
        .await
        .unwrap_err();
    let residency_agent::admin::AdminError::Refused(body) = e else {
        panic!("{e}")
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "bad_time");
}

#[tokio::test]
async fn metrics_say_when_the_agents_certificate_expires() {
    // Fleet certificates from `keys gen` are valid for a year by default;
    // the metric lets an alert fire before one runs out.
    let fleet = Fleet::start(FleetOptions::default()).await;
    let s = metrics(&fleet).await;
    let not_after = counter(&s, "residency_certificate_not_after_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let days = (not_after - now) / 86_400.0;
    assert!((364.0..=366.0).contains(&days), "{days} days left");
}
