//! Configuration files for the agent (`agent.toml`) and the gateway
//! (`gateway.toml`): serde structs that refuse unknown fields, then a
//! `validate()` step that names the field at fault and the reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use residency_proto::RegionId;
use serde::Deserialize;

use crate::plan::catalogue::{Catalogue, RegionEntry};
use crate::policy::active::PolicyConfig;
use crate::transport::tls::TlsFiles;
use crate::transport::QuicLimits;

/// Default largest request body the agent accepts (8 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// `agent.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where applications connect (HTTP/1.1, OpenAI API).
    #[serde(default = "default_agent_listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// The region requests go to when nothing requires otherwise.
    pub default_region: RegionId,
    /// Tier given to requests with content that cannot be scanned (images,
    /// audio, files). Fail closed: `restricted` unless you know better.
    #[serde(default = "default_unscannable_tier")]
    pub unscannable_tier: residency_proto::Tier,
    /// Regions that restricted and confidential requests may use under the
    /// built-in rule; default: every known region in India.
    #[serde(default)]
    pub india_regions: Option<Vec<RegionId>>,
    /// Regions this site adds to the built-in catalogue.
    #[serde(rename = "region", default)]
    pub regions: Vec<RegionEntry>,
    /// The agent's identity and the fleet CA.
    pub tls: TlsFiles,
    /// The gateways to keep connections to.
    #[serde(rename = "gateway", default)]
    pub gateways: Vec<GatewayEndpoint>,
    /// QUIC limits for gateway connections.
    #[serde(default)]
    pub quic: QuicLimits,
    /// Where the policy history and last-known-good bundle are kept.
    #[serde(default = "default_agent_state_dir")]
    pub state_dir: PathBuf,
    /// Unix socket for local administration (`policy push --agent`, status).
    /// Only processes that can open this path can use it.
    #[serde(default = "default_admin_socket")]
    pub admin_socket: PathBuf,
    /// Signed policy: trusted keys and fallbacks.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Where the data subject is: site map, GeoIP database, site country;
    /// and gateway address attestation.
    #[serde(default)]
    pub geo: crate::geo::GeoConfig,
    /// Conversation pinning.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// The audit chain.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Local-only listener for `/healthz`, `/readyz`, `/metrics` and
    /// `/v1/status`.
    #[serde(default = "default_observe_listen")]
    pub observe_listen: SocketAddr,
    /// Threads running requests. One (the default) gives the lowest added
    /// latency and memory for a branch's traffic; raise it for a busy site.
    /// Audit and policy storage run on their own threads either way.
    #[serde(default = "default_agent_workers")]
    pub worker_threads: usize,
    /// Connection limits and read timeouts of the API listener.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// QUIC, HTTP/2 over TCP, or QUIC with HTTP/2 fallback.
    #[serde(default)]
    pub transport: TransportConfig,
    /// Browser access to the API.
    #[serde(default)]
    pub ingress: IngressConfig,
}

/// `[ingress]` in agent.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngressConfig {
    /// Web origins (`https://app.bank.example`) whose pages may call the API
    /// from a browser: their CORS preflights are answered and their answers
    /// carry `access-control-allow-origin`. Empty (the default): none.
    pub cors_origins: Vec<String>,
}

fn default_agent_workers() -> usize {
    1
}

fn check_workers(n: Option<usize>) -> Result<(), String> {
    match n {
        Some(0) => Err("must be at least 1".into()),
        Some(n) if n > 256 => Err(format!("{n} is more than 256")),
        _ => Ok(()),
    }
}

/// `[audit]` in agent.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// A response completes only after its record is durable (an fsync per
    /// group commit, a few milliseconds). `false` writes the record right
    /// after the response instead: faster, but a crash can lose the last
    /// batch of records.
    pub durable_before_response: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            durable_before_response: true,
        }
    }
}

/// `[limits]` in agent.toml: what the API listener holds and how long it
/// waits. The health, metrics and admin listeners have their own fixed,
/// smaller limits, so they keep answering when the API listener is full.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections open at once; the excess gets a 503 at once and is closed.
    /// Keep it well under the process's open-file limit (`LimitNOFILE`), which
    /// also covers gateway connections, the audit store and the other listeners.
    pub max_connections: usize,
    /// Connections from one IP address at once (0: only the total applies);
    /// the excess gets a 429. Applications on the agent's own host all share
    /// 127.0.0.1.
    pub max_connections_per_peer: usize,
    /// Seconds a client may take to send a request's headers, counted from
    /// the connection's start or from the first byte of the request.
    pub header_read_timeout_secs: u64,
    /// Seconds a client may take to send a whole request body (408 beyond).
    pub body_read_timeout_secs: u64,
    /// Seconds a request body may stall without a byte arriving (408 beyond).
    pub body_idle_timeout_secs: u64,
    /// Seconds a kept-alive connection may sit without a request.
    pub keep_alive_idle_secs: u64,
    /// Connections each local listener (health and metrics, the admin
    /// socket) holds at once, apart from the API's.
    pub local_max_connections: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 512,
            max_connections_per_peer: 256,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 60,
            body_idle_timeout_secs: 15,
            keep_alive_idle_secs: 60,
            local_max_connections: 64,
        }
    }
}

impl LimitsConfig {
    /// The accept loop's share.
    pub fn serve(&self) -> crate::serve::Limits {
        crate::serve::Limits {
            max_connections: self.max_connections,
            max_per_peer: self.max_connections_per_peer,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            keep_alive_idle: Duration::from_secs(self.keep_alive_idle_secs),
        }
    }

    /// The local listeners' limits: `local_max_connections`, the API's
    /// timeouts, no per-peer cap.
    pub fn local(&self) -> crate::serve::Limits {
        crate::serve::Limits {
            max_connections: self.local_max_connections,
            max_per_peer: 0,
            ..self.serve()
        }
    }

    /// The body reader's share.
    pub fn body(&self) -> crate::ingress::read::BodyTimeouts {
        crate::ingress::read::BodyTimeouts {
            total: Duration::from_secs(self.body_read_timeout_secs),
            idle: Duration::from_secs(self.body_idle_timeout_secs),
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_connections == 0 {
            return Err(("limits.max_connections", "must be at least 1".into()));
        }
        if self.max_connections > 1_000_000 {
            return Err((
                "limits.max_connections",
                format!("{} is more than 1000000", self.max_connections),
            ));
        }
        if !(1..=10_000).contains(&self.local_max_connections) {
            return Err((
                "limits.local_max_connections",
                format!("{} is not between 1 and 10000", self.local_max_connections),
            ));
        }
        if self.max_connections_per_peer > self.max_connections {
            return Err((
                "limits.max_connections_per_peer",
                format!(
                    "{} is more than limits.max_connections ({})",
                    self.max_connections_per_peer, self.max_connections
                ),
            ));
        }
        for (field, v) in [
            (
                "limits.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("limits.body_read_timeout_secs", self.body_read_timeout_secs),
            ("limits.body_idle_timeout_secs", self.body_idle_timeout_secs),
            ("limits.keep_alive_idle_secs", self.keep_alive_idle_secs),
        ] {
            if v == 0 {
                return Err((field, "must be at least 1 second".into()));
            }
            if v > 86_400 {
                return Err((field, format!("{v} is more than a day (86400)")));
            }
        }
        Ok(())
    }
}

/// `[routing]` in agent.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// How long a conversation that carried restricted data stays pinned to
    /// the jurisdiction it was sent to, in seconds (0 turns pinning off).
    pub pin_ttl_secs: u64,
    /// Also treat all requests made with one API key (and no conversation
    /// signal) as one conversation. Off by default: after one restricted
    /// request, every later request of that application would stay pinned.
    pub pin_by_api_key: bool,
    /// How long the region of a stored object (file, batch, vector store,
    /// stored response, conversation) is remembered, in days.
    pub object_ttl_days: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            pin_ttl_secs: 3600,
            pin_by_api_key: false,
            object_ttl_days: 30,
        }
    }
}

impl RoutingConfig {
    /// How long a stored object's region is remembered.
    pub fn object_ttl(&self) -> Duration {
        Duration::from_secs(self.object_ttl_days.saturating_mul(86_400))
    }
}

/// `listen_tcp` in gateway.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ListenTcp {
    /// On (on `listen`'s address and port number) or off.
    On(bool),
    /// On, at this address.
    At(SocketAddr),
}

impl Default for ListenTcp {
    fn default() -> Self {
        ListenTcp::On(true)
    }
}

impl ListenTcp {
    /// Where to listen, given the bound UDP address; `None` when off.
    pub fn address(self, udp: SocketAddr) -> Option<SocketAddr> {
        match self {
            ListenTcp::On(true) => Some(udp),
            ListenTcp::On(false) => None,
            ListenTcp::At(a) => Some(a),
        }
    }
}

/// How the agent reaches its gateways: `[transport]` in agent.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// `auto` (QUIC, falling back to HTTP/2 over TCP when QUIC cannot
    /// connect), `quic` (never TCP) or `h2` (never UDP).
    pub mode: TransportMode,
    /// How long a QUIC handshake may take before `auto` falls back.
    pub quic_timeout_ms: u64,
    /// How often a gateway reached over HTTP/2 is tried over QUIC again
    /// (with jitter), in seconds.
    pub reprobe_secs: u64,
}

/// `[transport] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportMode {
    /// QUIC first, HTTP/2 when QUIC cannot connect.
    Auto,
    /// QUIC only.
    Quic,
    /// HTTP/2 over TCP only.
    H2,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            mode: TransportMode::Auto,
            quic_timeout_ms: 3_000,
            reprobe_secs: 300,
        }
    }
}

impl TransportConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(100..=60_000).contains(&self.quic_timeout_ms) {
            return Err((
                "transport.quic_timeout_ms",
                format!("{} is not between 100 and 60000", self.quic_timeout_ms),
            ));
        }
        if !(1..=86_400).contains(&self.reprobe_secs) {
            return Err((
                "transport.reprobe_secs",
                format!("{} is not between 1 and 86400", self.reprobe_secs),
            ));
        }
        Ok(())
    }
}

/// One gateway the agent connects to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayEndpoint {
    /// The region this gateway serves; its certificate must name it.
    pub region: RegionId,
    /// `host:port` of the gateway's QUIC listener.
    pub address: String,
    /// Name expected in the gateway certificate's DNS/IP names (default: the
    /// host part of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Name shown in `x-residency-endpoint` (default: `address`).
    #[serde(default)]
    pub name: Option<String>,
    /// `host:port` of the gateway's HTTP/2 (TCP) listener, used when QUIC
    /// cannot connect (default: `address`, the same port number on TCP).
    #[serde(default)]
    pub tcp_address: Option<String>,
}

/// `gateway.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The region this gateway serves; its certificate must name it.
    pub region: RegionId,
    /// UDP address for QUIC.
    #[serde(default = "default_gateway_listen")]
    pub listen: SocketAddr,
    /// The HTTP/2-over-TLS listener on TCP for agents whose network drops
    /// UDP: `true` (the default) listens on `listen`'s address and port
    /// number, an address listens there instead, `false` turns it off.
    #[serde(default)]
    pub listen_tcp: ListenTcp,
    /// The gateway's identity and the fleet CA.
    pub tls: TlsFiles,
    /// The model provider's in-region endpoint.
    pub upstream: UpstreamConfig,
    /// QUIC limits for agent connections.
    #[serde(default)]
    pub quic: QuicLimits,
    /// Where the policy history and last-known-good bundle are kept.
    #[serde(default = "default_gateway_state_dir")]
    pub state_dir: PathBuf,
    /// Signed policy that this gateway accepts and hands out to agents.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The gateway's own check of each request, whatever the agent decided.
    #[serde(default)]
    pub recheck: RecheckConfig,
    /// Threads serving agents (default: one per CPU).
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// Jurisdiction of `region` when it is not in the built-in catalogue
    /// (a private data centre, a newer provider region), e.g. `IN`.
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// Nearest city of `region` when it is not in the built-in catalogue.
    #[serde(default)]
    pub city: Option<String>,
    /// `[[model]]`: the models this gateway serves and what the provider
    /// calls them. With none, any model name is passed on as sent.
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// One `[[model]]` in gateway.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The name applications send in `model`, e.g. `gpt-4o`.
    pub name: String,
    /// Other names applications may send for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// What the provider calls it: the Azure deployment name, the Bedrock or
    /// Vertex model id. Default: `name`.
    #[serde(default)]
    pub upstream: Option<String>,
    /// The API paths below `/v1/` it serves, e.g. `["chat/completions"]`.
    /// Default: every path.
    #[serde(default)]
    pub apis: Vec<String>,
    /// Where the provider processes its requests: `"region"` (the gateway's
    /// own region), a jurisdiction such as `"IN"` (a data zone), or
    /// `"global"` (a cross-region inference profile, a global deployment).
    pub processing: String,
    /// Serve it even though it is processed outside the gateway's
    /// jurisdiction (refused at startup otherwise).
    #[serde(default)]
    pub allow_processing_outside: bool,
}

/// `[upstream] kind`: which cloud's API the provider speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamKind {
    /// An OpenAI-compatible base URL with a bearer key.
    #[default]
    Openai,
    /// Azure OpenAI: a resource endpoint, the `api-key` header or an Entra ID
    /// token, deployments.
    AzureOpenai,
    /// AWS Bedrock's OpenAI-compatible endpoint: a Bedrock API key or SigV4.
    Bedrock,
    /// Google Vertex AI's OpenAI-compatible endpoint: OAuth2 tokens from a
    /// service-account key.
    Vertex,
}

impl UpstreamKind {
    /// The name written in gateway.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Openai => "openai",
            UpstreamKind::AzureOpenai => "azure-openai",
            UpstreamKind::Bedrock => "bedrock",
            UpstreamKind::Vertex => "vertex",
        }
    }
}

/// `[upstream] surface` for Azure OpenAI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AzureSurface {
    /// `/openai/v1/…`, the deployment named in the body's `model`.
    #[default]
    V1,
    /// `/openai/deployments/{deployment}/…?api-version=…`.
    Deployments,
}

/// `[upstream] auth` for Bedrock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BedrockAuth {
    /// A Bedrock API key, sent as a bearer token.
    #[default]
    ApiKey,
    /// AWS SigV4 with credentials from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    Sigv4,
}

/// `[recheck]` in gateway.toml: defence in depth against an agent that
/// classified or routed wrongly.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecheckConfig {
    /// Scan each request body with the agents' classifier and judge the
    /// request by the higher of the two tiers.
    pub classify: bool,
    /// The most sensitive tier this gateway forwards. Default: `restricted`
    /// for a region in India, `confidential` anywhere else, so restricted
    /// data is refused abroad even if an agent's policy would send it.
    pub max_tier: Option<residency_proto::Tier>,
}

impl Default for RecheckConfig {
    fn default() -> Self {
        RecheckConfig {
            classify: true,
            max_tier: None,
        }
    }
}

/// Where a gateway forwards requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Which cloud's API the provider speaks (default `openai`).
    #[serde(default)]
    pub kind: UpstreamKind,
    /// Base URL: required for `openai` (e.g. `https://api.example.com/v1`);
    /// for the other kinds it replaces the endpoint derived from the region
    /// (a private endpoint, a proxy).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The provider API key, written in the file (prefer `api_key_env`):
    /// the bearer key (`openai`), the `api-key` header (`azure-openai`), the
    /// Bedrock API key (`bedrock`).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Name of the environment variable holding the provider API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `azure-openai`: the resource endpoint, e.g.
    /// `https://contoso-pune.openai.azure.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `azure-openai`: `v1` (default) or `deployments`.
    #[serde(default)]
    pub surface: AzureSurface,
    /// `azure-openai`: the `api-version` query, required with
    /// `surface = "deployments"`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `azure-openai`: an environment variable holding an Entra ID access
    /// token, sent as a bearer token instead of `api-key` (read at start).
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// `azure-openai`: a file holding an Entra ID access token, re-read
    /// every 30 seconds, so whatever renews the token can rewrite it.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// `bedrock`: `api-key` (default) or `sigv4`.
    #[serde(default)]
    pub auth: BedrockAuth,
    /// `bedrock`: the AWS region (default: from an `aws:` gateway region);
    /// `vertex`: the location (default: from a `gcp:` gateway region).
    #[serde(default)]
    pub cloud_region: Option<String>,
    /// `vertex`: the Google Cloud project id.
    #[serde(default)]
    pub project: Option<String>,
    /// `vertex`: the service-account JSON key file.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for the provider, besides the
    /// built-in web roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// How long to wait for the provider's response headers, in seconds.
    #[serde(default = "default_upstream_timeout")]
    pub timeout_secs: u64,
    /// Largest request body forwarded, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// How long an idle connection to the provider is kept for reuse, in
    /// seconds; it is closed after that.
    #[serde(default = "default_upstream_idle")]
    pub idle_timeout_secs: u64,
    /// Most idle connections kept per provider host; more are closed once
    /// their response is done.
    #[serde(default = "default_upstream_max_idle")]
    pub max_idle_per_host: usize,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong or unknown field.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line, column and field.
        message: String,
    },
    /// A value is out of range or inconsistent; names the field.
    #[error("{path}: {field}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field at fault, e.g. `gateway[1].address`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn default_agent_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_gateway_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 4433))
}

fn default_observe_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}

fn default_agent_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/residency-agent")
}

fn default_gateway_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/residency-gateway")
}

fn default_admin_socket() -> PathBuf {
    PathBuf::from("/run/residency-agent/admin.sock")
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

fn default_unscannable_tier() -> residency_proto::Tier {
    residency_proto::Tier::Restricted
}

fn default_upstream_timeout() -> u64 {
    600
}

fn default_upstream_idle() -> u64 {
    90
}

fn default_upstream_max_idle() -> usize {
    32
}

/// `[[model]] processing`: `region`, `global` or a jurisdiction code.
fn parse_processing(s: &str) -> Result<residency_proto::Processing, String> {
    use residency_proto::Processing;
    match s {
        "region" => Ok(Processing::InRegion),
        "global" => Ok(Processing::Global),
        code => residency_proto::Jurisdiction::new(code)
            .map(Processing::Within)
            .ok_or_else(|| {
                format!("{code:?}: write \"region\", \"global\" or a jurisdiction such as \"IN\"")
            }),
    }
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(path, &text)
}

fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

fn resolve(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

impl TlsFiles {
    fn resolve_relative_to(&mut self, base: &Path) {
        resolve(base, &mut self.ca);
        resolve(base, &mut self.cert);
        resolve(base, &mut self.key);
    }
}

impl GatewayEndpoint {
    /// The host part of `address`.
    fn host(&self) -> &str {
        let a = self.address.as_str();
        if let Some(rest) = a.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    }

    /// The TLS server name to check the certificate against.
    pub fn tls_server_name(&self) -> String {
        self.server_name
            .clone()
            .unwrap_or_else(|| self.host().to_owned())
    }

    /// `host:port` of the gateway's HTTP/2 listener.
    pub fn tcp_address(&self) -> String {
        self.tcp_address
            .clone()
            .unwrap_or_else(|| self.address.clone())
    }

    /// The name shown in responses and logs.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.address.clone())
    }
}

impl AgentConfig {
    /// Reads, parses and validates `agent.toml`. Relative paths in it are
    /// relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: AgentConfig = read_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.tls.resolve_relative_to(base);
        resolve(base, &mut cfg.state_dir);
        resolve(base, &mut cfg.admin_socket);
        cfg.policy
            .trusted_keys
            .iter_mut()
            .for_each(|k| resolve(base, k));
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Parses and validates config text (paths are taken as written).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let path = Path::new("agent.toml");
        let cfg: AgentConfig = parse_toml(path, text)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks values parse could not; names the field at fault.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            reason,
        };
        if self.max_body_bytes < 1024 {
            return Err(invalid("max_body_bytes", "must be at least 1024".into()));
        }
        check_workers(Some(self.worker_threads)).map_err(|r| invalid("worker_threads", r))?;
        self.limits
            .validate()
            .map_err(|(field, reason)| invalid(field, reason))?;
        self.transport
            .validate()
            .map_err(|(field, reason)| invalid(field, reason))?;
        for (i, o) in self.ingress.cors_origins.iter().enumerate() {
            let scheme_end = o.find("://").map_or(0, |i| i + 3);
            if !(o.starts_with("https://") || o.starts_with("http://"))
                || o.len() == scheme_end
                || o[scheme_end..].contains(['/', ' ', '*'])
            {
                return Err(invalid(
                    &format!("ingress.cors_origins[{i}]"),
                    format!("{o:?} must be an origin such as \"https://app.bank.example\" (scheme and host, no path, no wildcard)"),
                ));
            }
        }
        if self.gateways.is_empty() {
            return Err(invalid(
                "gateway",
                "at least one [[gateway]] is required".into(),
            ));
        }
        for (i, gw) in self.gateways.iter().enumerate() {
            if !gw.address.contains(':') || gw.host().is_empty() {
                return Err(invalid(
                    &format!("gateway[{i}].address"),
                    format!("{:?} must be host:port", gw.address),
                ));
            }
            let port = gw.address.rsplit_once(':').map_or("", |(_, p)| p);
            if port.parse::<u16>().is_err() {
                return Err(invalid(
                    &format!("gateway[{i}].address"),
                    format!("{:?} has no valid port", gw.address),
                ));
            }
            if let Some(tcp) = &gw.tcp_address {
                let port = tcp.rsplit_once(':').map_or("", |(_, p)| p);
                if port.parse::<u16>().is_err() {
                    return Err(invalid(
                        &format!("gateway[{i}].tcp_address"),
                        format!("{tcp:?} must be host:port"),
                    ));
                }
            }
            if rustls::pki_types::ServerName::try_from(gw.tls_server_name()).is_err() {
                return Err(invalid(
                    &format!("gateway[{i}].server_name"),
                    format!(
                        "{:?} is not a valid DNS name or IP address",
                        gw.tls_server_name()
                    ),
                ));
            }
        }
        if !self
            .gateways
            .iter()
            .any(|g| g.region == self.default_region)
        {
            return Err(invalid(
                "default_region",
                format!("no [[gateway]] serves {}", self.default_region),
            ));
        }
        self.quic
            .validate("quic")
            .map_err(|reason| invalid("quic", reason))?;
        self.geo.validate().map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            field: "geo".into(),
            reason: e.to_string(),
        })?;
        let catalogue = self.catalogue_checked(path)?;
        for (i, gw) in self.gateways.iter().enumerate() {
            if !catalogue.contains(&gw.region) {
                return Err(invalid(
                    &format!("gateway[{i}].region"),
                    format!(
                        "{} is not in the region catalogue; define it with a [[region]] entry",
                        gw.region
                    ),
                ));
            }
        }
        for (i, r) in self.india_regions.iter().flatten().enumerate() {
            if catalogue.jurisdiction(r) != Some(residency_proto::Jurisdiction::IN) {
                return Err(invalid(
                    &format!("india_regions[{i}]"),
                    format!("{r} is not a region in India"),
                ));
            }
        }
        Ok(())
    }

    fn catalogue_checked(&self, path: &Path) -> Result<Catalogue, ConfigError> {
        Catalogue::new(&self.regions).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            field: format!("region[{}].{}", e.index, e.field),
            reason: e.reason,
        })
    }

    /// The built-in region catalogue extended by this file's `[[region]]`s.
    pub fn catalogue(&self) -> Catalogue {
        // validate() has checked the entries.
        Catalogue::new(&self.regions).unwrap_or_default()
    }

    /// The regions the built-in rule lets restricted and confidential
    /// requests use: as configured, else every known region in India.
    pub fn india_regions(&self) -> Vec<RegionId> {
        if let Some(r) = &self.india_regions {
            return r.clone();
        }
        let catalogue = self.catalogue();
        residency_proto::region::CATALOGUE
            .iter()
            .filter_map(|r| RegionId::new(r.id).ok())
            .chain(self.regions.iter().map(|r| r.id.clone()))
            .filter(|r| catalogue.jurisdiction(r) == Some(residency_proto::Jurisdiction::IN))
            .collect()
    }

    /// The built-in rule over this file's gateway regions, which also orders
    /// the regions a policy allows equally (`default_region` first).
    pub fn router(&self) -> crate::plan::Router {
        crate::plan::Router::new(
            self.default_region.clone(),
            self.india_regions(),
            self.gateways.iter().map(|g| g.region.clone()).collect(),
        )
    }
}

impl GatewayConfig {
    /// Reads, parses and validates `gateway.toml`. Relative paths in it are
    /// relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: GatewayConfig = read_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.tls.resolve_relative_to(base);
        if let Some(ca) = cfg.upstream.ca.as_mut() {
            resolve(base, ca);
        }
        if let Some(c) = cfg.upstream.credentials.as_mut() {
            resolve(base, c);
        }
        if let Some(f) = cfg.upstream.bearer_token_file.as_mut() {
            resolve(base, f);
        }
        resolve(base, &mut cfg.state_dir);
        cfg.policy
            .trusted_keys
            .iter_mut()
            .for_each(|k| resolve(base, k));
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks values parse could not; names the field at fault.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            reason,
        };
        check_workers(self.worker_threads).map_err(|r| invalid("worker_threads", r))?;
        self.validate_upstream(&invalid)?;
        self.validate_models(&invalid)?;
        if self.upstream.timeout_secs == 0 {
            return Err(invalid(
                "upstream.timeout_secs",
                "must be at least 1".into(),
            ));
        }
        if self.upstream.idle_timeout_secs == 0 {
            return Err(invalid(
                "upstream.idle_timeout_secs",
                "must be at least 1 (idle provider connections are closed after it)".into(),
            ));
        }
        self.quic
            .validate("quic")
            .map_err(|reason| invalid("quic", reason))?;
        match (self.region.catalogue_entry(), &self.jurisdiction) {
            (None, None) => {
                return Err(invalid(
                    "jurisdiction",
                    format!(
                        "{} is not in the built-in region catalogue; say where it is with jurisdiction = \"IN\" (and city)",
                        self.region
                    ),
                ))
            }
            (Some(known), Some(j)) if known.jurisdiction.as_str() != j => {
                return Err(invalid(
                    "jurisdiction",
                    format!(
                        "{} is built in with jurisdiction {}, not {j:?}",
                        self.region, known.jurisdiction
                    ),
                ))
            }
            _ => {}
        }
        self.catalogue_checked()
            .map_err(|e| invalid("jurisdiction", e.reason))?;
        Ok(())
    }

    /// `[upstream]`, by kind: the fields each kind needs, and only those.
    fn validate_upstream(
        &self,
        invalid: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let u = &self.upstream;
        let kind = u.kind.as_str();
        let url_field = |field: &str, value: &str| -> Result<(), ConfigError> {
            let url: http::Uri = value
                .parse()
                .map_err(|e| invalid(field, format!("{value:?} is not a URL: {e}")))?;
            match url.scheme_str() {
                Some("http" | "https") if url.host().is_some() => Ok(()),
                _ => Err(invalid(
                    field,
                    format!("{value:?} must be an absolute http:// or https:// URL"),
                )),
            }
        };
        let not_for = |field: &str, set: bool| -> Result<(), ConfigError> {
            if set {
                return Err(invalid(
                    &format!("upstream.{field}"),
                    format!("is not used with kind = \"{kind}\""),
                ));
            }
            Ok(())
        };
        if let Some(b) = &u.base_url {
            url_field("upstream.base_url", b)?;
        }
        if u.api_key.is_some() && u.api_key_env.is_some() {
            return Err(invalid(
                "upstream.api_key_env",
                "set either api_key or api_key_env, not both".into(),
            ));
        }
        for (field, var) in [
            ("upstream.api_key_env", &u.api_key_env),
            ("upstream.bearer_token_env", &u.bearer_token_env),
        ] {
            if let Some(var) = var {
                if std::env::var_os(var).is_none() {
                    return Err(invalid(
                        field,
                        format!("environment variable {var} is not set"),
                    ));
                }
            }
        }
        let has_key = u.api_key.is_some() || u.api_key_env.is_some();
        let azure = u.kind == UpstreamKind::AzureOpenai;
        not_for("endpoint", !azure && u.endpoint.is_some())?;
        not_for("surface", !azure && u.surface != AzureSurface::default())?;
        not_for("api_version", !azure && u.api_version.is_some())?;
        not_for("bearer_token_env", !azure && u.bearer_token_env.is_some())?;
        not_for("bearer_token_file", !azure && u.bearer_token_file.is_some())?;
        if let Some(file) = &u.bearer_token_file {
            std::fs::read_to_string(file).map_err(|e| {
                invalid(
                    "upstream.bearer_token_file",
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
        }
        not_for(
            "auth",
            u.kind != UpstreamKind::Bedrock && u.auth != BedrockAuth::default(),
        )?;
        not_for(
            "cloud_region",
            !matches!(u.kind, UpstreamKind::Bedrock | UpstreamKind::Vertex)
                && u.cloud_region.is_some(),
        )?;
        not_for(
            "project",
            u.kind != UpstreamKind::Vertex && u.project.is_some(),
        )?;
        not_for(
            "credentials",
            u.kind != UpstreamKind::Vertex && u.credentials.is_some(),
        )?;
        match u.kind {
            UpstreamKind::Openai => {
                if u.base_url.is_none() {
                    return Err(invalid(
                        "upstream.base_url",
                        "is required with kind = \"openai\" (the provider's OpenAI-compatible base URL)".into(),
                    ));
                }
            }
            UpstreamKind::AzureOpenai => {
                not_for("base_url", u.base_url.is_some())?;
                let Some(endpoint) = &u.endpoint else {
                    return Err(invalid(
                        "upstream.endpoint",
                        "is required with kind = \"azure-openai\" (the resource endpoint, e.g. https://NAME.openai.azure.com)".into(),
                    ));
                };
                url_field("upstream.endpoint", endpoint)?;
                let ways = [
                    has_key,
                    u.bearer_token_env.is_some(),
                    u.bearer_token_file.is_some(),
                ];
                if ways.iter().filter(|w| **w).count() != 1 {
                    return Err(invalid(
                        "upstream.api_key",
                        "set exactly one of api_key, api_key_env (the api-key header), bearer_token_env or bearer_token_file (an Entra ID token)".into(),
                    ));
                }
                if u.surface == AzureSurface::Deployments && u.api_version.is_none() {
                    return Err(invalid(
                        "upstream.api_version",
                        "is required with surface = \"deployments\" (e.g. \"2024-10-21\")".into(),
                    ));
                }
            }
            UpstreamKind::Bedrock => {
                if self.cloud_region().is_none() {
                    return Err(invalid(
                        "upstream.cloud_region",
                        format!(
                            "{} is not an aws: region; name the AWS region, e.g. \"ap-south-1\"",
                            self.region
                        ),
                    ));
                }
                match u.auth {
                    BedrockAuth::ApiKey if !has_key => return Err(invalid(
                        "upstream.api_key_env",
                        "auth = \"api-key\" needs the Bedrock API key in api_key or api_key_env"
                            .into(),
                    )),
                    BedrockAuth::Sigv4 if has_key => {
                        return Err(invalid(
                            "upstream.api_key",
                            "auth = \"sigv4\" signs with AWS credentials; remove the API key"
                                .into(),
                        ))
                    }
                    BedrockAuth::Sigv4 => {
                        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                            if std::env::var_os(var).is_none() {
                                return Err(invalid(
                                    "upstream.auth",
                                    format!(
                                        "auth = \"sigv4\" needs the environment variable {var}"
                                    ),
                                ));
                            }
                        }
                    }
                    BedrockAuth::ApiKey => {}
                }
            }
            UpstreamKind::Vertex => {
                not_for("api_key", has_key)?;
                if u.project.is_none() {
                    return Err(invalid(
                        "upstream.project",
                        "is required with kind = \"vertex\" (the Google Cloud project id)".into(),
                    ));
                }
                if self.cloud_region().is_none() {
                    return Err(invalid(
                        "upstream.cloud_region",
                        format!(
                            "{} is not a gcp: region; name the Vertex location, e.g. \"asia-south1\"",
                            self.region
                        ),
                    ));
                }
                let Some(path) = &u.credentials else {
                    return Err(invalid(
                        "upstream.credentials",
                        "is required with kind = \"vertex\" (a service-account JSON key file)"
                            .into(),
                    ));
                };
                crate::gateway::upstream::google::ServiceAccountKey::from_file(path)
                    .map_err(|e| invalid("upstream.credentials", e.to_string()))?;
            }
        }
        Ok(())
    }

    /// `[[model]]`: names unique, processing stated and inside the
    /// gateway's jurisdiction unless marked.
    fn validate_models(
        &self,
        invalid: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let home = self.catalogue().jurisdiction(&self.region);
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let field = |f: &str| format!("model[{i}].{f}");
            for (f, name) in
                std::iter::once(("name", &m.name)).chain(m.aliases.iter().map(|a| ("aliases", a)))
            {
                if name.trim().is_empty() {
                    return Err(invalid(&field(f), "must not be empty".into()));
                }
                if !seen.insert(name.as_str()) {
                    return Err(invalid(
                        &field(f),
                        format!("{name:?} is already the name or alias of another model"),
                    ));
                }
            }
            if m.upstream.as_ref().is_some_and(|u| u.trim().is_empty()) {
                return Err(invalid(&field("upstream"), "must not be empty".into()));
            }
            for a in &m.apis {
                if a.is_empty() || a.starts_with('/') || a.starts_with("v1/") {
                    return Err(invalid(
                        &field("apis"),
                        format!("{a:?}: write the path below /v1/, e.g. \"chat/completions\""),
                    ));
                }
            }
            let processing =
                parse_processing(&m.processing).map_err(|r| invalid(&field("processing"), r))?;
            let at = processing.jurisdiction(home);
            if at != home && home.is_some() && !m.allow_processing_outside {
                let home = home.map_or_else(String::new, |j| j.to_string());
                let at = at.map_or_else(|| "anywhere (global)".to_owned(), |j| format!("in {j}"));
                return Err(invalid(
                    &field("processing"),
                    format!(
                        "{} is processed {at}, outside {home} where this gateway is; set allow_processing_outside = true if that is intended",
                        m.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The cloud's own region name: `upstream.cloud_region`, else the part
    /// after `aws:` (Bedrock) or `gcp:` (Vertex) of the gateway's region.
    pub fn cloud_region(&self) -> Option<String> {
        if let Some(r) = &self.upstream.cloud_region {
            return Some(r.clone());
        }
        let provider = match self.upstream.kind {
            UpstreamKind::Bedrock => "aws",
            UpstreamKind::Vertex => "gcp",
            _ => return None,
        };
        let (p, r) = self.region.as_str().split_once(':')?;
        (p == provider).then(|| r.to_owned())
    }

    /// The model list advertised to agents.
    pub fn model_list(&self) -> residency_proto::ModelList {
        residency_proto::ModelList {
            open: self.models.is_empty(),
            models: self
                .models
                .iter()
                .map(|m| residency_proto::ModelOffer {
                    name: m.name.clone(),
                    aliases: m.aliases.clone(),
                    apis: m.apis.clone(),
                    processing: parse_processing(&m.processing)
                        .unwrap_or(residency_proto::Processing::Global),
                })
                .collect(),
        }
    }

    fn catalogue_checked(&self) -> Result<Catalogue, crate::plan::catalogue::CatalogueError> {
        if self.region.catalogue_entry().is_some() {
            return Ok(Catalogue::default());
        }
        Catalogue::new(&[RegionEntry {
            id: self.region.clone(),
            jurisdiction: self.jurisdiction.clone().unwrap_or_default(),
            city: self.city.clone().unwrap_or_default(),
        }])
    }

    /// The built-in region catalogue, plus this gateway's region when it is
    /// not built in.
    pub fn catalogue(&self) -> Catalogue {
        self.catalogue_checked().unwrap_or_default()
    }

    /// The most sensitive tier this gateway forwards: `[recheck] max_tier`,
    /// else `restricted` in India and `confidential` elsewhere.
    pub fn max_tier(&self) -> residency_proto::Tier {
        use residency_proto::{Jurisdiction, Tier};
        self.recheck
            .max_tier
            .unwrap_or(match self.catalogue().jurisdiction(&self.region) {
                Some(Jurisdiction::IN) => Tier::Restricted,
                _ => Tier::Confidential,
            })
    }

    /// The provider API key, from the file or the environment.
    pub fn api_key(&self) -> Option<String> {
        if let Some(k) = &self.upstream.api_key {
            return Some(k.clone());
        }
        self.upstream
            .api_key_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_must_be_sensible() {
        let e = AgentConfig::parse(&format!("worker_threads = 0\n{GOOD}")).unwrap_err();
        assert!(e.to_string().contains("worker_threads"), "{e}");
        let cfg = AgentConfig::parse(GOOD).unwrap();
        assert_eq!(cfg.worker_threads, 1);
        let cfg = AgentConfig::parse(&format!("worker_threads = 4\n{GOOD}")).unwrap();
        assert_eq!(cfg.worker_threads, 4);
    }

    #[test]
    fn limits_default_and_bad_values_name_the_field() {
        let cfg = AgentConfig::parse(GOOD).unwrap();
        assert_eq!(cfg.limits, LimitsConfig::default());
        assert_eq!(cfg.limits.serve().max_connections, 512);
        for (bad, field) in [
            ("max_connections = 0", "limits.max_connections"),
            (
                "max_connections = 10\nmax_connections_per_peer = 20",
                "limits.max_connections_per_peer",
            ),
            (
                "header_read_timeout_secs = 0",
                "limits.header_read_timeout_secs",
            ),
            ("local_max_connections = 0", "limits.local_max_connections"),
            (
                "body_idle_timeout_secs = 100000",
                "limits.body_idle_timeout_secs",
            ),
        ] {
            let e = AgentConfig::parse(&format!("{GOOD}\n[limits]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn the_shipped_example_configs_are_valid() {
        let agent = AgentConfig::parse(include_str!("../../examples/agent.toml"))
            .unwrap_or_else(|e| panic!("examples/agent.toml: {e}"));
        assert_eq!(agent.default_region.as_str(), "aws:ap-south-1");
        assert!(agent.gateways.len() >= 2);
        // The gateway example names its key by environment variable, which
        // validate() checks; parse it and check the rest.
        let path = Path::new("examples/gateway.toml");
        let gw: GatewayConfig = parse_toml(path, include_str!("../../examples/gateway.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(gw.max_tier(), residency_proto::Tier::Restricted);
        assert!(gw.recheck.classify);
    }

    const GOOD: &str = r#"
default_region = "aws:ap-south-1"
[tls]
ca = "ca.pem"
cert = "agent.pem"
key = "agent.key"
[[gateway]]
region = "aws:ap-south-1"
address = "127.0.0.1:4433"
"#;

    #[test]
    fn good_config_parses_with_defaults() {
        let cfg = AgentConfig::parse(GOOD).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(cfg.gateways[0].tls_server_name(), "127.0.0.1");
        assert!(cfg
            .india_regions()
            .contains(&RegionId::new("aws:ap-south-2").unwrap()));
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let text = GOOD.replace("default_region", "default_regoin");
        let err = AgentConfig::parse(&text).unwrap_err().to_string();
        assert!(err.contains("default_regoin"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn bad_region_id_is_named() {
        let text = GOOD.replace("region = \"aws:ap-south-1\"", "region = \"Mumbai\"");
        let err = AgentConfig::parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("Mumbai") && err.contains("provider:region"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_the_field() {
        let text = GOOD.replace("127.0.0.1:4433", "127.0.0.1");
        let err = AgentConfig::parse(&text).unwrap_err().to_string();
        assert!(err.contains("gateway[0].address"), "{err}");

        let text = GOOD.replace(
            "default_region = \"aws:ap-south-1\"",
            "default_region = \"aws:us-east-1\"",
        );
        let err = AgentConfig::parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("default_region") && err.contains("aws:us-east-1"),
            "{err}"
        );

        let text = format!("{GOOD}\n[quic]\nkeep_alive_ms = 0\n");
        let err = AgentConfig::parse(&text).unwrap_err().to_string();
        assert!(err.contains("keep_alive_ms"), "{err}");
    }

    fn gateway(region: &str, upstream: &str, models: &str) -> Result<GatewayConfig, ConfigError> {
        let text = format!(
            "region = \"{region}\"\n[tls]\nca = \"ca.pem\"\ncert = \"gw.pem\"\nkey = \"gw.key\"\n[upstream]\n{upstream}\n{models}"
        );
        let path = Path::new("gateway.toml");
        let cfg: GatewayConfig = parse_toml(path, &text)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn field_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { field, .. } => field,
            other => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn each_upstream_kind_names_the_field_it_is_missing() {
        let cases = [
            ("aws:ap-south-1", "api_key = \"k\"", "upstream.base_url"),
            ("azure:centralindia", "kind = \"azure-openai\"\napi_key = \"k\"", "upstream.endpoint"),
            ("azure:centralindia", "kind = \"azure-openai\"\nendpoint = \"https://x.openai.azure.com\"", "upstream.api_key"),
            ("azure:centralindia", "kind = \"azure-openai\"\nendpoint = \"https://x.openai.azure.com\"\napi_key = \"k\"\nsurface = \"deployments\"", "upstream.api_version"),
            ("azure:centralindia", "kind = \"azure-openai\"\nendpoint = \"https://x.openai.azure.com\"\napi_key = \"k\"\nbase_url = \"https://y\"", "upstream.base_url"),
            ("aws:ap-south-1", "kind = \"bedrock\"", "upstream.api_key_env"),
            ("azure:centralindia", "kind = \"bedrock\"\napi_key = \"k\"", "upstream.cloud_region"),
            ("aws:ap-south-1", "kind = \"bedrock\"\nauth = \"sigv4\"\napi_key = \"k\"", "upstream.api_key"),
            ("gcp:asia-south1", "kind = \"vertex\"\ncredentials = \"sa.json\"", "upstream.project"),
            ("gcp:asia-south1", "kind = \"vertex\"\nproject = \"p\"", "upstream.credentials"),
            ("gcp:asia-south1", "kind = \"vertex\"\nproject = \"p\"\ncredentials = \"/nonexistent/sa.json\"", "upstream.credentials"),
            ("aws:ap-south-1", "base_url = \"https://x/v1\"\nproject = \"p\"", "upstream.project"),
            ("aws:ap-south-1", "base_url = \"https://x/v1\"\nsurface = \"deployments\"", "upstream.surface"),
        ];
        for (region, upstream, want) in cases {
            let e = gateway(region, upstream, "").unwrap_err();
            let text = e.to_string();
            assert_eq!(field_of(e), want, "{upstream}: {text}");
        }
        let unknown = gateway("aws:ap-south-1", "kind = \"oracle\"", "").unwrap_err();
        assert!(unknown.to_string().contains("kind"), "{unknown}");
    }

    #[test]
    fn cloud_regions_come_from_the_gateway_region() {
        let b = gateway("aws:ap-south-2", "kind = \"bedrock\"\napi_key = \"k\"", "").unwrap();
        assert_eq!(b.cloud_region().as_deref(), Some("ap-south-2"));
        let b = gateway(
            "azure:centralindia",
            "kind = \"bedrock\"\napi_key = \"k\"\ncloud_region = \"ap-south-1\"",
            "",
        )
        .unwrap();
        assert_eq!(b.cloud_region().as_deref(), Some("ap-south-1"));
    }

    #[test]
    fn models_need_a_processing_place_unique_names_and_a_mark_to_leave_the_jurisdiction() {
        let up = "base_url = \"https://x/v1\"";
        let m = |body: &str| format!("[[model]]\nname = \"gpt-4o\"\n{body}\n");
        let e = gateway("aws:ap-south-1", up, &m("")).unwrap_err();
        assert!(e.to_string().contains("processing"), "{e}");
        for (body, field) in [
            ("processing = \"moon\"", "model[0].processing"),
            ("processing = \"global\"", "model[0].processing"),
            ("processing = \"US\"", "model[0].processing"),
            (
                "processing = \"region\"\napis = [\"/v1/chat/completions\"]",
                "model[0].apis",
            ),
            (
                "processing = \"region\"\nupstream = \" \"",
                "model[0].upstream",
            ),
        ] {
            let e = gateway("aws:ap-south-1", up, &m(body)).unwrap_err();
            assert_eq!(field_of(e), field, "{body}");
        }
        let twice = format!(
            "{}{}",
            m("processing = \"region\""),
            "[[model]]\nname = \"other\"\naliases = [\"gpt-4o\"]\nprocessing = \"region\"\n"
        );
        assert_eq!(
            field_of(gateway("aws:ap-south-1", up, &twice).unwrap_err()),
            "model[1].aliases"
        );
        let marked = gateway(
            "aws:ap-south-1",
            up,
            &m("processing = \"global\"\nallow_processing_outside = true"),
        )
        .unwrap();
        assert_eq!(
            marked.model_list().models[0].processing,
            residency_proto::Processing::Global
        );
        // A data zone inside the gateway's own jurisdiction needs no mark.
        gateway("aws:ap-south-1", up, &m("processing = \"IN\"")).unwrap();
        let list = gateway("aws:ap-south-1", up, "").unwrap().model_list();
        assert!(list.open && list.models.is_empty());
    }
}
