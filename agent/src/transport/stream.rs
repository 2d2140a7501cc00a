//! Request streams, whatever carries them: the agent's forward and the
//! gateway's serving work on these traits, and QUIC is one implementation.
//! Another transport is one more implementation, not a second path.
//!
//! A stream is one request: the opener sends a head frame and a body, the
//! other side answers with a head frame (or an error frame) and a body. A
//! cleanly finished stream means the data is complete; a reset means it is
//! not.

use std::future::Future;

use bytes::{Bytes, BytesMut};
use residency_proto::{Codec, DecodeError, EncodeError, Frame};

/// Why a stream operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// No new stream could be opened (the connection is gone).
    #[error("{0}")]
    Open(String),
    /// Reading failed (connection lost, stream reset by the peer).
    #[error("stream failed: {0}")]
    Read(String),
    /// Writing failed (connection lost, stream stopped by the peer).
    #[error("stream write failed: {0}")]
    Write(String),
    /// More data than the reader accepts.
    #[error("stream data exceeds {0} bytes")]
    TooLong(usize),
    /// The stream ended before a whole frame arrived.
    #[error("stream ended before a complete frame")]
    Eof,
    /// The bytes were not a valid frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A frame could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// The sending half of a request stream. Dropped before [`SendHalf::finish`],
/// it is reset, so the peer never mistakes an abandoned body for a complete
/// one.
pub trait SendHalf: Send + 'static {
    /// Writes all of `data`.
    fn write(&mut self, data: Bytes) -> impl Future<Output = Result<(), StreamError>> + Send;
    /// Marks the data complete.
    fn finish(self);
    /// Abandons the stream with a reason code.
    fn reset(self, code: u32);
    /// Resolves once the peer has acknowledged everything sent after
    /// [`SendHalf::finish`], or has stopped reading, or the stream failed:
    /// the request was taken, or it is no longer wanted. Independent of the
    /// half, so it can be awaited while writing.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static;
}

/// The receiving half of a request stream.
pub trait RecvHalf: Send + 'static {
    /// The next chunk, or `None` at a clean end.
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, StreamError>> + Send;
    /// Tells the peer to stop sending, with a reason code.
    fn stop(&mut self, code: u32);
}

/// A connection that opens request streams.
pub trait Connection: Clone + Send + Sync + 'static {
    /// The sending half.
    type Send: SendHalf;
    /// The receiving half.
    type Recv: RecvHalf;
    /// Opens a new request stream.
    fn open(&self) -> impl Future<Output = Result<(Self::Send, Self::Recv), StreamError>> + Send;
}

/// Reads one frame from the start of a stream.
///
/// Returns the frame and whatever bytes arrived after it (the start of the
/// body), or `Ok(None)` if the stream ended cleanly before any byte.
pub async fn read_frame<R: RecvHalf>(
    recv: &mut R,
    codec: &Codec,
) -> Result<Option<(Frame, Bytes)>, StreamError> {
    let mut buf = BytesMut::new();
    loop {
        if let Some((frame, used)) = codec.decode(&buf)? {
            let rest = buf.split_off(used).freeze();
            return Ok(Some((frame, rest)));
        }
        match recv.chunk().await? {
            Some(chunk) => buf.extend_from_slice(&chunk),
            None if buf.is_empty() => return Ok(None),
            None => return Err(StreamError::Eof),
        }
    }
}

/// Reads the rest of a stream, after `already`, up to `limit` bytes in all.
pub async fn read_to_end<R: RecvHalf>(
    recv: &mut R,
    already: Bytes,
    limit: usize,
) -> Result<Bytes, StreamError> {
    if already.len() > limit {
        return Err(StreamError::TooLong(limit));
    }
    let Some(first) = recv.chunk().await? else {
        return Ok(already);
    };
    let mut all = BytesMut::with_capacity(already.len() + first.len());
    all.extend_from_slice(&already);
    all.extend_from_slice(&first);
    while let Some(chunk) = recv.chunk().await? {
        if all.len() + chunk.len() > limit {
            return Err(StreamError::TooLong(limit));
        }
        all.extend_from_slice(&chunk);
    }
    if all.len() > limit {
        return Err(StreamError::TooLong(limit));
    }
    Ok(all.freeze())
}

/// Writes one frame and then `body`, in one write.
pub async fn send_frame<S: SendHalf>(
    send: &mut S,
    codec: &Codec,
    frame: &Frame,
    body: &[u8],
) -> Result<(), StreamError> {
    let mut out = codec.encode_to_vec(frame)?;
    out.extend_from_slice(body);
    send.write(Bytes::from(out)).await
}

/// Reads frames one after another from a long-lived stream (the control
/// stream).
#[derive(Debug)]
pub struct FrameStream<R> {
    recv: R,
    codec: Codec,
    buf: BytesMut,
}

impl<R: RecvHalf> FrameStream<R> {
    /// Wraps a stream, with bytes already read from it.
    pub fn new(recv: R, codec: Codec, already: Bytes) -> Self {
        FrameStream {
            recv,
            codec,
            buf: BytesMut::from(&already[..]),
        }
    }

    /// The next frame, or `Ok(None)` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<Frame>, StreamError> {
        loop {
            if let Some((frame, used)) = self.codec.decode(&self.buf)? {
                let _ = self.buf.split_to(used);
                return Ok(Some(frame));
            }
            match self.recv.chunk().await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(StreamError::Eof),
            }
        }
    }
}

/// Why a [`call`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The stream failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The peer finished the stream without answering.
    #[error("the stream closed without an answer")]
    NoAnswer,
    /// No answer within the time allowed.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// One question, one answer: opens a stream, sends `frame`, finishes the
/// stream and reads the first frame of the answer (an `Error` frame is an
/// answer too). The policy fetch and relay, the admin push and the gateway
/// probe all ask this way.
pub async fn call<C: Connection>(
    conn: &C,
    codec: &Codec,
    frame: &Frame,
    timeout: std::time::Duration,
) -> Result<Frame, CallError> {
    let asked = async {
        let (mut send, mut recv) = conn.open().await?;
        send_frame(&mut send, codec, frame, &[]).await?;
        send.finish();
        match read_frame(&mut recv, codec).await? {
            Some((answer, _)) => Ok(answer),
            None => Err(CallError::NoAnswer),
        }
    };
    tokio::time::timeout(timeout, asked)
        .await
        .map_err(|_| CallError::Timeout(timeout))?
}

/// QUIC streams (quinn), today's transport.
pub mod quic {
    use super::*;

    /// A QUIC connection carrying request streams.
    #[derive(Debug, Clone)]
    pub struct Quic(pub quinn::Connection);

    /// A QUIC send stream, reset (not finished, as quinn would) when dropped
    /// before [`SendHalf::finish`].
    #[derive(Debug)]
    pub struct QuicSend(Option<quinn::SendStream>);

    /// A QUIC receive stream.
    #[derive(Debug)]
    pub struct QuicRecv(pub quinn::RecvStream);

    impl QuicSend {
        /// Guards a quinn stream.
        pub fn new(send: quinn::SendStream) -> Self {
            QuicSend(Some(send))
        }
    }

    impl Connection for Quic {
        type Send = QuicSend;
        type Recv = QuicRecv;

        async fn open(&self) -> Result<(QuicSend, QuicRecv), StreamError> {
            let (send, recv) = self
                .0
                .open_bi()
                .await
                .map_err(|e| StreamError::Open(e.to_string()))?;
            Ok((QuicSend::new(send), QuicRecv(recv)))
        }
    }

    impl SendHalf for QuicSend {
        async fn write(&mut self, data: Bytes) -> Result<(), StreamError> {
            match self.0.as_mut() {
                Some(s) => s
                    .write_chunk(data)
                    .await
                    .map_err(|e| StreamError::Write(write_error(&e))),
                None => Err(StreamError::Write("stream already closed".into())),
            }
        }

        fn finish(mut self) {
            if let Some(mut s) = self.0.take() {
                let _ = s.finish();
            }
        }

        fn reset(mut self, code: u32) {
            if let Some(mut s) = self.0.take() {
                let _ = s.reset(code.into());
            }
        }

        fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
            let f = self.0.as_ref().map(|s| s.stopped());
            async move {
                if let Some(f) = f {
                    let _ = f.await;
                }
            }
        }
    }

    impl Drop for QuicSend {
        fn drop(&mut self) {
            if let Some(mut s) = self.0.take() {
                let _ = s.reset(crate::transport::RESET_ABANDONED.into());
            }
        }
    }

    /// quinn's message, with why the connection was lost when it was (a
    /// refused certificate shows up here).
    fn read_error(e: &quinn::ReadError) -> String {
        match e {
            quinn::ReadError::ConnectionLost(c) => format!("connection lost: {c}"),
            other => other.to_string(),
        }
    }

    fn write_error(e: &quinn::WriteError) -> String {
        match e {
            quinn::WriteError::ConnectionLost(c) => format!("connection lost: {c}"),
            other => other.to_string(),
        }
    }

    impl RecvHalf for QuicRecv {
        async fn chunk(&mut self) -> Result<Option<Bytes>, StreamError> {
            self.0
                .read_chunk(64 * 1024, true)
                .await
                .map(|c| c.map(|c| c.bytes))
                .map_err(|e| StreamError::Read(read_error(&e)))
        }

        fn stop(&mut self, code: u32) {
            let _ = self.0.stop(code.into());
        }
    }
}
