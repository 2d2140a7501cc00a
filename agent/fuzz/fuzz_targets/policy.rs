//! Fuzz target: the policy parser never panics on arbitrary text, every error
//! has a position, and a policy that parses evaluates without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use residency_agent::policy::{lint, trusted_labels, RequestFacts};
use residency_proto::{Jurisdiction, Tier};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match lint(text) {
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(e.line >= 1 && e.column >= 1, "{e:?}");
                assert!(e.line <= text.lines().count().max(1) + 1, "{e:?}");
            }
        }
        Ok(policy) => {
            let candidates = policy.known_regions();
            let first = data.first().copied().unwrap_or(0);
            for tier in Tier::ALL {
                let app = policy.apps().first();
                let labels =
                    trusted_labels(app, &[("x-residency-tier".into(), "restricted".into())]);
                let facts = RequestFacts {
                    entities: vec!["aadhaar", "pan"],
                    subject_country: (first & 1 == 1).then_some(Jurisdiction::IN),
                    app: app.map(|a| a.name.as_str()),
                    model: (first & 2 == 2).then_some("gpt-4o"),
                    tier_floor: labels.tier_floor,
                    unscannable: first & 4 == 4,
                    ..RequestFacts::new(tier)
                };
                let e = policy.evaluate(&facts);
                assert!(e.effective_tier >= tier);
                if let Some(set) = e.decision.allow_set() {
                    let ordered = policy.ordered(set, &candidates);
                    for r in &ordered {
                        assert!(policy.permits(set, r), "{r} ordered but not permitted");
                    }
                }
            }
        }
    }
});
