//! The application-facing side: OpenAI-compatible HTTP/1.1 on loopback (or a
//! branch LAN address). [`walk`] takes one request through its stages, each
//! in the module named for it: [`read`], [`crate::classify`],
//! [`crate::plan`], [`crate::transport::forward`], [`respond`]. The answer
//! streams back as it arrives.

pub mod error;
pub mod read;
pub mod respond;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::Method;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use residency_proto::{Codec, Tier};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::audit::AuditWriter;
pub use crate::body::{Body, BodyError};
use crate::classify::{Classifier, RequestClassification, UnscannableBody};
use crate::plan::{self, Env, Facts, InForce, Router};
use crate::policy::active::{ActivePolicy, PolicyState};
use crate::transport::forward::{self, Outbound};
use crate::transport::pool::GatewayPool;
use error::ApiError;
use read::{Arrival, Probe, Request};
use respond::{Known, Refused};

/// Header: the agent's id for the request.
pub const HDR_REQUEST_ID: &str = "x-residency-request-id";
/// Header: the sensitivity tier found.
pub const HDR_TIER: &str = "x-residency-tier";
/// Header: the region that served the request.
pub const HDR_REGION: &str = "x-residency-region";
/// Header: the gateway endpoint that served the request.
pub const HDR_ENDPOINT: &str = "x-residency-endpoint";
/// Header: what was decided (`allow`, `deny`, `no_route`, `error`).
pub const HDR_DECISION: &str = "x-residency-decision";
/// Header: the rule that decided.
pub const HDR_RULE: &str = "x-residency-rule";
/// Header: the policy version in force (`builtin` or `none` without one).
pub const HDR_POLICY: &str = "x-residency-policy";

/// What the ingress needs to serve requests.
#[derive(Debug)]
pub struct Ingress {
    pub(crate) pool: Arc<GatewayPool>,
    pub(crate) router: Router,
    pub(crate) catalogue: crate::plan::catalogue::Catalogue,
    pub(crate) classifier: Arc<Classifier>,
    pub(crate) unscannable_tier: Tier,
    pub(crate) policy: Arc<PolicyState>,
    pub(crate) geo: Arc<crate::geo::Geo>,
    pub(crate) pins: Arc<crate::plan::pin::Pins>,
    pub(crate) audit: AuditWriter,
    pub(crate) audit_sync: bool,
    pub(crate) metrics: Arc<crate::admin::metrics::Metrics>,
    pub(crate) codec: Codec,
    pub(crate) max_body: usize,
}

impl Ingress {
    /// What the decision core needs of this configuration.
    fn env<'a>(&'a self, policy: Option<&'a ActivePolicy>) -> Env<'a> {
        Env {
            policy: policy.map(|p| InForce {
                policy: &p.policy,
                version: p.version,
            }),
            router: &self.router,
            catalogue: &self.catalogue,
            geo: &self.geo,
            pins: Some(&self.pins),
        }
    }
}

/// Accepts HTTP connections until `shutdown`, then stops accepting and lets
/// open requests finish (tracked by `tracker`).
pub async fn serve(
    listener: TcpListener,
    ingress: Arc<arc_swap::ArcSwap<Ingress>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let ingress = ingress.clone();
        let svc = hyper::service::service_fn(move |req| {
            // Each request runs under the configuration it started with.
            let ingress = ingress.load_full();
            async move { Ok::<_, Infallible>(handle(&ingress, req, peer).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(tcp), svc);
        let conn = graceful.watch(conn);
        tracker.spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "http connection ended with error");
            }
        });
    }
    tracker.spawn(graceful.shutdown());
}

/// Serves one request; every outcome is a response.
pub async fn handle(
    ingress: &Ingress,
    req: http::Request<Incoming>,
    peer: SocketAddr,
) -> http::Response<Body> {
    if req.uri().path() == "/healthz" && req.method() == Method::GET {
        // Liveness of the request path itself (the systemd watchdog asks);
        // not a model request, so not audited.
        return ApiError::healthy();
    }
    let arrival = Arrival::new(&ingress.geo, &req, peer);
    match walk(ingress, &arrival, req).await {
        Ok(resp) => resp,
        Err(refused) => respond::refused(ingress, &arrival, refused).await,
    }
}

/// One request, start to end: read, classify, plan, forward, respond. Each
/// stage lives in the module named for it; what a stage learns is kept for
/// the one audit record the respond stage writes.
async fn walk(
    ingress: &Ingress,
    arrival: &Arrival,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Refused> {
    let mut known = Known::default();
    let policy = ingress.policy.current();
    let request = match read::request(req, ingress.max_body).await {
        Ok(r) => r,
        Err(e) => return Err(known.refuse(e)),
    };
    known.bytes_in = request.body.len() as u64;
    let (classified, probe) = match classify(ingress, policy.as_deref(), &request) {
        Ok(c) => c,
        Err(e) => return Err(known.refuse(e)),
    };
    let facts = Facts {
        classification: &classified,
        model: probe.model(),
        user: probe.user(),
        headers: &request.decision_headers,
        client: Some(arrival.client.ip()),
        now: Instant::now(),
        explain: false,
    };
    let planned = plan::plan(&facts, &ingress.env(policy.as_deref()));
    known.classified = Some(classified.clone());
    let plan = match planned {
        Ok(p) => p,
        Err(r) => {
            known.decided = Some(r.decided.clone());
            return Err(known.refuse(ApiError::from_refusal(&r)));
        }
    };
    known.decided = Some(plan.decided.clone());
    if plan.decided.tier > Tier::Public {
        // Types and counts only: never the values.
        info!(request_id = %arrival.id, tier = %plan.decided.tier, entities = %classified.summary(), unscannable = ?classified.unscannable, rule = %plan.decided.rule, "classified");
    }
    ingress.metrics.overhead(arrival.started.elapsed());
    let out = Outbound {
        request_id: &arrival.id,
        method: arrival.method.as_str(),
        path: &request.path_and_query,
        headers: &request.forwarded,
        body: &request.body,
    };
    let answer = match forward::forward(&ingress.pool, &ingress.codec, &plan, out).await {
        Ok(a) => a,
        Err(e) => return Err(known.refuse(ApiError::from_forward(&e, &plan))),
    };
    if let Some(key) = plan.pin {
        // A conversation that carried restricted data stays where it went.
        let env = ingress.env(policy.as_deref());
        if let Some(j) = plan::jurisdiction_of(&env, &answer.link.region) {
            ingress.pins.pin(key, j, facts.now);
        }
    }
    Ok(respond::answer(ingress, arrival, known, &plan, answer))
}

/// The classify stage: every byte that leaves is judged, the body and the
/// headers forwarded with it. A body that is not one JSON object is refused
/// here, with where it breaks.
fn classify(
    ingress: &Ingress,
    policy: Option<&ActivePolicy>,
    request: &Request,
) -> Result<(RequestClassification, Probe), ApiError> {
    if !request.api.has_body() {
        return Ok((RequestClassification::default(), Probe::default()));
    }
    let unscannable_tier = policy.map_or(ingress.unscannable_tier, |p| p.policy.unscannable_tier());
    let t = Instant::now();
    let scanned = ingress.classifier.scan_request_with_headers(
        &request.body,
        &read::header_pairs(&request.forwarded),
        unscannable_tier,
    );
    ingress.metrics.classified(request.body.len(), t.elapsed());
    match scanned {
        Ok(c) => Ok((c, read::probe(&request.body)?)),
        // A JSON syntax error is reported by the probe, which says where.
        Err(e @ UnscannableBody::InvalidJson(_)) => {
            read::probe(&request.body)?;
            Err(ApiError::unscannable(&e))
        }
        Err(e) => Err(ApiError::unscannable(&e)),
    }
}
