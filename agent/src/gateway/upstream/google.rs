//! OAuth2 access tokens for Google APIs (the Vertex AI upstream) from a
//! service-account JSON key: the JWT-bearer grant of RFC 7523 as Google's
//! "Using OAuth 2.0 for Server to Server Applications" describes it. It owns
//! reading and checking the key file, signing the RS256 assertion, asking the
//! token endpoint, and caching the token until shortly before it expires.
//!
//! Secrets (the private key, the assertion, the access token) never reach a
//! log line, an error message or a `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::HttpClient;

/// The grant type of a JWT-bearer token request (RFC 7523, section 2.1),
/// `urn:ietf:params:oauth:grant-type:jwt-bearer`, percent-encoded for the form.
const JWT_BEARER_FORM: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// How long an assertion is valid: Google's maximum.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// How long to wait for the token endpoint's whole answer.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a token is refreshed ahead of its expiry.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The largest token response read; Google's are well under 4 KiB.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why a key could not be loaded or a token not obtained.
#[derive(Debug, thiserror::Error)]
pub enum GoogleAuthError {
    /// The key file could not be read.
    #[error("reading service-account key {}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The key file was read but is not a usable service-account key.
    #[error("service-account key {}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The missing or bad field.
        reason: String,
    },
    /// The key JSON is not a usable service-account key.
    #[error("service-account key: {0}")]
    Key(String),
    /// The assertion could not be signed.
    #[error("signing the token assertion failed: {0}")]
    Sign(String),
    /// Connecting to or talking with the token endpoint failed.
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    /// The token endpoint sent no complete answer in time.
    #[error("token endpoint did not answer within {0:?}")]
    Timeout(Duration),
    /// The token endpoint refused the request.
    #[error("token endpoint answered {status}: {error}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code (and its description when it cannot echo the assertion).
        error: String,
    },
    /// The token endpoint answered 2xx with something that is not a bearer token.
    #[error("token endpoint sent an unusable answer: {0}")]
    BadResponse(String),
}

/// The fields of a service-account key file that the flow needs. Debug shows
/// client_email and private_key_id only.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// The service account, e.g. `gateway@project.iam.gserviceaccount.com`.
    pub client_email: String,
    /// The RSA private key in PEM form (PKCS#8 `BEGIN PRIVATE KEY` as Google
    /// issues it, or PKCS#1).
    pub private_key: String,
    /// The key's id, sent as the JWT header's `kid`.
    pub private_key_id: Option<String>,
    /// The token endpoint, also the assertion's audience.
    pub token_uri: String,
    /// Must be `service_account`.
    #[serde(rename = "type")]
    key_type: String,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Reads and checks a key file; an error names the file and the missing
    /// or bad field.
    pub fn from_file(path: &Path) -> Result<Self, GoogleAuthError> {
        let json = std::fs::read_to_string(path).map_err(|source| GoogleAuthError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&json).map_err(|e| match e {
            GoogleAuthError::Key(reason) => GoogleAuthError::KeyFile {
                path: path.to_owned(),
                reason,
            },
            other => other,
        })
    }

    /// Parses and checks a key: the fields are present, `type` is
    /// `service_account`, `token_uri` is an http(s) URL and the private key
    /// is an RSA key in PEM form that can sign.
    pub fn parse(json: &str) -> Result<Self, GoogleAuthError> {
        // serde_json names a missing field; the only values it could quote are
        // non-strings where a string belongs, which cannot be a PEM key.
        let key: ServiceAccountKey =
            serde_json::from_str(json).map_err(|e| GoogleAuthError::Key(e.to_string()))?;
        key.check()?;
        key.signing_key()?;
        Ok(key)
    }

    fn check(&self) -> Result<(), GoogleAuthError> {
        if self.key_type != "service_account" {
            return Err(GoogleAuthError::Key(format!(
                "field `type` is {:?}, expected \"service_account\"",
                self.key_type
            )));
        }
        if self.client_email.trim().is_empty() {
            return Err(GoogleAuthError::Key("field `client_email` is empty".into()));
        }
        token_uri(&self.token_uri)?;
        Ok(())
    }

    /// The signing key, checked by signing once: the PEM parser alone accepts
    /// keys that ring then refuses (too short, malformed inside).
    fn signing_key(&self) -> Result<EncodingKey, GoogleAuthError> {
        let bad = |why: &dyn fmt::Display| {
            GoogleAuthError::Key(format!(
                "field `private_key` is not an RSA private key in PEM form ({why})"
            ))
        };
        let key = EncodingKey::from_rsa_pem(self.private_key.as_bytes()).map_err(|e| bad(&e))?;
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &serde_json::json!({}), &key)
            .map_err(|e| bad(&e))?;
        Ok(key)
    }
}

fn token_uri(s: &str) -> Result<http::Uri, GoogleAuthError> {
    let uri: http::Uri = s
        .parse()
        .map_err(|_| GoogleAuthError::Key(format!("field `token_uri` {s:?} is not a URL")))?;
    match uri.scheme_str() {
        Some("https" | "http") if uri.host().is_some() => Ok(uri),
        _ => Err(GoogleAuthError::Key(format!(
            "field `token_uri` {s:?} is not an http(s) URL"
        ))),
    }
}

/// Gets, caches and refreshes an access token. Cheap to clone: clones share
/// the cache.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    client_email: String,
    key_id: Option<String>,
    /// The assertion's `aud`: the token URI exactly as the key file has it.
    audience: String,
    uri: http::Uri,
    scope: String,
    signing_key: EncodingKey,
    client: HttpClient,
    timeout: Duration,
    cached: Mutex<Option<CachedToken>>,
    /// Held while a refresh runs, so concurrent callers wait for it.
    refresh: tokio::sync::Mutex<()>,
}

struct CachedToken {
    authorization: http::HeaderValue,
    refresh_at: Instant,
}

/// The claims of the assertion.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    token_type: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("TokenSource")
            .field("client_email", &i.client_email)
            .field("key_id", &i.key_id)
            .field("token_uri", &i.audience)
            .field("scope", &i.scope)
            .field("token_cached", &self.cache().is_some())
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A token source for `key` and `scope` (e.g.
    /// `https://www.googleapis.com/auth/cloud-platform`) that asks the key's
    /// token endpoint through `client`. Fetches nothing yet.
    pub fn new(
        key: ServiceAccountKey,
        scope: impl Into<String>,
        client: HttpClient,
    ) -> Result<Self, GoogleAuthError> {
        key.check()?;
        let signing_key = key.signing_key()?;
        let scope = scope.into();
        if scope.trim().is_empty() {
            return Err(GoogleAuthError::Key("the scope is empty".into()));
        }
        Ok(TokenSource {
            inner: Arc::new(Inner {
                uri: token_uri(&key.token_uri)?,
                client_email: key.client_email,
                key_id: key.private_key_id,
                audience: key.token_uri,
                scope,
                signing_key,
                client,
                timeout: TOKEN_REQUEST_TIMEOUT,
                cached: Mutex::new(None),
                refresh: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The `authorization: Bearer …` value (marked sensitive) for a request
    /// about to be sent: the cached token while it has more than its refresh
    /// margin left (5 minutes, or half its lifetime if that is shorter), else
    /// a new one from the token endpoint. One refresh runs at a time;
    /// concurrent callers wait for it and share its token.
    pub async fn authorization(&self) -> Result<http::HeaderValue, GoogleAuthError> {
        if let Some(v) = self.fresh() {
            return Ok(v);
        }
        let _refreshing = self.inner.refresh.lock().await;
        // Another caller may have refreshed while this one waited.
        if let Some(v) = self.fresh() {
            return Ok(v);
        }
        let started = Instant::now();
        let (authorization, lifetime) = self.fetch().await?;
        let margin = MAX_REFRESH_MARGIN.min(lifetime / 2);
        *self.cache() = Some(CachedToken {
            authorization: authorization.clone(),
            // From when the request went out: the token may be that much older.
            refresh_at: started + lifetime.saturating_sub(margin),
        });
        tracing::debug!(
            client_email = %self.inner.client_email,
            lifetime_secs = lifetime.as_secs(),
            "refreshed access token"
        );
        Ok(authorization)
    }

    fn cache(&self) -> MutexGuard<'_, Option<CachedToken>> {
        // The cache holds no invariant a panicking holder could break.
        self.inner
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(&self) -> Option<http::HeaderValue> {
        let cache = self.cache();
        let token = cache.as_ref()?;
        (Instant::now() < token.refresh_at).then(|| token.authorization.clone())
    }

    /// Signs an assertion and trades it for a token at the token endpoint.
    async fn fetch(&self) -> Result<(http::HeaderValue, Duration), GoogleAuthError> {
        let assertion = self.assertion()?;
        let body = format!("grant_type={JWT_BEARER_FORM}&assertion={assertion}");
        let req = hyper::Request::post(self.inner.uri.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| GoogleAuthError::Unreachable(e.to_string()))?;
        let exchange = async {
            let resp = self
                .inner
                .client
                .request(req)
                .await
                .map_err(|e| GoogleAuthError::Unreachable(describe(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| GoogleAuthError::Unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, GoogleAuthError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.inner.timeout, exchange)
            .await
            .map_err(|_| GoogleAuthError::Timeout(self.inner.timeout))??;
        if !status.is_success() {
            return Err(GoogleAuthError::Rejected {
                status: status.as_u16(),
                error: rejection(&body, &assertion),
            });
        }
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            // Not e's message: it can quote values, and a value may be the token.
            GoogleAuthError::BadResponse(format!(
                "not a token response ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if !token.token_type.eq_ignore_ascii_case("bearer") {
            return Err(GoogleAuthError::BadResponse(format!(
                "token_type {:?}, expected \"Bearer\"",
                token.token_type
            )));
        }
        let mut authorization =
            http::HeaderValue::from_str(&format!("Bearer {}", token.access_token)).map_err(
                |_| GoogleAuthError::BadResponse("access_token is not a header value".into()),
            )?;
        authorization.set_sensitive(true);
        Ok((authorization, Duration::from_secs(token.expires_in)))
    }

    /// A signed RS256 assertion valid for an hour from now (wall clock).
    fn assertion(&self) -> Result<String, GoogleAuthError> {
        let i = &self.inner;
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| GoogleAuthError::Sign("the system clock is before 1970".into()))?
            .as_secs();
        let claims = Claims {
            iss: &i.client_email,
            scope: &i.scope,
            aud: &i.audience,
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = i.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &i.signing_key)
            .map_err(|e| GoogleAuthError::Sign(e.to_string()))
    }
}

/// The `error` code of a refusal, with its description unless that could
/// quote the assertion.
fn rejection(body: &[u8], assertion: &str) -> String {
    let Ok(parsed) = serde_json::from_slice::<ErrorResponse>(body) else {
        return "no OAuth error in the answer".into();
    };
    let is_code = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let code = match parsed.error.as_deref() {
        Some(c) if is_code(c) => c.to_owned(),
        Some(_) => "unreadable OAuth error code".to_owned(),
        None => "no OAuth error in the answer".to_owned(),
    };
    let echoes = |d: &str| {
        assertion
            .split('.')
            .any(|part| part.len() >= 8 && d.contains(part))
    };
    match parsed.error_description {
        Some(d) if d.len() <= 300 && !echoes(&d) && !d.chars().any(char::is_control) => {
            format!("{code} ({d})")
        }
        _ => code,
    }
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

    const KEY_JSON: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/vertex-service-account.json"
    ));

    fn with_field(field: &str, value: Option<serde_json::Value>) -> String {
        let mut v: serde_json::Value = serde_json::from_str(KEY_JSON).unwrap();
        let obj = v.as_object_mut().unwrap();
        match value {
            Some(x) => obj.insert(field.to_owned(), x),
            None => obj.remove(field),
        };
        v.to_string()
    }

    #[test]
    fn google_parse_accepts_the_fixture_key() {
        let key = ServiceAccountKey::parse(KEY_JSON).unwrap();
        assert_eq!(
            key.client_email,
            "gateway@residency-test.iam.gserviceaccount.com"
        );
        assert_eq!(key.token_uri, "http://127.0.0.1/token");
        assert!(key.private_key_id.as_deref().is_some_and(|k| k.len() == 40));
    }

    #[test]
    fn google_parse_names_the_missing_or_bad_field() {
        for field in ["client_email", "private_key", "token_uri", "type"] {
            let err = ServiceAccountKey::parse(&with_field(field, None))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{field}`")), "{field}: {err}");
        }
        let err = ServiceAccountKey::parse(&with_field("type", Some("authorized_user".into())))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`type`") && err.contains("authorized_user"),
            "{err}"
        );
        let err = ServiceAccountKey::parse(&with_field("token_uri", Some("not a url".into())))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`token_uri`"), "{err}");
    }

    #[test]
    fn google_parse_rejects_a_key_that_is_not_rsa_pem() {
        let not_pem = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
        for bad in ["just some text", not_pem] {
            let err = ServiceAccountKey::parse(&with_field("private_key", Some(bad.into())))
                .unwrap_err()
                .to_string();
            assert!(err.contains("`private_key`"), "{err}");
            assert!(!err.contains("bm90IGEga2V5"), "{err}");
        }
        // A public key where the private one belongs.
        let public = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/vertex-service-account.pub.pem"
        ));
        let err = ServiceAccountKey::parse(&with_field("private_key", Some(public.into())))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`private_key`"), "{err}");
    }

    #[test]
    fn google_from_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sa.json");
        std::fs::write(&path, with_field("client_email", None)).unwrap();
        let err = ServiceAccountKey::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("sa.json") && err.contains("`client_email`"),
            "{err}"
        );
        let err = ServiceAccountKey::from_file(&dir.path().join("absent.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.json"), "{err}");
        std::fs::write(&path, KEY_JSON).unwrap();
        assert!(ServiceAccountKey::from_file(&path).is_ok());
    }

    #[test]
    fn google_rejection_keeps_the_code_and_drops_an_echoed_assertion() {
        let assertion = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlLWJ5dGVz";
        let body = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
        assert_eq!(
            rejection(body, assertion),
            "invalid_grant (Invalid JWT Signature.)"
        );
        let echo = format!(
            r#"{{"error":"invalid_grant","error_description":"bad assertion {assertion}"}}"#
        );
        assert_eq!(rejection(echo.as_bytes(), assertion), "invalid_grant");
        let odd = format!(r#"{{"error":"{assertion}"}}"#);
        assert!(!rejection(odd.as_bytes(), assertion).contains("eyJ"));
    }

    #[cfg(feature = "demo")]
    mod with_issuer {
        use std::sync::Arc;

        use http_body_util::BodyExt;
        use hyper::body::Incoming;
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use tokio::net::TcpListener;

        use super::super::*;
        use super::KEY_JSON;
        use crate::demo::mock_provider::oauth::TokenIssuer;

        const OTHER_KEY_PEM: &str = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/vertex-other-key.pem"
        ));
        const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
        const PUBLIC_KEY: &str = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/vertex-service-account.pub.pem"
        ));

        fn client() -> HttpClient {
            let tls =
                rustls::ClientConfig::builder_with_provider(crate::transport::tls::provider())
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .build();
            Client::builder(TokioExecutor::new()).build(connector)
        }

        /// A token endpoint on `listener` that hands each form body to
        /// `issuer`; it insists on `POST /token` with the form content type.
        fn serve(listener: TcpListener, issuer: Arc<TokenIssuer>) {
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let issuer = issuer.clone();
                    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let issuer = issuer.clone();
                        async move {
                            let form = req
                                .headers()
                                .get(http::header::CONTENT_TYPE)
                                .is_some_and(|v| v == "application/x-www-form-urlencoded");
                            let path_ok =
                                req.method() == http::Method::POST && req.uri().path() == "/token";
                            let body = req.into_body().collect().await?.to_bytes();
                            let (status, json) = if form && path_ok {
                                issuer.issue(&body)
                            } else {
                                (400, serde_json::json!({"error": "invalid_request"}))
                            };
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(json.to_string())))
                                    .unwrap(),
                            )
                        }
                    });
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        }

        /// An issuer for the fixture service account serving on loopback, and a
        /// token source pointed at it that signs with `private_key` (the
        /// fixture's own key when `None`).
        async fn setup(
            lifetime: Duration,
            private_key: Option<&str>,
        ) -> (Arc<TokenIssuer>, TokenSource) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut key = ServiceAccountKey::parse(KEY_JSON).unwrap();
            key.token_uri = format!("http://{addr}/token");
            if let Some(pem) = private_key {
                key.private_key = pem.to_owned();
            }
            let issuer = Arc::new(
                TokenIssuer::new(&key.client_email, PUBLIC_KEY, &key.token_uri, lifetime).unwrap(),
            );
            serve(listener, issuer.clone());
            let source = TokenSource::new(key, SCOPE, client()).unwrap();
            (issuer, source)
        }

        fn bearer(v: &http::HeaderValue) -> &str {
            v.to_str().unwrap().strip_prefix("Bearer ").unwrap()
        }

        #[tokio::test]
        async fn google_token_is_fetched_cached_and_accepted() {
            let (issuer, source) = setup(Duration::from_secs(3600), None).await;
            let first = source.authorization().await.unwrap();
            assert!(first.is_sensitive());
            assert!(issuer.accepts(bearer(&first)));
            let second = source.clone().authorization().await.unwrap();
            assert_eq!(first, second);
            assert_eq!(issuer.issued(), 1);
        }

        #[tokio::test]
        async fn google_concurrent_callers_share_one_refresh() {
            let (issuer, source) = setup(Duration::from_secs(3600), None).await;
            let calls: Vec<_> = (0..8)
                .map(|_| {
                    let s = source.clone();
                    tokio::spawn(async move { s.authorization().await })
                })
                .collect();
            let mut values = Vec::new();
            for c in calls {
                values.push(c.await.unwrap().unwrap());
            }
            assert!(values.windows(2).all(|w| w[0] == w[1]));
            assert_eq!(issuer.issued(), 1);
        }

        #[tokio::test]
        async fn google_short_lived_token_is_refreshed_after_half_its_lifetime() {
            // Margin min(5 min, 1 s) = 1 s: refreshed one second in.
            let (issuer, source) = setup(Duration::from_secs(2), None).await;
            let first = source.authorization().await.unwrap();
            assert_eq!(source.authorization().await.unwrap(), first);
            assert_eq!(issuer.issued(), 1);
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let second = source.authorization().await.unwrap();
            assert_ne!(second, first);
            assert!(issuer.accepts(bearer(&second)));
            assert_eq!(issuer.issued(), 2);
        }

        #[tokio::test]
        async fn google_assertion_signed_by_another_key_is_refused() {
            let (issuer, source) = setup(Duration::from_secs(3600), Some(OTHER_KEY_PEM)).await;
            let err = source.authorization().await.unwrap_err();
            assert!(
                matches!(&err, GoogleAuthError::Rejected { status: 400, error } if error.starts_with("invalid_grant")),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("400") && msg.contains("invalid_grant"),
                "{msg}"
            );
            assert_eq!(issuer.issued(), 0);
            assert!(format!("{source:?}").contains("token_cached: false"));
        }

        #[tokio::test]
        async fn google_token_request_times_out() {
            // Accepts connections and never answers.
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((s, _)) = listener.accept().await {
                    held.push(s);
                }
            });
            let mut key = ServiceAccountKey::parse(KEY_JSON).unwrap();
            key.token_uri = format!("http://{addr}/token");
            let mut source = TokenSource::new(key, SCOPE, client()).unwrap();
            Arc::get_mut(&mut source.inner).unwrap().timeout = Duration::from_millis(200);
            let err = source.authorization().await.unwrap_err();
            assert!(matches!(err, GoogleAuthError::Timeout(_)), "{err:?}");
        }

        #[tokio::test]
        async fn google_debug_shows_no_secrets() {
            let (_issuer, source) = setup(Duration::from_secs(3600), None).await;
            let v = source.authorization().await.unwrap();
            let token = bearer(&v).to_owned();
            let key = ServiceAccountKey::parse(KEY_JSON).unwrap();
            // A line from the middle of the key's base64 body.
            let key_line = key.private_key.lines().nth(5).unwrap().to_owned();
            for shown in [format!("{key:?}"), format!("{source:?}"), format!("{v:?}")] {
                assert!(!shown.contains(&token), "{shown}");
                assert!(!shown.contains("PRIVATE KEY"), "{shown}");
                assert!(!shown.contains(&key_line), "{shown}");
            }
            assert!(format!("{key:?}").contains("gateway@residency-test"));
            assert!(format!("{source:?}").contains("token_cached: true"));
        }
    }
}
