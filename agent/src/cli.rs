//! The command line: `run`, `gateway`, `demo`, `classify`, `keys gen`, `version`.
//!
//! Exit codes: 0 success, 1 failure while running, 64 bad configuration or
//! usage (EX_USAGE), 65 bad input data (EX_DATAERR).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use residency_proto::RegionId;

use crate::config::{AgentConfig, GatewayConfig};
use crate::telemetry::{self, LogFormat};

/// Exit code for a configuration or usage error.
pub const EXIT_CONFIG: u8 = 64;
/// Exit code for bad input data.
pub const EXIT_DATA: u8 = 65;

/// How long in-flight requests may take to finish after SIGTERM.
const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Routes LLM requests only to the regions a compliance policy allows.
#[derive(Debug, Parser)]
#[command(name = "residency-agent", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    /// Default log level when RUST_LOG is not set.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: OpenAI-compatible HTTP in, QUIC to in-region gateways out.
    Run {
        /// Path to agent.toml.
        #[arg(long, short, default_value = "/etc/residency-agent/agent.toml")]
        config: PathBuf,
    },
    /// Run an in-region gateway.
    Gateway {
        /// Path to gateway.toml.
        #[arg(long, short, default_value = "/etc/residency-agent/gateway.toml")]
        config: PathBuf,
    },
    /// Run a mock provider, three gateways and the agent on loopback.
    Demo(DemoArgs),
    /// Classify text (or an OpenAI request body) and print the entities as JSON.
    Classify(ClassifyArgs),
    /// Certificates for a development fleet.
    Keys {
        /// Keys subcommand.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the version.
    Version,
}

/// `demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run a scripted tour against the demo and exit 0 only if every step behaved.
    #[arg(long)]
    pub check: bool,
    /// Where the agent listens (`--check` uses a free port unless given).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Where certificates and the generated configs go.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// `classify` options (see `shared/spec/sensitivity.md`).
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Classify this text instead of reading standard input.
    #[arg(long)]
    pub text: Option<String>,
    /// Standard input holds one `{"id","text"}` JSON object per line.
    #[arg(long)]
    pub jsonl: bool,
    /// Also print each entity's value (the output may land in logs).
    #[arg(long)]
    pub show_values: bool,
    /// Classify an OpenAI request body read from this file; prints the tier
    /// and counts per entity type.
    #[arg(long)]
    pub request: Option<PathBuf>,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a development fleet CA, a certificate per gateway region, one
    /// for the agent and one for an operator.
    Gen {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Gateway region to issue a certificate for (repeatable).
        #[arg(long = "region", default_values_t = default_regions())]
        regions: Vec<RegionId>,
        /// The agent certificate's name.
        #[arg(long, default_value = "branch-agent")]
        agent_name: String,
        /// Extra DNS name or IP address for gateway certificates (repeatable).
        #[arg(long = "san")]
        sans: Vec<String>,
    },
}

fn default_regions() -> Vec<RegionId> {
    crate::keys::KeysSpec::default().regions
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Version => {
            println!("{}", crate::SOFTWARE);
            ExitCode::SUCCESS
        }
        Command::Keys {
            command:
                KeysCommand::Gen {
                    out,
                    regions,
                    agent_name,
                    sans,
                },
        } => {
            let spec = crate::keys::KeysSpec {
                regions,
                agent_name,
                extra_names: sans,
            };
            match crate::keys::generate(&out, &spec) {
                Ok(k) => {
                    println!("fleet CA:  {}", k.ca_cert.display());
                    for (r, c, _) in &k.gateways {
                        println!("gateway {r}: {}", c.display());
                    }
                    println!("agent:     {}", k.agent.0.display());
                    println!("admin:     {}", k.admin.0.display());
                    println!(
                        "keep {} private; it signs the fleet",
                        k.dir.join("ca.key").display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string(), 1),
            }
        }
        Command::Classify(args) => {
            use crate::classify::cli::{self as classify_cli, CliError, CliOptions};
            let opts = CliOptions {
                text: args.text,
                jsonl: args.jsonl,
                show_values: args.show_values,
                request: args.request,
            };
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let result = classify_cli::run(&opts, &mut stdin.lock(), &mut out);
            let flushed = std::io::Write::flush(&mut out);
            match (result, flushed) {
                (Ok(()), Ok(())) => ExitCode::SUCCESS,
                (Err(e @ CliError::ConflictingInputs), _) => fail(&e.to_string(), EXIT_CONFIG),
                (Err(e @ (CliError::BadJsonLine { .. } | CliError::MissingText { .. })), _) => {
                    fail(&e.to_string(), EXIT_DATA)
                }
                (Err(e), _) => fail(&e.to_string(), 1),
                (Ok(()), Err(e)) => fail(&format!("cannot write output: {e}"), 1),
            }
        }
        Command::Run { config } => {
            telemetry::init(cli.log_format, &cli.log_level);
            let cfg = match AgentConfig::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(&e.to_string(), EXIT_CONFIG),
            };
            block_on(async move {
                let agent = match crate::AgentHandle::start(cfg).await {
                    Ok(a) => a,
                    Err(e) => return fail(&e.to_string(), EXIT_CONFIG),
                };
                wait_for_signal().await;
                tracing::info!("draining");
                agent.shutdown(DRAIN_GRACE).await;
                ExitCode::SUCCESS
            })
        }
        Command::Gateway { config } => {
            telemetry::init(cli.log_format, &cli.log_level);
            let cfg = match GatewayConfig::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(&e.to_string(), EXIT_CONFIG),
            };
            block_on(async move {
                let gw = match crate::GatewayHandle::start(cfg).await {
                    Ok(g) => g,
                    Err(e) => return fail(&e.to_string(), EXIT_CONFIG),
                };
                wait_for_signal().await;
                tracing::info!("draining");
                gw.shutdown(DRAIN_GRACE).await;
                ExitCode::SUCCESS
            })
        }
        Command::Demo(args) => {
            let level = if args.check && std::env::var_os("RUST_LOG").is_none() {
                "warn"
            } else {
                cli.log_level.as_str()
            };
            telemetry::init(
                if cli.log_format == LogFormat::Auto {
                    LogFormat::Text
                } else {
                    cli.log_format
                },
                level,
            );
            block_on(crate::demo::run(args))
        }
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

fn block_on<F: std::future::Future<Output = ExitCode>>(f: F) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => fail(&format!("cannot start the runtime: {e}"), 1),
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
