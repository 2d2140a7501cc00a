//! A small OpenAI-compatible model provider for the demo and the tests. It
//! serves the OpenAI API surface the demo tour and the SDK checks use (chat
//! completions, completions, embeddings, responses, conversations, files,
//! uploads, batches, vector stores, moderations, images, audio, models) and
//! Anthropic's `POST /v1/messages`, strictly like a real provider: a wrong key
//! is a 401, a missing required field a 400, an unknown object a 404, each
//! with OpenAI-style error JSON (see `api`). Streams come as several SSE
//! events with small delays. It records what it received so a test can check
//! which region's provider saw a request.
//!
//! Its memory is bounded whatever the load: it counts every request and open
//! connection, but keeps only the last [`MockOptions::keep_last`] requests and
//! at most [`MockOptions::keep_objects`] stored objects of each kind.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::gateway::upstream::sigv4::AwsCredentials;
use crate::ingress::{Body, BodyError};

mod api;
mod cloud;
mod multipart;
pub(crate) mod oauth;
pub(super) mod sigv4;
mod store;

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Name shown in answers, e.g. the region it stands for.
    pub label: String,
    /// Content chunks in a streamed answer.
    pub chunks: usize,
    /// Delay before each streamed chunk.
    pub chunk_delay: Duration,
    /// If set, a streamed answer waits for a permit before its last chunk.
    pub hold_last_chunk: Option<Arc<Semaphore>>,
    /// How many of the most recent requests [`MockProvider::received`] keeps.
    pub keep_last: usize,
    /// The key clients must send as `authorization: Bearer KEY` (or, on
    /// `/v1/messages`, as `x-api-key`); `None` accepts any non-empty key.
    pub api_key: Option<String>,
    /// How many stored objects of each kind (files, batches, responses…) it
    /// keeps; past that the oldest is evicted.
    pub keep_objects: usize,
    /// Which cloud's front door it plays (auth scheme and URL layout).
    pub cloud: MockCloud,
    /// Echo mode: a chat completion answers `You said: ` and the last user
    /// message (as a tool call's `{"text": …}` arguments when the request
    /// offers tools), streamed in pieces of this many bytes, so a test sees
    /// what the provider was sent come back split anywhere.
    pub echo_split: Option<usize>,
}

/// The cloud a mock provider stands for.
#[derive(Debug, Clone, Default)]
pub enum MockCloud {
    /// OpenAI itself: `/v1/…` with a bearer key ([`MockOptions::api_key`]).
    #[default]
    OpenAi,
    /// Azure OpenAI: `api-key` (or an Entra ID bearer token), the
    /// `/openai/v1/…` and `/openai/deployments/{name}/…?api-version=…`
    /// surfaces, only the listed deployments.
    Azure {
        /// The `api-key` header it accepts.
        api_key: Option<String>,
        /// The Entra ID bearer token it accepts.
        entra_token: Option<String>,
        /// The deployment names that exist.
        deployments: Vec<String>,
        /// The `api-version` required outside the v1 surface.
        api_version: String,
    },
    /// Bedrock's OpenAI-compatible endpoint: `/openai/v1/…`, a Bedrock API
    /// key or a SigV4 signature, only the listed model ids.
    Bedrock {
        /// The Bedrock API key it accepts as a bearer token.
        api_key: Option<String>,
        /// The AWS credentials and region whose SigV4 signatures it accepts.
        sigv4: Option<(AwsCredentials, String)>,
        /// The model ids that exist.
        models: Vec<String>,
    },
    /// Vertex AI's OpenAI-compatible endpoint:
    /// `/v1/projects/{project}/locations/{location}/endpoints/openapi/…`
    /// with a bearer token it issued at `POST /token` for a JWT signed by
    /// the service account's key.
    Vertex {
        /// The project id in the path.
        project: String,
        /// The location in the path.
        location: String,
        /// The model ids that exist (`google/gemini-2.0-flash`).
        models: Vec<String>,
        /// The service account allowed to get tokens.
        client_email: String,
        /// Its public key (PEM).
        public_key_pem: String,
        /// How long an issued token lives.
        token_lifetime: Duration,
    },
}

/// What the mock received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string (without `?`).
    pub query: String,
    /// The `authorization` header, if any.
    pub authorization: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// A running mock provider.
#[derive(Debug, Clone)]
pub struct MockProvider {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
}

/// What the mock counts and keeps; bounded by `keep_last`.
#[derive(Debug)]
struct State {
    keep_last: usize,
    received: Mutex<VecDeque<ReceivedRequest>>,
    total: AtomicUsize,
    cancelled: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
    objects: Mutex<store::Objects>,
    /// The token endpoint, for a Vertex mock.
    issuer: Option<oauth::TokenIssuer>,
}

impl State {
    fn record(&self, r: ReceivedRequest) {
        self.total.fetch_add(1, Ordering::SeqCst);
        if self.keep_last == 0 {
            return;
        }
        if let Ok(mut q) = self.received.lock() {
            if q.len() == self.keep_last {
                q.pop_front();
            }
            q.push_back(r);
        }
    }
}

/// Counts a connection open while it lives.
struct OpenGuard(Arc<State>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            label: "mock".into(),
            chunks: 5,
            chunk_delay: Duration::from_millis(30),
            hold_last_chunk: None,
            keep_last: 1000,
            api_key: None,
            keep_objects: 10_000,
            cloud: MockCloud::OpenAi,
            echo_split: None,
        }
    }
}

impl MockProvider {
    /// Binds `addr` (use port 0) and serves until [`MockProvider::stop`].
    pub async fn start(addr: SocketAddr, opts: MockOptions) -> std::io::Result<MockProvider> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let issuer = match &opts.cloud {
            MockCloud::Vertex {
                client_email,
                public_key_pem,
                token_lifetime,
                ..
            } => Some(
                oauth::TokenIssuer::new(
                    client_email,
                    public_key_pem,
                    &format!("http://{addr}/token"),
                    *token_lifetime,
                )
                .map_err(std::io::Error::other)?,
            ),
            _ => None,
        };
        let state = Arc::new(State {
            keep_last: opts.keep_last,
            received: Mutex::new(VecDeque::new()),
            total: AtomicUsize::new(0),
            cancelled: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            objects: Mutex::new(store::Objects::new(opts.keep_objects)),
            issuer,
        });
        let shutdown = CancellationToken::new();
        let opts = Arc::new(opts);
        let (st, stop) = (state.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(x) => x, Err(_) => continue },
                    () = stop.cancelled() => return,
                };
                let _ = tcp.set_nodelay(true);
                let now = st.open.fetch_add(1, Ordering::SeqCst) + 1;
                st.peak.fetch_max(now, Ordering::SeqCst);
                let open = OpenGuard(st.clone());
                let (st, opts, stop) = (st.clone(), opts.clone(), stop.clone());
                tokio::spawn(async move {
                    let _open = open;
                    let svc = hyper::service::service_fn(move |req| {
                        let (st, opts) = (st.clone(), opts.clone());
                        async move { Ok::<_, Infallible>(serve(req, &st, &opts).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc);
                    tokio::select! {
                        _ = conn => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        Ok(MockProvider {
            addr,
            state,
            shutdown,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v1`, the base URL a gateway should use.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The most recent requests received (at most `keep_last`), oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.state
            .received
            .lock()
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many requests were received in all.
    pub fn received_total(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// The most client connections that were open at once.
    pub fn peak_connections(&self) -> usize {
        self.state.peak.load(Ordering::SeqCst)
    }

    /// Access tokens a Vertex mock's token endpoint issued.
    pub fn tokens_issued(&self) -> usize {
        self.state.issuer.as_ref().map_or(0, |i| i.issued())
    }

    /// `http://ADDR/token`, a Vertex mock's token endpoint.
    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Streamed answers whose reader went away before the end.
    pub fn cancelled_streams(&self) -> usize {
        self.state.cancelled.load(Ordering::SeqCst)
    }

    /// Stops serving and drops open connections.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

fn full(status: StatusCode, v: Value) -> http::Response<Body> {
    let mut r = http::Response::new(
        Full::new(Bytes::from(v.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert("x-request-id", http::HeaderValue::from_static("mock-req"));
    r
}

async fn serve(
    req: http::Request<Incoming>,
    state: &Arc<State>,
    opts: &MockOptions,
) -> http::Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    state.record(ReceivedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let translated = match cloud::front_door(&opts.cloud, state.issuer.as_ref(), &parts, &body) {
        Ok(t) => t,
        Err(answered) => return *answered,
    };
    if !matches!(opts.cloud, MockCloud::OpenAi) {
        // The cloud's own auth was checked at its front door.
        let request = api::Request {
            method: &parts.method,
            path: &translated.path,
            query: &translated.query,
            headers: &parts.headers,
            body: &body,
        };
        return api::route(&request, state, opts);
    }
    let anthropic = path == "/v1/messages";
    let bearer = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "));
    // Anthropic's SDK sends `x-api-key`; our gateway sends a bearer key on
    // every path, so `/v1/messages` takes either.
    let x_api_key = anthropic
        .then(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .flatten();
    let key = x_api_key.or(bearer).filter(|k| !k.is_empty());
    match (key, &opts.api_key) {
        (None, _) => {
            return api::ApiError::unauthorized(
                "You didn't provide an API key. Send it as 'authorization: Bearer KEY'.",
                anthropic,
            )
            .into_response()
        }
        (Some(k), Some(want)) if k != want => {
            return api::ApiError::unauthorized("Incorrect API key provided.", anthropic)
                .into_response()
        }
        _ => {}
    }
    let request = api::Request {
        method: &parts.method,
        path: &path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
    };
    api::route(&request, state, opts)
}

/// Counts a stream as cancelled if it is dropped before its end.
struct EndGuard {
    done: bool,
    state: Arc<State>,
}

impl EndGuard {
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if !self.done {
            self.state.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `text` split into the [`MockOptions::chunks`] pieces of a stream.
/// `text` cut into pieces of at most `n` bytes, on character boundaries.
fn split_bytes(text: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + n.max(1)).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(text[start..end].to_owned());
        start = end;
    }
    out
}

fn pieces(opts: &MockOptions, text: &str) -> Vec<String> {
    if let Some(n) = opts.echo_split {
        return split_bytes(text, n);
    }
    let words: Vec<String> = text.split(' ').map(str::to_owned).collect();
    let n = opts.chunks.max(1);
    if n >= words.len() {
        (0..n)
            .map(|i| format!("{} ", words[i % words.len()]))
            .collect()
    } else {
        let per = words.len().div_ceil(n);
        words
            .chunks(per)
            .map(|c| format!("{} ", c.join(" ")))
            .collect()
    }
}

/// Streams `frames`, each after [`MockOptions::chunk_delay`]; frame
/// `gate_at` first waits for [`MockOptions::hold_last_chunk`].
fn stream_frames(
    opts: &MockOptions,
    state: Arc<State>,
    frames: Vec<Bytes>,
    gate_at: Option<usize>,
    content_type: &'static str,
) -> http::Response<Body> {
    let delay = opts.chunk_delay;
    let gate = opts.hold_last_chunk.clone();
    let guard = EndGuard { done: false, state };
    let s = futures_util::stream::unfold((0usize, guard), move |(i, guard)| {
        let frame = frames.get(i).cloned();
        let gate = gate.clone().filter(|_| gate_at == Some(i));
        async move {
            let Some(frame) = frame else {
                guard.finish();
                return None;
            };
            tokio::time::sleep(delay).await;
            if let Some(g) = gate {
                if let Ok(p) = g.acquire().await {
                    p.forget();
                }
            }
            Some((Ok::<_, BodyError>(Frame::data(frame)), (i + 1, guard)))
        }
    });
    let mut r = http::Response::new(StreamBody::new(s).boxed_unsync());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use serde_json::json;

    const KEY: &str = "sk-mock-test";

    async fn strict_mock() -> MockProvider {
        MockProvider::start(
            "127.0.0.1:0".parse().unwrap(),
            MockOptions {
                api_key: Some(KEY.into()),
                chunk_delay: Duration::from_millis(1),
                ..MockOptions::default()
            },
        )
        .await
        .unwrap()
    }

    /// Sends a request with the right key unless `headers` names another.
    async fn call(
        mock: &MockProvider,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> (StatusCode, http::HeaderMap, Bytes) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", mock.addr()));
        if !headers.iter().any(|(k, _)| *k == "authorization") {
            req = req.header("authorization", format!("Bearer {KEY}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = client
            .request(req.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    async fn call_json(
        mock: &MockProvider,
        method: &str,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let (status, _, b) = call(
            mock,
            method,
            path,
            &[("content-type", "application/json")],
            if body.is_null() {
                String::new()
            } else {
                body.to_string()
            },
        )
        .await;
        (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    fn multipart(fields: &[(&str, Option<&str>, &str)]) -> (String, String) {
        let mut body = String::new();
        for (name, filename, data) in fields {
            body.push_str("--BOUNDARY\r\nContent-Disposition: form-data; name=\"");
            body.push_str(name);
            body.push('"');
            if let Some(f) = filename {
                body.push_str(&format!(
                    "; filename=\"{f}\"\r\nContent-Type: application/octet-stream"
                ));
            }
            body.push_str("\r\n\r\n");
            body.push_str(data);
            body.push_str("\r\n");
        }
        body.push_str("--BOUNDARY--\r\n");
        ("multipart/form-data; boundary=BOUNDARY".into(), body)
    }

    async fn upload(mock: &MockProvider, purpose: &str, name: &str, data: &str) -> Value {
        let (ct, body) = multipart(&[("purpose", None, purpose), ("file", Some(name), data)]);
        let (status, _, b) = call(mock, "POST", "/v1/files", &[("content-type", &ct)], body).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn keeps_only_the_last_requests_but_counts_all() {
        let mock = MockProvider::start(
            "127.0.0.1:0".parse().unwrap(),
            MockOptions {
                keep_last: 2,
                ..MockOptions::default()
            },
        )
        .await
        .unwrap();
        for i in 0..5 {
            let body = format!(r#"{{"model":"mock-embed","input":"n{i}"}}"#);
            let (status, _, _) = call(&mock, "POST", "/v1/embeddings", &[], body).await;
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(mock.received_total(), 5);
        let kept: Vec<_> = mock.received().iter().map(|r| r.body.clone()).collect();
        assert_eq!(
            kept,
            vec![
                Bytes::from(r#"{"model":"mock-embed","input":"n3"}"#),
                Bytes::from(r#"{"model":"mock-embed","input":"n4"}"#)
            ]
        );
        mock.stop();
    }

    #[tokio::test]
    async fn a_missing_or_wrong_key_is_a_401() {
        let mock = strict_mock().await;
        let chat = r#"{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}"#;
        for auth in ["", "Bearer sk-wrong", "Basic abc"] {
            let (status, _, b) = call(
                &mock,
                "POST",
                "/v1/chat/completions",
                &[("authorization", auth)],
                chat,
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth}");
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["error"]["code"], "invalid_api_key");
            assert_eq!(v["error"]["type"], "invalid_request_error");
        }
        let (status, _, _) = call(&mock, "POST", "/v1/chat/completions", &[], chat).await;
        assert_eq!(status, StatusCode::OK);
        // Anthropic clients send x-api-key; a wrong one is an Anthropic-style 401.
        let msg = r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
        let h = [
            ("authorization", ""),
            ("x-api-key", "sk-wrong"),
            ("anthropic-version", "2023-06-01"),
        ];
        let (status, _, b) = call(&mock, "POST", "/v1/messages", &h, msg).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            serde_json::from_slice::<Value>(&b).unwrap()["error"]["type"],
            "authentication_error"
        );
        let h = [
            ("authorization", ""),
            ("x-api-key", KEY),
            ("anthropic-version", "2023-06-01"),
        ];
        let (status, _, _) = call(&mock, "POST", "/v1/messages", &h, msg).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_missing_required_field_is_a_400_naming_it() {
        let mock = strict_mock().await;
        let cases = [
            (
                "/v1/chat/completions",
                json!({"messages":[{"role":"user","content":"hi"}]}),
                "model",
            ),
            (
                "/v1/chat/completions",
                json!({"model":"mock-gpt"}),
                "messages",
            ),
            ("/v1/embeddings", json!({"model":"mock-embed"}), "input"),
            ("/v1/responses", json!({"input":"hi"}), "model"),
            (
                "/v1/batches",
                json!({"endpoint":"/v1/chat/completions","completion_window":"24h"}),
                "input_file_id",
            ),
            ("/v1/vector_stores/vs_x/files", json!({}), "file_id"),
            (
                "/v1/uploads",
                json!({"filename":"a","purpose":"batch","mime_type":"text/plain"}),
                "bytes",
            ),
            ("/v1/moderations", json!({}), "input"),
            ("/v1/images/generations", json!({"n":1}), "prompt"),
            (
                "/v1/audio/speech",
                json!({"model":"tts","input":"hi"}),
                "voice",
            ),
        ];
        for (path, body, param) in cases {
            let (status, v) = call_json(&mock, "POST", path, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {v}");
            assert_eq!(v["error"]["param"], param, "{path}: {v}");
            assert_eq!(v["error"]["type"], "invalid_request_error");
        }
        let (ct, body) = multipart(&[("file", Some("a.jsonl"), "{}")]);
        let (status, _, b) = call(&mock, "POST", "/v1/files", &[("content-type", &ct)], body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            serde_json::from_slice::<Value>(&b).unwrap()["error"]["param"],
            "purpose"
        );
        let (status, _, _) = call(
            &mock,
            "POST",
            "/v1/files",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let h = [("content-type", "application/json")];
        let (status, _, b) = call(
            &mock,
            "POST",
            "/v1/messages",
            &h,
            r#"{"model":"m","max_tokens":8,"messages":[]}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "no anthropic-version");
        assert_eq!(
            serde_json::from_slice::<Value>(&b).unwrap()["type"],
            "error"
        );
    }

    #[tokio::test]
    async fn unknown_objects_and_paths_are_404s() {
        let mock = strict_mock().await;
        for (method, path) in [
            ("GET", "/v1/files/file-nope"),
            ("GET", "/v1/files/file-nope/content"),
            ("DELETE", "/v1/files/file-nope"),
            ("GET", "/v1/batches/batch_nope"),
            ("GET", "/v1/vector_stores/vs_nope"),
            ("GET", "/v1/responses/resp_nope"),
            ("GET", "/v1/responses/resp_nope/input_items"),
            ("GET", "/v1/conversations/conv_nope"),
            ("GET", "/v1/chat/completions/chatcmpl-nope"),
            ("GET", "/v1/models/gpt-nope"),
            ("GET", "/v1/nothing-here"),
            ("PUT", "/v1/files"),
        ] {
            let (status, v) = call_json(&mock, method, path, Value::Null).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {v}");
            assert!(v["error"]["message"].is_string());
        }
        let (status, v) = call_json(
            &mock,
            "POST",
            "/v1/responses",
            json!({"model":"mock-gpt","input":"hi","previous_response_id":"resp_nope"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"]["param"], "previous_response_id");
    }

    #[tokio::test]
    async fn a_batch_needs_an_uploaded_batch_file() {
        let mock = strict_mock().await;
        let batch = |id: &str| json!({"input_file_id":id,"endpoint":"/v1/chat/completions","completion_window":"24h"});
        let (status, v) = call_json(&mock, "POST", "/v1/batches", batch("file-missing")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
        assert_eq!(v["error"]["param"], "input_file_id");
        let other = upload(&mock, "user_data", "notes.txt", "hello").await;
        let (status, _) = call_json(
            &mock,
            "POST",
            "/v1/batches",
            batch(other["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let f = upload(
            &mock,
            "batch",
            "in.jsonl",
            "{\"custom_id\":\"a\"}\n{\"custom_id\":\"b\"}\n",
        )
        .await;
        assert!(f["id"].as_str().unwrap().starts_with("file-"));
        let (status, b) = call_json(
            &mock,
            "POST",
            "/v1/batches",
            batch(f["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert!(b["id"].as_str().unwrap().starts_with("batch_"));
        assert_eq!(b["request_counts"]["total"], 2);
        let path = format!("/v1/batches/{}/cancel", b["id"].as_str().unwrap());
        let (_, c) = call_json(&mock, "POST", &path, Value::Null).await;
        assert_eq!(c["status"], "cancelled");
        let (_, _, content) = call(
            &mock,
            "GET",
            &format!("/v1/files/{}/content", f["id"].as_str().unwrap()),
            &[],
            "",
        )
        .await;
        assert_eq!(
            &content[..],
            b"{\"custom_id\":\"a\"}\n{\"custom_id\":\"b\"}\n"
        );
    }

    #[tokio::test]
    async fn a_streamed_response_ends_with_response_completed_and_is_stored() {
        let mock = strict_mock().await;
        let h = [("content-type", "application/json")];
        let (status, headers, b) = call(
            &mock,
            "POST",
            "/v1/responses",
            &h,
            r#"{"model":"mock-gpt","input":"hi","stream":true}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let text = String::from_utf8(b.to_vec()).unwrap();
        let events: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(events.first(), Some(&"response.created"));
        assert_eq!(events.last(), Some(&"response.completed"));
        assert!(events.contains(&"response.output_text.delta"));
        let last: Value = serde_json::from_str(
            text.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .next_back()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(last["type"], "response.completed");
        let id = last["response"]["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("resp_"));
        let (status, r) =
            call_json(&mock, "GET", &format!("/v1/responses/{id}"), Value::Null).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(r["status"], "completed");
        let (_, items) = call_json(
            &mock,
            "GET",
            &format!("/v1/responses/{id}/input_items"),
            Value::Null,
        )
        .await;
        assert_eq!(items["data"][0]["content"][0]["text"], "hi");
        let (status, _) = call_json(
            &mock,
            "POST",
            "/v1/responses",
            json!({"model":"mock-gpt","input":"again","previous_response_id":id}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) =
            call_json(&mock, "DELETE", &format!("/v1/responses/{id}"), Value::Null).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) =
            call_json(&mock, "GET", &format!("/v1/responses/{id}"), Value::Null).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn stored_objects_are_bounded_oldest_first() {
        let mock = MockProvider::start(
            "127.0.0.1:0".parse().unwrap(),
            MockOptions {
                keep_objects: 2,
                ..MockOptions::default()
            },
        )
        .await
        .unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (_, c) = call_json(&mock, "POST", "/v1/conversations", json!({})).await;
            ids.push(c["id"].as_str().unwrap().to_owned());
        }
        assert_ne!(ids[1], ids[2]);
        let (status, _) = call_json(
            &mock,
            "GET",
            &format!("/v1/conversations/{}", ids[0]),
            Value::Null,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = call_json(
            &mock,
            "GET",
            &format!("/v1/conversations/{}", ids[2]),
            Value::Null,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
}
