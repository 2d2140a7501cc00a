//! Region identifiers (`provider:region`) and the built-in region catalogue.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A cloud region, written `provider:region`, e.g. `aws:ap-south-1`.
///
/// Both parts are lowercase ASCII letters, digits and hyphens; the id is at most
/// 64 bytes long.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RegionId(String);

/// Why a string is not a valid region id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegionIdError {
    /// The id has no `:` separating provider and region.
    #[error("region id {0:?} must be written provider:region, e.g. aws:ap-south-1")]
    MissingSeparator(String),
    /// The provider or region part is empty, too long or has characters other
    /// than lowercase letters, digits and hyphens.
    #[error("region id {0:?} may only use lowercase letters, digits and '-' in provider and region (at most 64 bytes)")]
    BadCharacters(String),
}

/// A two-letter jurisdiction (ISO 3166-1 alpha-2 country code), e.g. `IN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Jurisdiction(pub [u8; 2]);

/// A catalogue entry: where a region is and whose law applies there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// `provider:region`.
    pub id: &'static str,
    /// Country whose law applies.
    pub jurisdiction: Jurisdiction,
    /// Nearest city, for people reading logs.
    pub city: &'static str,
}

impl RegionId {
    /// Parses and validates a region id.
    pub fn new(id: &str) -> Result<Self, RegionIdError> {
        let Some((provider, region)) = id.split_once(':') else {
            return Err(RegionIdError::MissingSeparator(id.to_owned()));
        };
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if id.len() > 64 || !part_ok(provider) || !part_ok(region) {
            return Err(RegionIdError::BadCharacters(id.to_owned()));
        }
        Ok(RegionId(id.to_owned()))
    }

    /// The id as written, `provider:region`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The provider part, e.g. `aws`.
    pub fn provider(&self) -> &str {
        self.0.split_once(':').map_or("", |(p, _)| p)
    }

    /// The built-in catalogue entry for this id, if there is one.
    pub fn catalogue_entry(&self) -> Option<&'static Region> {
        CATALOGUE.iter().find(|r| r.id == self.0)
    }
}

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RegionId {
    type Err = RegionIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionId::new(s)
    }
}

impl<'de> Deserialize<'de> for RegionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RegionId::new(&s).map_err(serde::de::Error::custom)
    }
}

impl Jurisdiction {
    /// India.
    pub const IN: Jurisdiction = Jurisdiction(*b"IN");
    /// United States.
    pub const US: Jurisdiction = Jurisdiction(*b"US");

    /// Parses a two-letter uppercase country code.
    pub fn new(code: &str) -> Option<Self> {
        match code.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
                Some(Jurisdiction([*a, *b]))
            }
            _ => None,
        }
    }

    /// The code as text, e.g. `IN`.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII uppercase letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const fn region(id: &'static str, jurisdiction: Jurisdiction, city: &'static str) -> Region {
    Region {
        id,
        jurisdiction,
        city,
    }
}

/// The built-in region catalogue: Indian regions of the major clouds and common
/// regions elsewhere for traffic that may go anywhere.
pub const CATALOGUE: &[Region] = &[
    region("aws:ap-south-1", Jurisdiction::IN, "Mumbai"),
    region("aws:ap-south-2", Jurisdiction::IN, "Hyderabad"),
    region("azure:centralindia", Jurisdiction::IN, "Pune"),
    region("azure:southindia", Jurisdiction::IN, "Chennai"),
    region("azure:westindia", Jurisdiction::IN, "Mumbai"),
    region("azure:jioindiawest", Jurisdiction::IN, "Jamnagar"),
    region("azure:jioindiacentral", Jurisdiction::IN, "Nagpur"),
    region("gcp:asia-south1", Jurisdiction::IN, "Mumbai"),
    region("gcp:asia-south2", Jurisdiction::IN, "Delhi"),
    region("oci:ap-mumbai-1", Jurisdiction::IN, "Mumbai"),
    region("oci:ap-hyderabad-1", Jurisdiction::IN, "Hyderabad"),
    region("aws:us-east-1", Jurisdiction::US, "N. Virginia"),
    region("aws:us-west-2", Jurisdiction::US, "Oregon"),
    region("aws:eu-west-1", Jurisdiction(*b"IE"), "Dublin"),
    region("aws:ap-southeast-1", Jurisdiction(*b"SG"), "Singapore"),
    region("azure:eastus", Jurisdiction::US, "Virginia"),
    region("azure:westeurope", Jurisdiction(*b"NL"), "Amsterdam"),
    region("azure:swedencentral", Jurisdiction(*b"SE"), "Gävle"),
    region("gcp:us-central1", Jurisdiction::US, "Iowa"),
    region("gcp:europe-west4", Jurisdiction(*b"NL"), "Eemshaven"),
    region("oci:us-ashburn-1", Jurisdiction::US, "Ashburn"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_ids() {
        let id = RegionId::new("aws:ap-south-1").unwrap();
        assert_eq!(id.provider(), "aws");
        assert_eq!(id.catalogue_entry().unwrap().city, "Mumbai");
        assert_eq!(id.catalogue_entry().unwrap().jurisdiction, Jurisdiction::IN);
    }

    #[test]
    fn rejects_bad_ids() {
        assert!(matches!(
            RegionId::new("ap-south-1"),
            Err(RegionIdError::MissingSeparator(_))
        ));
        for bad in ["aws:", ":x", "AWS:ap-south-1", "aws:ap south", "aws:a:b"] {
            assert!(RegionId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn catalogue_ids_are_valid_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in CATALOGUE {
            RegionId::new(r.id).unwrap();
            assert!(seen.insert(r.id), "duplicate {}", r.id);
        }
    }
}
