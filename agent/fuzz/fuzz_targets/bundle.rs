//! Fuzz target: the policy bundle decoder and verifier never panic on arbitrary
//! bytes, and whatever decodes re-encodes to a bundle that decodes the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use residency_agent::policy::sign::{verify, PolicySigningKey, TrustedKey};
use residency_proto::{PolicyBundle, DEFAULT_MAX_BUNDLE_LEN};
use std::sync::OnceLock;

static KEY: OnceLock<TrustedKey> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let key = KEY.get_or_init(|| PolicySigningKey::from_seed(&[7; 32]).public());
    for max in [DEFAULT_MAX_BUNDLE_LEN, data.len() / 2] {
        if let Ok(b) = PolicyBundle::decode(data, max) {
            let again = b.encode();
            assert_eq!(PolicyBundle::decode(&again, usize::MAX).as_ref(), Ok(&b));
            let _ = b.signed_message();
            assert!(b.policy_text().is_ok());
        }
    }
    // Nothing arbitrary verifies: the fuzzer cannot forge a signature.
    let trusted = std::slice::from_ref(key);
    assert!(verify(data, trusted, None, DEFAULT_MAX_BUNDLE_LEN).is_err());
});
