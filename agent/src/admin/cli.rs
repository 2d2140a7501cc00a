//! The operator's side of the admin channels: `policy push` (to a gateway
//! over QUIC with an admin certificate, or to the local agent through its
//! admin socket) and `policy history`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::admin::{agent_request, push_to_gateway, AdminError};
use crate::transport::tls::TlsFiles;

/// Where `policy push` sends a bundle.
#[derive(Debug)]
pub enum PushTarget {
    /// A gateway at `host:port`, reached with an admin certificate.
    Gateway {
        /// `host:port`.
        address: String,
        /// The name in the gateway's certificate; default: the host part.
        server_name: Option<String>,
        /// Fleet CA, admin certificate and key.
        tls: TlsFiles,
    },
    /// The local agent, through its admin socket.
    Agent {
        /// The socket.
        socket: PathBuf,
    },
}

/// Pushes `bundle` to `target` and says which version it activated.
pub async fn push(
    target: PushTarget,
    bundle: Vec<u8>,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let line = match target {
        PushTarget::Agent { socket } => {
            let (status, v) = agent_request(
                &socket,
                http::Method::PUT,
                "/v1/admin/policy",
                bundle.into(),
            )
            .await?;
            if !status.is_success() {
                let why = v["error"]["message"].as_str().unwrap_or("unknown reason");
                return Err(AdminError::Refused(format!("by the agent: {why}")));
            }
            format!("agent activated policy version {}", v["version"])
        }
        PushTarget::Gateway {
            address,
            server_name,
            tls,
        } => {
            let name = server_name.unwrap_or_else(|| host_of(&address));
            let v = push_to_gateway(&address, &name, &tls, bundle).await?;
            format!("gateway {address} activated policy version {v}; connected agents fetch it now")
        }
    };
    writeln!(out, "{line}").map_err(|e| AdminError::Transport(format!("cannot write output: {e}")))
}

/// Prints the running agent's active policy and its stored history.
pub async fn history(socket: &Path, out: &mut impl Write) -> Result<(), AdminError> {
    let get =
        |path: &'static str| agent_request(socket, http::Method::GET, path, bytes::Bytes::new());
    let (_, a) = get("/v1/admin/policy").await?;
    let (_, h) = get("/v1/admin/policy/history").await?;
    let mut text = format!(
        "active: {} (source {})\nrefused bundles since start: {}\n{:>10}  {:<18}  {:<12}  active\n",
        a["version"],
        a["source"].as_str().unwrap_or("?"),
        a["refused_bundles"],
        "version",
        "key id",
        "issued at"
    );
    for item in h["history"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "{:>10}  {:<18}  {:<12}  {}\n",
            item["version"].to_string(),
            item["key_id"].as_str().unwrap_or("?"),
            item["issued_at"].to_string(),
            if item["active"] == true { "*" } else { "" }
        ));
    }
    out.write_all(text.as_bytes())
        .map_err(|e| AdminError::Transport(format!("cannot write output: {e}")))
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(address: &str) -> String {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_owned();
    }
    address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_the_port() {
        assert_eq!(host_of("gw.bank.example:4433"), "gw.bank.example");
        assert_eq!(host_of("[::1]:4433"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }
}
