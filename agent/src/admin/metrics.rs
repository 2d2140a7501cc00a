//! Operator observability: counters kept on the request path and rendered in
//! the Prometheus text format, plus `/healthz`, `/readyz` and `/v1/status` on
//! a local-only TCP listener (127.0.0.1:9901 by default).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ingress::Body;
use crate::policy::active::PolicyState;
use crate::transport::pool::{GatewayPool, Health};

/// Upper bounds of the agent-overhead histogram, in seconds.
const BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
];

/// Counters updated on the request path.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, String, u16), u64>>,
    overhead_buckets: [AtomicU64; BUCKETS.len()],
    overhead_count: AtomicU64,
    overhead_sum_ns: AtomicU64,
    classifier_bytes: AtomicU64,
    classifier_ns: AtomicU64,
}

impl Metrics {
    /// Counts one finished request.
    pub fn request(&self, tier: &str, region: &str, decision: &str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((
            tier.to_owned(),
            region.to_owned(),
            decision.to_owned(),
            status,
        ))
        .or_insert(0) += 1;
    }

    /// Records the agent's own time on a request before it was sent on.
    pub fn overhead(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.overhead_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.overhead_count.fetch_add(1, Ordering::Relaxed);
        self.overhead_sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Records one classification.
    pub fn classified(&self, bytes: usize, d: Duration) {
        self.classifier_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.classifier_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(
        &self,
        pool: &GatewayPool,
        policy: &PolicyState,
        audit: crate::audit::WriterStats,
    ) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP residency_requests_total Requests finished, by tier, region, decision and status.");
        let _ = writeln!(s, "# TYPE residency_requests_total counter");
        for ((tier, region, decision, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                s,
                "residency_requests_total{{tier=\"{tier}\",region=\"{region}\",decision=\"{decision}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(s, "# HELP residency_agent_overhead_seconds Time the agent spent on a request before sending it on (read, classify, decide).");
        let _ = writeln!(s, "# TYPE residency_agent_overhead_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "residency_agent_overhead_seconds_bucket{{le=\"{b}\"}} {}",
                self.overhead_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.overhead_count.load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "residency_agent_overhead_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "residency_agent_overhead_seconds_sum {}",
            self.overhead_sum_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(s, "residency_agent_overhead_seconds_count {count}");
        let _ = writeln!(
            s,
            "# HELP residency_classifier_bytes_total Bytes of request bodies classified."
        );
        let _ = writeln!(s, "# TYPE residency_classifier_bytes_total counter");
        let _ = writeln!(
            s,
            "residency_classifier_bytes_total {}",
            self.classifier_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP residency_classifier_seconds_total Time spent classifying."
        );
        let _ = writeln!(s, "# TYPE residency_classifier_seconds_total counter");
        let _ = writeln!(
            s,
            "residency_classifier_seconds_total {}",
            self.classifier_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(s, "# HELP residency_policy_version Active signed policy version (0: built-in baseline or none).");
        let _ = writeln!(s, "# TYPE residency_policy_version gauge");
        let _ = writeln!(
            s,
            "residency_policy_version {}",
            policy.version().unwrap_or(0)
        );
        let _ = writeln!(s, "# HELP residency_policy_refused_total Policy bundles refused (bad signature, unknown key, rollback, ...).");
        let _ = writeln!(s, "# TYPE residency_policy_refused_total counter");
        let _ = writeln!(s, "residency_policy_refused_total {}", policy.refused());
        let _ = writeln!(
            s,
            "# HELP residency_gateway_up Gateway link healthy (1) or not (0)."
        );
        let _ = writeln!(s, "# TYPE residency_gateway_up gauge");
        for l in pool.links().iter() {
            let _ = writeln!(
                s,
                "residency_gateway_up{{region=\"{}\",endpoint=\"{}\",state=\"{}\"}} {}",
                l.region,
                l.name,
                l.health().as_str(),
                u8::from(l.health() == Health::Healthy)
            );
        }
        let _ = writeln!(
            s,
            "# HELP residency_gateway_rtt_seconds Control-stream round trip (moving average)."
        );
        let _ = writeln!(s, "# TYPE residency_gateway_rtt_seconds gauge");
        for l in pool.links().iter() {
            if let Some(rtt) = l.rtt() {
                let _ = writeln!(
                    s,
                    "residency_gateway_rtt_seconds{{region=\"{}\",endpoint=\"{}\"}} {}",
                    l.region,
                    l.name,
                    rtt.as_secs_f64()
                );
            }
        }
        for (name, help, f) in [
            (
                "residency_gateway_requests_total",
                "Requests sent to a gateway.",
                0,
            ),
            (
                "residency_gateway_failures_total",
                "Requests that failed on a gateway before a response started.",
                1,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} counter");
            for l in pool.links().iter() {
                let v = if f == 0 { &l.requests } else { &l.failures };
                let _ = writeln!(
                    s,
                    "{name}{{region=\"{}\",endpoint=\"{}\"}} {}",
                    l.region,
                    l.name,
                    v.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP residency_audit_write_lag_seconds Time from append to durable, last batch."
        );
        let _ = writeln!(s, "# TYPE residency_audit_write_lag_seconds gauge");
        let _ = writeln!(
            s,
            "residency_audit_write_lag_seconds {}",
            audit.last_write_lag.as_secs_f64()
        );
        // Records per group (records / batches) is how far one flush and
        // fsync are shared.
        for (name, help, n) in [
            (
                "residency_audit_records_total",
                "Audit records made durable.",
                audit.records,
            ),
            (
                "residency_audit_batches_total",
                "Audit group commits made durable (one flush and fsync each).",
                audit.batches,
            ),
            (
                "residency_audit_failed_batches_total",
                "Audit group commits that failed.",
                audit.failed_batches,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} counter");
            let _ = writeln!(s, "{name} {n}");
        }
        s
    }
}

/// What the observability listener serves.
#[derive(Debug)]
pub struct Observe {
    /// Request counters.
    pub metrics: Arc<Metrics>,
    /// Gateway links.
    pub pool: Arc<GatewayPool>,
    /// Policy state.
    pub policy: Arc<PolicyState>,
    /// Audit writer (for its lag).
    pub audit: crate::audit::AuditWriter,
}

fn text(status: StatusCode, ctype: &'static str, body: String) -> http::Response<Body> {
    let mut r = http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ctype),
    );
    r
}

impl Observe {
    /// Ready: a policy is active and every jurisdiction the configured
    /// gateways serve has at least one healthy gateway.
    fn readiness(&self) -> (bool, Vec<String>) {
        let mut problems = Vec::new();
        if self.policy.current().is_none() {
            problems.push("no policy is active".to_owned());
        }
        let mut by_j: BTreeMap<String, bool> = BTreeMap::new();
        for l in self.pool.links().iter() {
            let j = l
                .jurisdiction
                .map_or_else(|| "unknown".to_owned(), |j| j.to_string());
            *by_j.entry(j).or_insert(false) |= l.health() == Health::Healthy;
        }
        for (j, ok) in by_j {
            if !ok {
                problems.push(format!("no healthy gateway in {j}"));
            }
        }
        (problems.is_empty(), problems)
    }

    async fn handle(&self, method: &Method, path: &str) -> http::Response<Body> {
        match (method, path) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
            (&Method::GET, "/readyz") => {
                let (ready, problems) = self.readiness();
                if ready {
                    text(StatusCode::OK, "text/plain", "ready\n".into())
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        format!("not ready: {}\n", problems.join("; ")),
                    )
                }
            }
            (&Method::GET, "/metrics") => text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics
                    .render(&self.pool, &self.policy, self.audit.stats()),
            ),
            (&Method::GET, "/v1/status") => {
                let (ready, problems) = self.readiness();
                let audit = self.audit.stats();
                let gateways: Vec<serde_json::Value> = self
                    .pool
                    .links()
                    .iter()
                    .map(|l| {
                        json!({
                            "region": l.region.as_str(),
                            "endpoint": l.name,
                            "address": l.address,
                            "health": l.health().as_str(),
                            "rtt_ms": l.rtt().map(|d| d.as_secs_f64() * 1e3),
                            "requests": l.requests.load(Ordering::Relaxed),
                            "failures": l.failures.load(Ordering::Relaxed),
                        })
                    })
                    .collect();
                let body = json!({
                    "software": crate::SOFTWARE,
                    "ready": ready,
                    "problems": problems,
                    "policy_version": self.policy.version(),
                    "policy_refused": self.policy.refused(),
                    "gateways": gateways,
                    "audit_write_lag_ms": audit.last_write_lag.as_secs_f64() * 1e3,
                    "audit_records": audit.records,
                    "audit_batches": audit.batches,
                });
                text(StatusCode::OK, "application/json", body.to_string())
            }
            _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        }
    }
}

/// Binds the observability listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/healthz`, `/readyz`, `/metrics` and `/v1/status` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    observe: Arc<Observe>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let observe = observe.clone();
        super::serve_connection(&tracker, tcp, move |req| {
            let observe = observe.clone();
            async move { observe.handle(req.method(), req.uri().path()).await }
        });
    }
}
