//! The read stage: who sent the request, when, to which API, and its body,
//! read up to the limit.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Limited};

use super::error::ApiError;
use crate::plan::DECISION_HEADERS;

/// Request headers the agent passes to the gateway (the gateway filters
/// with the same list again).
const FORWARD_HEADERS: &[&str] = crate::gateway::upstream::FORWARD_REQUEST_HEADERS;

/// What is known the moment a request arrives.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The agent's id for the request (`x-residency-request-id`).
    pub id: String,
    /// When it arrived.
    pub started: Instant,
    /// When it arrived, unix milliseconds.
    pub time_ms: u64,
    /// The client (behind a trusted reverse proxy, who the proxy says).
    pub client: SocketAddr,
    /// HTTP method.
    pub method: Method,
    /// HTTP path, without the query.
    pub path: String,
}

impl Arrival {
    /// Stamps a request as it arrives from `peer`.
    pub fn new<B>(geo: &crate::geo::Geo, req: &http::Request<B>, peer: SocketAddr) -> Self {
        let client = SocketAddr::new(
            geo.client_addr(
                peer.ip(),
                req.headers()
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            ),
            peer.port(),
        );
        Arrival {
            id: format!("req_{}", uuid::Uuid::now_v7().simple()),
            started: Instant::now(),
            time_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            client,
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
        }
    }
}

/// The OpenAI API paths the agent serves (the ingress router maps paths and
/// methods to them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiPath {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/responses`
    Responses,
    /// `GET /v1/models`, `GET /v1/models/{id}`
    Models,
    /// Any other endpoint under `/v1/` (files, uploads, batches, vector
    /// stores, images, audio, moderations, stored responses, conversations,
    /// stored chat completions, Anthropic messages, ...), passed through
    /// under the same rules.
    Other {
        /// `POST` (and the like): the request carries a body to judge.
        body: bool,
    },
}

impl ApiPath {
    /// The API a method and path (without a trailing slash) name; `None`
    /// outside `/v1/`.
    pub fn of(method: &Method, path: &str) -> Option<ApiPath> {
        let rest = path.strip_prefix("/v1/")?;
        let post = method == Method::POST;
        Some(match rest {
            "chat/completions" if post => ApiPath::ChatCompletions,
            "completions" if post => ApiPath::Completions,
            "embeddings" if post => ApiPath::Embeddings,
            "responses" if post => ApiPath::Responses,
            "models" if method == Method::GET => ApiPath::Models,
            r if r.starts_with("models/") && method == Method::GET => ApiPath::Models,
            _ => ApiPath::Other {
                body: post || method == Method::PUT || method == Method::PATCH,
            },
        })
    }

    /// Whether requests to it carry a body to judge.
    pub fn has_body(self) -> bool {
        !matches!(self, ApiPath::Models | ApiPath::Other { body: false })
    }
}

/// A request, read.
#[derive(Debug)]
pub struct Request {
    /// Which API.
    pub api: ApiPath,
    /// Path and query, as sent on.
    pub path_and_query: String,
    /// The headers passed on to the gateway (and scanned with the body).
    pub forwarded: Vec<(String, String)>,
    /// The headers the decision reads (the app's key, trusted labels, the
    /// conversation id), lowercase names.
    pub decision_headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

/// How long a request body may take to arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeouts {
    /// The whole body, from when the headers were read.
    pub total: Duration,
    /// Between two pieces of it.
    pub idle: Duration,
}

/// Reads a request to `api`: the headers that matter and the body, up to
/// `max_body` bytes (413 beyond) and within `timeouts` (408 beyond).
pub async fn request<B>(
    api: ApiPath,
    req: http::Request<B>,
    max_body: usize,
    timeouts: BodyTimeouts,
) -> Result<Request, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let (parts, body) = req.into_parts();
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max_body as u64 {
            return Err(ApiError::too_large(max_body));
        }
    }
    let body = read_body(body, max_body, timeouts).await?;
    Ok(Request {
        api,
        path_and_query,
        forwarded: pairs(&parts.headers, FORWARD_HEADERS, false),
        decision_headers: pairs(&parts.headers, &DECISION_HEADERS, true),
        body,
    })
}

/// The whole body: at most `max_body` bytes, within `timeouts`.
async fn read_body<B>(body: B, max_body: usize, timeouts: BodyTimeouts) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let deadline = tokio::time::Instant::now() + timeouts.total;
    let mut body = std::pin::pin!(Limited::new(body, max_body));
    // One piece (the usual case) is kept as it came; more are joined.
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    loop {
        let stall = tokio::time::Instant::now() + timeouts.idle;
        let frame = match tokio::time::timeout_at(stall.min(deadline), body.frame()).await {
            Ok(f) => f,
            Err(_) if stall < deadline => return Err(ApiError::body_stalled(timeouts.idle)),
            Err(_) => return Err(ApiError::body_too_slow(timeouts.total)),
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Some(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ApiError::too_large(max_body))
            }
            Some(Err(e)) => {
                return Err(ApiError::body_read(format!(
                    "cannot read request body: {e}"
                )))
            }
        };
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            None => joined.extend_from_slice(&data),
            Some(f) => {
                joined.extend_from_slice(&f);
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}

/// `(name, value)` for each of `names` present: the first value, or with
/// `every` each value of a repeated header in order. Values that are not
/// text are left out.
fn pairs(headers: &HeaderMap, names: &[&str], every: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in names {
        for v in headers
            .get_all(*name)
            .iter()
            .take(if every { usize::MAX } else { 1 })
        {
            if let Ok(v) = v.to_str() {
                out.push(((*name).to_owned(), v.to_owned()));
            }
        }
    }
    out
}

/// Borrowed `(name, value)` pairs, as the classifier takes them.
pub fn header_pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The fields of the body the agent reads itself.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Probe {
    #[serde(default)]
    model: Option<serde_json::Value>,
    #[serde(default)]
    user: Option<serde_json::Value>,
    #[serde(default)]
    store: Option<serde_json::Value>,
    #[serde(default)]
    previous_response_id: Option<serde_json::Value>,
    #[serde(default)]
    conversation: Option<serde_json::Value>,
}

impl Probe {
    /// The requested model, if the body names one as a string.
    pub fn model(&self) -> Option<&str> {
        self.model.as_ref().and_then(|m| m.as_str())
    }

    /// The body's `user` field, if a string.
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().and_then(|u| u.as_str())
    }

    /// Whether the body asks the provider to store the answer (`store: true`).
    pub fn store(&self) -> bool {
        self.store.as_ref().and_then(|s| s.as_bool()) == Some(true)
    }

    /// The conversation the body continues: `conversation` (a string or an
    /// object with an `id`), else `previous_response_id`.
    pub fn conversation(&self) -> Option<&str> {
        let conv = self.conversation.as_ref().and_then(|c| match c {
            serde_json::Value::String(s) => Some(s.as_str()),
            serde_json::Value::Object(o) => o.get("id").and_then(|v| v.as_str()),
            _ => None,
        });
        conv.or_else(|| self.previous_response_id.as_ref().and_then(|p| p.as_str()))
    }
}

/// 400 unless the body is one JSON object; the message says where it breaks.
/// Returns the fields the agent reads.
pub fn probe(body: &[u8]) -> Result<Probe, ApiError> {
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
    serde_json::from_slice::<Probe>(body).map_err(|e| json_error(&e))
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn json_errors_say_where() {
        let e = probe(b"{\n  \"model\": \"x\",\n  oops\n}").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("line 3"), "{}", e.message);
        assert!(probe(b"[1,2]").is_err());
        assert!(probe(b"   ").is_err());
        assert!(probe(b" {\"a\":1} ").is_ok());
        let p = probe(br#"{"model":"gpt-4o","user":"u1"}"#).unwrap();
        assert_eq!((p.model(), p.user()), (Some("gpt-4o"), Some("u1")));
    }
}
