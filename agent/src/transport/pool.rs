//! The agent's long-lived QUIC connections, one supervised link per configured
//! gateway, reconnecting with backoff.
//!
//! Each link opens a control stream first, exchanges `Hello` frames (the
//! gateway must say it serves the region the config expects, on top of the
//! certificate check) and then pings on it to measure round-trip time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use residency_proto::{Codec, Frame, Hello, RegionId, Role, PROTOCOL_VERSION};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::tls::TlsMaterial;
use super::{read_frame, write_frame, FrameStream, QuicLimits};
use crate::config::GatewayEndpoint;

/// How long one connection attempt (handshake and hello) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First and largest delay between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the control stream is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// All gateway links of an agent.
#[derive(Debug)]
pub struct GatewayPool {
    links: Vec<Arc<GatewayLink>>,
}

/// One configured gateway and its current connection, if any.
#[derive(Debug)]
pub struct GatewayLink {
    /// The region the config says this gateway serves.
    pub region: RegionId,
    /// `host:port` as configured.
    pub address: String,
    /// The name shown in `x-residency-endpoint`.
    pub name: String,
    server_name: String,
    conn: ArcSwapOption<quinn::Connection>,
    rtt_micros: AtomicU64,
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
    Frame(#[from] super::FrameError),
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

    /// Last measured control-stream round trip, if any.
    pub fn rtt(&self) -> Option<Duration> {
        match self.rtt_micros.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}

impl GatewayPool {
    /// Starts one supervised link per configured gateway. Links run until
    /// `shutdown` is cancelled.
    pub fn start(
        gateways: &[GatewayEndpoint],
        tls: &TlsMaterial,
        limits: &QuicLimits,
        shutdown: CancellationToken,
    ) -> Result<Arc<GatewayPool>, std::io::Error> {
        let v4 = quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0)))?;
        // IPv6 may be disabled on a branch box; only needed for v6 gateways.
        let v6 = quinn::Endpoint::client(SocketAddr::from(([0u16; 8], 0))).ok();
        let mut links = Vec::new();
        for gw in gateways {
            let crypto = tls
                .client_config(&gw.region)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut client = quinn::ClientConfig::new(Arc::new(quic));
            client.transport_config(limits.transport_config());
            let link = Arc::new(GatewayLink {
                region: gw.region.clone(),
                address: gw.address.clone(),
                name: gw.display_name(),
                server_name: gw.tls_server_name(),
                conn: ArcSwapOption::empty(),
                rtt_micros: AtomicU64::new(0),
            });
            tokio::spawn(supervise(
                link.clone(),
                v4.clone(),
                v6.clone(),
                client,
                limits.codec(),
                shutdown.clone(),
            ));
            links.push(link);
        }
        Ok(Arc::new(GatewayPool { links }))
    }

    /// Every link, in configuration order.
    pub fn links(&self) -> &[Arc<GatewayLink>] {
        &self.links
    }

    /// The first link for `region` that is up, with its connection.
    pub fn connection_for(
        &self,
        region: &RegionId,
    ) -> Option<(Arc<GatewayLink>, quinn::Connection)> {
        self.links
            .iter()
            .filter(|l| &l.region == region)
            .find_map(|l| l.connection().map(|c| (l.clone(), c)))
    }

    /// Waits until every link is up or `timeout` passes; returns whether all are.
    pub async fn wait_all_up(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.links.iter().all(|l| l.is_up()) {
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
    client: quinn::ClientConfig,
    codec: Codec,
    shutdown: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let connected = tokio::select! {
            r = connect_once(&link, &v4, v6.as_ref(), &client, &codec) => r,
            () = shutdown.cancelled() => return,
        };
        match connected {
            Ok((conn, control)) => {
                info!(region = %link.region, endpoint = %link.name, address = %conn.remote_address(), attempt, "gateway connected");
                attempt = 0;
                backoff = BACKOFF_MIN;
                link.conn.store(Some(Arc::new(conn.clone())));
                let reason = tokio::select! {
                    e = conn.closed() => e.to_string(),
                    e = ping(&link, control, &codec) => e,
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
                if attempt == 1 || attempt % 10 == 0 {
                    warn!(region = %link.region, endpoint = %link.name, attempt, error = %e, "gateway connect failed");
                } else {
                    debug!(region = %link.region, endpoint = %link.name, attempt, error = %e, "gateway connect failed");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

type Control = (quinn::SendStream, FrameStream);

async fn connect_once(
    link: &GatewayLink,
    v4: &quinn::Endpoint,
    v6: Option<&quinn::Endpoint>,
    client: &quinn::ClientConfig,
    codec: &Codec,
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
        let (mut send, mut recv) = conn.open_bi().await?;
        let hello = Frame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            role: Role::Agent,
            region: None,
            software: crate::SOFTWARE.into(),
        });
        write_frame(&mut send, codec, &hello).await?;
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

/// Pings on the control stream until it fails; returns why.
async fn ping(link: &GatewayLink, (mut send, mut frames): Control, codec: &Codec) -> String {
    let mut nonce: u64 = 0;
    loop {
        nonce += 1;
        let sent = Instant::now();
        if let Err(e) = write_frame(&mut send, codec, &Frame::Ping { nonce }).await {
            return e.to_string();
        }
        loop {
            match frames.next().await {
                Ok(Some(Frame::Pong { nonce: n })) if n == nonce => break,
                Ok(Some(_)) => continue,
                Ok(None) => return "control stream closed by gateway".into(),
                Err(e) => return e.to_string(),
            }
        }
        let rtt = sent.elapsed().as_micros().max(1) as u64;
        link.rtt_micros.store(rtt, Ordering::Relaxed);
        tokio::time::sleep(PING_INTERVAL).await;
    }
}
