//! `demo`: the whole path on loopback with nothing to prepare. A mock provider
//! per region, gateways for Mumbai, Hyderabad and N. Virginia, certificates
//! generated into the state directory, and the agent. `--check` runs a scripted
//! tour and exits 0 only if every step behaved.

pub mod mock_provider;
pub mod tour;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use residency_proto::RegionId;

use crate::config::{AgentConfig, GatewayConfig};
use crate::keys::{self, KeysSpec};
use crate::{AgentHandle, GatewayHandle};
use mock_provider::{MockOptions, MockProvider};

/// The demo's regions: Mumbai, Hyderabad, N. Virginia.
pub const DEMO_REGIONS: [&str; 3] = ["aws:ap-south-1", "aws:ap-south-2", "aws:us-east-1"];

/// The demo's default region for traffic that may go anywhere.
pub const DEMO_DEFAULT_REGION: &str = "aws:us-east-1";

/// A running demo topology.
#[derive(Debug)]
pub struct Demo {
    /// The agent.
    pub agent: AgentHandle,
    /// Gateways, one per region, in [`DEMO_REGIONS`] order.
    pub gateways: Vec<GatewayHandle>,
    /// Mock providers, one per gateway, same order.
    pub providers: Vec<MockProvider>,
    /// Where certificates and configs were written.
    pub state_dir: PathBuf,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DemoError(String);

impl Demo {
    /// Generates certificates and configs into `state_dir` and starts
    /// everything, with the agent on `listen`.
    pub async fn start(state_dir: &Path, listen: SocketAddr) -> Result<Demo, DemoError> {
        let err = |what: &str, e: &dyn std::fmt::Display| DemoError(format!("{what}: {e}"));
        let regions: Vec<RegionId> = DEMO_REGIONS
            .iter()
            .filter_map(|r| RegionId::new(r).ok())
            .collect();
        // Each run starts from a clean slate: fresh keys, no stored policy.
        for sub in ["agent-state", "gateway-state", "policy-keys"] {
            let _ = std::fs::remove_dir_all(state_dir.join(sub));
        }
        let policy_keys = state_dir.join("policy-keys");
        std::fs::create_dir_all(&policy_keys).map_err(|e| err("creating policy-keys", &e))?;
        crate::policy::cli::keys_gen(&policy_keys, &mut std::io::sink())
            .map_err(|e| err("generating the policy signing key", &e))?;
        let policy_section = "[policy]\ntrusted_keys = [\"policy-keys/policy-signing.pub\"]\nbuiltin_baseline = true\n";
        let certs = state_dir.join("certs");
        let keys = keys::generate(
            &certs,
            &KeysSpec {
                regions: regions.clone(),
                agent_name: "demo-branch".into(),
                extra_names: Vec::new(),
                ..KeysSpec::default()
            },
        )
        .map_err(|e| err("generating certificates", &e))?;

        let mut providers = Vec::new();
        let mut gateways = Vec::new();
        let mut agent_toml = format!(
            "# Written by `residency-agent demo`; ports change every run.\n\
             listen = \"{listen}\"\n\
             observe_listen = \"127.0.0.1:0\"\n\
             default_region = \"{DEMO_DEFAULT_REGION}\"\n\
             state_dir = \"agent-state\"\n\
             admin_socket = \"agent-state/admin.sock\"\n\n\
             {policy_section}\n\
             [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/agent.pem\"\nkey = \"certs/agent.key\"\n"
        );
        for region in &regions {
            let city = region.catalogue_entry().map_or("", |r| r.city);
            let provider = MockProvider::start(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                MockOptions {
                    label: format!("{region} ({city})"),
                    ..MockOptions::default()
                },
            )
            .await
            .map_err(|e| err("starting the mock provider", &e))?;
            let stem = keys::gateway_stem(region);
            let path = state_dir.join(format!("{stem}.toml"));
            let text = format!(
                "# Written by `residency-agent demo`.\n\
                 region = \"{region}\"\n\
                 listen = \"127.0.0.1:0\"\n\
                 state_dir = \"gateway-state/{stem}\"\n\n\
                 [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/{stem}.pem\"\nkey = \"certs/{stem}.key\"\n\n\
                 [upstream]\nbase_url = \"{}\"\napi_key = \"demo-provider-key-{}\"\n\n{policy_section}",
                provider.base_url(),
                region.as_str().replace(':', "-"),
            );
            std::fs::write(&path, text).map_err(|e| err("writing gateway config", &e))?;
            let cfg = GatewayConfig::load(&path).map_err(|e| err("gateway config", &e))?;
            let gw = GatewayHandle::start(cfg)
                .await
                .map_err(|e| err("starting a gateway", &e))?;
            agent_toml.push_str(&format!(
                "\n[[gateway]]\nregion = \"{region}\"\naddress = \"{}\"\nserver_name = \"localhost\"\nname = \"{stem}\"\n",
                gw.local_addr()
            ));
            providers.push(provider);
            gateways.push(gw);
        }
        let path = state_dir.join("agent.toml");
        std::fs::write(&path, agent_toml).map_err(|e| err("writing agent config", &e))?;
        let cfg = AgentConfig::load(&path).map_err(|e| err("agent config", &e))?;
        let agent = AgentHandle::start(cfg)
            .await
            .map_err(|e| err("starting the agent", &e))?;
        if !agent.wait_connected(Duration::from_secs(10)).await {
            return Err(DemoError(
                "the agent could not connect to every gateway within 10 s".into(),
            ));
        }
        drop(keys);
        Ok(Demo {
            agent,
            gateways,
            providers,
            state_dir: state_dir.to_owned(),
        })
    }

    /// Stops everything.
    pub async fn stop(self) {
        self.agent.shutdown(Duration::from_secs(2)).await;
        for g in self.gateways {
            g.shutdown(Duration::from_secs(1)).await;
        }
        for p in self.providers {
            p.stop();
        }
    }
}

/// What `demo` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run the scripted tour and exit instead of serving until a signal.
    pub check: bool,
    /// Where the agent listens (default: a free port with `check`, else 8080).
    pub listen: Option<SocketAddr>,
    /// Where certificates and the generated configs go (default: a
    /// `residency-demo` directory under the system's temporary directory).
    pub state_dir: Option<PathBuf>,
    /// Serve only a mock provider on `listen` (default 127.0.0.1:8090).
    #[doc(hidden)]
    pub mock_only: bool,
    /// With `mock_only`: the key the mock requires (default: any key).
    #[doc(hidden)]
    pub mock_key: Option<String>,
}

/// Serves a lone mock provider until a signal, printing its base URL.
async fn run_mock_only(listen: Option<SocketAddr>, api_key: Option<String>) -> ExitCode {
    let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8090)));
    let opts = MockOptions {
        label: "mock-only".into(),
        api_key,
        chunk_delay: Duration::from_millis(5),
        ..MockOptions::default()
    };
    let mock = match MockProvider::start(listen, opts).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: starting the mock provider on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    println!("mock provider base URL: {}", mock.base_url());
    crate::daemon::wait_for_signal().await;
    mock.stop();
    ExitCode::SUCCESS
}

/// Runs `demo` as the command line asked.
pub async fn run(args: RunOptions) -> ExitCode {
    if args.mock_only {
        return run_mock_only(args.listen, args.mock_key).await;
    }
    let state_dir = args
        .state_dir
        .unwrap_or_else(|| std::env::temp_dir().join("residency-demo"));
    let listen = args.listen.unwrap_or_else(|| {
        if args.check {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    });
    let demo = match Demo::start(&state_dir, listen).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if args.check {
        let ok = tour::run(&demo).await;
        demo.stop().await;
        return if ok {
            println!("demo check passed");
            ExitCode::SUCCESS
        } else {
            eprintln!("demo check FAILED");
            ExitCode::from(1)
        };
    }
    print_banner(&demo);
    crate::daemon::wait_for_signal().await;
    println!("stopping");
    demo.stop().await;
    ExitCode::SUCCESS
}

fn print_banner(demo: &Demo) {
    let base = demo.agent.base_url();
    println!("Residency Agent demo is running.\n");
    println!("  OpenAI base URL:  {base}");
    for g in &demo.gateways {
        let city = g.region().catalogue_entry().map_or("", |r| r.city);
        println!(
            "  gateway          {} ({city}) on udp {}",
            g.region(),
            g.local_addr()
        );
    }
    println!("  state directory  {}", demo.state_dir.display());
    println!(
        "  health, metrics  http://{}/metrics  (/healthz /readyz /v1/status)",
        demo.agent.observe_addr()
    );
    println!("\nPublic prompts go to {DEMO_DEFAULT_REGION}; restricted and confidential ones stay in India.\n");
    println!("Try it (response headers x-residency-* say where it went):\n");
    println!(
        "  curl -si {base}/chat/completions -H 'content-type: application/json' \\\n    -d '{{\"model\":\"mock-gpt\",\"messages\":[{{\"role\":\"user\",\"content\":\"Write a haiku about monsoon\"}}]}}'\n"
    );
    println!(
        "  curl -siN {base}/chat/completions -H 'content-type: application/json' \\\n    -d '{{\"model\":\"mock-gpt\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Customer Aadhaar 2345 6789 0124, summarise the KYC notes\"}}]}}'\n"
    );
    println!("  python3 - <<'PY'\n  from openai import OpenAI\n  client = OpenAI(base_url=\"{base}\", api_key=\"unused-by-the-agent\")\n  r = client.chat.completions.with_raw_response.create(\n      model=\"mock-gpt\", messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}])\n  print(r.headers[\"x-residency-region\"], r.parse().choices[0].message.content)\n  for chunk in client.chat.completions.create(model=\"mock-gpt\", stream=True,\n          messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}]):\n      print(chunk.choices[0].delta.content or \"\", end=\"\", flush=True)\n  print()\n  PY\n");
    let mumbai = demo
        .gateways
        .iter()
        .find(|g| g.region().as_str() == "aws:ap-south-1")
        .map_or_else(String::new, |g| g.local_addr().to_string());
    let d = demo.state_dir.display();
    println!("Change routing live with a signed policy (public prompts then stay in India too):\n");
    let policy_file = demo.state_dir.join("india-only.toml");
    let _ = std::fs::write(&policy_file, tour::DEMO_PUSHED_POLICY);
    println!("  residency-agent policy lint {d}/india-only.toml");
    println!("  residency-agent policy sign --policy {d}/india-only.toml \\\n    --key {d}/policy-keys/policy-signing.key --version 1 --out {d}/india-only.bundle");
    println!("  residency-agent policy push --gateway {mumbai} --server-name localhost \\\n    --ca {d}/certs/ca.pem --cert {d}/certs/admin.pem --key {d}/certs/admin.key {d}/india-only.bundle");
    println!("  residency-agent policy history --socket {d}/agent-state/admin.sock\n");
    println!("Press Ctrl-C to stop.");
}
