//! AWS Signature Version 4 for the gateway's Bedrock upstream: the
//! credentials and a signer that adds the `authorization` header (and the
//! headers it covers) to a request just before it is sent. The signing itself
//! is the `aws-sigv4` crate's; this module adapts it to `http` 1.x parts.

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    self, PayloadChecksumKind, SignableBody, SignableRequest, SigningError, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST};
use http::uri::Scheme;
use http::Uri;

/// Headers the signer writes; any earlier values are dropped before signing.
const SIGNER_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
];

/// Provider name recorded in the crate's credentials (it only shows in its
/// debug output).
const PROVIDER_NAME: &str = "residency-agent";

/// AWS credentials; Debug prints the access key id only, never the secret or token.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id (`AKIA…` or `ASIA…`); not a secret.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

/// A signer for one region and service (`bedrock` for Bedrock runtime).
#[derive(Debug, Clone)]
pub struct SigV4Signer {
    credentials: AwsCredentials,
    region: String,
    service: String,
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigV4Error {
    /// A required environment variable is unset, empty or not unicode.
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
    /// The request has neither a `host` header nor an authority in its URI.
    #[error("request has no host header and no authority in its URI")]
    NoHost,
    /// A header value is not visible ASCII, so it cannot be signed.
    #[error("header {0} has a value that cannot be signed")]
    HeaderValue(String),
    /// The signing parameters were incomplete.
    #[error("invalid signing parameters: {0}")]
    Params(String),
    /// The signing library refused the request.
    #[error("signing failed")]
    Signing(#[source] SigningError),
    /// The signing library produced a header that is not a valid header.
    #[error("signing produced an invalid header {0}")]
    InvalidOutput(&'static str),
}

impl AwsCredentials {
    /// From AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optional AWS_SESSION_TOKEN; error names the missing variable.
    pub fn from_env() -> Result<Self, SigV4Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The same, from any lookup, so tests need not change the process
    /// environment.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SigV4Error> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|value| !value.is_empty())
                .ok_or(SigV4Error::MissingEnv(name))
        };
        Ok(Self {
            access_key_id: required("AWS_ACCESS_KEY_ID")?,
            secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
            session_token: lookup("AWS_SESSION_TOKEN").filter(|value| !value.is_empty()),
        })
    }

    /// The crate's identity type, which is what `aws-sigv4` signs with.
    pub(crate) fn identity(&self) -> Identity {
        Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
            self.session_token.clone(),
            None,
            PROVIDER_NAME,
        )
        .into()
    }
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl SigV4Signer {
    /// A signer for `region` (`eu-central-1`) and `service` (`bedrock`).
    pub fn new(
        credentials: AwsCredentials,
        region: impl Into<String>,
        service: impl Into<String>,
    ) -> Self {
        Self {
            credentials,
            region: region.into(),
            service: service.into(),
        }
    }

    /// Signs a request about to be sent: adds `authorization`, `x-amz-date`,
    /// `x-amz-content-sha256` (hex sha256 of body) and, with a session token, `x-amz-security-token`
    /// to `parts.headers` (authorization value marked sensitive). The host is taken from
    /// `parts.uri`'s authority when no `host` header is set (the HTTP client sends exactly that as Host).
    ///
    /// Every header present when this is called (except `user-agent`,
    /// `x-amzn-trace-id` and `transfer-encoding`) is signed, so none may be
    /// changed afterwards; headers added later are not covered.
    pub fn sign(
        &self,
        parts: &mut http::request::Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SigV4Error> {
        for name in SIGNER_HEADERS {
            parts.headers.remove(*name);
        }
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let headers = sign_parts(
            parts,
            body,
            &self.credentials,
            &self.region,
            &self.service,
            now,
            settings,
        )?
        .0;
        for (name, value) in headers {
            parts.headers.insert(name, value);
        }
        Ok(())
    }
}

/// Signs `parts` with `settings` and returns the headers to add and the hex
/// signature. Shared by [`SigV4Signer::sign`], the mock provider's verifier
/// and the test vectors (which need the suite's settings).
pub(crate) fn sign_parts(
    parts: &http::request::Parts,
    body: &[u8],
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
    settings: SigningSettings,
) -> Result<(Vec<(HeaderName, HeaderValue)>, String), SigV4Error> {
    let mut headers = Vec::with_capacity(parts.headers.len() + 1);
    for (name, value) in &parts.headers {
        let value = value
            .to_str()
            .map_err(|_| SigV4Error::HeaderValue(name.as_str().to_owned()))?;
        headers.push((name.as_str(), value));
    }
    // Without a host header the crate would take it from the URI and panic
    // when there is none; compute it here the way hyper writes Host.
    let host;
    if !parts.headers.contains_key(HOST) {
        host = host_from_uri(&parts.uri).ok_or(SigV4Error::NoHost)?;
        headers.push(("host", host.as_str()));
    }
    let uri = parts.uri.to_string();
    let request = SignableRequest::new(
        parts.method.as_str(),
        uri.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(SigV4Error::Signing)?;

    let identity = credentials.identity();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SigV4Error::Params(e.to_string()))?
        .into();
    let (instructions, signature) = http_request::sign(request, &params)
        .map_err(SigV4Error::Signing)?
        .into_parts();

    let (new_headers, _query) = instructions.into_parts();
    let mut out = Vec::with_capacity(new_headers.len());
    for header in new_headers {
        let name = HeaderName::from_static(header.name());
        let mut value = HeaderValue::from_str(header.value())
            .map_err(|_| SigV4Error::InvalidOutput(header.name()))?;
        // The session token is as secret as the signature is sensitive.
        value.set_sensitive(header.sensitive() || name == AUTHORIZATION);
        out.push((name, value));
    }
    Ok((out, signature))
}

/// The Host value hyper sends for `uri`: the host, with the port only when it
/// is not the scheme's default.
fn host_from_uri(uri: &Uri) -> Option<String> {
    let host = uri.host()?;
    let default_port = match uri.scheme() {
        Some(scheme) if *scheme == Scheme::HTTPS => Some(443),
        Some(scheme) if *scheme == Scheme::HTTP => Some(80),
        _ => None,
    };
    Some(match uri.port_u16() {
        Some(port) if Some(port) != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use aws_sigv4::http_request::SigningSettings;

    use super::*;

    fn example_creds(session_token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: session_token.map(str::to_owned),
        }
    }

    /// 2015-08-30T12:36:00Z, the AWS test suite's time.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn parts(request: http::Request<()>) -> http::request::Parts {
        request.into_parts().0
    }

    fn header<'a>(parts: &'a http::request::Parts, name: &str) -> &'a str {
        parts.headers.get(name).unwrap().to_str().unwrap()
    }

    #[test]
    fn sigv4_get_vanilla_matches_aws_test_suite() {
        // aws-sig-v4-test-suite/get-vanilla (as bundled in aws-sigv4):
        // header-signature.txt and the Authorization of header-signed-request.txt.
        let parts = parts(
            http::Request::get("/")
                .header("host", "example.amazonaws.com")
                .header("x-amz-date", "20150830T123600Z")
                .body(())
                .unwrap(),
        );
        let (headers, signature) = sign_parts(
            &parts,
            b"",
            &example_creds(None),
            "us-east-1",
            "service",
            suite_time(),
            SigningSettings::default(),
        )
        .unwrap();
        assert_eq!(
            signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let authorization = headers
            .iter()
            .find(|(name, _)| name == AUTHORIZATION)
            .map(|(_, value)| value.to_str().unwrap())
            .unwrap();
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn sigv4_sign_post_matches_independent_computation() {
        // Expected values computed independently (Python hmac/hashlib, from
        // the AWS SigV4 documentation's algorithm) for this exact request,
        // with the headers `sign` adds: host from the URI with its port,
        // x-amz-content-sha256 and x-amz-security-token signed.
        let mut parts = parts(
            http::Request::post("http://127.0.0.1:8443/openai/v1/chat/completions?a=1")
                .header("content-type", "application/json")
                .header("user-agent", "not-signed/1.0")
                .body(())
                .unwrap(),
        );
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let signer = SigV4Signer::new(example_creds(Some("TOKEN/xyz=")), "eu-central-1", "bedrock");
        signer.sign(&mut parts, body, suite_time()).unwrap();

        assert_eq!(header(&parts, "x-amz-date"), "20150830T123600Z");
        assert_eq!(header(&parts, "x-amz-content-sha256"), EXPECTED_BODY_SHA256);
        assert_eq!(header(&parts, "x-amz-security-token"), "TOKEN/xyz=");
        assert_eq!(header(&parts, "authorization"), EXPECTED_POST_AUTHORIZATION);
        assert!(parts.headers.get("authorization").unwrap().is_sensitive());
        assert!(parts
            .headers
            .get("x-amz-security-token")
            .unwrap()
            .is_sensitive());
        // The signer does not add a Host header; the HTTP client does.
        assert!(parts.headers.get("host").is_none());

        // Signing again (a retry) replaces the headers instead of signing them.
        signer.sign(&mut parts, body, suite_time()).unwrap();
        assert_eq!(header(&parts, "authorization"), EXPECTED_POST_AUTHORIZATION);
        assert_eq!(parts.headers.get_all("x-amz-date").iter().count(), 1);
    }

    const EXPECTED_BODY_SHA256: &str =
        "798d46639491d6c18f1779ddfca7da4b672f23a4cb57d66eeae48d9b8ccb6075";
    const EXPECTED_POST_AUTHORIZATION: &str =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-central-1/bedrock/aws4_request, \
         SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, \
         Signature=867f7b2975ab978103a5a88e8ca29fb3d176a9556fcbf2d10c1b27d2f85c9df9";

    #[test]
    fn sigv4_host_header_wins_over_uri_and_default_port_is_dropped() {
        let creds = example_creds(None);
        let signer = SigV4Signer::new(creds, "us-east-1", "service");
        let sign = |uri: &str, host: Option<&str>| {
            let mut builder = http::Request::get(uri);
            if let Some(host) = host {
                builder = builder.header("host", host);
            }
            let mut parts = parts(builder.body(()).unwrap());
            signer.sign(&mut parts, b"", suite_time()).unwrap();
            header(&parts, "authorization").to_owned()
        };
        let https_default = sign("https://example.amazonaws.com:443/", None);
        assert_eq!(https_default, sign("https://example.amazonaws.com/", None));
        assert_eq!(
            https_default,
            sign("/", Some("example.amazonaws.com")),
            "an explicit host header is what gets signed"
        );
        assert_ne!(
            https_default,
            sign("https://example.amazonaws.com:8443/", None)
        );
    }

    #[test]
    fn sigv4_no_host_is_an_error_not_a_panic() {
        let mut parts = parts(http::Request::get("/").body(()).unwrap());
        let signer = SigV4Signer::new(example_creds(None), "us-east-1", "service");
        let err = signer.sign(&mut parts, b"", suite_time()).unwrap_err();
        assert!(matches!(err, SigV4Error::NoHost), "{err:?}");
    }

    #[test]
    fn sigv4_debug_hides_secret_and_token() {
        let creds = example_creds(Some("SESSIONTOKENVALUE"));
        let shown = format!("{creds:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("SESSIONTOKENVALUE"), "{shown}");
        let shown = format!("{:?}", SigV4Signer::new(creds, "us-east-1", "bedrock"));
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("SESSIONTOKENVALUE"), "{shown}");
    }

    #[test]
    fn sigv4_credentials_from_env_name_the_missing_variable() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        let err = AwsCredentials::from_lookup(env(&[("AWS_ACCESS_KEY_ID", "AKID")])).unwrap_err();
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        let err = AwsCredentials::from_lookup(env(&[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
        let creds = AwsCredentials::from_lookup(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
        ]))
        .unwrap();
        assert_eq!(creds.access_key_id, "AKID");
        assert_eq!(creds.secret_access_key, "s");
        assert_eq!(creds.session_token.as_deref(), Some("t"));
        let creds = AwsCredentials::from_lookup(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]))
        .unwrap();
        assert_eq!(creds.session_token, None);
    }
}
