//! The mock's OAuth2 token endpoint: a strict issuer of short-lived access
//! tokens for one service account, checking a JWT-bearer assertion (RFC 7523)
//! the way Google's token endpoint does, so the gateway's Vertex AI token
//! flow is tested against the same refusals it would meet in production.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

/// The grant type a token request must carry.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The scope an assertion must ask for.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How far in the future `iat` may be (clock skew).
const LEEWAY_SECS: u64 = 30;

/// The longest an assertion may be valid (`exp - iat`).
const MAX_ASSERTION_SECS: u64 = 3600;

/// Issues short-lived access tokens for one service account, like Google's
/// token endpoint.
pub(crate) struct TokenIssuer {
    client_email: String,
    key: DecodingKey,
    audience: String,
    lifetime: Duration,
    /// Tokens given out and when each expires.
    tokens: Mutex<HashMap<String, Instant>>,
    issued: AtomicUsize,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    scope: String,
    iat: u64,
    exp: u64,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("client_email", &self.client_email)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .field("issued", &self.issued())
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// An issuer for `client_email`, whose assertions `public_key_pem` (an RSA
    /// public key, `BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`) verifies and
    /// whose `aud` must be `audience` (the token endpoint's URL); tokens live
    /// `lifetime`.
    pub(crate) fn new(
        client_email: &str,
        public_key_pem: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Result<Self, String> {
        let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
            .map_err(|e| format!("not an RSA public key in PEM form: {e}"))?;
        if lifetime.is_zero() {
            return Err("the token lifetime is zero".into());
        }
        Ok(TokenIssuer {
            client_email: client_email.to_owned(),
            key,
            audience: audience.to_owned(),
            lifetime,
            tokens: Mutex::new(HashMap::new()),
            issued: AtomicUsize::new(0),
        })
    }

    /// Handles a POST body of the token endpoint: requires the form's
    /// grant_type to be the jwt-bearer URN, the assertion to be an RS256 JWT
    /// validly signed by the key, iss == client_email, aud == audience, scope
    /// containing cloud-platform, iat not in the future (30 s leeway),
    /// exp > now and exp - iat <= 3600.
    /// Ok: (200, `{access_token, expires_in, token_type: "Bearer"}`);
    /// refused: (400, `{"error":"invalid_grant","error_description":…}`).
    pub(crate) fn issue(&self, form_body: &[u8]) -> (u16, Value) {
        if let Err(reason) = self.check(form_body) {
            return (
                400,
                json!({"error": "invalid_grant", "error_description": reason}),
            );
        }
        let mut random = [0u8; 24];
        if getrandom::getrandom(&mut random).is_err() {
            return (
                500,
                json!({"error": "internal_failure", "error_description": "no randomness"}),
            );
        }
        let token = format!("ya29.mock-{}", hex::encode(random));
        let now = Instant::now();
        {
            let mut tokens = self.tokens();
            tokens.retain(|_, expiry| *expiry > now);
            tokens.insert(token.clone(), now + self.lifetime);
        }
        self.issued.fetch_add(1, Ordering::Relaxed);
        (
            200,
            json!({
                "access_token": token,
                "expires_in": self.lifetime.as_secs(),
                "token_type": "Bearer",
            }),
        )
    }

    /// Whether `bearer` (the token, with or without a `Bearer ` prefix) is a
    /// token this issuer gave out that has not expired.
    pub(crate) fn accepts(&self, bearer: &str) -> bool {
        let token = bearer.strip_prefix("Bearer ").unwrap_or(bearer);
        self.tokens()
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    /// How many tokens were issued (tests check that refresh happened).
    pub(crate) fn issued(&self) -> usize {
        self.issued.load(Ordering::Relaxed)
    }

    fn tokens(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        // A map of tokens holds no invariant a panicking holder could break.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Why the request earns no token, worded like Google's descriptions.
    fn check(&self, form_body: &[u8]) -> Result<(), String> {
        let form = parse_form(form_body)?;
        match form.get("grant_type").map(String::as_str) {
            Some(JWT_BEARER) => {}
            Some(_) => return Err("Invalid grant_type.".into()),
            None => return Err("Missing grant_type.".into()),
        }
        let assertion = form
            .get("assertion")
            .ok_or_else(|| "Missing required parameter: assertion".to_owned())?;
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|e| format!("Invalid JWT: cannot read the header ({e})"))?;
        if header.alg != Algorithm::RS256 {
            return Err(format!("Invalid JWT: alg {:?}, expected RS256", header.alg));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        // The time and audience checks below give Google-like reasons.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(assertion, &self.key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "Invalid JWT Signature.".to_owned()
                }
                _ => format!("Invalid JWT: {e}"),
            })?
            .claims;
        if claims.iss != self.client_email {
            return Err("Invalid JWT: iss is not the service account.".into());
        }
        if claims.aud != self.audience {
            return Err(format!(
                "Invalid JWT: audience {:?} is not the token endpoint.",
                claims.aud
            ));
        }
        if !claims.scope.split_whitespace().any(|s| s == CLOUD_PLATFORM) {
            return Err("Invalid JWT: the scope does not include cloud-platform.".into());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the issuer's clock is before 1970".to_owned())?
            .as_secs();
        let timeframe = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
                         reasonable timeframe. Check your iat and exp values in the JWT claim.";
        if claims.iat > now + LEEWAY_SECS
            || claims.exp <= now
            || claims.exp < claims.iat
            || claims.exp - claims.iat > MAX_ASSERTION_SECS
        {
            return Err(timeframe.into());
        }
        Ok(())
    }
}

/// The fields of an `application/x-www-form-urlencoded` body.
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let body = std::str::from_utf8(body).map_err(|_| "The form body is not UTF-8.".to_owned())?;
    let mut fields = HashMap::new();
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        fields.insert(percent_decode(k)?, percent_decode(v)?);
    }
    Ok(fields)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bad = || "Malformed form encoding.".to_owned();
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().ok_or_else(bad)?;
                let lo = bytes.next().ok_or_else(bad)?;
                let pair = [hi, lo];
                let hex = std::str::from_utf8(&pair).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    const KEY_JSON: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/vertex-service-account.json"
    ));
    const PUBLIC_KEY: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/vertex-service-account.pub.pem"
    ));
    const OTHER_KEY_PEM: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/vertex-other-key.pem"
    ));
    const EMAIL: &str = "gateway@residency-test.iam.gserviceaccount.com";
    const AUD: &str = "http://127.0.0.1:1/token";

    fn private_key() -> String {
        let v: Value = serde_json::from_str(KEY_JSON).unwrap();
        v["private_key"].as_str().unwrap().to_owned()
    }

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(EMAIL, PUBLIC_KEY, AUD, Duration::from_secs(60)).unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// Good claims, with `edit` applied.
    fn claims(edit: impl FnOnce(&mut Value)) -> Value {
        let t = now();
        let mut c = json!({
            "iss": EMAIL,
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": AUD,
            "iat": t,
            "exp": t + 3600,
        });
        edit(&mut c);
        c
    }

    fn form(claims: &Value, pem: &str) -> Vec<u8> {
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).unwrap();
        format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}")
            .into_bytes()
    }

    fn refused(issuer: &TokenIssuer, body: &[u8]) -> String {
        let (status, json) = issuer.issue(body);
        assert_eq!(status, 400, "{json}");
        assert_eq!(json["error"], "invalid_grant", "{json}");
        json["error_description"].as_str().unwrap().to_owned()
    }

    #[test]
    fn oauth_issues_a_token_for_a_good_assertion() {
        let issuer = issuer();
        let (status, json) = issuer.issue(&form(&claims(|_| {}), &private_key()));
        assert_eq!(status, 200, "{json}");
        assert_eq!(json["token_type"], "Bearer");
        assert_eq!(json["expires_in"], 60);
        let token = json["access_token"].as_str().unwrap();
        assert!(issuer.accepts(token));
        assert!(issuer.accepts(&format!("Bearer {token}")));
        assert!(!issuer.accepts("ya29.mock-made-up"));
        assert_eq!(issuer.issued(), 1);
        let (_, again) = issuer.issue(&form(&claims(|_| {}), &private_key()));
        assert_ne!(again["access_token"], json["access_token"]);
        assert_eq!(issuer.issued(), 2);
        assert!(!format!("{issuer:?}").contains(token));
    }

    #[test]
    fn oauth_refuses_another_key_and_a_tampered_signature() {
        let issuer = issuer();
        let reason = refused(&issuer, &form(&claims(|_| {}), OTHER_KEY_PEM));
        assert_eq!(reason, "Invalid JWT Signature.");
        let mut good = form(&claims(|_| {}), &private_key());
        // The last byte is the signature's: change it.
        let last = good.len() - 1;
        good[last] = if good[last] == b'A' { b'B' } else { b'A' };
        refused(&issuer, &good);
        assert_eq!(issuer.issued(), 0);
    }

    #[test]
    fn oauth_refuses_wrong_claims() {
        let issuer = issuer();
        let pem = private_key();
        let cases: Vec<(&str, Value)> = vec![
            (
                "aud",
                claims(|c| c["aud"] = "https://oauth2.googleapis.com/token".into()),
            ),
            (
                "iss",
                claims(|c| c["iss"] = "other@residency-test.iam.gserviceaccount.com".into()),
            ),
            (
                "scope",
                claims(|c| {
                    c["scope"] = "https://www.googleapis.com/auth/devstorage.read_only".into()
                }),
            ),
            (
                "no scope",
                claims(|c| {
                    c.as_object_mut().unwrap().remove("scope");
                }),
            ),
            (
                "expired",
                claims(|c| {
                    c["iat"] = (now() - 4000).into();
                    c["exp"] = (now() - 400).into();
                }),
            ),
            (
                "future iat",
                claims(|c| {
                    c["iat"] = (now() + 120).into();
                    c["exp"] = (now() + 1800).into();
                }),
            ),
            ("too long", claims(|c| c["exp"] = (now() + 7200).into())),
        ];
        for (what, c) in cases {
            let reason = refused(&issuer, &form(&c, &pem));
            assert!(reason.starts_with("Invalid JWT"), "{what}: {reason}");
        }
        // Within the 30 s leeway an early iat is fine.
        let skewed = claims(|c| c["iat"] = (now() + 10).into());
        assert_eq!(issuer.issue(&form(&skewed, &pem)).0, 200);
        assert_eq!(issuer.issued(), 1);
    }

    #[test]
    fn oauth_refuses_a_bad_form() {
        let issuer = issuer();
        let body = form(&claims(|_| {}), &private_key());
        let body = String::from_utf8(body).unwrap();
        let wrong_grant = body.replace("jwt-bearer", "saml2-bearer");
        assert_eq!(
            refused(&issuer, wrong_grant.as_bytes()),
            "Invalid grant_type."
        );
        let no_assertion = body.split('&').next().unwrap().to_owned();
        assert!(refused(&issuer, no_assertion.as_bytes()).contains("assertion"));
        refused(
            &issuer,
            b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=not.a.jwt",
        );
        refused(&issuer, b"grant_type=%zz");
    }

    #[test]
    fn oauth_token_expires_after_its_lifetime() {
        let issuer = TokenIssuer::new(EMAIL, PUBLIC_KEY, AUD, Duration::from_millis(300)).unwrap();
        let (_, json) = issuer.issue(&form(&claims(|_| {}), &private_key()));
        let token = json["access_token"].as_str().unwrap();
        assert!(issuer.accepts(token));
        std::thread::sleep(Duration::from_millis(350));
        assert!(!issuer.accepts(token));
    }

    #[test]
    fn oauth_new_rejects_a_non_pem_key() {
        assert!(TokenIssuer::new(EMAIL, "not a key", AUD, Duration::from_secs(60)).is_err());
    }
}
