//! The process as a service: running the agent or a gateway under systemd
//! (readiness, the watchdog, SIGHUP reload, drain on SIGTERM) and the tokio
//! runtime the commands run on.

use std::path::Path;
use std::time::Duration;

use crate::app::StartError;
use crate::config::{AgentConfig, ConfigError, GatewayConfig};
use crate::gateway::GatewayError;
use crate::telemetry::{self, LogFormat};

/// How long in-flight requests may take to finish after SIGTERM.
const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Why the agent or a gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration file cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The agent could not start.
    #[error(transparent)]
    Agent(#[from] StartError),
    /// The gateway could not start.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The tokio runtime could not be built.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl DaemonError {
    /// 64 (EX_USAGE) for a bad configuration or one the daemon cannot start
    /// with, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Runtime(_) => 1,
            _ => 64,
        }
    }
}

/// A signal the daemon acts on.
enum Signal {
    /// SIGHUP: reload the configuration.
    Reload,
    /// SIGTERM or SIGINT: drain and stop.
    Stop,
}

/// Runs the agent with the config at `config` until SIGTERM or SIGINT, then
/// drains. Logging starts first, with `log_level` unless RUST_LOG is set.
pub fn run_agent(config: &Path, log_format: LogFormat, log_level: &str) -> Result<(), DaemonError> {
    telemetry::init(log_format, log_level);
    let cfg = AgentConfig::load(config)?;
    open_file_limit(cfg.limits.max_connections);
    runtime(Some(cfg.worker_threads))
        .map_err(DaemonError::Runtime)?
        .block_on(async move {
            let agent = crate::AgentHandle::start(cfg).await?;
            // Config and policy are loaded and the listeners bound.
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            let agent = std::sync::Arc::new(agent);
            // Fed only while the request path answers.
            let a = agent.clone();
            feed_watchdog(move || {
                let a = a.clone();
                async move { a.request_path_alive().await }
            });
            serve_signals(|| AgentConfig::load(config), |new| agent.reload(new)).await;
            tracing::info!("draining");
            agent.shutdown(DRAIN_GRACE).await;
            Ok(())
        })
}

/// File descriptors the agent needs besides its API connections: the local
/// listeners' connections (64 each), gateway sockets, the audit and policy
/// stores, logs.
const FD_HEADROOM: u64 = 512;

/// Raises the soft open-file limit to the hard one (the unit sets both with
/// `LimitNOFILE`), and warns when even that is too low for
/// `max_connections`: the excess would then fail at accept instead of getting
/// the agent's quick 503.
fn open_file_limit(max_connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit.current = limit.maximum,
            Err(e) => tracing::debug!(error = %e, "cannot raise the open-file limit"),
        }
    }
    let need = max_connections as u64 + FD_HEADROOM;
    match limit.current {
        Some(have) if have < need => tracing::warn!(
            open_files = have,
            needed = need,
            max_connections,
            "the open-file limit is below limits.max_connections plus {FD_HEADROOM}; raise LimitNOFILE or lower limits.max_connections"
        ),
        _ => {}
    }
}

/// Runs a gateway with the config at `config` until SIGTERM or SIGINT, then
/// drains. Logging starts first, with `log_level` unless RUST_LOG is set.
pub fn run_gateway(
    config: &Path,
    log_format: LogFormat,
    log_level: &str,
) -> Result<(), DaemonError> {
    telemetry::init(log_format, log_level);
    let cfg = GatewayConfig::load(config)?;
    runtime(cfg.worker_threads)
        .map_err(DaemonError::Runtime)?
        .block_on(async move {
            let gw = crate::GatewayHandle::start(cfg).await?;
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            // Fed only while a new connection gets an answer.
            let prober = gw.prober();
            feed_watchdog(move || {
                let p = prober.clone();
                async move { p.alive().await }
            });
            serve_signals(|| GatewayConfig::load(config), |new| gw.reload(new)).await;
            tracing::info!("draining");
            gw.shutdown(DRAIN_GRACE).await;
            Ok(())
        })
}

/// `gateway --check`: prints the report of [`crate::gateway::check`].
pub fn check_gateway(config: &Path) -> std::process::ExitCode {
    let cfg = match GatewayConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(crate::gateway::check::report(&cfg)) {
        Ok(report) => {
            print!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(report) => {
            print!("{report}");
            std::process::ExitCode::from(1)
        }
    }
}

/// A multi-thread runtime with `workers` threads (default: one per CPU).
pub fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder.enable_all().build()
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

/// When systemd runs a watchdog, feeds it at half its interval, but only
/// while `alive` says the request path answers; otherwise systemd restarts
/// the service.
fn feed_watchdog<F, Fut>(alive: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if alive().await {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            } else {
                tracing::warn!("the request path did not answer; not feeding the watchdog");
            }
        }
    });
}

/// Handles signals as systemd sends them until SIGTERM or SIGINT: SIGHUP
/// loads the config again and applies it (a bad one changes nothing), with
/// RELOADING=1 and READY=1 around it. Sends STOPPING=1 before returning.
async fn serve_signals<C, E: std::fmt::Display, R: std::fmt::Display>(
    load: impl Fn() -> Result<C, E>,
    apply: impl Fn(&C) -> Result<Vec<&'static str>, R>,
) {
    while let Signal::Reload = next_signal().await {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
        match load() {
            Ok(new) => match apply(&new) {
                Ok(restart) if restart.is_empty() => {}
                Ok(restart) => {
                    tracing::warn!(settings = ?restart, "these changes take effect after a restart")
                }
                Err(e) => {
                    tracing::error!(error = %e, "reload failed; the running configuration stays")
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "reload refused; the running configuration stays")
            }
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

async fn next_signal() -> Signal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            return tokio::select! {
                _ = term.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
                _ = tokio::signal::ctrl_c() => Signal::Stop,
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    Signal::Stop
}
