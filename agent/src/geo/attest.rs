//! Endpoint attestation: a gateway's address must locate (site map, then
//! GeoIP) to its region's jurisdiction before the agent uses the
//! connection. `warn` logs a mismatch, `enforce` refuses the gateway; an
//! address that cannot be located counts as a mismatch under `enforce`
//! (fail closed).
//!
//! The gateway pool asks through [`Attestation`] on every connection, with
//! the geography in force at that moment (a reload swaps it).

use std::net::SocketAddr;
use std::sync::Arc;

use tracing::warn;

use super::{AttestationMode, Geo};
use crate::policy::CountrySource;
use crate::transport::pool::{Attestation, GatewayLink};

/// Attests gateway addresses against the agent's current geography.
#[derive(Debug)]
pub struct EndpointAttestation {
    geo: Arc<arc_swap::ArcSwap<Geo>>,
}

impl EndpointAttestation {
    /// Checks against whatever `geo` holds when a connection is made.
    pub fn new(geo: Arc<arc_swap::ArcSwap<Geo>>) -> Self {
        EndpointAttestation { geo }
    }
}

impl Attestation for EndpointAttestation {
    fn check(&self, link: &GatewayLink, addr: SocketAddr) -> Result<(), String> {
        attest(link, addr, &self.geo.load())
    }
}

/// Checks `addr` against `link`'s jurisdiction under `geo`'s mode; `Err`
/// says why the gateway is refused.
fn attest(link: &GatewayLink, addr: SocketAddr, geo: &Geo) -> Result<(), String> {
    let mode = geo.attestation();
    if mode == AttestationMode::Off {
        return Ok(());
    }
    let expected = link.jurisdiction;
    let (found, source) = geo.subject_country(None, Some(addr.ip()));
    let found = match source {
        CountrySource::SiteMap | CountrySource::GeoIp => found,
        _ => None,
    };
    if found.is_some() && found == expected {
        return Ok(());
    }
    let what = format!(
        "gateway address {} locates to {} but region {} is in {}",
        addr.ip(),
        found.map_or_else(|| "nowhere known".to_owned(), |j| j.to_string()),
        link.region,
        expected.map_or_else(|| "an unknown jurisdiction".to_owned(), |j| j.to_string()),
    );
    match mode {
        AttestationMode::Enforce => Err(format!("attestation refused: {what}")),
        _ => {
            warn!(region = %link.region, endpoint = %link.name, "{what}");
            Ok(())
        }
    }
}
