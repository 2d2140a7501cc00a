//! Helpers for the end-to-end tests: a fleet of real gateways and a real agent
//! on `127.0.0.1:0`, with real QUIC, TLS and certificates in a temporary
//! directory. Only the model provider is a mock.

// Test support code: a failed step should panic with the reason.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use residency_agent::config::{AgentConfig, GatewayConfig};
use residency_agent::demo::mock_provider::{MockOptions, MockProvider};
use residency_agent::keys::{self, GeneratedKeys, KeysSpec};
use residency_agent::{AgentHandle, GatewayHandle};
use residency_proto::RegionId;
use tempfile::TempDir;

/// A seed for a test's random choices: `SEED=<u64>` from the environment
/// replays a run, otherwise the clock picks one. Prints `{label} {seed}` and
/// the command that replays it (cargo shows a test's output when it fails).
/// Never zero, so an xorshift generator seeded with it never sticks.
pub fn seed(label: &str, test_file: &str, test_name: &str) -> u64 {
    let seed = match std::env::var("SEED") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("SEED={v:?} is not a u64: {e}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    } | 1;
    println!("{label} {seed}");
    println!(
        "rerun with: SEED={seed} cargo test -p residency-tests --test {test_file} {test_name}"
    );
    seed
}

/// Mumbai, Hyderabad, N. Virginia.
pub const REGIONS: [&str; 3] = ["aws:ap-south-1", "aws:ap-south-2", "aws:us-east-1"];

/// How to build a fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Regions to run a gateway (and a mock provider) for.
    pub regions: Vec<&'static str>,
    /// The agent's default region.
    pub default_region: &'static str,
    /// Mock provider behaviour.
    pub mock: MockOptions,
    /// Extra lines appended to agent.toml.
    pub agent_extra: String,
    /// Extra sections appended to every gateway.toml.
    pub gateway_extra: String,
    /// Extra keys in every gateway.toml's `[upstream]` section.
    pub upstream_extra: String,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            regions: REGIONS.to_vec(),
            default_region: "aws:us-east-1",
            mock: MockOptions {
                chunk_delay: Duration::from_millis(5),
                ..MockOptions::default()
            },
            agent_extra: String::new(),
            gateway_extra: String::new(),
            upstream_extra: String::new(),
        }
    }
}

/// Real gateways and a real agent, in-process.
pub struct Fleet {
    /// Certificates and configs live here.
    pub dir: TempDir,
    /// The generated certificates.
    pub keys: GeneratedKeys,
    /// One mock provider per region, same order as the options' regions.
    pub providers: Vec<MockProvider>,
    /// One gateway per region (None once stopped).
    pub gateways: Vec<Option<GatewayHandle>>,
    /// The agent.
    pub agent: AgentHandle,
}

/// Quick-failure QUIC settings for tests.
pub const FAST_QUIC: &str = "\n[quic]\nidle_timeout_ms = 1500\nkeep_alive_ms = 300\n";

/// Writes a gateway config for `region` into `dir` and returns its path.
pub fn write_gateway_config(
    dir: &Path,
    region: &str,
    upstream: &str,
    listen: &str,
    cert_stem: &str,
) -> PathBuf {
    write_gateway_config_with(dir, region, upstream, listen, cert_stem, "")
}

/// [`write_gateway_config`] with extra sections appended (e.g. `[policy]`).
pub fn write_gateway_config_with(
    dir: &Path,
    region: &str,
    upstream: &str,
    listen: &str,
    cert_stem: &str,
    extra: &str,
) -> PathBuf {
    write_gateway_config_full(dir, region, upstream, listen, cert_stem, "", extra)
}

/// [`write_gateway_config_with`] with extra keys in `[upstream]` too.
pub fn write_gateway_config_full(
    dir: &Path,
    region: &str,
    upstream: &str,
    listen: &str,
    cert_stem: &str,
    upstream_extra: &str,
    extra: &str,
) -> PathBuf {
    let path = dir.join(format!("gw-{}.toml", region.replace(':', "-")));
    let text = format!(
        "region = \"{region}\"\nlisten = \"{listen}\"\nstate_dir = \"gw-state-{}\"\n[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/{cert_stem}.pem\"\nkey = \"certs/{cert_stem}.key\"\n[upstream]\nbase_url = \"{upstream}\"\napi_key = \"provider-key-{}\"\n{upstream_extra}\n{FAST_QUIC}\n{extra}\n",
        region.replace(':', "-"),
        region.replace(':', "-")
    );
    std::fs::write(&path, text).expect("write gateway config");
    path
}

/// The `[[gateway]]` block of agent.toml.
pub fn gateway_block(region: &str, addr: SocketAddr) -> String {
    format!(
        "\n[[gateway]]\nregion = \"{region}\"\naddress = \"{addr}\"\nserver_name = \"localhost\"\nname = \"gw-{}\"\n",
        region.replace(':', "-")
    )
}

/// The `[policy]` section tests use unless they say otherwise: the built-in
/// India baseline until a signed policy arrives.
pub const BASELINE_POLICY: &str = "\n[policy]\nbuiltin_baseline = true\n";

/// agent.toml text using the fleet CA and agent certificate in `certs/`,
/// with its own state directory and admin socket next to the file, and the
/// built-in baseline policy unless `extra` has a `[policy]` section.
pub fn agent_config_text(default_region: &str, gateways: &str, extra: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let (top, policy) = match extra.find("[policy]") {
        Some(i) => (&extra[..i], &extra[i..]),
        None => (extra, BASELINE_POLICY),
    };
    format!(
        "listen = \"127.0.0.1:0\"\nobserve_listen = \"127.0.0.1:0\"\ndefault_region = \"{default_region}\"\nstate_dir = \"agent-state-{n}\"\nadmin_socket = \"agent-admin-{n}.sock\"\n{top}\n[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/agent.pem\"\nkey = \"certs/agent.key\"\n{gateways}{FAST_QUIC}\n{policy}\n"
    )
}

/// Generates a fleet CA and certificates for [`REGIONS`] into `dir/certs`.
pub fn gen_keys(dir: &Path) -> GeneratedKeys {
    keys::generate(
        &dir.join("certs"),
        &KeysSpec {
            regions: REGIONS.iter().map(|r| RegionId::new(r).unwrap()).collect(),
            agent_name: "test-branch".into(),
            extra_names: vec![],
            ..KeysSpec::default()
        },
    )
    .expect("generate keys")
}

impl Fleet {
    /// Starts mock providers, gateways and the agent; waits until the agent
    /// is connected to every gateway.
    pub async fn start(opts: FleetOptions) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = gen_keys(dir.path());
        let mut providers = Vec::new();
        let mut gateways = Vec::new();
        let mut blocks = String::new();
        for region in &opts.regions {
            let mut mock = opts.mock.clone();
            mock.label = region.to_string();
            let p = MockProvider::start("127.0.0.1:0".parse().unwrap(), mock)
                .await
                .expect("mock");
            let stem = keys::gateway_stem(&RegionId::new(region).unwrap());
            let path = write_gateway_config_full(
                dir.path(),
                region,
                &p.base_url(),
                "127.0.0.1:0",
                &stem,
                &opts.upstream_extra,
                &opts.gateway_extra,
            );
            let gw = GatewayHandle::start(GatewayConfig::load(&path).expect("gateway config"))
                .await
                .expect("gateway start");
            blocks.push_str(&gateway_block(region, gw.local_addr()));
            providers.push(p);
            gateways.push(Some(gw));
        }
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            agent_config_text(opts.default_region, &blocks, &opts.agent_extra),
        )
        .unwrap();
        let agent = AgentHandle::start(AgentConfig::load(&path).expect("agent config"))
            .await
            .expect("agent start");
        assert!(
            agent.wait_connected(Duration::from_secs(10)).await,
            "agent did not connect to every gateway"
        );
        Fleet {
            dir,
            keys,
            providers,
            gateways,
            agent,
        }
    }

    /// Starts another agent connected to the same gateways, with `extra`
    /// in its config.
    pub async fn another_agent(&self, extra: &str) -> AgentHandle {
        let mut blocks = String::new();
        for g in self.gateways.iter().flatten() {
            blocks.push_str(&gateway_block(g.region().as_str(), g.local_addr()));
        }
        let path = self.dir.path().join(format!(
            "agent-{}.toml",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::write(&path, agent_config_text("aws:us-east-1", &blocks, extra)).unwrap();
        let agent = AgentHandle::start(AgentConfig::load(&path).expect("agent config"))
            .await
            .expect("agent start");
        assert!(agent.wait_connected(Duration::from_secs(10)).await);
        agent
    }

    /// The agent's `http://ADDR/v1`.
    pub fn base(&self) -> String {
        self.agent.base_url()
    }

    /// The mock provider behind `region`.
    pub fn provider(&self, region: &str) -> &MockProvider {
        let i = REGIONS
            .iter()
            .position(|r| *r == region)
            .expect("known region");
        &self.providers[i]
    }
}

/// A plain HTTP/1 client.
pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and returns the response with its body unread.
pub async fn request(
    method: &str,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> hyper::Response<Incoming> {
    request_bytes(method, url, body.as_bytes(), headers).await
}

/// [`request`] with a body that need not be UTF-8.
pub async fn request_bytes(
    method: &str,
    url: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> hyper::Response<Incoming> {
    let mut b = hyper::Request::builder().method(method).uri(url);
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        b = b.header("content-type", "application/json");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
    client().request(req).await.expect("request sent")
}

/// A response read to the end.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: hyper::HeaderMap,
    /// Body text (what arrived, if the body failed part way).
    pub body: String,
    /// Why the body ended early, if it did.
    pub body_error: Option<String>,
}

impl Answer {
    /// A header value ("" if missing).
    pub fn header(&self, k: &str) -> &str {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends a request and reads the whole answer.
pub async fn send(method: &str, url: &str, body: &str) -> Answer {
    send_with(method, url, body, &[]).await
}

/// Sends a request with extra headers and reads the whole answer.
pub async fn send_with(method: &str, url: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    read_answer(request(method, url, body, headers).await).await
}

/// [`send`] with a body that need not be UTF-8.
pub async fn send_bytes(method: &str, url: &str, body: &[u8]) -> Answer {
    read_answer(request_bytes(method, url, body, &[]).await).await
}

async fn read_answer(resp: hyper::Response<Incoming>) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    let mut body_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    bytes.extend_from_slice(&d);
                }
            }
            Err(e) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        body_error,
    }
}

/// A chat completion request body.
pub fn chat(content: &str, stream: bool) -> String {
    serde_json::json!({
        "model": "mock-gpt",
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    })
    .to_string()
}

/// One rule of [`generated_policy`]: four shapes, so every condition and both
/// actions appear. Rule `i` of the first shape (`i % 4 == 0`) routes model
/// `model-{i}` to `aws:ap-south-1`, else `aws:ap-south-2`.
fn generated_rule(i: usize) -> String {
    match i % 4 {
        0 => format!(
            "[[rule]]\nname = \"model-{i}\"\n[rule.match]\nmodel = [\"model-{i}\"]\n\
             [rule.allow]\nregions = [\"aws:ap-south-1\", \"aws:ap-south-2\"]\n"
        ),
        1 => format!(
            "[[rule]]\nname = \"ids-{i}\"\n[rule.match]\nentities = [\"pan\", \"aadhaar\"]\n\
             tier_at_least = \"confidential\"\n[rule.deny]\nreason = \"rule {i}: no identifiers\"\n"
        ),
        2 => format!(
            "[[rule]]\nname = \"country-{i}\"\n[rule.match]\nsubject_country = [\"IN\", \"unknown\"]\n\
             model = [\"family-{i}*\"]\n[rule.allow]\njurisdictions = [\"IN\", \"*\"]\n"
        ),
        _ => format!(
            "[[rule]]\nname = \"tier-{i}\"\n[rule.match]\ntier = [\"public\", \"internal\"]\n\
             model = [\"tiered-{i}\"]\n[rule.allow]\njurisdictions = [\"IN\"]\n"
        ),
    }
}

/// Room [`generated_policy`] leaves in a bundle for its header and signature:
/// `generated_policy(usize::MAX, FULL_BUNDLE_POLICY_BYTES)` is as large as a
/// bundle may hold.
pub const FULL_BUNDLE_POLICY_BYTES: usize = residency_proto::DEFAULT_MAX_BUNDLE_LEN - 512;

/// A valid policy named `generated` of `rules` rules, the last one
/// (`rest`) a catch-all allowing India, or fewer rules if the text would pass
/// `max_bytes`. The same shapes as `agent/benches/policy.rs`.
pub fn generated_policy(rules: usize, max_bytes: usize) -> String {
    const LAST: &str = "[[rule]]\nname = \"rest\"\n[rule.allow]\njurisdictions = [\"IN\"]\n";
    let mut text = String::from("name = \"generated\"\nunscannable_tier = \"restricted\"\n");
    for i in 0..rules.saturating_sub(1) {
        let r = generated_rule(i);
        if text.len() + r.len() + LAST.len() > max_bytes {
            break;
        }
        text.push_str(&r);
    }
    text.push_str(LAST);
    text
}

/// Opens a stream on the agent's connection to `region`'s gateway and sends a
/// hand-made `POST /v1/chat/completions` head claiming `tier`, then `body`;
/// returns the first frame the gateway answers with. This is what an agent
/// that misclassified a request would send.
pub async fn raw_request(
    fleet: &Fleet,
    region: &str,
    tier: residency_proto::Tier,
    body: &str,
) -> residency_proto::Frame {
    raw_request_bytes(fleet, region, "/v1/chat/completions", tier, body.as_bytes()).await
}

/// [`raw_request`] to another `path`, with a body that need not be UTF-8.
pub async fn raw_request_bytes(
    fleet: &Fleet,
    region: &str,
    path: &str,
    tier: residency_proto::Tier,
    body: &[u8],
) -> residency_proto::Frame {
    raw_request_via(fleet, region, region, path, tier, body).await
}

/// [`raw_request_bytes`] on the connection to `via`'s gateway, with a head
/// whose routing facts name `region` (a misrouted request when they differ).
pub async fn raw_request_via(
    fleet: &Fleet,
    via: &str,
    region: &str,
    path: &str,
    tier: residency_proto::Tier,
    body: &[u8],
) -> residency_proto::Frame {
    raw_request_with(fleet, via, region, path, tier, vec![], body).await
}

/// [`raw_request_via`] with `headers` in the head.
pub async fn raw_request_with(
    fleet: &Fleet,
    via: &str,
    region: &str,
    path: &str,
    tier: residency_proto::Tier,
    headers: Vec<(String, String)>,
    body: &[u8],
) -> residency_proto::Frame {
    let region = RegionId::new(region).unwrap();
    let link = fleet
        .agent
        .pool()
        .connection_for(&RegionId::new(via).unwrap())
        .unwrap();
    use residency_agent::transport::stream::{self, Connection as _, SendHalf as _};
    let (mut send, mut recv) = link.1.open().await.unwrap();
    let codec = residency_proto::Codec::default();
    let head = residency_proto::Frame::RequestHead(residency_proto::RequestHead {
        request_id: "req_recheck".into(),
        method: "POST".into(),
        path: path.into(),
        headers,
        route: residency_proto::RouteFacts {
            region,
            tier,
            policy_version: None,
        },
    });
    stream::send_frame(&mut send, &codec, &head, body)
        .await
        .unwrap();
    send.finish();
    let (frame, _) = stream::read_frame(&mut recv, &codec)
        .await
        .unwrap()
        .unwrap();
    frame
}

/// The `residency-agent` binary built alongside the tests
/// (`RESIDENCY_AGENT_BIN` overrides it, e.g. for a profiling build).
pub fn agent_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RESIDENCY_AGENT_BIN") {
        return PathBuf::from(p);
    }
    let mut dir = std::env::current_exe().expect("current exe");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("residency-agent{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` (it builds the binary)",
        bin.display()
    );
    bin
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `residency-agent gateway --config PATH` and waits until it logs
/// that it listens; returns the process and its UDP address.
pub fn spawn_gateway(config: &Path) -> (Proc, SocketAddr) {
    let (proc, addr, _) = spawn_gateway_logged(config);
    (proc, addr)
}

/// The gateway's HTTP/2 (TCP) address from its "gateway listening" log line.
pub fn logged_tcp_addr(log: &std::sync::Mutex<Vec<String>>) -> SocketAddr {
    let lines = log.lock().unwrap();
    let line = lines
        .iter()
        .find(|l| l.contains("gateway listening"))
        .expect("gateway listening line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["listen_tcp"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no TCP listener in {line}"))
}

/// [`spawn_gateway`], also collecting the gateway's JSON log lines.
pub fn spawn_gateway_logged(
    config: &Path,
) -> (
    Proc,
    SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(agent_bin())
        .args(["--log-format", "json", "gateway", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut addr = None;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("gateway stderr");
        seen.push(line.clone());
        if line.contains("gateway listening") {
            let v: serde_json::Value = serde_json::from_str(&line).expect("json log");
            addr = Some(v["listen"].as_str().unwrap().parse().unwrap());
            break;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    let log = std::sync::Arc::new(std::sync::Mutex::new(seen));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(mut l) = sink.lock() {
                l.push(line);
            }
        }
    });
    (Proc(child), addr.expect("gateway did not start"), log)
}

/// The real agent binary, started by [`spawn_agent`].
pub struct AgentProc {
    /// The process (killed on drop).
    pub proc: Proc,
    /// `http://ADDR/v1`.
    pub base: String,
    /// Its state directory.
    pub state: PathBuf,
    /// Its admin socket.
    pub socket: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// Its observability listener (`/healthz`, `/metrics`).
    pub observe: SocketAddr,
}

/// Starts the agent binary with a config pointing at the fleet's gateways
/// (plus `extra`); stderr (JSON logs at debug level) goes to `log`. Returns
/// once it answers.
pub async fn spawn_agent(fleet: &Fleet, extra: &str, log: &Path) -> AgentProc {
    spawn_agent_with(fleet, extra, log, None).await
}

/// [`spawn_agent`], optionally as systemd would start it: `NOTIFY_SOCKET`
/// set to `notify` and a 400 ms watchdog (`WATCHDOG_PID` is the agent's own
/// pid, through `sh -c 'exec'`).
pub async fn spawn_agent_with(
    fleet: &Fleet,
    extra: &str,
    log: &Path,
    notify: Option<&Path>,
) -> AgentProc {
    let mut blocks = String::new();
    for g in fleet.gateways.iter().flatten() {
        blocks.push_str(&gateway_block(g.region().as_str(), g.local_addr()));
    }
    let free_port = || {
        let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listen.local_addr().unwrap()
    };
    let (addr, observe) = (free_port(), free_port());
    let dir = fleet.dir.path();
    let config = dir.join(format!("proc-agent-{}.toml", addr.port()));
    let text = agent_config_text("aws:us-east-1", &blocks, extra)
        .replacen(
            "observe_listen = \"127.0.0.1:0\"",
            &format!("observe_listen = \"{observe}\""),
            1,
        )
        .replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{addr}\""),
            1,
        );
    let field = |name: &str| {
        dir.join(
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim_matches('"'),
        )
    };
    let state = field("state_dir = ");
    let socket = field("admin_socket = ");
    std::fs::write(&config, &text).unwrap();
    let mut cmd = match notify {
        Some(sock) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
                .arg(agent_bin())
                .env("NOTIFY_SOCKET", sock)
                .env("WATCHDOG_USEC", "400000");
            c
        }
        None => Command::new(agent_bin()),
    };
    let child = cmd
        .env("RUST_LOG", "debug")
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://{addr}/v1");
    let t = std::time::Instant::now();
    loop {
        if let Ok(Ok(r)) = tokio::time::timeout(
            Duration::from_millis(500),
            client().request(
                hyper::Request::get(format!("http://{addr}/healthz"))
                    .body(Default::default())
                    .unwrap(),
            ),
        )
        .await
        {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "agent did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ready for tests once every gateway link is up, not just the listener.
    wait_gateways_up(&socket, Duration::from_secs(30).saturating_sub(t.elapsed())).await;
    AgentProc {
        proc: Proc(child),
        base,
        state,
        socket,
        config,
        observe,
    }
}

/// A `/proc/PID/status` memory field in KiB (`VmRSS:` now, `VmHWM:` peak);
/// 0 if unreadable.
pub fn rss_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A benchmark's first argument: seconds per run (default 5).
pub fn seconds_per_run() -> Duration {
    Duration::from_secs(
        std::env::args()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    )
}

/// A firewall in front of one gateway: relays UDP (QUIC) and TCP (HTTP/2)
/// on one port number, as a branch firewall would pass or drop them, and
/// counts what it saw.
pub struct Firewall {
    /// Where agents connect, on UDP and on TCP.
    pub addr: SocketAddr,
    drop_udp: std::sync::Arc<std::sync::atomic::AtomicBool>,
    udp_datagrams: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tcp_connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for Firewall {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Firewall {
    /// Relays to a gateway's UDP and TCP listeners, passing both.
    pub async fn start(gateway_udp: SocketAddr, gateway_tcp: SocketAddr) -> Firewall {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        // A port number free on both UDP and TCP.
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                break (Arc::new(udp), tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let drop_udp = Arc::new(AtomicBool::new(false));
        let udp_datagrams = Arc::new(AtomicUsize::new(0));
        let tcp_connections = Arc::new(AtomicUsize::new(0));
        let stop = tokio_util::sync::CancellationToken::new();
        // UDP: one upstream socket per client address, so the gateway sees
        // each client as its own peer.
        {
            let (drop_udp, seen, stop) = (drop_udp.clone(), udp_datagrams.clone(), stop.clone());
            tokio::spawn(async move {
                let mut upstreams: std::collections::HashMap<
                    SocketAddr,
                    Arc<tokio::net::UdpSocket>,
                > = Default::default();
                let mut buf = vec![0u8; 65_536];
                loop {
                    let (n, from) = tokio::select! {
                        r = udp.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
                        () = stop.cancelled() => return,
                    };
                    seen.fetch_add(1, Ordering::Relaxed);
                    if drop_udp.load(Ordering::Relaxed) {
                        continue;
                    }
                    let up = match upstreams.get(&from) {
                        Some(u) => u.clone(),
                        None => {
                            let u =
                                Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
                            u.connect(gateway_udp).await.unwrap();
                            let (u2, down, drop_udp, stop) =
                                (u.clone(), udp.clone(), drop_udp.clone(), stop.clone());
                            tokio::spawn(async move {
                                let mut buf = vec![0u8; 65_536];
                                loop {
                                    let n = tokio::select! {
                                        r = u2.recv(&mut buf) => match r { Ok(n) => n, Err(_) => continue },
                                        () = stop.cancelled() => return,
                                    };
                                    if !drop_udp.load(Ordering::Relaxed) {
                                        let _ = down.send_to(&buf[..n], from).await;
                                    }
                                }
                            });
                            upstreams.insert(from, u.clone());
                            u
                        }
                    };
                    let _ = up.send(&buf[..n]).await;
                }
            });
        }
        {
            let (seen, stop) = (tcp_connections.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    let (mut client, _) = tokio::select! {
                        r = tcp.accept() => match r { Ok(x) => x, Err(_) => continue },
                        () = stop.cancelled() => return,
                    };
                    seen.fetch_add(1, Ordering::Relaxed);
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        let Ok(mut up) = tokio::net::TcpStream::connect(gateway_tcp).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut up) => {}
                            () = stop.cancelled() => {}
                        }
                    });
                }
            });
        }
        Firewall {
            addr,
            drop_udp,
            udp_datagrams,
            tcp_connections,
            stop,
        }
    }

    /// Drops (true) or passes (false) every UDP datagram, both ways.
    pub fn block_udp(&self, on: bool) {
        self.drop_udp
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// UDP datagrams that reached the firewall from clients.
    pub fn udp_datagrams(&self) -> usize {
        self.udp_datagrams
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// TCP connections clients opened through the firewall.
    pub fn tcp_connections(&self) -> usize {
        self.tcp_connections
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Fleet {
    /// Starts another agent with `gateways` as its `[[gateway]]` blocks and
    /// `extra` in its config; waits until every link is up (false if not
    /// within `within`).
    pub async fn agent_with_gateways(
        &self,
        default_region: &str,
        gateways: &str,
        extra: &str,
        within: Duration,
    ) -> (AgentHandle, bool) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = self.dir.path().join(format!(
            "agent-gw-{}.toml",
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, agent_config_text(default_region, gateways, extra)).unwrap();
        let agent = AgentHandle::start(AgentConfig::load(&path).expect("agent config"))
            .await
            .expect("agent start");
        let up = agent.wait_connected(within).await;
        (agent, up)
    }
}

/// Waits until the agent behind the admin `socket` reports every gateway
/// link up; panics after `within`.
pub async fn wait_gateways_up(socket: &Path, within: Duration) {
    let t = std::time::Instant::now();
    loop {
        let up = residency_agent::admin::agent_request(
            socket,
            http::Method::GET,
            "/v1/admin/status",
            bytes::Bytes::new(),
        )
        .await
        .ok()
        .and_then(|(_, v)| {
            v["gateways"]
                .as_array()
                .map(|g| g.iter().all(|x| x["up"] == true))
        });
        if up == Some(true) {
            return;
        }
        assert!(t.elapsed() < within, "gateways did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fleet certificates in a new directory, a mock provider whose streamed
/// answers last about six seconds (300 chunks, 20 ms apart), and a checked
/// gateway config for `region` in front of it, for a gateway process to be
/// killed mid-stream ([`kill_mid_body`]).
pub async fn slow_stream_gateway(region: &str) -> (TempDir, MockProvider, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    gen_keys(dir.path());
    let mock = MockProvider::start(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            chunks: 300,
            chunk_delay: Duration::from_millis(20),
            ..MockOptions::default()
        },
    )
    .await
    .unwrap();
    let stem = keys::gateway_stem(&RegionId::new(region).unwrap());
    let cfg = write_gateway_config(dir.path(), region, &mock.base_url(), "127.0.0.1:0", &stem);
    // Checks the file the process will read is valid before spawning it.
    GatewayConfig::load(&cfg).unwrap();
    (dir, mock, cfg)
}

/// Starts a long streamed answer through `agent`, kills `gateway` after the
/// first chunk, and checks the client sees an error (an SSE `error` event and
/// a failed body), never a short answer that looks complete. Returns the
/// headers of the answer.
pub async fn kill_mid_body(agent: &AgentHandle, gateway: &mut Proc) -> hyper::HeaderMap {
    let url = format!("{}/chat/completions", agent.base_url());
    let resp = request("POST", &url, &chat("a long story", true), &[]).await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(!first.is_empty());
    gateway.0.kill().unwrap();
    let mut text = String::from_utf8_lossy(&first).into_owned();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        text.push_str(&String::from_utf8_lossy(&d));
                    }
                }
                Some(Err(_)) => return Err(()),
                None => return Ok(()),
            }
        }
    })
    .await
    .expect("the client learned of the failure within 10 s");
    assert!(
        outcome.is_err(),
        "the body ended as if complete after the gateway died"
    );
    assert!(!text.contains("[DONE]"));
    assert!(text.contains("event: error"), "no SSE error event: {text}");
    headers
}
