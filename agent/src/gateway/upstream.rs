//! The gateway's HTTP(S) client to the model provider's in-region endpoint.

pub mod google;
pub mod sigv4;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{AzureSurface, BedrockAuth, GatewayConfig, UpstreamConfig, UpstreamKind};
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

/// A pooled client for one provider, speaking its cloud's URLs and auth.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: HttpClient,
    kind: UpstreamKind,
    /// URL prefix the API path below `/v1/` is appended to (for Azure, the
    /// resource endpoint plus `/openai`).
    base: String,
    /// `openai`: the base URL ends in `/v1`, so the path's is dropped.
    strip_v1: bool,
    surface: AzureSurface,
    api_version: Option<String>,
    auth: Auth,
    /// How long to wait for response headers.
    pub timeout: Duration,
}

/// How the gateway proves itself to the provider.
#[derive(Clone)]
enum Auth {
    /// Nothing (a provider that needs no key).
    None,
    /// A fixed header: `authorization: Bearer …` or Azure's `api-key`.
    Header(http::HeaderName, http::HeaderValue),
    /// A bearer token kept in a file that something else renews.
    TokenFile(Arc<TokenFile>),
    /// AWS SigV4 over each request, at the time it is sent.
    SigV4(sigv4::SigV4Signer),
    /// An OAuth2 access token from a service-account key, refreshed
    /// before it expires.
    Google(google::TokenSource),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Header(name, _) => write!(f, "Header({name})"),
            Auth::TokenFile(t) => write!(f, "TokenFile({})", t.path.display()),
            Auth::SigV4(_) => f.write_str("SigV4"),
            Auth::Google(_) => f.write_str("Google"),
        }
    }
}

/// The SigV4 service name of Bedrock's runtime endpoints.
const BEDROCK_SERVICE: &str = "bedrock";

/// The OAuth2 scope Vertex AI calls need.
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The API paths below `/v1/` that Azure's deployments surface serves under
/// `/openai/deployments/{deployment}/`.
const AZURE_DEPLOYMENT_APIS: &[&str] = &[
    "chat/completions",
    "completions",
    "embeddings",
    "audio/transcriptions",
    "audio/translations",
    "audio/speech",
    "images/generations",
    "images/edits",
];

impl Upstream {
    /// Builds the client for `cfg` (a validated gateway config): web roots
    /// plus any configured CA, HTTP/1.1 and h2, and the kind's credentials.
    pub fn new(cfg: &GatewayConfig) -> Result<Self, UpstreamSetupError> {
        let u = &cfg.upstream;
        let client = Self::client(u)?;
        let sensitive = |v: String| -> Result<http::HeaderValue, UpstreamSetupError> {
            let mut v = http::HeaderValue::from_str(&v).map_err(|_| {
                UpstreamSetupError::Credentials("the key is not a valid header value".into())
            })?;
            v.set_sensitive(true);
            Ok(v)
        };
        let bearer = |k: String| {
            sensitive(format!("Bearer {k}")).map(|v| Auth::Header(http::header::AUTHORIZATION, v))
        };
        let key = cfg.api_key();
        let trimmed = |s: &str| s.trim_end_matches('/').to_owned();
        let (base, auth) = match u.kind {
            UpstreamKind::Openai => {
                let base = trimmed(u.base_url.as_deref().unwrap_or_default());
                (base, key.map(bearer).transpose()?.unwrap_or(Auth::None))
            }
            UpstreamKind::AzureOpenai => {
                let base = format!(
                    "{}/openai",
                    trimmed(u.endpoint.as_deref().unwrap_or_default())
                );
                let auth = match (key, &u.bearer_token_env, &u.bearer_token_file) {
                    (Some(k), _, _) => {
                        Auth::Header(http::HeaderName::from_static("api-key"), sensitive(k)?)
                    }
                    (None, Some(var), _) => bearer(std::env::var(var).map_err(|_| {
                        UpstreamSetupError::Credentials(format!(
                            "environment variable {var} is not set"
                        ))
                    })?)?,
                    (None, None, Some(path)) => {
                        let file = TokenFile {
                            path: path.clone(),
                            cached: std::sync::Mutex::new(None),
                        };
                        file.authorization()
                            .map_err(UpstreamSetupError::Credentials)?;
                        Auth::TokenFile(Arc::new(file))
                    }
                    (None, None, None) => Auth::None,
                };
                (base, auth)
            }
            UpstreamKind::Bedrock => {
                let region = cfg.cloud_region().unwrap_or_default();
                let base = u.base_url.as_deref().map_or_else(
                    || format!("https://bedrock-runtime.{region}.amazonaws.com/openai/v1"),
                    trimmed,
                );
                let auth = match u.auth {
                    BedrockAuth::ApiKey => key.map(bearer).transpose()?.unwrap_or(Auth::None),
                    BedrockAuth::Sigv4 => {
                        let creds = sigv4::AwsCredentials::from_env()
                            .map_err(|e| UpstreamSetupError::Credentials(e.to_string()))?;
                        Auth::SigV4(sigv4::SigV4Signer::new(creds, region, BEDROCK_SERVICE))
                    }
                };
                (base, auth)
            }
            UpstreamKind::Vertex => {
                let location = cfg.cloud_region().unwrap_or_default();
                let project = u.project.as_deref().unwrap_or_default();
                let base = u.base_url.as_deref().map_or_else(
                    || format!("https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/endpoints/openapi"),
                    trimmed,
                );
                let path = u.credentials.as_deref().unwrap_or(std::path::Path::new(""));
                let key = google::ServiceAccountKey::from_file(path)
                    .map_err(|e| UpstreamSetupError::Credentials(e.to_string()))?;
                let tokens = google::TokenSource::new(key, CLOUD_PLATFORM_SCOPE, client.clone())
                    .map_err(|e| UpstreamSetupError::Credentials(e.to_string()))?;
                (base, Auth::Google(tokens))
            }
        };
        Ok(Upstream {
            client,
            kind: u.kind,
            strip_v1: u.kind != UpstreamKind::Openai || base.ends_with("/v1"),
            base,
            surface: u.surface,
            api_version: u.api_version.clone(),
            auth,
            timeout: Duration::from_secs(u.timeout_secs),
        })
    }

    fn client(cfg: &UpstreamConfig) -> Result<HttpClient, TlsError> {
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
        Ok(Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(cfg.idle_timeout_secs))
            .pool_max_idle_per_host(cfg.max_idle_per_host)
            .build(connector))
    }

    /// Which cloud's API it speaks.
    pub fn kind(&self) -> UpstreamKind {
        self.kind
    }

    /// Shows the credentials work as far as can be known without calling a
    /// model: a Vertex token is obtained from the token endpoint, a SigV4
    /// signature is made, a fixed key is present. Says what was proven,
    /// never the secret.
    pub async fn prove_credentials(&self) -> Result<String, UpstreamError> {
        match &self.auth {
            Auth::None => Ok("none configured (the provider must need none)".into()),
            Auth::Header(name, _) if name == http::header::AUTHORIZATION => {
                Ok("bearer token set".into())
            }
            Auth::Header(name, _) => Ok(format!("{name} header set")),
            Auth::TokenFile(file) => {
                file.authorization().map_err(UpstreamError::Credentials)?;
                Ok(format!("bearer token read from {}", file.path.display()))
            }
            Auth::SigV4(signer) => {
                let url = self.url_for("/v1/chat/completions", None)?;
                let (mut parts, ()) = hyper::Request::post(url)
                    .body(())
                    .map_err(|e| UpstreamError::BadRequest(e.to_string()))?
                    .into_parts();
                signer
                    .sign(&mut parts, b"{}", std::time::SystemTime::now())
                    .map_err(|e| UpstreamError::Credentials(e.to_string()))?;
                Ok("SigV4 signature made with the AWS credentials from the environment".into())
            }
            Auth::Google(tokens) => {
                tokens
                    .authorization()
                    .await
                    .map_err(|e| UpstreamError::Credentials(e.to_string()))?;
                Ok("access token obtained from the service account's token endpoint".into())
            }
        }
    }

    /// The provider URL for an application path and query such as
    /// `/v1/chat/completions`, with `deployment` the provider's name of the
    /// request's model (Azure's deployments surface puts it in the path).
    pub fn url_for(&self, path: &str, deployment: Option<&str>) -> Result<String, UpstreamError> {
        let (p, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        let below = p.strip_prefix("/v1").unwrap_or(p);
        let mut url = match (self.kind, self.surface) {
            (UpstreamKind::AzureOpenai, AzureSurface::V1) => format!("{}/v1{below}", self.base),
            (UpstreamKind::AzureOpenai, AzureSurface::Deployments) => {
                let api = below.trim_start_matches('/');
                if AZURE_DEPLOYMENT_APIS.contains(&api) {
                    let Some(d) = deployment else {
                        return Err(UpstreamError::BadRequest(format!(
                            "/v1/{api} needs a model to name the Azure deployment"
                        )));
                    };
                    format!("{}/deployments/{}/{api}", self.base, percent_path(d))
                } else {
                    format!("{}{below}", self.base)
                }
            }
            _ if self.strip_v1 => format!("{}{below}", self.base),
            _ => format!("{}{p}", self.base),
        };
        let version = match self.kind {
            UpstreamKind::AzureOpenai => self.api_version.as_deref(),
            _ => None,
        };
        match (query, version) {
            (Some(q), Some(v)) => url.push_str(&format!("?{q}&api-version={v}")),
            (Some(q), None) => url.push_str(&format!("?{q}")),
            (None, Some(v)) => url.push_str(&format!("?api-version={v}")),
            (None, None) => {}
        }
        Ok(url)
    }

    /// Sends a request; resolves when response headers arrive.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        deployment: Option<&str>,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, UpstreamError> {
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| UpstreamError::BadRequest(format!("bad method {method:?}")))?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(self.url_for(path, deployment)?);
        for (k, v) in headers {
            if FORWARD_REQUEST_HEADERS.contains(&k.as_str()) {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        match &self.auth {
            Auth::Header(name, value) => req = req.header(name, value.clone()),
            Auth::TokenFile(file) => {
                let value = file.authorization().map_err(UpstreamError::Credentials)?;
                req = req.header(http::header::AUTHORIZATION, value);
            }
            Auth::Google(tokens) => {
                let value = tokens
                    .authorization()
                    .await
                    .map_err(|e| UpstreamError::Credentials(e.to_string()))?;
                req = req.header(http::header::AUTHORIZATION, value);
            }
            Auth::None | Auth::SigV4(_) => {}
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| UpstreamError::BadRequest(e.to_string()))?;
        let req = match &self.auth {
            // Signed last, over exactly the headers and body that are sent.
            Auth::SigV4(signer) => {
                let (mut parts, body) = req.into_parts();
                let bytes = body
                    .clone()
                    .collect()
                    .await
                    .map_or_else(|never| match never {}, |c| c.to_bytes());
                signer
                    .sign(&mut parts, &bytes, std::time::SystemTime::now())
                    .map_err(|e| UpstreamError::Credentials(e.to_string()))?;
                hyper::Request::from_parts(parts, body)
            }
            _ => req,
        };
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(UpstreamError::Unavailable(describe(&e))),
            Err(_) => Err(UpstreamError::Timeout(self.timeout)),
        }
    }
}

/// A bearer token file, re-read at most every [`TOKEN_FILE_TTL`].
#[derive(Debug)]
struct TokenFile {
    path: std::path::PathBuf,
    cached: std::sync::Mutex<Option<(std::time::Instant, http::HeaderValue)>>,
}

/// How long a token read from a file is used before the file is read again.
const TOKEN_FILE_TTL: Duration = Duration::from_secs(30);

impl TokenFile {
    /// `Bearer <the file's token>`, marked sensitive.
    fn authorization(&self) -> Result<http::HeaderValue, String> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, v)) = cached.as_ref() {
            if at.elapsed() < TOKEN_FILE_TTL {
                return Ok(v.clone());
            }
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!("{} holds no token", self.path.display()));
        }
        let mut v = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| format!("{} does not hold a token", self.path.display()))?;
        v.set_sensitive(true);
        *cached = Some((std::time::Instant::now(), v.clone()));
        Ok(v)
    }
}

/// A deployment name as one path segment.
fn percent_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why the provider client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    /// The CA file or TLS settings are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The credentials could not be read or used.
    #[error("upstream credentials: {0}")]
    Credentials(String),
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
    /// The gateway's credentials for the provider could not be used (a token
    /// refresh failed, a signature could not be made).
    #[error("provider credentials: {0}")]
    Credentials(String),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(region: &str, text: &str) -> Upstream {
        let text = format!(
            "region = \"{region}\"\n[tls]\nca = \"ca.pem\"\ncert = \"gw.pem\"\nkey = \"gw.key\"\n[upstream]\n{text}\n"
        );
        let cfg: GatewayConfig = toml::from_str(&text).unwrap();
        cfg.validate(std::path::Path::new("gateway.toml")).unwrap();
        Upstream::new(&cfg).unwrap()
    }

    #[test]
    fn each_kind_builds_its_clouds_urls() {
        let openai = upstream(
            "aws:us-east-1",
            "base_url = \"https://api.example.com/v1/\"\napi_key = \"k\"",
        );
        assert_eq!(
            openai
                .url_for("/v1/chat/completions?x=1", Some("gpt-4o"))
                .unwrap(),
            "https://api.example.com/v1/chat/completions?x=1"
        );
        let azure = upstream(
            "azure:centralindia",
            "kind = \"azure-openai\"\nendpoint = \"https://contoso.openai.azure.com/\"\napi_key = \"k\"\nsurface = \"deployments\"\napi_version = \"2024-10-21\"",
        );
        assert_eq!(
            azure.url_for("/v1/chat/completions", Some("prod 4o")).unwrap(),
            "https://contoso.openai.azure.com/openai/deployments/prod%204o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            azure.url_for("/v1/files?purpose=batch", None).unwrap(),
            "https://contoso.openai.azure.com/openai/files?purpose=batch&api-version=2024-10-21"
        );
        let e = azure.url_for("/v1/embeddings", None).unwrap_err();
        assert!(e.to_string().contains("deployment"), "{e}");
        let v1 = upstream(
            "azure:centralindia",
            "kind = \"azure-openai\"\nendpoint = \"https://contoso.openai.azure.com\"\napi_key = \"k\"",
        );
        assert_eq!(
            v1.url_for("/v1/responses", Some("prod-4o")).unwrap(),
            "https://contoso.openai.azure.com/openai/v1/responses"
        );
        let bedrock = upstream("aws:ap-south-2", "kind = \"bedrock\"\napi_key = \"k\"");
        assert_eq!(
            bedrock
                .url_for("/v1/chat/completions", Some("openai.gpt-oss-120b-1:0"))
                .unwrap(),
            "https://bedrock-runtime.ap-south-2.amazonaws.com/openai/v1/chat/completions"
        );
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let azure = upstream(
            "azure:centralindia",
            "kind = \"azure-openai\"\nendpoint = \"https://contoso.openai.azure.com\"\napi_key = \"sekrit-azure-key\"",
        );
        let shown = format!("{azure:?}");
        assert!(shown.contains("api-key"), "{shown}");
        assert!(!shown.contains("sekrit"), "{shown}");
    }
}
