//! The one place internal failures become what the application sees: an HTTP
//! status and OpenAI-style error JSON `{"error":{"message","type","code"}}`.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use residency_proto::{ErrorCode, ErrorFrame};

use super::{Body, HDR_DECISION, HDR_REQUEST_ID};

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

    /// 400: reading the request body failed.
    pub fn body_read(message: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "body_read_failed",
            message,
        )
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

    /// The gateway refused or could not serve the request.
    pub fn from_frame(e: &ErrorFrame) -> Self {
        let (status, kind) = match e.code {
            ErrorCode::BadRequest => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            ErrorCode::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "gateway_error"),
            ErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "gateway_error"),
            ErrorCode::PolicyDenied => (
                StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
                "residency_policy_violation",
            ),
            _ => (StatusCode::BAD_GATEWAY, "gateway_error"),
        };
        let mut err = Self::new(status, kind, e.code.as_str(), e.message.clone());
        if e.code == ErrorCode::PolicyDenied {
            err.decision = "deny";
        }
        err
    }

    /// Names the policy version in force.
    pub fn with_policy(mut self, label: &str) -> Self {
        self.policy = Some(label.to_owned());
        self
    }

    /// The `GET /healthz` answer.
    pub fn healthy() -> http::Response<Body> {
        let mut r = http::Response::new(
            http_body_util::Full::new(Bytes::from_static(b"ok\n"))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
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
        let mut resp = http::Response::new(
            http_body_util::Full::new(Bytes::from(self.body_json()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
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
        resp
    }
}
