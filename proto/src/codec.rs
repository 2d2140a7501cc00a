//! Length-prefixed postcard framing for [`Frame`]s.
//!
//! On the wire a frame is `[version: u8][length: u32 big-endian][postcard]`.
//! The decoder checks the version and the length before it allocates anything,
//! returns `Ok(None)` when it needs more bytes, and rejects trailing bytes
//! inside a frame.

use crate::frame::Frame;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// Default largest encoded frame accepted (64 KiB): heads are small, bodies are
/// not framed.
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;

/// Bytes of the frame header (version and length).
pub const HEADER_LEN: usize = 5;

/// Encodes and decodes frames with a size limit.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    max_frame_len: usize,
}

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame was written by a protocol version this side does not speak.
    #[error("unsupported protocol version {0} (this side speaks {PROTOCOL_VERSION})")]
    UnknownVersion(u8),
    /// The length prefix exceeds the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The payload is not a valid postcard frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The payload decoded but bytes were left over inside the frame.
    #[error("{0} trailing bytes inside frame")]
    TrailingBytes(usize),
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded frame would exceed the configured maximum.
    #[error("encoded frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Serialization failed.
    #[error("cannot encode frame: {0}")]
    Serialize(String),
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl Codec {
    /// A codec that accepts frames up to `max_frame_len` bytes of payload.
    pub fn new(max_frame_len: usize) -> Self {
        Codec {
            max_frame_len: max_frame_len.min(u32::MAX as usize),
        }
    }

    /// The largest payload accepted.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Appends the encoded frame to `dst`.
    pub fn encode(&self, frame: &Frame, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = dst.len();
        dst.push(PROTOCOL_VERSION);
        dst.extend_from_slice(&[0; 4]);
        let body_start = dst.len();
        let taken = std::mem::take(dst);
        let mut out =
            postcard::to_extend(frame, taken).map_err(|e| EncodeError::Serialize(e.to_string()))?;
        let len = out.len() - body_start;
        if len > self.max_frame_len {
            out.truncate(start);
            *dst = out;
            return Err(EncodeError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        // `len` fits in u32: max_frame_len is clamped to u32::MAX.
        out[start + 1..body_start].copy_from_slice(&(len as u32).to_be_bytes());
        *dst = out;
        Ok(())
    }

    /// Encodes a frame into a new buffer.
    pub fn encode_to_vec(&self, frame: &Frame) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::with_capacity(64);
        self.encode(frame, &mut v)?;
        Ok(v)
    }

    /// Checks the header at the start of `src`: `Ok(Some(total_len))` once the
    /// header is complete, `Ok(None)` if fewer than [`HEADER_LEN`] bytes are there.
    pub fn check_header(&self, src: &[u8]) -> Result<Option<usize>, DecodeError> {
        let Some(&version) = src.first() else {
            return Ok(None);
        };
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let Some(len_bytes) = src.get(1..HEADER_LEN) else {
            return Ok(None);
        };
        let mut be = [0u8; 4];
        be.copy_from_slice(len_bytes);
        let len = u32::from_be_bytes(be) as usize;
        if len > self.max_frame_len {
            return Err(DecodeError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        Ok(Some(HEADER_LEN + len))
    }

    /// Decodes one frame from the start of `src`.
    ///
    /// Returns the frame and how many bytes it used, `Ok(None)` if `src` holds
    /// only part of a frame, or an error for garbage.
    pub fn decode(&self, src: &[u8]) -> Result<Option<(Frame, usize)>, DecodeError> {
        let Some(total) = self.check_header(src)? else {
            return Ok(None);
        };
        let Some(payload) = src.get(HEADER_LEN..total) else {
            return Ok(None);
        };
        let (frame, rest) = postcard::take_from_bytes::<Frame>(payload)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        Ok(Some((frame, total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::*;
    use crate::{RegionId, Tier};

    fn head() -> Frame {
        Frame::RequestHead(RequestHead {
            request_id: "req-1".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            route: RouteFacts {
                region: RegionId::new("aws:ap-south-1").unwrap(),
                tier: Tier::Restricted,
                policy_version: Some(7),
            },
        })
    }

    fn samples() -> Vec<Frame> {
        vec![
            head(),
            Frame::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                role: Role::Gateway,
                region: Some(RegionId::new("aws:ap-south-2").unwrap()),
                software: "residency-agent 0.1.0".into(),
            }),
            Frame::ResponseHead(ResponseHead {
                status: 200,
                headers: vec![("content-type".into(), "text/event-stream".into())],
            }),
            Frame::Error(ErrorFrame {
                code: ErrorCode::UpstreamTimeout,
                message: "provider did not answer".into(),
            }),
            Frame::Ping { nonce: u64::MAX },
            Frame::Pong { nonce: 0 },
            Frame::PolicyAvailable { version: 7 },
            Frame::PolicyFetch { version: 7 },
            Frame::PolicyBundle {
                bundle: vec![1, 2, 3],
            },
            Frame::PolicyAck { version: 7 },
        ]
    }

    #[test]
    fn round_trips_every_frame() {
        let codec = Codec::default();
        for f in samples() {
            let bytes = codec.encode_to_vec(&f).unwrap();
            let (back, used) = codec.decode(&bytes).unwrap().unwrap();
            assert_eq!(back, f);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn partial_input_needs_more_bytes() {
        let codec = Codec::default();
        let bytes = codec.encode_to_vec(&head()).unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(codec.decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn decodes_back_to_back_frames() {
        let codec = Codec::default();
        let mut buf = Vec::new();
        for f in samples() {
            codec.encode(&f, &mut buf).unwrap();
        }
        let mut at = 0;
        let mut out = Vec::new();
        while let Some((f, used)) = codec.decode(&buf[at..]).unwrap() {
            out.push(f);
            at += used;
        }
        assert_eq!(out, samples());
        assert_eq!(at, buf.len());
    }

    #[test]
    fn rejects_unknown_version_before_length() {
        let codec = Codec::default();
        assert_eq!(codec.decode(&[2]), Err(DecodeError::UnknownVersion(2)));
    }

    #[test]
    fn rejects_oversized_length_before_allocating() {
        let codec = Codec::new(16);
        let mut bytes = vec![PROTOCOL_VERSION];
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            codec.decode(&bytes),
            Err(DecodeError::TooLarge { max: 16, .. })
        ));
        assert!(matches!(
            codec.encode_to_vec(&head()),
            Err(EncodeError::TooLarge { max: 16, .. })
        ));
    }

    #[test]
    fn rejects_trailing_bytes_inside_frame() {
        let codec = Codec::default();
        let mut bytes = codec.encode_to_vec(&Frame::Ping { nonce: 1 }).unwrap();
        bytes.push(0);
        let len = (bytes.len() - HEADER_LEN) as u32;
        bytes[1..5].copy_from_slice(&len.to_be_bytes());
        assert_eq!(codec.decode(&bytes), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn rejects_garbage() {
        let codec = Codec::default();
        let bytes = [PROTOCOL_VERSION, 0, 0, 0, 2, 0xff, 0xff];
        assert!(matches!(
            codec.decode(&bytes),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn invalid_region_id_in_frame_is_malformed() {
        let codec = Codec::default();
        let mut bytes = codec.encode_to_vec(&head()).unwrap();
        let pos = bytes
            .windows(14)
            .position(|w| w == b"aws:ap-south-1")
            .unwrap();
        bytes[pos] = b'A';
        assert!(matches!(
            codec.decode(&bytes),
            Err(DecodeError::Malformed(_))
        ));
    }
}
