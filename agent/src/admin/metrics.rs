//! Operator observability: counters kept on the request path and rendered in
//! the Prometheus text format, plus `/healthz`, `/readyz` and `/v1/status` on
//! a local-only TCP listener (127.0.0.1:9901 by default).
//!
//! Request-path metrics live in a `prometheus-client` registry; gateway,
//! policy and audit figures are read from their owners at scrape time.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, Method, StatusCode, Uri};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use residency_proto::Tier;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::WriterStats;
use crate::policy::active::PolicyState;
use crate::transport::pool::{GatewayPool, Health};

/// Upper bounds of the agent-overhead histogram, in seconds.
const BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
];

/// Decisions the request path records (`x-residency-decision`).
const DECISIONS: [&str; 4] = ["allow", "deny", "no_route", "error"];

/// Labels of `residency_requests_total`, rendered in field order. Tier and
/// decision come from fixed sets and are static strings; building one
/// allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    tier: Cow<'static, str>,
    region: RegionLabel,
    decision: Cow<'static, str>,
    status: u16,
}

/// A label value from a fixed set: the static string when it is one of
/// `known`, a copy otherwise.
fn fixed(value: &str, known: impl IntoIterator<Item = &'static str>) -> Cow<'static, str> {
    known
        .into_iter()
        .find(|k| *k == value)
        .map_or_else(|| Cow::Owned(value.to_owned()), Cow::Borrowed)
}

/// Room for any valid region id (`RegionId` allows at most 64 bytes).
const REGION_INLINE: usize = 64;

/// A region label held inline, so counting a request allocates nothing; a
/// longer value (never a valid region id) goes on the heap.
#[derive(Clone)]
enum RegionLabel {
    Inline { len: u8, bytes: [u8; REGION_INLINE] },
    Heap(Box<str>),
}

impl RegionLabel {
    fn new(s: &str) -> Self {
        if s.len() > REGION_INLINE {
            return RegionLabel::Heap(s.into());
        }
        let mut bytes = [0; REGION_INLINE];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        RegionLabel::Inline {
            len: s.len() as u8,
            bytes,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Always a whole `&str` copied in `new`, so always UTF-8.
            RegionLabel::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            RegionLabel::Heap(s) => s,
        }
    }
}

impl PartialEq for RegionLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RegionLabel {}

impl std::hash::Hash for RegionLabel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for RegionLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl EncodeLabelValue for RegionLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Metrics updated on the request path.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    overhead: Histogram,
    classifier_bytes: Counter,
    classifier_seconds: Counter<f64, AtomicU64>,
    /// When the agent's own certificate expires (Unix seconds; 0 unknown).
    pub cert_not_after: Gauge,
    connections_open: Family<ListenerLabel, Gauge>,
    connections_refused: Family<ConnLabels, Counter>,
    connections_closed: Family<ConnLabels, Counter>,
}

/// `listener` label: `api`, `observe` or `admin`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

/// Labels of `residency_connections_refused_total` and
/// `residency_connections_closed_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConnLabels {
    listener: &'static str,
    reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let overhead = Histogram::new(BUCKETS);
        let classifier_bytes = Counter::default();
        let classifier_seconds = Counter::<f64, AtomicU64>::default();
        // Names without `_total` and help without the final full stop: the
        // registry adds both.
        let mut registry = Registry::default();
        registry.register(
            "residency_requests",
            "Requests finished, by tier, region, decision and status",
            requests.clone(),
        );
        registry.register(
            "residency_agent_overhead_seconds",
            "Time the agent spent on a request before sending it on (read, classify, decide)",
            overhead.clone(),
        );
        registry.register(
            "residency_classifier_bytes",
            "Bytes of request bodies classified",
            classifier_bytes.clone(),
        );
        registry.register(
            "residency_classifier_seconds",
            "Time spent classifying",
            classifier_seconds.clone(),
        );
        let cert_not_after = Gauge::default();
        registry.register(
            "residency_certificate_not_after_seconds",
            "When the agent's own fleet certificate expires, in seconds since the Unix epoch",
            cert_not_after.clone(),
        );
        let connections_open = Family::<ListenerLabel, Gauge>::default();
        registry.register(
            "residency_connections_open",
            "HTTP connections open now, by listener (api, observe, admin)",
            connections_open.clone(),
        );
        let connections_refused = Family::<ConnLabels, Counter>::default();
        registry.register(
            "residency_connections_refused",
            "HTTP connections refused at accept with a 503 (reason full) or a 429 (reason peer), by listener",
            connections_refused.clone(),
        );
        let connections_closed = Family::<ConnLabels, Counter>::default();
        registry.register(
            "residency_connections_closed",
            "HTTP connections the agent closed, by listener and reason: timed_out (no request, or its headers, in time), evicted_idle (idle, to make room for a new one)",
            connections_closed.clone(),
        );
        Metrics {
            registry,
            requests,
            overhead,
            classifier_bytes,
            classifier_seconds,
            cert_not_after,
            connections_open,
            connections_refused,
            connections_closed,
        }
    }
}

impl Metrics {
    /// The connection counters of one listener (`api`, `observe`, `admin`).
    pub fn listener(&self, listener: &'static str) -> crate::serve::ConnCounters {
        let refused = |reason| {
            self.connections_refused
                .get_or_create(&ConnLabels { listener, reason })
                .clone()
        };
        let closed = |reason| {
            self.connections_closed
                .get_or_create(&ConnLabels { listener, reason })
                .clone()
        };
        crate::serve::ConnCounters {
            open: self
                .connections_open
                .get_or_create(&ListenerLabel { listener })
                .clone(),
            refused_full: refused("full"),
            refused_peer: refused("peer"),
            timed_out: closed("timed_out"),
            evicted: closed("evicted_idle"),
        }
    }

    /// Counts one finished request.
    pub fn request(&self, tier: &str, region: &str, decision: &str, status: u16) {
        let labels = RequestLabels {
            tier: fixed(tier, Tier::ALL.map(Tier::as_str)),
            region: RegionLabel::new(region),
            decision: fixed(decision, DECISIONS),
            status,
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// Records the agent's own time on a request before it was sent on.
    pub fn overhead(&self, d: Duration) {
        self.overhead.observe(d.as_secs_f64());
    }

    /// Records one classification.
    pub fn classified(&self, bytes: usize, d: Duration) {
        self.classifier_bytes.inc_by(bytes as u64);
        self.classifier_seconds.inc_by(d.as_secs_f64());
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, pool: &GatewayPool, policy: &PolicyState, audit: WriterStats) -> String {
        self.render_with(StateSample::take(pool, policy, audit))
    }

    fn render_with(&self, sample: StateSample) -> String {
        let mut state = Registry::default();
        state.register_collector(Box::new(sample));
        let mut s = String::new();
        // Writing to a String cannot fail, and no label value refuses to
        // encode.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut s, &self.registry);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut s, &state);
        s
    }
}

/// Gateway, policy and audit figures read at one scrape.
#[derive(Debug)]
struct StateSample {
    policy_version: u64,
    policy_refused: u64,
    links: Vec<LinkSample>,
    audit: WriterStats,
}

/// One gateway link at one scrape.
#[derive(Debug)]
struct LinkSample {
    region: String,
    endpoint: String,
    health: Health,
    transport: Option<&'static str>,
    rtt: Option<Duration>,
    requests: u64,
    failures: u64,
}

impl StateSample {
    fn take(pool: &GatewayPool, policy: &PolicyState, audit: WriterStats) -> Self {
        StateSample {
            policy_version: policy.version().unwrap_or(0),
            policy_refused: policy.refused(),
            links: pool
                .links()
                .iter()
                .map(|l| LinkSample {
                    region: l.region.to_string(),
                    endpoint: l.name.clone(),
                    health: l.health(),
                    transport: l.transport().map(|t| t.as_str()),
                    rtt: l.rtt(),
                    requests: l.requests.load(Ordering::Relaxed),
                    failures: l.failures.load(Ordering::Relaxed),
                })
                .collect(),
            audit,
        }
    }
}

impl Collector for StateSample {
    // Help is written as given here (no full stop is added); counter names
    // get `_total` from the encoder.
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let v = ConstGauge::new(self.policy_version);
        v.encode(encoder.encode_descriptor(
            "residency_policy_version",
            "Active signed policy version (0: built-in baseline or none).",
            None,
            v.metric_type(),
        )?)?;
        let v = ConstCounter::new(self.policy_refused);
        v.encode(encoder.encode_descriptor(
            "residency_policy_refused",
            "Policy bundles refused (bad signature, unknown key, rollback, ...).",
            None,
            v.metric_type(),
        )?)?;

        let mut family = encoder.encode_descriptor(
            "residency_gateway_up",
            "Gateway link healthy (1) or not (0).",
            None,
            MetricType::Gauge,
        )?;
        for l in &self.links {
            let labels = [
                ("region", l.region.as_str()),
                ("endpoint", l.endpoint.as_str()),
                ("state", l.health.as_str()),
            ];
            ConstGauge::new(u64::from(l.health == Health::Healthy))
                .encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "residency_gateway_transport",
            "Transport of a connected gateway link (1 on the transport in use: quic, or h2 after a fallback).",
            None,
            MetricType::Gauge,
        )?;
        for l in &self.links {
            if let Some(t) = l.transport {
                let labels = [
                    ("region", l.region.as_str()),
                    ("endpoint", l.endpoint.as_str()),
                    ("transport", t),
                ];
                ConstGauge::new(1).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "residency_gateway_rtt_seconds",
            "Control-stream round trip (moving average).",
            None,
            MetricType::Gauge,
        )?;
        for l in &self.links {
            if let Some(rtt) = l.rtt {
                let labels = [
                    ("region", l.region.as_str()),
                    ("endpoint", l.endpoint.as_str()),
                ];
                ConstGauge::new(rtt.as_secs_f64()).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, value) in [
            (
                "residency_gateway_requests",
                "Requests sent to a gateway.",
                (|l: &LinkSample| l.requests) as fn(&LinkSample) -> u64,
            ),
            (
                "residency_gateway_failures",
                "Requests that failed on a gateway before a response started.",
                |l: &LinkSample| l.failures,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for l in &self.links {
                let labels = [
                    ("region", l.region.as_str()),
                    ("endpoint", l.endpoint.as_str()),
                ];
                ConstCounter::new(value(l)).encode(family.encode_family(&labels)?)?;
            }
        }

        let v = ConstGauge::new(self.audit.last_write_lag.as_secs_f64());
        v.encode(encoder.encode_descriptor(
            "residency_audit_write_lag_seconds",
            "Time from append to durable, last batch.",
            None,
            v.metric_type(),
        )?)?;
        // Records per group (records / batches) is how far one flush and
        // fsync are shared.
        for (name, help, n) in [
            (
                "residency_audit_records",
                "Audit records made durable.",
                self.audit.records,
            ),
            (
                "residency_audit_batches",
                "Audit group commits made durable (one flush and fsync each).",
                self.audit.batches,
            ),
            (
                "residency_audit_failed_batches",
                "Audit group commits that failed.",
                self.audit.failed_batches,
            ),
        ] {
            let v = ConstCounter::new(n);
            v.encode(encoder.encode_descriptor(name, help, None, v.metric_type())?)?;
        }
        Ok(())
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
}

/// The listener's endpoints; any other path is a 404, a known path with
/// another method a 405, both with the error JSON the admin socket uses.
fn router(observe: Arc<Observe>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .fallback(unknown_url)
        .method_not_allowed_fallback(wrong_method)
        .with_state(observe)
}

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, ctype)], body).into_response()
}

async fn healthz() -> Response {
    text(StatusCode::OK, "text/plain", "ok\n".into())
}

/// `ready` or `not ready: why`, then one line per gateway: its region,
/// name, health and the transport it is connected over.
async fn readyz(State(observe): State<Arc<Observe>>) -> Response {
    let (ready, problems) = observe.readiness();
    let mut body = if ready {
        "ready\n".to_owned()
    } else {
        format!("not ready: {}\n", problems.join("; "))
    };
    for l in observe.pool.links().iter() {
        body.push_str(&format!(
            "gateway {} {}: {} over {}\n",
            l.region,
            l.name,
            l.health().as_str(),
            l.transport().map_or("nothing", |t| t.as_str())
        ));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(status, "text/plain", body)
}

async fn metrics(State(observe): State<Arc<Observe>>) -> Response {
    text(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        observe
            .metrics
            .render(&observe.pool, &observe.policy, observe.audit.stats()),
    )
}

/// One gateway link as `/v1/status` and the admin socket's status show it:
/// where it is, whether it is up and healthy, its round trip, its counts,
/// and why the last connection attempt failed while it is down.
pub(crate) fn gateway_status(l: &crate::transport::pool::GatewayLink) -> serde_json::Value {
    let list = l.models();
    // `"any"` for a gateway without a model map; else name -> where processed.
    let models = if list.open {
        json!("any")
    } else {
        list.models
            .iter()
            .map(|m| (m.name.clone(), json!(m.processing.to_string())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "region": l.region.as_str(),
        "endpoint": l.name,
        "address": l.address,
        "up": l.is_up(),
        "transport": l.transport().map(|t| t.as_str()),
        "health": l.health().as_str(),
        "rtt_ms": l.rtt().map(|d| d.as_secs_f64() * 1e3),
        "requests": l.requests.load(Ordering::Relaxed),
        "failures": l.failures.load(Ordering::Relaxed),
        "last_error": l.last_error(),
        "models": models,
    })
}

async fn status(State(observe): State<Arc<Observe>>) -> Response {
    let (ready, problems) = observe.readiness();
    let audit = observe.audit.stats();
    let gateways: Vec<serde_json::Value> = observe
        .pool
        .links()
        .iter()
        .map(|l| gateway_status(l))
        .collect();
    let body = json!({
        "software": crate::SOFTWARE,
        "ready": ready,
        "problems": problems,
        "policy_version": observe.policy.version(),
        "policy_refused": observe.policy.refused(),
        "gateways": gateways,
        "audit_write_lag_ms": audit.last_write_lag.as_secs_f64() * 1e3,
        "audit_records": audit.records,
        "audit_batches": audit.batches,
    });
    text(StatusCode::OK, "application/json", body.to_string())
}

async fn unknown_url(method: Method, uri: Uri) -> Response {
    super::json_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unknown_url",
        format!("Invalid URL ({method} {})", uri.path()),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    super::json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}

/// Binds the observability listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/healthz`, `/readyz`, `/metrics` and `/v1/status` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    observe: Arc<Observe>,
    limits: crate::serve::Limits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let counters = observe.metrics.listener("observe");
    crate::serve::serve(
        listener,
        router(observe),
        limits,
        counters,
        shutdown,
        tracker,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StateSample {
        StateSample {
            policy_version: 7,
            policy_refused: 2,
            links: vec![
                LinkSample {
                    region: "aws:ap-south-1".into(),
                    endpoint: "mumbai-1".into(),
                    health: Health::Healthy,
                    transport: Some("h2"),
                    rtt: Some(Duration::from_micros(1500)),
                    requests: 5,
                    failures: 1,
                },
                LinkSample {
                    region: "aws:us-east-1".into(),
                    endpoint: "virginia-1".into(),
                    health: Health::Down,
                    transport: None,
                    rtt: None,
                    requests: 0,
                    failures: 0,
                },
            ],
            audit: WriterStats {
                batches: 3,
                records: 4,
                failed_batches: 0,
                last_write_lag: Duration::from_millis(2),
                ..WriterStats::default()
            },
        }
    }

    /// The value of the one sample line starting with `series` (name and
    /// labels, as rendered).
    fn value(text: &str, series: &str) -> f64 {
        let mut found = text
            .lines()
            .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse::<f64>().unwrap());
        let v = found
            .next()
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(found.next().is_none(), "{series} twice");
        v
    }

    #[test]
    fn renders_the_documented_exposition() {
        let m = Metrics::default();
        m.request("public", "aws:us-east-1", "allow", 200);
        m.request("public", "aws:us-east-1", "allow", 200);
        m.overhead(Duration::from_micros(300));
        m.overhead(Duration::from_millis(2));
        m.overhead(Duration::from_micros(100));
        m.classified(120, Duration::from_micros(40));
        let want = "\
# HELP residency_requests_total Requests finished, by tier, region, decision and status.
# TYPE residency_requests_total counter
residency_requests_total{tier=\"public\",region=\"aws:us-east-1\",decision=\"allow\",status=\"200\"} 2
# HELP residency_agent_overhead_seconds Time the agent spent on a request before sending it on (read, classify, decide).
# TYPE residency_agent_overhead_seconds histogram
residency_agent_overhead_seconds_bucket{le=\"0.0001\"} 1
residency_agent_overhead_seconds_bucket{le=\"0.00025\"} 1
residency_agent_overhead_seconds_bucket{le=\"0.0005\"} 2
residency_agent_overhead_seconds_bucket{le=\"0.001\"} 2
residency_agent_overhead_seconds_bucket{le=\"0.0025\"} 3
residency_agent_overhead_seconds_bucket{le=\"0.005\"} 3
residency_agent_overhead_seconds_bucket{le=\"0.01\"} 3
residency_agent_overhead_seconds_bucket{le=\"0.025\"} 3
residency_agent_overhead_seconds_bucket{le=\"0.1\"} 3
residency_agent_overhead_seconds_bucket{le=\"1\"} 3
residency_agent_overhead_seconds_bucket{le=\"+Inf\"} 3
residency_agent_overhead_seconds_sum 0.0024
residency_agent_overhead_seconds_count 3
# HELP residency_classifier_bytes_total Bytes of request bodies classified.
# TYPE residency_classifier_bytes_total counter
residency_classifier_bytes_total 120
# HELP residency_classifier_seconds_total Time spent classifying.
# TYPE residency_classifier_seconds_total counter
residency_classifier_seconds_total 0.00004
# HELP residency_certificate_not_after_seconds When the agent's own fleet certificate expires, in seconds since the Unix epoch.
# TYPE residency_certificate_not_after_seconds gauge
residency_certificate_not_after_seconds 0
# HELP residency_policy_version Active signed policy version (0: built-in baseline or none).
# TYPE residency_policy_version gauge
residency_policy_version 7
# HELP residency_policy_refused_total Policy bundles refused (bad signature, unknown key, rollback, ...).
# TYPE residency_policy_refused_total counter
residency_policy_refused_total 2
# HELP residency_gateway_up Gateway link healthy (1) or not (0).
# TYPE residency_gateway_up gauge
residency_gateway_up{region=\"aws:ap-south-1\",endpoint=\"mumbai-1\",state=\"healthy\"} 1
residency_gateway_up{region=\"aws:us-east-1\",endpoint=\"virginia-1\",state=\"down\"} 0
# HELP residency_gateway_transport Transport of a connected gateway link (1 on the transport in use: quic, or h2 after a fallback).
# TYPE residency_gateway_transport gauge
residency_gateway_transport{region=\"aws:ap-south-1\",endpoint=\"mumbai-1\",transport=\"h2\"} 1
# HELP residency_gateway_rtt_seconds Control-stream round trip (moving average).
# TYPE residency_gateway_rtt_seconds gauge
residency_gateway_rtt_seconds{region=\"aws:ap-south-1\",endpoint=\"mumbai-1\"} 0.0015
# HELP residency_gateway_requests_total Requests sent to a gateway.
# TYPE residency_gateway_requests_total counter
residency_gateway_requests_total{region=\"aws:ap-south-1\",endpoint=\"mumbai-1\"} 5
residency_gateway_requests_total{region=\"aws:us-east-1\",endpoint=\"virginia-1\"} 0
# HELP residency_gateway_failures_total Requests that failed on a gateway before a response started.
# TYPE residency_gateway_failures_total counter
residency_gateway_failures_total{region=\"aws:ap-south-1\",endpoint=\"mumbai-1\"} 1
residency_gateway_failures_total{region=\"aws:us-east-1\",endpoint=\"virginia-1\"} 0
# HELP residency_audit_write_lag_seconds Time from append to durable, last batch.
# TYPE residency_audit_write_lag_seconds gauge
residency_audit_write_lag_seconds 0.002
# HELP residency_audit_records_total Audit records made durable.
# TYPE residency_audit_records_total counter
residency_audit_records_total 4
# HELP residency_audit_batches_total Audit group commits made durable (one flush and fsync each).
# TYPE residency_audit_batches_total counter
residency_audit_batches_total 3
# HELP residency_audit_failed_batches_total Audit group commits that failed.
# TYPE residency_audit_failed_batches_total counter
residency_audit_failed_batches_total 0
";
        let got = m.render_with(sample());
        // Sums are float additions: compare the value, then the rest as text.
        assert!((value(&got, "residency_agent_overhead_seconds_sum") - 0.0024).abs() < 1e-12);
        let strip = |t: &str| -> String {
            t.lines()
                .filter(|l| !l.starts_with("residency_agent_overhead_seconds_sum "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&got), strip(want));
    }

    #[test]
    fn connection_counters_are_exported_per_listener() {
        let m = Metrics::default();
        let api = m.listener("api");
        api.open.inc();
        api.refused_full.inc();
        api.evicted.inc();
        api.evicted.inc();
        m.listener("admin").timed_out.inc();
        let got = m.render_with(sample());
        for line in [
            r#"residency_connections_open{listener="api"} 1"#,
            r#"residency_connections_refused_total{listener="api",reason="full"} 1"#,
            r#"residency_connections_refused_total{listener="api",reason="peer"} 0"#,
            r#"residency_connections_closed_total{listener="api",reason="evicted_idle"} 2"#,
            r#"residency_connections_closed_total{listener="admin",reason="timed_out"} 1"#,
        ] {
            assert!(got.lines().any(|l| l == line), "{line} missing:\n{got}");
        }
    }

    #[test]
    fn requests_are_counted_per_label_set() {
        let m = Metrics::default();
        for _ in 0..3 {
            m.request("restricted", "aws:ap-south-1", "allow", 200);
        }
        m.request("public", "", "error", 400);
        m.request("public", "", "error", 400);
        m.request("confidential", "", "no_route", 503);
        // Outside the fixed sets and longer than any region id: kept as given.
        let long = format!("x:{}", "r".repeat(80));
        m.request("odd-tier", &long, "odd-decision", 500);
        let got = m.render_with(sample());
        let series = |tier: &str, region: &str, decision: &str, status: u16| {
            format!("residency_requests_total{{tier=\"{tier}\",region=\"{region}\",decision=\"{decision}\",status=\"{status}\"}}")
        };
        assert_eq!(
            value(&got, &series("restricted", "aws:ap-south-1", "allow", 200)),
            3.0
        );
        assert_eq!(value(&got, &series("public", "", "error", 400)), 2.0);
        assert_eq!(
            value(&got, &series("confidential", "", "no_route", 503)),
            1.0
        );
        assert_eq!(
            value(&got, &series("odd-tier", &long, "odd-decision", 500)),
            1.0
        );
        let n = got
            .lines()
            .filter(|l| l.starts_with("residency_requests_total{"))
            .count();
        assert_eq!(n, 4, "{got}");
    }

    #[test]
    fn no_name_is_suffixed_twice_and_there_is_no_eof() {
        let got = Metrics::default().render_with(sample());
        assert!(!got.contains("_total_total"), "{got}");
        assert!(!got.contains("# EOF"), "{got}");
        // Every sample's family was declared.
        for l in got.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = name
                .strip_suffix("_bucket")
                .or_else(|| name.strip_suffix("_sum"))
                .or_else(|| name.strip_suffix("_count"))
                .unwrap_or(name);
            assert!(got.contains(&format!("# TYPE {family} ")), "{l}");
        }
    }

    #[test]
    fn region_labels_compare_by_value() {
        let a = RegionLabel::new("aws:ap-south-1");
        assert_eq!(a.as_str(), "aws:ap-south-1");
        assert_eq!(a, RegionLabel::new("aws:ap-south-1"));
        assert_ne!(a, RegionLabel::new("aws:ap-south-2"));
        assert_eq!(RegionLabel::new("").as_str(), "");
        let long = "p:".to_owned() + &"r".repeat(REGION_INLINE);
        assert_eq!(RegionLabel::new(&long).as_str(), long);
        let edge = "r".repeat(REGION_INLINE);
        assert_eq!(RegionLabel::new(&edge).as_str(), edge);
    }
}
