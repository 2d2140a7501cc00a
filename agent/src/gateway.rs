//! Gateway mode: terminates QUIC with mutual TLS in a cloud region, re-checks
//! each request's routing facts, adds the provider key and forwards to the
//! provider's in-region endpoint, streaming the answer back as it arrives.
//!
//! Agents whose network drops UDP reach the same gateway over HTTP/2 on TCP
//! (same port number by default): the same TLS identity rules, the same
//! frames on each request stream, served by the same code.

pub mod check;
pub mod models;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body::Body as _;
use http_body_util::BodyExt;
use residency_proto::{
    Codec, ErrorCode, ErrorFrame, Frame, Hello, ModelList, RegionId, RequestHead, ResponseHead,
    Role, Tier, PROTOCOL_VERSION,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::app::ReloadError;
use crate::config::{GatewayConfig, ListenTcp};
use crate::policy::active::{OpenError, PolicyState};
use crate::transport::stream::quic::{Quic, QuicRecv, QuicSend};
use crate::transport::stream::{
    call, read_frame, read_to_end, send_frame, CallError, FrameStream, RecvHalf, SendHalf,
    StreamError,
};
use crate::transport::tls::{Identity, TlsError, TlsMaterial};
use crate::transport::RESET_UPSTREAM_FAILED;
use models::ModelMap;
use upstream::{Upstream, UpstreamError, FORWARD_RESPONSE_HEADERS};

/// Request head header in which the agent names the stored objects a
/// request refers to and the region each lives in (`id@region,…`). The gateway
/// refuses the request if one lives elsewhere; it is never sent upstream.
pub const HDR_OBJECTS: &str = "x-residency-objects";

/// A running gateway.
#[derive(Debug)]
pub struct GatewayHandle {
    local_addr: SocketAddr,
    policy: Arc<PolicyState>,
    region: RegionId,
    endpoint: quinn::Endpoint,
    /// The HTTP/2 listener's address, when on.
    tcp_addr: Option<SocketAddr>,
    /// Its TLS configuration, replaced by a reload.
    tcp_tls: Arc<arc_swap::ArcSwap<rustls::ServerConfig>>,
    shutdown: CancellationToken,
    /// Closes every HTTP/2 connection at once.
    abort: CancellationToken,
    tracker: TaskTracker,
    prober: Prober,
    state: Arc<arc_swap::ArcSwap<State>>,
    config: std::sync::Mutex<GatewayConfig>,
    /// The model list agents are told about.
    advertised: tokio::sync::watch::Sender<Arc<ModelList>>,
    /// When the gateway's own certificate expires (Unix seconds).
    cert_not_after: prometheus_client::metrics::gauge::Gauge,
}

/// Checks that a gateway's request path answers, as a peer would: a fresh
/// QUIC connection to its listener, mutual TLS with the gateway's own
/// certificate, a stream carrying `Ping`, its `Pong`. Feeds the systemd
/// watchdog. Cheap to clone.
#[derive(Clone)]
pub struct Prober {
    addr: SocketAddr,
    client: Arc<arc_swap::ArcSwap<quinn::ClientConfig>>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober").field("addr", &self.addr).finish()
    }
}

impl Prober {
    /// Whether the gateway answered a ping on a new connection within a second.
    pub async fn alive(&self) -> bool {
        let nonce = u64::from(std::process::id());
        matches!(
            self.ask(&Frame::Ping { nonce }, Duration::from_secs(1)).await,
            Ok(Frame::Pong { nonce: n }) if n == nonce
        )
    }

    /// Asks the gateway one question on a new connection with the gateway's
    /// own (probe) identity, within `timeout`: its answer frame, or why none
    /// came.
    pub async fn ask(&self, frame: &Frame, timeout: Duration) -> Result<Frame, CallError> {
        let unreachable =
            |e: &dyn std::fmt::Display| CallError::Stream(StreamError::Open(e.to_string()));
        let bind: SocketAddr = if self.addr.is_ipv6() {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        } else {
            (std::net::Ipv4Addr::LOCALHOST, 0).into()
        };
        let endpoint = quinn::Endpoint::client(bind).map_err(|e| unreachable(&e))?;
        let codec = Codec::default();
        let asked = async {
            let conn = endpoint
                .connect_with((**self.client.load()).clone(), self.addr, "localhost")
                .map_err(|e| unreachable(&e))?
                .await
                .map_err(|e| unreachable(&e))?;
            let answer = call(&Quic(conn.clone()), &codec, frame, timeout).await;
            conn.close(0u32.into(), b"probe done");
            answer
        };
        let answer = tokio::time::timeout(timeout, asked)
            .await
            .unwrap_or(Err(CallError::Timeout(timeout)));
        endpoint.close(0u32.into(), b"probe done");
        answer
    }
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// TLS material could not be loaded or used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The gateway certificate does not name the configured region.
    #[error("the gateway certificate names {named}, but the config says region {region}")]
    WrongIdentity {
        /// The configured region.
        region: RegionId,
        /// What the certificate names.
        named: String,
    },
    /// The policy state could not be opened.
    #[error(transparent)]
    Policy(#[from] OpenError),
    /// The provider client or its credentials could not be set up.
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamSetupError),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct State {
    region: RegionId,
    policy: Arc<PolicyState>,
    upstream: Upstream,
    codec: Codec,
    max_body: usize,
    /// The agents' classifier, when `[recheck] classify` is on.
    classifier: Option<crate::classify::Classifier>,
    /// The most sensitive tier forwarded.
    max_tier: Tier,
    /// The models served and their provider names.
    models: ModelMap,
    /// The list advertised to agents, updated by a reload.
    advertised: tokio::sync::watch::Receiver<Arc<ModelList>>,
}

impl GatewayHandle {
    /// Loads TLS material, binds the QUIC listener and starts serving.
    pub async fn start(cfg: GatewayConfig) -> Result<GatewayHandle, GatewayError> {
        let tls = TlsMaterial::load(&cfg.tls)?;
        let (server, probe_client) = Self::quic_configs(&cfg, &tls)?;
        let endpoint =
            quinn::Endpoint::server(server, cfg.listen).map_err(|source| GatewayError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = endpoint.local_addr().map_err(|source| GatewayError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let policy = Arc::new(PolicyState::open(
            &cfg.policy,
            &cfg.state_dir.join("policy"),
        )?);
        let (advertised, advertised_rx) = tokio::sync::watch::channel(Arc::new(cfg.model_list()));
        let state = Arc::new(arc_swap::ArcSwap::from_pointee(Self::state_for(
            &cfg,
            policy.clone(),
            advertised_rx,
        )?));
        let shutdown = CancellationToken::new();
        let abort = CancellationToken::new();
        let tracker = TaskTracker::new();
        let tcp_tls = Arc::new(arc_swap::ArcSwap::from_pointee(tls.tcp_server_config()?));
        let tcp_addr = match cfg.listen_tcp.address(local_addr) {
            None => None,
            Some(addr) => {
                let bind_error = |source| GatewayError::Bind { addr, source };
                let listener = match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => l,
                    // `listen` asked for any port and the one UDP got is
                    // taken on TCP: any other will do.
                    Err(_) if cfg.listen.port() == 0 && cfg.listen_tcp == ListenTcp::On(true) => {
                        tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0))
                            .await
                            .map_err(bind_error)?
                    }
                    Err(e) => return Err(bind_error(e)),
                };
                let bound = listener.local_addr().map_err(bind_error)?;
                tracker.spawn(accept_tcp(
                    listener,
                    H2Serving {
                        tls: tcp_tls.clone(),
                        state: state.clone(),
                        limits: cfg.quic.clone(),
                        shutdown: shutdown.clone(),
                        abort: abort.clone(),
                        tracker: tracker.clone(),
                    },
                ));
                Some(bound)
            }
        };
        let cert_not_after = prometheus_client::metrics::gauge::Gauge::default();
        cert_not_after.set(tls.not_after().unwrap_or(0));
        tracker.spawn(crate::transport::tls::watch_expiry(
            "tls.cert",
            cert_not_after.clone(),
            shutdown.clone(),
        ));
        tracker.spawn(accept(
            endpoint.clone(),
            state.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
        info!(region = %cfg.region, listen = %local_addr, listen_tcp = tcp_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()), max_tier = %cfg.max_tier(), rescan = cfg.recheck.classify, "gateway listening");
        let probe_addr = match local_addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, local_addr.port()))
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, local_addr.port()))
            }
            _ => local_addr,
        };
        Ok(GatewayHandle {
            prober: Prober {
                addr: probe_addr,
                client: Arc::new(arc_swap::ArcSwap::from_pointee(probe_client)),
            },
            state,
            config: std::sync::Mutex::new(cfg.clone()),
            advertised,
            local_addr,
            policy,
            region: cfg.region,
            endpoint,
            tcp_addr,
            tcp_tls,
            shutdown,
            abort,
            tracker,
            cert_not_after,
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound TCP address of the HTTP/2 listener, when it is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The QUIC server config for agents and the client config for the
    /// liveness probe, from `cfg`'s TLS files and limits.
    fn quic_configs(
        cfg: &GatewayConfig,
        tls: &TlsMaterial,
    ) -> Result<(quinn::ServerConfig, quinn::ClientConfig), GatewayError> {
        let ids = tls.identities();
        if !ids.contains(&Identity::Gateway(cfg.region.clone())) {
            return Err(GatewayError::WrongIdentity {
                region: cfg.region.clone(),
                named: format!("{ids:?}"),
            });
        }
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls.server_config()?)
            .map_err(|e| TlsError::Quic(e.to_string()))?;
        let probe_crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(tls.self_probe_config()?)
                .map_err(|e| TlsError::Quic(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(cfg.quic.transport_config());
        server.migration(true);
        let mut probe = quinn::ClientConfig::new(Arc::new(probe_crypto));
        probe.transport_config(cfg.quic.transport_config());
        Ok((server, probe))
    }

    /// What serving a request needs, from `cfg`.
    fn state_for(
        cfg: &GatewayConfig,
        policy: Arc<PolicyState>,
        advertised: tokio::sync::watch::Receiver<Arc<ModelList>>,
    ) -> Result<State, GatewayError> {
        Ok(State {
            region: cfg.region.clone(),
            policy,
            upstream: Upstream::new(cfg)?,
            models: ModelMap::new(cfg),
            advertised,
            codec: cfg.quic.codec(),
            max_body: cfg.upstream.max_body_bytes,
            classifier: cfg.recheck.classify.then(crate::classify::Classifier::new),
            max_tier: cfg.max_tier(),
        })
    }

    /// Applies a changed `gateway.toml` without dropping connections or
    /// requests: certificates, trusted policy keys, QUIC limits (for new
    /// connections), the upstream (kind, URL, credentials, CA, timeouts), the
    /// model map and `[recheck]` apply to streams that start after the
    /// reload; a changed model list is announced to connected agents. Returns the changed
    /// settings that need a restart. On error nothing changes.
    pub fn reload(&self, cfg: &GatewayConfig) -> Result<Vec<&'static str>, ReloadError> {
        let mut current = self.config.lock().unwrap_or_else(|p| p.into_inner());
        let mut restart = Vec::new();
        if current.region != cfg.region {
            return Err(ReloadError::RegionChanged {
                from: current.region.clone(),
                to: cfg.region.clone(),
            });
        }
        if current.listen != cfg.listen {
            restart.push("listen");
        }
        if current.listen_tcp != cfg.listen_tcp {
            restart.push("listen_tcp");
        }
        if current.state_dir != cfg.state_dir {
            restart.push("state_dir");
        }
        if current.worker_threads != cfg.worker_threads {
            restart.push("worker_threads");
        }
        if current.policy.history != cfg.policy.history
            || current.policy.builtin_baseline != cfg.policy.builtin_baseline
        {
            restart.push("policy.history/builtin_baseline");
        }
        let tls = TlsMaterial::load(&cfg.tls)?;
        let (server, probe) = Self::quic_configs(cfg, &tls)?;
        let keys = crate::policy::active::load_trusted_keys(&cfg.policy.trusted_keys)?;
        let state = Self::state_for(cfg, self.policy.clone(), self.advertised.subscribe())?;
        let tcp_tls = tls.tcp_server_config()?;
        self.endpoint.set_server_config(Some(server));
        self.tcp_tls.store(Arc::new(tcp_tls));
        self.prober.client.store(Arc::new(probe));
        self.policy.set_trusted_keys(keys);
        self.cert_not_after.set(tls.not_after().unwrap_or(0));
        self.state.store(Arc::new(state));
        let models = cfg.model_list();
        self.advertised.send_if_modified(|m| {
            let changed = **m != models;
            if changed {
                *m = Arc::new(models);
            }
            changed
        });
        let mut applied = cfg.clone();
        applied.listen = current.listen;
        applied.listen_tcp = current.listen_tcp;
        applied.state_dir = current.state_dir.clone();
        applied.worker_threads = current.worker_threads;
        applied.policy.history = current.policy.history;
        applied.policy.builtin_baseline = current.policy.builtin_baseline;
        *current = applied;
        info!(region = %cfg.region, max_tier = %cfg.max_tier(), needs_restart = ?restart, "configuration reloaded");
        Ok(restart)
    }

    /// A liveness check of the request path, usable after the handle is gone.
    pub fn prober(&self) -> Prober {
        self.prober.clone()
    }

    /// The policy this gateway holds and hands out.
    pub fn policy(&self) -> &Arc<PolicyState> {
        &self.policy
    }

    /// The region served.
    pub fn region(&self) -> &RegionId {
        &self.region
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then
    /// closes every connection.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        self.endpoint.set_server_config(None);
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(region = %self.region, "in-flight requests did not finish in time");
        }
        self.abort.cancel();
        self.endpoint.close(0u32.into(), b"gateway shutting down");
        self.endpoint.wait_idle().await;
    }

    /// Closes every connection at once, failing in-flight requests.
    pub fn abort(self) {
        self.shutdown.cancel();
        self.abort.cancel();
        self.endpoint.close(2u32.into(), b"gateway aborted");
    }
}

async fn accept(
    endpoint: quinn::Endpoint,
    state: Arc<arc_swap::ArcSwap<State>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            () = shutdown.cancelled() => return,
        };
        let Some(incoming) = incoming else { return };
        let state = state.clone();
        let shutdown = shutdown.clone();
        let t = tracker.clone();
        let remote = incoming.remote_address();
        tracker.spawn(async move {
            match incoming.await {
                Ok(conn) => serve_connection(conn, state, shutdown, t).await,
                // A refused certificate (another CA, expired, no client
                // certificate) is a TLS error of this side: say so, with the
                // peer; other failures (timeouts, resets) are routine.
                Err(quinn::ConnectionError::TransportError(e)) => {
                    warn!(remote = %remote, reason = %e, "handshake refused")
                }
                Err(e) => debug!(remote = %remote, error = %e, "handshake failed"),
            }
        });
    }
}

async fn serve_connection(
    conn: quinn::Connection,
    state: Arc<arc_swap::ArcSwap<State>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let ids = Identity::of_peer(&conn);
    let Some(peer) = admit(&ids, &state.load().region, conn.remote_address(), "quic") else {
        conn.close(3u32.into(), b"certificate names no agent identity");
        return;
    };
    let probe = matches!(peer, Identity::Gateway(_));
    loop {
        let stream = tokio::select! {
            s = conn.accept_bi() => s,
            () = shutdown.cancelled() => return,
        };
        match stream {
            Ok((send, recv)) => {
                // Each stream runs under the configuration it started with.
                let state = state.load_full();
                let (send, recv) = (QuicSend::new(send), QuicRecv(recv));
                tracker.spawn(serve_stream(send, recv, state, peer.clone()));
            }
            Err(e) => {
                if !probe {
                    info!(peer = %peer, reason = %e, "agent disconnected");
                }
                return;
            }
        }
    }
}

/// Who a peer is, from the identities its certificate names: an agent, an
/// operator (admin), or this gateway itself (the liveness probe). `None` (and
/// a warning) for anything else.
fn admit(
    ids: &[Identity],
    region: &RegionId,
    remote: SocketAddr,
    transport: &str,
) -> Option<Identity> {
    let own = Identity::Gateway(region.clone());
    let Some(peer) = ids
        .iter()
        .find(|i| matches!(i, Identity::Agent(_) | Identity::Admin(_)) || **i == own)
        .cloned()
    else {
        warn!(remote = %remote, transport, "peer certificate names no agent or admin identity");
        return None;
    };
    if peer == own {
        debug!(remote = %remote, transport, "liveness probe connected");
    } else {
        info!(peer = %peer, remote = %remote, transport, "agent connected");
    }
    Some(peer)
}

/// What serving HTTP/2 connections needs.
struct H2Serving {
    tls: Arc<arc_swap::ArcSwap<rustls::ServerConfig>>,
    state: Arc<arc_swap::ArcSwap<State>>,
    limits: crate::transport::QuicLimits,
    shutdown: CancellationToken,
    abort: CancellationToken,
    tracker: TaskTracker,
}

/// How long a TCP client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts HTTP/2-over-TLS connections until shutdown.
async fn accept_tcp(listener: tokio::net::TcpListener, serving: H2Serving) {
    let serving = Arc::new(serving);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = serving.shutdown.cancelled() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let s = serving.clone();
        serving.tracker.spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(s.tls.load_full());
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                // A refused certificate (another CA, expired, none) is a TLS
                // error of this side: say so, with the peer.
                Ok(Err(e)) if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
                    warn!(remote = %remote, transport = "h2", reason = %e, "handshake refused");
                    return;
                }
                Ok(Err(e)) => {
                    debug!(remote = %remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(remote = %remote, "TLS handshake timed out");
                    return;
                }
            };
            let ids = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(Identity::of_chain)
                .unwrap_or_default();
            let region = s.state.load().region.clone();
            let Some(peer) = admit(&ids, &region, remote, "h2") else {
                return;
            };
            serve_h2(tls, peer, remote, &s).await;
        });
    }
}

/// Serves one HTTP/2 connection: each POST to the stream path is a request
/// stream, served like a QUIC stream.
async fn serve_h2<T>(io: T, peer: Identity, remote: SocketAddr, s: &Arc<H2Serving>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use crate::transport::stream::h2::{channel, H2Recv, STREAM_PATH};
    let serving = s.clone();
    let peer_for_streams = peer.clone();
    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let answered = CancellationToken::new();
        answered.cancel();
        let (send, body) = channel(answered);
        let mut resp = http::Response::new(body);
        if req.method() != http::Method::POST || req.uri().path() != STREAM_PATH {
            send.finish();
            *resp.status_mut() = http::StatusCode::NOT_FOUND;
        } else {
            // Each stream runs under the configuration it started with.
            let state = serving.state.load_full();
            serving.tracker.spawn(serve_stream(
                send,
                H2Recv::request(req.into_body()),
                state,
                peer_for_streams.clone(),
            ));
        }
        std::future::ready(Ok::<_, std::convert::Infallible>(resp))
    });
    let limits = &s.limits;
    let keep_alive = Duration::from_millis(limits.keep_alive_ms);
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .initial_stream_window_size(limits.stream_window_bytes)
        .initial_connection_window_size(limits.connection_window_bytes)
        .keep_alive_interval(Some(keep_alive))
        .keep_alive_timeout(
            Duration::from_millis(limits.idle_timeout_ms).saturating_sub(keep_alive),
        )
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        () = s.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                () = s.abort.cancelled() => Ok(()),
            }
        }
        () = s.abort.cancelled() => Ok(()),
    };
    match ended {
        Ok(()) => debug!(peer = %peer, remote = %remote, "HTTP/2 connection closed"),
        Err(e) if !matches!(peer, Identity::Gateway(_)) => {
            info!(peer = %peer, remote = %remote, reason = %e, "agent disconnected")
        }
        Err(_) => {}
    }
}

/// Serves one request stream, whatever transport carries it.
async fn serve_stream<S: SendHalf, R: RecvHalf>(
    send: S,
    mut recv: R,
    state: Arc<State>,
    peer: Identity,
) {
    let (frame, rest) = match read_frame(&mut recv, &state.codec).await {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(e) => {
            debug!(error = %e, "bad first frame");
            refuse(send, &state.codec, ErrorCode::BadRequest, e.to_string()).await;
            return;
        }
    };
    if let Err(why) = permitted(&peer, &frame) {
        debug!(peer = %peer, why, "stream refused");
        refuse(send, &state.codec, ErrorCode::NotPermitted, why.into()).await;
        return;
    }
    match frame {
        Frame::Ping { nonce } => answer(send, &state.codec, &Frame::Pong { nonce }).await,
        Frame::Hello(_) => control(send, FrameStream::new(recv, state.codec, rest), &state).await,
        Frame::RequestHead(head) => forward(send, recv, rest, head, &state).await,
        Frame::PolicyFetch { version } => serve_policy(send, version, &state).await,
        Frame::PolicyBundle { bundle } => accept_push(send, bundle, &state, &peer).await,
        _ => {
            refuse(
                send,
                &state.codec,
                ErrorCode::BadRequest,
                "a stream must start with Hello or RequestHead".into(),
            )
            .await
        }
    }
}

/// Why `head` may not be served here: it names an object that the agent
/// says lives in another region than `region`.
fn object_elsewhere(head: &RequestHead, region: &RegionId) -> Option<String> {
    let named = head
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(HDR_OBJECTS))
        .flat_map(|(_, v)| v.split(','));
    for entry in named {
        let (object, at) = entry.trim().rsplit_once('@').unwrap_or((entry, ""));
        if at != region.as_str() {
            return Some(format!(
                "the request names {object}, which lives in {at}, not in {region}"
            ));
        }
    }
    None
}

/// Whether `peer` may open a stream that starts with `frame`: an agent
/// holds a control stream, sends requests and fetches or relays policy; an
/// operator's admin certificate only pushes policy; the gateway's own
/// certificate only probes. Anyone may ping.
fn permitted(peer: &Identity, frame: &Frame) -> Result<(), &'static str> {
    match (peer, frame) {
        (_, Frame::Ping { .. }) => Ok(()),
        (Identity::Agent(_), _) => Ok(()),
        (Identity::Admin(_), Frame::PolicyBundle { .. }) => Ok(()),
        (Identity::Admin(_), _) => {
            Err("an admin certificate may only push policy, not act as an agent")
        }
        (Identity::Gateway(_), _) => Err("a gateway identity may only probe"),
    }
}

/// The control stream: answer the hello, announce the newest policy, then
/// answer pings and announce every new policy as it arrives.
async fn control<S: SendHalf, R: RecvHalf>(mut send: S, mut frames: FrameStream<R>, state: &State) {
    let hello = Frame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        role: Role::Gateway,
        region: Some(state.region.clone()),
        software: crate::SOFTWARE.into(),
    });
    let mut versions = state.policy.subscribe();
    let mut models = state.advertised.clone();
    let mut out = Vec::new();
    let codec = &state.codec;
    let list = Frame::Models((**models.borrow_and_update()).clone());
    if codec.encode(&hello, &mut out).is_err() || codec.encode(&list, &mut out).is_err() {
        warn!(region = %state.region, "hello or model list too large for a frame");
        return;
    }
    // Always announce, 0 meaning "none": an agent holding something newer
    // then relays it here.
    let version = versions.borrow_and_update().unwrap_or(0);
    if codec
        .encode(&Frame::PolicyAvailable { version }, &mut out)
        .is_err()
    {
        return;
    }
    if send.write(Bytes::from(out)).await.is_err() {
        return;
    }
    loop {
        let reply = tokio::select! {
            f = frames.next() => match f {
                Ok(Some(Frame::Ping { nonce })) => Frame::Pong { nonce },
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            },
            changed = versions.changed() => {
                if changed.is_err() {
                    break;
                }
                match *versions.borrow_and_update() {
                    Some(version) => Frame::PolicyAvailable { version },
                    None => continue,
                }
            }
            changed = models.changed() => {
                if changed.is_err() {
                    break;
                }
                Frame::Models((**models.borrow_and_update()).clone())
            }
        };
        if send_frame(&mut send, codec, &reply, &[]).await.is_err() {
            return;
        }
    }
    send.finish();
}

/// An agent fetches the bundle this gateway announced.
async fn serve_policy<S: SendHalf>(send: S, version: u64, state: &State) {
    match state.policy.current() {
        Some(p) if p.version == Some(version) => {
            let frame = Frame::PolicyBundle {
                bundle: p.bundle.clone(),
            };
            answer(send, &state.codec, &frame).await;
        }
        other => {
            let newest = other.and_then(|p| p.version);
            let msg = format!("policy version {version} is not available (newest: {newest:?})");
            refuse(send, &state.codec, ErrorCode::BadRequest, msg).await;
        }
    }
}

/// An operator pushes a signed bundle, or an agent relays one it got from
/// another gateway: verify, store, activate, announce. The signature, not who
/// delivers the bundle, is what makes a policy valid; relaying lets one push
/// reach every gateway the fleet's agents connect to.
async fn accept_push<S: SendHalf>(send: S, bundle: Vec<u8>, state: &Arc<State>, peer: &Identity) {
    let policy = state.policy.clone();
    let installed = tokio::task::spawn_blocking(move || policy.install(&bundle)).await;
    match installed {
        Ok(Ok(version)) => {
            info!(peer = %peer, version, "policy pushed");
            answer(send, &state.codec, &Frame::PolicyAck { version }).await;
        }
        Ok(Err(e)) => refuse(send, &state.codec, ErrorCode::BadRequest, e.to_string()).await,
        Err(e) => refuse(send, &state.codec, ErrorCode::Internal, e.to_string()).await,
    }
}

/// Answers a stream with one frame and finishes it.
async fn answer<S: SendHalf>(mut send: S, codec: &Codec, frame: &Frame) {
    if send_frame(&mut send, codec, frame, &[]).await.is_ok() {
        send.finish();
    }
}

async fn refuse<S: SendHalf>(send: S, codec: &Codec, code: ErrorCode, message: String) {
    answer(send, codec, &Frame::Error(ErrorFrame { code, message })).await;
}

/// The gateway's own judgement of a request, whatever the agent decided: the
/// body is scanned again and the higher of the two tiers must not exceed what
/// this gateway may forward. Content that cannot be scanned is judged by the
/// agent's tier alone (its policy's `unscannable_tier`). The refusal message
/// names entity types and counts, never values. A body the scanner cannot decode
/// completely is refused as a bad request, never forwarded on a partial look.
fn recheck(
    state: &State,
    head: &RequestHead,
    body: &[u8],
    served: Option<&models::Served>,
) -> Result<(), (ErrorCode, String)> {
    let max_tier = state.models.max_tier(served, state.max_tier);
    let id = head.request_id.as_str();
    let claimed = head.route.tier;
    let headers: Vec<(&str, &str)> = head
        .headers
        .iter()
        .filter(|(k, _)| upstream::FORWARD_REQUEST_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // A body-less request (`GET /v1/models`) has only its headers to judge.
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| *v);
    let seen = match state
        .classifier
        .as_ref()
        .map(|c| c.scan_body(content_type, body, &headers, Tier::Public))
        .transpose()
    {
        Ok(seen) => seen,
        Err(e) => {
            warn!(request_id = id, reason = %e, "request body the gateway cannot scan refused");
            return Err((
                ErrorCode::BadRequest,
                format!(
                    "the gateway for {} cannot scan this request: {e}",
                    state.region
                ),
            ));
        }
    };
    let seen_tier = seen.as_ref().map_or(Tier::Public, |s| s.tier);
    let summary = seen.as_ref().map(|s| s.summary()).unwrap_or_default();
    if seen_tier > claimed {
        warn!(request_id = id, claimed = %claimed, seen = %seen_tier, entities = %summary, "the agent classified this request lower than the gateway does");
    }
    let tier = claimed.max(seen_tier);
    if tier > max_tier {
        warn!(request_id = id, tier = %tier, max_tier = %max_tier, entities = %summary, region = %state.region, "request above this gateway's tier refused");
        let what = if summary.is_empty() {
            String::new()
        } else {
            format!(" ({summary})")
        };
        let to = match served {
            Some(m) if max_tier < state.max_tier => {
                format!(
                    " to {}, which is processed {}",
                    m.name,
                    processed(m.processing)
                )
            }
            _ => String::new(),
        };
        return Err((
            ErrorCode::PolicyDenied,
            format!(
                "the gateway for {} forwards at most {max_tier} data{to}; this request is {tier}{what}",
                state.region
            ),
        ));
    }
    Ok(())
}

/// Where a model is processed, for messages.
fn processed(p: residency_proto::Processing) -> String {
    match p {
        residency_proto::Processing::InRegion => "in the gateway's region".into(),
        residency_proto::Processing::Global => "anywhere (global)".into(),
        other => format!("in {other}"),
    }
}

async fn forward<S: SendHalf, R: RecvHalf>(
    mut send: S,
    mut recv: R,
    rest: Bytes,
    head: RequestHead,
    state: &State,
) {
    let id = head.request_id.as_str();
    // Defence in depth: never serve a request the agent meant for elsewhere.
    if head.route.region != state.region {
        warn!(request_id = id, wanted = %head.route.region, region = %state.region, tier = %head.route.tier, "misrouted request refused");
        let msg = format!(
            "request routed to {} reached the gateway for {}",
            head.route.region, state.region
        );
        refuse(send, &state.codec, ErrorCode::Misrouted, msg).await;
        return;
    }
    // Defence in depth: never serve a request naming an object held elsewhere.
    if let Some(elsewhere) = object_elsewhere(&head, &state.region) {
        warn!(request_id = id, region = %state.region, "request naming an object held in another region refused");
        refuse(send, &state.codec, ErrorCode::Misrouted, elsewhere).await;
        return;
    }
    let stopped = send.stopped();
    tokio::pin!(stopped);
    let body = match read_to_end(&mut recv, rest, state.max_body).await {
        Ok(b) => b,
        Err(e) => {
            debug!(request_id = id, error = %e, "request body not received");
            refuse(send, &state.codec, ErrorCode::BadRequest, e.to_string()).await;
            return;
        }
    };
    // The model the body names must be one this gateway serves, on this
    // path; the provider gets its own name for it.
    let content_type = head
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    let model = match models::model_in(content_type, &body) {
        Ok(m) => m,
        Err(e) => {
            warn!(request_id = id, region = %state.region, reason = %e, "request whose model cannot be told refused");
            refuse(send, &state.codec, ErrorCode::BadRequest, e.to_string()).await;
            return;
        }
    };
    let api = head
        .path
        .split('?')
        .next()
        .and_then(|p| p.strip_prefix("/v1/"))
        .unwrap_or("");
    let served = match model.as_ref().map(|m| state.models.resolve(&m.name, api)) {
        Some(Ok(served)) => served,
        Some(Err(e)) => {
            warn!(request_id = id, region = %state.region, reason = %e, "request for a model this gateway does not serve refused");
            let msg = format!("{e} by the gateway for {}", state.region);
            refuse(send, &state.codec, ErrorCode::ModelNotServed, msg).await;
            return;
        }
        None => None,
    };
    if let Err((code, msg)) = recheck(state, &head, &body, served) {
        refuse(send, &state.codec, code, msg).await;
        return;
    }
    let (body, deployment) = match (served, &model) {
        (Some(m), Some(at)) => {
            let renamed = (at.name != m.upstream)
                .then(|| at.renamed(&body, &m.upstream))
                .flatten();
            (renamed.map_or(body, Bytes::from), Some(m.upstream.as_str()))
        }
        (_, at) => (body, at.as_ref().map(|a| a.name.as_str())),
    };
    let sent = tokio::select! {
        r = state.upstream.send(&head.method, &head.path, deployment, &head.headers, body) => r,
        _ = &mut stopped => {
            debug!(request_id = id, "agent cancelled before the provider answered");
            return;
        }
    };
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let code = match e {
                UpstreamError::BadRequest(_) => ErrorCode::BadRequest,
                UpstreamError::Unavailable(_) => ErrorCode::UpstreamUnavailable,
                UpstreamError::Timeout(_) => ErrorCode::UpstreamTimeout,
                UpstreamError::Credentials(_) => ErrorCode::UpstreamUnavailable,
            };
            warn!(request_id = id, region = %state.region, error = %e, "provider request failed");
            refuse(send, &state.codec, code, e.to_string()).await;
            return;
        }
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter(|(k, _)| FORWARD_RESPONSE_HEADERS.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let head_frame = Frame::ResponseHead(ResponseHead { status, headers });
    let Ok(mut out) = state.codec.encode_to_vec(&head_frame) else {
        refuse(
            send,
            &state.codec,
            ErrorCode::Internal,
            "response head too large".into(),
        )
        .await;
        return;
    };
    let mut body = resp.into_body();
    let mut bytes: u64 = 0;
    // A small answer is usually complete already: send head, body and end of
    // stream together instead of one packet each.
    if let Some(Some(Ok(frame))) = body.frame().now_or_never() {
        if let Ok(data) = frame.into_data() {
            bytes += data.len() as u64;
            out.extend_from_slice(&data);
        }
    }
    if send.write(Bytes::from(out)).await.is_err() {
        return;
    }
    if body.is_end_stream() {
        send.finish();
        debug!(request_id = id, status, bytes, "forwarded");
        return;
    }
    loop {
        let next = tokio::select! {
            f = body.frame() => f,
            _ = &mut stopped => {
                debug!(request_id = id, bytes, "agent cancelled mid-response");
                return;
            }
        };
        match next {
            None => {
                send.finish();
                debug!(request_id = id, status, bytes, "forwarded");
                return;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes += data.len() as u64;
                    if send.write(data).await.is_err() {
                        return;
                    }
                }
            }
            Some(Err(e)) => {
                warn!(request_id = id, bytes, error = %e, "provider failed mid-response");
                send.reset(RESET_UPSTREAM_FAILED);
                return;
            }
        }
    }
}
