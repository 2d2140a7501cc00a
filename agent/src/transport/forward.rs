//! The forward stage: a planned request goes to the healthiest gateway of
//! the plan's first region that has one, on a new request stream. If that
//! attempt fails before any response byte, one other allowed endpoint is
//! tried. Never a region outside the plan.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use residency_proto::{Codec, ErrorFrame, Frame, RequestHead, ResponseHead, RouteFacts};
use tracing::warn;

use super::pool::{GatewayLink, GatewayPool};
use super::stream::any::Transport;
use super::stream::{read_frame, send_frame, Connection, RecvHalf, SendHalf, StreamError};
use super::STOP_CANCELLED;
use crate::body::{Body, BodyError};
use crate::plan::models::{self, Fit, Wanted};
use crate::plan::Plan;

/// What is sent: everything but the route, which each attempt fills in.
#[derive(Debug, Clone, Copy)]
pub struct Outbound<'a> {
    /// The agent's request id.
    pub request_id: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// The headers passed on to the gateway.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
    /// The tier the gateway is told and routing judges by: the plan's, or
    /// the redacted body's when values were replaced.
    pub tier: residency_proto::Tier,
}

/// A gateway's answer: its head, and its body as it arrives.
#[derive(Debug)]
pub struct Answer {
    /// The gateway that answered.
    pub link: Arc<GatewayLink>,
    /// The transport that carried the request.
    pub transport: Transport,
    /// Status and headers.
    pub head: ResponseHead,
    /// The body, relayed chunk by chunk; it fails (never ends cleanly) if
    /// the stream is reset or the connection lost.
    pub body: Body,
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardError {
    /// No gateway of the plan's regions is connected and healthy.
    NoGateway,
    /// Gateways of the plan's regions are up, but none serves the model
    /// there (or none processes it where the rule allows).
    NoModel {
        /// The model.
        model: String,
        /// Some gateway serves it, but processes it outside what the rule
        /// allows.
        processed_outside: bool,
    },
    /// The endpoint(s) tried failed before answering; the last reason.
    Failed(String),
    /// A gateway refused; another would answer the same, or it was the
    /// last one tried.
    Refused(ErrorFrame),
    /// The request head could not be encoded.
    Encode(String),
}

/// How one attempt at a gateway failed.
enum Attempt {
    /// Before any response byte: another allowed endpoint may be tried.
    Retry(String, ForwardError),
    /// An answer another gateway would repeat.
    Final(ForwardError),
}

/// Sends the request to the plan's candidates in order, with one retry on
/// another endpoint when the first fails before answering.
pub async fn forward(
    pool: &GatewayPool,
    codec: &Codec,
    plan: &Plan,
    out: Outbound<'_>,
) -> Result<Answer, ForwardError> {
    let mut tried: Vec<Arc<GatewayLink>> = Vec::new();
    let mut last = None;
    let want = Wanted {
        model: plan.decided.model.as_deref(),
        api: models::api_of(out.path),
        allow: plan.allow.as_ref(),
        tier: out.tier,
    };
    let fits = |l: &GatewayLink| models::fit(&l.models(), l.jurisdiction, &want) == Fit::Serves;
    for _ in 0..2 {
        let Some((link, conn)) = pool.pick(plan.candidates.iter().map(|c| &c.region), &tried, fits)
        else {
            if last.is_none() {
                last = no_model(pool, plan, &want);
            }
            break;
        };
        let head = RequestHead {
            request_id: out.request_id.to_owned(),
            method: out.method.to_owned(),
            path: out.path.to_owned(),
            headers: out.headers.to_vec(),
            route: RouteFacts {
                region: link.region.clone(),
                tier: out.tier,
                policy_version: plan.decided.policy_version,
            },
        };
        match exchange(&link, &conn, codec, head, out.body).await {
            Ok((head, body)) => {
                link.record_success();
                return Ok(Answer {
                    link,
                    transport: conn.transport(),
                    head,
                    body,
                });
            }
            Err(Attempt::Retry(why, err)) => {
                link.record_failure(&why);
                warn!(request_id = out.request_id, region = %link.region, endpoint = %link.name, reason = %why, "attempt failed before any response byte");
                tried.push(link);
                last = Some(err);
            }
            Err(Attempt::Final(err)) => return Err(err),
        }
    }
    Err(last.unwrap_or(ForwardError::NoGateway))
}

/// Why no gateway was picked when some are up in the plan's regions: none
/// serves the model (or none processes it where the rule allows).
fn no_model(pool: &GatewayPool, plan: &Plan, want: &Wanted<'_>) -> Option<ForwardError> {
    let model = want.model?;
    let links = pool.links();
    let up: Vec<Fit> = links
        .iter()
        .filter(|l| l.is_up() && plan.candidates.iter().any(|c| c.region == l.region))
        .map(|l| models::fit(&l.models(), l.jurisdiction, want))
        .collect();
    if up.is_empty() || up.contains(&Fit::Serves) {
        return None;
    }
    Some(ForwardError::NoModel {
        model: model.to_owned(),
        processed_outside: up.iter().any(|f| matches!(f, Fit::ProcessedOutside(_))),
    })
}

/// Sends the request on a new stream and waits for the response head. The
/// gateway must acknowledge the request within a few round trips, so a dead
/// gateway costs a fraction of a second, not an idle timeout.
async fn exchange<C: Connection>(
    link: &GatewayLink,
    conn: &C,
    codec: &Codec,
    head: RequestHead,
    body: &[u8],
) -> Result<(ResponseHead, Body), Attempt> {
    let retry = |why: String| Attempt::Retry(why.clone(), ForwardError::Failed(why));
    let (mut send, mut recv) = conn
        .open()
        .await
        .map_err(|e| retry(format!("gateway {} unavailable: {e}", link.name)))?;
    let acked = send.stopped();
    match send_frame(&mut send, codec, &Frame::RequestHead(head), body).await {
        Ok(()) => send.finish(),
        Err(StreamError::Encode(e)) => {
            return Err(Attempt::Final(ForwardError::Encode(e.to_string())))
        }
        Err(e) => return Err(retry(format!("gateway {} failed: {e}", link.name))),
    }
    // Large bodies take longer to be acknowledged: allow 1 MB/s on top.
    let ack_timeout = link.ack_timeout() + Duration::from_micros(body.len() as u64);
    let acked = tokio::time::timeout(ack_timeout, acked);
    tokio::pin!(acked);
    let got = {
        let read = read_frame(&mut recv, codec);
        tokio::pin!(read);
        let mut ack_pending = true;
        loop {
            tokio::select! {
                r = &mut read => break r,
                ok = &mut acked, if ack_pending => {
                    if ok.is_err() {
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
        Frame::ResponseHead(h) => Ok((h, relay(rest, recv))),
        Frame::Error(e) => {
            warn!(endpoint = %link.name, region = %link.region, code = e.code.as_str(), message = %e.message, "gateway refused");
            if e.code.retryable() {
                Err(Attempt::Retry(e.message.clone(), ForwardError::Refused(e)))
            } else {
                Err(Attempt::Final(ForwardError::Refused(e)))
            }
        }
        _ => Err(retry(format!(
            "gateway {} sent an unexpected frame",
            link.name
        ))),
    }
}

/// The first stage of an answer's body: bytes from the gateway as they
/// arrive. A reset or a lost connection fails the body, never ends it.
fn relay<R: RecvHalf>(first: Bytes, recv: R) -> Body {
    use http_body_util::BodyExt;
    let stream = futures_util::stream::unfold(Some((first, recv)), |state| async move {
        let (first, mut recv) = state?;
        if !first.is_empty() {
            return Some((
                Ok(hyper::body::Frame::data(first)),
                Some((Bytes::new(), recv)),
            ));
        }
        match recv.chunk().await {
            Ok(Some(chunk)) => Some((
                Ok(hyper::body::Frame::data(chunk)),
                Some((Bytes::new(), recv)),
            )),
            Ok(None) => None,
            Err(e) => {
                recv.stop(STOP_CANCELLED);
                warn!(error = %e, "gateway stream failed mid-response");
                let why = match e {
                    StreamError::Read(why) => why,
                    other => other.to_string(),
                };
                Some((
                    Err(BodyError(format!("the response was interrupted: {why}"))),
                    None,
                ))
            }
        }
    });
    http_body_util::StreamBody::new(stream).boxed_unsync()
}
