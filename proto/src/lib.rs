//! Sans-IO core of the Residency Agent: the frames agents and gateways exchange,
//! their codec, sensitivity tiers and region identifiers.
//!
//! Nothing here performs I/O or reads the clock; the crate must never depend on
//! tokio, quinn, rustls, sled or hyper (CI checks this).

pub mod bundle;
pub mod codec;
pub mod frame;
pub mod region;
pub mod tier;

pub use bundle::{BundleError, PolicyBundle, BUNDLE_FORMAT, DEFAULT_MAX_BUNDLE_LEN};
pub use codec::{Codec, DecodeError, EncodeError, DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION};
pub use frame::{
    ErrorCode, ErrorFrame, Frame, Hello, ModelList, ModelOffer, Processing, RequestHead,
    ResponseHead, Role, RouteFacts,
};
pub use region::{Jurisdiction, Region, RegionId, RegionIdError};
pub use tier::{Tier, UnknownTier};

/// The ALPN protocol id spoken on agent-gateway QUIC connections.
pub const ALPN: &[u8] = b"residency/1";
