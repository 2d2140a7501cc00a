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
