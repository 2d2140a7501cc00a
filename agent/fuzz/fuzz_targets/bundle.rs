//! Fuzz target: the policy bundle decoder and verifier never panic on arbitrary
//! bytes, and whatever decodes re-encodes to a bundle that decodes the same.
//!
//! Arbitrary bytes never verify (the fuzzer cannot forge a signature), so the
//! input is also signed here with a fixed test key, as a policy: verification
//! then goes on to the version check, the UTF-8 check and the policy parser,
//! and a bundle verifies exactly when its text lints.

#![no_main]

use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use residency_agent::policy::lint;
use residency_agent::policy::sign::{verify, PolicySigningKey, TrustedKey, VerifyError};
use residency_proto::{PolicyBundle, DEFAULT_MAX_BUNDLE_LEN};
use std::sync::OnceLock;

const SEED: [u8; 32] = [7; 32];

static KEY: OnceLock<(TrustedKey, String)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (key, key_id) = KEY.get_or_init(|| {
        let k = PolicySigningKey::from_seed(&SEED);
        (k.public(), k.key_id().to_owned())
    });
    let trusted = std::slice::from_ref(key);
    for max in [DEFAULT_MAX_BUNDLE_LEN, data.len() / 2] {
        if let Ok(b) = PolicyBundle::decode(data, max) {
            let again = b.encode();
            assert_eq!(PolicyBundle::decode(&again, usize::MAX).as_ref(), Ok(&b));
            let _ = b.signed_message();
            let _ = b.policy_text();
        }
    }
    assert!(verify(data, trusted, None, DEFAULT_MAX_BUNDLE_LEN).is_err());

    // The same bytes as the policy of a correctly signed bundle.
    let version = u64::from(data.first().copied().unwrap_or(0));
    let mut bundle = PolicyBundle {
        format: residency_proto::BUNDLE_FORMAT,
        version,
        issued_at: 1_700_000_000,
        key_id: key_id.clone(),
        policy: data.to_vec(),
        signature: Vec::new(),
    };
    let signer = SigningKey::from_bytes(&SEED);
    bundle.signature = signer.sign(&bundle.signed_message()).to_bytes().to_vec();
    let bytes = bundle.encode();
    let active = data.get(1).map(|&v| u64::from(v));
    match verify(&bytes, trusted, active, usize::MAX) {
        Ok(v) => {
            assert_eq!(v.version, version);
            assert!(active.is_none_or(|a| version > a));
            assert_eq!(v.bundle_bytes, bytes);
            let text = std::str::from_utf8(data).expect("a verified policy is UTF-8");
            assert!(lint(text).is_ok());
        }
        Err(VerifyError::Rollback {
            bundle: b,
            active: a,
        }) => {
            assert_eq!(b, version);
            assert!(b <= a);
        }
        Err(VerifyError::InvalidPolicy(errors)) => {
            assert!(!errors.is_empty());
            let text = std::str::from_utf8(data).expect("only UTF-8 reaches the parser");
            assert!(lint(text).is_err());
        }
        Err(VerifyError::UnknownKeyId(_) | VerifyError::BadSignature(_)) => {
            panic!("a correctly signed bundle was refused for its signature")
        }
        // Not UTF-8, or too large.
        Err(_) => {}
    }
});
