//! The frames agents and gateways exchange on a QUIC stream.
//!
//! A request stream carries, from the agent, one [`Frame::RequestHead`] and then
//! the request body as raw bytes until the stream is finished; from the gateway,
//! one [`Frame::ResponseHead`] (or a [`Frame::Error`]) and then the response body
//! as raw bytes. A clean finish means the body is complete; a reset means it is
//! not. The control stream, the first one an agent opens, starts with
//! [`Frame::Hello`] both ways, then the gateway's [`Frame::Models`], and then
//! carries pings, policy announcements and new model lists.
//!
//! Postcard encodes enum variants by index: append new variants, never reorder
//! or remove one.

use serde::{Deserialize, Serialize};

use crate::region::{Jurisdiction, RegionId};
use crate::tier::Tier;

/// One unit of the agent-gateway protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Frame {
    /// First frame on the control stream, both ways.
    Hello(Hello),
    /// First frame of a request stream, agent to gateway.
    RequestHead(RequestHead),
    /// First frame of the answer on a request stream, gateway to agent.
    ResponseHead(ResponseHead),
    /// The request was refused or failed before a response started.
    Error(ErrorFrame),
    /// Liveness probe on the control stream; the peer answers with `Pong`.
    Ping {
        /// Echoed back in the `Pong`.
        nonce: u64,
    },
    /// Answer to a `Ping`.
    Pong {
        /// The nonce of the `Ping` being answered.
        nonce: u64,
    },
    /// Control stream, gateway to agent: this policy version is available.
    PolicyAvailable {
        /// The newest verified version the gateway holds.
        version: u64,
    },
    /// First frame of a stream, agent to gateway: send me this policy version.
    PolicyFetch {
        /// The version wanted.
        version: u64,
    },
    /// A signed policy bundle (encoded `PolicyBundle`): the answer to
    /// `PolicyFetch`, or, from an operator, the first frame of a push.
    PolicyBundle {
        /// The encoded bundle.
        bundle: Vec<u8>,
    },
    /// The receiver verified, stored and activated this version.
    PolicyAck {
        /// The version now active.
        version: u64,
    },
    /// Control stream, gateway to agent: the models this gateway serves. Sent
    /// right after its `Hello` and again whenever the list changes.
    Models(ModelList),
}

/// The models a gateway serves, as it advertises them to its agents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// The gateway has no model map: it passes any model name on to its
    /// provider as sent (`models` is then empty).
    pub open: bool,
    /// The models served, by the name applications send.
    pub models: Vec<ModelOffer>,
}

/// One model a gateway serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOffer {
    /// The name applications send in `model`, e.g. `gpt-4o`.
    pub name: String,
    /// Other names applications may send for the same model.
    pub aliases: Vec<String>,
    /// The API paths it serves below `/v1/`, e.g. `chat/completions`;
    /// empty: every path.
    pub apis: Vec<String>,
    /// Where the provider processes requests for it.
    pub processing: Processing,
}

/// Where a provider processes a model's requests. A cross-region inference
/// profile or a global deployment processes data outside the gateway's region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Processing {
    /// In the gateway's own region.
    InRegion,
    /// Somewhere inside this jurisdiction (a data zone).
    Within(Jurisdiction),
    /// Anywhere the provider chooses.
    Global,
}

impl ModelList {
    /// The offer for `model`, by name or alias.
    pub fn offer(&self, model: &str) -> Option<&ModelOffer> {
        self.models
            .iter()
            .find(|m| m.name == model || m.aliases.iter().any(|a| a == model))
    }
}

impl ModelOffer {
    /// Whether it serves the API path `api` (below `/v1/`, no query), e.g.
    /// `chat/completions`.
    pub fn serves_api(&self, api: &str) -> bool {
        self.apis.is_empty()
            || self.apis.iter().any(|a| {
                api == a
                    || api
                        .strip_prefix(a.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

impl Processing {
    /// Where requests are processed, given the gateway region's
    /// jurisdiction: `None` for anywhere.
    pub fn jurisdiction(self, region: Option<Jurisdiction>) -> Option<Jurisdiction> {
        match self {
            Processing::InRegion => region,
            Processing::Within(j) => Some(j),
            Processing::Global => None,
        }
    }
}

impl std::fmt::Display for Processing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Processing::InRegion => f.write_str("region"),
            Processing::Within(j) => write!(f, "{j}"),
            Processing::Global => f.write_str("global"),
        }
    }
}

/// Who is speaking on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Role {
    /// A branch agent forwarding application requests.
    Agent,
    /// An in-region gateway.
    Gateway,
    /// An operator's tool (policy push).
    Admin,
}

/// The handshake on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's protocol version ([`crate::PROTOCOL_VERSION`]).
    pub protocol_version: u8,
    /// The sender's role.
    pub role: Role,
    /// The gateway's region; `None` from agents.
    pub region: Option<RegionId>,
    /// Software name and version, for logs.
    pub software: String,
}

/// The routing facts the agent decided, so the gateway can re-check them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteFacts {
    /// The region the agent chose for this request.
    pub region: RegionId,
    /// The request's sensitivity tier.
    pub tier: Tier,
    /// The version of the policy the decision was made under, if any.
    pub policy_version: Option<u64>,
}

/// An HTTP request's head, agent to gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHead {
    /// The id the agent gave the request (also in `x-residency-request-id`).
    pub request_id: String,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path and query as the application sent it, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The headers worth forwarding (never the application's credentials).
    pub headers: Vec<(String, String)>,
    /// Where and why this request is routed.
    pub route: RouteFacts,
}

/// An HTTP response's head, gateway to agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHead {
    /// HTTP status code from the provider.
    pub status: u16,
    /// The provider's headers worth passing back.
    pub headers: Vec<(String, String)>,
}

/// Why a gateway refused or could not serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request names a region this gateway does not serve.
    Misrouted,
    /// The request head or body was not acceptable.
    BadRequest,
    /// The provider could not be reached or failed before answering.
    UpstreamUnavailable,
    /// The provider did not answer in time.
    UpstreamTimeout,
    /// The gateway is shutting down or overloaded.
    Unavailable,
    /// Anything else; the message says what.
    Internal,
    /// The gateway's re-check of the decision refused the request.
    PolicyDenied,
    /// The peer's certificate does not permit this (a policy push without an
    /// admin or agent identity, a request from a probe identity).
    NotPermitted,
    /// This gateway does not serve the model the request names (its model
    /// map changed since it was advertised); another gateway may.
    ModelNotServed,
}

/// An error answer on a request stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable reason; never contains request content.
    pub message: String,
}

impl ErrorCode {
    /// A stable snake_case name, for logs and client errors.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Misrouted => "misrouted",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::Unavailable => "gateway_unavailable",
            ErrorCode::Internal => "gateway_internal_error",
            ErrorCode::PolicyDenied => "policy_denied",
            ErrorCode::NotPermitted => "not_permitted",
            ErrorCode::ModelNotServed => "model_not_found",
        }
    }

    /// Whether another gateway may succeed where this one failed: the agent
    /// then tries the next allowed endpoint. Every other code is final, since
    /// any gateway would answer the same.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::UpstreamUnavailable
                | ErrorCode::UpstreamTimeout
                | ErrorCode::Unavailable
                | ErrorCode::ModelNotServed
        )
    }

    /// The HTTP status an application sees for this refusal.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::NotPermitted => 403,
            ErrorCode::ModelNotServed => 404,
            ErrorCode::PolicyDenied => 451,
            ErrorCode::Unavailable => 503,
            ErrorCode::UpstreamTimeout => 504,
            ErrorCode::Misrouted | ErrorCode::UpstreamUnavailable | ErrorCode::Internal => 502,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_says_its_status_and_whether_another_gateway_may_succeed() {
        let all = [
            ErrorCode::Misrouted,
            ErrorCode::BadRequest,
            ErrorCode::UpstreamUnavailable,
            ErrorCode::UpstreamTimeout,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
            ErrorCode::PolicyDenied,
            ErrorCode::NotPermitted,
            ErrorCode::ModelNotServed,
        ];
        let retryable: Vec<&str> = all
            .iter()
            .filter(|c| c.retryable())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            retryable,
            [
                "upstream_unavailable",
                "upstream_timeout",
                "gateway_unavailable",
                "model_not_found"
            ]
        );
        let status: Vec<u16> = all.iter().map(|c| c.http_status()).collect();
        assert_eq!(status, [502, 400, 502, 504, 503, 502, 451, 403, 404]);
    }

    #[test]
    fn a_model_is_found_by_name_or_alias_and_serves_its_apis() {
        let list = ModelList {
            open: false,
            models: vec![ModelOffer {
                name: "gpt-4o".into(),
                aliases: vec!["gpt-4o-2024-08-06".into()],
                apis: vec!["chat/completions".into(), "responses".into()],
                processing: Processing::InRegion,
            }],
        };
        let m = list.offer("gpt-4o-2024-08-06").unwrap();
        assert_eq!(m.name, "gpt-4o");
        assert!(list.offer("gpt-4").is_none());
        assert!(m.serves_api("chat/completions"));
        assert!(m.serves_api("responses/resp_1/cancel"));
        assert!(!m.serves_api("responsesx"));
        assert!(!m.serves_api("embeddings"));
        let j = Jurisdiction::new("IN");
        assert_eq!(Processing::InRegion.jurisdiction(j), j);
        assert_eq!(Processing::Global.jurisdiction(j), None);
    }
}
