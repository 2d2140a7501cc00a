//! The decision core: from what is known about one request to a [`Plan`]
//! (the tier, the rule, the candidate regions in order, what the audit
//! records) or a [`Refusal`].
//!
//! No I/O, no clock and no reference to the running agent: the caller passes
//! in the configured [`Env`] (policy, gateway regions, region catalogue,
//! geography, pinned conversations) and the time, as quinn-proto takes its
//! events. The agent's request path and `policy test` call the same
//! [`plan`], so `policy test` explains exactly what the agent would do.

pub mod builtin;
pub mod catalogue;
pub mod models;
pub mod objects;
pub mod pin;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::Instant;

use residency_proto::{Jurisdiction, RegionId, Tier};

use crate::classify::RequestClassification;
use crate::geo::Geo;
use crate::policy::{
    trusted_labels, AllowSet, CountrySource, Decision, Policy, RequestFacts,
    SUBJECT_COUNTRY_HEADER, TIER_HEADER,
};
pub use builtin::{RouteChoice, Router};
use catalogue::Catalogue;
use pin::Pins;

/// Header naming a conversation, for pinning (hashed, never stored as sent).
pub const SESSION_HEADER: &str = "x-residency-session";

/// The request headers the decision reads: the app's key, the labels a
/// trusted app may set, and the conversation id. Names are lowercase.
pub const DECISION_HEADERS: [&str; 4] = [
    "authorization",
    SUBJECT_COUNTRY_HEADER,
    TIER_HEADER,
    SESSION_HEADER,
];

/// The policy in force: the policy and its signed version (`None` for the
/// built-in baseline).
#[derive(Debug, Clone, Copy)]
pub struct InForce<'a> {
    /// The validated policy.
    pub policy: &'a Policy,
    /// Its signed version.
    pub version: Option<u64>,
}

/// What the site is configured with; the same for every request until a
/// reload or a policy change.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The active policy; `None` when no valid policy is active (fail closed).
    pub policy: Option<InForce<'a>>,
    /// The configured gateway regions and the built-in rule.
    pub router: &'a Router,
    /// The region catalogue as the site sees it.
    pub catalogue: &'a Catalogue,
    /// Client address to the data subject's country.
    pub geo: &'a Geo,
    /// Conversations pinned to a jurisdiction, if pinning applies.
    pub pins: Option<&'a Pins>,
    /// Requests with no conversation signal are keyed by their API key.
    pub pin_by_api_key: bool,
}

/// What is known about one request when it is decided.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// What the classifier found.
    pub classification: &'a RequestClassification,
    /// The requested model, if the body names one.
    pub model: Option<&'a str>,
    /// The body's `user` field, part of the conversation key.
    pub user: Option<&'a str>,
    /// The conversation the body continues (`conversation`,
    /// `previous_response_id`), part of the conversation key.
    pub conversation: Option<&'a str>,
    /// The request's [`DECISION_HEADERS`] as `(lowercase name, value)`, in
    /// the order sent (a header may repeat).
    pub headers: &'a [(String, String)],
    /// The client's address (after trusted proxies).
    pub client: Option<IpAddr>,
    /// When the request is decided (pins expire).
    pub now: Instant,
    /// The stored objects the request names whose region is known: the
    /// request must go where they live.
    pub objects: &'a [objects::Held],
    /// Write down why each rule did or did not match (`policy test`).
    pub explain: bool,
}

/// A request that may go out: where, at which tier, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The regions to try, most preferred first; never empty.
    pub candidates: Vec<Candidate>,
    /// What the decision was made from and what it was.
    pub decided: Decided,
    /// The allowed set of the deciding rule (`None` under the built-in rule).
    pub allow: Option<AllowSet>,
    /// Pin the conversation to the jurisdiction that answers, under this key.
    pub pin: Option<[u8; 32]>,
    /// The conversation's key (its signals hashed), whatever the tier: the
    /// redaction placeholders of one conversation are kept under it.
    pub conversation: Option<[u8; 32]>,
    /// Replace these values before sending, and restore them in the answer.
    pub redact: Option<RedactPlan>,
    /// Why, rule by rule (only when asked to explain).
    pub trace: Vec<String>,
    /// Which trusted labels were taken or ignored, and why.
    pub notes: Vec<String>,
}

/// What a `[rule.redact]` asks of this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactPlan {
    /// The entity types to replace.
    pub kinds: Vec<crate::classify::EntityType>,
    /// The placeholder style (`<TYPE_N>`).
    pub placeholder: String,
}

/// One region a plan may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The region.
    pub region: RegionId,
    /// Its jurisdiction, if the catalogue knows it.
    pub jurisdiction: Option<Jurisdiction>,
}

/// A request that must not go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub why: Why,
    /// What the decision was made from.
    pub decided: Decided,
    /// The allowed set of the deciding rule, when it allowed the request
    /// but no configured region is in the set.
    pub allow: Option<AllowSet>,
    /// Why, rule by rule (only when asked to explain).
    pub trace: Vec<String>,
    /// Which trusted labels were taken or ignored, and why.
    pub notes: Vec<String>,
}

/// Why a request is refused before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// No valid policy is active and the tier is too sensitive to send
    /// anywhere without one.
    NoPolicy,
    /// The deciding rule (named in [`Decided::rule`]) denies it.
    Denied {
        /// The rule's reason, shown to the caller.
        reason: String,
    },
    /// The rule allows it, but no configured gateway region is in the set.
    NoRegion,
    /// The request names an object that lives in a region the rule does not
    /// allow for this request (or objects in two regions).
    ObjectElsewhere {
        /// The object.
        id: String,
        /// Where it lives.
        region: RegionId,
        /// What else is in the way: another object's id and region, if the
        /// request names objects in two regions.
        other: Option<(String, RegionId)>,
    },
}

/// The decision as the audit records it: the facts it was made from and its
/// result, never request content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The tier the decision was made at (classified, raised by a trusted
    /// floor or by unscannable content).
    pub tier: Tier,
    /// The tier the classifier found.
    pub classified: Tier,
    /// The rule that decided (`no-policy`, `builtin:…`, a rule name or
    /// `default`), with a note when a pinned conversation narrowed it.
    pub rule: String,
    /// The calling app, if its key matched an `[[app]]`.
    pub app: Option<String>,
    /// The requested model.
    pub model: Option<String>,
    /// The data subject's country, and where it came from.
    pub subject_country: Option<Jurisdiction>,
    /// Where [`Decided::subject_country`] came from.
    pub country_source: CountrySource,
    /// The policy's signed version.
    pub policy_version: Option<u64>,
    /// `none`, `builtin` or the signed version, for headers and the audit.
    pub policy_label: String,
}

impl Refusal {
    /// The decision value the audit and `x-residency-decision` carry.
    pub fn decision(&self) -> &'static str {
        match self.why {
            Why::NoPolicy | Why::Denied { .. } | Why::ObjectElsewhere { .. } => "deny",
            Why::NoRegion => "no_route",
        }
    }
}

impl Plan {
    /// The candidates' regions, in order.
    pub fn regions(&self) -> Vec<RegionId> {
        self.candidates.iter().map(|c| c.region.clone()).collect()
    }

    /// The jurisdictions of the candidates, in order, without repeats
    /// (`unknown` for a region the catalogue does not know).
    pub fn jurisdictions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &self.candidates {
            let j = c
                .jurisdiction
                .map_or_else(|| "unknown".to_owned(), |j| j.to_string());
            if !out.contains(&j) {
                out.push(j);
            }
        }
        out
    }
}

/// The bearer key of an `authorization` header among `headers` (the scheme
/// compared case-insensitively).
pub fn bearer(headers: &[(String, String)]) -> Option<&str> {
    headers.iter().find_map(|(k, v)| {
        if !k.eq_ignore_ascii_case("authorization") {
            return None;
        }
        let (scheme, key) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
    })
}

/// The first value of a header among `headers`.
fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A region's jurisdiction: the built-in catalogue, then the policy's
/// `[[region]]`s, then the site config's.
pub fn jurisdiction_of(env: &Env<'_>, r: &RegionId) -> Option<Jurisdiction> {
    env.policy
        .and_then(|p| p.policy.jurisdiction_of(r))
        .or_else(|| env.catalogue.jurisdiction(r))
}

/// Decides one request: the active policy (or, without one, the built-in
/// rule for public and internal data only), narrowed to the jurisdiction a
/// pinned conversation went to, over the configured gateway regions.
pub fn plan(facts: &Facts<'_>, env: &Env<'_>) -> Result<Plan, Box<Refusal>> {
    let c = facts.classification;
    let policy_label = env.policy.map_or_else(
        || "none".to_owned(),
        |p| {
            p.version
                .map_or_else(|| "builtin".to_owned(), |v| v.to_string())
        },
    );
    // A request that names a stored object carries that object's data
    // (a batch runs its input file): it is at least the object's tier.
    let mut tier = c.tier;
    let mut object_notes = Vec::new();
    for o in facts.objects {
        if o.tier > tier {
            object_notes.push(format!(
                "tier raised to {} by {}, which holds {} data",
                o.tier, o.id, o.tier
            ));
            tier = o.tier;
        }
    }
    let mut decided = Decided {
        tier,
        classified: c.tier,
        rule: String::new(),
        app: None,
        model: facts.model.map(str::to_owned),
        subject_country: None,
        country_source: CountrySource::None,
        policy_version: env.policy.and_then(|p| p.version),
        policy_label,
    };
    let mut trace = Vec::new();
    let mut notes = Vec::new();
    let mut redact = None;
    let (mut choice, allow) = match env.policy {
        None => {
            decided.rule = "no-policy".to_owned();
            if tier >= Tier::Confidential {
                return Err(Box::new(Refusal {
                    why: Why::NoPolicy,
                    decided,
                    allow: None,
                    trace,
                    notes,
                }));
            }
            (env.router.choose(tier), None)
        }
        Some(InForce { policy: p, .. }) => {
            let app = bearer(facts.headers).and_then(|key| p.app_for_key(key));
            let labels = trusted_labels(app, facts.headers);
            let (subject_country, source) = env
                .geo
                .subject_country(labels.subject_country, facts.client);
            decided.app = app.map(|a| a.name.clone());
            decided.subject_country = subject_country;
            decided.country_source = source;
            notes = labels.notes;
            notes.append(&mut object_notes);
            let request = RequestFacts {
                tier,
                entities: c.counts.iter().map(|(t, _)| t.as_str()).collect(),
                subject_country,
                subject_country_source: source,
                app: app.map(|a| a.name.as_str()),
                model: facts.model,
                tier_floor: labels.tier_floor,
                unscannable: !c.unscannable.is_empty(),
            };
            let eval = if facts.explain {
                p.explain(&request)
            } else {
                p.evaluate(&request)
            };
            trace = eval.trace;
            decided.tier = eval.effective_tier;
            decided.rule = eval.rule;
            match eval.decision {
                Decision::Deny { reason } => {
                    return Err(Box::new(Refusal {
                        why: Why::Denied { reason },
                        decided,
                        allow: None,
                        trace,
                        notes,
                    }))
                }
                Decision::Allow(set) => {
                    let allowed =
                        set.ordered(&env.router.candidates(), |r| jurisdiction_of(env, r));
                    (
                        RouteChoice {
                            allowed,
                            rule: decided.rule.clone(),
                        },
                        Some(set),
                    )
                }
                Decision::Redact(r) => {
                    let kinds = match &r.entities {
                        Some(names) => names.iter().filter_map(|n| n.parse().ok()).collect(),
                        // The types that made the tier.
                        None => c
                            .counts
                            .iter()
                            .map(|(k, _)| *k)
                            .filter(|k| k.tier() == decided.tier)
                            .collect(),
                    };
                    redact = Some(RedactPlan {
                        kinds,
                        placeholder: r.placeholder.clone(),
                    });
                    let allowed = r
                        .allow
                        .ordered(&env.router.candidates(), |r| jurisdiction_of(env, r));
                    (
                        RouteChoice {
                            allowed,
                            rule: decided.rule.clone(),
                        },
                        Some(r.allow),
                    )
                }
            }
        }
    };
    // A stored object the request names lives in one region: only there,
    // and only if the rule allows that region for this request.
    if let Some(first) = facts.objects.first() {
        let elsewhere = |other| {
            Box::new(Refusal {
                why: Why::ObjectElsewhere {
                    id: first.id.clone(),
                    region: first.region.clone(),
                    other,
                },
                decided: Decided {
                    rule: choice.rule.clone(),
                    ..decided.clone()
                },
                allow: allow.clone(),
                trace: trace.clone(),
                notes: notes.clone(),
            })
        };
        if let Some(o) = facts.objects.iter().find(|o| o.region != first.region) {
            return Err(elsewhere(Some((o.id.clone(), o.region.clone()))));
        }
        if !choice.allowed.contains(&first.region) {
            return Err(elsewhere(None));
        }
        choice.allowed.retain(|r| *r == first.region);
        choice.rule = format!(
            "{} (object {} lives in {})",
            choice.rule, first.id, first.region
        );
    }
    // A conversation that carried restricted data stays where it went.
    let key = Pins::key(pin::Signals {
        session: header(facts.headers, SESSION_HEADER),
        conversation: facts.conversation,
        user: facts.user,
        api_key: bearer(facts.headers),
        by_api_key: env.pin_by_api_key,
    });
    if let Some(j) = key.and_then(|k| env.pins?.get(&k, facts.now)) {
        choice
            .allowed
            .retain(|r| jurisdiction_of(env, r) == Some(j));
        choice.rule = format!("{} (conversation pinned to {j})", choice.rule);
    }
    decided.rule = choice.rule;
    if choice.allowed.is_empty() {
        return Err(Box::new(Refusal {
            why: Why::NoRegion,
            decided,
            allow,
            trace,
            notes,
        }));
    }
    let candidates = choice
        .allowed
        .into_iter()
        .map(|region| Candidate {
            jurisdiction: jurisdiction_of(env, &region),
            region,
        })
        .collect();
    Ok(Plan {
        candidates,
        // A redacted request leaves the jurisdiction without its values:
        // nothing to pin.
        pin: key
            .filter(|_| decided.tier == Tier::Restricted && env.pins.is_some() && redact.is_none()),
        conversation: key,
        redact,
        decided,
        allow,
        trace,
        notes,
    })
}
