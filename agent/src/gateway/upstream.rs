//! The gateway's HTTP(S) client to the model provider's in-region endpoint.

pub mod sigv4;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::UpstreamConfig;
use crate::transport::tls::{provider, read_certs, TlsError};

/// Request headers passed on to the provider; everything else is dropped (the
/// application's own credentials above all: the gateway adds the provider key).
pub const FORWARD_REQUEST_HEADERS: &[&str] = &[
    "content-type",
    "accept",
    "openai-beta",
    "openai-organization",
    "openai-project",
    "user-agent",
    "x-stainless-lang",
    "x-stainless-package-version",
    "x-stainless-os",
    "x-stainless-arch",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-retry-count",
    "anthropic-version",
    "anthropic-beta",
];

/// Response headers passed back to the application.
pub const FORWARD_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "openai-model",
    "openai-organization",
    "openai-processing-ms",
    "openai-version",
    "x-request-id",
    "retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
];

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The pooled HTTP(S) client the gateway talks to providers (and their token
/// endpoints) with.
pub type HttpClient = Client<Connector, Full<Bytes>>;

/// A pooled client for one provider base URL.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: HttpClient,
    base: String,
    strip_v1: bool,
    auth: Option<http::HeaderValue>,
    /// How long to wait for response headers.
    pub timeout: Duration,
}

impl Upstream {
    /// Builds the client: web roots plus any configured CA, HTTP/1.1 and h2.
    pub fn new(cfg: &UpstreamConfig, api_key: Option<String>) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = &cfg.ca {
            for c in read_certs(ca)? {
                roots.add(c)?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(Arc::new(roots))
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        // The pool closes idle connections only with a timer to run on.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(cfg.idle_timeout_secs))
            .pool_max_idle_per_host(cfg.max_idle_per_host)
            .build(connector);
        let base = cfg.base_url.trim_end_matches('/').to_owned();
        let strip_v1 = base.ends_with("/v1");
        let auth = api_key.and_then(|k| {
            let mut v = http::HeaderValue::from_str(&format!("Bearer {k}")).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        Ok(Upstream {
            client,
            base,
            strip_v1,
            auth,
            timeout: Duration::from_secs(cfg.timeout_secs),
        })
    }

    /// The provider URL for an application path such as `/v1/chat/completions`.
    pub fn url_for(&self, path: &str) -> String {
        let p = if self.strip_v1 {
            path.strip_prefix("/v1").unwrap_or(path)
        } else {
            path
        };
        format!("{}{}", self.base, p)
    }

    /// Sends a request; resolves when response headers arrive.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, UpstreamError> {
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| UpstreamError::BadRequest(format!("bad method {method:?}")))?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(self.url_for(path));
        for (k, v) in headers {
            if FORWARD_REQUEST_HEADERS.contains(&k.as_str()) {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        if let Some(auth) = &self.auth {
            req = req.header(http::header::AUTHORIZATION, auth.clone());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| UpstreamError::BadRequest(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(UpstreamError::Unavailable(describe(&e))),
            Err(_) => Err(UpstreamError::Timeout(self.timeout)),
        }
    }
}

/// Why the provider could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The request head could not be turned into an HTTP request.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Connecting or talking to the provider failed.
    #[error("provider unreachable: {0}")]
    Unavailable(String),
    /// The provider sent no response headers in time.
    #[error("provider did not answer within {0:?}")]
    Timeout(Duration),
}

fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
