//! Residency Agent: looks at every LLM request a branch's applications make,
//! decides how sensitive it is and sends it only to model endpoints in the
//! regions its compliance policy allows, over QUIC with mutual TLS.
//!
//! A request walks through [`ingress`] (HTTP in: read, then respond),
//! [`classify`] (how sensitive), [`plan`] (the pure decision: where it may
//! go), [`transport`] (forward on a request stream to a gateway) and
//! [`gateway`] (in-region, to the provider); [`body`] chains the answer's
//! body stages. [`app`] wires them together, [`serve`] is the HTTP accept
//! loop, [`config`] reads the files, [`keys`] makes development
//! certificates and, with the `demo` feature (on by default), `demo` runs
//! the whole thing on loopback against a mock provider. The demo and its mock
//! provider serve the `demo` command and the tests; they are not part of the
//! library's API, and a build without default features leaves them out.

pub mod admin;
pub mod app;
pub mod audit;
pub mod body;
pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
#[cfg(feature = "demo")]
#[doc(hidden)]
pub mod demo;
pub mod gateway;
pub mod geo;
pub mod ingress;
pub mod keys;
pub mod objects;
pub mod plan;
pub mod policy;
pub mod redact;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod transport;

pub use app::AgentHandle;
pub use gateway::GatewayHandle;

/// Software name and version, sent in hellos and printed by `version`.
pub const SOFTWARE: &str = concat!("residency-agent ", env!("CARGO_PKG_VERSION"));
