//! Policy synchronisation with gateways: a gateway announces the policy
//! version it holds on each agent's control stream; an announced version
//! newer than ours is fetched, verified and activated, and a gateway behind
//! ours is offered our bundle, so a policy pushed to any gateway reaches every
//! gateway the agents connect to.
//!
//! The gateway pool calls in through [`ControlListener`]: once per new
//! connection and once per announcement. The pool itself knows nothing of
//! policies.

use std::sync::Arc;
use std::time::Duration;

use residency_proto::{Codec, Frame, RegionId};
use tracing::{debug, info, warn};

use super::active::PolicyState;
use crate::transport::pool::{ControlListener, ControlWatch, GatewayLink};
use crate::transport::stream::any::AnyConn;
use crate::transport::stream::call;

/// How long a fetch or a relay may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps the active policy and the gateways' policies in step.
#[derive(Debug)]
pub struct PolicySync {
    policy: Arc<PolicyState>,
}

impl PolicySync {
    /// Synchronises `policy` with every gateway link it is handed to.
    pub fn new(policy: Arc<PolicyState>) -> Self {
        PolicySync { policy }
    }
}

impl ControlListener for PolicySync {
    /// Watches the active policy while the connection lasts: a version newer
    /// than the one the gateway last announced is relayed to it.
    fn connected(&self, link: &Arc<GatewayLink>, conn: &AnyConn, codec: Codec) -> ControlWatch {
        let mut ours = self.policy.subscribe();
        let policy = self.policy.clone();
        let link = link.clone();
        let conn = conn.clone();
        Box::pin(async move {
            loop {
                if ours.changed().await.is_err() {
                    return "policy state dropped".into();
                }
                let mine = *ours.borrow_and_update();
                if mine.is_some_and(|v| v > link.announced_policy()) {
                    tokio::spawn(relay_policy(
                        link.region.clone(),
                        conn.clone(),
                        codec,
                        policy.clone(),
                    ));
                }
            }
        })
    }

    /// Fetches an announced version newer than ours; offers ours to a
    /// gateway that announced an older one.
    fn announced(&self, link: &GatewayLink, conn: &AnyConn, codec: Codec, version: u64) {
        let policy = &self.policy;
        if policy.version().is_some_and(|v| v > version) {
            tokio::spawn(relay_policy(
                link.region.clone(),
                conn.clone(),
                codec,
                policy.clone(),
            ));
        } else if version > 0 && policy.version() < Some(version) {
            tokio::spawn(fetch_policy(
                link.region.clone(),
                conn.clone(),
                version,
                codec,
                policy.clone(),
            ));
        }
    }
}

/// Offers the active bundle to a gateway that announced an older one, so a
/// policy pushed to any gateway reaches every gateway agents connect to.
async fn relay_policy(region: RegionId, conn: AnyConn, codec: Codec, policy: Arc<PolicyState>) {
    let Some(active) = policy.current() else {
        return;
    };
    let Some(version) = active.version else {
        return;
    };
    let frame = Frame::PolicyBundle {
        bundle: active.bundle.clone(),
    };
    let relayed = match call(&conn, &codec, &frame, CALL_TIMEOUT).await {
        Ok(Frame::PolicyAck { version }) => Ok(version),
        Ok(Frame::Error(e)) => Err(e.message),
        Ok(_) => Err("unexpected answer".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    match relayed {
        Ok(v) => info!(region = %region, version = v, "policy relayed to gateway"),
        // A newer version may have reached the gateway meanwhile.
        Err(e) => debug!(region = %region, version, error = %e, "policy relay not taken"),
    }
}

/// Fetches an announced bundle on its own stream, then verifies, stores and
/// activates it.
async fn fetch_policy(
    region: RegionId,
    conn: AnyConn,
    version: u64,
    codec: Codec,
    policy: Arc<PolicyState>,
) {
    let fetched = call(&conn, &codec, &Frame::PolicyFetch { version }, CALL_TIMEOUT).await;
    let bundle = match fetched {
        Ok(Frame::PolicyBundle { bundle }) => bundle,
        Ok(Frame::Error(e)) => {
            warn!(region = %region, version, error = %e.message, "policy fetch failed");
            return;
        }
        Ok(_) => {
            warn!(region = %region, version, "policy fetch got an unexpected answer");
            return;
        }
        Err(e) => {
            warn!(region = %region, version, error = %e, "policy fetch failed");
            return;
        }
    };
    // Another gateway may have delivered the same version meanwhile.
    if policy.version() >= Some(version) {
        return;
    }
    match tokio::task::spawn_blocking(move || policy.install(&bundle)).await {
        Ok(Ok(v)) => info!(region = %region, version = v, "policy fetched from gateway"),
        Ok(Err(_)) => {} // already logged with the reason
        Err(e) => warn!(error = %e, "policy install task failed"),
    }
}
