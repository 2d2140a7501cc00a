//! Sensitivity tiers, ordered from least to most sensitive.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How sensitive a request is; the highest tier of anything found in it.
///
/// The order of the variants is the order of sensitivity, and postcard encodes
/// them by index: append new variants, never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Nothing personal or regulated found.
    Public,
    /// Business identifiers, network data.
    Internal,
    /// Personal data under India's DPDP Act 2023.
    Confidential,
    /// Payment-system data, Aadhaar, health identifiers: never leaves India.
    Restricted,
}

/// A tier name that is not one of `public`, `internal`, `confidential`, `restricted`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier {0:?} (expected public, internal, confidential or restricted)")]
pub struct UnknownTier(pub String);

impl Tier {
    /// All tiers, least sensitive first.
    pub const ALL: [Tier; 4] = [
        Tier::Public,
        Tier::Internal,
        Tier::Confidential,
        Tier::Restricted,
    ];

    /// The tier's stable lowercase name, as used in headers, policy and audit.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Public => "public",
            Tier::Internal => "internal",
            Tier::Confidential => "confidential",
            Tier::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = UnknownTier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTier(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_by_sensitivity() {
        assert!(Tier::Public < Tier::Internal);
        assert!(Tier::Internal < Tier::Confidential);
        assert!(Tier::Confidential < Tier::Restricted);
    }

    #[test]
    fn names_round_trip() {
        for t in Tier::ALL {
            assert_eq!(t.as_str().parse::<Tier>(), Ok(t));
        }
        assert!("secret".parse::<Tier>().is_err());
    }
}
