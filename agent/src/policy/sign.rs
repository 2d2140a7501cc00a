//! Signing and verification of policy bundles with ed25519: pure functions
//! over bytes (randomness for key generation comes from the OS via getrandom).
//!
//! # Key files
//!
//! Both keys are PEM-like text: optional `#` comment lines (the key id is
//! written as one), then
//!
//! ```text
//! -----BEGIN RESIDENCY POLICY SIGNING KEY-----
//! <standard base64 of the 32-byte ed25519 secret seed>
//! -----END RESIDENCY POLICY SIGNING KEY-----
//! ```
//!
//! and the same with `RESIDENCY POLICY PUBLIC KEY` around the 32-byte public
//! key. The key id is the hex of the first 8 bytes of the SHA-256 of the public
//! key (16 hex digits).

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use residency_proto::bundle::{
    BundleError, PolicyBundle, BUNDLE_FORMAT, DEFAULT_MAX_BUNDLE_LEN, SIGNATURE_LEN,
};
use sha2::{Digest, Sha256};

use super::{lint, Policy, PolicyError};

const SECRET_LABEL: &str = "RESIDENCY POLICY SIGNING KEY";
const PUBLIC_LABEL: &str = "RESIDENCY POLICY PUBLIC KEY";

/// The secret key compliance signs bundles with. Its `Debug` shows only the
/// key id; the secret is zeroized when dropped.
#[derive(Clone)]
pub struct PolicySigningKey {
    key: SigningKey,
    key_id: String,
}

/// A public key an agent trusts to sign policy bundles (pinned in its config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    key: VerifyingKey,
    key_id: String,
}

/// A bundle whose signature, key and version were checked and whose policy
/// validated.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPolicy {
    /// The bundle's version.
    pub version: u64,
    /// When it was signed, unix seconds.
    pub issued_at: u64,
    /// The key that signed it.
    pub key_id: String,
    /// The validated policy.
    pub policy: Policy,
    /// The bundle exactly as received, for storage and re-distribution.
    pub bundle_bytes: Vec<u8>,
}

/// Why a key file could not be read or a key made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text has no BEGIN/END block of the expected kind.
    #[error("not a {0} file (expected -----BEGIN {0}----- ... -----END {0}-----)")]
    NotAKeyFile(&'static str),
    /// The block is not valid base64.
    #[error("key is not valid base64")]
    BadBase64,
    /// The key has the wrong number of bytes.
    #[error("key is {0} bytes, expected 32")]
    BadLength(usize),
    /// The bytes are not a valid ed25519 public key.
    #[error("not a valid ed25519 public key")]
    InvalidPublicKey,
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// Why a bundle could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The policy does not validate; nothing was signed.
    #[error("invalid policy, not signed: {}", first(.0))]
    InvalidPolicy(Vec<PolicyError>),
    /// The signed bundle would exceed the size agents accept.
    #[error("policy bundle of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// Limit.
        max: usize,
    },
}

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The bytes are not a well-formed bundle (truncated, oversize, garbage).
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The bundle names a key id that is not among the trusted keys.
    #[error("unknown key id {0}: the bundle was not signed by a trusted key")]
    UnknownKeyId(String),
    /// The signature does not verify with the trusted key of that id.
    #[error("bad signature: the bundle does not verify with trusted key {0}")]
    BadSignature(String),
    /// The bundle's version is not newer than the active one.
    #[error("rollback or replay refused: bundle version {bundle} is not newer than the active version {active}")]
    Rollback {
        /// Version in the bundle.
        bundle: u64,
        /// Version active now.
        active: u64,
    },
    /// The signed policy does not validate with this agent's rules.
    #[error("invalid policy in signed bundle: {}", first(.0))]
    InvalidPolicy(Vec<PolicyError>),
}

impl fmt::Debug for PolicySigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl PolicySigningKey {
    /// A key from its 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(&key.verifying_key());
        PolicySigningKey { key, key_id }
    }

    /// Reads a signing key file.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let bytes = unpem(text, SECRET_LABEL)?;
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadLength(bytes.len()))?;
        Ok(PolicySigningKey::from_seed(&seed))
    }

    /// The key file text.
    pub fn to_pem(&self) -> String {
        pem(
            SECRET_LABEL,
            &self.key.to_bytes(),
            &format!(
                "# Residency Agent policy signing key {}. Keep it secret, offline.",
                self.key_id
            ),
        )
    }

    /// The public half, to pin in agents.
    pub fn public(&self) -> TrustedKey {
        TrustedKey {
            key: self.key.verifying_key(),
            key_id: self.key_id.clone(),
        }
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

impl TrustedKey {
    /// A trusted key from 32 public key bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(TrustedKey {
            key_id: key_id(&key),
            key,
        })
    }

    /// Reads a public key file.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let bytes = unpem(text, PUBLIC_LABEL)?;
        let raw: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadLength(bytes.len()))?;
        TrustedKey::from_bytes(&raw)
    }

    /// The key file text.
    pub fn to_pem(&self) -> String {
        pem(
            PUBLIC_LABEL,
            self.key.as_bytes(),
            &format!("# Residency Agent policy public key {}", self.key_id),
        )
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The 32 public key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }
}

/// Makes a new signing key from 32 bytes of OS randomness.
pub fn generate_keypair() -> Result<(PolicySigningKey, TrustedKey), KeyError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = PolicySigningKey::from_seed(&seed);
    seed.fill(0);
    let public = key.public();
    Ok((key, public))
}

/// The key id of a public key: hex of the first 8 bytes of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Lints the policy and signs it into a bundle; an invalid policy, or one too
/// large for agents to accept ([`DEFAULT_MAX_BUNDLE_LEN`]), is refused.
pub fn sign(
    policy_text: &str,
    version: u64,
    issued_at: u64,
    key: &PolicySigningKey,
) -> Result<PolicyBundle, SignError> {
    lint(policy_text).map_err(SignError::InvalidPolicy)?;
    let mut bundle = PolicyBundle {
        format: BUNDLE_FORMAT,
        version,
        issued_at,
        key_id: key.key_id.clone(),
        policy: policy_text.as_bytes().to_vec(),
        signature: Vec::new(),
    };
    bundle.signature = key.key.sign(&bundle.signed_message()).to_bytes().to_vec();
    let len = bundle.encode().len();
    if len > DEFAULT_MAX_BUNDLE_LEN {
        return Err(SignError::TooLarge {
            len,
            max: DEFAULT_MAX_BUNDLE_LEN,
        });
    }
    Ok(bundle)
}

/// Decodes and checks a bundle: well-formed, signed by a trusted key with a
/// valid signature, newer than `active_version`, and holding a valid policy.
pub fn verify(
    bundle_bytes: &[u8],
    trusted: &[TrustedKey],
    active_version: Option<u64>,
    max_len: usize,
) -> Result<VerifiedPolicy, VerifyError> {
    let bundle = check_signature(bundle_bytes, trusted, max_len)?;
    if let Some(active) = active_version {
        if bundle.version <= active {
            return Err(VerifyError::Rollback {
                bundle: bundle.version,
                active,
            });
        }
    }
    let policy = lint(bundle.policy_text()?).map_err(VerifyError::InvalidPolicy)?;
    Ok(VerifiedPolicy {
        version: bundle.version,
        issued_at: bundle.issued_at,
        key_id: bundle.key_id,
        policy,
        bundle_bytes: bundle_bytes.to_vec(),
    })
}

/// Decodes a bundle and checks that a trusted key signed exactly these bytes,
/// without validating the policy inside: for a stored bundle that [`verify`]
/// accepted when it was installed, e.g. to list the history. Any change to the
/// stored bytes fails here.
pub fn check_signature(
    bundle_bytes: &[u8],
    trusted: &[TrustedKey],
    max_len: usize,
) -> Result<PolicyBundle, VerifyError> {
    let bundle = PolicyBundle::decode(bundle_bytes, max_len)?;
    let key = trusted
        .iter()
        .find(|k| k.key_id == bundle.key_id)
        .ok_or_else(|| VerifyError::UnknownKeyId(bundle.key_id.clone()))?;
    let sig: [u8; SIGNATURE_LEN] = bundle
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| BundleError::BadSignatureLength(bundle.signature.len()))?;
    key.key
        .verify_strict(&bundle.signed_message(), &Signature::from_bytes(&sig))
        .map_err(|_| VerifyError::BadSignature(bundle.key_id.clone()))?;
    Ok(bundle)
}

fn first(errors: &[PolicyError]) -> String {
    match errors {
        [] => "no details".into(),
        [one] => one.to_string(),
        [one, rest @ ..] => format!("{one} (and {} more)", rest.len()),
    }
}

fn pem(label: &str, bytes: &[u8], comment: &str) -> String {
    format!(
        "{comment}\n-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        B64.encode(bytes)
    )
}

fn unpem(text: &str, label: &'static str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut lines = text.lines().map(str::trim);
    lines
        .by_ref()
        .find(|l| *l == begin)
        .ok_or(KeyError::NotAKeyFile(label))?;
    let mut body = String::new();
    for line in lines {
        if line == end {
            return B64.decode(body.as_bytes()).map_err(|_| KeyError::BadBase64);
        }
        body.push_str(line);
    }
    Err(KeyError::NotAKeyFile(label))
}

#[cfg(test)]
mod tests {
    use super::*;
    use residency_proto::DEFAULT_MAX_BUNDLE_LEN as MAX;

    const POLICY: &str = super::super::BASELINE_TEXT;

    fn key(n: u8) -> PolicySigningKey {
        PolicySigningKey::from_seed(&[n; 32])
    }

    fn signed(version: u64) -> Vec<u8> {
        sign(POLICY, version, 1_790_000_000, &key(1))
            .unwrap()
            .encode()
    }

    #[test]
    fn signed_bundle_verifies() {
        let bytes = signed(5);
        let v = verify(&bytes, &[key(1).public()], Some(4), MAX).unwrap();
        assert_eq!(v.version, 5);
        assert_eq!(v.issued_at, 1_790_000_000);
        assert_eq!(v.key_id, key(1).key_id());
        assert_eq!(v.policy, Policy::builtin_baseline());
        assert_eq!(v.bundle_bytes, bytes);
        // First policy ever: no active version.
        assert!(verify(&bytes, &[key(2).public(), key(1).public()], None, MAX).is_ok());
    }

    #[test]
    fn flipped_policy_byte_is_a_bad_signature() {
        let mut b = PolicyBundle::decode(&signed(5), MAX).unwrap();
        // Restricted data may now go to the US: must not verify.
        let text = b.policy_text().unwrap().replacen("[\"IN\"]", "[\"US\"]", 1);
        assert_ne!(text.as_bytes(), b.policy.as_slice());
        b.policy = text.into_bytes();
        let err = verify(&b.encode(), &[key(1).public()], None, MAX).unwrap_err();
        assert_eq!(err, VerifyError::BadSignature(key(1).key_id().into()));
        assert!(err.to_string().contains("bad signature"));

        // Flipped bits anywhere in the policy or the signature are caught.
        let good = PolicyBundle::decode(&signed(5), MAX).unwrap();
        // Every 7th byte and the last (each verify is slow in debug builds).
        let n = good.policy.len();
        for i in (0..n).step_by(7).chain([n - 1]) {
            let mut b = good.clone();
            b.policy[i] ^= 0x01;
            let err = verify(&b.encode(), &[key(1).public()], None, MAX).unwrap_err();
            assert!(
                matches!(err, VerifyError::BadSignature(_) | VerifyError::Bundle(_)),
                "policy byte {i}: {err:?}"
            );
        }
        for i in 0..SIGNATURE_LEN {
            let mut b = good.clone();
            b.signature[i] ^= 0x80;
            let err = verify(&b.encode(), &[key(1).public()], None, MAX).unwrap_err();
            assert!(
                matches!(err, VerifyError::BadSignature(_)),
                "sig byte {i}: {err:?}"
            );
        }
    }

    #[test]
    fn changed_header_fields_are_bad_signatures() {
        let good = PolicyBundle::decode(&signed(5), MAX).unwrap();
        let mut b = good.clone();
        b.version = 6;
        assert!(matches!(
            verify(&b.encode(), &[key(1).public()], None, MAX),
            Err(VerifyError::BadSignature(_))
        ));
        let mut b = good;
        b.issued_at += 1;
        assert!(matches!(
            verify(&b.encode(), &[key(1).public()], None, MAX),
            Err(VerifyError::BadSignature(_))
        ));
    }

    #[test]
    fn wrong_key_with_same_id_is_a_bad_signature() {
        // A forger who copies a trusted key id but signs with their own key.
        let mut b = sign(POLICY, 5, 0, &key(9)).unwrap();
        b.key_id = key(1).key_id().to_owned();
        assert_eq!(
            verify(&b.encode(), &[key(1).public()], None, MAX),
            Err(VerifyError::BadSignature(key(1).key_id().to_owned()))
        );
    }

    #[test]
    fn unknown_key_id_is_refused() {
        let err = verify(&signed(5), &[key(2).public()], None, MAX).unwrap_err();
        assert_eq!(err, VerifyError::UnknownKeyId(key(1).key_id().to_owned()));
        assert!(err.to_string().contains("unknown key id"));
        assert!(matches!(
            verify(&signed(5), &[], None, MAX),
            Err(VerifyError::UnknownKeyId(_))
        ));
    }

    #[test]
    fn older_or_equal_versions_are_refused() {
        for active in [5, 6, u64::MAX] {
            let err = verify(&signed(5), &[key(1).public()], Some(active), MAX).unwrap_err();
            assert_eq!(err, VerifyError::Rollback { bundle: 5, active });
            let msg = err.to_string();
            assert!(
                msg.contains('5') && msg.contains(&active.to_string()),
                "{msg}"
            );
        }
    }

    #[test]
    fn truncated_bundles_are_refused() {
        let bytes = signed(5);
        for n in [0, 3, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            let err = verify(&bytes[..n], &[key(1).public()], None, MAX).unwrap_err();
            assert!(
                matches!(err, VerifyError::Bundle(BundleError::Truncated { .. })),
                "{n}: {err:?}"
            );
            assert!(err.to_string().contains("truncated"));
        }
    }

    #[test]
    fn invalid_policy_is_not_signed_and_not_accepted() {
        let bad = "[[rule]]\nname = \"x\"\n[rule.allow]\nregions = [\"aws:mars-1\"]\n";
        assert!(matches!(
            sign(bad, 1, 0, &key(1)),
            Err(SignError::InvalidPolicy(_))
        ));
        // Signed by a trusted key anyway (e.g. by an older tool): still refused.
        let mut b = sign(POLICY, 1, 0, &key(1)).unwrap();
        b.policy = bad.as_bytes().to_vec();
        b.signature = key(1).key.sign(&b.signed_message()).to_bytes().to_vec();
        let err = verify(&b.encode(), &[key(1).public()], None, MAX).unwrap_err();
        assert!(matches!(err, VerifyError::InvalidPolicy(_)), "{err:?}");
        assert!(err.to_string().contains("unknown region id"));
    }

    #[test]
    fn check_signature_checks_the_bytes_but_not_the_policy() {
        let bytes = signed(5);
        let b = check_signature(&bytes, &[key(1).public()], MAX).unwrap();
        assert_eq!((b.version, b.key_id.as_str()), (5, key(1).key_id()));
        let mut flipped = PolicyBundle::decode(&bytes, MAX).unwrap();
        let n = flipped.policy.len();
        flipped.policy[n / 2] ^= 0x01;
        assert!(matches!(
            check_signature(&flipped.encode(), &[key(1).public()], MAX),
            Err(VerifyError::BadSignature(_))
        ));
        assert!(matches!(
            check_signature(&bytes, &[key(2).public()], MAX),
            Err(VerifyError::UnknownKeyId(_))
        ));
        // A signed but invalid policy passes here; only verify lints it.
        let mut b = sign(POLICY, 1, 0, &key(1)).unwrap();
        b.policy = b"[[rule]]\nname = \"x\"\n".to_vec();
        b.signature = key(1).key.sign(&b.signed_message()).to_bytes().to_vec();
        assert!(check_signature(&b.encode(), &[key(1).public()], MAX).is_ok());
        assert!(matches!(
            verify(&b.encode(), &[key(1).public()], None, MAX),
            Err(VerifyError::InvalidPolicy(_))
        ));
    }

    #[test]
    fn oversize_is_refused_on_both_sides() {
        let huge = format!("{POLICY}# {}\n", "x".repeat(MAX));
        assert!(lint(&huge).is_ok());
        assert!(matches!(
            sign(&huge, 1, 0, &key(1)),
            Err(SignError::TooLarge { .. })
        ));
        let bytes = signed(1);
        assert!(matches!(
            verify(&bytes, &[key(1).public()], None, bytes.len() - 1),
            Err(VerifyError::Bundle(BundleError::TooLarge { .. }))
        ));
    }

    #[test]
    fn key_files_round_trip_and_ids_are_stable() {
        let (secret, public) = generate_keypair().unwrap();
        let secret2 = PolicySigningKey::from_pem(&secret.to_pem()).unwrap();
        assert_eq!(secret2.key_id(), secret.key_id());
        assert_eq!(TrustedKey::from_pem(&public.to_pem()).unwrap(), public);
        assert_eq!(public.key_id().len(), 16);
        assert_eq!(
            public.key_id(),
            hex::encode(&Sha256::digest(public.as_bytes())[..8])
        );
        // Two generated keys differ.
        assert_ne!(generate_keypair().unwrap().1, public);
        // A public key is not a signing key, and the other way round.
        assert_eq!(
            PolicySigningKey::from_pem(&public.to_pem()).unwrap_err(),
            KeyError::NotAKeyFile(SECRET_LABEL)
        );
        assert!(TrustedKey::from_pem(&secret.to_pem()).is_err());
        assert!(!format!("{secret:?}").contains(&B64.encode(secret.key.to_bytes())));
        let short = "-----BEGIN RESIDENCY POLICY PUBLIC KEY-----\nAAAA\n-----END RESIDENCY POLICY PUBLIC KEY-----\n";
        assert_eq!(TrustedKey::from_pem(short), Err(KeyError::BadLength(3)));
    }
}
