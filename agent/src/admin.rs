//! Local administration: a Unix socket on the agent (only processes that can
//! open the path can use it; no port is opened) and the operator's clients,
//! for the agent's socket and for pushing policy to a gateway over QUIC with
//! an admin certificate.
//!
//! Socket API (HTTP/1.1, JSON answers):
//! - `PUT /v1/admin/policy` with a bundle as the body: verify, store, activate.
//! - `GET /v1/admin/policy`: the active policy's version, key id and source.
//! - `GET /v1/admin/policy/history`: stored bundles, newest first.
//! - `GET /v1/admin/status`: gateways, their health and round-trip time.
//! - `GET /v1/admin/audit/verify`, `GET /v1/admin/audit/export`: the audit
//!   chain checked, or its records as NDJSON.
//!
//! Errors are `{"error":{"message","type":"admin_error","code","param":null}}`;
//! an unknown path is a 404, a known path with another method a 405.

pub mod cli;
pub mod metrics;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http::{header, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use residency_proto::{Codec, Frame};
use serde_json::json;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::policy::active::{InstallError, PolicyState, MAX_BUNDLE_BYTES};
use crate::transport::pool::GatewayPool;
use crate::transport::stream::call;
use crate::transport::stream::quic::Quic;
use crate::transport::tls::{TlsFiles, TlsMaterial};

/// What the admin socket serves.
#[derive(Debug)]
pub struct Admin {
    /// Policy state.
    pub policy: Arc<PolicyState>,
    /// Gateway links.
    pub pool: Arc<GatewayPool>,
    /// The audit chain, for verify and export while running.
    pub audit_log: crate::audit::AuditLog,
    /// The audit writer, for its lag.
    pub audit: crate::audit::AuditWriter,
}

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The socket could not be created.
    #[error("admin socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The peer could not be reached or failed.
    #[error("{0}")]
    Transport(String),
    /// The peer refused the request; the message says why.
    #[error("refused: {0}")]
    Refused(String),
}

/// Binds the admin socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> Result<UnixListener, AdminError> {
    let err = |source| AdminError::Socket {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => debug!(path = %path.display(), "removed a stale admin socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(listener)
}

/// Serves the admin socket until `shutdown`, within `limits` (its own, so a
/// full API listener does not lock it out).
pub async fn serve(
    listener: UnixListener,
    admin: Arc<Admin>,
    limits: crate::serve::Limits,
    counters: crate::serve::ConnCounters,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    crate::serve::serve(listener, router(admin), limits, counters, shutdown, tracker).await;
}

/// The admin socket's endpoints; any other path is a 404, a known path with
/// another method a 405, both with the error JSON.
fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/v1/admin/policy", get(policy).put(push_policy))
        .route("/v1/admin/policy/history", get(policy_history))
        .route("/v1/admin/audit/verify", get(audit_verify))
        .route("/v1/admin/audit/export", get(audit_export))
        .route("/v1/admin/status", get(status))
        .fallback(unknown_url)
        .method_not_allowed_fallback(wrong_method)
        .with_state(admin)
}

fn reply(status: StatusCode, v: serde_json::Value) -> Response {
    (status, Json(v)).into_response()
}

/// The error answer of the local listeners, in the shape of the agent's API
/// errors: `{"error":{"message","type","code","param":null}}`.
fn json_error(
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
) -> Response {
    reply(
        status,
        json!({"error": {"message": message, "type": kind, "code": code, "param": null}}),
    )
}

fn error(status: StatusCode, code: &'static str, message: String) -> Response {
    json_error(status, "admin_error", code, message)
}

async fn unknown_url(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "unknown_url",
        format!("no admin endpoint {method} {}", uri.path()),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}

/// `PUT /v1/admin/policy`: verify, store and activate a bundle.
async fn push_policy(State(admin): State<Arc<Admin>>, body: axum::body::Body) -> Response {
    let body = match Limited::new(body, MAX_BUNDLE_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bundle_too_large",
                format!("cannot read the bundle (at most {MAX_BUNDLE_BYTES} bytes): {e}"),
            )
        }
    };
    let policy = admin.policy.clone();
    match tokio::task::spawn_blocking(move || policy.install(&body)).await {
        Ok(Ok(version)) => {
            info!(version, "policy pushed through the admin socket");
            reply(StatusCode::OK, json!({"version": version}))
        }
        Ok(Err(InstallError::Verify(e))) => {
            error(StatusCode::CONFLICT, "bundle_refused", e.to_string())
        }
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_failed",
            e.to_string(),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// `GET /v1/admin/policy`: the active policy.
async fn policy(State(admin): State<Arc<Admin>>) -> Response {
    let v = match admin.policy.current() {
        Some(p) => json!({
            "source": if p.version.is_some() { "signed" } else { "builtin-baseline" },
            "version": p.version,
            "key_id": p.key_id,
            "name": p.policy.name(),
            "rules": p.policy.rules().len(),
            "refused_bundles": admin.policy.refused(),
        }),
        None => {
            json!({"source": "none", "version": null, "refused_bundles": admin.policy.refused()})
        }
    };
    reply(StatusCode::OK, v)
}

/// `GET /v1/admin/policy/history`: stored bundles, newest first.
async fn policy_history(State(admin): State<Arc<Admin>>) -> Response {
    let active = admin.policy.version();
    let items: Vec<serde_json::Value> = admin
        .policy
        .history()
        .into_iter()
        .map(|(version, key_id, issued_at)| {
            json!({"version": version, "key_id": key_id, "issued_at": issued_at, "active": Some(version) == active})
        })
        .collect();
    reply(StatusCode::OK, json!({ "history": items }))
}

/// `GET /v1/admin/audit/verify`: checks the audit chain.
async fn audit_verify(State(admin): State<Arc<Admin>>) -> Response {
    let log = admin.audit_log.clone();
    match tokio::task::spawn_blocking(move || crate::audit::verify_log(&log)).await {
        Ok(Ok(r)) => reply(
            StatusCode::OK,
            json!({"ok": true, "records": r.records, "first_seq": r.first_seq, "last_seq": r.last_seq,
                   "head_hash": r.head_hash}),
        ),
        Ok(Err(e)) => reply(
            StatusCode::CONFLICT,
            json!({"ok": false, "error": e.to_string()}),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// `GET /v1/admin/audit/export[?since=..&until=..]`: the records as NDJSON.
async fn audit_export(State(admin): State<Arc<Admin>>, RawQuery(query): RawQuery) -> Response {
    let q = query.unwrap_or_default();
    let param = |k: &str| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.to_owned())
    };
    let parse = |flag: &'static str, v: Option<String>| {
        v.map(|v| crate::audit::cli::parse_time(flag, &v))
            .transpose()
    };
    let (since, until) = match (
        parse("since", param("since")),
        parse("until", param("until")),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => {
            return error(StatusCode::BAD_REQUEST, "bad_time", e.to_string())
        }
    };
    let log = admin.audit_log.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        crate::audit::export_log(&log, since, until, &mut buf).map(|_| buf)
    })
    .await;
    match out {
        Ok(Ok(buf)) => ([(header::CONTENT_TYPE, "application/x-ndjson")], buf).into_response(),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "export_failed",
            e.to_string(),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// `GET /v1/admin/status`: gateways, their health and round-trip time.
async fn status(State(admin): State<Arc<Admin>>) -> Response {
    let gateways: Vec<serde_json::Value> = admin
        .pool
        .links()
        .iter()
        .map(|l| metrics::gateway_status(l))
        .collect();
    reply(
        StatusCode::OK,
        json!({"software": crate::SOFTWARE, "policy_version": admin.policy.version(), "gateways": gateways}),
    )
}

/// Sends one request to an agent's admin socket; returns status and body.
pub async fn agent_request(
    socket: &Path,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(StatusCode, serde_json::Value), AdminError> {
    let (status, bytes) = socket_request(socket, method, path, body).await?;
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, v))
}

/// One HTTP/1.1 exchange over the admin socket.
async fn socket_request(
    socket: &Path,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(StatusCode, Bytes), AdminError> {
    let t = |e: &dyn std::fmt::Display| AdminError::Transport(e.to_string());
    let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
        AdminError::Transport(format!(
            "cannot connect to {}: {e} (is the agent running, and may you open its admin socket?)",
            socket.display()
        ))
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| t(&e))?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "localhost")
        .body(Full::new(body))
        .map_err(|e| t(&e))?;
    let resp = sender.send_request(req).await.map_err(|e| t(&e))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| t(&e))?
        .to_bytes();
    Ok((status, bytes))
}

/// GETs a path from an agent's admin socket and returns the body as text.
pub async fn agent_request_raw(socket: &Path, path: &str) -> Result<String, AdminError> {
    let (status, bytes) = socket_request(socket, Method::GET, path, Bytes::new()).await?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status.is_success() {
        Ok(text)
    } else {
        Err(AdminError::Refused(text))
    }
}

/// How long a gateway may take to verify, store and activate a pushed bundle.
const PUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Pushes a bundle to a gateway over QUIC with an admin certificate; returns
/// the version the gateway activated.
pub async fn push_to_gateway(
    address: &str,
    server_name: &str,
    tls: &TlsFiles,
    bundle: Vec<u8>,
) -> Result<u64, AdminError> {
    let t = |e: &dyn std::fmt::Display| AdminError::Transport(e.to_string());
    let material = TlsMaterial::load(tls).map_err(|e| t(&e))?;
    let crypto = material.admin_client_config().map_err(|e| t(&e))?;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).map_err(|e| t(&e))?;
    let client = quinn::ClientConfig::new(Arc::new(quic));
    let addr = tokio::net::lookup_host(address)
        .await
        .map_err(|e| t(&e))?
        .next()
        .ok_or_else(|| AdminError::Transport(format!("cannot resolve {address}")))?;
    let bind: std::net::SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().map_err(|e| t(&e))?
    } else {
        "0.0.0.0:0".parse().map_err(|e| t(&e))?
    };
    let endpoint = quinn::Endpoint::client(bind).map_err(|e| t(&e))?;
    let conn = endpoint
        .connect_with(client, addr, server_name)
        .map_err(|e| t(&e))?
        .await
        .map_err(|e| t(&e))?;
    let codec = Codec::default();
    let frame = Frame::PolicyBundle { bundle };
    let result = match call(&Quic(conn.clone()), &codec, &frame, PUSH_TIMEOUT).await {
        Ok(Frame::PolicyAck { version }) => Ok(version),
        Ok(Frame::Error(e)) => Err(AdminError::Refused(e.message)),
        Ok(_) => Err(AdminError::Transport(
            "unexpected answer from the gateway".into(),
        )),
        Err(e) => Err(t(&e)),
    };
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    if let Err(e) = &result {
        warn!(gateway = address, error = %e, "policy push failed");
    }
    result
}
