//! QUIC between agents and gateways: transport limits, reading and writing
//! frames on streams, and the agent's pool of long-lived gateway connections.

pub mod forward;
pub mod pool;
pub mod stream;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use residency_proto::{Codec, DecodeError, Frame};
use serde::Deserialize;

/// QUIC transport limits, set explicitly rather than trusting defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuicLimits {
    /// Concurrent request streams a peer may open on one connection.
    pub max_concurrent_streams: u32,
    /// Bytes a single stream may have in flight unacknowledged.
    pub stream_window_bytes: u32,
    /// Bytes all streams of a connection may have in flight.
    pub connection_window_bytes: u32,
    /// A connection with no traffic for this long is considered dead.
    pub idle_timeout_ms: u64,
    /// Keep-alive interval (must be below the idle timeout).
    pub keep_alive_ms: u64,
    /// Largest frame head accepted, in bytes.
    pub max_frame_bytes: u32,
}

/// Why a frame could not be read from a stream.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed (connection lost, reset by the peer).
    #[error("stream failed: {0}")]
    Read(#[from] quinn::ReadError),
    /// The stream ended before a whole frame arrived.
    #[error("stream ended before a complete frame")]
    Eof,
    /// The bytes were not a valid frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Writing failed.
    #[error("stream write failed: {0}")]
    Write(#[from] quinn::WriteError),
    /// Encoding failed.
    #[error(transparent)]
    Encode(#[from] residency_proto::EncodeError),
}

impl Default for QuicLimits {
    fn default() -> Self {
        QuicLimits {
            max_concurrent_streams: 1024,
            stream_window_bytes: 1024 * 1024,
            connection_window_bytes: 16 * 1024 * 1024,
            idle_timeout_ms: 30_000,
            keep_alive_ms: 5_000,
            max_frame_bytes: residency_proto::DEFAULT_MAX_FRAME_LEN as u32,
        }
    }
}

impl QuicLimits {
    /// Checks the values make sense; names the field at fault.
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if self.max_concurrent_streams == 0 {
            return Err(format!(
                "{section}.max_concurrent_streams must be at least 1"
            ));
        }
        if self.stream_window_bytes < 16 * 1024 {
            return Err(format!(
                "{section}.stream_window_bytes must be at least 16384"
            ));
        }
        if self.connection_window_bytes < self.stream_window_bytes {
            return Err(format!(
                "{section}.connection_window_bytes must be at least stream_window_bytes"
            ));
        }
        if self.idle_timeout_ms < 100 {
            return Err(format!("{section}.idle_timeout_ms must be at least 100"));
        }
        if self.keep_alive_ms == 0 || self.keep_alive_ms >= self.idle_timeout_ms {
            return Err(format!(
                "{section}.keep_alive_ms must be above 0 and below idle_timeout_ms"
            ));
        }
        if self.max_frame_bytes < 1024 {
            return Err(format!("{section}.max_frame_bytes must be at least 1024"));
        }
        Ok(())
    }

    /// The frame codec for these limits.
    pub fn codec(&self) -> Codec {
        Codec::new(self.max_frame_bytes as usize)
    }

    /// quinn transport configuration for these limits.
    pub fn transport_config(&self) -> Arc<quinn::TransportConfig> {
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(self.max_concurrent_streams.into())
            .max_concurrent_uni_streams(0u32.into())
            .stream_receive_window(self.stream_window_bytes.into())
            .receive_window(self.connection_window_bytes.into())
            .send_window(u64::from(self.connection_window_bytes))
            .keep_alive_interval(Some(Duration::from_millis(self.keep_alive_ms)))
            .max_idle_timeout(
                quinn::IdleTimeout::try_from(Duration::from_millis(self.idle_timeout_ms)).ok(),
            );
        Arc::new(t)
    }
}

/// Reads one frame from the start of a stream.
///
/// Returns the frame and whatever bytes arrived after it (the start of the
/// body), or `Ok(None)` if the stream ended cleanly before any byte.
pub async fn read_frame(
    recv: &mut quinn::RecvStream,
    codec: &Codec,
) -> Result<Option<(Frame, Bytes)>, FrameError> {
    let mut buf = BytesMut::new();
    loop {
        if let Some((frame, used)) = codec.decode(&buf)? {
            let rest = buf.split_off(used).freeze();
            return Ok(Some((frame, rest)));
        }
        match recv.read_chunk(64 * 1024, true).await? {
            Some(chunk) => buf.extend_from_slice(&chunk.bytes),
            None if buf.is_empty() => return Ok(None),
            None => return Err(FrameError::Eof),
        }
    }
}

/// Reads frames one after another from a long-lived stream (the control stream).
#[derive(Debug)]
pub struct FrameStream {
    recv: quinn::RecvStream,
    codec: Codec,
    buf: BytesMut,
}

impl FrameStream {
    /// Wraps a stream, with bytes already read from it.
    pub fn new(recv: quinn::RecvStream, codec: Codec, already: Bytes) -> Self {
        FrameStream {
            recv,
            codec,
            buf: BytesMut::from(&already[..]),
        }
    }

    /// The next frame, or `Ok(None)` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            if let Some((frame, used)) = self.codec.decode(&self.buf)? {
                let _ = self.buf.split_to(used);
                return Ok(Some(frame));
            }
            match self.recv.read_chunk(64 * 1024, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(FrameError::Eof),
            }
        }
    }
}

/// Encodes and writes one frame.
pub async fn write_frame(
    send: &mut quinn::SendStream,
    codec: &Codec,
    frame: &Frame,
) -> Result<(), FrameError> {
    let bytes = codec.encode_to_vec(frame)?;
    send.write_all(&bytes).await.map_err(FrameError::Write)
}

/// Stream reset code: the sender gave up on the stream (cancelled, failed or
/// crashed) before finishing it.
pub const RESET_ABANDONED: u32 = 0x10;
/// Stream reset code: the provider failed while the body was streaming.
pub const RESET_UPSTREAM_FAILED: u32 = 0x11;
/// Stop code: the receiver no longer wants the data (client went away).
pub const STOP_CANCELLED: u32 = 0x12;

/// A send stream that is reset rather than finished if it is dropped before
/// [`GuardedSend::finish`], so the peer never mistakes an abandoned body for a
/// complete one (quinn finishes streams on drop).
#[derive(Debug)]
pub struct GuardedSend {
    inner: Option<quinn::SendStream>,
}

impl GuardedSend {
    /// Guards a stream.
    pub fn new(send: quinn::SendStream) -> Self {
        GuardedSend { inner: Some(send) }
    }

    /// The stream, for writing.
    pub fn stream(&mut self) -> Option<&mut quinn::SendStream> {
        self.inner.as_mut()
    }

    /// Writes all of `data`.
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), quinn::WriteError> {
        match self.inner.as_mut() {
            Some(s) => s.write_all(data).await,
            None => Err(quinn::WriteError::ClosedStream),
        }
    }

    /// Writes a chunk without copying.
    pub async fn write_chunk(&mut self, data: Bytes) -> Result<(), quinn::WriteError> {
        match self.inner.as_mut() {
            Some(s) => s.write_chunk(data).await,
            None => Err(quinn::WriteError::ClosedStream),
        }
    }

    /// Marks the data complete.
    pub fn finish(mut self) {
        if let Some(mut s) = self.inner.take() {
            let _ = s.finish();
        }
    }

    /// Abandons the stream with a reason code.
    pub fn reset(mut self, code: u32) {
        if let Some(mut s) = self.inner.take() {
            let _ = s.reset(code.into());
        }
    }
}

impl Drop for GuardedSend {
    fn drop(&mut self) {
        if let Some(mut s) = self.inner.take() {
            let _ = s.reset(RESET_ABANDONED.into());
        }
    }
}
