//! The built-in routing rule, in force until a signed policy is active:
//! `restricted` and `confidential` requests go only to India regions,
//! everything else to the configured default region first and then anywhere.
//! It also gives the configured gateway regions in the order a policy's equal
//! choices are broken.

use residency_proto::{RegionId, Tier};

/// The regions a request may use, most preferred first, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChoice {
    /// Allowed regions in order of preference; empty means nowhere.
    pub allowed: Vec<RegionId>,
    /// The rule that decided, for the decision header and logs.
    pub rule: String,
}

/// The built-in routing rule.
#[derive(Debug, Clone)]
pub struct Router {
    default_region: RegionId,
    india: Vec<RegionId>,
    configured: Vec<RegionId>,
}

impl Router {
    /// The configured gateway regions, the default region first and then in
    /// config order: the preference among regions a policy allows equally.
    pub fn candidates(&self) -> Vec<RegionId> {
        let mut out = Vec::with_capacity(self.configured.len());
        if self.configured.contains(&self.default_region) {
            out.push(self.default_region.clone());
        }
        out.extend(
            self.configured
                .iter()
                .filter(|r| *r != &self.default_region)
                .cloned(),
        );
        out
    }

    /// A router for the configured default region, the regions counted as
    /// India, and the regions gateways are configured for (in config order).
    pub fn new(default_region: RegionId, india: Vec<RegionId>, configured: Vec<RegionId>) -> Self {
        let mut uniq: Vec<RegionId> = Vec::new();
        for r in configured {
            if !uniq.contains(&r) {
                uniq.push(r);
            }
        }
        Router {
            default_region,
            india,
            configured: uniq,
        }
    }

    /// The allowed regions for a request of this tier.
    pub fn choose(&self, tier: Tier) -> RouteChoice {
        let first_default = |regions: Vec<RegionId>| {
            let mut out = Vec::with_capacity(regions.len());
            if regions.contains(&self.default_region) {
                out.push(self.default_region.clone());
            }
            out.extend(regions.into_iter().filter(|r| r != &self.default_region));
            out
        };
        match tier {
            Tier::Restricted | Tier::Confidential => RouteChoice {
                allowed: first_default(
                    self.configured
                        .iter()
                        .filter(|r| self.india.contains(r))
                        .cloned()
                        .collect(),
                ),
                rule: "builtin:india-only".into(),
            },
            Tier::Public | Tier::Internal => RouteChoice {
                allowed: first_default(self.configured.clone()),
                rule: "builtin:default-region".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RegionId {
        RegionId::new(s).unwrap()
    }

    fn router(default: &str) -> Router {
        Router::new(
            r(default),
            vec![r("aws:ap-south-1"), r("aws:ap-south-2")],
            vec![r("aws:us-east-1"), r("aws:ap-south-1"), r("aws:ap-south-2")],
        )
    }

    #[test]
    fn restricted_and_confidential_stay_in_india() {
        for tier in [Tier::Restricted, Tier::Confidential] {
            let c = router("aws:us-east-1").choose(tier);
            assert_eq!(c.allowed, vec![r("aws:ap-south-1"), r("aws:ap-south-2")]);
        }
        let c = router("aws:ap-south-2").choose(Tier::Restricted);
        assert_eq!(c.allowed, vec![r("aws:ap-south-2"), r("aws:ap-south-1")]);
    }

    #[test]
    fn public_prefers_the_default_then_anywhere() {
        let c = router("aws:us-east-1").choose(Tier::Public);
        assert_eq!(c.allowed[0], r("aws:us-east-1"));
        assert_eq!(c.allowed.len(), 3);
    }
}
