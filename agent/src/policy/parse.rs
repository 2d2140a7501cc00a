//! Parsing and validation of policy text: [`lint`].
//!
//! The text is deserialized once into raw structs whose values are wrapped in
//! [`toml::Spanned`], so every semantic error (unknown region, duplicate rule
//! name, ...) points at the byte range of the value at fault, which is turned
//! into a line and column. Errors the TOML deserializer itself reports (syntax,
//! unknown fields, wrong types) carry its span; their field path is found by
//! walking a `toml_edit` parse of the same text to the deepest key or value
//! whose span contains the error.
//!
//! Checking is linear in the size of the text: the `toml_edit` parse is made
//! at most once and only when an error needs a table's span, line numbers come
//! from an index of line starts built once, and duplicate and name checks use
//! hash sets.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use residency_proto::{Jurisdiction, RegionId, Tier};
use serde::Deserialize;
use toml::Spanned;

use super::{
    AllowSet, App, CountryPattern, Decision, Match, ModelPattern, Policy, PolicyRegion, Rule,
    TierMatch, ENTITY_TYPES, SUBJECT_COUNTRY_HEADER, TIER_HEADER,
};

/// One problem found in a policy, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {field}: {reason}")]
pub struct PolicyError {
    /// 1-based line of the value at fault.
    pub line: usize,
    /// 1-based column (in characters) of the value at fault.
    pub column: usize,
    /// Path of the field at fault, e.g. `rule[2].allow.regions[0]`.
    pub field: String,
    /// What kind of mistake it is.
    pub kind: PolicyErrorKind,
    /// What is wrong, for people.
    pub reason: String,
}

/// The kinds of mistakes [`lint`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyErrorKind {
    /// TOML syntax, an unknown field, a missing field or a value of the wrong type.
    Syntax,
    /// A tier name that does not exist.
    UnknownTier,
    /// An entity type that is not in the sensitivity spec.
    UnknownEntity,
    /// A region id that is neither built in nor defined by `[[region]]`.
    UnknownRegion,
    /// A region id that is not written `provider:region`.
    BadRegionId,
    /// A `[[region]]` that redefines a built-in region.
    BuiltinRegion,
    /// A country or jurisdiction code that is not two upper-case letters.
    BadCountry,
    /// A rule names an app with no `[[app]]` entry.
    UnknownApp,
    /// A model pattern with `*` anywhere but at the end, or empty.
    BadModelPattern,
    /// A rule, app or region defined twice.
    Duplicate,
    /// A rule that can never match because a rule above matches everything.
    Unreachable,
    /// A `deny` without a reason.
    DenyWithoutReason,
    /// An `allow` that allows no region.
    AllowsNothing,
    /// A rule or default with neither `allow` nor `deny`, or with both.
    BadAction,
    /// An empty list in a condition, which would match nothing.
    EmptyList,
    /// Both `tier` and `tier_at_least` in one rule.
    ConflictingConditions,
    /// A `redact.placeholder` style without `TYPE` and `N`, or with
    /// characters that could not be told from text.
    BadPlaceholder,
    /// A `redact.entities` list that leaves out a type of the most sensitive
    /// tier the rule matches.
    RedactionIncomplete,
    /// An `api_key_sha256` entry that is not 64 hex digits, or is shared by two apps.
    BadKeyHash,
    /// A `trusted_headers` entry that is not a header the agent reads.
    UnknownHeader,
    /// A name that is empty, reserved or uses characters outside `[A-Za-z0-9_.-]`.
    BadName,
    /// An app that has no key and so could never be identified.
    AppWithoutKey,
    /// A `*` jurisdiction that is not the last entry.
    WildcardNotLast,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Option<Spanned<String>>,
    description: Option<String>,
    unscannable_tier: Option<Spanned<String>>,
    default: Option<RawAction>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    app: Vec<Spanned<RawApp>>,
    #[serde(default)]
    region: Vec<Spanned<RawRegion>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    allow: Option<RawAllow>,
    deny: Option<RawDeny>,
    redact: Option<Spanned<RawRedact>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    description: Option<String>,
    #[serde(rename = "match")]
    when: Option<RawMatch>,
    allow: Option<RawAllow>,
    deny: Option<RawDeny>,
    redact: Option<Spanned<RawRedact>>,
}

type RawList = Spanned<Vec<Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    tier: Option<RawList>,
    tier_at_least: Option<Spanned<String>>,
    entities: Option<RawList>,
    subject_country: Option<RawList>,
    app: Option<RawList>,
    model: Option<RawList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    regions: Option<RawList>,
    jurisdictions: Option<RawList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedact {
    entities: Option<RawList>,
    placeholder: Option<Spanned<String>>,
    regions: Option<RawList>,
    jurisdictions: Option<RawList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeny {
    reason: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Spanned<String>,
    #[serde(default)]
    api_key_sha256: Vec<Spanned<String>>,
    #[serde(default)]
    trusted_headers: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    id: Spanned<String>,
    jurisdiction: Spanned<String>,
    city: Spanned<String>,
}

/// One step of a path into the document, for [`Checker::locate`].
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Collects errors while validating one text.
struct Checker<'a> {
    text: &'a str,
    errors: Vec<PolicyError>,
    /// Byte offsets of line starts, built at the first error.
    lines: OnceCell<LineIndex>,
    /// The `toml_edit` parse, made at the first error that needs a table's
    /// span (`None` if it fails, which `toml` accepting the text rules out).
    doc: OnceCell<Option<toml_edit::ImDocument<&'a str>>>,
}

/// Where each line of a text starts, to turn byte offsets into positions
/// without scanning the text again for every error.
struct LineIndex {
    starts: Vec<usize>,
}

/// Parses and validates policy text, returning every problem found.
///
/// Errors are in the order of the file for semantic problems; a TOML syntax or
/// structure error stops parsing, so it is reported alone.
pub fn lint(text: &str) -> Result<Policy, Vec<PolicyError>> {
    let raw: RawPolicy = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = line_col(text, span.start);
            return Err(vec![PolicyError {
                line,
                column,
                field: field_at(text, span.start).unwrap_or_else(|| "(policy)".into()),
                kind: PolicyErrorKind::Syntax,
                reason: e.message().trim().to_owned(),
            }]);
        }
    };
    let mut c = Checker {
        text,
        errors: Vec::new(),
        lines: OnceCell::new(),
        doc: OnceCell::new(),
    };
    let policy = c.policy(raw);
    if c.errors.is_empty() {
        Ok(policy)
    } else {
        c.errors.sort_by_key(|e| (e.line, e.column));
        Err(c.errors)
    }
}

impl Checker<'_> {
    fn err(&mut self, span: Range<usize>, field: String, kind: PolicyErrorKind, reason: String) {
        let text = self.text;
        let (line, column) = self
            .lines
            .get_or_init(|| LineIndex::new(text))
            .line_col(text, span.start);
        self.errors.push(PolicyError {
            line,
            column,
            field,
            kind,
            reason,
        });
    }

    /// The span of the table at `path` + `last` (or of the nearest enclosing
    /// item that has one). Tables are not wrapped in `Spanned` because an
    /// implicit table (`[default.deny]` defines `default`) has no span to give.
    fn locate(&self, path: &[Seg<'_>], last: &str) -> Range<usize> {
        let text = self.text;
        let Some(doc) = self
            .doc
            .get_or_init(|| toml_edit::ImDocument::parse(text).ok())
        else {
            return 0..0;
        };
        let mut best = 0..0;
        let mut item = doc.as_item();
        let last = (!last.is_empty()).then_some(Seg::Key(last));
        for seg in path.iter().copied().chain(last) {
            let next = match seg {
                Seg::Key(k) => item.get(k),
                Seg::Index(i) => item.get(i),
            };
            let Some(next) = next else { break };
            if let Some(span) = next.span() {
                best = span;
            }
            item = next;
        }
        best
    }

    fn policy(&mut self, raw: RawPolicy) -> Policy {
        let name = match raw.name {
            Some(n) => {
                self.name(&n, "name".into());
                n.into_inner()
            }
            None => "unnamed".into(),
        };
        let unscannable_tier = match raw.unscannable_tier {
            Some(t) => self.tier(&t, "unscannable_tier".into()),
            None => Tier::Restricted,
        };
        let regions = self.regions(raw.region);
        let apps = self.apps(raw.app);
        let rules = self.rules(raw.rule, &regions, &apps);
        let default = match raw.default {
            Some(d) => {
                let ids: HashSet<&RegionId> = regions.iter().map(|r| &r.id).collect();
                if let Some(r) = &d.redact {
                    self.err(
                        r.span(),
                        "default.redact".into(),
                        PolicyErrorKind::BadAction,
                        "the default may allow or deny; redaction needs a rule that says which data".into(),
                    );
                }
                self.action(
                    &[Seg::Key("default")],
                    "default",
                    d.allow,
                    d.deny,
                    None,
                    &ids,
                )
            }
            None => Decision::Deny {
                reason: "no rule of the policy matched this request".into(),
            },
        };
        Policy {
            name,
            description: raw.description,
            unscannable_tier,
            rules,
            default,
            apps,
            regions,
        }
    }

    fn name(&mut self, n: &Spanned<String>, field: String) {
        let s = n.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.err(
                n.span(),
                field,
                PolicyErrorKind::BadName,
                format!("name {s:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"),
            );
        }
    }

    fn tier(&mut self, t: &Spanned<String>, field: String) -> Tier {
        match t.get_ref().parse::<Tier>() {
            Ok(t) => t,
            Err(e) => {
                self.err(t.span(), field, PolicyErrorKind::UnknownTier, e.to_string());
                Tier::Restricted
            }
        }
    }

    fn code(&mut self, s: &Spanned<String>, field: String) -> Option<Jurisdiction> {
        let code = Jurisdiction::new(s.get_ref());
        if code.is_none() {
            let v = s.get_ref();
            let hint = if Jurisdiction::new(&v.to_ascii_uppercase()).is_some() {
                format!(" (write {:?})", v.to_ascii_uppercase())
            } else {
                String::new()
            };
            self.err(
                s.span(),
                field,
                PolicyErrorKind::BadCountry,
                format!("{v:?} is not a two-letter upper-case ISO 3166 country code{hint}"),
            );
        }
        code
    }

    fn regions(&mut self, raw: Vec<Spanned<RawRegion>>) -> Vec<PolicyRegion> {
        let mut out: Vec<PolicyRegion> = Vec::new();
        let mut ids: HashSet<RegionId> = HashSet::new();
        for (i, r) in raw.into_iter().enumerate() {
            let r = r.into_inner();
            let field = format!("region[{i}]");
            let id = match RegionId::new(r.id.get_ref()) {
                Ok(id) => id,
                Err(e) => {
                    self.err(
                        r.id.span(),
                        format!("{field}.id"),
                        PolicyErrorKind::BadRegionId,
                        e.to_string(),
                    );
                    continue;
                }
            };
            if id.catalogue_entry().is_some() {
                self.err(
                    r.id.span(),
                    format!("{field}.id"),
                    PolicyErrorKind::BuiltinRegion,
                    format!("region {id} is built in; a policy cannot redefine it"),
                );
                continue;
            }
            if ids.contains(&id) {
                self.err(
                    r.id.span(),
                    format!("{field}.id"),
                    PolicyErrorKind::Duplicate,
                    format!("region {id} is defined twice"),
                );
                continue;
            }
            let Some(jurisdiction) = self.code(&r.jurisdiction, format!("{field}.jurisdiction"))
            else {
                continue;
            };
            if r.city.get_ref().trim().is_empty() {
                self.err(
                    r.city.span(),
                    format!("{field}.city"),
                    PolicyErrorKind::BadName,
                    "city must not be empty".into(),
                );
            }
            ids.insert(id.clone());
            out.push(PolicyRegion {
                id,
                jurisdiction,
                city: r.city.into_inner(),
            });
        }
        out
    }

    fn apps(&mut self, raw: Vec<Spanned<RawApp>>) -> Vec<App> {
        let mut out: Vec<App> = Vec::new();
        let mut hashes: HashMap<[u8; 32], String> = HashMap::new();
        let mut names: HashSet<String> = HashSet::new();
        for (i, a) in raw.into_iter().enumerate() {
            let span = a.span();
            let a = a.into_inner();
            let field = format!("app[{i}]");
            self.name(&a.name, format!("{field}.name"));
            if !names.insert(a.name.get_ref().clone()) {
                self.err(
                    a.name.span(),
                    format!("{field}.name"),
                    PolicyErrorKind::Duplicate,
                    format!("app {:?} is defined twice", a.name.get_ref()),
                );
            }
            if a.api_key_sha256.is_empty() {
                self.err(
                    span,
                    format!("{field}.api_key_sha256"),
                    PolicyErrorKind::AppWithoutKey,
                    "an app needs at least one api_key_sha256, or it can never be identified"
                        .into(),
                );
            }
            let mut keys = Vec::new();
            for (k, h) in a.api_key_sha256.iter().enumerate() {
                let f = format!("{field}.api_key_sha256[{k}]");
                let mut digest = [0u8; 32];
                if h.get_ref().len() != 64
                    || hex::decode_to_slice(h.get_ref(), &mut digest).is_err()
                {
                    self.err(
                        h.span(),
                        f,
                        PolicyErrorKind::BadKeyHash,
                        "expected 64 hex digits: the SHA-256 of the app's key, never the key itself"
                            .into(),
                    );
                    continue;
                }
                if let Some(other) = hashes.insert(digest, a.name.get_ref().clone()) {
                    self.err(
                        h.span(),
                        f,
                        PolicyErrorKind::BadKeyHash,
                        format!("this key hash is already listed for app {other:?}"),
                    );
                    continue;
                }
                keys.push(digest);
            }
            let (mut country, mut tier) = (false, false);
            for (k, h) in a.trusted_headers.iter().enumerate() {
                match h.get_ref().as_str() {
                    SUBJECT_COUNTRY_HEADER => country = true,
                    TIER_HEADER => tier = true,
                    other => self.err(
                        h.span(),
                        format!("{field}.trusted_headers[{k}]"),
                        PolicyErrorKind::UnknownHeader,
                        format!(
                            "{other:?} is not a header the agent reads \
                             (expected {SUBJECT_COUNTRY_HEADER} or {TIER_HEADER}, lower case)"
                        ),
                    ),
                }
            }
            out.push(App {
                name: a.name.into_inner(),
                api_key_sha256: keys,
                trusts_subject_country: country,
                trusts_tier: tier,
            });
        }
        out
    }

    fn rules(
        &mut self,
        raw: Vec<Spanned<RawRule>>,
        regions: &[PolicyRegion],
        apps: &[App],
    ) -> Vec<Rule> {
        let mut out: Vec<Rule> = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        let app_names: HashSet<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        let region_ids: HashSet<&RegionId> = regions.iter().map(|r| &r.id).collect();
        let mut catch_all: Option<(usize, String)> = None;
        for (i, r) in raw.into_iter().enumerate() {
            let r = r.into_inner();
            let field = format!("rule[{i}]");
            self.name(&r.name, format!("{field}.name"));
            let name = r.name.get_ref().clone();
            if name == "default" {
                self.err(
                    r.name.span(),
                    format!("{field}.name"),
                    PolicyErrorKind::BadName,
                    "\"default\" is reserved for the [default] action".into(),
                );
            } else if !names.insert(name.clone()) {
                self.err(
                    r.name.span(),
                    format!("{field}.name"),
                    PolicyErrorKind::Duplicate,
                    format!("duplicate rule name {name:?}"),
                );
            }
            if let Some((k, other)) = &catch_all {
                self.err(
                    r.name.span(),
                    format!("{field}.name"),
                    PolicyErrorKind::Unreachable,
                    format!(
                        "rule {name:?} can never match: rule[{k}] {other:?} above it matches every request"
                    ),
                );
            }
            let when = match r.when {
                Some(m) => self.conditions(m, &field, &app_names),
                None => Match::default(),
            };
            if when.is_catch_all() && catch_all.is_none() {
                catch_all = Some((i, name.clone()));
            }
            let redact_span = r.redact.as_ref().map(|x| x.span());
            let action = self.action(
                &[Seg::Key("rule"), Seg::Index(i)],
                &field,
                r.allow,
                r.deny,
                r.redact.map(Spanned::into_inner),
                &region_ids,
            );
            if let (Decision::Redact(red), Some(span)) = (&action, redact_span) {
                self.redaction_covers(red, &when, span, &field);
            }
            out.push(Rule {
                name,
                description: r.description,
                when,
                action,
            });
        }
        out
    }

    fn list<T>(
        &mut self,
        raw: Option<RawList>,
        field: String,
        mut each: impl FnMut(&mut Self, usize, &Spanned<String>, String) -> Option<T>,
    ) -> Option<Vec<T>> {
        let raw = raw?;
        if raw.get_ref().is_empty() {
            self.err(
                raw.span(),
                field,
                PolicyErrorKind::EmptyList,
                "an empty list matches nothing; remove the condition to match anything".into(),
            );
            return Some(Vec::new());
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (k, v) in raw.get_ref().iter().enumerate() {
            let f = format!("{field}[{k}]");
            if !seen.insert(v.get_ref().clone()) {
                self.err(
                    v.span(),
                    f,
                    PolicyErrorKind::Duplicate,
                    format!("{:?} is listed twice", v.get_ref()),
                );
                continue;
            }
            if let Some(t) = each(self, k, v, f) {
                out.push(t);
            }
        }
        Some(out)
    }

    fn conditions(&mut self, m: RawMatch, rule: &str, apps: &HashSet<&str>) -> Match {
        let f = |name: &str| format!("{rule}.match.{name}");
        let any_of = self.list(m.tier, f("tier"), |c, _, v, field| Some(c.tier(v, field)));
        let tier = match (any_of, m.tier_at_least) {
            (Some(_), Some(t)) => {
                self.err(
                    t.span(),
                    f("tier_at_least"),
                    PolicyErrorKind::ConflictingConditions,
                    "use either tier or tier_at_least, not both".into(),
                );
                None
            }
            (Some(list), None) => Some(TierMatch::AnyOf(list)),
            (None, Some(t)) => Some(TierMatch::AtLeast(self.tier(&t, f("tier_at_least")))),
            (None, None) => None,
        };
        let entities = self.list(m.entities, f("entities"), |c, _, v, field| {
            if ENTITY_TYPES.contains(&v.get_ref().as_str()) {
                Some(v.get_ref().clone())
            } else {
                c.err(
                    v.span(),
                    field,
                    PolicyErrorKind::UnknownEntity,
                    format!(
                        "unknown entity type {:?} (expected one of: {})",
                        v.get_ref(),
                        ENTITY_TYPES.join(", ")
                    ),
                );
                None
            }
        });
        let subject_country =
            self.list(m.subject_country, f("subject_country"), |c, _, v, field| {
                if v.get_ref() == "unknown" {
                    Some(CountryPattern::Unknown)
                } else {
                    c.code(v, field).map(CountryPattern::Code)
                }
            });
        let app = self.list(m.app, f("app"), |c, _, v, field| {
            if apps.contains(v.get_ref().as_str()) {
                Some(v.get_ref().clone())
            } else {
                c.err(
                    v.span(),
                    field,
                    PolicyErrorKind::UnknownApp,
                    format!("no [[app]] is named {:?}", v.get_ref()),
                );
                None
            }
        });
        let model = self.list(m.model, f("model"), |c, _, v, field| {
            let s = v.get_ref();
            let body = s.strip_suffix('*').unwrap_or(s);
            if body.contains('*') || s.is_empty() {
                c.err(
                    v.span(),
                    field,
                    PolicyErrorKind::BadModelPattern,
                    format!("{s:?}: write an exact model name or a prefix ending in one '*', e.g. \"gpt-4*\""),
                );
                None
            } else if s.ends_with('*') {
                Some(ModelPattern::Prefix(body.to_owned()))
            } else {
                Some(ModelPattern::Exact(s.clone()))
            }
        });
        Match {
            tier,
            entities,
            subject_country,
            app,
            model,
        }
    }

    fn action(
        &mut self,
        path: &[Seg<'_>],
        field: &str,
        allow: Option<RawAllow>,
        deny: Option<RawDeny>,
        redact: Option<RawRedact>,
        regions: &HashSet<&RegionId>,
    ) -> Decision {
        let fail = Decision::Deny {
            reason: "invalid action".into(),
        };
        let given = [allow.is_some(), deny.is_some(), redact.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            let second = if redact.is_some() { "redact" } else { "deny" };
            let span = self.locate(path, second);
            self.err(
                span,
                format!("{field}.{second}"),
                PolicyErrorKind::BadAction,
                "give exactly one of allow, deny or redact".into(),
            );
            return fail;
        }
        if let Some(r) = redact {
            return self.redaction(path, field, r, regions).unwrap_or(fail);
        }
        match (allow, deny) {
            (Some(_), Some(_)) => fail,
            (None, None) => {
                let span = self.locate(path, "");
                self.err(
                    span,
                    field.to_owned(),
                    PolicyErrorKind::BadAction,
                    "needs an action: an allow table (regions/jurisdictions), a deny table (reason) or a redact table"
                        .into(),
                );
                fail
            }
            (None, Some(d)) => match d.reason {
                Some(r) if !r.get_ref().trim().is_empty() => Decision::Deny {
                    reason: r.into_inner(),
                },
                Some(r) => {
                    self.err(
                        r.span(),
                        format!("{field}.deny.reason"),
                        PolicyErrorKind::DenyWithoutReason,
                        "the reason must not be empty: the caller sees it with HTTP 451".into(),
                    );
                    fail
                }
                None => {
                    let dspan = self.locate(path, "deny");
                    self.err(
                        dspan,
                        format!("{field}.deny.reason"),
                        PolicyErrorKind::DenyWithoutReason,
                        "deny needs a reason: the caller sees it with HTTP 451".into(),
                    );
                    fail
                }
            },
            (Some(a), None) => match self.allow_set(
                path,
                &format!("{field}.allow"),
                "allow",
                a.regions,
                a.jurisdictions,
                regions,
            ) {
                Some(set) => Decision::Allow(set),
                None => fail,
            },
        }
    }

    /// A `[rule.redact]`: its entity types, placeholder style and target set.
    fn redaction(
        &mut self,
        path: &[Seg<'_>],
        field: &str,
        r: RawRedact,
        regions: &HashSet<&RegionId>,
    ) -> Option<Decision> {
        let entities = self.list(
            r.entities,
            format!("{field}.redact.entities"),
            |c, _, v, f| {
                if ENTITY_TYPES.contains(&v.get_ref().as_str()) {
                    Some(v.get_ref().clone())
                } else {
                    c.err(
                        v.span(),
                        f,
                        PolicyErrorKind::UnknownEntity,
                        format!(
                            "unknown entity type {:?}; the sensitivity spec names {}",
                            v.get_ref(),
                            ENTITY_TYPES.join(", ")
                        ),
                    );
                    None
                }
            },
        );
        let placeholder = match r.placeholder {
            None => crate::policy::DEFAULT_PLACEHOLDER.to_owned(),
            Some(p) => {
                if let Err(why) = placeholder_style_ok(p.get_ref()) {
                    self.err(
                        p.span(),
                        format!("{field}.redact.placeholder"),
                        PolicyErrorKind::BadPlaceholder,
                        why,
                    );
                    return None;
                }
                p.into_inner()
            }
        };
        let allow = self.allow_set(
            path,
            &format!("{field}.redact"),
            "redact",
            r.regions,
            r.jurisdictions,
            regions,
        )?;
        Some(Decision::Redact(crate::policy::Redaction {
            entities,
            placeholder,
            allow,
        }))
    }

    /// A redaction must replace every entity type of the most sensitive tier
    /// its rule can match; otherwise a request holding another such type
    /// would still be that tier after redaction.
    fn redaction_covers(
        &mut self,
        red: &crate::policy::Redaction,
        when: &Match,
        span: Range<usize>,
        field: &str,
    ) {
        let Some(listed) = &red.entities else { return };
        let top = match &when.tier {
            Some(TierMatch::AnyOf(t)) => t.iter().copied().max().unwrap_or(Tier::Restricted),
            _ => Tier::Restricted,
        };
        if top == Tier::Public {
            return;
        }
        let missing: Vec<&str> = ENTITY_TYPES
            .iter()
            .copied()
            .filter(|t| {
                t.parse::<crate::classify::EntityType>()
                    .is_ok_and(|k| k.tier() == top)
                    && !listed.iter().any(|l| l == t)
            })
            .collect();
        if !missing.is_empty() {
            self.err(
                span,
                format!("{field}.redact.entities"),
                PolicyErrorKind::RedactionIncomplete,
                format!(
                    "the rule matches {top} requests but does not redact {}: such a request would still be {top} after redaction and could reach the redact regions; list them or leave entities out (then the types that made the tier are redacted)",
                    missing.join(", ")
                ),
            );
        }
    }

    /// The regions and jurisdictions of an `allow` or `redact` table under
    /// `prefix` (`rule[0].allow`); `None` (with errors) if it allows nothing.
    fn allow_set(
        &mut self,
        path: &[Seg<'_>],
        prefix: &str,
        key: &str,
        raw_regions: Option<RawList>,
        raw_j: Option<RawList>,
        regions: &HashSet<&RegionId>,
    ) -> Option<AllowSet> {
        let field = prefix;
        let errors_before = self.errors.len();
        let ids = self
            .list(
                raw_regions,
                format!("{field}.regions"),
                |c, _, v, f| match RegionId::new(v.get_ref()) {
                    Err(e) => {
                        c.err(v.span(), f, PolicyErrorKind::BadRegionId, e.to_string());
                        None
                    }
                    Ok(id) if id.catalogue_entry().is_none() && !regions.contains(&id) => {
                        c.err(
                            v.span(),
                            f,
                            PolicyErrorKind::UnknownRegion,
                            format!(
                                "unknown region id {id}: not in the built-in catalogue \
                                         and not defined by a [[region]] entry"
                            ),
                        );
                        None
                    }
                    Ok(id) => Some(id),
                },
            )
            .unwrap_or_default();
        let mut any = false;
        let len = raw_j.as_ref().map_or(0, |j| j.get_ref().len());
        let codes = self
            .list(raw_j, format!("{field}.jurisdictions"), |c, k, v, f| {
                if v.get_ref() != "*" {
                    return c.code(v, f);
                }
                any = true;
                if k + 1 != len {
                    c.err(
                        v.span(),
                        f,
                        PolicyErrorKind::WildcardNotLast,
                        "\"*\" (any other jurisdiction) must be the last entry".into(),
                    );
                }
                None
            })
            .unwrap_or_default();
        let set = AllowSet {
            regions: ids,
            jurisdictions: codes,
            any_jurisdiction: any,
        };
        if set.regions.is_empty() && set.jurisdictions.is_empty() && !set.any_jurisdiction {
            // Only the lists above report errors under this allow.
            let prefix = field.to_owned();
            if self.errors[errors_before..]
                .iter()
                .all(|e| !e.field.starts_with(&prefix))
            {
                let aspan = self.locate(path, key);
                self.err(
                    aspan,
                    field.to_owned(),
                    PolicyErrorKind::AllowsNothing,
                    "allow names no region and no jurisdiction, so it allows nothing; \
                             use deny to refuse"
                        .into(),
                );
            }
            return None;
        }
        Some(set)
    }
}

impl Match {
    /// True if the rule has no conditions and so matches every request.
    pub fn is_catch_all(&self) -> bool {
        self.tier.is_none()
            && self.entities.is_none()
            && self.subject_country.is_none()
            && self.app.is_none()
            && self.model.is_none()
    }
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// 1-based line and character column of a byte offset into `text`, the
    /// text this index was built from.
    fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        // The number of line starts at or before `offset` is the line number;
        // the first start is 0, so it is at least 1.
        let line = self.starts.partition_point(|&s| s <= offset);
        let line_start = self.starts[line - 1];
        (line, text[line_start..offset].chars().count() + 1)
    }
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).line_col(text, offset)
}

/// Whether a placeholder style can be used: `TYPE` then `N`, each once, in
/// at most 32 printable ASCII bytes without quotes or backslashes.
pub(crate) fn placeholder_style_ok(style: &str) -> Result<(), String> {
    crate::redact::PlaceholderStyle::parse(style)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The path (`rule[2].allow.regions[0]`) of the deepest key or value whose span
/// contains `offset`, found in a `toml_edit` parse of the text.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    find_in_table(doc.as_table(), offset, "")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.contains(&offset) || s.start == offset)
}

fn find_in_table(t: &toml_edit::Table, offset: usize, path: &str) -> Option<String> {
    for (k, item) in t.iter() {
        let here = join(path, k);
        if let Some(p) = find_in_item(item, offset, &here) {
            return Some(p);
        }
        if contains(t.key(k).and_then(|k| k.span()), offset) || contains(item.span(), offset) {
            return Some(here);
        }
    }
    None
}

fn find_in_item(item: &toml_edit::Item, offset: usize, path: &str) -> Option<String> {
    match item {
        toml_edit::Item::Table(t) => find_in_table(t, offset, path),
        toml_edit::Item::ArrayOfTables(a) => a.iter().enumerate().find_map(|(i, t)| {
            let here = format!("{path}[{i}]");
            find_in_table(t, offset, &here).or_else(|| contains(t.span(), offset).then_some(here))
        }),
        toml_edit::Item::Value(v) => find_in_value(v, offset, path),
        toml_edit::Item::None => None,
    }
}

fn find_in_value(v: &toml_edit::Value, offset: usize, path: &str) -> Option<String> {
    match v {
        toml_edit::Value::Array(a) => a.iter().enumerate().find_map(|(i, e)| {
            let here = format!("{path}[{i}]");
            find_in_value(e, offset, &here).or_else(|| contains(e.span(), offset).then_some(here))
        }),
        toml_edit::Value::InlineTable(t) => t.iter().find_map(|(k, e)| {
            let here = join(path, k);
            find_in_value(e, offset, &here).or_else(|| {
                (contains(t.key(k).and_then(|k| k.span()), offset) || contains(e.span(), offset))
                    .then_some(here)
            })
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lints `text` and returns `(line, column, field, kind)` of each error.
    fn errors(text: &str) -> Vec<(usize, usize, String, PolicyErrorKind)> {
        lint(text)
            .expect_err("policy should be invalid")
            .into_iter()
            .map(|e| (e.line, e.column, e.field, e.kind))
            .collect()
    }

    fn one(text: &str) -> (usize, usize, String, PolicyErrorKind) {
        let mut e = errors(text);
        assert_eq!(e.len(), 1, "{e:?}");
        e.remove(0)
    }

    fn f(s: &str) -> String {
        s.to_owned()
    }

    const OK_RULE: &str = "[[rule]]\nname = \"ok\"\n[rule.match]\ntier = [\"public\"]\n[rule.allow]\njurisdictions = [\"*\"]\n";

    #[test]
    fn a_redact_rule_names_its_types_style_and_target() {
        let p = lint(
            "[[rule]]\nname = \"redact-abroad\"\n[rule.match]\ntier = [\"restricted\"]\nmodel = [\"gpt-5*\"]\n\
             [rule.redact]\nregions = [\"aws:us-east-1\"]\n",
        )
        .unwrap();
        match &p.rules()[0].action {
            Decision::Redact(r) => {
                assert_eq!(r.entities, None);
                assert_eq!(r.placeholder, "<TYPE_N>");
                assert_eq!(r.allow.regions[0].as_str(), "aws:us-east-1");
            }
            other => panic!("{other:?}"),
        }
        let p = lint(
            "[[rule]]\nname = \"r\"\n[rule.match]\ntier = [\"confidential\"]\n\
             [rule.redact]\nentities = [\"pan\", \"passport\", \"voter_id\", \"driving_licence\", \"phone\", \"email\", \"bank_account\", \"upi_id\"]\nplaceholder = \"[[TYPE-N]]\"\njurisdictions = [\"*\"]\n",
        );
        // Whatever the confidential types are, either all are listed or the
        // error names the ones left out.
        match p {
            Ok(p) => assert!(matches!(p.rules()[0].action, Decision::Redact(_))),
            Err(e) => {
                assert_eq!(e[0].kind, PolicyErrorKind::RedactionIncomplete, "{e:?}");
                assert_eq!(e[0].field, "rule[0].redact.entities");
            }
        }
    }

    #[test]
    fn a_redact_rule_that_leaves_the_tier_in_place_is_refused() {
        let (_, _, field, kind) = one(
            "[[rule]]\nname = \"r\"\n[rule.match]\ntier = [\"restricted\"]\n[rule.redact]\nentities = [\"pan\"]\nregions = [\"aws:us-east-1\"]\n",
        );
        assert_eq!(
            (field.as_str(), kind),
            (
                "rule[0].redact.entities",
                PolicyErrorKind::RedactionIncomplete
            )
        );
        let e = errors("[[rule]]\nname = \"r\"\n[rule.match]\ntier = [\"restricted\"]\n[rule.redact]\nentities = [\"pan\"]\nregions = [\"aws:us-east-1\"]\n");
        assert!(e[0].3 == PolicyErrorKind::RedactionIncomplete);
        let text = lint("[[rule]]\nname = \"r\"\n[rule.match]\ntier = [\"restricted\"]\n[rule.redact]\nentities = [\"pan\"]\nregions = [\"aws:us-east-1\"]\n").unwrap_err()[0].reason.clone();
        assert!(text.contains("aadhaar"), "{text}");
        for (body, field, kind) in [
            (
                "entities = [\"pann\"]\nregions = [\"aws:us-east-1\"]",
                "rule[0].redact.entities[0]",
                PolicyErrorKind::UnknownEntity,
            ),
            (
                "placeholder = \"XXXX\"\nregions = [\"aws:us-east-1\"]",
                "rule[0].redact.placeholder",
                PolicyErrorKind::BadPlaceholder,
            ),
            (
                "placeholder = \"<TYPE N>\"\nregions = [\"aws:us-east-1\"]",
                "rule[0].redact.placeholder",
                PolicyErrorKind::BadPlaceholder,
            ),
            (
                "regions = []",
                "rule[0].redact.regions",
                PolicyErrorKind::EmptyList,
            ),
        ] {
            let e = errors(&format!("[[rule]]\nname = \"r\"\n[rule.match]\ntier = [\"restricted\"]\n[rule.redact]\n{body}\n"));
            assert!(
                e.iter().any(|e| (e.2.as_str(), e.3) == (field, kind)),
                "{body}: {e:?}"
            );
        }
        let e = errors("[[rule]]\nname = \"r\"\n[rule.redact]\nregions = [\"aws:us-east-1\"]\n[rule.allow]\nregions = [\"aws:us-east-1\"]\n");
        assert_eq!(e[0].3, PolicyErrorKind::BadAction, "{e:?}");
        let e = errors("[default.redact]\nregions = [\"aws:us-east-1\"]\n");
        assert_eq!(e[0].2, "default.redact", "{e:?}");
    }

    #[test]
    fn unknown_region_id() {
        let text = format!(
            "{OK_RULE}\n[[rule]]\nname = \"r\"\n[rule.allow]\nregions = [\"aws:ap-south-1\", \"aws:mars-1\"]\n"
        );
        assert_eq!(
            one(&text),
            (
                11,
                30,
                f("rule[1].allow.regions[1]"),
                PolicyErrorKind::UnknownRegion
            )
        );
    }

    #[test]
    fn malformed_region_id() {
        assert_eq!(
            one("[[rule]]\nname = \"r\"\n[rule.allow]\nregions = [\"mumbai\"]\n"),
            (
                4,
                12,
                f("rule[0].allow.regions[0]"),
                PolicyErrorKind::BadRegionId
            )
        );
    }

    #[test]
    fn unknown_entity_type() {
        let e = lint("[[rule]]\nname = \"r\"\n[rule.match]\nentities = [\"pan\", \"aadhar\"]\n[rule.allow]\njurisdictions = [\"IN\"]\n")
            .unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].line, e[0].column), (4, 20));
        assert_eq!(e[0].field, "rule[0].match.entities[1]");
        assert_eq!(e[0].kind, PolicyErrorKind::UnknownEntity);
        assert!(e[0].reason.contains("\"aadhar\"") && e[0].reason.contains("aadhaar_vid"));
    }

    #[test]
    fn unknown_tier_in_every_place() {
        assert_eq!(
            one("[[rule]]\nname = \"r\"\n[rule.match]\ntier = [\"secret\"]\n[rule.allow]\njurisdictions = [\"IN\"]\n"),
            (4, 9, f("rule[0].match.tier[0]"), PolicyErrorKind::UnknownTier)
        );
        assert_eq!(
            one("[[rule]]\nname = \"r\"\n[rule.match]\ntier_at_least = \"Restricted\"\n[rule.allow]\njurisdictions = [\"IN\"]\n"),
            (4, 17, f("rule[0].match.tier_at_least"), PolicyErrorKind::UnknownTier)
        );
        assert_eq!(
            one("unscannable_tier = \"high\"\n"),
            (1, 20, f("unscannable_tier"), PolicyErrorKind::UnknownTier)
        );
    }

    #[test]
    fn duplicate_rule_name() {
        let text = format!("{OK_RULE}{OK_RULE}");
        assert_eq!(
            one(&text),
            (8, 8, f("rule[1].name"), PolicyErrorKind::Duplicate)
        );
    }

    #[test]
    fn unreachable_rule_after_catch_all() {
        let text = format!(
            "[[rule]]\nname = \"all\"\n[rule.allow]\njurisdictions = [\"IN\"]\n\n{OK_RULE}"
        );
        let e = lint(&text).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            (e[0].line, e[0].column, e[0].field.as_str()),
            (7, 8, "rule[1].name")
        );
        assert_eq!(e[0].kind, PolicyErrorKind::Unreachable);
        assert!(e[0].reason.contains("rule[0] \"all\""), "{}", e[0].reason);
    }

    #[test]
    fn deny_without_reason() {
        assert_eq!(
            one("[[rule]]\nname = \"r\"\n[rule.deny]\n"),
            (
                3,
                1,
                f("rule[0].deny.reason"),
                PolicyErrorKind::DenyWithoutReason
            )
        );
        assert_eq!(
            one("[[rule]]\nname = \"r\"\n[rule.deny]\nreason = \"  \"\n"),
            (
                4,
                10,
                f("rule[0].deny.reason"),
                PolicyErrorKind::DenyWithoutReason
            )
        );
        assert_eq!(
            one("[default.deny]\n"),
            (
                1,
                1,
                f("default.deny.reason"),
                PolicyErrorKind::DenyWithoutReason
            )
        );
    }

    #[test]
    fn allow_with_nothing_allowed() {
        assert_eq!(
            one("[[rule]]\nname = \"r\"\n[rule.allow]\n"),
            (3, 1, f("rule[0].allow"), PolicyErrorKind::AllowsNothing)
        );
        assert_eq!(
            one("[[rule]]\nname = \"r\"\n[rule.allow]\nregions = []\n"),
            (
                4,
                11,
                f("rule[0].allow.regions"),
                PolicyErrorKind::EmptyList
            )
        );
    }

    #[test]
    fn rule_without_or_with_two_actions() {
        assert_eq!(
            one("[[rule]]\nname = \"r\"\n"),
            (1, 1, f("rule[0]"), PolicyErrorKind::BadAction)
        );
        assert_eq!(
            one("[[rule]]\nname = \"r\"\n[rule.allow]\njurisdictions = [\"IN\"]\n[rule.deny]\nreason = \"x\"\n"),
            (5, 1, f("rule[0].deny"), PolicyErrorKind::BadAction)
        );
    }

    #[test]
    fn bad_countries_and_wildcards() {
        let e = lint("[[rule]]\nname = \"r\"\n[rule.match]\nsubject_country = [\"in\", \"unknown\"]\n[rule.allow]\njurisdictions = [\"*\", \"IN\"]\n").unwrap_err();
        let got: Vec<_> = e
            .iter()
            .map(|e| (e.line, e.column, e.field.as_str(), e.kind))
            .collect();
        assert_eq!(
            got,
            [
                (
                    4,
                    20,
                    "rule[0].match.subject_country[0]",
                    PolicyErrorKind::BadCountry
                ),
                (
                    6,
                    18,
                    "rule[0].allow.jurisdictions[0]",
                    PolicyErrorKind::WildcardNotLast
                ),
            ]
        );
        assert!(e[0].reason.contains("write \"IN\""), "{}", e[0].reason);
    }

    #[test]
    fn apps_keys_headers_and_unknown_app() {
        let text = "\
[[app]]
name = \"loans\"
api_key_sha256 = [\"sk-live-raw-key\"]
trusted_headers = [\"x-residency-region\"]

[[app]]
name = \"chat\"

[[rule]]
name = \"r\"
[rule.match]
app = [\"loan\"]
[rule.allow]
jurisdictions = [\"IN\"]
";
        assert_eq!(
            errors(text),
            [
                (
                    3,
                    19,
                    f("app[0].api_key_sha256[0]"),
                    PolicyErrorKind::BadKeyHash
                ),
                (
                    4,
                    20,
                    f("app[0].trusted_headers[0]"),
                    PolicyErrorKind::UnknownHeader
                ),
                (
                    6,
                    1,
                    f("app[1].api_key_sha256"),
                    PolicyErrorKind::AppWithoutKey
                ),
                (
                    12,
                    8,
                    f("rule[0].match.app[0]"),
                    PolicyErrorKind::UnknownApp
                ),
            ]
        );
    }

    #[test]
    fn shared_key_hash_and_duplicate_app() {
        let h = "ab".repeat(32);
        let text = format!("[[app]]\nname = \"a\"\napi_key_sha256 = [\"{h}\"]\n[[app]]\nname = \"a\"\napi_key_sha256 = [\"{h}\"]\n");
        assert_eq!(
            errors(&text),
            [
                (5, 8, f("app[1].name"), PolicyErrorKind::Duplicate),
                (
                    6,
                    19,
                    f("app[1].api_key_sha256[0]"),
                    PolicyErrorKind::BadKeyHash
                ),
            ]
        );
    }

    #[test]
    fn model_patterns() {
        assert_eq!(
            one("[[rule]]\nname = \"r\"\n[rule.match]\nmodel = [\"gpt-4*\", \"*turbo\"]\n[rule.deny]\nreason = \"x\"\n"),
            (4, 20, f("rule[0].match.model[1]"), PolicyErrorKind::BadModelPattern)
        );
    }

    #[test]
    fn regions_cannot_redefine_builtins() {
        assert_eq!(
            one("[[region]]\nid = \"aws:ap-south-1\"\njurisdiction = \"US\"\ncity = \"x\"\n"),
            (2, 6, f("region[0].id"), PolicyErrorKind::BuiltinRegion)
        );
    }

    #[test]
    fn syntax_and_structure_errors_carry_position_and_field() {
        // A typo in a field name.
        let (line, col, field, kind) =
            one("[[rule]]\nname = \"r\"\n[rule.allow]\njurisdiction = [\"IN\"]\n");
        assert_eq!((line, col, kind), (4, 1, PolicyErrorKind::Syntax));
        assert_eq!(field, "rule[0].allow.jurisdiction");
        // A string where a list belongs.
        let (line, col, field, _) =
            one("[[rule]]\nname = \"r\"\n[rule.allow]\nregions = \"aws:ap-south-1\"\n");
        assert_eq!(
            (line, col, field.as_str()),
            (4, 11, "rule[0].allow.regions")
        );
        // Broken TOML.
        let (line, _, _, kind) = one("name = \"x\"\n[[rule]\n");
        assert_eq!((line, kind), (2, PolicyErrorKind::Syntax));
        // Unknown top-level key.
        let e = lint("nmae = \"x\"\n").unwrap_err();
        assert_eq!(
            (e[0].line, e[0].column, e[0].field.as_str()),
            (1, 1, "nmae")
        );
        assert!(e[0].reason.contains("unknown field"), "{}", e[0].reason);
    }

    #[test]
    fn errors_display_as_line_col_field_reason() {
        let e = lint("unscannable_tier = \"high\"\n").unwrap_err();
        assert!(e[0]
            .to_string()
            .starts_with("1:20: unscannable_tier: unknown tier \"high\""));
    }

    #[test]
    fn dotted_keys_and_inline_tables_parse() {
        let p = lint("[[rule]]\nname = \"r\"\nmatch.tier = [\"restricted\"]\nallow = { jurisdictions = [\"IN\"] }\n\n[default]\ndeny.reason = \"no\"\n").unwrap();
        assert_eq!(p.rules().len(), 1);
        assert!(!p.rules()[0].when.is_catch_all());
    }

    #[test]
    fn errors_deep_in_a_large_policy_keep_their_position() {
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!(
                "[[rule]]\nname = \"r{i}\"\n[rule.match]\ntier = [\"public\"]\n[rule.allow]\njurisdictions = [\"IN\"]\n"
            ));
        }
        text.push_str(
            "[[rule]]\nname = \"r5\"\n[rule.deny]\n[[rule]]\nname = \"é\"\n[rule.allow]\n",
        );
        assert_eq!(
            errors(&text),
            [
                (6002, 8, f("rule[1000].name"), PolicyErrorKind::Duplicate),
                (
                    6003,
                    1,
                    f("rule[1000].deny.reason"),
                    PolicyErrorKind::DenyWithoutReason
                ),
                (6005, 8, f("rule[1001].name"), PolicyErrorKind::BadName),
                (6005, 8, f("rule[1001].name"), PolicyErrorKind::Unreachable),
                (
                    6006,
                    1,
                    f("rule[1001].allow"),
                    PolicyErrorKind::AllowsNothing
                ),
            ]
        );
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé\nx", 0), (1, 1));
        assert_eq!(line_col("ab\ncdé\nx", 3), (2, 1));
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("é", 1), (1, 1));
    }
}
