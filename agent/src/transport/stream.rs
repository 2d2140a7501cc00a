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

/// HTTP/2 over TLS over TCP (hyper), for networks that drop UDP: each
/// request stream is one HTTP/2 request whose body carries the opener's
/// frames and whose response body carries the answer, so the frames are the
/// same as on QUIC. The gateway answers the request headers at once with a
/// 200 and a streaming body; from then on both bodies flow independently.
/// A body that ends cleanly is a finished stream; one that fails (a reset
/// stream, a lost connection) is a reset.
pub mod h2 {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use http_body_util::BodyExt;
    use hyper::body::{Frame as HttpFrame, Incoming};
    use tokio::sync::mpsc;
    use tokio_util::sync::{CancellationToken, DropGuard};

    use super::*;

    /// The path every request stream is sent to.
    pub const STREAM_PATH: &str = "/residency/stream";

    /// Chunks a send half may queue before `write` waits: HTTP/2 flow
    /// control does the rest.
    const QUEUE: usize = 4;

    /// Why a body did not end cleanly: its sender abandoned it.
    #[derive(Debug, thiserror::Error)]
    #[error("stream reset by the sender (code {0:#x})")]
    pub struct Abandoned(pub u32);

    /// The body of either direction: what the [`H2Send`] writes. Ends cleanly
    /// only if the sender finished; otherwise fails, so hyper resets the
    /// HTTP/2 stream.
    pub struct ChanBody {
        rx: mpsc::Receiver<Bytes>,
        finished: Arc<AtomicBool>,
        code: Arc<std::sync::atomic::AtomicU32>,
        /// Dropped with the body (sent completely, or the stream reset):
        /// wakes [`SendHalf::stopped`].
        _gone: DropGuard,
    }

    impl std::fmt::Debug for ChanBody {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ChanBody").finish_non_exhaustive()
        }
    }

    impl http_body::Body for ChanBody {
        type Data = Bytes;
        type Error = Abandoned;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<HttpFrame<Bytes>, Abandoned>>> {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(HttpFrame::data(b)))),
                Poll::Ready(None) if self.finished.load(Ordering::Acquire) => Poll::Ready(None),
                Poll::Ready(None) => {
                    Poll::Ready(Some(Err(Abandoned(self.code.load(Ordering::Acquire)))))
                }
                Poll::Pending => Poll::Pending,
            }
        }
    }

    /// The sending half: feeds a [`ChanBody`]. Dropped before
    /// [`SendHalf::finish`], the body fails and the stream is reset.
    #[derive(Debug)]
    pub struct H2Send {
        tx: Option<mpsc::Sender<Bytes>>,
        finished: Arc<AtomicBool>,
        code: Arc<std::sync::atomic::AtomicU32>,
        gone: CancellationToken,
        /// On the opening side: the answer's headers have arrived, so the
        /// peer has the request. Cancelled from the start on the answering
        /// side.
        answered: CancellationToken,
    }

    /// A new body and the half that writes it.
    pub fn channel(answered: CancellationToken) -> (H2Send, ChanBody) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let finished = Arc::new(AtomicBool::new(false));
        let code = Arc::new(std::sync::atomic::AtomicU32::new(
            crate::transport::RESET_ABANDONED,
        ));
        let gone = CancellationToken::new();
        let body = ChanBody {
            rx,
            finished: finished.clone(),
            code: code.clone(),
            _gone: gone.clone().drop_guard(),
        };
        let send = H2Send {
            tx: Some(tx),
            finished,
            code,
            gone,
            answered,
        };
        (send, body)
    }

    impl SendHalf for H2Send {
        async fn write(&mut self, data: Bytes) -> Result<(), StreamError> {
            match &self.tx {
                Some(tx) => tx
                    .send(data)
                    .await
                    .map_err(|_| StreamError::Write("stream closed by the peer".into())),
                None => Err(StreamError::Write("stream already closed".into())),
            }
        }

        fn finish(mut self) {
            self.finished.store(true, Ordering::Release);
            self.tx = None;
        }

        fn reset(mut self, code: u32) {
            self.code.store(code, Ordering::Release);
            self.tx = None;
        }

        fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
            let gone = self.gone.clone();
            let answered = self.answered.clone();
            async move {
                // The body was taken whole (or the stream is gone), and the
                // peer answered the request.
                gone.cancelled().await;
                answered.cancelled().await;
            }
        }
    }

    type Answer = Pin<Box<dyn Future<Output = hyper::Result<http::Response<Incoming>>> + Send>>;

    enum RecvState {
        /// The opener waits for the answer's headers.
        Waiting(Answer, CancellationToken),
        Body(Incoming),
        Done,
    }

    /// The receiving half: a request's body on the answering side, the
    /// response's on the opening side.
    pub struct H2Recv(RecvState);

    impl std::fmt::Debug for H2Recv {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("H2Recv")
        }
    }

    impl H2Recv {
        /// The body of a request the gateway received.
        pub fn request(body: Incoming) -> Self {
            H2Recv(RecvState::Body(body))
        }
    }

    fn read_error(e: &dyn std::error::Error) -> String {
        // hyper's own message is generic ("error reading a body from
        // connection"); the cause says what happened.
        match e.source() {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        }
    }

    impl RecvHalf for H2Recv {
        async fn chunk(&mut self) -> Result<Option<Bytes>, StreamError> {
            loop {
                match &mut self.0 {
                    RecvState::Waiting(answer, answered) => {
                        let resp = answer
                            .await
                            .map_err(|e| StreamError::Read(read_error(&e)))?;
                        answered.cancel();
                        if resp.status() != http::StatusCode::OK {
                            self.0 = RecvState::Done;
                            return Err(StreamError::Read(format!(
                                "the gateway answered HTTP {}",
                                resp.status()
                            )));
                        }
                        self.0 = RecvState::Body(resp.into_body());
                    }
                    RecvState::Body(body) => match body.frame().await {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) if data.is_empty() => continue,
                            Ok(data) => return Ok(Some(data)),
                            Err(_) => continue,
                        },
                        Some(Err(e)) => {
                            self.0 = RecvState::Done;
                            return Err(StreamError::Read(read_error(&e)));
                        }
                        None => {
                            self.0 = RecvState::Done;
                            return Ok(None);
                        }
                    },
                    RecvState::Done => return Ok(None),
                }
            }
        }

        fn stop(&mut self, _code: u32) {
            // Dropping the body tells hyper the data is no longer wanted (it
            // resets the HTTP/2 stream with CANCEL).
            self.0 = RecvState::Done;
        }
    }

    /// An HTTP/2 connection to a gateway, carrying request streams.
    #[derive(Clone)]
    pub struct H2 {
        sender: hyper::client::conn::http2::SendRequest<ChanBody>,
        /// Cancelled when the connection has ended.
        closed: CancellationToken,
        /// Cancel to close the connection.
        close: CancellationToken,
        /// The peer's certificate chain, leaf first.
        pub peer_certs: Arc<Vec<rustls::pki_types::CertificateDer<'static>>>,
        /// The gateway's address.
        pub remote: std::net::SocketAddr,
    }

    impl std::fmt::Debug for H2 {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("H2").field("remote", &self.remote).finish()
        }
    }

    impl H2 {
        /// Runs HTTP/2 on an established TLS connection. `limits` sets the
        /// windows; a silent peer is declared dead after
        /// `limits.idle_timeout_ms` (HTTP/2 pings every `keep_alive_ms`).
        pub async fn handshake<T>(
            io: T,
            limits: &crate::transport::QuicLimits,
            peer_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
            remote: std::net::SocketAddr,
        ) -> Result<H2, StreamError>
        where
            T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        {
            let (sender, conn) =
                hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .timer(hyper_util::rt::TokioTimer::new())
                    .initial_stream_window_size(limits.stream_window_bytes)
                    .initial_connection_window_size(limits.connection_window_bytes)
                    .keep_alive_interval(std::time::Duration::from_millis(limits.keep_alive_ms))
                    .keep_alive_timeout(std::time::Duration::from_millis(
                        limits
                            .idle_timeout_ms
                            .saturating_sub(limits.keep_alive_ms)
                            .max(100),
                    ))
                    .keep_alive_while_idle(true)
                    .handshake(hyper_util::rt::TokioIo::new(io))
                    .await
                    .map_err(|e| StreamError::Open(format!("HTTP/2 handshake: {e}")))?;
            let closed = CancellationToken::new();
            let close = CancellationToken::new();
            let (c, k) = (closed.clone(), close.clone());
            tokio::spawn(async move {
                tokio::select! {
                    r = conn => if let Err(e) = r {
                        tracing::debug!(error = %e, "HTTP/2 gateway connection ended");
                    },
                    () = k.cancelled() => {}
                }
                c.cancel();
            });
            Ok(H2 {
                sender,
                closed,
                close,
                peer_certs: Arc::new(peer_certs),
                remote,
            })
        }

        /// Resolves once the connection has ended.
        pub async fn closed(&self) {
            self.closed.cancelled().await;
        }

        /// Whether the connection has ended.
        pub fn is_closed(&self) -> bool {
            self.closed.is_cancelled() || self.sender.is_closed()
        }

        /// Closes the connection at once, failing streams still open.
        pub fn close(&self) {
            self.close.cancel();
        }

        /// Gives up this handle: the connection ends by itself once no other
        /// handle and no stream is left. What remains tells when it has
        /// ended, and can still close it.
        pub fn into_drain(self) -> Drain {
            Drain {
                closed: self.closed,
                close: self.close,
            }
        }
    }

    /// A connection given up with [`H2::into_drain`].
    #[derive(Debug)]
    pub struct Drain {
        /// Cancelled once the connection has ended.
        pub closed: CancellationToken,
        /// Cancel to close it now.
        pub close: CancellationToken,
    }

    impl Connection for H2 {
        type Send = H2Send;
        type Recv = H2Recv;

        async fn open(&self) -> Result<(H2Send, H2Recv), StreamError> {
            let mut sender = self.sender.clone();
            sender
                .ready()
                .await
                .map_err(|e| StreamError::Open(format!("HTTP/2 connection: {e}")))?;
            let answered = CancellationToken::new();
            let (send, body) = channel(answered.clone());
            let req = http::Request::post(STREAM_PATH)
                .body(body)
                .map_err(|e| StreamError::Open(e.to_string()))?;
            // hyper queues the request now; the future waits for the answer.
            let answer: Answer = Box::pin(sender.send_request(req));
            Ok((send, H2Recv(RecvState::Waiting(answer, answered))))
        }
    }
}

/// A gateway connection over either transport.
pub mod any {
    use super::h2::{H2Recv, H2Send, H2};
    use super::quic::{Quic, QuicRecv, QuicSend};
    use super::*;

    /// Which transport carries a connection.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Transport {
        /// QUIC over UDP.
        Quic,
        /// HTTP/2 over TLS over TCP.
        H2,
    }

    impl Transport {
        /// `quic` or `h2`, as in `x-residency-transport`.
        pub fn as_str(self) -> &'static str {
            match self {
                Transport::Quic => "quic",
                Transport::H2 => "h2",
            }
        }
    }

    /// A connection to a gateway.
    #[derive(Debug, Clone)]
    pub enum AnyConn {
        /// Over QUIC.
        Quic(Quic),
        /// Over HTTP/2.
        H2(H2),
    }

    /// The sending half of either.
    #[derive(Debug)]
    pub enum AnySend {
        /// QUIC.
        Quic(QuicSend),
        /// HTTP/2.
        H2(H2Send),
    }

    /// The receiving half of either.
    #[derive(Debug)]
    pub enum AnyRecv {
        /// QUIC.
        Quic(QuicRecv),
        /// HTTP/2.
        H2(H2Recv),
    }

    impl AnyConn {
        /// Which transport this is.
        pub fn transport(&self) -> Transport {
            match self {
                AnyConn::Quic(_) => Transport::Quic,
                AnyConn::H2(_) => Transport::H2,
            }
        }

        /// The gateway's address.
        pub fn remote_address(&self) -> std::net::SocketAddr {
            match self {
                AnyConn::Quic(q) => q.0.remote_address(),
                AnyConn::H2(h) => h.remote,
            }
        }

        /// Resolves when the connection has ended, with why.
        pub async fn closed(&self) -> String {
            match self {
                AnyConn::Quic(q) => q.0.closed().await.to_string(),
                AnyConn::H2(h) => {
                    h.closed().await;
                    "HTTP/2 connection closed".into()
                }
            }
        }

        /// Closes the connection now, with `code` and `reason` (QUIC only).
        pub fn close(&self, code: u32, reason: &[u8]) {
            match self {
                AnyConn::Quic(q) => q.0.close(code.into(), reason),
                AnyConn::H2(h) => h.close(),
            }
        }
    }

    impl Connection for AnyConn {
        type Send = AnySend;
        type Recv = AnyRecv;

        async fn open(&self) -> Result<(AnySend, AnyRecv), StreamError> {
            match self {
                AnyConn::Quic(q) => q
                    .open()
                    .await
                    .map(|(s, r)| (AnySend::Quic(s), AnyRecv::Quic(r))),
                AnyConn::H2(h) => h
                    .open()
                    .await
                    .map(|(s, r)| (AnySend::H2(s), AnyRecv::H2(r))),
            }
        }
    }

    impl SendHalf for AnySend {
        async fn write(&mut self, data: Bytes) -> Result<(), StreamError> {
            match self {
                AnySend::Quic(s) => s.write(data).await,
                AnySend::H2(s) => s.write(data).await,
            }
        }

        fn finish(self) {
            match self {
                AnySend::Quic(s) => s.finish(),
                AnySend::H2(s) => s.finish(),
            }
        }

        fn reset(self, code: u32) {
            match self {
                AnySend::Quic(s) => s.reset(code),
                AnySend::H2(s) => s.reset(code),
            }
        }

        fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
            let f: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match self {
                AnySend::Quic(s) => Box::pin(s.stopped()),
                AnySend::H2(s) => Box::pin(s.stopped()),
            };
            f
        }
    }

    impl RecvHalf for AnyRecv {
        async fn chunk(&mut self) -> Result<Option<Bytes>, StreamError> {
            match self {
                AnyRecv::Quic(r) => r.chunk().await,
                AnyRecv::H2(r) => r.chunk().await,
            }
        }

        fn stop(&mut self, code: u32) {
            match self {
                AnyRecv::Quic(r) => r.stop(code),
                AnyRecv::H2(r) => r.stop(code),
            }
        }
    }
}
