//! The one place internal failures become what the application sees: an HTTP
//! status and OpenAI-style error JSON `{"error":{"message","type","code"}}`.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use residency_proto::{ErrorCode, ErrorFrame};

use super::{HDR_DECISION, HDR_REQUEST_ID};
use crate::body::Body;
use crate::plan::{Plan, Refusal, Why};
use crate::transport::forward::ForwardError;

/// An error answer to an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable; never contains request content.
    pub message: String,
    /// OpenAI error `type`.
    pub kind: &'static str,
    /// OpenAI error `code`.
    pub code: &'static str,
    /// Value of `x-residency-decision`.
    pub decision: &'static str,
    /// Value of `x-residency-policy`, when known.
    pub policy: Option<String>,
    /// The rule and tier the decision was made at, when one was made
    /// (`x-residency-rule`, `x-residency-tier`).
    pub decided: Option<Box<(String, residency_proto::Tier)>>,
    /// Whether retrying the same request can succeed; `false` is sent as
    /// `x-should-retry: false`, which the OpenAI and Anthropic SDKs obey.
    pub retry: bool,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> Self {
        ApiError {
            status,
            message,
            kind,
            code,
            decision: "error",
            policy: None,
            decided: None,
            retry: true,
        }
    }

    /// 400: the body is not valid JSON; the message says where.
    pub fn bad_json(message: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_json",
            message,
        )
    }

    /// 400: the body cannot be scanned completely (not UTF-8, nested too deep), so it
    /// is not forwarded.
    pub fn unscannable(reason: &crate::classify::UnscannableBody) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "unscannable_body",
            reason.to_string(),
        )
    }

    /// 413: the body exceeds the configured limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 404: no such API path.
    pub fn not_found(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!("Invalid URL ({method} {path})"),
        )
    }

    /// 405: the path exists but not for this method.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("{path} does not accept {method}"),
        )
    }

    /// 408: the request body stopped arriving for `idle`.
    pub fn body_stalled(idle: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!(
                "no part of the request body arrived for {} s (limits.body_idle_timeout_secs)",
                idle.as_secs()
            ),
        )
    }

    /// 408: the whole request body did not arrive within `total`.
    pub fn body_too_slow(total: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!(
                "the request body did not arrive within {} s (limits.body_read_timeout_secs)",
                total.as_secs()
            ),
        )
    }

    /// 451: the request names a stored object whose region it may not go to.
    pub fn object_elsewhere(message: String) -> Self {
        let mut e = Self::new(
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "residency_policy_violation",
            "object_region_not_allowed",
            message,
        );
        e.decision = "deny";
        e
    }

    /// 500: the object map's entry for an object the request names cannot be
    /// read; the request is not sent anywhere rather than guessed.
    pub fn object_map_damaged(id: &str) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "object_map_damaged",
            format!("the agent's record of where {id} lives is damaged; the request is not sent anywhere (see the agent log)"),
        );
        e.retry = false;
        e
    }

    /// 400: reading the request body failed.
    pub fn body_read(message: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "body_read_failed",
            message,
        )
    }

    /// 503: no gateway in the allowed regions serves the request's model.
    pub fn no_route_for_model(message: String) -> Self {
        let mut e = Self::no_route(message);
        e.code = "no_gateway_for_model";
        e
    }

    /// 503: no gateway in an allowed region is connected.
    pub fn no_route(message: String) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_compliant_route",
            "no_gateway_reachable",
            message,
        );
        e.decision = "no_route";
        e
    }

    /// 451: the policy refuses this request.
    pub fn policy_denied(rule: &str, reason: &str) -> Self {
        let mut e = Self::new(
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "residency_policy_violation",
            "policy_denied",
            format!("refused by residency policy rule {rule:?}: {reason}"),
        );
        e.decision = "deny";
        e
    }

    /// 451: the rule sends this request only redacted, and redaction could
    /// not make it less sensitive (the message names types, never values).
    pub fn redaction_failed(rule: &str, reason: String) -> Self {
        let mut e = Self::new(
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "residency_policy_violation",
            "redaction_failed",
            format!("residency policy rule {rule:?} sends this request only redacted: {reason}"),
        );
        e.decision = "deny";
        e.retry = false;
        e
    }

    /// 451: no valid policy is active and the request is too sensitive to
    /// send anywhere without one (fail closed).
    pub fn no_policy(tier: residency_proto::Tier) -> Self {
        let mut e = Self::new(
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "residency_policy_violation",
            "no_active_policy",
            format!("no valid residency policy is active, so {tier} data is not sent anywhere"),
        );
        e.decision = "deny";
        e
    }

    /// 502: the gateway failed before answering.
    pub fn gateway_failed(message: String) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "gateway_error",
            "gateway_failed",
            message,
        )
    }

    /// The gateway refused or could not serve the request: the status the
    /// proto code maps to ([`ErrorCode::http_status`]).
    pub fn from_frame(e: &ErrorFrame) -> Self {
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let kind = match e.code {
            ErrorCode::BadRequest => "invalid_request_error",
            ErrorCode::PolicyDenied => "residency_policy_violation",
            ErrorCode::NotPermitted => "permission_error",
            _ => "gateway_error",
        };
        let mut err = Self::new(status, kind, e.code.as_str(), e.message.clone());
        if e.code == ErrorCode::PolicyDenied {
            err.decision = "deny";
        }
        err
    }

    /// The decision core refused the request before anything was sent.
    pub fn from_refusal(r: &Refusal) -> Self {
        let d = &r.decided;
        let mut e = match &r.why {
            Why::NoPolicy => Self::no_policy(d.tier),
            Why::Denied { reason } => Self::policy_denied(&d.rule, reason),
            Why::NoRegion => Self::no_route(format!(
                "no configured region may receive {} data (rule {})",
                d.tier, d.rule
            )),
            Why::ObjectElsewhere {
                id,
                region,
                other: Some((other, other_region)),
            } => Self::object_elsewhere(format!(
                "the request names {id}, which lives in {region}, and {other}, which lives in {other_region}; one request cannot go to both"
            )),
            Why::ObjectElsewhere { id, region, .. } => Self::object_elsewhere(format!(
                "{id} lives in {region}, which rule {} does not allow for {} data; it is not sent anywhere else",
                d.rule, d.tier
            )),
        }
        .with_policy(&d.policy_label);
        // A refusal is the decision's own: the same request is refused again.
        e.retry = false;
        e.decided = Some(Box::new((d.rule.clone(), d.tier)));
        e
    }

    /// No gateway of the plan answered.
    pub fn from_forward(e: &ForwardError, plan: &Plan) -> Self {
        match e {
            ForwardError::NoGateway => Self::no_route(format!(
                "no healthy gateway for {} data in the allowed jurisdictions {} (regions tried: {})",
                plan.decided.tier,
                plan.jurisdictions().join(", "),
                plan.candidates
                    .iter()
                    .map(|c| c.region.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            ForwardError::NoModel {
                model,
                processed_outside,
            } => Self::no_route_for_model(format!(
                "no gateway in the allowed regions ({}) serves model {model:?} for {} data{}; it is not sent anywhere else",
                plan.candidates
                    .iter()
                    .map(|c| c.region.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                plan.decided.tier,
                if *processed_outside {
                    " where the rule allows it to be processed (a gateway serving it processes it outside the allowed jurisdictions)"
                } else {
                    ""
                },
            )),
            ForwardError::Failed(why) => Self::gateway_failed(why.clone()),
            ForwardError::Refused(frame) => Self::from_frame(frame),
            ForwardError::Encode(why) => Self::body_read(why.clone()),
        }
        .with_policy(&plan.decided.policy_label)
    }

    /// Names the policy version in force.
    pub fn with_policy(mut self, label: &str) -> Self {
        self.policy = Some(label.to_owned());
        self
    }

    /// The `GET /healthz` answer.
    pub fn healthy() -> http::Response<Body> {
        let mut r = http::Response::new(crate::body::full(Bytes::from_static(b"ok\n")));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        r
    }

    /// The JSON body.
    pub fn body_json(&self) -> String {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "code": self.code,
                "param": null,
            }
        })
        .to_string()
    }

    /// The full HTTP response.
    pub fn into_response(self, request_id: &str) -> http::Response<Body> {
        let mut resp = http::Response::new(crate::body::full(self.body_json()));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert(HDR_REQUEST_ID, v);
        }
        h.insert(HDR_DECISION, HeaderValue::from_static(self.decision));
        if let Some(v) = self.policy.and_then(|p| HeaderValue::from_str(&p).ok()) {
            h.insert(super::HDR_POLICY, v);
        }
        if let Some((rule, tier)) = self.decided.as_deref() {
            if let Ok(v) = HeaderValue::from_str(rule) {
                h.insert(super::HDR_RULE, v);
            }
            h.insert(super::HDR_TIER, HeaderValue::from_static(tier.as_str()));
        }
        if !self.retry {
            h.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        resp
    }
}
