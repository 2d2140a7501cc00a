//! The respond stage: the application's answer, its headers, and the one
//! audit record of the request, built from the plan and the outcome.
//!
//! A forwarded answer's body passes through a chain of body stages
//! ([`crate::body`]): the gateway stream, then the audit tail (the record
//! is written when the body ends: complete, failed, or dropped because the
//! client went away), then, for streaming clients, an SSE `error` event
//! before a failure.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use residency_proto::Tier;
use tracing::{info, warn};

use super::error::ApiError;
use super::read::Arrival;
use super::{
    Ingress, HDR_DECISION, HDR_ENDPOINT, HDR_POLICY, HDR_REDACTED, HDR_REGION, HDR_REQUEST_ID,
    HDR_RULE, HDR_TIER, HDR_TRANSPORT,
};
use crate::audit::{AuditWriter, NewRecord};
use crate::body::{self, Body, BodyError, Event, Stage, Step};
use crate::classify::RequestClassification;
use crate::plan::{Decided, Plan};
use crate::transport::forward::Answer;

/// What the walk learned before it ended, for the audit record.
#[derive(Debug, Default)]
pub struct Known {
    /// Request body bytes, once read.
    pub bytes_in: u64,
    /// What the classifier found, once it ran.
    pub classified: Option<RequestClassification>,
    /// The decision, when the request was refused after it was made (a
    /// forwarded request's is in its plan).
    pub decided: Option<Decided>,
}

/// A request the application gets an error for, and what was known then.
#[derive(Debug)]
pub struct Refused {
    /// The error answer.
    pub error: ApiError,
    /// For the audit record.
    pub known: Known,
}

impl Known {
    /// Refuses with `error`, recording what is known.
    pub fn refuse(self, error: ApiError) -> Refused {
        Refused { error, known: self }
    }
}

/// The audit record of a request: what arrived, what was known of it, what
/// was decided and where it went. `outcome`, `bytes_out` and `latency_ms`
/// are filled in when it ends.
fn record(
    arrival: &Arrival,
    known: &Known,
    decided: Option<&Decided>,
    decision: &str,
    status: u16,
    served: Option<(&str, &str)>,
) -> NewRecord {
    let c = known.classified.as_ref();
    NewRecord {
        time_ms: arrival.time_ms,
        request_id: arrival.id.clone(),
        app: decided.and_then(|d| d.app.clone()),
        client: Some(arrival.client.ip().to_string()),
        method: arrival.method.to_string(),
        path: arrival.path.clone(),
        model: decided.and_then(|d| d.model.clone()),
        tier: decided
            .map(|d| d.tier)
            .or(c.map(|c| c.tier))
            .unwrap_or(Tier::Public)
            .as_str()
            .to_owned(),
        entities: c.map_or_else(Vec::new, |c| {
            c.counts
                .iter()
                .map(|(t, n)| (t.as_str().to_owned(), *n))
                .collect()
        }),
        unscannable: c.map_or_else(Vec::new, |c| c.unscannable.clone()),
        subject_country: decided.and_then(|d| d.subject_country.map(|j| j.to_string())),
        country_source: decided
            .map_or("none", |d| d.country_source.as_str())
            .to_owned(),
        policy_version: decided.and_then(|d| d.policy_version),
        policy_label: decided.map_or_else(|| "none".to_owned(), |d| d.policy_label.clone()),
        rule: decided.map_or_else(String::new, |d| d.rule.clone()),
        decision: decision.to_owned(),
        region: served.map(|(r, _)| r.to_owned()),
        endpoint: served.map(|(_, e)| e.to_owned()),
        status,
        bytes_in: known.bytes_in,
        bytes_out: 0,
        latency_ms: 0.0,
        outcome: String::new(),
    }
}

/// A request sent redacted: what was sent, at which tier, what was
/// replaced, and the placeholders to put back.
#[derive(Debug)]
pub struct Redacted {
    /// The redacted body.
    pub body: Bytes,
    /// Its tier, classified again.
    pub tier: Tier,
    /// Entity types and how many values of each were replaced.
    pub counts: Vec<(crate::classify::EntityType, usize)>,
    /// The conversation's placeholders.
    pub table: crate::redact::Placeholders,
}

/// The answer to a forwarded request: the gateway's status and headers, the
/// agent's own headers, and the body through the stage chain (the values a
/// redacted request carried are put back first).
pub fn answer(
    ingress: &Ingress,
    arrival: &Arrival,
    known: Known,
    plan: &Plan,
    answer: Answer,
    objects: Option<ObjectTail>,
    redacted: Option<Redacted>,
) -> http::Response<Body> {
    let Answer {
        link,
        transport,
        head,
        body,
    } = answer;
    // The audit names the gateway and the transport that carried the
    // request: `mumbai-1/quic`, `mumbai-1/h2`.
    let via = format!("{}/{}", link.name, transport.as_str());
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let sse = head
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("text/event-stream"));
    let decision = if redacted.is_some() {
        "redacted"
    } else {
        "allow"
    };
    let rec = record(
        arrival,
        &known,
        Some(&plan.decided),
        decision,
        status.as_u16(),
        Some((link.region.as_str(), &via)),
    );
    // An embedding is numbers: nothing to put back.
    let embeddings = arrival.path.starts_with("/v1/embeddings");
    let body = match &redacted {
        Some(r) if sse => body::chain(body, crate::redact::SseRestorer::new(r.table.clone())),
        Some(r) if !embeddings => body::chain(
            body,
            crate::redact::JsonRestorer::new(r.table.clone(), ingress.max_body.max(1 << 20) * 4),
        ),
        _ => body,
    };
    let body = match objects {
        Some(tail) => body::chain(body, tail),
        None => body,
    };
    let mut body = body::chain(
        body,
        AuditTail {
            rec: Some(rec),
            sync: ingress.audit_sync,
            writer: ingress.audit.clone(),
            started: arrival.started,
            bytes_out: 0,
        },
    );
    if sse {
        body = body::chain(body, SseErrors);
    }
    let mut resp = http::Response::new(body);
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
    set(h, HDR_REQUEST_ID, &arrival.id);
    set(h, HDR_TIER, plan.decided.tier.as_str());
    set(h, HDR_REGION, link.region.as_str());
    set(h, HDR_ENDPOINT, &link.name);
    set(h, HDR_TRANSPORT, transport.as_str());
    set(h, HDR_DECISION, decision);
    set(h, HDR_RULE, &plan.decided.rule);
    set(h, HDR_POLICY, &plan.decided.policy_label);
    if let Some(r) = &redacted {
        let counts: Vec<String> = r.counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
        set(h, HDR_REDACTED, &counts.join(","));
        // The body changes length as values are put back.
        h.remove(http::header::CONTENT_LENGTH);
    }
    if sse {
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
    }
    ingress.metrics.request(
        plan.decided.tier.as_str(),
        link.region.as_str(),
        decision,
        status.as_u16(),
    );
    info!(request_id = %arrival.id, client = %arrival.client, method = %arrival.method, path = %arrival.path, status = status.as_u16(),
        tier = plan.decided.tier.as_str(), region = link.region.as_str(),
        head_ms = arrival.started.elapsed().as_secs_f64() * 1e3, "forwarded");
    resp
}

/// An answer the agent gives itself from what the gateways advertised (the
/// model list), on record like any other.
pub async fn listed(
    ingress: &Ingress,
    arrival: &Arrival,
    known: Known,
    plan: &Plan,
    (status, json): (StatusCode, serde_json::Value),
) -> http::Response<Body> {
    let body = Bytes::from(json.to_string());
    let mut rec = record(
        arrival,
        &known,
        Some(&plan.decided),
        "allow",
        status.as_u16(),
        None,
    );
    rec.outcome = "complete".to_owned();
    rec.bytes_out = body.len() as u64;
    rec.latency_ms = arrival.started.elapsed().as_secs_f64() * 1e3;
    ingress
        .metrics
        .request(plan.decided.tier.as_str(), "", "allow", status.as_u16());
    if ingress.audit_sync {
        if let Err(ae) = ingress.audit.append(rec).await {
            warn!(error = %ae, "audit record not written");
        }
    } else {
        ingress.audit.append_later(rec);
    }
    let mut resp = http::Response::new(body::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let set = |h: &mut HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(h, HDR_REQUEST_ID, &arrival.id);
    set(h, HDR_TIER, plan.decided.tier.as_str());
    set(h, HDR_DECISION, "allow");
    set(h, HDR_RULE, &plan.decided.rule);
    set(h, HDR_POLICY, &plan.decided.policy_label);
    info!(request_id = %arrival.id, client = %arrival.client, method = %arrival.method, path = %arrival.path, status = status.as_u16(), "answered from the gateways' model lists");
    resp
}

/// The error answer to a refused request, on record before the application
/// hears of it (when the audit is durable before responses).
pub async fn refused(ingress: &Ingress, arrival: &Arrival, r: Refused) -> http::Response<Body> {
    let Refused { error, known } = r;
    info!(request_id = %arrival.id, client = %arrival.client, method = %arrival.method, path = %arrival.path, status = error.status.as_u16(), code = error.code, "refused");
    let mut rec = record(
        arrival,
        &known,
        known.decided.as_ref(),
        error.decision,
        error.status.as_u16(),
        None,
    );
    rec.outcome = format!("refused:{}", error.code);
    rec.latency_ms = arrival.started.elapsed().as_secs_f64() * 1e3;
    ingress
        .metrics
        .request(&rec.tier, "", &rec.decision, rec.status);
    if ingress.audit_sync {
        if let Err(ae) = ingress.audit.append(rec).await {
            warn!(error = %ae, "audit record not written");
        }
    } else {
        ingress.audit.append_later(rec);
    }
    error.into_response(&arrival.id)
}

/// The body stage that writes the audit record when the body ends: a clean
/// end only once the record is durable (when so configured), a failure after
/// recording it, a drop (the client went away) as `client_cancelled`.
struct AuditTail {
    rec: Option<NewRecord>,
    sync: bool,
    writer: AuditWriter,
    started: Instant,
    bytes_out: u64,
}

impl AuditTail {
    fn take(&mut self, outcome: &str) -> Option<NewRecord> {
        let mut rec = self.rec.take()?;
        rec.outcome = outcome.to_owned();
        rec.bytes_out = self.bytes_out;
        rec.latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        Some(rec)
    }
}

impl Stage for AuditTail {
    async fn on_event(&mut self, event: Event) -> Step {
        match event {
            Event::Data(d) => {
                self.bytes_out += d.len() as u64;
                Step::Data(d)
            }
            Event::End => {
                let Some(rec) = self.take("complete") else {
                    return Step::End(Bytes::new());
                };
                if !self.sync {
                    self.writer.append_later(rec);
                    return Step::End(Bytes::new());
                }
                match self.writer.append(rec).await {
                    Ok(_) => Step::End(Bytes::new()),
                    Err(e) => {
                        // No record, no clean ending: fail closed.
                        warn!(error = %e, "audit record not written; ending the response with an error");
                        Step::Fail(
                            Bytes::new(),
                            BodyError(format!("audit log unavailable: {e}")),
                        )
                    }
                }
            }
            Event::Failed(e) => {
                if let Some(rec) = self.take("upstream_failed") {
                    if let Err(ae) = self.writer.append(rec).await {
                        warn!(error = %ae, "audit record not written");
                    }
                }
                Step::Fail(Bytes::new(), e)
            }
        }
    }
}

impl Drop for AuditTail {
    fn drop(&mut self) {
        if let Some(rec) = self.take("client_cancelled") {
            self.writer.append_later(rec);
        }
    }
}

/// The body stage that tells a streaming client why its stream broke: an
/// SSE `error` event before the failure, never a silent truncation.
struct SseErrors;

/// Tells the object map what a successful answer did: the stored object it
/// created lives in the region that answered; the one it deleted is gone.
/// Looks at the start of the body as it passes, without holding it back.
pub struct ObjectTail {
    /// The map.
    pub map: crate::objects::ObjectMap,
    /// The region that answered.
    pub region: residency_proto::RegionId,
    /// The tier the request was decided at.
    pub tier: Tier,
    /// When the request arrived.
    pub now_ms: u64,
    /// Whether the answer may carry a new object's id.
    pub creates: bool,
    /// The object a `DELETE` removes.
    pub deletes: Option<String>,
    /// The start of the body, while the id is looked for.
    pub head: Vec<u8>,
}

/// Bytes before the end of what was already searched that a new search
/// repeats: room for an `"id" : "…"` that a chunk boundary cut.
const ID_OVERLAP: usize = 256;

impl ObjectTail {
    /// Looks for the created id in what arrived since the last look (and
    /// the overlap before it), not in the whole head again.
    fn look(&mut self, searched: usize) -> bool {
        let from = searched.saturating_sub(ID_OVERLAP);
        match crate::plan::objects::created(&self.head[from..]) {
            Some(id) => {
                self.map.record(&id, &self.region, self.tier, self.now_ms);
                true
            }
            None => false,
        }
    }
}

impl Stage for ObjectTail {
    async fn on_event(&mut self, event: Event) -> Step {
        use crate::plan::objects::CREATED_LOOKAHEAD;
        match event {
            Event::Data(d) => {
                if self.creates && self.head.len() < CREATED_LOOKAHEAD {
                    let room = CREATED_LOOKAHEAD - self.head.len();
                    let searched = self.head.len();
                    self.head.extend_from_slice(&d[..d.len().min(room)]);
                    if self.look(searched) || self.head.len() >= CREATED_LOOKAHEAD {
                        self.creates = false;
                        self.head = Vec::new();
                    }
                }
                Step::Data(d)
            }
            Event::End => {
                if let Some(id) = self.deletes.take() {
                    self.map.forget(&id);
                }
                Step::End(Bytes::new())
            }
            Event::Failed(e) => Step::Fail(Bytes::new(), e),
        }
    }
}

impl Stage for SseErrors {
    async fn on_event(&mut self, event: Event) -> Step {
        match event {
            Event::Data(d) => Step::Data(d),
            Event::End => Step::End(Bytes::new()),
            Event::Failed(e) => Step::Fail(sse_error(&e.0), e),
        }
    }
}

fn sse_error(message: &str) -> Bytes {
    let body = serde_json::json!({
        "error": {"message": message, "type": "stream_interrupted", "code": "upstream_interrupted"}
    });
    Bytes::from(format!("event: error\ndata: {body}\n\n"))
}
