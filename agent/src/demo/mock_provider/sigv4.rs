//! The mock provider's check of AWS SigV4 signed requests (its Bedrock
//! surface): as strict as AWS, so a gateway that signs wrongly fails in the
//! tests rather than against the real endpoint.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{PayloadChecksumKind, SigningSettings};
use http::header::{HeaderName, HOST};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::gateway::upstream::sigv4::{sign_parts, AwsCredentials};

/// The only algorithm accepted (no SigV4a).
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Headers the signer writes from the credentials, time and body rather than
/// copying them from the request.
const SIGNER_WRITTEN: &[&str] = &["x-amz-date", "x-amz-content-sha256", "x-amz-security-token"];

/// The parts of an `authorization` header.
#[derive(Debug)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

/// Checks a request's SigV4 `authorization` the way AWS does: parses
/// `AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/region/service/aws4_request, SignedHeaders=a;b;c, Signature=hex`,
/// requires the access key id, region and service to match, `x-amz-date` to be within `max_skew` of `now`
/// and the credential date to equal its date, `host` and `x-amz-date` among the signed headers,
/// `x-amz-content-sha256` (when signed/present) to equal the body's sha256, then re-signs a request made of
/// only the signed headers with the known secret (using aws-sigv4, at the request's x-amz-date) and compares
/// signatures in constant time. Returns a short reason on failure (never the secret or the signature).
pub(crate) fn verify(
    parts: &http::request::Parts,
    body: &[u8],
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    now: SystemTime,
    max_skew: Duration,
) -> Result<(), String> {
    let value = parts
        .headers
        .get("authorization")
        .ok_or("missing authorization header")?
        .to_str()
        .map_err(|_| "authorization header is not ASCII")?;
    let auth = parse_authorization(value)?;

    if auth.access_key_id != creds.access_key_id {
        return Err("unknown access key id".into());
    }
    if auth.region != region {
        return Err(format!(
            "credential scope region {:?} is not {region:?}",
            auth.region
        ));
    }
    if auth.service != service {
        return Err(format!(
            "credential scope service {:?} is not {service:?}",
            auth.service
        ));
    }

    let amz_date = single_header(parts, "x-amz-date")?.ok_or("missing x-amz-date header")?;
    let signed_at = parse_amz_date(amz_date).ok_or("malformed x-amz-date")?;
    let skew = match now.duration_since(signed_at) {
        Ok(age) => age,
        Err(ahead) => ahead.duration(),
    };
    if skew > max_skew {
        return Err("x-amz-date is outside the allowed clock skew".into());
    }
    // parse_amz_date accepted 16 ASCII bytes, so the slice is in bounds.
    if auth.date != &amz_date[..8] {
        return Err("credential date does not match x-amz-date".into());
    }

    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&required) {
            return Err(format!("{required} is not a signed header"));
        }
    }
    for name in &auth.signed_headers {
        if !parts.headers.contains_key(*name) {
            return Err(format!("signed header {name} is missing"));
        }
    }

    let content_sha_signed = auth.signed_headers.contains(&"x-amz-content-sha256");
    if let Some(claimed) = single_header(parts, "x-amz-content-sha256")? {
        if claimed != hex::encode(Sha256::digest(body)) {
            return Err("x-amz-content-sha256 does not match the body".into());
        }
    }

    match (
        &creds.session_token,
        single_header(parts, "x-amz-security-token")?,
    ) {
        (Some(expected), Some(got)) => {
            if !bool::from(expected.as_bytes().ct_eq(got.as_bytes())) {
                return Err("invalid security token".into());
            }
            if !auth.signed_headers.contains(&"x-amz-security-token") {
                return Err("x-amz-security-token is not a signed header".into());
            }
        }
        (Some(_), None) => return Err("missing x-amz-security-token".into()),
        (None, Some(_)) => return Err("unexpected x-amz-security-token".into()),
        (None, None) => {}
    }

    // Re-sign a copy holding only the signed headers; the signer adds the
    // date, token and content hash itself.
    let mut copy = http::Request::new(());
    *copy.method_mut() = parts.method.clone();
    *copy.uri_mut() = parts.uri.clone();
    let (mut copy, ()) = copy.into_parts();
    for name in &auth.signed_headers {
        if SIGNER_WRITTEN.contains(name) {
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid signed header name {name:?}"))?;
        for value in parts.headers.get_all(&name) {
            copy.headers.append(name.clone(), value.clone());
        }
    }
    if !copy.headers.contains_key(HOST) {
        return Err("missing host header".into());
    }

    let mut settings = SigningSettings::default();
    // Whatever the client chose to sign is signed again (a client may sign
    // user-agent, which the crate's defaults would leave out).
    settings.excluded_headers = None;
    settings.payload_checksum_kind = if content_sha_signed {
        PayloadChecksumKind::XAmzSha256
    } else {
        PayloadChecksumKind::NoHeader
    };
    let (_headers, expected) = sign_parts(&copy, body, creds, region, service, signed_at, settings)
        .map_err(|e| format!("cannot re-sign the request: {e}"))?;

    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err("signature does not match".into())
    }
}

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
fn parse_authorization(value: &str) -> Result<Authorization<'_>, String> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or("authorization is not AWS4-HMAC-SHA256")?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in rest.split(',') {
        let (key, value) = component
            .trim_start_matches(' ')
            .split_once('=')
            .ok_or("malformed authorization component")?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err("unknown authorization component".into()),
        };
        if slot.replace(value).is_some() {
            return Err("repeated authorization component".into());
        }
    }
    let credential = credential.ok_or("authorization has no Credential")?;
    let signed_headers = signed_headers.ok_or("authorization has no SignedHeaders")?;
    let signature = signature.ok_or("authorization has no Signature")?;

    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err("malformed credential scope".into());
    };
    if terminator != "aws4_request"
        || access_key_id.is_empty()
        || region.is_empty()
        || service.is_empty()
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("malformed credential scope".into());
    }

    let signed_headers: Vec<&str> = signed_headers.split(';').collect();
    let well_formed = signed_headers.iter().all(|name| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    // The canonical request lists them sorted and once each.
    if !well_formed || !signed_headers.windows(2).all(|pair| pair[0] < pair[1]) {
        return Err("malformed SignedHeaders".into());
    }

    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("malformed Signature".into());
    }

    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// The value of a header that must appear at most once.
fn single_header<'a>(
    parts: &'a http::request::Parts,
    name: &str,
) -> Result<Option<&'a str>, String> {
    let mut values = parts.headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("repeated {name} header"));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| format!("{name} header is not ASCII"))
}

/// Parses `YYYYMMDDTHHMMSSZ` (UTC).
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let bytes = value.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = value.get(range)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let day = u8::try_from(number(6..8)?).ok()?;
    let hour = u8::try_from(number(9..11)?).ok()?;
    let minute = u8::try_from(number(11..13)?).ok()?;
    let second = u8::try_from(number(13..15)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let time_of_day = time::Time::from_hms(hour, minute, second).ok()?;
    let unix = time::PrimitiveDateTime::new(date, time_of_day)
        .assume_utc()
        .unix_timestamp();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).ok()?))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::gateway::upstream::sigv4::SigV4Signer;

    const BODY: &[u8] =
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#;
    const SKEW: Duration = Duration::from_secs(300);

    fn creds(session_token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIAMOCKPROVIDER01".into(),
            secret_access_key: "mock/secret+access/key0123456789abcdefgh".into(),
            session_token: session_token.map(str::to_owned),
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600) // 2026-01-01T00:00:00Z
    }

    /// What the gateway sends (signed) and what the mock receives: the same
    /// headers plus the Host hyper adds, and a URI of path and query only.
    fn signed_request(session_token: Option<&str>) -> http::request::Parts {
        let (mut parts, ()) =
            http::Request::post("http://127.0.0.1:40123/openai/v1/chat/completions")
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .header("user-agent", "residency-agent/0.1")
                .body(())
                .unwrap()
                .into_parts();
        SigV4Signer::new(creds(session_token), "ap-south-1", "bedrock")
            .sign(&mut parts, BODY, now())
            .unwrap();
        parts
            .headers
            .insert(HOST, HeaderValue::from_static("127.0.0.1:40123"));
        parts.uri = "/openai/v1/chat/completions".parse().unwrap();
        parts
    }

    fn check(
        parts: &http::request::Parts,
        body: &[u8],
        creds: &AwsCredentials,
    ) -> Result<(), String> {
        verify(parts, body, creds, "ap-south-1", "bedrock", now(), SKEW)
    }

    fn assert_rejected(result: Result<(), String>, reason: &str) {
        let err = result.unwrap_err();
        assert!(err.contains(reason), "expected {reason:?}, got {err:?}");
    }

    #[test]
    fn sigv4_round_trip_without_session_token() {
        let parts = signed_request(None);
        assert_eq!(check(&parts, BODY, &creds(None)), Ok(()));
    }

    #[test]
    fn sigv4_round_trip_with_session_token() {
        let parts = signed_request(Some("FwoGZXIvYXdzEXAMPLE//token=="));
        let creds = creds(Some("FwoGZXIvYXdzEXAMPLE//token=="));
        assert_eq!(check(&parts, BODY, &creds), Ok(()));
        assert_rejected(
            check(&parts, BODY, &super::tests::creds(Some("other-token"))),
            "invalid security token",
        );
    }

    #[test]
    fn sigv4_accepts_the_aws_get_vanilla_request() {
        // The AWS test suite's get-vanilla as a server receives it.
        let (mut parts, ()) = http::Request::get("/")
            .header("host", "example.amazonaws.com")
            .header("x-amz-date", "20150830T123600Z")
            .body(())
            .unwrap()
            .into_parts();
        parts.headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
        );
        let creds = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        assert_eq!(
            verify(&parts, b"", &creds, "us-east-1", "service", at, SKEW),
            Ok(())
        );
        assert_rejected(
            verify(&parts, b"x", &creds, "us-east-1", "service", at, SKEW),
            "signature does not match",
        );
    }

    #[test]
    fn sigv4_rejects_wrong_secret() {
        let parts = signed_request(None);
        let mut other = creds(None);
        other.secret_access_key = "another/secret+access/key0123456789abcd".into();
        assert_rejected(check(&parts, BODY, &other), "signature does not match");
    }

    #[test]
    fn sigv4_rejects_body_changed_after_signing() {
        let parts = signed_request(None);
        let changed = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"HELLO"}]}"#;
        assert_rejected(
            check(&parts, changed, &creds(None)),
            "does not match the body",
        );

        // Without the content hash header the signature still covers the body.
        let mut parts = parts;
        let value = parts
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(value.contains("x-amz-content-sha256"));
        parts.headers.remove("x-amz-content-sha256");
        assert_rejected(
            check(&parts, changed, &creds(None)),
            "signed header x-amz-content-sha256 is missing",
        );
    }

    #[test]
    fn sigv4_rejects_changed_path() {
        let mut parts = signed_request(None);
        parts.uri = "/openai/v1/embeddings".parse().unwrap();
        assert_rejected(
            check(&parts, BODY, &creds(None)),
            "signature does not match",
        );
        parts.uri = "/openai/v1/chat/completions?stream=true".parse().unwrap();
        assert_rejected(
            check(&parts, BODY, &creds(None)),
            "signature does not match",
        );
    }

    #[test]
    fn sigv4_rejects_changed_signed_header() {
        let mut parts = signed_request(None);
        parts
            .headers
            .insert("content-type", HeaderValue::from_static("text/plain"));
        assert_rejected(
            check(&parts, BODY, &creds(None)),
            "signature does not match",
        );

        let mut parts = signed_request(None);
        parts
            .headers
            .insert(HOST, HeaderValue::from_static("127.0.0.1:40124"));
        assert_rejected(
            check(&parts, BODY, &creds(None)),
            "signature does not match",
        );

        // An unsigned header may change, as on the real service.
        let mut parts = signed_request(None);
        parts
            .headers
            .insert("user-agent", HeaderValue::from_static("other/2"));
        parts
            .headers
            .insert("content-length", HeaderValue::from_static("70"));
        assert_eq!(check(&parts, BODY, &creds(None)), Ok(()));
    }

    #[test]
    fn sigv4_rejects_wrong_region_service_and_key_id() {
        let parts = signed_request(None);
        assert_rejected(
            verify(
                &parts,
                BODY,
                &creds(None),
                "eu-central-1",
                "bedrock",
                now(),
                SKEW,
            ),
            "region",
        );
        assert_rejected(
            verify(&parts, BODY, &creds(None), "ap-south-1", "s3", now(), SKEW),
            "service",
        );
        let mut other = creds(None);
        other.access_key_id = "AKIAMOCKPROVIDER02".into();
        assert_rejected(check(&parts, BODY, &other), "unknown access key id");
    }

    #[test]
    fn sigv4_rejects_stale_or_future_date() {
        let parts = signed_request(None);
        let later = now() + SKEW + Duration::from_secs(1);
        assert_rejected(
            verify(
                &parts,
                BODY,
                &creds(None),
                "ap-south-1",
                "bedrock",
                later,
                SKEW,
            ),
            "clock skew",
        );
        let earlier = now() - SKEW - Duration::from_secs(1);
        assert_rejected(
            verify(
                &parts,
                BODY,
                &creds(None),
                "ap-south-1",
                "bedrock",
                earlier,
                SKEW,
            ),
            "clock skew",
        );
        let edge = now() + SKEW;
        assert_eq!(
            verify(
                &parts,
                BODY,
                &creds(None),
                "ap-south-1",
                "bedrock",
                edge,
                SKEW
            ),
            Ok(())
        );
    }

    #[test]
    fn sigv4_rejects_missing_authorization() {
        let mut parts = signed_request(None);
        parts.headers.remove("authorization");
        assert_rejected(check(&parts, BODY, &creds(None)), "missing authorization");
    }

    #[test]
    fn sigv4_rejects_malformed_authorization() {
        let parts = signed_request(None);
        let good = parts
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let cases = [
            ("Bearer sk-test", "not AWS4-HMAC-SHA256"),
            ("AWS4-HMAC-SHA256", "not AWS4-HMAC-SHA256"),
            (
                "AWS4-ECDSA-P256-SHA256 Credential=x",
                "not AWS4-HMAC-SHA256",
            ),
            (good.split(", Signature=").next().unwrap(), "no Signature"),
            (
                &good.replace("/aws4_request", "/aws5_request"),
                "malformed credential scope",
            ),
            (
                &good.replace("SignedHeaders=accept;", "SignedHeaders="),
                "signature does not match",
            ),
            (
                &good.replace(
                    "SignedHeaders=accept;content-type",
                    "SignedHeaders=content-type;accept",
                ),
                "malformed SignedHeaders",
            ),
            (
                &good.replace("Signature=", "Signature=00"),
                "malformed Signature",
            ),
            (
                &good.replace("Credential=", "Foo=bar, Credential="),
                "unknown authorization component",
            ),
            (
                &format!("{good}, Signature={}", "0".repeat(64)),
                "repeated authorization component",
            ),
        ];
        for (value, reason) in cases {
            let mut parts = signed_request(None);
            parts
                .headers
                .insert("authorization", HeaderValue::from_str(value).unwrap());
            assert_rejected(check(&parts, BODY, &creds(None)), reason);
        }

        // A signature that is well formed but wrong.
        let signature = good.rsplit("Signature=").next().unwrap();
        let flipped = format!(
            "{}{}",
            &signature[..63],
            if signature.ends_with('0') { '1' } else { '0' }
        );
        let mut parts = signed_request(None);
        parts.headers.insert(
            "authorization",
            HeaderValue::from_str(&good.replace(signature, &flipped)).unwrap(),
        );
        assert_rejected(
            check(&parts, BODY, &creds(None)),
            "signature does not match",
        );
    }

    #[test]
    fn sigv4_rejects_unsigned_host_or_date() {
        let parts = signed_request(None);
        let good = parts
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let mut parts = signed_request(None);
        let without_host = good.replace(";host;", ";");
        parts.headers.insert(
            "authorization",
            HeaderValue::from_str(&without_host).unwrap(),
        );
        assert_rejected(
            check(&parts, BODY, &creds(None)),
            "host is not a signed header",
        );

        let mut parts = signed_request(None);
        let without_date = good.replace(";x-amz-date", "");
        parts.headers.insert(
            "authorization",
            HeaderValue::from_str(&without_date).unwrap(),
        );
        assert_rejected(
            check(&parts, BODY, &creds(None)),
            "x-amz-date is not a signed header",
        );

        let mut parts = signed_request(None);
        let other_day = good.replace("/20260101/", "/20251231/");
        assert_ne!(other_day, good);
        parts
            .headers
            .insert("authorization", HeaderValue::from_str(&other_day).unwrap());
        assert_rejected(check(&parts, BODY, &creds(None)), "credential date");
    }

    #[test]
    fn sigv4_failure_reasons_hold_no_secret_or_signature() {
        let parts = signed_request(Some("SESSION-TOKEN-VALUE"));
        let good = parts
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let signature = good.rsplit("Signature=").next().unwrap().to_owned();
        let mut other = creds(Some("SESSION-TOKEN-VALUE"));
        other.secret_access_key = "another/secret+access/key0123456789abcd".into();
        let err = check(&parts, b"{}", &other).unwrap_err();
        let err2 = check(&parts, BODY, &other).unwrap_err();
        for err in [err, err2] {
            assert!(!err.contains(&signature), "{err}");
            assert!(!err.contains("secret"), "{err}");
            assert!(!err.contains("SESSION-TOKEN-VALUE"), "{err}");
        }
    }

    #[test]
    fn sigv4_parses_amz_date() {
        assert_eq!(
            parse_amz_date("20150830T123600Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_440_938_160))
        );
        for bad in [
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "2015083aT123600Z",
            "20150830T126000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
