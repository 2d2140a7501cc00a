//! The agent's long-lived gateway connections, one supervised link per
//! configured gateway, reconnecting with backoff.
//!
//! A link connects over QUIC. In `auto` mode, a gateway whose QUIC handshake
//! fails or times out is reached over HTTP/2 on TCP instead (networks that
//! drop UDP), and QUIC is tried again in the background every few minutes:
//! when it connects, new requests move to it and the HTTP/2 connection
//! closes once the requests already on it have finished. `quic` and `h2`
//! modes use one transport only.
//!
//! Each link opens a control stream first, exchanges `Hello` frames (the
//! gateway must say it serves the region the config expects, on top of the
//! certificate check) and then pings on it to measure round-trip time.
//!
//! The pool knows nothing of configuration files, policies or geography.
//! The caller describes each link as a [`LinkSpec`] and hands in two trait
//! objects: an [`Attestation`] that may refuse a gateway's address before a
//! connection is used (`geo::attest`), and a [`ControlListener`] that hears
//! each new connection and each policy announcement on the control stream
//! (`policy::sync`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use residency_proto::{
    Codec, Frame, Hello, Jurisdiction, ModelList, RegionId, Role, PROTOCOL_VERSION,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::stream::any::{AnyConn, AnyRecv, AnySend, Transport};
use super::stream::h2::H2;
use super::stream::quic::Quic;
use super::stream::{read_frame, send_frame, Connection as _, FrameStream, StreamError};
use super::tls::TlsMaterial;
use super::QuicLimits;
use crate::config::{TransportConfig, TransportMode};

/// How long one connection attempt (handshake and hello) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Smallest and largest delay between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the control stream is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(1);
/// A ping unanswered for this long means the gateway is not serving.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a link stays out of use after a failure, at first and at most.
const COOLDOWN_MIN: Duration = Duration::from_secs(1);
const COOLDOWN_MAX: Duration = Duration::from_secs(30);
/// Weight of a new RTT sample in the moving average.
const RTT_ALPHA: f64 = 0.2;

/// One gateway to connect to, as the caller's configuration describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// The region the gateway must say, and its certificate must name, it serves.
    pub region: RegionId,
    /// That region's jurisdiction, from the region catalogue.
    pub jurisdiction: Option<Jurisdiction>,
    /// `host:port` of the gateway's QUIC listener.
    pub address: String,
    /// `host:port` of its HTTP/2 listener on TCP.
    pub tcp_address: String,
    /// The name shown in `x-residency-endpoint`.
    pub name: String,
    /// The name expected in the gateway's certificate.
    pub server_name: String,
}

/// Checks a gateway's resolved address after the handshake, before the
/// connection is used (endpoint attestation).
pub trait Attestation: Send + Sync {
    /// `Err` refuses the gateway, saying why; the connection is closed and
    /// the reason becomes the link's [`GatewayLink::last_error`].
    fn check(&self, link: &GatewayLink, addr: SocketAddr) -> Result<(), String>;
}

/// Runs beside a connection's control stream; if it ends, the connection
/// is closed and the link reconnects, the output saying why.
pub type ControlWatch = Pin<Box<dyn Future<Output = String> + Send>>;

/// Hears what happens on links' control streams (policy synchronisation).
pub trait ControlListener: Send + Sync {
    /// A connection to `link`'s gateway is up and its hello exchanged. The
    /// returned future is polled with the control stream until the
    /// connection ends.
    fn connected(&self, link: &Arc<GatewayLink>, conn: &AnyConn, codec: Codec) -> ControlWatch;

    /// The gateway announced that it holds policy `version` (already
    /// stored as [`GatewayLink::announced_policy`]). Must not block.
    fn announced(&self, link: &GatewayLink, conn: &AnyConn, codec: Codec, version: u64);
}

/// All gateway links of an agent.
pub struct GatewayPool {
    links: arc_swap::ArcSwap<Vec<Arc<GatewayLink>>>,
    v4: quinn::Endpoint,
    v6: Option<quinn::Endpoint>,
    transport: TransportConfig,
    control: Arc<dyn ControlListener>,
    attestation: Arc<dyn Attestation>,
    shutdown: CancellationToken,
    /// Serialises reconfigurations.
    reconfigure: std::sync::Mutex<()>,
}

impl std::fmt::Debug for GatewayPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayPool")
            .field("links", &self.links.load().len())
            .finish()
    }
}

/// How long a gateway removed from the config keeps its connection, so
/// requests already on it can finish.
const REMOVED_LINK_GRACE: Duration = Duration::from_secs(30);

/// One configured gateway and its current connection, if any.
#[derive(Debug)]
pub struct GatewayLink {
    /// The region the config says this gateway serves.
    pub region: RegionId,
    /// That region's jurisdiction, from the catalogue (built in or config).
    pub jurisdiction: Option<residency_proto::Jurisdiction>,
    /// `host:port` as configured.
    pub address: String,
    /// The name shown in `x-residency-endpoint`.
    pub name: String,
    server_name: String,
    /// What this link was made from.
    spec: LinkSpec,
    /// Closes this link (shutdown, or removal by a reload).
    stop: CancellationToken,
    clients: arc_swap::ArcSwap<Clients>,
    conn: ArcSwapOption<AnyConn>,
    rtt_micros: AtomicU64,
    /// The policy version the gateway last announced (0: none).
    announced: AtomicU64,
    /// The models the gateway last advertised.
    models: arc_swap::ArcSwap<ModelList>,
    breaker: std::sync::Mutex<Breaker>,
    /// Requests sent through this link.
    pub requests: AtomicU64,
    /// Requests that failed on this link before a response started.
    pub failures: AtomicU64,
    /// Why the last connection attempt failed (cleared on connecting).
    last_error: std::sync::Mutex<Option<String>>,
}

/// A link's TLS client configurations, replaced by a reload.
#[derive(Debug)]
struct Clients {
    quic: quinn::ClientConfig,
    tcp: Arc<rustls::ClientConfig>,
    limits: QuicLimits,
}

/// A circuit breaker: a failure takes the link out of use for a cooldown
/// that doubles with each consecutive failure; after it, one request may
/// probe the link (half-open) and a success closes the circuit again.
#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// A link's health as shown in status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Connected and serving.
    Healthy,
    /// Connected, but out of use after failures until the cooldown ends.
    Open,
    /// Cooldown over: the next request probes it.
    HalfOpen,
    /// Not connected.
    Down,
}

impl Health {
    /// A stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Open => "circuit_open",
            Health::HalfOpen => "half_open",
            Health::Down => "down",
        }
    }
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("{0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("{0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("TCP connect: {0}")]
    Tcp(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("{0}")]
    Earlier(String),
    #[error("QUIC: {quic}; HTTP/2: {h2}")]
    Both {
        quic: Box<ConnectError>,
        h2: Box<ConnectError>,
    },
    #[error("control stream: {0}")]
    Stream(#[from] StreamError),
    #[error("gateway hello: {0}")]
    Hello(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl GatewayLink {
    /// The live connection, if the link is up.
    pub fn connection(&self) -> Option<AnyConn> {
        self.conn.load_full().map(|c| (*c).clone())
    }

    /// The transport of the live connection, if the link is up.
    pub fn transport(&self) -> Option<Transport> {
        self.conn.load().as_ref().map(|c| c.transport())
    }

    /// Whether the link currently has a live connection.
    pub fn is_up(&self) -> bool {
        self.conn.load().is_some()
    }

    /// Current health.
    pub fn health(&self) -> Health {
        if !self.is_up() {
            return Health::Down;
        }
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match b.open_until {
            None => Health::Healthy,
            Some(t) if Instant::now() < t => Health::Open,
            Some(_) => Health::HalfOpen,
        }
    }

    /// Whether a request may use this link now; in half-open state only one
    /// probe at a time is let through.
    fn admit(&self) -> bool {
        if !self.is_up() {
            return false;
        }
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match b.open_until {
            None => true,
            Some(t) if Instant::now() < t => false,
            Some(_) if b.probing => false,
            Some(_) => {
                b.probing = true;
                true
            }
        }
    }

    /// A response started on this link: close the circuit.
    pub fn record_success(&self) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        if b.open_until.is_some() {
            info!(region = %self.region, endpoint = %self.name, "gateway circuit closed");
        }
        *b = Breaker::default();
    }

    /// A request failed on this link before any response byte: open the
    /// circuit for a cooldown that grows with consecutive failures.
    pub fn record_failure(&self, why: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.consecutive_failures = b.consecutive_failures.saturating_add(1);
        let shift = (b.consecutive_failures - 1).min(5);
        let cooldown = (COOLDOWN_MIN * (1u32 << shift)).min(COOLDOWN_MAX);
        b.open_until = Some(Instant::now() + cooldown);
        b.probing = false;
        warn!(region = %self.region, endpoint = %self.name, failures = b.consecutive_failures, cooldown_ms = cooldown.as_millis() as u64, reason = why, "gateway circuit opened");
    }

    /// How long to wait for the gateway to acknowledge a request before
    /// giving up on it: a few round trips, within bounds.
    pub fn ack_timeout(&self) -> Duration {
        let rtt = self.rtt().unwrap_or(Duration::from_millis(50));
        (rtt * 4 + Duration::from_millis(250))
            .clamp(Duration::from_millis(300), Duration::from_secs(3))
    }

    /// Why the last connection attempt failed, while the link is down
    /// (a refused certificate, a timeout, a failed attestation).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_last_error(&self, why: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// The models the gateway last advertised (an open, empty list until
    /// the first connection).
    pub fn models(&self) -> Arc<ModelList> {
        self.models.load_full()
    }

    /// The policy version the gateway last announced (0: none yet).
    pub fn announced_policy(&self) -> u64 {
        self.announced.load(Ordering::Relaxed)
    }

    /// Last measured control-stream round trip, if any.
    pub fn rtt(&self) -> Option<Duration> {
        match self.rtt_micros.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}

impl GatewayPool {
    /// Starts one supervised link per gateway in `links`. `attestation`
    /// checks every new connection's address; `control` hears every new
    /// connection and policy announcement. Links run until `shutdown` is
    /// cancelled.
    pub fn start(
        links: &[LinkSpec],
        tls: &TlsMaterial,
        limits: &QuicLimits,
        transport: TransportConfig,
        control: Arc<dyn ControlListener>,
        attestation: Arc<dyn Attestation>,
        shutdown: CancellationToken,
    ) -> Result<Arc<GatewayPool>, std::io::Error> {
        let v4 = quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0)))?;
        // IPv6 may be disabled on a branch box; only needed for v6 gateways.
        let v6 = quinn::Endpoint::client(SocketAddr::from(([0u16; 8], 0))).ok();
        let pool = Arc::new(GatewayPool {
            links: arc_swap::ArcSwap::from_pointee(Vec::new()),
            v4,
            v6,
            transport,
            control,
            attestation,
            shutdown,
            reconfigure: std::sync::Mutex::new(()),
        });
        pool.reconfigure(links, tls, limits)
            .map_err(std::io::Error::other)?;
        Ok(pool)
    }

    fn client_config(
        tls: &TlsMaterial,
        limits: &QuicLimits,
        region: &RegionId,
    ) -> Result<Clients, String> {
        let crypto = tls.client_config(region).map_err(|e| e.to_string())?;
        let mut tcp = crypto.clone();
        tcp.alpn_protocols = vec![b"h2".to_vec()];
        let quic =
            quinn::crypto::rustls::QuicClientConfig::try_from(crypto).map_err(|e| e.to_string())?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        client.transport_config(limits.transport_config());
        Ok(Clients {
            quic: client,
            tcp: Arc::new(tcp),
            limits: limits.clone(),
        })
    }

    /// Brings the links in line with `specs` (after a reload): a gateway
    /// still configured keeps its connection and in-flight requests and gets
    /// the new TLS material for its next connection; a new one is connected;
    /// one no longer configured takes no new requests and is closed after a
    /// grace period. On error nothing changes.
    pub fn reconfigure(
        &self,
        specs: &[LinkSpec],
        tls: &TlsMaterial,
        limits: &QuicLimits,
    ) -> Result<(), String> {
        let _one_at_a_time = self.reconfigure.lock().unwrap_or_else(|p| p.into_inner());
        let clients = specs
            .iter()
            .map(|spec| Self::client_config(tls, limits, &spec.region))
            .collect::<Result<Vec<_>, _>>()?;
        let old = self.links.load_full();
        let mut next = Vec::with_capacity(specs.len());
        for (spec, client) in specs.iter().zip(clients) {
            let kept = old.iter().find(|l| {
                l.spec == *spec && !next.iter().any(|n: &Arc<GatewayLink>| Arc::ptr_eq(n, l))
            });
            if let Some(link) = kept {
                link.clients.store(Arc::new(client));
                next.push(link.clone());
                continue;
            }
            let link = Arc::new(GatewayLink {
                region: spec.region.clone(),
                jurisdiction: spec.jurisdiction,
                address: spec.address.clone(),
                name: spec.name.clone(),
                server_name: spec.server_name.clone(),
                spec: spec.clone(),
                stop: self.shutdown.child_token(),
                clients: arc_swap::ArcSwap::from_pointee(client),
                conn: ArcSwapOption::empty(),
                rtt_micros: AtomicU64::new(0),
                announced: AtomicU64::new(0),
                models: arc_swap::ArcSwap::from_pointee(ModelList {
                    open: true,
                    models: Vec::new(),
                }),
                breaker: std::sync::Mutex::new(Breaker::default()),
                requests: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                last_error: std::sync::Mutex::new(None),
            });
            if !old.is_empty() {
                info!(region = %link.region, endpoint = %link.name, "gateway added by reload");
            }
            tokio::spawn(supervise(
                link.clone(),
                Endpoints {
                    v4: self.v4.clone(),
                    v6: self.v6.clone(),
                },
                self.transport,
                limits.codec(),
                self.control.clone(),
                self.attestation.clone(),
            ));
            next.push(link);
        }
        for gone in old
            .iter()
            .filter(|l| !next.iter().any(|n| Arc::ptr_eq(n, l)))
        {
            info!(region = %gone.region, endpoint = %gone.name, grace_secs = REMOVED_LINK_GRACE.as_secs(), "gateway removed by reload; closing after in-flight requests");
            let stop = gone.stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(REMOVED_LINK_GRACE) => stop.cancel(),
                    () = stop.cancelled() => {}
                }
            });
        }
        self.links.store(Arc::new(next));
        Ok(())
    }

    /// Every link, in configuration order.
    pub fn links(&self) -> Arc<Vec<Arc<GatewayLink>>> {
        self.links.load_full()
    }

    /// Picks a link for a request: regions in the given (policy) order; within
    /// a region, the healthy link with the lowest round trip among those
    /// `eligible` accepts (the ones serving the request's model). Links in
    /// `exclude` (already tried) are skipped. Never a region not listed.
    pub fn pick<'r>(
        &self,
        regions: impl IntoIterator<Item = &'r RegionId>,
        exclude: &[Arc<GatewayLink>],
        eligible: impl Fn(&GatewayLink) -> bool,
    ) -> Option<(Arc<GatewayLink>, AnyConn)> {
        let links = self.links.load();
        for region in regions {
            let mut best: Option<&Arc<GatewayLink>> = None;
            for l in links.iter().filter(|l| &l.region == region) {
                if exclude.iter().any(|e| Arc::ptr_eq(e, l))
                    || l.health() != Health::Healthy && l.health() != Health::HalfOpen
                    || !eligible(l)
                {
                    continue;
                }
                let rtt = l.rtt().unwrap_or(Duration::MAX);
                if best.is_none_or(|b| rtt < b.rtt().unwrap_or(Duration::MAX)) {
                    best = Some(l);
                }
            }
            if let Some(l) = best {
                if l.admit() {
                    if let Some(c) = l.connection() {
                        l.requests.fetch_add(1, Ordering::Relaxed);
                        return Some((l.clone(), c));
                    }
                }
            }
        }
        None
    }

    /// The first link for `region` that is up, with its connection.
    pub fn connection_for(&self, region: &RegionId) -> Option<(Arc<GatewayLink>, AnyConn)> {
        self.links
            .load()
            .iter()
            .filter(|l| &l.region == region)
            .find_map(|l| l.connection().map(|c| (l.clone(), c)))
    }

    /// Waits until every link is up or `timeout` passes; returns whether all are.
    pub async fn wait_all_up(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.links.load().iter().all(|l| l.is_up()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The QUIC client sockets links share.
#[derive(Clone)]
struct Endpoints {
    v4: quinn::Endpoint,
    v6: Option<quinn::Endpoint>,
}

/// How a connection that was up came to an end.
enum Ended {
    /// It failed or was closed; why.
    Lost(String),
    /// QUIC connected again while the link was on HTTP/2.
    Upgraded(AnyConn, Control),
}

async fn supervise(
    link: Arc<GatewayLink>,
    endpoints: Endpoints,
    transport: TransportConfig,
    codec: Codec,
    control: Arc<dyn ControlListener>,
    attestation: Arc<dyn Attestation>,
) {
    let shutdown = link.stop.clone();
    let mut backoff = BACKOFF_MIN;
    let mut jitter = Jitter::from_os();
    let mut attempt: u32 = 0;
    // In auto mode: when QUIC last failed where HTTP/2 then worked (UDP is
    // blocked), and why. Within a re-probe interval of that, a reconnection
    // goes straight to HTTP/2. A gateway that is down on both transports
    // does not count: when it returns, QUIC is tried first.
    let mut quic_failed: Option<(Instant, String)> = None;
    let reprobe = Duration::from_secs(transport.reprobe_secs);
    loop {
        attempt += 1;
        let clients = link.clients.load_full();
        let skip_quic = quic_failed
            .as_ref()
            .filter(|(t, _)| transport.mode == TransportMode::Auto && t.elapsed() < reprobe)
            .map(|(_, why)| why.as_str());
        let connected = tokio::select! {
            r = connect(&link, &endpoints, transport, skip_quic, &clients, &codec, &*attestation) => r,
            () = shutdown.cancelled() => return,
        };
        match connected {
            Ok((conn, stream, quic_error)) => {
                match &quic_error {
                    Some(e) => {
                        if skip_quic.is_none() {
                            quic_failed = Some((Instant::now(), e.clone()));
                        }
                        warn!(region = %link.region, endpoint = %link.name, address = %conn.remote_address(), quic_error = %e, "gateway reached over HTTP/2: QUIC did not connect; trying QUIC again in the background");
                    }
                    None if conn.transport() == Transport::Quic => quic_failed = None,
                    None => {}
                }
                info!(region = %link.region, endpoint = %link.name, address = %conn.remote_address(), transport = conn.transport().as_str(), attempt, "gateway connected");
                attempt = 0;
                link.set_last_error(None);
                backoff = BACKOFF_MIN;
                // A fresh connection starts with a closed circuit.
                *link.breaker.lock().unwrap_or_else(|p| p.into_inner()) = Breaker::default();
                let mut current = (conn, stream);
                loop {
                    let (conn, stream) = current;
                    link.conn.store(Some(Arc::new(conn.clone())));
                    let watch = control.connected(&link, &conn, codec);
                    let upgrade = async {
                        if conn.transport() != Transport::H2
                            || transport.mode != TransportMode::Auto
                        {
                            return std::future::pending().await;
                        }
                        let mut jitter = Jitter::from_os();
                        loop {
                            // 0.8 to 1.2 times the interval.
                            let spread = 0.8 + (jitter.next_u64() % 1000) as f64 / 2500.0;
                            tokio::time::sleep(reprobe.mul_f64(spread)).await;
                            let clients = link.clients.load_full();
                            match connect_quic(&link, &endpoints, &clients, &codec, &*attestation)
                                .await
                            {
                                Ok(up) => return up,
                                Err(e) => {
                                    debug!(region = %link.region, endpoint = %link.name, error = %e, "QUIC still does not connect; staying on HTTP/2")
                                }
                            }
                        }
                    };
                    let ended = tokio::select! {
                        e = conn.closed() => Ended::Lost(e),
                        e = control_loop(&link, &conn, stream, &codec, &*control, watch) => Ended::Lost(e),
                        (q, s) = upgrade => Ended::Upgraded(q, s),
                        () = shutdown.cancelled() => {
                            link.conn.store(None);
                            conn.close(0, b"agent shutting down");
                            return;
                        }
                    };
                    match ended {
                        Ended::Upgraded(quic, stream) => {
                            quic_failed = None;
                            info!(region = %link.region, endpoint = %link.name, address = %quic.remote_address(), "gateway back on QUIC; the HTTP/2 connection closes after its requests");
                            link.conn.store(Some(Arc::new(quic.clone())));
                            drain(conn);
                            current = (quic, stream);
                        }
                        Ended::Lost(reason) => {
                            link.conn.store(None);
                            link.rtt_micros.store(0, Ordering::Relaxed);
                            conn.close(1, b"control stream failed");
                            warn!(region = %link.region, endpoint = %link.name, transport = conn.transport().as_str(), reason = %reason, "gateway connection lost");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                link.set_last_error(Some(e.to_string()));
                if attempt == 1 || attempt % 10 == 0 {
                    warn!(region = %link.region, endpoint = %link.name, attempt, error = %e, "gateway connect failed");
                } else {
                    debug!(region = %link.region, endpoint = %link.name, attempt, error = %e, "gateway connect failed");
                }
            }
        }
        backoff = next_backoff(backoff, jitter.next_u64());
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Longest an HTTP/2 connection left behind for QUIC stays open for the
/// requests still on it.
const DRAIN_MAX: Duration = Duration::from_secs(600);

/// Lets a replaced connection finish the requests on it, then close. An
/// HTTP/2 connection ends by itself once no handle and no stream is left.
fn drain(conn: AnyConn) {
    match conn {
        AnyConn::H2(h2) => {
            let done = h2.into_drain();
            tokio::spawn(async move {
                if tokio::time::timeout(DRAIN_MAX, done.closed.cancelled())
                    .await
                    .is_err()
                {
                    done.close.cancel();
                }
            });
        }
        AnyConn::Quic(q) => {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REMOVED_LINK_GRACE, q.0.closed()).await;
                q.0.close(0u32.into(), b"replaced");
            });
        }
    }
}

/// The delay before the next reconnection attempt, after waiting `prev`:
/// decorrelated jitter, uniform in [`BACKOFF_MIN`, 3 × `prev`] and at most
/// [`BACKOFF_MAX`], with `random` choosing the point. It grows about 1.5×
/// per failure; agents that lost the same gateway at the same moment (a
/// restart) spread out instead of reconnecting in lock step.
fn next_backoff(prev: Duration, random: u64) -> Duration {
    let lo = BACKOFF_MIN.as_nanos() as u64;
    let cap = BACKOFF_MAX.as_nanos() as u64;
    let hi = u64::try_from(prev.as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_mul(3)
        .clamp(lo, cap);
    Duration::from_nanos(lo + random % (hi - lo + 1))
}

/// SplitMix64, seeded from the OS once per link: only spreads retries, so
/// any seed will do if the OS has none to give.
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    fn from_os() -> Self {
        let mut seed = [0u8; 8];
        if getrandom::getrandom(&mut seed).is_ok() {
            return Jitter(u64::from_le_bytes(seed));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter(now ^ (&seed as *const _ as u64))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

type Control = (AnySend, FrameStream<AnyRecv>);

/// One connection attempt as `transport` says: QUIC, HTTP/2, or in auto
/// mode QUIC within its timeout and then HTTP/2 (straight to HTTP/2 when
/// `skip_quic` says why QUIC failed recently). On success, also why QUIC did
/// not connect when HTTP/2 was used in its place.
async fn connect(
    link: &GatewayLink,
    endpoints: &Endpoints,
    transport: TransportConfig,
    skip_quic: Option<&str>,
    clients: &Clients,
    codec: &Codec,
    attestation: &dyn Attestation,
) -> Result<(AnyConn, Control, Option<String>), ConnectError> {
    let quic = || connect_quic(link, endpoints, clients, codec, attestation);
    let h2 = || connect_h2(link, clients, codec, attestation);
    match transport.mode {
        TransportMode::Quic => quic().await.map(|(c, s)| (c, s, None)),
        TransportMode::H2 => h2().await.map(|(c, s)| (c, s, None)),
        TransportMode::Auto if skip_quic.is_some() => {
            let recently = format!("failed recently: {}", skip_quic.unwrap_or_default());
            match h2().await {
                Ok((c, s)) => Ok((c, s, Some(recently))),
                Err(h2_error) => Err(ConnectError::Both {
                    quic: Box::new(ConnectError::Earlier(recently)),
                    h2: Box::new(h2_error),
                }),
            }
        }
        TransportMode::Auto => {
            let limit = Duration::from_millis(transport.quic_timeout_ms);
            let tried = tokio::time::timeout(limit, quic())
                .await
                .unwrap_or(Err(ConnectError::Timeout(limit)));
            let quic_error = match tried {
                Ok((c, s)) => return Ok((c, s, None)),
                Err(e) => e,
            };
            match h2().await {
                Ok((c, s)) => Ok((c, s, Some(quic_error.to_string()))),
                Err(h2_error) => Err(ConnectError::Both {
                    quic: Box::new(quic_error),
                    h2: Box::new(h2_error),
                }),
            }
        }
    }
}

async fn resolve(address: &str) -> Result<SocketAddr, ConnectError> {
    tokio::net::lookup_host(address)
        .await
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| ConnectError::Resolve(address.to_owned()))
}

async fn connect_quic(
    link: &GatewayLink,
    endpoints: &Endpoints,
    clients: &Clients,
    codec: &Codec,
    attestation: &dyn Attestation,
) -> Result<(AnyConn, Control), ConnectError> {
    let fut = async {
        let addr = resolve(&link.address).await?;
        let endpoint = match (addr, endpoints.v6.as_ref()) {
            (SocketAddr::V6(_), Some(v6)) => v6,
            _ => &endpoints.v4,
        };
        let conn = endpoint
            .connect_with(clients.quic.clone(), addr, &link.server_name)?
            .await?;
        hello(link, AnyConn::Quic(Quic(conn)), addr, codec, attestation).await
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| ConnectError::Timeout(CONNECT_TIMEOUT))?
}

async fn connect_h2(
    link: &GatewayLink,
    clients: &Clients,
    codec: &Codec,
    attestation: &dyn Attestation,
) -> Result<(AnyConn, Control), ConnectError> {
    let fut = async {
        let addr = resolve(&link.spec.tcp_address).await?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(ConnectError::Tcp)?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(link.server_name.clone())
            .map_err(|e| ConnectError::Hello(format!("server name: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(clients.tcp.clone())
            .connect(name, tcp)
            .await
            .map_err(ConnectError::Tls)?;
        let certs = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let h2 = H2::handshake(tls, &clients.limits, certs, addr).await?;
        hello(link, AnyConn::H2(h2), addr, codec, attestation).await
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| ConnectError::Timeout(CONNECT_TIMEOUT))?
}

/// Attests a new connection's address and exchanges hellos on its control
/// stream.
async fn hello(
    link: &GatewayLink,
    conn: AnyConn,
    addr: SocketAddr,
    codec: &Codec,
    attestation: &dyn Attestation,
) -> Result<(AnyConn, Control), ConnectError> {
    attestation
        .check(link, addr)
        .map_err(ConnectError::Hello)
        .inspect_err(|_| conn.close(4, b"gateway address fails attestation"))?;
    let (mut send, mut recv) = conn.open().await?;
    let hello = Frame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        role: Role::Agent,
        region: None,
        software: crate::SOFTWARE.into(),
    });
    send_frame(&mut send, codec, &hello, &[]).await?;
    let (frame, rest) = read_frame(&mut recv, codec)
        .await?
        .ok_or_else(|| ConnectError::Hello("control stream closed".into()))?;
    match frame {
        Frame::Hello(h) if h.role == Role::Gateway && h.region.as_ref() == Some(&link.region) => {}
        Frame::Hello(h) => {
            return Err(ConnectError::Hello(format!(
                "gateway says it is {:?} serving {:?}, expected region {}",
                h.role, h.region, link.region
            )))
        }
        Frame::Error(e) => return Err(ConnectError::Hello(e.message)),
        _ => return Err(ConnectError::Hello("unexpected first frame".into())),
    }
    // The model list follows the hello, before the link is put to use.
    let mut frames = FrameStream::new(recv, *codec, rest);
    match frames.next().await? {
        Some(Frame::Models(list)) => link.models.store(Arc::new(list)),
        _ => {
            return Err(ConnectError::Hello(
                "gateway sent no model list after its hello".into(),
            ))
        }
    }
    Ok((conn, (send, frames)))
}

/// Runs the control stream until it (or `watch`) fails, returning why: pings
/// to measure the round trip, and policy announcements, recorded on the link
/// and passed to `control`.
async fn control_loop(
    link: &GatewayLink,
    conn: &AnyConn,
    (mut send, mut frames): Control,
    codec: &Codec,
    control: &dyn ControlListener,
    mut watch: ControlWatch,
) -> String {
    let mut nonce: u64 = 0;
    let mut outstanding: Option<(u64, Instant)> = None;
    let mut tick = tokio::time::interval(PING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some((_, sent)) = outstanding {
                    if sent.elapsed() > PING_TIMEOUT {
                        return format!("no answer to a ping for {PING_TIMEOUT:?}");
                    }
                    continue;
                }
                nonce += 1;
                if let Err(e) = send_frame(&mut send, codec, &Frame::Ping { nonce }, &[]).await {
                    return e.to_string();
                }
                outstanding = Some((nonce, Instant::now()));
            }
            frame = frames.next() => match frame {
                Ok(Some(Frame::Pong { nonce: n })) => {
                    if let Some((want, sent)) = outstanding {
                        if n == want {
                            let sample = sent.elapsed().as_micros().max(1) as f64;
                            let old = link.rtt_micros.load(Ordering::Relaxed) as f64;
                            let ewma = if old == 0.0 { sample } else { old + RTT_ALPHA * (sample - old) };
                            link.rtt_micros.store(ewma.max(1.0) as u64, Ordering::Relaxed);
                            outstanding = None;
                        }
                    }
                }
                Ok(Some(Frame::PolicyAvailable { version })) => {
                    link.announced.store(version, Ordering::Relaxed);
                    control.announced(link, conn, *codec, version);
                }
                Ok(Some(Frame::Models(list))) => {
                    info!(region = %link.region, endpoint = %link.name, models = list.models.len(), open = list.open, "gateway model list changed");
                    link.models.store(Arc::new(list));
                }
                Ok(Some(_)) => {}
                Ok(None) => return "control stream closed by gateway".into(),
                Err(e) => return e.to_string(),
            },
            reason = &mut watch => return reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_within_bounds() {
        let mut jitter = Jitter::from_os();
        // Never below the minimum, even from nothing.
        assert_eq!(next_backoff(Duration::ZERO, u64::MAX), BACKOFF_MIN);
        for prev in [
            BACKOFF_MIN,
            Duration::from_millis(700),
            BACKOFF_MAX,
            Duration::MAX,
        ] {
            let delays: Vec<Duration> = (0..200)
                .map(|_| next_backoff(prev, jitter.next_u64()))
                .collect();
            assert!(
                delays
                    .iter()
                    .all(|d| (BACKOFF_MIN..=BACKOFF_MAX).contains(d)),
                "{prev:?}: {delays:?}"
            );
            let hi = (prev.saturating_mul(3)).clamp(BACKOFF_MIN, BACKOFF_MAX);
            assert!(delays.iter().all(|d| *d <= hi), "{prev:?}: {delays:?}");
            // Agents failing at the same attempt do not wait the same time.
            let first = delays[0];
            assert!(delays.iter().any(|d| *d != first), "{prev:?}: {delays:?}");
        }
    }

    #[test]
    fn backoff_grows_to_the_cap_and_spreads_agents_out() {
        // 50 agents lose the same gateway at once; each backs off with its
        // own generator.
        let mut agents: Vec<(Jitter, Duration, Duration)> = (0..50)
            .map(|_| (Jitter::from_os(), BACKOFF_MIN, Duration::ZERO))
            .collect();
        for _ in 0..30 {
            for (jitter, backoff, elapsed) in &mut agents {
                *backoff = next_backoff(*backoff, jitter.next_u64());
                *elapsed += *backoff;
            }
        }
        let mut when: Vec<Duration> = agents.iter().map(|a| a.2).collect();
        when.sort();
        when.dedup();
        assert!(when.len() > 40, "retries still bunched: {when:?}");
        // Thirty failures in, the waits have grown far past the minimum.
        let mean = when.iter().sum::<Duration>() / when.len() as u32 / 30;
        assert!(mean > BACKOFF_MAX / 4, "{mean:?}");
    }

    #[test]
    fn jitter_streams_differ_by_seed() {
        let mut a = Jitter(1);
        let mut b = Jitter(2);
        let a: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let b: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_ne!(a, b);
        assert!(a.windows(2).all(|w| w[0] != w[1]));
    }
}
