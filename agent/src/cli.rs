//! The command line: `run`, `gateway`, `demo`, `classify`, `keys gen`, `version`.
//!
//! Exit codes: 0 success, 1 failure while running, 64 bad configuration or
//! usage (EX_USAGE), 65 bad input data (EX_DATAERR).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use residency_proto::RegionId;

use crate::daemon::{self, DaemonError};
use crate::telemetry::LogFormat;

/// Exit code for a configuration or usage error.
pub const EXIT_CONFIG: u8 = 64;
/// Exit code for bad input data.
pub const EXIT_DATA: u8 = 65;

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
        /// Check the config instead of serving: print where each model's
        /// requests would go and whether the provider credentials work
        /// (exit 0), or why not (1; 64 for a bad config).
        #[arg(long)]
        check: bool,
    },
    /// Run a mock provider, three gateways and the agent on loopback.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Classify text (or an OpenAI request body) and print the entities as JSON.
    Classify(ClassifyArgs),
    /// Compliance policy: keys, lint, sign, verify, show, test, push, history.
    Policy {
        /// Policy subcommand.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The tamper-evident audit chain: verify, export, prune.
    Audit {
        /// Audit subcommand.
        #[command(subcommand)]
        command: AuditCommand,
    },
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
    /// Serve only the mock provider on `--listen` (for SDK checks).
    #[arg(long, hide = true)]
    pub mock_only: bool,
    /// With `--mock-only`: the API key the mock requires (default: any).
    #[arg(long, hide = true, requires = "mock_only")]
    pub mock_key: Option<String>,
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

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Signing keys.
    Keys {
        /// Keys subcommand.
        #[command(subcommand)]
        command: PolicyKeysCommand,
    },
    /// Check a policy file; errors give line, column and the field at fault.
    Lint {
        /// The policy (TOML).
        file: PathBuf,
    },
    /// Sign a policy into a bundle.
    Sign {
        /// The policy (TOML); it is linted first.
        #[arg(long)]
        policy: PathBuf,
        /// The secret signing key (`policy keys gen`).
        #[arg(long)]
        key: PathBuf,
        /// The bundle version; must be higher than every version pushed before.
        #[arg(long)]
        version: u64,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a bundle's signature against public keys.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// A trusted public key (repeatable).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
    },
    /// Print a bundle's header and policy.
    Show {
        /// The bundle.
        bundle: PathBuf,
    },
    /// Evaluate a policy against a request and explain the decision.
    Test {
        /// The policy (TOML).
        #[arg(long)]
        policy: PathBuf,
        /// An OpenAI request body (JSON).
        #[arg(long)]
        request: PathBuf,
        /// The client's address.
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// A request header, `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Decide as the agent with this `agent.toml` would: its gateway
        /// regions, region catalogue and geography (site map, GeoIP,
        /// trusted proxies).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Push a signed bundle to a gateway (which hands it to its agents) or to
    /// the local agent.
    Push {
        /// The bundle.
        bundle: PathBuf,
        /// Gateway `host:port` (QUIC, admin certificate).
        #[arg(long, conflicts_with = "agent", required_unless_present = "agent")]
        gateway: Option<String>,
        /// Name in the gateway certificate (default: the host part).
        #[arg(long)]
        server_name: Option<String>,
        /// Fleet CA.
        #[arg(long, default_value = "/etc/residency-agent/certs/ca.pem")]
        ca: PathBuf,
        /// Admin certificate.
        #[arg(long, default_value = "/etc/residency-agent/certs/admin.pem")]
        cert: PathBuf,
        /// Admin key.
        #[arg(long, default_value = "/etc/residency-agent/certs/admin.key")]
        key: PathBuf,
        /// Push to the local agent through its admin socket.
        #[arg(long)]
        agent: bool,
        /// The agent's admin socket.
        #[arg(long, default_value = "/run/residency-agent/admin.sock")]
        socket: PathBuf,
    },
    /// The running agent's active policy and stored history.
    History {
        /// The agent's admin socket.
        #[arg(long, default_value = "/run/residency-agent/admin.sock")]
        socket: PathBuf,
    },
}

/// `audit` subcommands. They open the store directly, so the agent must be
/// stopped; with `--socket` they ask the running agent instead.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's hash and link; names the first bad record.
    Verify {
        /// The agent's state directory.
        #[arg(long, default_value = "/var/lib/residency-agent")]
        state_dir: PathBuf,
        /// Ask the running agent through its admin socket.
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Write records as JSON lines (for a SIEM).
    Export {
        /// The agent's state directory.
        #[arg(long, default_value = "/var/lib/residency-agent")]
        state_dir: PathBuf,
        /// Only records at or after this time (RFC 3339 or unix seconds).
        #[arg(long)]
        since: Option<String>,
        /// Only records before this time.
        #[arg(long)]
        until: Option<String>,
        /// Ask the running agent through its admin socket.
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Remove old records behind a hashed anchor that keeps the chain verifiable.
    Prune {
        /// The agent's state directory.
        #[arg(long, default_value = "/var/lib/residency-agent")]
        state_dir: PathBuf,
        /// Remove records older than this (e.g. `90d`, `12h`).
        #[arg(long)]
        older_than: Option<String>,
        /// Keep at most this many records.
        #[arg(long)]
        max_records: Option<u64>,
    },
}

/// `policy keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyKeysCommand {
    /// Write `policy-signing.key` (secret, 0600) and `policy-signing.pub`.
    Gen {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
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
        /// Days the gateway, agent and admin certificates are valid.
        #[arg(long, default_value_t = crate::keys::LEAF_DAYS)]
        days: u32,
        /// Days the fleet CA is valid.
        #[arg(long, default_value_t = crate::keys::CA_DAYS)]
        ca_days: u32,
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
                    days,
                    ca_days,
                },
        } => {
            let spec = crate::keys::KeysSpec {
                regions,
                agent_name,
                extra_names: sans,
                ca_days,
                leaf_days: days,
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
        Command::Policy { command } => run_policy(command),
        Command::Audit { command } => run_audit(command),
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
        Command::Run { config } => exit(
            daemon::run_agent(&config, cli.log_format, &cli.log_level),
            DaemonError::exit_code,
        ),
        Command::Gateway {
            config,
            check: true,
        } => daemon::check_gateway(&config),
        Command::Gateway { config, .. } => exit(
            daemon::run_gateway(&config, cli.log_format, &cli.log_level),
            DaemonError::exit_code,
        ),
        #[cfg(feature = "demo")]
        Command::Demo(args) => {
            let level = if args.check && std::env::var_os("RUST_LOG").is_none() {
                "warn"
            } else {
                cli.log_level.as_str()
            };
            crate::telemetry::init(
                if cli.log_format == LogFormat::Auto {
                    LogFormat::Text
                } else {
                    cli.log_format
                },
                level,
            );
            block_on(crate::demo::run(crate::demo::RunOptions {
                check: args.check,
                listen: args.listen,
                state_dir: args.state_dir,
                mock_only: args.mock_only,
                mock_key: args.mock_key,
            }))
        }
    }
}

fn run_policy(command: PolicyCommand) -> ExitCode {
    use crate::policy::cli as pcli;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let done = |r: Result<(), pcli::PolicyCliError>| match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string(), e.exit_code()),
    };
    match command {
        PolicyCommand::Keys {
            command: PolicyKeysCommand::Gen { out: dir },
        } => done(pcli::keys_gen(&dir, &mut out)),
        PolicyCommand::Lint { file } => done(pcli::lint(&file, &mut out)),
        PolicyCommand::Sign {
            policy,
            key,
            version,
            out: bundle,
        } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            done(pcli::sign(&policy, &key, version, &bundle, now, &mut out))
        }
        PolicyCommand::Verify { bundle, keys } => done(pcli::verify(&bundle, &keys, &mut out)),
        PolicyCommand::Show { bundle } => done(pcli::show(&bundle, &mut out)),
        PolicyCommand::Test {
            policy,
            request,
            client_ip,
            headers,
            config,
        } => {
            let mut parsed = Vec::new();
            for h in &headers {
                match h.split_once(':') {
                    Some((k, v)) => {
                        parsed.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    }
                    None => {
                        return fail(
                            &format!("--header {h:?} must be written Name: value"),
                            EXIT_CONFIG,
                        )
                    }
                }
            }
            let site = match &config {
                Some(path) => {
                    let site = crate::config::AgentConfig::load(path)
                        .map_err(|e| pcli::PolicyCliError::Invalid {
                            path: path.clone(),
                            reason: e.to_string(),
                        })
                        .and_then(|cfg| pcli::Site::from_config(&cfg, path));
                    match site {
                        Ok(s) => Some(s),
                        Err(e) => return done(Err(e)),
                    }
                }
                None => None,
            };
            let classifier = crate::classify::Classifier::new();
            done(pcli::test(
                &policy,
                &request,
                client_ip,
                &parsed,
                site.as_ref(),
                &classifier,
                &mut out,
            ))
        }
        PolicyCommand::Push {
            bundle,
            gateway,
            server_name,
            ca,
            cert,
            key,
            agent,
            socket,
        } => {
            use crate::admin::cli::{self as admin_cli, PushTarget};
            let bytes = match std::fs::read(&bundle) {
                Ok(b) => b,
                Err(e) => return fail(&format!("{}: {e}", bundle.display()), EXIT_DATA),
            };
            let target = match (agent, gateway) {
                (true, _) => PushTarget::Agent { socket },
                (false, Some(address)) => PushTarget::Gateway {
                    address,
                    server_name,
                    tls: crate::transport::tls::TlsFiles { ca, cert, key },
                },
                (false, None) => return fail("give --gateway ADDR or --agent", EXIT_CONFIG),
            };
            block_on(async move {
                let pushed = admin_cli::push(target, bytes, &mut std::io::stdout()).await;
                exit(pushed, admin_exit)
            })
        }
        PolicyCommand::History { socket } => block_on(async move {
            let listed = crate::admin::cli::history(&socket, &mut std::io::stdout()).await;
            exit(listed, admin_exit)
        }),
    }
}

/// A refused request is bad input (65); an unreachable peer is 1.
fn admin_exit(e: &crate::admin::AdminError) -> u8 {
    match e {
        crate::admin::AdminError::Refused(_) => EXIT_DATA,
        _ => 1,
    }
}

fn run_audit(command: AuditCommand) -> ExitCode {
    use crate::audit::cli as acli;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let via_socket = |socket: PathBuf, path: String| {
        block_on(async move {
            match crate::admin::agent_request(
                &socket,
                http::Method::GET,
                &path,
                bytes::Bytes::new(),
            )
            .await
            {
                Ok((status, v)) if status.is_success() => {
                    println!("{v}");
                    ExitCode::SUCCESS
                }
                Ok((_, v)) => fail(&v.to_string(), EXIT_DATA),
                Err(e) => fail(&e.to_string(), 1),
            }
        })
    };
    match command {
        AuditCommand::Verify {
            socket: Some(s), ..
        } => via_socket(s, "/v1/admin/audit/verify".into()),
        AuditCommand::Verify {
            state_dir,
            socket: None,
        } => match acli::verify(&state_dir, &mut out) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string(), EXIT_DATA),
        },
        AuditCommand::Export {
            socket: Some(s),
            since,
            until,
            ..
        } => {
            let mut q = Vec::new();
            if let Some(v) = since {
                q.push(format!("since={v}"));
            }
            if let Some(v) = until {
                q.push(format!("until={v}"));
            }
            let path = format!("/v1/admin/audit/export?{}", q.join("&"));
            block_on(async move {
                match crate::admin::agent_request_raw(&s, &path).await {
                    Ok(body) => {
                        print!("{body}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e.to_string(), 1),
                }
            })
        }
        AuditCommand::Export {
            state_dir,
            since,
            until,
            socket: None,
        } => match acli::export(&state_dir, since.as_deref(), until.as_deref(), &mut out) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string(), EXIT_DATA),
        },
        AuditCommand::Prune {
            state_dir,
            older_than,
            max_records,
        } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            match acli::prune(
                &state_dir,
                older_than.as_deref(),
                max_records,
                now,
                &mut out,
            ) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(&e.to_string(), EXIT_DATA),
            }
        }
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// Runs `f` on a fresh runtime.
fn block_on<F: std::future::Future<Output = ExitCode>>(f: F) -> ExitCode {
    match daemon::runtime(None) {
        Ok(rt) => rt.block_on(f),
        Err(e) => fail(&format!("cannot start the runtime: {e}"), 1),
    }
}

/// Prints a failed command's error; `code` says which exit code it earns.
fn exit<E: std::fmt::Display>(result: Result<(), E>, code: impl Fn(&E) -> u8) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string(), code(&e)),
    }
}
