//! The accept loop of the agent's HTTP/1.1 listeners (the API, the
//! observability listener on TCP, the admin socket on Unix): it accepts until
//! cancelled, serves each connection on its own task and, once cancelled, lets
//! every connection answer its in-flight request and close.
//!
//! Each listener has its own [`Limits`]: how many connections it holds at once
//! (and from one peer address), and how long a connection may take to send a
//! request's headers or sit idle between requests. At a limit, idle
//! connections (no request in progress) give way: the oldest is closed to make
//! room for the new one. When every connection is busy with a request, the new
//! one is answered at once with a short error (503, or 429 for one peer's
//! excess) and closed. So a flood of idle or slow sockets can neither lock
//! applications out nor run the process out of file descriptors, and the
//! health and admin listeners, with limits of their own, keep answering.
//!
//! Handlers find the peer's address in the request extensions as
//! [`axum::extract::ConnectInfo<L::Addr>`](axum::extract::ConnectInfo)
//! (a [`SocketAddr`] for TCP).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, warn};

/// Pause after a failed accept (out of file descriptors, say) before the next
/// try, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long a refused connection gets to take its error answer.
const REFUSE_WRITE: Duration = Duration::from_secs(1);

/// Refused connections being answered at once; beyond this they are closed
/// without an answer.
const REFUSING_AT_ONCE: usize = 64;

/// What one listener allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections held open at once.
    pub max_connections: usize,
    /// Connections from one peer IP address at once (0: no separate cap).
    /// Unix sockets have no peer address and only the total applies.
    pub max_per_peer: usize,
    /// From the first byte of a request (or from accept) until its headers
    /// are complete.
    pub header_read_timeout: Duration,
    /// An open connection with no request in progress closes after this.
    pub keep_alive_idle: Duration,
}

impl Limits {
    /// Limits for a local-only listener (health, metrics, admin): a few
    /// clients, quick requests.
    pub const LOCAL: Limits = Limits {
        max_connections: 64,
        max_per_peer: 0,
        header_read_timeout: Duration::from_secs(10),
        keep_alive_idle: Duration::from_secs(60),
    };
}

/// A listener's connection figures, exported as metrics.
#[derive(Debug, Clone, Default)]
pub struct ConnCounters {
    /// Connections open now.
    pub open: Gauge,
    /// Connections refused because the listener was full.
    pub refused_full: Counter,
    /// Connections refused because their peer had too many open.
    pub refused_peer: Counter,
    /// Connections closed for taking too long to send headers or for idling.
    pub timed_out: Counter,
    /// Idle connections closed to make room for a new one.
    pub evicted: Counter,
}

/// A bound socket that [`serve`] accepts connections from.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The peer's address, given to handlers as `ConnectInfo<Addr>`.
    type Addr: Clone + Send + Sync + 'static;

    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = std::io::Result<(Self::Io, Self::Addr)>> + Send;

    /// The address the per-peer cap counts by, if the socket has one.
    fn peer_ip(addr: &Self::Addr) -> Option<IpAddr>;
}

impl Listener for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> std::io::Result<(TcpStream, SocketAddr)> {
        let (tcp, peer) = TcpListener::accept(self).await?;
        // Requests and answers are small and written whole: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        Ok((tcp, peer))
    }

    fn peer_ip(addr: &SocketAddr) -> Option<IpAddr> {
        Some(addr.ip())
    }
}

impl Listener for UnixListener {
    type Io = UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> std::io::Result<(UnixStream, tokio::net::unix::SocketAddr)> {
        UnixListener::accept(self).await
    }

    fn peer_ip(_: &tokio::net::unix::SocketAddr) -> Option<IpAddr> {
        None
    }
}

/// The connections a listener holds, oldest first, and how many each peer
/// address holds.
#[derive(Default)]
struct Conns {
    next_id: u64,
    open: BTreeMap<u64, Entry>,
    per_peer: HashMap<IpAddr, usize>,
}

struct Entry {
    ip: Option<IpAddr>,
    activity: Arc<Activity>,
    close: CancellationToken,
}

/// What [`Conns::admit`] did to make room.
enum Admitted {
    /// There was room.
    Room(Slot),
    /// An idle connection was closed to make room.
    Evicted(Slot),
}

/// One connection's place in [`Conns`], given back on drop.
struct Slot {
    conns: Arc<Mutex<Conns>>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        c.remove(self.id);
    }
}

impl Conns {
    /// Takes a place for a new connection from `ip`. Idle connections (no
    /// request in progress: kept alive between requests, or still sending
    /// headers) give way to it: at the per-peer cap the peer's oldest idle
    /// one is closed, at the total limit the oldest idle one. A connection
    /// with a request in progress is never closed here; with none to close,
    /// the new connection is refused.
    fn admit(
        this: &Arc<Mutex<Self>>,
        ip: Option<IpAddr>,
        limits: &Limits,
        activity: &Arc<Activity>,
        close: &CancellationToken,
    ) -> Result<Admitted, Refuse> {
        let mut c = this.lock().unwrap_or_else(|e| e.into_inner());
        let mut evicted = false;
        if let Some(ip) = ip.filter(|_| limits.max_per_peer > 0) {
            if c.per_peer.get(&ip).copied().unwrap_or(0) >= limits.max_per_peer {
                if !c.evict(|e| e.ip == Some(ip)) {
                    return Err(Refuse::Peer(limits.max_per_peer));
                }
                evicted = true;
            }
        }
        if c.open.len() >= limits.max_connections {
            if !c.evict(|_| true) {
                return Err(Refuse::Full(limits.max_connections));
            }
            evicted = true;
        }
        let id = c.next_id;
        c.next_id += 1;
        c.open.insert(
            id,
            Entry {
                ip,
                activity: activity.clone(),
                close: close.clone(),
            },
        );
        if let Some(ip) = ip {
            *c.per_peer.entry(ip).or_insert(0) += 1;
        }
        let slot = Slot {
            conns: this.clone(),
            id,
        };
        Ok(if evicted {
            Admitted::Evicted(slot)
        } else {
            Admitted::Room(slot)
        })
    }

    /// Closes the oldest idle connection that `which` picks; whether there
    /// was one.
    fn evict(&mut self, which: impl Fn(&Entry) -> bool) -> bool {
        let victim = self
            .open
            .iter()
            .find(|(_, e)| which(e) && e.activity.in_flight.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.remove(id)) {
            Some(e) => {
                e.close.cancel();
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.open.remove(&id)?;
        if let Some(ip) = e.ip {
            if let Some(n) = self.per_peer.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_peer.remove(&ip);
                }
            }
        }
        Some(e)
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy)]
enum Refuse {
    Full(usize),
    Peer(usize),
}

impl Refuse {
    /// The whole HTTP answer: OpenAI-style error JSON, then close.
    fn answer(self) -> Vec<u8> {
        let (status, code, message) = match self {
            Refuse::Full(n) => (
                "503 Service Unavailable",
                "too_many_connections",
                format!("the agent holds its limit of {n} connections; retry shortly"),
            ),
            Refuse::Peer(n) => (
                "429 Too Many Requests",
                "too_many_connections_from_peer",
                format!(
                    "this address holds the agent's limit of {n} connections per peer; \
                     reuse or close connections"
                ),
            ),
        };
        let body = serde_json::json!({"error": {
            "message": message, "type": "server_error", "code": code,
        }})
        .to_string();
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             retry-after: 1\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// Answers a refused connection and closes it: the answer, then a short
/// drain of what the client already sent, so the close does not reset the
/// connection before the client reads the answer.
async fn refuse<Io: AsyncRead + AsyncWrite + Unpin>(mut io: Io, why: Refuse) {
    let answer = why.answer();
    let _ = tokio::time::timeout(REFUSE_WRITE, async {
        io.write_all(&answer).await?;
        io.shutdown().await?;
        let mut sink = [0u8; 4096];
        while io.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// A connection's progress, shared by its socket, its requests and its
/// watchdog. Times are milliseconds since the connection was accepted.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Requests whose answer is not yet fully written.
    in_flight: AtomicUsize,
    /// When the bytes of the next request's head started (accept for the
    /// first request); `u64::MAX` when none is being read.
    head_since: AtomicU64,
    /// When the connection last became idle.
    idle_since: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// Bytes arrived: with no request in progress they start the next head.
    fn read_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_since.compare_exchange(
                NONE,
                self.now(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// A request's head is complete.
    fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        InFlight(self.clone())
    }

    /// Waits until the connection has been idle, or reading one head, for
    /// too long. A request in progress is never cut here: body and answer
    /// have their own timeouts.
    async fn expired(&self, limits: &Limits) {
        loop {
            let now = self.now();
            let wait = if self.in_flight.load(Ordering::Acquire) > 0 {
                limits.keep_alive_idle.min(limits.header_read_timeout)
            } else {
                let head = self.head_since.load(Ordering::Acquire);
                let (since, limit) = if head == NONE {
                    (
                        self.idle_since.load(Ordering::Acquire),
                        limits.keep_alive_idle,
                    )
                } else {
                    (head, limits.header_read_timeout)
                };
                let due = since.saturating_add(millis(limit));
                if now >= due {
                    return;
                }
                Duration::from_millis(due - now)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(NONE - 1)
}

/// Marks a request in progress until its answer's body is done or dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now(), Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, noting when bytes arrive.
struct Watched<Io> {
    io: Io,
    activity: Arc<Activity>,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Watched<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_some();
        }
        r
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Watched<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// An answer's body that keeps its request marked in progress until it ends.
struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Everything a connection holds while it is open.
struct Held {
    _slot: Slot,
    open: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Serves `service` (an [`axum::Router`] or any tower service that answers
/// every request) on each connection `listener` accepts, within `limits`,
/// until `shutdown`.
///
/// Connection tasks run on `tracker`; after `shutdown` no connection is
/// accepted, and open ones close once their in-flight request is answered
/// (the drain task is on `tracker` too, so waiting on it waits for them).
pub async fn serve<L, S, B>(
    mut listener: L,
    service: S,
    limits: Limits,
    counters: ConnCounters,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) where
    L: Listener,
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let conns = Arc::new(Mutex::new(Conns::default()));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        let (io, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let activity = Arc::new(Activity::new());
        let close = CancellationToken::new();
        let slot = match Conns::admit(&conns, L::peer_ip(&peer), &limits, &activity, &close) {
            Ok(Admitted::Room(slot)) => slot,
            Ok(Admitted::Evicted(slot)) => {
                counters.evicted.inc();
                slot
            }
            Err(why) => {
                match why {
                    Refuse::Full(_) => counters.refused_full.inc(),
                    Refuse::Peer(_) => counters.refused_peer.inc(),
                };
                debug!(?why, "connection refused");
                if let Ok(p) = refusing.clone().try_acquire_owned() {
                    tracker.spawn(async move {
                        refuse(io, why).await;
                        drop(p);
                    });
                }
                continue;
            }
        };
        counters.open.inc();
        let held = Held {
            _slot: slot,
            open: counters.open.clone(),
        };
        let service = service.clone();
        let on_request = activity.clone();
        let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
            let in_flight = on_request.request();
            let mut service = service.clone();
            async move {
                std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                let resp = service.call(req).await?;
                Ok::<_, Infallible>(resp.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        });
        let io = Watched {
            io,
            activity: activity.clone(),
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), svc);
        let conn = graceful.watch(conn);
        let timed_out = counters.timed_out.clone();
        tracker.spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    debug!(error = %e, "http connection ended with error");
                },
                () = activity.expired(&limits) => {
                    timed_out.inc();
                    debug!("closing a connection that sent no request in time");
                }
                () = close.cancelled() => debug!("closing an idle connection to make room"),
            }
            drop(held);
        });
    }
    tracker.spawn(graceful.shutdown());
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One GET over a fresh HTTP/1.1 connection; the status and body.
    async fn get_over<S>(io: S, path: &str) -> (http::StatusCode, String)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn tcp_handlers_see_the_peer_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        );
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(serve(
            listener,
            router,
            Limits::LOCAL,
            ConnCounters::default(),
            shutdown.clone(),
            tracker.clone(),
        ));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let local = tcp.local_addr().unwrap();
        let (status, body) = get_over(tcp, "/peer").await;
        assert_eq!(status, http::StatusCode::OK);
        assert_eq!(body, local.to_string());
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("the loop and its connections end after shutdown");
    }

    /// Serves a router on 127.0.0.1 within `limits`: `/` answers at once,
    /// `/hold` when `release` is notified.
    async fn limited(
        limits: Limits,
    ) -> (
        SocketAddr,
        Arc<tokio::sync::Notify>,
        ConnCounters,
        CancellationToken,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(tokio::sync::Notify::new());
        let r = release.clone();
        let router = axum::Router::new()
            .route("/", get(|| async { "hi" }))
            .route(
                "/hold",
                get(move || {
                    let r = r.clone();
                    async move {
                        r.notified().await;
                        "held"
                    }
                }),
            );
        let counters = ConnCounters::default();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            router,
            limits,
            counters.clone(),
            shutdown.clone(),
            TaskTracker::new(),
        ));
        (addr, release, counters, shutdown)
    }

    const SHORT: Limits = Limits {
        max_connections: 2,
        max_per_peer: 0,
        header_read_timeout: Duration::from_secs(30),
        keep_alive_idle: Duration::from_secs(30),
    };

    /// Reads until the server closes `tcp`; what it sent.
    async fn read_to_close(tcp: &mut TcpStream, within: Duration) -> String {
        let mut out = Vec::new();
        tokio::time::timeout(within, tcp.read_to_end(&mut out))
            .await
            .expect("the server closes the connection")
            .unwrap_or_default();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Starts a request on a fresh connection; the server holds it.
    async fn hold(addr: SocketAddr) -> TcpStream {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /hold HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tcp
    }

    #[tokio::test]
    async fn at_the_limit_the_oldest_idle_connection_gives_way() {
        let (addr, _, counters, _stop) = limited(SHORT).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, body) = get_over(TcpStream::connect(addr).await.unwrap(), "/").await;
        assert_eq!((status, body.as_str()), (http::StatusCode::OK, "hi"));
        assert_eq!(read_to_close(&mut first, Duration::from_secs(2)).await, "");
        assert_eq!(counters.evicted.get(), 1);
    }

    #[tokio::test]
    async fn when_every_connection_is_busy_the_excess_gets_a_quick_503() {
        let (addr, release, counters, _stop) = limited(SHORT).await;
        let mut a = hold(addr).await;
        let mut b = hold(addr).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_to_close(&mut c, Duration::from_secs(2)).await;
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(
            answer.contains(r#""code":"too_many_connections""#),
            "{answer}"
        );
        assert_eq!(counters.refused_full.get(), 1);
        // The busy ones were not cut.
        release.notify_waiters();
        for tcp in [&mut a, &mut b] {
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
        }
        assert_eq!(counters.open.get(), 2);
    }

    #[tokio::test]
    async fn one_peer_past_its_cap_gets_a_429_and_others_still_connect() {
        let limits = Limits {
            max_connections: 10,
            max_per_peer: 1,
            ..SHORT
        };
        let (addr, release, counters, _stop) = limited(limits).await;
        let _busy = hold(addr).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut again = TcpStream::connect(addr).await.unwrap();
        let answer = read_to_close(&mut again, Duration::from_secs(2)).await;
        assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
        assert_eq!(counters.refused_peer.get(), 1);
        // Another address on the loopback is another peer.
        let other = tokio::net::TcpSocket::new_v4().unwrap();
        other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let (status, _) = get_over(other.connect(addr).await.unwrap(), "/").await;
        assert_eq!(status, http::StatusCode::OK);
        release.notify_waiters();
    }

    #[tokio::test]
    async fn headers_sent_too_slowly_and_idle_connections_are_closed() {
        let limits = Limits {
            header_read_timeout: Duration::from_millis(400),
            keep_alive_idle: Duration::from_millis(600),
            ..SHORT
        };
        let (addr, _, counters, _stop) = limited(limits).await;
        // A header byte every 100 ms never finishes in 400 ms.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let start = std::time::Instant::now();
        for b in b"GET / HTTP/1.1\r\nhost: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(read_to_close(&mut slow, Duration::from_secs(3)).await, "");
        assert!(start.elapsed() < Duration::from_secs(3));
        // A kept-alive connection with no next request closes after its idle
        // time, and not before.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
        let answered = std::time::Instant::now();
        assert_eq!(read_to_close(&mut idle, Duration::from_secs(3)).await, "");
        let idled = answered.elapsed();
        assert!(
            idled >= Duration::from_millis(500),
            "closed after {idled:?}"
        );
        assert_eq!(counters.timed_out.get(), 2);
    }

    #[tokio::test]
    async fn shutdown_closes_idle_unix_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let router = axum::Router::new().route("/", get(|| async { "hi" }));
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(serve(
            listener,
            router,
            Limits::LOCAL,
            ConnCounters::default(),
            shutdown.clone(),
            tracker.clone(),
        ));
        // An idle keep-alive connection must not hold the drain up.
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(
            UnixStream::connect(&path).await.unwrap(),
        ))
        .await
        .unwrap();
        let client = tokio::spawn(conn);
        let req = http::Request::get("/")
            .header(http::header::HOST, "localhost")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
        assert_eq!(
            &resp.into_body().collect().await.unwrap().to_bytes()[..],
            b"hi"
        );
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("an idle connection closes on shutdown");
        tokio::time::timeout(Duration::from_secs(5), client)
            .await
            .expect("the server closed the connection")
            .unwrap()
            .unwrap();
        assert!(
            UnixStream::connect(&path).await.is_err(),
            "no longer accepting"
        );
    }
}
