//! The signed policy bundle envelope: what compliance signs offline, gateways
//! store and hand out, and agents verify before activating a policy.
//!
//! On disk and on the wire a bundle is
//! `[magic "RSPB"][length: u32 big-endian][postcard(PolicyBundle)]`.
//! The first byte of the postcard payload is the `format` field (postcard writes
//! a `u8` as one raw byte), so the decoder checks the format before it decodes
//! the rest: a future format may lay its fields out differently.
//!
//! This module holds no cryptography (proto stays free of it): it defines the
//! exact bytes that are signed ([`PolicyBundle::signed_message`]) and the agent
//! signs and verifies them with ed25519.

use serde::{Deserialize, Serialize};

/// The four bytes every encoded bundle starts with.
pub const BUNDLE_MAGIC: [u8; 4] = *b"RSPB";

/// The bundle format this crate writes and reads.
pub const BUNDLE_FORMAT: u8 = 1;

/// Bytes before the postcard payload: magic and length.
pub const BUNDLE_HEADER_LEN: usize = 8;

/// Default largest encoded bundle accepted (60 KiB, so it fits in one frame):
/// a policy is a few pages of text.
pub const DEFAULT_MAX_BUNDLE_LEN: usize = 60 * 1024;

/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Longest key id accepted; ids are 16 hex digits today.
pub const MAX_KEY_ID_LEN: usize = 64;

/// Domain separation prefix of the signed message, so a policy signature can
/// never be mistaken for a signature over anything else made with the same key.
pub const SIGNING_DOMAIN: &[u8] = b"residency-policy-bundle/v1\0";

/// A compliance policy with its version and signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyBundle {
    /// Envelope format, [`BUNDLE_FORMAT`].
    pub format: u8,
    /// Monotonic policy version; agents refuse a version not newer than theirs.
    pub version: u64,
    /// When the bundle was signed, unix seconds.
    pub issued_at: u64,
    /// Which signing key signed it: hex of the first 8 bytes of the SHA-256 of
    /// the ed25519 public key.
    pub key_id: String,
    /// The policy TOML text, UTF-8.
    pub policy: Vec<u8>,
    /// ed25519 signature over [`PolicyBundle::signed_message`], 64 bytes.
    pub signature: Vec<u8>,
}

/// Why bytes are not a policy bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The input ends before the bundle does (a truncated file or transfer).
    #[error("truncated policy bundle: {have} bytes, at least {need} needed")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes needed to go on.
        need: usize,
    },
    /// The input does not start with the bundle magic `RSPB`.
    #[error("not a policy bundle (bad magic)")]
    BadMagic,
    /// The bundle is larger than the configured maximum.
    #[error("policy bundle of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced or actual length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The bundle was written in a format this side does not read.
    #[error("unsupported policy bundle format {0} (this side reads {BUNDLE_FORMAT})")]
    UnknownFormat(u8),
    /// Bytes follow the end of the bundle.
    #[error("{0} trailing bytes after the policy bundle")]
    TrailingBytes(usize),
    /// The payload is not a valid postcard bundle.
    #[error("malformed policy bundle: {0}")]
    Malformed(String),
    /// The signature field is not 64 bytes long.
    #[error("policy bundle signature is {0} bytes, expected {SIGNATURE_LEN}")]
    BadSignatureLength(usize),
    /// The key id is empty or longer than [`MAX_KEY_ID_LEN`].
    #[error("policy bundle key id has a bad length ({0} bytes)")]
    BadKeyId(usize),
    /// The policy text is not UTF-8.
    #[error("policy text in bundle is not UTF-8")]
    PolicyNotUtf8,
}

impl PolicyBundle {
    /// Encodes the bundle: magic, big-endian length, postcard payload.
    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: every field is a primitive or a byte/string vector, all
        // of which postcard serializes into a growable Vec without error.
        let payload = postcard::to_allocvec(self).expect("postcard encodes plain structs");
        let mut out = Vec::with_capacity(BUNDLE_HEADER_LEN + payload.len());
        out.extend_from_slice(&BUNDLE_MAGIC);
        // A payload over 4 GiB gets a wrong length and is refused on decode.
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Decodes exactly one bundle from `bytes`, accepting at most `max_len`
    /// bytes in total.
    ///
    /// Sizes are checked before anything is allocated; truncated input,
    /// trailing bytes, an unknown format, a signature that is not 64 bytes and
    /// non-UTF-8 policy text are all errors.
    pub fn decode(bytes: &[u8], max_len: usize) -> Result<PolicyBundle, BundleError> {
        let magic_have = bytes.len().min(BUNDLE_MAGIC.len());
        if bytes[..magic_have] != BUNDLE_MAGIC[..magic_have] {
            return Err(BundleError::BadMagic);
        }
        if bytes.len() > max_len {
            return Err(BundleError::TooLarge {
                len: bytes.len(),
                max: max_len,
            });
        }
        let Some(len_bytes) = bytes.get(BUNDLE_MAGIC.len()..BUNDLE_HEADER_LEN) else {
            return Err(BundleError::Truncated {
                have: bytes.len(),
                need: BUNDLE_HEADER_LEN,
            });
        };
        let mut be = [0u8; 4];
        be.copy_from_slice(len_bytes);
        let len = u32::from_be_bytes(be) as usize;
        let total = BUNDLE_HEADER_LEN.saturating_add(len);
        if total > max_len {
            return Err(BundleError::TooLarge {
                len: total,
                max: max_len,
            });
        }
        if bytes.len() < total {
            return Err(BundleError::Truncated {
                have: bytes.len(),
                need: total,
            });
        }
        if bytes.len() > total {
            return Err(BundleError::TrailingBytes(bytes.len() - total));
        }
        let payload = &bytes[BUNDLE_HEADER_LEN..total];
        match payload.first() {
            None => {
                return Err(BundleError::Truncated {
                    have: bytes.len(),
                    need: total + 1,
                })
            }
            Some(&BUNDLE_FORMAT) => {}
            Some(&other) => return Err(BundleError::UnknownFormat(other)),
        }
        let (bundle, rest) =
            postcard::take_from_bytes::<PolicyBundle>(payload).map_err(|e| match e {
                postcard::Error::DeserializeUnexpectedEnd => BundleError::Truncated {
                    have: bytes.len(),
                    need: bytes.len() + 1,
                },
                other => BundleError::Malformed(other.to_string()),
            })?;
        if !rest.is_empty() {
            return Err(BundleError::TrailingBytes(rest.len()));
        }
        bundle.check()?;
        Ok(bundle)
    }

    /// Checks the fields a decoder must not accept: signature length, key id
    /// length, UTF-8 policy text.
    pub fn check(&self) -> Result<(), BundleError> {
        if self.format != BUNDLE_FORMAT {
            return Err(BundleError::UnknownFormat(self.format));
        }
        if self.signature.len() != SIGNATURE_LEN {
            return Err(BundleError::BadSignatureLength(self.signature.len()));
        }
        if self.key_id.is_empty() || self.key_id.len() > MAX_KEY_ID_LEN {
            return Err(BundleError::BadKeyId(self.key_id.len()));
        }
        self.policy_text().map(|_| ())
    }

    /// The policy text, if it is UTF-8.
    pub fn policy_text(&self) -> Result<&str, BundleError> {
        std::str::from_utf8(&self.policy).map_err(|_| BundleError::PolicyNotUtf8)
    }

    /// The exact bytes the signature covers.
    ///
    /// `SIGNING_DOMAIN`, then `format` (1 byte), `version` and `issued_at`
    /// (8 bytes big-endian each), then `key_id` and `policy`, each preceded by
    /// its length as 8 bytes big-endian, so no two bundles share a message.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(
            SIGNING_DOMAIN.len() + 1 + 8 * 4 + self.key_id.len() + self.policy.len(),
        );
        m.extend_from_slice(SIGNING_DOMAIN);
        m.push(self.format);
        m.extend_from_slice(&self.version.to_be_bytes());
        m.extend_from_slice(&self.issued_at.to_be_bytes());
        m.extend_from_slice(&(self.key_id.len() as u64).to_be_bytes());
        m.extend_from_slice(self.key_id.as_bytes());
        m.extend_from_slice(&(self.policy.len() as u64).to_be_bytes());
        m.extend_from_slice(&self.policy);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PolicyBundle {
        PolicyBundle {
            format: BUNDLE_FORMAT,
            version: 42,
            issued_at: 1_790_000_000,
            key_id: "0123456789abcdef".into(),
            policy: b"name = \"india-baseline\"\n".to_vec(),
            signature: vec![7; SIGNATURE_LEN],
        }
    }

    #[test]
    fn round_trip() {
        let b = sample();
        let bytes = b.encode();
        assert_eq!(&bytes[..4], b"RSPB");
        assert_eq!(PolicyBundle::decode(&bytes, DEFAULT_MAX_BUNDLE_LEN), Ok(b));
    }

    #[test]
    fn wire_layout_is_stable() {
        let b = PolicyBundle {
            format: 1,
            version: 300,
            issued_at: 1,
            key_id: "ab".into(),
            policy: b"x".to_vec(),
            signature: vec![9; SIGNATURE_LEN],
        };
        let mut want = b"RSPB".to_vec();
        let mut payload = vec![1, 0xac, 0x02, 1, 2, b'a', b'b', 1, b'x', 64];
        payload.extend_from_slice(&[9; SIGNATURE_LEN]);
        want.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        want.extend_from_slice(&payload);
        assert_eq!(b.encode(), want);
    }

    #[test]
    fn every_truncation_is_rejected_as_truncated() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            let err = PolicyBundle::decode(&bytes[..n], DEFAULT_MAX_BUNDLE_LEN).unwrap_err();
            assert!(
                matches!(err, BundleError::Truncated { .. }),
                "prefix of {n} bytes gave {err:?}"
            );
            assert!(err.to_string().contains("truncated"));
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = sample().encode();
        bytes.extend_from_slice(b"xx");
        assert_eq!(
            PolicyBundle::decode(&bytes, DEFAULT_MAX_BUNDLE_LEN),
            Err(BundleError::TrailingBytes(2))
        );
    }

    #[test]
    fn trailing_bytes_inside_the_payload_are_rejected() {
        let mut bytes = sample().encode();
        bytes.push(0);
        let len = (bytes.len() - BUNDLE_HEADER_LEN) as u32;
        bytes[4..8].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            PolicyBundle::decode(&bytes, DEFAULT_MAX_BUNDLE_LEN),
            Err(BundleError::TrailingBytes(1))
        );
    }

    #[test]
    fn bad_magic_is_rejected() {
        let mut bytes = sample().encode();
        bytes[0] = b'X';
        assert_eq!(
            PolicyBundle::decode(&bytes, DEFAULT_MAX_BUNDLE_LEN),
            Err(BundleError::BadMagic)
        );
        assert_eq!(
            PolicyBundle::decode(b"PK", DEFAULT_MAX_BUNDLE_LEN),
            Err(BundleError::BadMagic)
        );
    }

    #[test]
    fn oversize_is_rejected_before_decoding() {
        let bytes = sample().encode();
        assert!(matches!(
            PolicyBundle::decode(&bytes, bytes.len() - 1),
            Err(BundleError::TooLarge { .. })
        ));
        // A header announcing 4 GiB is refused without reading further.
        let mut huge = BUNDLE_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            PolicyBundle::decode(&huge, DEFAULT_MAX_BUNDLE_LEN),
            Err(BundleError::TooLarge {
                len: BUNDLE_HEADER_LEN + u32::MAX as usize,
                max: DEFAULT_MAX_BUNDLE_LEN
            })
        );
    }

    #[test]
    fn unknown_format_is_rejected() {
        let mut b = sample();
        b.format = 2;
        assert_eq!(
            PolicyBundle::decode(&b.encode(), DEFAULT_MAX_BUNDLE_LEN),
            Err(BundleError::UnknownFormat(2))
        );
    }

    #[test]
    fn bad_fields_are_rejected() {
        let mut b = sample();
        b.signature.pop();
        assert_eq!(
            PolicyBundle::decode(&b.encode(), DEFAULT_MAX_BUNDLE_LEN),
            Err(BundleError::BadSignatureLength(63))
        );
        let mut b = sample();
        b.policy = vec![0xff, 0xfe];
        assert_eq!(
            PolicyBundle::decode(&b.encode(), DEFAULT_MAX_BUNDLE_LEN),
            Err(BundleError::PolicyNotUtf8)
        );
        let mut b = sample();
        b.key_id.clear();
        assert_eq!(
            PolicyBundle::decode(&b.encode(), DEFAULT_MAX_BUNDLE_LEN),
            Err(BundleError::BadKeyId(0))
        );
    }

    #[test]
    fn signed_message_covers_every_signed_field_unambiguously() {
        let base = sample();
        let m = base.signed_message();
        assert!(m.starts_with(SIGNING_DOMAIN));
        let mut variants = Vec::new();
        let mut b = base.clone();
        b.version += 1;
        variants.push(b);
        let mut b = base.clone();
        b.issued_at += 1;
        variants.push(b);
        let mut b = base.clone();
        b.key_id.push('0');
        variants.push(b);
        let mut b = base.clone();
        b.policy.push(b' ');
        variants.push(b);
        // Moving a byte from the key id to the policy changes the message.
        let mut b = base.clone();
        let last = b.key_id.pop().unwrap();
        b.policy.insert(0, last as u8);
        variants.push(b);
        for v in variants {
            assert_ne!(v.signed_message(), m, "{v:?}");
        }
        // The signature itself is not signed.
        let mut b = base.clone();
        b.signature = vec![0; SIGNATURE_LEN];
        assert_eq!(b.signed_message(), m);
    }
}
