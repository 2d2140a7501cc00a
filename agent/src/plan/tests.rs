//! The decision core over a table of cases: no network, no clock but the one
//! passed in.

use std::time::{Duration, Instant};

use residency_proto::{Jurisdiction, RegionId, Tier};

use super::*;
use crate::classify::EntityType;
use crate::geo::{GeoConfig, SiteEntry};
use crate::policy::{App, CountrySource};

fn r(s: &str) -> RegionId {
    RegionId::new(s).unwrap()
}

const MUMBAI: &str = "aws:ap-south-1";
const HYDERABAD: &str = "aws:ap-south-2";
const VIRGINIA: &str = "aws:us-east-1";

/// A policy like a bank branch's: restricted data and Indian subjects stay in
/// India; a trusted app may set the subject's country and a tier floor; one
/// model is refused; everything else anywhere, India first.
fn policy() -> Policy {
    let text = format!(
        r#"
unscannable_tier = "restricted"

[[app]]
name = "loans"
api_key_sha256 = ["{}"]
trusted_headers = ["x-residency-subject-country", "x-residency-tier"]

[[rule]]
name = "no-preview-models"
[rule.match]
model = ["o9-preview*"]
[rule.deny]
reason = "preview models are not approved"

[[rule]]
name = "restricted-in-india"
[rule.match]
tier = ["restricted"]
[rule.allow]
jurisdictions = ["IN"]

[[rule]]
name = "indian-subjects"
[rule.match]
subject_country = ["IN"]
[rule.allow]
regions = ["{HYDERABAD}"]
jurisdictions = ["IN"]

[[rule]]
name = "secret-nowhere"
[rule.match]
tier = ["confidential"]
[rule.allow]
jurisdictions = ["SG"]

[[rule]]
name = "rest"
[rule.allow]
jurisdictions = ["IN", "*"]
"#,
        App::key_hash_hex("sk-loans")
    );
    crate::policy::lint(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

struct World {
    policy: Policy,
    router: Router,
    catalogue: Catalogue,
    geo: Geo,
    pins: Pins,
}

impl World {
    fn new() -> World {
        let geo = Geo::load(&GeoConfig {
            sites: vec![SiteEntry {
                name: "pune-branch".into(),
                cidrs: vec!["10.20.0.0/16".into()],
                country: "IN".into(),
            }],
            ..GeoConfig::default()
        })
        .unwrap();
        World {
            policy: policy(),
            // Virginia is the default: preferred only where the rule allows
            // regions equally.
            router: Router::new(
                r(VIRGINIA),
                vec![r(MUMBAI), r(HYDERABAD)],
                vec![r(MUMBAI), r(VIRGINIA), r(HYDERABAD)],
            ),
            catalogue: Catalogue::default(),
            geo,
            pins: Pins::new(Duration::from_secs(60)),
        }
    }

    fn env(&self, with_policy: bool) -> Env<'_> {
        Env {
            policy: with_policy.then_some(InForce {
                policy: &self.policy,
                version: Some(7),
            }),
            router: &self.router,
            catalogue: &self.catalogue,
            geo: &self.geo,
            pins: Some(&self.pins),
            pin_by_api_key: false,
        }
    }
}

fn classified(tier: Tier, entities: &[EntityType], unscannable: &[&str]) -> RequestClassification {
    RequestClassification {
        tier,
        counts: entities.iter().map(|e| (*e, 1)).collect(),
        unscannable: unscannable.iter().map(|s| (*s).to_owned()).collect(),
        texts_scanned: 1,
    }
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

struct Case {
    name: &'static str,
    policy: bool,
    tier: Tier,
    entities: &'static [EntityType],
    unscannable: &'static [&'static str],
    model: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    client: Option<&'static str>,
    /// `Ok((rule, effective tier, regions))` or `Err((decision, rule))`.
    want: Result<(&'static str, Tier, &'static [&'static str]), (&'static str, &'static str)>,
}

const BEARER_LOANS: (&str, &str) = ("authorization", "Bearer sk-loans");

#[test]
fn decisions_over_the_table() {
    let cases = [
        Case {
            name: "public, no policy: the default region first, then anywhere",
            policy: false,
            tier: Tier::Public,
            entities: &[],
            unscannable: &[],
            model: Some("gpt-4o"),
            headers: &[],
            client: None,
            want: Ok((
                "builtin:default-region",
                Tier::Public,
                &[VIRGINIA, MUMBAI, HYDERABAD],
            )),
        },
        Case {
            name: "restricted, no policy: refused (fail closed)",
            policy: false,
            tier: Tier::Restricted,
            entities: &[EntityType::Aadhaar],
            unscannable: &[],
            model: Some("gpt-4o"),
            headers: &[],
            client: None,
            want: Err(("deny", "no-policy")),
        },
        Case {
            name: "restricted: India only, in the configured order",
            policy: true,
            tier: Tier::Restricted,
            entities: &[EntityType::Aadhaar],
            unscannable: &[],
            model: Some("gpt-4o"),
            headers: &[],
            client: None,
            want: Ok((
                "restricted-in-india",
                Tier::Restricted,
                &[MUMBAI, HYDERABAD],
            )),
        },
        Case {
            name: "public: India first, then anywhere",
            policy: true,
            tier: Tier::Public,
            entities: &[],
            unscannable: &[],
            model: Some("gpt-4o"),
            headers: &[],
            client: None,
            want: Ok(("rest", Tier::Public, &[MUMBAI, HYDERABAD, VIRGINIA])),
        },
        Case {
            name: "an image counts as the unscannable tier",
            policy: true,
            tier: Tier::Public,
            entities: &[],
            unscannable: &["image_url"],
            model: Some("gpt-4o"),
            headers: &[],
            client: None,
            want: Ok((
                "restricted-in-india",
                Tier::Restricted,
                &[MUMBAI, HYDERABAD],
            )),
        },
        Case {
            name: "a denied model is refused whatever the tier",
            policy: true,
            tier: Tier::Public,
            entities: &[],
            unscannable: &[],
            model: Some("o9-preview"),
            headers: &[],
            client: None,
            want: Err(("deny", "no-preview-models")),
        },
        Case {
            name: "a trusted app's tier floor raises the tier",
            policy: true,
            tier: Tier::Public,
            entities: &[],
            unscannable: &[],
            model: Some("gpt-4o"),
            headers: &[BEARER_LOANS, ("x-residency-tier", "restricted")],
            client: None,
            want: Ok((
                "restricted-in-india",
                Tier::Restricted,
                &[MUMBAI, HYDERABAD],
            )),
        },
        Case {
            name: "an unknown app's tier header is ignored",
            policy: true,
            tier: Tier::Public,
            entities: &[],
            unscannable: &[],
            model: Some("gpt-4o"),
            headers: &[
                ("authorization", "Bearer sk-other"),
                ("x-residency-tier", "restricted"),
            ],
            client: None,
            want: Ok(("rest", Tier::Public, &[MUMBAI, HYDERABAD, VIRGINIA])),
        },
        Case {
            name: "the site map makes a branch client's subjects Indian",
            policy: true,
            tier: Tier::Public,
            entities: &[],
            unscannable: &[],
            model: Some("gpt-4o"),
            headers: &[],
            client: Some("10.20.3.4"),
            want: Ok(("indian-subjects", Tier::Public, &[HYDERABAD, MUMBAI])),
        },
        Case {
            name: "a trusted country header decides over the site map",
            policy: true,
            tier: Tier::Public,
            entities: &[],
            unscannable: &[],
            model: Some("gpt-4o"),
            headers: &[BEARER_LOANS, ("x-residency-subject-country", "US")],
            client: Some("10.20.3.4"),
            want: Ok(("rest", Tier::Public, &[MUMBAI, HYDERABAD, VIRGINIA])),
        },
        Case {
            name: "allowed, but no configured gateway region is in the set",
            policy: true,
            tier: Tier::Confidential,
            entities: &[EntityType::Email],
            unscannable: &[],
            model: Some("gpt-4o"),
            headers: &[],
            client: None,
            want: Err(("no_route", "secret-nowhere")),
        },
    ];
    let world = World::new();
    let now = Instant::now();
    for case in &cases {
        let c = classified(case.tier, case.entities, case.unscannable);
        let h = headers(case.headers);
        let facts = Facts {
            classification: &c,
            model: case.model,
            user: None,
            conversation: None,
            headers: &h,
            client: case.client.map(|ip| ip.parse().unwrap()),
            now,
            explain: false,
            objects: &[],
        };
        let got = plan(&facts, &world.env(case.policy));
        match (&case.want, got) {
            (Ok((rule, tier, regions)), Ok(p)) => {
                assert_eq!(p.decided.rule, *rule, "{}", case.name);
                assert_eq!(p.decided.tier, *tier, "{}", case.name);
                assert_eq!(p.decided.classified, case.tier, "{}", case.name);
                let got: Vec<&str> = p.candidates.iter().map(|c| c.region.as_str()).collect();
                assert_eq!(got, *regions, "{}", case.name);
                for c in &p.candidates {
                    assert_eq!(
                        c.jurisdiction,
                        world.catalogue.jurisdiction(&c.region),
                        "{}",
                        case.name
                    );
                }
            }
            (Err((decision, rule)), Err(r)) => {
                assert_eq!(r.decision(), *decision, "{}", case.name);
                assert_eq!(r.decided.rule, *rule, "{}", case.name);
            }
            (want, got) => panic!("{}: wanted {want:?}, got {got:?}", case.name),
        }
    }
}

#[test]
fn the_decision_records_who_where_and_which_policy() {
    let world = World::new();
    let c = classified(Tier::Restricted, &[EntityType::Pan], &[]);
    let h = headers(&[BEARER_LOANS]);
    let facts = Facts {
        classification: &c,
        model: Some("gpt-4o"),
        user: Some("u1"),
        conversation: None,
        headers: &h,
        client: Some("10.20.9.9".parse().unwrap()),
        now: Instant::now(),
        explain: true,
        objects: &[],
    };
    let p = plan(&facts, &world.env(true)).unwrap();
    assert_eq!(p.decided.app.as_deref(), Some("loans"));
    assert_eq!(p.decided.model.as_deref(), Some("gpt-4o"));
    assert_eq!(p.decided.subject_country, Some(Jurisdiction::IN));
    assert_eq!(p.decided.country_source, CountrySource::SiteMap);
    assert_eq!(p.decided.policy_version, Some(7));
    assert_eq!(p.decided.policy_label, "7");
    assert!(p.pin.is_some(), "restricted data pins the conversation");
    assert!(
        p.trace.iter().any(|l| l.contains("restricted-in-india")),
        "{:?}",
        p.trace
    );
    // The request path does not pay for the trace.
    let quiet = plan(
        &Facts {
            explain: false,
            objects: &[],
            ..facts
        },
        &world.env(true),
    )
    .unwrap();
    assert!(quiet.trace.is_empty());

    let none = plan(&facts, &world.env(false)).unwrap_err();
    assert_eq!(none.why, Why::NoPolicy);
    assert_eq!(none.decided.policy_label, "none");
    assert_eq!(none.decided.app, None, "no policy, no apps");
}

#[test]
fn a_pinned_conversation_stays_in_its_jurisdiction_until_the_pin_expires() {
    let world = World::new();
    let now = Instant::now();
    let h = headers(&[("x-residency-session", "conv-1")]);
    let public = classified(Tier::Public, &[], &[]);
    let facts = |now| Facts {
        classification: &public,
        model: Some("gpt-4o"),
        user: None,
        conversation: None,
        headers: &h,
        client: None,
        now,
        explain: false,
        objects: &[],
    };
    let key = Pins::key(crate::plan::pin::Signals {
        session: Some("conv-1"),
        ..Default::default()
    })
    .unwrap();
    world.pins.pin(key, Jurisdiction::IN, now);
    let p = plan(&facts(now), &world.env(true)).unwrap();
    assert_eq!(p.regions(), vec![r(MUMBAI), r(HYDERABAD)]);
    assert_eq!(p.decided.rule, "rest (conversation pinned to IN)");
    assert_eq!(p.pin, None, "public data does not pin");
    // Another conversation is not narrowed.
    let other = headers(&[("x-residency-session", "conv-2")]);
    let p = plan(
        &Facts {
            headers: &other,
            ..facts(now)
        },
        &world.env(true),
    )
    .unwrap();
    assert_eq!(p.regions().len(), 3);
    // The time passed in decides expiry.
    let later = now + Duration::from_secs(61);
    let p = plan(&facts(later), &world.env(true)).unwrap();
    assert_eq!(p.decided.rule, "rest");
    assert_eq!(p.regions().len(), 3);
}

#[test]
fn bearer_keys_are_read_whatever_the_scheme_case() {
    let h = |v: &str| headers(&[("authorization", v)]);
    assert_eq!(bearer(&h("Bearer sk-1")), Some("sk-1"));
    assert_eq!(bearer(&h("bearer  sk-1 ")), Some("sk-1"));
    assert_eq!(bearer(&h("BEARER sk-1")), Some("sk-1"));
    assert_eq!(bearer(&h("Basic dXNlcg==")), None);
    assert_eq!(bearer(&headers(&[("x-other", "Bearer sk-1")])), None);
}

#[test]
fn named_objects_narrow_the_plan_to_their_region_or_refuse_it() {
    use crate::plan::objects::Held;
    let world = World::new();
    let c = classified(Tier::Public, &[], &[]);
    let h = headers(&[]);
    let held = |id: &str, region: &str| Held {
        id: id.into(),
        region: r(region),
        tier: Tier::Public,
    };
    let facts = |objects: &'static [Held]| Facts {
        classification: &c,
        model: Some("gpt-4o"),
        user: None,
        conversation: None,
        headers: &h,
        client: None,
        now: Instant::now(),
        explain: false,
        objects,
    };
    let in_hyderabad: &'static [Held] = Box::leak(Box::new([held("file-1", HYDERABAD)]));
    let p = plan(&facts(in_hyderabad), &world.env(true)).unwrap();
    assert_eq!(p.regions(), vec![r(HYDERABAD)]);
    assert!(
        p.decided.rule.contains("object file-1 lives in"),
        "{}",
        p.decided.rule
    );
    let split: &'static [Held] =
        Box::leak(Box::new([held("file-1", HYDERABAD), held("vs_2", MUMBAI)]));
    let refused = plan(&facts(split), &world.env(true)).unwrap_err();
    assert!(matches!(
        refused.why,
        Why::ObjectElsewhere { other: Some(_), .. }
    ));
    assert_eq!(refused.decision(), "deny");
}
