//! The application-facing side: OpenAI-compatible HTTP/1.1 on loopback (or a
//! branch LAN address). [`walk`] takes one request through its stages, each
//! in the module named for it: [`read`], [`crate::classify`],
//! [`crate::plan`], [`crate::transport::forward`], [`respond`]. The answer
//! streams back as it arrives.

pub mod error;
pub mod read;
pub mod redaction;
pub mod respond;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::routing::{any, get};
use axum::Router as HttpRouter;
use http::Method;
use residency_proto::{Codec, Tier};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::audit::AuditWriter;
pub use crate::body::{Body, BodyError};
use crate::classify::{Classifier, RequestClassification, UnscannableBody};
use crate::plan::{self, Env, Facts, InForce, Router};
use crate::policy::active::{ActivePolicy, PolicyState};
use crate::transport::forward::{self, Outbound};
use crate::transport::pool::GatewayPool;
use error::ApiError;
use read::{ApiPath, Arrival, Probe, Request};
use respond::{Known, Refused};

/// Header: the agent's id for the request.
pub const HDR_REQUEST_ID: &str = "x-residency-request-id";
/// Header: the sensitivity tier found.
pub const HDR_TIER: &str = "x-residency-tier";
/// Header: the region that served the request.
pub const HDR_REGION: &str = "x-residency-region";
/// Header: the gateway endpoint that served the request.
pub const HDR_ENDPOINT: &str = "x-residency-endpoint";
/// Response header: the transport that carried the request to the gateway
/// (`quic` or `h2`).
pub const HDR_TRANSPORT: &str = "x-residency-transport";
/// Header: what was decided (`allow`, `deny`, `no_route`, `error`).
pub const HDR_DECISION: &str = "x-residency-decision";
/// Header: the rule that decided.
pub const HDR_RULE: &str = "x-residency-rule";
/// Header: the policy version in force (`builtin` or `none` without one).
pub const HDR_POLICY: &str = "x-residency-policy";
/// Response header: the entity types and counts replaced by placeholders
/// (`pan=1,aadhaar=1`), on a redacted request's answer.
pub const HDR_REDACTED: &str = "x-residency-redacted";

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
    pub(crate) objects: crate::objects::ObjectMap,
    pub(crate) pin_by_api_key: bool,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) audit: AuditWriter,
    pub(crate) audit_sync: bool,
    pub(crate) metrics: Arc<crate::admin::metrics::Metrics>,
    pub(crate) codec: Codec,
    pub(crate) max_body: usize,
    pub(crate) body_timeouts: read::BodyTimeouts,
    /// Each conversation's redaction placeholders.
    pub(crate) conversations: Arc<redaction::Conversations>,
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
            pin_by_api_key: self.pin_by_api_key,
        }
    }
}

/// Serves the OpenAI-compatible API until `shutdown`, then stops accepting
/// and lets open requests finish (tracked by `tracker`). Each request runs
/// under the configuration it started with; connections are held within
/// `limits` (fixed at start).
pub async fn serve(
    listener: TcpListener,
    ingress: Arc<arc_swap::ArcSwap<Ingress>>,
    limits: crate::serve::Limits,
    counters: crate::serve::ConnCounters,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    crate::serve::serve(
        listener,
        router(ingress),
        limits,
        counters,
        shutdown,
        tracker,
    )
    .await;
}

type Shared = Arc<arc_swap::ArcSwap<Ingress>>;

/// The API paths the agent serves (everything under `/v1/`), and the
/// audited 404/405 for the rest.
fn router(ingress: Shared) -> HttpRouter {
    let api = move |State(ingress): State<Shared>,
                    ConnectInfo(peer): ConnectInfo<SocketAddr>,
                    req: http::Request<axum::body::Body>| async move {
        let ingress = ingress.load_full();
        let req = without_trailing_slash(req);
        let origin = allowed_origin(&ingress, &req);
        if let (Some(origin), &Method::OPTIONS) = (&origin, req.method()) {
            return preflight(origin, &req);
        }
        let method = req.method();
        let api = if [Method::GET, Method::POST, Method::DELETE].contains(method) {
            ApiPath::of(method, req.uri().path())
                .ok_or_else(|| ApiError::not_found(method, req.uri().path()))
        } else {
            Err(ApiError::method_not_allowed(method, req.uri().path()))
        };
        let mut resp = handle(&ingress, api, req, peer).await;
        if let Some(origin) = origin {
            let h = resp.headers_mut();
            h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(http::header::VARY, http::HeaderValue::from_static("origin"));
            h.insert(
                http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                http::HeaderValue::from_static(EXPOSED),
            );
        }
        resp
    };
    let refuse = |not_found: bool| {
        move |State(ingress): State<Shared>,
              ConnectInfo(peer): ConnectInfo<SocketAddr>,
              req: http::Request<axum::body::Body>| async move {
            let ingress = ingress.load_full();
            let (method, path) = (req.method(), req.uri().path());
            let e = if not_found {
                ApiError::not_found(method, path)
            } else {
                ApiError::method_not_allowed(method, path)
            };
            handle(&ingress, Err(e), req, peer).await
        }
    };
    HttpRouter::new()
        .route("/healthz", get(|| async { ApiError::healthy() }))
        .route("/v1/{*rest}", any(api))
        .fallback(refuse(true))
        .method_not_allowed_fallback(refuse(false))
        .with_state(ingress)
}

/// The agent's headers a browser page may read.
const EXPOSED: &str = "x-residency-request-id, x-residency-region, x-residency-endpoint, \
x-residency-transport, x-residency-decision, x-residency-rule, x-residency-tier, \
x-residency-policy, x-should-retry";

/// The request's `origin`, if `[ingress] cors_origins` lets it in.
fn allowed_origin<B>(ingress: &Ingress, req: &http::Request<B>) -> Option<http::HeaderValue> {
    let origin = req.headers().get(http::header::ORIGIN)?;
    let o = origin.to_str().ok()?;
    ingress
        .cors_origins
        .iter()
        .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(o))
        .then(|| origin.clone())
}

/// The answer to a CORS preflight from an allowed origin (not a model
/// request: nothing is forwarded or audited).
fn preflight<B>(origin: &http::HeaderValue, req: &http::Request<B>) -> http::Response<Body> {
    use http::header;
    let mut resp = http::Response::new(crate::body::full(bytes::Bytes::new()));
    *resp.status_mut() = http::StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        http::HeaderValue::from_static("GET, POST, DELETE"),
    );
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| {
            http::HeaderValue::from_static("authorization, content-type, x-residency-session")
        });
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        http::HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, http::HeaderValue::from_static("origin"));
    resp
}

/// `/v1/files/` is `/v1/files`: SDKs and hand-written clients differ.
fn without_trailing_slash<B>(mut req: http::Request<B>) -> http::Request<B> {
    let path = req.uri().path();
    if path.len() <= "/v1/".len() || !path.ends_with('/') {
        return req;
    }
    let trimmed = path.trim_end_matches('/');
    let pq = match req.uri().query() {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed.to_owned(),
    };
    if let Ok(uri) = http::Uri::builder().path_and_query(pq).build() {
        *req.uri_mut() = uri;
    }
    req
}

/// Serves one API request (or refuses one the router found no API for);
/// every outcome is a response and an audit record. `/healthz` is liveness
/// of the request path itself (the systemd watchdog asks), not a model
/// request, so it is answered by the router and not audited.
async fn handle<B>(
    ingress: &Ingress,
    api: Result<ApiPath, ApiError>,
    req: http::Request<B>,
    peer: SocketAddr,
) -> http::Response<Body>
where
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let arrival = Arrival::new(&ingress.geo, &req, peer);
    let walked = match api {
        Ok(api) => walk(ingress, &arrival, api, req).await,
        Err(e) => Err(Known::default().refuse(e)),
    };
    match walked {
        Ok(resp) => resp,
        Err(refused) => respond::refused(ingress, &arrival, refused).await,
    }
}

/// One request, start to end: read, classify, plan, forward, respond. Each
/// stage lives in the module named for it; what a stage learns is kept for
/// the one audit record the respond stage writes.
async fn walk<B>(
    ingress: &Ingress,
    arrival: &Arrival,
    api: ApiPath,
    req: http::Request<B>,
) -> Result<http::Response<Body>, Refused>
where
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut known = Known::default();
    let policy = ingress.policy.current();
    let request = match read::request(api, req, ingress.max_body, ingress.body_timeouts).await {
        Ok(r) => r,
        Err(e) => return Err(known.refuse(e)),
    };
    known.bytes_in = request.body.len() as u64;
    let (classified, probe) = match classify(ingress, policy.as_deref(), &request) {
        Ok(c) => c,
        Err(e) => return Err(known.refuse(e)),
    };
    // Stored objects the request names go where they live.
    let named = objects_named(&request);
    let held = match ingress.objects.held(&named, arrival.time_ms) {
        Ok(h) => h,
        Err(crate::objects::Damaged(id)) => {
            known.classified = Some(classified);
            return Err(known.refuse(ApiError::object_map_damaged(&id)));
        }
    };
    // An upload (audio, an image edit) names its model in a form field.
    let form_model = match probe.model() {
        Some(_) => None,
        None => form_model(&request),
    };
    let now = Instant::now();
    let facts = Facts {
        classification: &classified,
        model: probe.model().or(form_model.as_deref()),
        user: probe.user(),
        conversation: probe.conversation(),
        headers: &request.decision_headers,
        client: Some(arrival.client.ip()),
        now,
        explain: false,
        objects: &held,
    };
    let env = ingress.env(policy.as_deref());
    let plan = match plan::plan(&facts, &env) {
        Ok(p) => p,
        Err(r) => {
            let error = ApiError::from_refusal(&r);
            known.classified = Some(classified);
            known.decided = Some(r.decided);
            return Err(known.refuse(error));
        }
    };
    if plan.decided.tier > Tier::Public {
        // Types and counts only: never the values.
        info!(request_id = %arrival.id, tier = %plan.decided.tier, entities = %classified.summary(), unscannable = ?classified.unscannable, rule = %plan.decided.rule, "classified");
    }
    known.classified = Some(classified);
    ingress.metrics.overhead(arrival.started.elapsed());
    if request.api == ApiPath::Models {
        if let Some(listed) = models_listed(ingress, &plan, &request.path_and_query) {
            return Ok(respond::listed(ingress, arrival, known, &plan, listed).await);
        }
    }
    // Under a redact rule the values are replaced before anything leaves,
    // and what is sent is judged again.
    let redacted = match &plan.redact {
        None => None,
        Some(r) => match redact(ingress, policy.as_deref(), &plan, r, &request, now) {
            Ok(done) => Some(done),
            Err(e) => {
                known.decided = Some(plan.decided);
                return Err(known.refuse(e));
            }
        },
    };
    // The gateway checks for itself that the objects named live in its
    // region (the header is never passed to the provider).
    let with_objects;
    let headers = if held.is_empty() {
        &request.forwarded
    } else {
        let mut h = request.forwarded.clone();
        h.push((
            crate::gateway::HDR_OBJECTS.to_owned(),
            objects_header(&held),
        ));
        with_objects = h;
        &with_objects
    };
    let out = Outbound {
        request_id: &arrival.id,
        method: arrival.method.as_str(),
        path: &request.path_and_query,
        headers,
        body: redacted.as_ref().map_or(&request.body[..], |r| &r.body[..]),
        tier: redacted.as_ref().map_or(plan.decided.tier, |r| r.tier),
    };
    let answer = match forward::forward(&ingress.pool, &ingress.codec, &plan, out).await {
        Ok(a) => a,
        Err(e) => {
            let error = ApiError::from_forward(&e, &plan);
            known.decided = Some(plan.decided);
            return Err(known.refuse(error));
        }
    };
    if let Some(key) = plan.pin {
        // A conversation that carried restricted data stays where it went.
        if let Some(j) = plan::jurisdiction_of(&env, &answer.link.region) {
            ingress.pins.pin(key, j, now);
        }
    }
    // What the answer tells the object map: a new object lives where it was
    // made; a deleted one is gone.
    let objects = (answer.head.status < 300).then(|| respond::ObjectTail {
        map: ingress.objects.clone(),
        region: answer.link.region.clone(),
        tier: plan.decided.tier,
        now_ms: arrival.time_ms,
        creates: creates_objects(&arrival.method, &request, &probe),
        deletes: (arrival.method == Method::DELETE)
            .then(|| plan::objects::deleted(&request.path_and_query).map(str::to_owned))
            .flatten(),
        head: Vec::new(),
    });
    Ok(respond::answer(
        ingress, arrival, known, &plan, answer, objects, redacted,
    ))
}

/// `GET /v1/models` (or `/v1/models/{id}`) answered from what the gateways
/// advertised: the models at least one healthy gateway of the plan's regions
/// serves where the rule allows, each with those regions in plan order.
/// `None` when every such gateway passes any model on (it has no model
/// map), so only its provider knows: the request is then forwarded.
fn models_listed(
    ingress: &Ingress,
    plan: &plan::Plan,
    path: &str,
) -> Option<(http::StatusCode, serde_json::Value)> {
    use crate::transport::pool::Health;
    let links = ingress.pool.links();
    let mut up: Vec<_> = links
        .iter()
        .filter(|l| matches!(l.health(), Health::Healthy | Health::HalfOpen))
        .filter_map(|l| {
            let rank = plan.candidates.iter().position(|c| c.region == l.region)?;
            Some((rank, l))
        })
        .collect();
    up.sort_by_key(|(rank, _)| *rank);
    let lists: Vec<_> = up.iter().map(|(_, l)| (l, l.models())).collect();
    if lists.is_empty() || lists.iter().all(|(_, m)| m.open) {
        return None;
    }
    // name -> (aliases, regions)
    let mut served: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for (link, list) in &lists {
        for offer in &list.models {
            let fits = plan::models::processing_fit(
                offer,
                link.jurisdiction,
                plan.allow.as_ref(),
                plan.decided.tier,
            );
            if fits != plan::models::Fit::Serves {
                continue;
            }
            let i = match served.iter().position(|(n, _, _)| *n == offer.name) {
                Some(i) => i,
                None => {
                    served.push((offer.name.clone(), Vec::new(), Vec::new()));
                    served.len() - 1
                }
            };
            let (_, aliases, regions) = &mut served[i];
            for a in &offer.aliases {
                if !aliases.contains(a) {
                    aliases.push(a.clone());
                }
            }
            if !regions.iter().any(|r| r == link.region.as_str()) {
                regions.push(link.region.to_string());
            }
        }
    }
    let object = |(name, aliases, regions): &(String, Vec<String>, Vec<String>)| {
        serde_json::json!({
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "residency-agent",
            "aliases": aliases,
            "regions": regions,
        })
    };
    let path = path.split('?').next().unwrap_or("");
    match path.strip_prefix("/v1/models/") {
        None => Some((
            http::StatusCode::OK,
            serde_json::json!({
                "object": "list",
                "data": served.iter().map(object).collect::<Vec<_>>(),
            }),
        )),
        Some(id) => match served
            .iter()
            .find(|(n, a, _)| n == id || a.iter().any(|a| a == id))
        {
            Some(m) => Some((http::StatusCode::OK, object(m))),
            None => Some((
                http::StatusCode::NOT_FOUND,
                serde_json::json!({"error": {
                    "message": format!("The model '{id}' is not served by any gateway in the allowed regions"),
                    "type": "invalid_request_error",
                    "param": null,
                    "code": "model_not_found",
                }}),
            )),
        },
    }
}

/// The redact stage: the values of the plan's types replaced with the
/// conversation's placeholders, the result classified again. Refused (451)
/// when the body cannot be redacted or is still as sensitive after it.
fn redact(
    ingress: &Ingress,
    policy: Option<&ActivePolicy>,
    plan: &plan::Plan,
    r: &plan::RedactPlan,
    request: &Request,
    now: Instant,
) -> Result<respond::Redacted, ApiError> {
    let rule = &plan.decided.rule;
    let style = crate::redact::PlaceholderStyle::parse(&r.placeholder)
        .map_err(|e| ApiError::redaction_failed(rule, e.to_string()))?;
    let mut table =
        ingress
            .conversations
            .table(plan.conversation.as_ref(), &style, &r.placeholder, now);
    let done = crate::redact::redact_json(&request.body, &ingress.classifier, &r.kinds, &mut table)
        .map_err(|e| ApiError::redaction_failed(rule, e.to_string()))?;
    let unscannable_tier = policy.map_or(ingress.unscannable_tier, |p| p.policy.unscannable_tier());
    let content_type = request
        .forwarded
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    let again = ingress
        .classifier
        .scan_body(
            content_type,
            &done.body,
            &read::header_pairs(&request.forwarded),
            unscannable_tier,
        )
        .map_err(|e| {
            ApiError::redaction_failed(rule, format!("the redacted body cannot be scanned: {e}"))
        })?;
    if again.tier >= plan.decided.tier {
        return Err(ApiError::redaction_failed(
            rule,
            format!(
                "after redaction it is still {} ({}), so it is not sent",
                again.tier,
                again.summary()
            ),
        ));
    }
    if let Some(key) = plan.conversation {
        ingress
            .conversations
            .keep(key, &r.placeholder, table.clone(), now);
    }
    info!(redacted = %done.counts.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(","), tier = %again.tier, "redacted");
    Ok(respond::Redacted {
        body: bytes::Bytes::from(done.body),
        tier: again.tier,
        counts: done.counts,
        table,
    })
}

/// The `model` field of a `multipart/form-data` body, if it has one.
fn form_model(request: &Request) -> Option<String> {
    let content_type = request
        .forwarded
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str())?;
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return None;
    }
    crate::gateway::models::model_in(Some(content_type), &request.body)
        .ok()
        .flatten()
        .map(|m| m.name)
}

/// `id@region,…` for the gateway's own check.
fn objects_header(held: &[plan::objects::Held]) -> String {
    held.iter()
        .map(|h| format!("{}@{}", h.id, h.region))
        .collect::<Vec<_>>()
        .join(",")
}

/// The object ids a request names, if its path or body may name any.
fn objects_named(request: &Request) -> Vec<String> {
    let body = &request.body;
    let may_name = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    let body: &[u8] = if may_name(b"_id") || may_name(b"\"conversation\"") {
        body
    } else {
        b""
    };
    plan::objects::referenced(&request.path_and_query, body)
}

/// Whether a successful answer to this request may carry a new stored
/// object's id: any `POST` but chat completions without `store: true` (their
/// ids name nothing the provider keeps) and the stateless APIs.
fn creates_objects(method: &Method, request: &Request, probe: &Probe) -> bool {
    if method != Method::POST {
        return false;
    }
    match request.api {
        ApiPath::ChatCompletions => probe.store(),
        ApiPath::Completions | ApiPath::Embeddings | ApiPath::Models => false,
        ApiPath::Responses | ApiPath::Other { .. } => true,
    }
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
    let content_type = request
        .forwarded
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    // A POST without a body (`/v1/batches/{id}/cancel`) has only its headers
    // to judge; a JSON API that needs a body says so in the probe below.
    let empty_other = request.body.is_empty() && matches!(request.api, ApiPath::Other { .. });
    let body: &[u8] = if empty_other { b"{}" } else { &request.body };
    let t = Instant::now();
    let scanned = ingress.classifier.scan_body(
        content_type,
        body,
        &read::header_pairs(&request.forwarded),
        unscannable_tier,
    );
    ingress.metrics.classified(request.body.len(), t.elapsed());
    // The fields the agent reads itself are in JSON bodies only (an upload
    // names no model to decide by).
    let json = content_type.is_none_or(|c| {
        let essence = c.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json") || essence.is_empty()
    });
    match scanned {
        // `POST /v1/batches/{id}/cancel` and the like carry no body.
        Ok(c)
            if !json
                || (request.body.is_empty() && matches!(request.api, ApiPath::Other { .. })) =>
        {
            Ok((c, Probe::default()))
        }
        Ok(c) => Ok((c, read::probe(&request.body)?)),
        // A JSON syntax error is reported by the probe, which says where.
        Err(e @ UnscannableBody::InvalidJson(_)) => {
            read::probe(&request.body)?;
            Err(ApiError::unscannable(&e))
        }
        Err(e) => Err(ApiError::unscannable(&e)),
    }
}
