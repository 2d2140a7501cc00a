//! The application-facing side: OpenAI-compatible HTTP/1.1 on loopback (or a
//! branch LAN address). Each request is read, checked, classified, routed and
//! forwarded on its own QUIC stream; the answer streams back as it arrives.

pub mod error;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper_util::rt::TokioIo;
use residency_proto::{Codec, ErrorCode, Frame, RequestHead, ResponseHead, RouteFacts, Tier};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::audit::{AuditWriter, NewRecord};
use crate::classify::{Classifier, RequestClassification, UnscannableBody};
use crate::policy::active::{ActivePolicy, PolicyState};
use crate::policy::{trusted_labels, Decision, RequestFacts};
use crate::route::{RouteChoice, Router};
use crate::transport::pool::{GatewayLink, GatewayPool};
use crate::transport::{read_frame, GuardedSend, STOP_CANCELLED};
use error::ApiError;

/// Response body type of the agent.
pub type Body = UnsyncBoxBody<Bytes, BodyError>;

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

/// Request headers the agent passes to the gateway (the gateway filters
/// with the same list again).
const FORWARD_HEADERS: &[&str] = crate::gateway::upstream::FORWARD_REQUEST_HEADERS;

/// The response body failed after the response started.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// What the ingress needs to serve requests.
#[derive(Debug)]
pub struct Ingress {
    pub(crate) pool: Arc<GatewayPool>,
    pub(crate) router: Router,
    pub(crate) catalogue: crate::route::catalogue::Catalogue,
    pub(crate) classifier: Arc<Classifier>,
    pub(crate) unscannable_tier: Tier,
    pub(crate) policy: Arc<PolicyState>,
    pub(crate) geo: Arc<crate::geo::Geo>,
    pub(crate) pins: Arc<crate::route::pin::Pins>,
    pub(crate) audit: AuditWriter,
    pub(crate) audit_sync: bool,
    pub(crate) metrics: Arc<crate::admin::metrics::Metrics>,
    pub(crate) codec: Codec,
    pub(crate) max_body: usize,
}

impl Ingress {
    /// A region's jurisdiction: the built-in catalogue, then the policy's
    /// `[[region]]`s, then the config's.
    fn jurisdiction(
        &self,
        policy: Option<&crate::policy::Policy>,
        r: &residency_proto::RegionId,
    ) -> Option<residency_proto::Jurisdiction> {
        policy
            .and_then(|p| p.jurisdiction_of(r))
            .or_else(|| self.catalogue.jurisdiction(r))
    }
}

/// The OpenAI API paths the agent serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiPath {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Models,
}

impl ApiPath {
    fn parse(method: &Method, path: &str) -> Result<ApiPath, ApiError> {
        let p = match path {
            "/v1/chat/completions" => ApiPath::ChatCompletions,
            "/v1/completions" => ApiPath::Completions,
            "/v1/embeddings" => ApiPath::Embeddings,
            "/v1/responses" => ApiPath::Responses,
            "/v1/models" => ApiPath::Models,
            p if p.starts_with("/v1/models/") && p.len() > "/v1/models/".len() => ApiPath::Models,
            _ => return Err(ApiError::not_found(method, path)),
        };
        let want = if p == ApiPath::Models {
            Method::GET
        } else {
            Method::POST
        };
        if method != want {
            return Err(ApiError::method_not_allowed(method, path));
        }
        Ok(p)
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
    // Behind a trusted reverse proxy, the client is who the proxy says.
    let peer = SocketAddr::new(
        ingress.geo.client_addr(
            peer.ip(),
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        ),
        peer.port(),
    );
    let request_id = new_request_id();
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut draft = NewRecord {
        time_ms: now_ms(),
        request_id: request_id.clone(),
        app: None,
        client: Some(peer.ip().to_string()),
        method: method.to_string(),
        path: path.clone(),
        model: None,
        tier: Tier::Public.as_str().to_owned(),
        entities: Vec::new(),
        unscannable: Vec::new(),
        subject_country: None,
        country_source: "none".to_owned(),
        policy_version: None,
        policy_label: "none".to_owned(),
        rule: String::new(),
        decision: "error".to_owned(),
        region: None,
        endpoint: None,
        status: 0,
        bytes_in: 0,
        bytes_out: 0,
        latency_ms: 0.0,
        outcome: String::new(),
    };
    match process(ingress, req, &request_id, peer, &mut draft, started).await {
        Ok(resp) => {
            ingress.metrics.request(
                &draft.tier,
                draft.region.as_deref().unwrap_or(""),
                &draft.decision,
                resp.status().as_u16(),
            );
            info!(request_id = %request_id, client = %peer, method = %method, path = %path, status = resp.status().as_u16(),
                tier = resp.headers().get(HDR_TIER).and_then(|v| v.to_str().ok()).unwrap_or(""),
                region = resp.headers().get(HDR_REGION).and_then(|v| v.to_str().ok()).unwrap_or(""),
                head_ms = started.elapsed().as_secs_f64() * 1e3, "forwarded");
            resp
        }
        Err(e) => {
            info!(request_id = %request_id, client = %peer, method = %method, path = %path, status = e.status.as_u16(), code = e.code, "refused");
            draft.status = e.status.as_u16();
            draft.decision = e.decision.to_owned();
            draft.outcome = format!("refused:{}", e.code);
            draft.latency_ms = started.elapsed().as_secs_f64() * 1e3;
            ingress
                .metrics
                .request(&draft.tier, "", &draft.decision, draft.status);
            // The refusal is on record before the application hears of it.
            if ingress.audit_sync {
                if let Err(ae) = ingress.audit.append(draft).await {
                    warn!(error = %ae, "audit record not written");
                }
            } else {
                ingress.audit.append_later(draft);
            }
            e.into_response(&request_id)
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
}

async fn process(
    ingress: &Ingress,
    req: http::Request<Incoming>,
    request_id: &str,
    peer: SocketAddr,
    draft: &mut NewRecord,
    started: Instant,
) -> Result<http::Response<Body>, ApiError> {
    let api = ApiPath::parse(req.method(), req.uri().path())?;
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let (parts, body) = req.into_parts();
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > ingress.max_body as u64 {
            return Err(ApiError::too_large(ingress.max_body));
        }
    }
    let body = match Limited::new(body, ingress.max_body).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::too_large(ingress.max_body))
        }
        Err(e) => {
            return Err(ApiError::body_read(format!(
                "cannot read request body: {e}"
            )))
        }
    };
    let forwarded = forward_headers(&parts.headers);
    let policy = ingress.policy.current();
    let unscannable_tier = policy
        .as_ref()
        .map_or(ingress.unscannable_tier, |p| p.policy.unscannable_tier());
    let (classification, probe) = if api == ApiPath::Models {
        (RequestClassification::default(), Probe::default())
    } else {
        // Every byte that leaves is judged: the body and the headers forwarded with it.
        let t = Instant::now();
        let scanned = ingress.classifier.scan_request_with_headers(
            &body,
            &header_pairs(&forwarded),
            unscannable_tier,
        );
        ingress.metrics.classified(body.len(), t.elapsed());
        // A JSON syntax error is reported by the probe, which says where.
        let probe = match &scanned {
            Ok(_) | Err(UnscannableBody::InvalidJson(_)) => check_json(&body)?,
            Err(_) => Probe::default(),
        };
        (scanned.map_err(|e| ApiError::unscannable(&e))?, probe)
    };
    let model = probe
        .model
        .as_ref()
        .and_then(|m| m.as_str())
        .map(str::to_owned);
    draft.bytes_in = body.len() as u64;
    draft.model = model.clone();
    draft.tier = classification.tier.as_str().to_owned();
    draft.entities = classification
        .counts
        .iter()
        .map(|(t, n)| (t.as_str().to_owned(), *n))
        .collect();
    draft.unscannable = classification.unscannable.clone();
    let policy_label = policy.as_ref().map_or_else(
        || "none".to_owned(),
        |p| {
            p.version
                .map_or_else(|| "builtin".to_owned(), |v| v.to_string())
        },
    );
    draft.policy_version = policy.as_ref().and_then(|p| p.version);
    draft.policy_label = policy_label.clone();
    let (mut choice, tier) = decide(
        ingress,
        policy.as_deref(),
        &classification,
        &parts.headers,
        model.as_deref(),
        peer,
        draft,
    )
    .map_err(|e| e.with_policy(&policy_label))?;
    draft.tier = tier.as_str().to_owned();
    // A conversation that carried restricted data stays where it went.
    let jurisdiction_of =
        |r: &residency_proto::RegionId| ingress.jurisdiction(policy.as_ref().map(|p| &p.policy), r);
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let pin_key = crate::route::pin::Pins::key(
        header("x-residency-session"),
        bearer(&parts.headers),
        probe.user.as_ref().and_then(|u| u.as_str()),
    );
    let now = Instant::now();
    if let Some(j) = pin_key.and_then(|k| ingress.pins.get(&k, now)) {
        choice.allowed.retain(|r| jurisdiction_of(r) == Some(j));
        choice.rule = format!("{} (conversation pinned to {j})", choice.rule);
    }
    if tier > Tier::Public {
        // Types and counts only: never the values.
        info!(request_id, tier = %tier, entities = %classification.summary(), unscannable = ?classification.unscannable, rule = %choice.rule, "classified");
    }
    let policy_version = policy.as_ref().and_then(|p| p.version);
    let request_head = |region: &residency_proto::RegionId| RequestHead {
        request_id: request_id.to_owned(),
        method: method.clone(),
        path: path_and_query.clone(),
        headers: forwarded.clone(),
        route: RouteFacts {
            region: region.clone(),
            tier,
            policy_version,
        },
    };
    // One try, and one retry on another allowed endpoint if the first fails
    // before any response byte. Never outside the allowed set.
    let mut tried: Vec<Arc<GatewayLink>> = Vec::new();
    let mut last_error = None;
    let mut answered = None;
    ingress.metrics.overhead(started.elapsed());
    for _ in 0..2 {
        let Some((link, conn)) = ingress.pool.pick(&choice.allowed, &tried) else {
            break;
        };
        match exchange(ingress, &link, &conn, request_head(&link.region), &body).await {
            Ok(x) => {
                link.record_success();
                answered = Some((link, x));
                break;
            }
            Err(Attempt::Retry(why, err)) => {
                link.record_failure(&why);
                warn!(request_id, region = %link.region, endpoint = %link.name, reason = %why, "attempt failed before any response byte");
                tried.push(link);
                last_error = Some(err);
            }
            Err(Attempt::Final(err)) => return Err(err.with_policy(&policy_label)),
        }
    }
    if let (Some((link, _)), Some(key), true) = (&answered, pin_key, tier == Tier::Restricted) {
        if let Some(j) = jurisdiction_of(&link.region) {
            ingress.pins.pin(key, j, now);
        }
    }
    let Some((link, (head, rest, recv))) = answered else {
        if let Some(err) = last_error {
            // Every endpoint tried failed before answering.
            return Err(err.with_policy(&policy_label));
        }
        let regions: Vec<&str> = choice.allowed.iter().map(|r| r.as_str()).collect();
        let mut jurisdictions: Vec<String> = Vec::new();
        for r in &choice.allowed {
            let j = jurisdiction_of(r).map_or_else(|| "unknown".to_owned(), |j| j.to_string());
            if !jurisdictions.contains(&j) {
                jurisdictions.push(j);
            }
        }
        return Err(ApiError::no_route(if regions.is_empty() {
            format!(
                "no configured region may receive {tier} data (rule {})",
                choice.rule
            )
        } else {
            format!(
                "no healthy gateway for {tier} data in the allowed jurisdictions {} (regions tried: {})",
                jurisdictions.join(", "),
                regions.join(", ")
            )
        })
        .with_policy(&policy_label));
    };
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let sse = head
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("text/event-stream"));
    draft.rule = choice.rule.clone();
    draft.decision = "allow".to_owned();
    draft.region = Some(link.region.to_string());
    draft.endpoint = Some(link.name.clone());
    draft.status = status.as_u16();
    let tail = AuditTail {
        draft: Some(draft.clone()),
        sync: ingress.audit_sync,
        writer: ingress.audit.clone(),
        started,
        bytes_out: 0,
    };
    let mut resp = http::Response::new(relay(rest, recv, sse, tail));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (k, v) in &head.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    let set = |h: &mut HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(h, HDR_REQUEST_ID, request_id);
    set(h, HDR_TIER, tier.as_str());
    set(h, HDR_REGION, link.region.as_str());
    set(h, HDR_ENDPOINT, &link.name);
    set(h, HDR_DECISION, "allow");
    set(h, HDR_RULE, &choice.rule);
    set(h, HDR_POLICY, &policy_label);
    if sse {
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
    }
    Ok(resp)
}

/// The fields the agent reads itself.
#[derive(Debug, Default, serde::Deserialize)]
struct Probe {
    #[serde(default)]
    model: Option<serde_json::Value>,
    #[serde(default)]
    user: Option<serde_json::Value>,
}

/// The application's bearer key, if it sent one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// How one attempt at a gateway failed.
enum Attempt {
    /// Before any response byte: another allowed endpoint may be tried.
    Retry(String, ApiError),
    /// The gateway answered with a refusal that another would repeat.
    Final(ApiError),
}

/// Sends the request on a new stream and waits for the response head. The
/// gateway must acknowledge the request within a few round trips, so a dead
/// gateway costs a fraction of a second, not an idle timeout.
async fn exchange(
    ingress: &Ingress,
    link: &GatewayLink,
    conn: &quinn::Connection,
    head: RequestHead,
    body: &[u8],
) -> Result<(ResponseHead, Bytes, quinn::RecvStream), Attempt> {
    let retry = |why: String| Attempt::Retry(why.clone(), ApiError::gateway_failed(why));
    let (send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| retry(format!("gateway {} unavailable: {e}", link.name)))?;
    let mut send = GuardedSend::new(send);
    let mut out = ingress
        .codec
        .encode_to_vec(&Frame::RequestHead(head))
        .map_err(|e| Attempt::Final(ApiError::body_read(e.to_string())))?;
    out.extend_from_slice(body);
    let acked = send.stream().map(|s| s.stopped());
    send.write_all(&out)
        .await
        .map_err(|e| retry(format!("gateway {} failed: {e}", link.name)))?;
    send.finish();
    // Large bodies take longer to be acknowledged: allow 1 MB/s on top.
    let ack_timeout = link.ack_timeout() + Duration::from_micros(body.len() as u64);
    let acked = async move {
        match acked {
            Some(f) => tokio::time::timeout(ack_timeout, f).await.is_ok(),
            None => false,
        }
    };
    tokio::pin!(acked);
    let got = {
        let read = read_frame(&mut recv, &ingress.codec);
        tokio::pin!(read);
        let mut ack_pending = true;
        loop {
            tokio::select! {
                r = &mut read => break r,
                ok = &mut acked, if ack_pending => {
                    if !ok {
                        return Err(retry(format!(
                            "gateway {} did not acknowledge the request within {} ms",
                            link.name,
                            ack_timeout.as_millis()
                        )));
                    }
                    ack_pending = false;
                }
            }
        }
    };
    let (frame, rest) = match got {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(retry(format!(
                "gateway {} closed the stream without answering",
                link.name
            )))
        }
        Err(e) => {
            return Err(retry(format!(
                "gateway {} failed before answering: {e}",
                link.name
            )))
        }
    };
    match frame {
        Frame::ResponseHead(h) => Ok((h, rest, recv)),
        Frame::Error(e) => {
            warn!(endpoint = %link.name, region = %link.region, code = e.code.as_str(), message = %e.message, "gateway refused");
            let err = ApiError::from_frame(&e);
            match e.code {
                ErrorCode::UpstreamUnavailable
                | ErrorCode::Unavailable
                | ErrorCode::UpstreamTimeout => Err(Attempt::Retry(e.message, err)),
                _ => Err(Attempt::Final(err)),
            }
        }
        _ => Err(retry(format!(
            "gateway {} sent an unexpected frame",
            link.name
        ))),
    }
}

/// 400 unless the body is one JSON object; the message says where it breaks.
/// Returns the requested model, if the body names one.
fn check_json(body: &[u8]) -> Result<Probe, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_none() {
        return Err(ApiError::bad_json(
            "request body is empty; expected a JSON object".into(),
        ));
    }
    if first != Some(&b'{') {
        // Syntax errors first: they say where, which helps more.
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            return Err(json_error(&e));
        }
        return Err(ApiError::bad_json(
            "request body must be a JSON object".into(),
        ));
    }
    match serde_json::from_slice::<Probe>(body) {
        Ok(p) => Ok(p),
        Err(e) => Err(json_error(&e)),
    }
}

fn json_error(e: &serde_json::Error) -> ApiError {
    ApiError::bad_json(
        format!(
            "request body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        )
        .replace(&format!(" at line {} column {}", e.line(), e.column()), ""),
    )
}

/// Where the request may go: the active policy decides, or without one the
/// built-in rule for public data only (fail closed). Returns the choice and
/// the effective tier.
fn decide(
    ingress: &Ingress,
    policy: Option<&ActivePolicy>,
    classification: &RequestClassification,
    headers: &HeaderMap,
    model: Option<&str>,
    peer: SocketAddr,
    draft: &mut NewRecord,
) -> Result<(RouteChoice, Tier), ApiError> {
    let tier = classification.tier;
    let Some(active) = policy else {
        draft.rule = "no-policy".to_owned();
        if tier >= Tier::Confidential {
            return Err(ApiError::no_policy(tier));
        }
        return Ok((ingress.router.choose(tier), tier));
    };
    let p = &active.policy;
    let app = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .and_then(|key| p.app_for_key(key.trim()));
    let labelled: Vec<(String, String)> = [
        crate::policy::SUBJECT_COUNTRY_HEADER,
        crate::policy::TIER_HEADER,
    ]
    .iter()
    .flat_map(|name| {
        headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| ((*name).to_owned(), v.to_owned()))
    })
    .collect();
    let labels = trusted_labels(app, &labelled);
    let (subject_country, source) = ingress
        .geo
        .subject_country(labels.subject_country, Some(peer.ip()));
    draft.app = app.map(|a| a.name.clone());
    draft.subject_country = subject_country.map(|j| j.to_string());
    draft.country_source = source.as_str().to_owned();
    let facts = RequestFacts {
        tier,
        entities: classification
            .counts
            .iter()
            .map(|(t, _)| t.as_str())
            .collect(),
        subject_country,
        subject_country_source: source,
        app: app.map(|a| a.name.as_str()),
        model,
        tier_floor: labels.tier_floor,
        unscannable: !classification.unscannable.is_empty(),
    };
    let eval = p.evaluate(&facts);
    draft.rule = eval.rule.clone();
    match eval.decision {
        Decision::Deny { reason } => Err(ApiError::policy_denied(&eval.rule, &reason)),
        Decision::Allow(set) => Ok((
            RouteChoice {
                allowed: set.ordered(&ingress.router.candidates(), |r| {
                    ingress.jurisdiction(Some(p), r)
                }),
                rule: eval.rule,
            },
            eval.effective_tier,
        )),
    }
}

/// Borrowed `(name, value)` pairs, as the classifier takes them.
pub(crate) fn header_pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn forward_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    FORWARD_HEADERS
        .iter()
        .filter_map(|k| {
            let v = headers.get(*k)?.to_str().ok()?;
            Some(((*k).to_owned(), v.to_owned()))
        })
        .collect()
}

/// The audit record of a forwarded request, written when its body ends:
/// complete, failed, or dropped because the client went away.
struct AuditTail {
    draft: Option<NewRecord>,
    sync: bool,
    writer: AuditWriter,
    started: Instant,
    bytes_out: u64,
}

impl AuditTail {
    fn take(&mut self, outcome: &str) -> Option<NewRecord> {
        let mut rec = self.draft.take()?;
        rec.outcome = outcome.to_owned();
        rec.bytes_out = self.bytes_out;
        rec.latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        Some(rec)
    }
}

impl Drop for AuditTail {
    fn drop(&mut self) {
        if let Some(rec) = self.take("client_cancelled") {
            self.writer.append_later(rec);
        }
    }
}

enum Relay {
    Start(Bytes, quinn::RecvStream, AuditTail),
    Reading(quinn::RecvStream, AuditTail),
    Failed(String),
    Done,
}

/// The response body: bytes from the gateway as they arrive. A clean finish
/// ends the body once the audit record is durable; a reset or lost
/// connection ends it with an error (after an SSE `error` event for
/// streaming clients), never as a silent success.
fn relay(first: Bytes, recv: quinn::RecvStream, sse: bool, tail: AuditTail) -> Body {
    let stream = futures_util::stream::unfold(
        Relay::Start(first, recv, tail),
        move |state| async move {
            match state {
                Relay::Start(first, recv, mut tail) if !first.is_empty() => {
                    tail.bytes_out += first.len() as u64;
                    Some((Ok(BodyFrame::data(first)), Relay::Reading(recv, tail)))
                }
                Relay::Start(_, mut recv, mut tail) | Relay::Reading(mut recv, mut tail) => {
                    match recv.read_chunk(64 * 1024, true).await {
                        Ok(Some(chunk)) => {
                            tail.bytes_out += chunk.bytes.len() as u64;
                            Some((Ok(BodyFrame::data(chunk.bytes)), Relay::Reading(recv, tail)))
                        }
                        Ok(None) => {
                            let rec = tail.take("complete")?;
                            if !tail.sync {
                                tail.writer.append_later(rec);
                                return None;
                            }
                            match tail.writer.append(rec).await {
                                Ok(_) => None,
                                Err(e) => {
                                    // No record, no clean ending: fail closed.
                                    warn!(error = %e, "audit record not written; ending the response with an error");
                                    Some((
                                        Err(BodyError(format!("audit log unavailable: {e}"))),
                                        Relay::Done,
                                    ))
                                }
                            }
                        }
                        Err(e) => {
                            let _ = recv.stop(STOP_CANCELLED.into());
                            let msg = format!("the response was interrupted: {e}");
                            warn!(error = %e, "gateway stream failed mid-response");
                            if let Some(rec) = tail.take("upstream_failed") {
                                if let Err(ae) = tail.writer.append(rec).await {
                                    warn!(error = %ae, "audit record not written");
                                }
                            }
                            if sse {
                                Some((Ok(BodyFrame::data(sse_error(&msg))), Relay::Failed(msg)))
                            } else {
                                Some((Err(BodyError(msg)), Relay::Done))
                            }
                        }
                    }
                }
                Relay::Failed(msg) => {
                    // Let the server flush the error event before the connection
                    // is cut (hyper drops unflushed data when a body fails).
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Some((Err(BodyError(msg)), Relay::Done))
                }
                Relay::Done => None,
            }
        },
    );
    StreamBody::new(stream).boxed_unsync()
}

fn sse_error(message: &str) -> Bytes {
    let body = serde_json::json!({
        "error": {"message": message, "type": "stream_interrupted", "code": "upstream_interrupted"}
    });
    Bytes::from(format!("event: error\ndata: {body}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods() {
        assert_eq!(
            ApiPath::parse(&Method::POST, "/v1/chat/completions"),
            Ok(ApiPath::ChatCompletions)
        );
        assert_eq!(
            ApiPath::parse(&Method::GET, "/v1/models/gpt-4o"),
            Ok(ApiPath::Models)
        );
        assert_eq!(
            ApiPath::parse(&Method::POST, "/v1/nope")
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiPath::parse(&Method::GET, "/v1/embeddings")
                .unwrap_err()
                .status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn json_errors_say_where() {
        let e = check_json(b"{\n  \"model\": \"x\",\n  oops\n}").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("line 3"), "{}", e.message);
        assert!(check_json(b"[1,2]").is_err());
        assert!(check_json(b"   ").is_err());
        assert!(check_json(b" {\"a\":1} ").is_ok());
    }
}
