//! Wires the stages into a running agent: gateway links, the router and the
//! HTTP ingress, with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::AgentConfig;
use crate::ingress::{self, Ingress};
use crate::policy::active::PolicyState;
use crate::transport::pool::{GatewayPool, LinkSpec};
use crate::transport::tls::{Identity, TlsError, TlsMaterial};

/// A running agent.
#[derive(Debug)]
pub struct AgentHandle {
    links_stop: CancellationToken,
    /// The configuration in force (replaced by a successful reload).
    config: std::sync::Mutex<AgentConfig>,
    ingress: Arc<arc_swap::ArcSwap<Ingress>>,
    geo: Arc<arc_swap::ArcSwap<crate::geo::Geo>>,
    classifier: Arc<crate::classify::Classifier>,
    pins: Arc<crate::plan::pin::Pins>,
    conversations: Arc<crate::ingress::redaction::Conversations>,
    objects: crate::objects::ObjectMap,
    metrics: Arc<crate::admin::metrics::Metrics>,
    local_addr: SocketAddr,
    observe_addr: SocketAddr,
    pool: Arc<GatewayPool>,
    policy: Arc<PolicyState>,
    audit: crate::audit::AuditWriter,
    audit_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// TLS material could not be loaded or used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The policy state could not be opened.
    #[error(transparent)]
    Policy(#[from] crate::policy::active::OpenError),
    /// The audit chain could not be opened.
    #[error("audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The GeoIP database or site map could not be loaded.
    #[error(transparent)]
    Geo(#[from] crate::geo::GeoError),
    /// The admin socket could not be created.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    /// The QUIC client endpoint could not be created.
    #[error("cannot open QUIC endpoint: {0}")]
    Quic(std::io::Error),
    /// The object residency map could not be opened.
    #[error("cannot open the object map in the state directory: {0}")]
    Objects(sled::Error),
    /// `tls.cert` is not an agent certificate.
    #[error("tls.cert names {0}, not an agent identity (urn:residency:agent:NAME)")]
    WrongIdentity(String),
}

/// Why a reload was refused (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new TLS material cannot be loaded or used.
    #[error(transparent)]
    Tls(#[from] crate::transport::tls::TlsError),
    /// `tls.cert` names the wrong kind of identity.
    #[error("tls.cert names {0}, not this process's identity")]
    WrongIdentity(String),
    /// A trusted policy key cannot be read.
    #[error(transparent)]
    Keys(#[from] crate::policy::active::OpenError),
    /// The GeoIP database or site map cannot be loaded.
    #[error(transparent)]
    Geo(#[from] crate::geo::GeoError),
    /// The gateway links cannot take the new configuration.
    #[error("gateways: {0}")]
    Gateways(String),
    /// The file describes another gateway.
    #[error("region changed from {from} to {to}: that is another gateway; restart it")]
    RegionChanged {
        /// The running region.
        from: residency_proto::RegionId,
        /// The file's.
        to: residency_proto::RegionId,
    },
    /// The gateway's upstream or listeners cannot take it.
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayError),
}

impl AgentHandle {
    /// Loads TLS material, starts the gateway links and binds the HTTP listener.
    pub async fn start(cfg: AgentConfig) -> Result<AgentHandle, StartError> {
        let tls = TlsMaterial::load(&cfg.tls)?;
        let ids = tls.identities();
        if !ids.iter().any(|i| matches!(i, Identity::Agent(_))) {
            return Err(StartError::WrongIdentity(format!("{ids:?}")));
        }
        let geo = Arc::new(crate::geo::Geo::load(&cfg.geo)?);
        let geo_swap = Arc::new(arc_swap::ArcSwap::new(geo.clone()));
        let metrics = Arc::new(crate::admin::metrics::Metrics::default());
        let audit_log = crate::audit::AuditLog::open(&crate::audit::audit_dir(&cfg.state_dir))?;
        let (audit, audit_task) = crate::audit::AuditWriter::spawn_with(
            audit_log.clone(),
            crate::audit::WriterConfig {
                // A group someone waits on (durable_before_response) is
                // written at once with whatever queued while the previous
                // fsync ran; records nobody waits on linger up to 10 ms to
                // share one flush and fsync.
                linger: Duration::from_millis(10),
                ..crate::audit::WriterConfig::default()
            },
        )?;
        let policy = Arc::new(PolicyState::open(
            &cfg.policy,
            &cfg.state_dir.join("policy"),
        )?);
        let shutdown = CancellationToken::new();
        let links_stop = CancellationToken::new();
        let pool = GatewayPool::start(
            &link_specs(&cfg),
            &tls,
            &cfg.quic,
            cfg.transport,
            Arc::new(crate::policy::sync::PolicySync::new(policy.clone())),
            Arc::new(crate::geo::attest::EndpointAttestation::new(
                geo_swap.clone(),
            )),
            // Gateway connections outlive the listeners: they close only
            // after in-flight requests have drained.
            links_stop.clone(),
        )
        .map_err(StartError::Quic)?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let classifier = Arc::new(crate::classify::Classifier::new());
        let pins = Arc::new(crate::plan::pin::Pins::new(Duration::from_secs(
            cfg.routing.pin_ttl_secs,
        )));
        let objects = crate::objects::ObjectMap::open(
            &cfg.state_dir.join("objects"),
            cfg.routing.object_ttl(),
        )
        .map_err(StartError::Objects)?;
        let conversations = Arc::new(crate::ingress::redaction::Conversations::default());
        let ingress = Arc::new(arc_swap::ArcSwap::from_pointee(Self::ingress_for(
            &cfg,
            &pool,
            &policy,
            geo,
            &classifier,
            (&pins, &conversations),
            &objects,
            &audit,
            &metrics,
        )));
        let tracker = TaskTracker::new();
        tracker.spawn(sweep_objects(objects.clone(), shutdown.clone()));
        metrics.cert_not_after.set(tls.not_after().unwrap_or(0));
        tracker.spawn(crate::transport::tls::watch_expiry(
            "tls.cert",
            metrics.cert_not_after.clone(),
            shutdown.clone(),
        ));
        let observe_listener = crate::admin::metrics::bind(cfg.observe_listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: cfg.observe_listen,
                source,
            })?;
        let observe_addr = observe_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: cfg.observe_listen,
                source,
            })?;
        tracker.spawn(crate::admin::metrics::serve(
            observe_listener,
            Arc::new(crate::admin::metrics::Observe {
                metrics: metrics.clone(),
                pool: pool.clone(),
                policy: policy.clone(),
                audit: audit.clone(),
            }),
            cfg.limits.local(),
            shutdown.clone(),
            tracker.clone(),
        ));
        let admin_listener = crate::admin::bind(&cfg.admin_socket)?;
        tracker.spawn(crate::admin::serve(
            admin_listener,
            Arc::new(crate::admin::Admin {
                policy: policy.clone(),
                pool: pool.clone(),
                audit_log,
                audit: audit.clone(),
            }),
            cfg.limits.local(),
            metrics.listener("admin"),
            shutdown.clone(),
            tracker.clone(),
        ));
        tracker.spawn(ingress::serve(
            listener,
            ingress.clone(),
            cfg.limits.serve(),
            metrics.listener("api"),
            shutdown.clone(),
            tracker.clone(),
        ));
        info!(listen = %local_addr, gateways = cfg.gateways.len(), admin_socket = %cfg.admin_socket.display(), "agent listening");
        Ok(AgentHandle {
            links_stop,
            config: std::sync::Mutex::new(cfg.clone()),
            ingress,
            geo: geo_swap,
            classifier,
            pins,
            conversations,
            objects,
            metrics,
            local_addr,
            observe_addr,
            pool,
            policy,
            audit,
            audit_task: std::sync::Mutex::new(Some(audit_task)),
            shutdown,
            tracker,
        })
    }

    /// The object residency map.
    pub fn objects(&self) -> &crate::objects::ObjectMap {
        &self.objects
    }

    /// The admin socket (`policy push --agent`, audit export, status).
    pub fn admin_socket(&self) -> std::path::PathBuf {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admin_socket
            .clone()
    }

    /// The bound HTTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The request-serving state for `cfg`, sharing the long-lived parts.
    #[allow(clippy::too_many_arguments)] // the shared parts, each distinct
    fn ingress_for(
        cfg: &AgentConfig,
        pool: &Arc<GatewayPool>,
        policy: &Arc<PolicyState>,
        geo: Arc<crate::geo::Geo>,
        classifier: &Arc<crate::classify::Classifier>,
        (pins, conversations): (
            &Arc<crate::plan::pin::Pins>,
            &Arc<crate::ingress::redaction::Conversations>,
        ),
        objects: &crate::objects::ObjectMap,
        audit: &crate::audit::AuditWriter,
        metrics: &Arc<crate::admin::metrics::Metrics>,
    ) -> Ingress {
        Ingress {
            pool: pool.clone(),
            router: cfg.router(),
            catalogue: cfg.catalogue(),
            classifier: classifier.clone(),
            unscannable_tier: cfg.unscannable_tier,
            policy: policy.clone(),
            geo,
            pins: pins.clone(),
            conversations: conversations.clone(),
            objects: objects.clone(),
            pin_by_api_key: cfg.routing.pin_by_api_key,
            cors_origins: cfg.ingress.cors_origins.clone(),
            audit: audit.clone(),
            audit_sync: cfg.audit.durable_before_response,
            metrics: metrics.clone(),
            codec: cfg.quic.codec(),
            max_body: cfg.max_body_bytes,
            body_timeouts: cfg.limits.body(),
        }
    }

    /// Applies a changed configuration without dropping connections or
    /// requests. Trusted policy keys, TLS certificates, QUIC limits (for new
    /// connections), gateways (added ones connect, removed ones finish their
    /// requests first), regions, routing, geography (site map, GeoIP
    /// database, proxies, attestation for new connections), body limit,
    /// unscannable tier, body read timeouts and audit durability take effect for requests that
    /// start after the reload; a request already running finishes under the
    /// configuration it started with. Returns the changed settings that need a
    /// restart (listeners and state). On error nothing changes.
    pub fn reload(&self, cfg: &AgentConfig) -> Result<Vec<&'static str>, ReloadError> {
        let mut current = self.config.lock().unwrap_or_else(|p| p.into_inner());
        let tls = TlsMaterial::load(&cfg.tls)?;
        let ids = tls.identities();
        if !ids.iter().any(|i| matches!(i, Identity::Agent(_))) {
            return Err(ReloadError::WrongIdentity(format!("{ids:?}")));
        }
        let keys = crate::policy::active::load_trusted_keys(&cfg.policy.trusted_keys)?;
        let geo = Arc::new(crate::geo::Geo::load(&cfg.geo)?);
        // The last fallible step; everything after it only swaps.
        self.pool
            .reconfigure(&link_specs(cfg), &tls, &cfg.quic)
            .map_err(ReloadError::Gateways)?;
        self.policy.set_trusted_keys(keys);
        self.metrics
            .cert_not_after
            .set(tls.not_after().unwrap_or(0));
        self.geo.store(geo.clone());
        self.pins
            .set_ttl(Duration::from_secs(cfg.routing.pin_ttl_secs));
        self.ingress.store(Arc::new(Self::ingress_for(
            cfg,
            &self.pool,
            &self.policy,
            geo,
            &self.classifier,
            (&self.pins, &self.conversations),
            &self.objects,
            &self.audit,
            &self.metrics,
        )));
        let mut restart = Vec::new();
        if current.listen != cfg.listen {
            restart.push("listen");
        }
        if current.observe_listen != cfg.observe_listen {
            restart.push("observe_listen");
        }
        if current.worker_threads != cfg.worker_threads {
            restart.push("worker_threads");
        }
        if current.state_dir != cfg.state_dir {
            restart.push("state_dir");
        }
        if current.admin_socket != cfg.admin_socket {
            restart.push("admin_socket");
        }
        if current.policy.history != cfg.policy.history
            || current.policy.builtin_baseline != cfg.policy.builtin_baseline
        {
            restart.push("policy.history/builtin_baseline");
        }
        if current.transport != cfg.transport {
            restart.push("transport");
        }
        if current.limits.serve() != cfg.limits.serve()
            || current.limits.local() != cfg.limits.local()
        {
            restart.push("limits (connections, header and keep-alive timeouts)");
        }
        // What needs a restart keeps its running value, so a later reload
        // compares against what is really in force.
        let mut applied = cfg.clone();
        applied.listen = current.listen;
        applied.observe_listen = current.observe_listen;
        applied.worker_threads = current.worker_threads;
        applied.state_dir = current.state_dir.clone();
        applied.admin_socket = current.admin_socket.clone();
        applied.policy.history = current.policy.history;
        applied.policy.builtin_baseline = current.policy.builtin_baseline;
        applied.transport = current.transport;
        // Body timeouts follow the reload; the listener keeps the rest.
        applied.limits = crate::config::LimitsConfig {
            body_read_timeout_secs: cfg.limits.body_read_timeout_secs,
            body_idle_timeout_secs: cfg.limits.body_idle_timeout_secs,
            ..current.limits.clone()
        };
        *current = applied;
        info!(gateways = cfg.gateways.len(), needs_restart = ?restart, "configuration reloaded");
        Ok(restart)
    }

    /// Whether the request path answers: a real HTTP request to the agent's
    /// own listener (`GET /healthz`), within a second.
    pub async fn request_path_alive(&self) -> bool {
        let addr = self.local_addr;
        let probe = async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake::<
                _,
                http_body_util::Empty<bytes::Bytes>,
            >(hyper_util::rt::TokioIo::new(tcp))
            .await
            .ok()?;
            tokio::spawn(conn);
            let req = http::Request::get("/healthz")
                .header(http::header::HOST, "localhost")
                .body(http_body_util::Empty::new())
                .ok()?;
            let resp = sender.send_request(req).await.ok()?;
            Some(resp.status() == http::StatusCode::OK)
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), probe).await,
            Ok(Some(true))
        )
    }

    /// The bound address of `/healthz`, `/readyz`, `/metrics`, `/v1/status`.
    pub fn observe_addr(&self) -> SocketAddr {
        self.observe_addr
    }

    /// `http://ADDR/v1`, what an OpenAI SDK's `base_url` should be.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.local_addr)
    }

    /// The gateway links.
    pub fn pool(&self) -> &Arc<GatewayPool> {
        &self.pool
    }

    /// The policy state.
    pub fn policy(&self) -> &Arc<PolicyState> {
        &self.policy
    }

    /// Waits until every configured gateway is connected, up to `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        self.pool.wait_all_up(timeout).await
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then
    /// closes gateway connections.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("in-flight requests did not finish in time");
        }
        self.links_stop.cancel();
        // Every record queued so far is made durable before exit.
        self.audit.shutdown().await;
        let task = self
            .audit_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The gateway links `cfg` describes, with each region's jurisdiction from
/// its catalogue.
fn link_specs(cfg: &AgentConfig) -> Vec<LinkSpec> {
    let catalogue = cfg.catalogue();
    cfg.gateways
        .iter()
        .map(|gw| LinkSpec {
            region: gw.region.clone(),
            jurisdiction: catalogue.jurisdiction(&gw.region),
            address: gw.address.clone(),
            tcp_address: gw.tcp_address(),
            name: gw.display_name(),
            server_name: gw.tls_server_name(),
        })
        .collect()
}

/// How often expired object map entries are removed.
const OBJECT_SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Removes expired object map entries every hour until `shutdown`.
async fn sweep_objects(objects: crate::objects::ObjectMap, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(OBJECT_SWEEP_EVERY) => {}
            () = shutdown.cancelled() => return,
        }
        let map = objects.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if let Ok(n) = tokio::task::spawn_blocking(move || map.sweep(now)).await {
            if n > 0 {
                info!(expired = n, "object map entries removed");
            }
        }
    }
}
