//! The agent's long-lived QUIC connections, one supervised link per configured
//! gateway, reconnecting with backoff.
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
use residency_proto::{Codec, Frame, Hello, Jurisdiction, RegionId, Role, PROTOCOL_VERSION};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::stream::quic::{Quic, QuicRecv, QuicSend};
use super::stream::{read_frame, send_frame, Connection as _, FrameStream, StreamError};
use super::tls::TlsMaterial;
use super::QuicLimits;

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
    fn connected(
        &self,
        link: &Arc<GatewayLink>,
        conn: &quinn::Connection,
        codec: Codec,
    ) -> ControlWatch;

    /// The gateway announced that it holds policy `version` (already
    /// stored as [`GatewayLink::announced_policy`]). Must not block.
    fn announced(&self, link: &GatewayLink, conn: &quinn::Connection, codec: Codec, version: u64);
}

/// All gateway links of an agent.
pub struct GatewayPool {
    links: arc_swap::ArcSwap<Vec<Arc<GatewayLink>>>,
    v4: quinn::Endpoint,
    v6: Option<quinn::Endpoint>,
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
    client: arc_swap::ArcSwap<quinn::ClientConfig>,
    conn: ArcSwapOption<quinn::Connection>,
    rtt_micros: AtomicU64,
    /// The policy version the gateway last announced (0: none).
    announced: AtomicU64,
    breaker: std::sync::Mutex<Breaker>,
    /// Requests sent through this link.
    pub requests: AtomicU64,
    /// Requests that failed on this link before a response started.
    pub failures: AtomicU64,
    /// Why the last connection attempt failed (cleared on connecting).
    last_error: std::sync::Mutex<Option<String>>,
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
    #[error("control stream: {0}")]
    Stream(#[from] StreamError),
    #[error("gateway hello: {0}")]
    Hello(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl GatewayLink {
    /// The live connection, if the link is up.
    pub fn connection(&self) -> Option<quinn::Connection> {
        self.conn.load_full().map(|c| (*c).clone())
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
    ) -> Result<quinn::ClientConfig, String> {
        let crypto = tls.client_config(region).map_err(|e| e.to_string())?;
        let quic =
            quinn::crypto::rustls::QuicClientConfig::try_from(crypto).map_err(|e| e.to_string())?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        client.transport_config(limits.transport_config());
        Ok(client)
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
                link.client.store(Arc::new(client));
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
                client: arc_swap::ArcSwap::from_pointee(client),
                conn: ArcSwapOption::empty(),
                rtt_micros: AtomicU64::new(0),
                announced: AtomicU64::new(0),
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
                self.v4.clone(),
                self.v6.clone(),
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
    /// a region, the healthy link with the lowest round trip. Links in
    /// `exclude` (already tried) are skipped. Never a region not listed.
    pub fn pick<'r>(
        &self,
        regions: impl IntoIterator<Item = &'r RegionId>,
        exclude: &[Arc<GatewayLink>],
    ) -> Option<(Arc<GatewayLink>, quinn::Connection)> {
        let links = self.links.load();
        for region in regions {
            let mut best: Option<&Arc<GatewayLink>> = None;
            for l in links.iter().filter(|l| &l.region == region) {
                if exclude.iter().any(|e| Arc::ptr_eq(e, l))
                    || l.health() != Health::Healthy && l.health() != Health::HalfOpen
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
    pub fn connection_for(
        &self,
        region: &RegionId,
    ) -> Option<(Arc<GatewayLink>, quinn::Connection)> {
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

async fn supervise(
    link: Arc<GatewayLink>,
    v4: quinn::Endpoint,
    v6: Option<quinn::Endpoint>,
    codec: Codec,
    control: Arc<dyn ControlListener>,
    attestation: Arc<dyn Attestation>,
) {
    let shutdown = link.stop.clone();
    let mut backoff = BACKOFF_MIN;
    let mut jitter = Jitter::from_os();
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let client = link.client.load_full();
        let connected = tokio::select! {
            r = connect_once(&link, &v4, v6.as_ref(), &client, &codec, &*attestation) => r,
            () = shutdown.cancelled() => return,
        };
        match connected {
            Ok((conn, stream)) => {
                info!(region = %link.region, endpoint = %link.name, address = %conn.remote_address(), attempt, "gateway connected");
                attempt = 0;
                link.set_last_error(None);
                backoff = BACKOFF_MIN;
                // A fresh connection starts with a closed circuit.
                *link.breaker.lock().unwrap_or_else(|p| p.into_inner()) = Breaker::default();
                link.conn.store(Some(Arc::new(conn.clone())));
                let watch = control.connected(&link, &conn, codec);
                let reason = tokio::select! {
                    e = conn.closed() => e.to_string(),
                    e = control_loop(&link, &conn, stream, &codec, &*control, watch) => e,
                    () = shutdown.cancelled() => {
                        link.conn.store(None);
                        conn.close(0u32.into(), b"agent shutting down");
                        return;
                    }
                };
                link.conn.store(None);
                link.rtt_micros.store(0, Ordering::Relaxed);
                conn.close(1u32.into(), b"control stream failed");
                warn!(region = %link.region, endpoint = %link.name, reason = %reason, "gateway connection lost");
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

type Control = (QuicSend, FrameStream<QuicRecv>);

async fn connect_once(
    link: &GatewayLink,
    v4: &quinn::Endpoint,
    v6: Option<&quinn::Endpoint>,
    client: &quinn::ClientConfig,
    codec: &Codec,
    attestation: &dyn Attestation,
) -> Result<(quinn::Connection, Control), ConnectError> {
    let fut = async {
        let addr = tokio::net::lookup_host(&link.address)
            .await
            .ok()
            .and_then(|mut it| it.next())
            .ok_or_else(|| ConnectError::Resolve(link.address.clone()))?;
        let endpoint = match (addr, v6) {
            (SocketAddr::V6(_), Some(v6)) => v6,
            _ => v4,
        };
        let conn = endpoint
            .connect_with(client.clone(), addr, &link.server_name)?
            .await?;
        attestation
            .check(link, addr)
            .map_err(ConnectError::Hello)
            .inspect_err(|_| {
                conn.close(4u32.into(), b"gateway address fails attestation");
            })?;
        let (mut send, mut recv) = Quic(conn.clone()).open().await?;
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
            Frame::Hello(h)
                if h.role == Role::Gateway && h.region.as_ref() == Some(&link.region) => {}
            Frame::Hello(h) => {
                return Err(ConnectError::Hello(format!(
                    "gateway says it is {:?} serving {:?}, expected region {}",
                    h.role, h.region, link.region
                )))
            }
            Frame::Error(e) => return Err(ConnectError::Hello(e.message)),
            _ => return Err(ConnectError::Hello("unexpected first frame".into())),
        }
        Ok((conn, (send, FrameStream::new(recv, *codec, rest))))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| ConnectError::Timeout(CONNECT_TIMEOUT))?
}

/// Runs the control stream until it (or `watch`) fails, returning why: pings
/// to measure the round trip, and policy announcements, recorded on the link
/// and passed to `control`.
async fn control_loop(
    link: &GatewayLink,
    conn: &quinn::Connection,
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
