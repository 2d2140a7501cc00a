//! Between agents and gateways: request streams whatever carries them
//! ([`stream`]), the forward stage ([`forward`]), the agent's pool of
//! long-lived gateway connections ([`pool`]), QUIC transport limits and TLS.

pub mod forward;
pub mod pool;
pub mod stream;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use residency_proto::Codec;
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

/// Stream reset code: the sender gave up on the stream (cancelled, failed or
/// crashed) before finishing it.
pub const RESET_ABANDONED: u32 = 0x10;
/// Stream reset code: the provider failed while the body was streaming.
pub const RESET_UPSTREAM_FAILED: u32 = 0x11;
/// Stop code: the receiver no longer wants the data (client went away).
pub const STOP_CANCELLED: u32 = 0x12;
