//! A small OpenAI-compatible model provider for the demo and the tests:
//! chat completions (plain and streamed as several SSE chunks with small
//! delays), completions, embeddings, responses and models. It records what it
//! received so a test can check which region's provider saw a request.
//!
//! Its memory is bounded whatever the load: it counts every request and open
//! connection, but keeps only the last [`MockOptions::keep_last`] requests.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::ingress::{Body, BodyError};

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
}

/// What the mock received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
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
        }
    }
}

impl MockProvider {
    /// Binds `addr` (use port 0) and serves until [`MockProvider::stop`].
    pub async fn start(addr: SocketAddr, opts: MockOptions) -> std::io::Result<MockProvider> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            keep_last: opts.keep_last,
            received: Mutex::new(VecDeque::new()),
            total: AtomicUsize::new(0),
            cancelled: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
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
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    state.record(ReceivedRequest {
        method: method.to_string(),
        path: path.clone(),
        authorization,
        body: body.clone(),
    });
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = json
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-gpt")
        .to_owned();
    let stream = json.get("stream").and_then(Value::as_bool) == Some(true);
    let text = format!("Hello from the mock provider in {}.", opts.label);
    match (&method, path.as_str()) {
        (&Method::GET, "/v1/models") => full(
            StatusCode::OK,
            json!({"object":"list","data":[
                {"id":"mock-gpt","object":"model","created":1_700_000_000,"owned_by":opts.label},
                {"id":"mock-embed","object":"model","created":1_700_000_000,"owned_by":opts.label}]}),
        ),
        (&Method::GET, p) if p.starts_with("/v1/models/") => full(
            StatusCode::OK,
            json!({"id": &p["/v1/models/".len()..], "object":"model","created":1_700_000_000,"owned_by":opts.label}),
        ),
        (&Method::POST, "/v1/chat/completions") if stream => {
            stream_chunks(opts, &text, state.clone(), move |i, piece| {
                json!({"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1_700_000_000,"model":model,
                       "choices":[{"index":0,"delta": if i == 0 {json!({"role":"assistant","content":piece})} else {json!({"content":piece})},
                                   "finish_reason":null}]})
            })
        }
        (&Method::POST, "/v1/chat/completions") => full(
            StatusCode::OK,
            json!({"id":"chatcmpl-mock","object":"chat.completion","created":1_700_000_000,"model":model,
                   "choices":[{"index":0,"message":{"role":"assistant","content":text},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":9,"completion_tokens":8,"total_tokens":17}}),
        ),
        (&Method::POST, "/v1/completions") if stream => {
            stream_chunks(opts, &text, state.clone(), move |_, piece| {
                json!({"id":"cmpl-mock","object":"text_completion","created":1_700_000_000,"model":model,
                   "choices":[{"index":0,"text":piece,"finish_reason":null}]})
            })
        }
        (&Method::POST, "/v1/completions") => full(
            StatusCode::OK,
            json!({"id":"cmpl-mock","object":"text_completion","created":1_700_000_000,"model":model,
                   "choices":[{"index":0,"text":text,"finish_reason":"stop"}]}),
        ),
        (&Method::POST, "/v1/embeddings") => {
            let n = match json.get("input") {
                Some(Value::Array(a)) => a.len().max(1),
                _ => 1,
            };
            let data: Vec<Value> = (0..n)
                .map(|i| json!({"object":"embedding","index":i,"embedding":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]}))
                .collect();
            full(
                StatusCode::OK,
                json!({"object":"list","data":data,"model":model,"usage":{"prompt_tokens":3,"total_tokens":3}}),
            )
        }
        (&Method::POST, "/v1/responses") => full(
            StatusCode::OK,
            json!({"id":"resp_mock","object":"response","created_at":1_700_000_000,"model":model,"status":"completed",
                   "output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":text}]}]}),
        ),
        _ => full(
            StatusCode::NOT_FOUND,
            json!({"error":{"message":format!("mock has no {method} {path}"),"type":"invalid_request_error","code":null}}),
        ),
    }
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

fn stream_chunks(
    opts: &MockOptions,
    text: &str,
    state: Arc<State>,
    chunk: impl Fn(usize, &str) -> Value + Send + 'static,
) -> http::Response<Body> {
    let words: Vec<String> = text.split(' ').map(str::to_owned).collect();
    let n = opts.chunks.max(1);
    let pieces: Vec<String> = if n >= words.len() {
        (0..n)
            .map(|i| format!("{} ", words[i % words.len()]))
            .collect()
    } else {
        let per = words.len().div_ceil(n);
        words
            .chunks(per)
            .map(|c| format!("{} ", c.join(" ")))
            .collect()
    };
    let delay = opts.chunk_delay;
    let gate = opts.hold_last_chunk.clone();
    let count = pieces.len();
    let guard = EndGuard { done: false, state };
    let s = futures_util::stream::unfold((0usize, guard), move |(i, guard)| {
        let piece = pieces.get(i).cloned();
        let gate = gate.clone();
        let ev = piece.as_ref().map(|p| chunk(i, p));
        async move {
            if i > count {
                guard.finish();
                return None;
            }
            tokio::time::sleep(delay).await;
            let data = match ev {
                Some(v) => {
                    if i + 1 == count {
                        if let Some(g) = gate {
                            if let Ok(p) = g.acquire().await {
                                p.forget();
                            }
                        }
                    }
                    format!("data: {v}\n\n")
                }
                None => "data: [DONE]\n\n".to_owned(),
            };
            Some((
                Ok::<_, BodyError>(Frame::data(Bytes::from(data))),
                (i + 1, guard),
            ))
        }
    });
    let mut r = http::Response::new(StreamBody::new(s).boxed_unsync());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

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
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        for i in 0..5 {
            let req = http::Request::post(format!("{}/embeddings", mock.base_url()))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(format!(r#"{{"input":"n{i}"}}"#))))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.into_body().collect().await.unwrap();
        }
        assert_eq!(mock.received_total(), 5);
        let kept: Vec<_> = mock.received().iter().map(|r| r.body.clone()).collect();
        assert_eq!(
            kept,
            vec![
                Bytes::from(r#"{"input":"n3"}"#),
                Bytes::from(r#"{"input":"n4"}"#)
            ]
        );
        mock.stop();
    }
}
