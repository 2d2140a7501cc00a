//! Residency Agent: looks at every LLM request a branch's applications make,
//! decides how sensitive it is and sends it only to model endpoints in the
//! regions its compliance policy allows, over QUIC with mutual TLS.
//!
//! The request walks through the modules in this order: [`ingress`] (HTTP in),
//! [`route`] (where it may go), [`transport`] (QUIC to a gateway),
//! [`gateway`] (in-region, to the provider). [`app`] wires them together,
//! [`config`] reads the files, [`keys`] makes development certificates and
//! [`demo`] runs the whole thing on loopback.

pub mod admin;
pub mod app;
pub mod audit;
pub mod classify;
pub mod cli;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod geo;
pub mod ingress;
pub mod keys;
pub mod policy;
pub mod route;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod transport;

pub use app::AgentHandle;
pub use gateway::GatewayHandle;

/// Software name and version, sent in hellos and printed by `version`.
pub const SOFTWARE: &str = concat!("residency-agent ", env!("CARGO_PKG_VERSION"));
