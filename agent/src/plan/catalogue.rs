//! The region catalogue as a site sees it: the built-in regions plus the
//! `[[region]]` entries of `agent.toml` or `gateway.toml` (a private data
//! centre, a sovereign cloud, a provider region newer than this release).
//!
//! A policy can define regions too; where both know an id, the built-in
//! catalogue wins, then the policy, then the site's config.

use residency_proto::{Jurisdiction, RegionId};
use serde::Deserialize;

/// A `[[region]]` entry as written in a config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionEntry {
    /// `provider:region`, e.g. `yotta:navi-mumbai`.
    pub id: RegionId,
    /// Two-letter country code whose law applies there, e.g. `IN`.
    pub jurisdiction: String,
    /// Nearest city, for people reading logs and status pages.
    #[serde(default)]
    pub city: String,
}

/// The built-in catalogue extended by a config file's regions.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    extra: Vec<(RegionId, Jurisdiction, String)>,
}

/// A `[[region]]` entry that cannot be used; `index` is its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region[{index}].{field}: {reason}")]
pub struct CatalogueError {
    /// Position of the entry in the file.
    pub index: usize,
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl Catalogue {
    /// Checks the entries: valid jurisdictions, no built-in id redefined, no
    /// id defined twice.
    pub fn new(entries: &[RegionEntry]) -> Result<Self, CatalogueError> {
        let mut extra: Vec<(RegionId, Jurisdiction, String)> = Vec::new();
        for (index, e) in entries.iter().enumerate() {
            let err = |field, reason: String| CatalogueError {
                index,
                field,
                reason,
            };
            let Some(j) = Jurisdiction::new(&e.jurisdiction) else {
                return Err(err(
                    "jurisdiction",
                    format!(
                        "{:?} is not a two-letter uppercase country code such as IN",
                        e.jurisdiction
                    ),
                ));
            };
            if e.id.catalogue_entry().is_some() {
                return Err(err(
                    "id",
                    format!("{} is built in; a config cannot redefine it", e.id),
                ));
            }
            if extra.iter().any(|(id, _, _)| id == &e.id) {
                return Err(err("id", format!("{} is defined twice", e.id)));
            }
            extra.push((e.id.clone(), j, e.city.clone()));
        }
        Ok(Catalogue { extra })
    }

    /// The jurisdiction of a region: built in, else from the config.
    pub fn jurisdiction(&self, id: &RegionId) -> Option<Jurisdiction> {
        id.catalogue_entry().map(|r| r.jurisdiction).or_else(|| {
            self.extra
                .iter()
                .find(|(r, _, _)| r == id)
                .map(|(_, j, _)| *j)
        })
    }

    /// The region's city, or `""` when neither catalogue names one.
    pub fn city<'a>(&'a self, id: &RegionId) -> &'a str {
        id.catalogue_entry().map(|r| r.city).unwrap_or_else(|| {
            self.extra
                .iter()
                .find(|(r, _, _)| r == id)
                .map_or("", |(_, _, c)| c.as_str())
        })
    }

    /// Whether the region is known at all.
    pub fn contains(&self, id: &RegionId) -> bool {
        self.jurisdiction(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, j: &str) -> RegionEntry {
        RegionEntry {
            id: RegionId::new(id).unwrap(),
            jurisdiction: j.into(),
            city: "Navi Mumbai".into(),
        }
    }

    #[test]
    fn config_regions_extend_the_builtin_catalogue() {
        let c = Catalogue::new(&[entry("yotta:navi-mumbai", "IN")]).unwrap();
        let id = RegionId::new("yotta:navi-mumbai").unwrap();
        assert_eq!(c.jurisdiction(&id), Some(Jurisdiction::IN));
        assert_eq!(c.city(&id), "Navi Mumbai");
        let mumbai = RegionId::new("aws:ap-south-1").unwrap();
        assert_eq!(c.jurisdiction(&mumbai), Some(Jurisdiction::IN));
        assert_eq!(c.city(&mumbai), "Mumbai");
        assert!(!c.contains(&RegionId::new("acme:nowhere-1").unwrap()));
    }

    #[test]
    fn bad_entries_name_the_entry_and_field() {
        let e = Catalogue::new(&[entry("yotta:navi-mumbai", "india")]).unwrap_err();
        assert_eq!((e.index, e.field), (0, "jurisdiction"));
        let e = Catalogue::new(&[entry("aws:us-east-1", "IN")]).unwrap_err();
        assert_eq!((e.index, e.field), (0, "id"));
        assert!(e.reason.contains("built in"), "{e}");
        let e = Catalogue::new(&[entry("a:b", "IN"), entry("a:b", "IN")]).unwrap_err();
        assert_eq!((e.index, e.field), (1, "id"));
    }
}
