//! The compliance policy: the language officers write, its validation
//! ([`lint`]), its evaluation against the facts of one request
//! ([`Policy::evaluate`]), signing and verification of policy bundles
//! ([`sign`]) and the `policy` subcommands ([`cli`]).
//!
//! Everything here is pure: no sockets, no storage, no clock (time comes in as
//! an argument). Storage, distribution and activation live elsewhere.
//!
//! # The language
//!
//! A policy is a TOML file (see `examples/policy/india-baseline.toml`):
//!
//! - top level: `name`, `description`, `unscannable_tier` (default
//!   `restricted`: content that cannot be scanned counts as this tier);
//! - `[[rule]]`, in order, first match wins: `name`, `description`, an optional
//!   `[rule.match]` table and exactly one of `[rule.allow]` or `[rule.deny]`.
//!   Every condition given in `match` must hold; within a list, any entry may
//!   match. Conditions: `tier` (list) or `tier_at_least`, `entities` (spec
//!   names, any of), `subject_country` (ISO codes or `"unknown"`), `app` (names
//!   of `[[app]]` entries), `model` (exact names or prefix globs `"gpt-4*"`).
//!   A rule without `match` (or with an empty one) matches every request; a
//!   rule after it is an error.
//! - `[rule.allow]`: `regions` (region ids) and/or `jurisdictions` (ISO codes,
//!   `"*"` as the last entry meaning "then any other known jurisdiction"), both
//!   in order of preference. `[rule.deny]`: `reason` (required; the agent
//!   answers HTTP 451 naming the rule). `[rule.redact]`: `entities` (the
//!   types to replace with placeholders; default: the types that made the
//!   tier), `placeholder` (default `<TYPE_N>`), and `regions` /
//!   `jurisdictions` as in `allow`, where the redacted request may go; the
//!   values are put back in the answer.
//! - `[default.allow]` or `[default.deny]`: what happens when no rule matches;
//!   without it, the default is to deny (fail closed).
//! - `[[app]]`: `name`, `api_key_sha256` (hex SHA-256 of the app's bearer key,
//!   so the policy never holds a key), `trusted_headers` (any of
//!   `x-residency-subject-country`, `x-residency-tier`).
//! - `[[region]]`: `id`, `jurisdiction`, `city`: regions added to the built-in
//!   catalogue (a built-in id cannot be redefined).
//!
//! # Fail closed
//!
//! A condition on the subject's country or on the model cannot be decided when
//! the request has no country or no model. Such a condition never lets an
//! `allow` rule match, and always lets a `deny` rule match. A region whose
//! jurisdiction is unknown is permitted only where a rule names it explicitly.

pub mod active;
pub mod cli;
mod eval;
mod parse;
pub mod sign;
pub mod sync;

use residency_proto::{Jurisdiction, RegionId, Tier};
use sha2::{Digest, Sha256};

pub use eval::{
    trusted_labels, AllowSet, CountrySource, Decision, Evaluation, Redaction, RequestFacts,
    TrustedLabels, DEFAULT_PLACEHOLDER,
};
pub use parse::{lint, PolicyError, PolicyErrorKind};
pub use sign::{KeyError, PolicySigningKey, SignError, TrustedKey, VerifiedPolicy, VerifyError};

/// The entity type names of the sensitivity spec, the only ones a policy may
/// name.
pub const ENTITY_TYPES: [&str; 16] = [
    "aadhaar",
    "aadhaar_vid",
    "payment_card",
    "bank_account",
    "upi_id",
    "abha",
    "pan",
    "passport",
    "voter_id",
    "driving_licence",
    "phone",
    "email",
    "gstin",
    "ifsc",
    "vehicle_registration",
    "ip_address",
];

/// Header a trusted app may set to name the data subject's country.
pub const SUBJECT_COUNTRY_HEADER: &str = "x-residency-subject-country";

/// Header a trusted app may set to raise (never lower) the request's tier.
pub const TIER_HEADER: &str = "x-residency-tier";

/// The India baseline policy shipped in `examples/policy/india-baseline.toml`.
pub const BASELINE_TEXT: &str = include_str!("../../examples/policy/india-baseline.toml");

/// A validated compliance policy. Built only by [`lint`].
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    name: String,
    description: Option<String>,
    unscannable_tier: Tier,
    rules: Vec<Rule>,
    default: Decision,
    apps: Vec<App>,
    regions: Vec<PolicyRegion>,
}

/// One named rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique name, reported in decisions and audit records.
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// Conditions, all of which must hold.
    pub when: Match,
    /// What happens when it matches.
    pub action: Decision,
}

/// The conditions of a rule; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    /// Tier condition.
    pub tier: Option<TierMatch>,
    /// Any of these entity types was found.
    pub entities: Option<Vec<String>>,
    /// The data subject's country is one of these.
    pub subject_country: Option<Vec<CountryPattern>>,
    /// The calling app is one of these (names of `[[app]]` entries).
    pub app: Option<Vec<String>>,
    /// The requested model matches one of these.
    pub model: Option<Vec<ModelPattern>>,
}

/// A condition on the effective tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierMatch {
    /// One of these tiers.
    AnyOf(Vec<Tier>),
    /// This tier or a more sensitive one.
    AtLeast(Tier),
}

/// One entry of a `subject_country` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountryPattern {
    /// This country.
    Code(Jurisdiction),
    /// The country could not be determined.
    Unknown,
}

/// One entry of a `model` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPattern {
    /// Exactly this model name.
    Exact(String),
    /// Any model whose name starts with this (written `prefix*`).
    Prefix(String),
}

/// A calling application known to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The app's name, used in rules and audit records.
    pub name: String,
    /// SHA-256 of each bearer key the app may present.
    pub api_key_sha256: Vec<[u8; 32]>,
    /// The app may name the data subject's country with [`SUBJECT_COUNTRY_HEADER`].
    pub trusts_subject_country: bool,
    /// The app may raise the tier with [`TIER_HEADER`].
    pub trusts_tier: bool,
}

/// A region the policy adds to the built-in catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRegion {
    /// `provider:region`.
    pub id: RegionId,
    /// Country whose law applies there.
    pub jurisdiction: Jurisdiction,
    /// Nearest city, for people reading logs.
    pub city: String,
}

impl Policy {
    /// The built-in India baseline, identical to
    /// `examples/policy/india-baseline.toml`.
    pub fn builtin_baseline() -> Policy {
        match lint(BASELINE_TEXT) {
            Ok(p) => p,
            // Cannot happen: a unit test lints the shipped file. Should it ever,
            // a policy that denies everything is the fail-closed answer.
            Err(_) => Policy::deny_all("the built-in baseline policy is invalid"),
        }
    }

    /// A policy with no rules whose default denies every request.
    pub fn deny_all(reason: &str) -> Policy {
        Policy {
            name: "deny-all".into(),
            description: None,
            unscannable_tier: Tier::Restricted,
            rules: Vec::new(),
            default: Decision::Deny {
                reason: reason.into(),
            },
            apps: Vec::new(),
            regions: Vec::new(),
        }
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy's description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The tier given to requests whose content cannot be scanned.
    pub fn unscannable_tier(&self) -> Tier {
        self.unscannable_tier
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// What happens when no rule matches.
    pub fn default_decision(&self) -> &Decision {
        &self.default
    }

    /// The apps the policy knows.
    pub fn apps(&self) -> &[App] {
        &self.apps
    }

    /// The regions the policy adds to the built-in catalogue.
    pub fn regions(&self) -> &[PolicyRegion] {
        &self.regions
    }

    /// The app that presented this bearer key, if any: the key is hashed and
    /// compared with each app's `api_key_sha256`.
    pub fn app_for_key(&self, bearer_key: &str) -> Option<&App> {
        let digest: [u8; 32] = Sha256::digest(bearer_key.as_bytes()).into();
        self.apps
            .iter()
            .find(|app| app.api_key_sha256.iter().any(|h| ct_eq(h, &digest)))
    }

    /// The app with this name, if any.
    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// The jurisdiction of a region: the built-in catalogue, then the policy's
    /// `[[region]]` entries. `None` for a region neither knows.
    pub fn jurisdiction_of(&self, id: &RegionId) -> Option<Jurisdiction> {
        id.catalogue_entry().map(|r| r.jurisdiction).or_else(|| {
            self.regions
                .iter()
                .find(|r| &r.id == id)
                .map(|r| r.jurisdiction)
        })
    }

    /// Every region id the policy can resolve: the built-in catalogue followed
    /// by the policy's own regions.
    pub fn known_regions(&self) -> Vec<RegionId> {
        residency_proto::region::CATALOGUE
            .iter()
            .filter_map(|r| RegionId::new(r.id).ok())
            .chain(self.regions.iter().map(|r| r.id.clone()))
            .collect()
    }
}

impl App {
    /// Hex SHA-256 of a bearer key, as written in `api_key_sha256`.
    pub fn key_hash_hex(bearer_key: &str) -> String {
        hex::encode(Sha256::digest(bearer_key.as_bytes()))
    }
}

/// Compares two digests without an early exit.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_file_is_valid_and_is_the_builtin() {
        let linted = lint(BASELINE_TEXT).unwrap();
        assert_eq!(linted.name(), "india-baseline");
        assert_eq!(Policy::builtin_baseline(), linted);
        assert_eq!(linted.rules().len(), 3);
        assert_eq!(linted.unscannable_tier(), Tier::Restricted);
    }

    #[test]
    fn bank_branch_example_is_valid_and_routes_as_documented() {
        let p = lint(include_str!("../../examples/policy/bank-branch.toml")).unwrap();
        assert_eq!(p.rules().len(), 7);
        let loans = p.app_for_key("sk-demo-loans").unwrap();
        assert!(loans.trusts_subject_country && loans.trusts_tier);
        let e = p.evaluate(&RequestFacts {
            entities: vec!["payment_card"],
            model: Some("gpt-4o"),
            ..RequestFacts::new(Tier::Restricted)
        });
        assert_eq!(e.rule, "payments-and-aadhaar-in-mumbai");
        let set = e.decision.allow_set().unwrap();
        let order = p.ordered(set, &p.known_regions());
        assert_eq!(order[0].as_str(), "bank:in-navi-mumbai-1");
        assert_eq!(order[1].as_str(), "aws:ap-south-1");
        assert!(order
            .iter()
            .all(|r| p.jurisdiction_of(r) == Some(Jurisdiction::IN)));
        let e = p.evaluate(&RequestFacts::new(Tier::Confidential));
        assert_eq!(e.rule, "no-legacy-models-for-personal-data");
    }

    #[test]
    fn app_is_found_by_key_hash_only() {
        let text = format!(
            "[[app]]\nname = \"loans\"\napi_key_sha256 = [\"{}\"]\n",
            App::key_hash_hex("sk-loans-1")
        );
        let p = lint(&text).unwrap();
        assert_eq!(
            p.app_for_key("sk-loans-1").map(|a| a.name.as_str()),
            Some("loans")
        );
        assert!(p.app_for_key("sk-loans-2").is_none());
        assert!(p.app_for_key(&App::key_hash_hex("sk-loans-1")).is_none());
    }

    #[test]
    fn jurisdiction_lookup_uses_catalogue_then_policy_regions() {
        let p = lint(
            "[[region]]\nid = \"acme:in-blr-1\"\njurisdiction = \"IN\"\ncity = \"Bengaluru\"\n",
        )
        .unwrap();
        let r = |s: &str| RegionId::new(s).unwrap();
        assert_eq!(
            p.jurisdiction_of(&r("aws:ap-south-1")),
            Some(Jurisdiction::IN)
        );
        assert_eq!(
            p.jurisdiction_of(&r("aws:us-east-1")),
            Some(Jurisdiction::US)
        );
        assert_eq!(
            p.jurisdiction_of(&r("acme:in-blr-1")),
            Some(Jurisdiction::IN)
        );
        assert_eq!(p.jurisdiction_of(&r("acme:nowhere")), None);
        assert!(p.known_regions().contains(&r("acme:in-blr-1")));
    }
}
