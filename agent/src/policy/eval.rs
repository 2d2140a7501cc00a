//! Evaluation of a [`Policy`] against the facts of one request: which rule
//! decides, the tier it was decided at, the regions allowed and a trace of why.
//!
//! The trace names tiers, entity types, countries, the app and the model, and
//! never any request content.

use std::fmt::Write as _;

use residency_proto::{Jurisdiction, RegionId, Tier};

use super::{
    App, CountryPattern, ModelPattern, Policy, Rule, TierMatch, SUBJECT_COUNTRY_HEADER, TIER_HEADER,
};

/// Where the data subject's country came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountrySource {
    /// A header the policy trusts from the calling app.
    Header,
    /// The site map (client CIDR to site to country).
    SiteMap,
    /// A GeoIP lookup of the client address.
    GeoIp,
    /// The agent's own configured site.
    Site,
    /// Not determined.
    None,
}

/// What the agent knows about a request when it asks the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    /// The tier the classifier found.
    pub tier: Tier,
    /// Entity type names found (spec names, e.g. `aadhaar`).
    pub entities: Vec<&'a str>,
    /// The data subject's country, if known.
    pub subject_country: Option<Jurisdiction>,
    /// Where `subject_country` came from.
    pub subject_country_source: CountrySource,
    /// The calling app's name, if its key matched an `[[app]]`.
    pub app: Option<&'a str>,
    /// The requested model, if the request names one.
    pub model: Option<&'a str>,
    /// A tier floor set by a trusted app; it can raise the tier, never lower it.
    pub tier_floor: Option<Tier>,
    /// The request holds content that could not be scanned (images, audio, files).
    pub unscannable: bool,
}

/// The outcome of evaluating a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Allow (with the allowed regions) or deny.
    pub decision: Decision,
    /// Name of the rule that decided, or `default`.
    pub rule: String,
    /// Index of the rule that decided; `None` for the default.
    pub rule_index: Option<usize>,
    /// The tier the decision was made at: the classified tier raised by the
    /// trusted floor and by unscannable content.
    pub effective_tier: Tier,
    /// Why each rule before the deciding one did not match, and why it did.
    pub trace: Vec<String>,
}

/// What a rule (or the default) decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send the request to a region in this set.
    Allow(AllowSet),
    /// Refuse the request (HTTP 451 naming the rule).
    Deny {
        /// Shown to the caller.
        reason: String,
    },
    /// Replace the sensitive values with placeholders, send the redacted
    /// request to a region in the set, and put the values back in the answer.
    Redact(Redaction),
}

/// A `[rule.redact]`: what to replace, how, and where the redacted request
/// may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// The entity types to replace; `None`: those that made the tier (every
    /// type found at the request's tier).
    pub entities: Option<Vec<String>>,
    /// The placeholder style, `TYPE` and `N` standing for the type and the
    /// counter: `<TYPE_N>` (the default) gives `<PAN_1>`.
    pub placeholder: String,
    /// Where the redacted request may go.
    pub allow: AllowSet,
}

/// The default placeholder style.
pub const DEFAULT_PLACEHOLDER: &str = "<TYPE_N>";

/// The regions an `allow` permits, in order of preference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowSet {
    /// Regions named explicitly, most preferred first.
    pub regions: Vec<RegionId>,
    /// Jurisdictions whose regions are allowed, most preferred first.
    pub jurisdictions: Vec<Jurisdiction>,
    /// After the listed jurisdictions, any other known jurisdiction (`"*"`).
    pub any_jurisdiction: bool,
}

/// Labels taken from request headers, only those the app is trusted to set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedLabels {
    /// The subject's country from a trusted header.
    pub subject_country: Option<Jurisdiction>,
    /// A tier floor from a trusted header.
    pub tier_floor: Option<Tier>,
    /// What was taken or ignored and why, for the trace and logs.
    pub notes: Vec<String>,
}

impl CountrySource {
    /// Stable lowercase name for logs and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            CountrySource::Header => "header",
            CountrySource::SiteMap => "site_map",
            CountrySource::GeoIp => "geoip",
            CountrySource::Site => "site",
            CountrySource::None => "none",
        }
    }
}

impl<'a> RequestFacts<'a> {
    /// Facts with only a tier: no entities, country, app or model.
    pub fn new(tier: Tier) -> Self {
        RequestFacts {
            tier,
            entities: Vec::new(),
            subject_country: None,
            subject_country_source: CountrySource::None,
            app: None,
            model: None,
            tier_floor: None,
            unscannable: false,
        }
    }
}

impl Decision {
    /// `allow` or `deny`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Allow(_) => "allow",
            Decision::Deny { .. } => "deny",
            Decision::Redact(_) => "redact",
        }
    }

    /// The allowed set, if this is an allow (or where a redacted request
    /// may go).
    pub fn allow_set(&self) -> Option<&AllowSet> {
        match self {
            Decision::Allow(set) => Some(set),
            Decision::Redact(r) => Some(&r.allow),
            Decision::Deny { .. } => None,
        }
    }
}

impl AllowSet {
    /// Whether the region may receive the request. A region whose jurisdiction
    /// is unknown is permitted only if named explicitly.
    pub fn permits(
        &self,
        id: &RegionId,
        jurisdiction_of: impl Fn(&RegionId) -> Option<Jurisdiction>,
    ) -> bool {
        self.rank(id, jurisdiction_of(id)).is_some()
    }

    /// The permitted candidates in order of preference: explicitly named regions
    /// first, in the rule's order; then the others by the rule's jurisdiction
    /// order (`"*"` last), keeping the candidates' order within a jurisdiction.
    /// Only candidates are returned, and never one outside the set.
    pub fn ordered(
        &self,
        candidates: &[RegionId],
        jurisdiction_of: impl Fn(&RegionId) -> Option<Jurisdiction>,
    ) -> Vec<RegionId> {
        let mut ranked: Vec<(usize, usize, &RegionId)> = candidates
            .iter()
            .enumerate()
            .filter_map(|(i, id)| self.rank(id, jurisdiction_of(id)).map(|r| (r, i, id)))
            .collect();
        ranked.sort_by_key(|&(rank, i, _)| (rank, i));
        let mut out: Vec<RegionId> = Vec::with_capacity(ranked.len());
        for (_, _, id) in ranked {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    }

    /// Lower is more preferred; `None` is not permitted.
    fn rank(&self, id: &RegionId, jurisdiction: Option<Jurisdiction>) -> Option<usize> {
        if let Some(i) = self.regions.iter().position(|r| r == id) {
            return Some(i);
        }
        let base = self.regions.len();
        let j = jurisdiction?;
        if let Some(i) = self.jurisdictions.iter().position(|x| *x == j) {
            return Some(base + i);
        }
        self.any_jurisdiction
            .then_some(base + self.jurisdictions.len())
    }

    /// A short description, e.g. `regions [aws:ap-south-1] jurisdictions [IN, *]`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if !self.regions.is_empty() {
            let r: Vec<&str> = self.regions.iter().map(RegionId::as_str).collect();
            let _ = write!(s, "regions [{}]", r.join(", "));
        }
        if !self.jurisdictions.is_empty() || self.any_jurisdiction {
            let mut j: Vec<&str> = self
                .jurisdictions
                .iter()
                .map(Jurisdiction::as_str)
                .collect();
            if self.any_jurisdiction {
                j.push("*");
            }
            if !s.is_empty() {
                s.push(' ');
            }
            let _ = write!(s, "jurisdictions [{}]", j.join(", "));
        }
        s
    }
}

impl Policy {
    /// Evaluates the policy: the first rule whose every condition holds decides,
    /// else the default. Pure and deterministic.
    /// The reasons are not written down (`trace` is empty): this is the
    /// request path's call. [`Policy::explain`] gives the same decision with
    /// its reasons.
    pub fn evaluate(&self, facts: &RequestFacts<'_>) -> Evaluation {
        self.decide(facts, false)
    }

    /// [`Policy::evaluate`], with `trace` saying why each rule before the
    /// deciding one did not match, and why that one did.
    pub fn explain(&self, facts: &RequestFacts<'_>) -> Evaluation {
        self.decide(facts, true)
    }

    fn decide(&self, facts: &RequestFacts<'_>, explain: bool) -> Evaluation {
        let mut trace = Trace::new(explain);
        let mut tier = facts.tier;
        trace.push(|| format!("classified tier: {tier}"));
        if let Some(floor) = facts.tier_floor {
            if floor > tier {
                trace.push(|| format!("tier raised to {floor} by the app's {TIER_HEADER} floor"));
                tier = floor;
            } else {
                trace
                    .push(|| format!("{TIER_HEADER} floor {floor} does not lower the tier {tier}"));
            }
        }
        if facts.unscannable && self.unscannable_tier > tier {
            tier = self.unscannable_tier;
            trace.push(|| {
                format!("tier raised to {tier}: the request has content that cannot be scanned")
            });
        }
        for (i, rule) in self.rules.iter().enumerate() {
            match check(rule, facts, tier, explain) {
                Ok(why) => {
                    trace.push(|| {
                        format!(
                            "rule[{i}] {:?}: matched: {why}; {}",
                            rule.name,
                            describe(&rule.action)
                        )
                    });
                    return Evaluation {
                        decision: rule.action.clone(),
                        rule: rule.name.clone(),
                        rule_index: Some(i),
                        effective_tier: tier,
                        trace: trace.lines,
                    };
                }
                Err(why) => trace.push(|| format!("rule[{i}] {:?}: no match: {why}", rule.name)),
            }
        }
        trace.push(|| format!("no rule matched; default: {}", describe(&self.default)));
        Evaluation {
            decision: self.default.clone(),
            rule: "default".into(),
            rule_index: None,
            effective_tier: tier,
            trace: trace.lines,
        }
    }

    /// [`AllowSet::permits`] with this policy's region catalogue.
    pub fn permits(&self, set: &AllowSet, id: &RegionId) -> bool {
        set.permits(id, |r| self.jurisdiction_of(r))
    }

    /// [`AllowSet::ordered`] with this policy's region catalogue.
    pub fn ordered(&self, set: &AllowSet, candidates: &[RegionId]) -> Vec<RegionId> {
        set.ordered(candidates, |r| self.jurisdiction_of(r))
    }
}

/// Reads the labels an app is trusted to set from request headers (names
/// compared case-insensitively). An untrusted app's labels are ignored; a
/// trusted tier header that is not a tier counts as `restricted` (fail closed);
/// a country header that is not a country code, or two that disagree, count
/// as unknown.
pub fn trusted_labels(app: Option<&App>, headers: &[(String, String)]) -> TrustedLabels {
    let mut out = TrustedLabels::default();
    let who = app.map_or_else(
        || "no app was identified".to_owned(),
        |a| format!("app {:?}", a.name),
    );
    let mut countries: Vec<Option<Jurisdiction>> = Vec::new();
    for (name, value) in headers {
        let value = value.trim();
        if name.eq_ignore_ascii_case(TIER_HEADER) {
            if !app.is_some_and(|a| a.trusts_tier) {
                out.notes.push(format!(
                    "ignored {TIER_HEADER}: {who} is not trusted to set it"
                ));
                continue;
            }
            let floor = match value.to_ascii_lowercase().parse::<Tier>() {
                Ok(t) => t,
                Err(_) => {
                    out.notes.push(format!(
                        "{TIER_HEADER} is not a tier name; treated as restricted (fail closed)"
                    ));
                    Tier::Restricted
                }
            };
            out.tier_floor = out.tier_floor.max(Some(floor));
        } else if name.eq_ignore_ascii_case(SUBJECT_COUNTRY_HEADER) {
            if !app.is_some_and(|a| a.trusts_subject_country) {
                out.notes.push(format!(
                    "ignored {SUBJECT_COUNTRY_HEADER}: {who} is not trusted to set it"
                ));
                continue;
            }
            let code = Jurisdiction::new(&value.to_ascii_uppercase());
            if code.is_none() {
                out.notes.push(format!(
                    "{SUBJECT_COUNTRY_HEADER} is not a two-letter country code; country unknown"
                ));
            }
            countries.push(code);
        }
    }
    if let Some(first) = countries.first().copied() {
        if countries.iter().all(|c| *c == first) {
            out.subject_country = first;
        } else {
            out.notes.push(format!(
                "{SUBJECT_COUNTRY_HEADER} given with different values; country unknown"
            ));
        }
    }
    out
}

fn describe(d: &Decision) -> String {
    match d {
        Decision::Allow(set) => format!("allow {}", set.describe()),
        Decision::Deny { reason } => format!("deny ({reason})"),
        Decision::Redact(r) => format!(
            "redact {} as {}, then allow {}",
            r.entities.as_ref().map_or_else(
                || "the types that made the tier".to_owned(),
                |e| e.join(", ")
            ),
            r.placeholder,
            r.allow.describe()
        ),
    }
}

fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(", ")
}

/// The reasons of an evaluation, formatted only when someone will read them.
struct Trace {
    explain: bool,
    lines: Vec<String>,
}

impl Trace {
    fn new(explain: bool) -> Trace {
        Trace {
            explain,
            lines: Vec::new(),
        }
    }

    fn push(&mut self, line: impl FnOnce() -> String) {
        if self.explain {
            self.lines.push(line());
        }
    }

    /// `line()` when explaining, else an empty string (nothing formatted).
    fn say(&self, line: impl FnOnce() -> String) -> String {
        if self.explain {
            line()
        } else {
            String::new()
        }
    }
}

/// `Ok(why it matched)` or `Err(the first condition that failed)`; the
/// reasons are empty unless `explain`.
fn check(
    rule: &Rule,
    facts: &RequestFacts<'_>,
    tier: Tier,
    explain: bool,
) -> Result<String, String> {
    let m = &rule.when;
    // A deny rule matches when a condition cannot be decided (fail closed).
    let is_deny = matches!(rule.action, Decision::Deny { .. });
    let mut why = Trace::new(explain);
    match &m.tier {
        None => {}
        Some(TierMatch::AnyOf(tiers)) => {
            let listed = || list(tiers, |t| t.to_string());
            if !tiers.contains(&tier) {
                return Err(why.say(|| format!("tier {tier} is not in [{}]", listed())));
            }
            why.push(|| format!("tier {tier} in [{}]", listed()));
        }
        Some(TierMatch::AtLeast(min)) => {
            if tier < *min {
                return Err(why.say(|| format!("tier {tier} is below {min}")));
            }
            why.push(|| format!("tier {tier} is at least {min}"));
        }
    }
    if let Some(types) = &m.entities {
        let listed = || list(types, |t| t.clone());
        match facts
            .entities
            .iter()
            .find(|e| types.iter().any(|t| t == *e))
        {
            Some(found) => why.push(|| format!("found entity {found} in [{}]", listed())),
            None => return Err(why.say(|| format!("no entity of [{}] found", listed()))),
        }
    }
    if let Some(countries) = &m.subject_country {
        let listed = || {
            list(countries, |c| match c {
                CountryPattern::Code(j) => j.to_string(),
                CountryPattern::Unknown => "unknown".into(),
            })
        };
        let source = facts.subject_country_source.as_str();
        match facts.subject_country {
            Some(c) if countries.contains(&CountryPattern::Code(c)) => {
                why.push(|| format!("subject country {c} (from {source}) in [{}]", listed()));
            }
            Some(c) => {
                return Err(why.say(|| {
                    format!(
                        "subject country {c} (from {source}) is not in [{}]",
                        listed()
                    )
                }))
            }
            None if countries.contains(&CountryPattern::Unknown) => {
                why.push(|| format!("subject country unknown, and [{}] lists unknown", listed()));
            }
            None if is_deny => why.push(|| {
                format!(
                    "subject country unknown: a deny rule on [{}] matches when it cannot be decided",
                    listed()
                )
            }),
            None => {
                return Err(why.say(|| {
                    format!(
                        "subject country unknown, cannot show it is in [{}]",
                        listed()
                    )
                }))
            }
        }
    }
    if let Some(apps) = &m.app {
        let listed = || list(apps, |a| a.clone());
        match facts.app {
            Some(a) if apps.iter().any(|x| x == a) => {
                why.push(|| format!("app {a} in [{}]", listed()));
            }
            Some(a) => return Err(why.say(|| format!("app {a} is not in [{}]", listed()))),
            None => {
                return Err(why.say(|| format!("no app identified; rule is for [{}]", listed())))
            }
        }
    }
    if let Some(models) = &m.model {
        let listed = || {
            list(models, |p| match p {
                ModelPattern::Exact(s) => s.clone(),
                ModelPattern::Prefix(s) => format!("{s}*"),
            })
        };
        match facts.model {
            Some(model) => {
                let hit = models.iter().any(|p| match p {
                    ModelPattern::Exact(s) => s == model,
                    ModelPattern::Prefix(s) => model.starts_with(s.as_str()),
                });
                if !hit {
                    return Err(why.say(|| format!("model {model} does not match [{}]", listed())));
                }
                why.push(|| format!("model {model} matches [{}]", listed()));
            }
            None if is_deny => why.push(|| {
                format!(
                    "no model named: a deny rule on [{}] matches when it cannot be decided",
                    listed()
                )
            }),
            None => {
                return Err(
                    why.say(|| format!("no model named, cannot show it matches [{}]", listed()))
                )
            }
        }
    }
    Ok(why.say(|| {
        if why.lines.is_empty() {
            "no conditions (matches every request)".into()
        } else {
            why.lines.join(", ")
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::lint;
    use residency_proto::region::CATALOGUE;

    fn rid(s: &str) -> RegionId {
        RegionId::new(s).unwrap()
    }

    fn catalogue() -> Vec<RegionId> {
        CATALOGUE.iter().map(|r| rid(r.id)).collect()
    }

    fn india() -> Vec<RegionId> {
        CATALOGUE
            .iter()
            .filter(|r| r.jurisdiction == Jurisdiction::IN)
            .map(|r| rid(r.id))
            .collect()
    }

    fn abroad() -> Vec<RegionId> {
        CATALOGUE
            .iter()
            .filter(|r| r.jurisdiction != Jurisdiction::IN)
            .map(|r| rid(r.id))
            .collect()
    }

    const ENTITY_SETS: [&[&str]; 5] = [
        &[],
        &["aadhaar"],
        &["payment_card", "phone"],
        &["pan"],
        &["gstin"],
    ];
    const COUNTRIES: [Option<Jurisdiction>; 3] =
        [None, Some(Jurisdiction::IN), Some(Jurisdiction::US)];
    const APPS: [Option<&str>; 2] = [None, Some("loans")];
    const MODELS: [Option<&str>; 2] = [None, Some("gpt-4o")];

    /// Every tier, entity, country, app and model combination against the
    /// baseline: the tier alone decides, and restricted never leaves India.
    #[test]
    fn baseline_table() {
        let p = crate::policy::Policy::builtin_baseline();
        let all = catalogue();
        let mut in_then_abroad = india();
        in_then_abroad.extend(abroad());
        let mut cases = 0;
        for tier in Tier::ALL {
            for entities in ENTITY_SETS {
                for country in COUNTRIES {
                    for app in APPS {
                        for model in MODELS {
                            let facts = RequestFacts {
                                entities: entities.to_vec(),
                                subject_country: country,
                                subject_country_source: if country.is_some() {
                                    CountrySource::GeoIp
                                } else {
                                    CountrySource::None
                                },
                                app,
                                model,
                                ..RequestFacts::new(tier)
                            };
                            let e = p.evaluate(&facts);
                            let ctx = format!("{facts:?} -> {e:?}");
                            // Explaining changes nothing but the trace.
                            let x = p.explain(&facts);
                            assert!(e.trace.is_empty() && !x.trace.is_empty(), "{ctx}");
                            assert_eq!(
                                Evaluation {
                                    trace: Vec::new(),
                                    ..x
                                },
                                e,
                                "{ctx}"
                            );
                            assert_eq!(e.effective_tier, tier, "{ctx}");
                            let set = e.decision.allow_set().expect("baseline allows every tier");
                            let (rule, order) = match tier {
                                Tier::Restricted => ("restricted-stays-in-india", india()),
                                Tier::Confidential => {
                                    ("confidential-prefers-india", in_then_abroad.clone())
                                }
                                Tier::Public | Tier::Internal => {
                                    ("public-and-internal-anywhere", all.clone())
                                }
                            };
                            assert_eq!(e.rule, rule, "{ctx}");
                            assert_eq!(p.ordered(set, &all), order, "{ctx}");
                            assert_eq!(
                                p.permits(set, &rid("aws:us-east-1")),
                                tier != Tier::Restricted,
                                "{ctx}"
                            );
                            assert!(p.permits(set, &rid("aws:ap-south-2")), "{ctx}");
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 5 * 3 * 2 * 2);
    }

    #[test]
    fn baseline_restricted_with_only_foreign_candidates_has_no_route() {
        let p = crate::policy::Policy::builtin_baseline();
        let e = p.evaluate(&RequestFacts::new(Tier::Restricted));
        let set = e.decision.allow_set().unwrap();
        assert!(p.ordered(set, &abroad()).is_empty());
        // Candidate order is kept within India.
        let c = [
            rid("aws:us-east-1"),
            rid("gcp:asia-south2"),
            rid("aws:ap-south-1"),
        ];
        assert_eq!(
            p.ordered(set, &c),
            vec![rid("gcp:asia-south2"), rid("aws:ap-south-1")]
        );
    }

    #[test]
    fn baseline_floor_and_unscannable_raise_but_never_lower() {
        let p = crate::policy::Policy::builtin_baseline();
        let raised = p.evaluate(&RequestFacts {
            tier_floor: Some(Tier::Restricted),
            ..RequestFacts::new(Tier::Public)
        });
        assert_eq!(raised.effective_tier, Tier::Restricted);
        assert_eq!(raised.rule, "restricted-stays-in-india");
        let not_lowered = p.evaluate(&RequestFacts {
            tier_floor: Some(Tier::Public),
            ..RequestFacts::new(Tier::Restricted)
        });
        assert_eq!(not_lowered.effective_tier, Tier::Restricted);
        assert_eq!(not_lowered.rule, "restricted-stays-in-india");
        let unscannable = p.evaluate(&RequestFacts {
            unscannable: true,
            ..RequestFacts::new(Tier::Public)
        });
        assert_eq!(unscannable.effective_tier, Tier::Restricted);
        assert_eq!(unscannable.rule, "restricted-stays-in-india");
    }

    fn loans_key() -> String {
        crate::policy::App::key_hash_hex("sk-loans")
    }

    fn rich() -> crate::policy::Policy {
        let text = format!(
            r#"
name = "bank"
unscannable_tier = "confidential"

[[app]]
name = "loans"
api_key_sha256 = ["{}"]
trusted_headers = ["x-residency-subject-country", "x-residency-tier"]

[[app]]
name = "chat"
api_key_sha256 = ["{}"]

[[region]]
id = "acme:in-blr-1"
jurisdiction = "IN"
city = "Bengaluru"

[[rule]]
name = "no-legacy-models-for-personal-data"
[rule.match]
tier_at_least = "confidential"
model = ["gpt-3.5*"]
[rule.deny]
reason = "legacy models may not see personal data"

[[rule]]
name = "eu-subjects-denied"
[rule.match]
subject_country = ["DE", "FR"]
[rule.deny]
reason = "EU data subjects are out of scope"

[[rule]]
name = "aadhaar-mumbai-first"
[rule.match]
entities = ["aadhaar", "aadhaar_vid"]
[rule.allow]
regions = ["aws:ap-south-1", "acme:in-blr-1"]
jurisdictions = ["IN"]

[[rule]]
name = "loans-confidential-us-ok"
[rule.match]
tier = ["confidential"]
app = ["loans"]
subject_country = ["US"]
[rule.allow]
jurisdictions = ["US", "IN"]

[[rule]]
name = "confidential-india"
[rule.match]
tier = ["confidential", "restricted"]
[rule.allow]
jurisdictions = ["IN"]

[[rule]]
name = "anything-else"
[rule.allow]
jurisdictions = ["*"]
"#,
            loans_key(),
            crate::policy::App::key_hash_hex("sk-chat")
        );
        lint(&text).unwrap()
    }

    #[test]
    fn first_matching_rule_wins_and_trace_explains_earlier_rules() {
        let p = rich();
        let e = p.explain(&RequestFacts {
            entities: vec!["aadhaar"],
            subject_country: Some(Jurisdiction::IN),
            subject_country_source: CountrySource::SiteMap,
            model: Some("gpt-4o"),
            ..RequestFacts::new(Tier::Restricted)
        });
        assert_eq!(e.rule, "aadhaar-mumbai-first");
        assert_eq!(e.rule_index, Some(2));
        assert_eq!(e.trace.len(), 1 + 3, "{:#?}", e.trace);
        assert!(e.trace[1].contains("no match: model gpt-4o does not match [gpt-3.5*]"));
        assert!(
            e.trace[2].contains("no match: subject country IN (from site_map) is not in [DE, FR]")
        );
        assert!(e.trace[3].contains("matched: found entity aadhaar"));
        // Explicit regions first in rule order, then the rest of India.
        let set = e.decision.allow_set().unwrap();
        let mut cands = catalogue();
        cands.push(rid("acme:in-blr-1"));
        let got = p.ordered(set, &cands);
        assert_eq!(got[..2], [rid("aws:ap-south-1"), rid("acme:in-blr-1")]);
        assert_eq!(got.len(), india().len() + 1);
        assert!(got
            .iter()
            .all(|r| p.jurisdiction_of(r) == Some(Jurisdiction::IN)));
    }

    #[test]
    fn deny_rules_fail_closed_when_undecidable() {
        let p = rich();
        // No model named: the legacy-model deny rule matches (cannot show it is not legacy).
        let e = p.evaluate(&RequestFacts::new(Tier::Confidential));
        assert_eq!(e.rule, "no-legacy-models-for-personal-data");
        assert!(matches!(e.decision, Decision::Deny { ref reason } if reason.contains("legacy")));
        // Public data is below the deny rule's tier; unknown country: EU deny rule matches.
        let e = p.explain(&RequestFacts {
            model: Some("gpt-4o"),
            ..RequestFacts::new(Tier::Public)
        });
        assert_eq!(e.rule, "eu-subjects-denied");
        assert!(e.trace.last().unwrap().contains("cannot be decided"));
        // Known legacy model with personal data: denied; with public data: not.
        let e = p.evaluate(&RequestFacts {
            model: Some("gpt-3.5-turbo"),
            subject_country: Some(Jurisdiction::IN),
            ..RequestFacts::new(Tier::Confidential)
        });
        assert_eq!(e.rule, "no-legacy-models-for-personal-data");
        let e = p.evaluate(&RequestFacts {
            model: Some("gpt-3.5-turbo"),
            subject_country: Some(Jurisdiction::IN),
            ..RequestFacts::new(Tier::Public)
        });
        assert_eq!(e.rule, "anything-else");
    }

    #[test]
    fn allow_rules_never_match_on_undecidable_or_other_apps() {
        let p = rich();
        let base = RequestFacts {
            model: Some("gpt-4o"),
            subject_country: Some(Jurisdiction::US),
            subject_country_source: CountrySource::Header,
            app: Some("loans"),
            ..RequestFacts::new(Tier::Confidential)
        };
        let e = p.evaluate(&base);
        assert_eq!(e.rule, "loans-confidential-us-ok");
        let set = e.decision.allow_set().unwrap();
        let got = p.ordered(
            set,
            &[
                rid("aws:ap-south-1"),
                rid("aws:us-east-1"),
                rid("aws:eu-west-1"),
            ],
        );
        assert_eq!(got, vec![rid("aws:us-east-1"), rid("aws:ap-south-1")]);
        // Another app, or no app: falls through to India only.
        for app in [Some("chat"), None] {
            let e = p.evaluate(&RequestFacts {
                app,
                ..base.clone()
            });
            assert_eq!(e.rule, "confidential-india", "{app:?}");
        }
        // Unknown country: the (allow) US rule does not match, and the EU deny
        // rule matches first because it cannot be decided.
        let e = p.evaluate(&RequestFacts {
            subject_country: None,
            ..base.clone()
        });
        assert_eq!(e.rule, "eu-subjects-denied");
    }

    #[test]
    fn region_sets_never_leak_outside() {
        let set = AllowSet {
            regions: vec![rid("aws:us-east-1")],
            jurisdictions: vec![Jurisdiction::IN],
            any_jurisdiction: false,
        };
        let look = |r: &RegionId| r.catalogue_entry().map(|e| e.jurisdiction);
        assert!(set.permits(&rid("aws:us-east-1"), look));
        assert!(!set.permits(&rid("aws:us-west-2"), look));
        assert!(!set.permits(&rid("acme:unknown-1"), look));
        let got = set.ordered(&catalogue(), look);
        assert_eq!(got[0], rid("aws:us-east-1"));
        assert_eq!(got.len(), 1 + india().len());
        // "*" never admits a region of unknown jurisdiction.
        let any = AllowSet {
            any_jurisdiction: true,
            ..AllowSet::default()
        };
        assert!(!any.permits(&rid("acme:unknown-1"), look));
        assert!(any.permits(&rid("aws:us-west-2"), look));
        assert!(AllowSet::default().ordered(&catalogue(), look).is_empty());
    }

    #[test]
    fn trusted_headers_only_from_trusted_apps() {
        let p = rich();
        let loans = p.app_for_key("sk-loans");
        let chat = p.app_for_key("sk-chat");
        assert!(loans.is_some() && chat.is_some());
        let h = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let headers = vec![
            h("X-Residency-Subject-Country", "us"),
            h("x-residency-tier", "restricted"),
        ];

        let t = trusted_labels(loans, &headers);
        assert_eq!(t.subject_country, Some(Jurisdiction::US));
        assert_eq!(t.tier_floor, Some(Tier::Restricted));

        for app in [chat, None] {
            let t = trusted_labels(app, &headers);
            assert_eq!(t.subject_country, None);
            assert_eq!(t.tier_floor, None);
            assert_eq!(t.notes.len(), 2, "{:?}", t.notes);
        }

        // A trusted app's floor can raise but never lower the tier.
        let t = trusted_labels(loans, &[h("x-residency-tier", "public")]);
        let e = p.evaluate(&RequestFacts {
            tier_floor: t.tier_floor,
            model: Some("gpt-4o"),
            subject_country: Some(Jurisdiction::IN),
            ..RequestFacts::new(Tier::Restricted)
        });
        assert_eq!(e.effective_tier, Tier::Restricted);
        assert_eq!(e.rule, "confidential-india");
        // A tier value that is not a tier counts as restricted (fail closed).
        let t = trusted_labels(loans, &[h("x-residency-tier", "top-secret")]);
        assert_eq!(t.tier_floor, Some(Tier::Restricted));
        // Disagreeing or malformed countries are unknown.
        let t = trusted_labels(
            loans,
            &[
                h("x-residency-subject-country", "IN"),
                h("x-residency-subject-country", "US"),
            ],
        );
        assert_eq!(t.subject_country, None);
        let t = trusted_labels(loans, &[h("x-residency-subject-country", "India")]);
        assert_eq!(t.subject_country, None);
    }

    #[test]
    fn no_rules_means_default_and_deny_all_denies() {
        let p = crate::policy::Policy::deny_all("no policy");
        let e = p.evaluate(&RequestFacts::new(Tier::Public));
        assert_eq!(e.rule, "default");
        assert_eq!(e.rule_index, None);
        assert_eq!(
            e.decision,
            Decision::Deny {
                reason: "no policy".into()
            }
        );
        let p = lint("").unwrap();
        assert!(matches!(
            p.evaluate(&RequestFacts::new(Tier::Public)).decision,
            Decision::Deny { .. }
        ));
    }
}
