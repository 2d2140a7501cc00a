//! Policy loading: `lint` (parse and validate) of generated policies from 250
//! to 10,000 rules, and the agent's startup policy load (`PolicyState::open`)
//! with a full history of 10 bundles, small and as large as a bundle may be.
//! Inputs are generated deterministically here. Lint throughput is in bytes of
//! policy text.
//!
//! Every size is registered, so one run can be narrowed with a filter, e.g.
//! `-- 'lint/(250|500)$'`. Bundles are built only when their benchmark runs.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use residency_agent::policy::active::{PolicyConfig, PolicyState};
use residency_agent::policy::sign::sign;
use residency_agent::policy::{lint, PolicySigningKey};
use residency_agent::store::PolicyStore;
use residency_proto::DEFAULT_MAX_BUNDLE_LEN;

/// Room left in a bundle for its header and signature.
const BUNDLE_OVERHEAD: usize = 512;

/// One rule of the generated policy; four shapes so every condition and both
/// actions are parsed and checked.
fn rule(i: usize) -> String {
    match i % 4 {
        0 => format!(
            "[[rule]]\nname = \"model-{i}\"\n[rule.match]\nmodel = [\"model-{i}\"]\n\
             [rule.allow]\nregions = [\"aws:ap-south-1\", \"aws:ap-south-2\"]\n"
        ),
        1 => format!(
            "[[rule]]\nname = \"ids-{i}\"\n[rule.match]\nentities = [\"pan\", \"aadhaar\"]\n\
             tier_at_least = \"confidential\"\n[rule.deny]\nreason = \"rule {i}: no identifiers\"\n"
        ),
        2 => format!(
            "[[rule]]\nname = \"country-{i}\"\n[rule.match]\nsubject_country = [\"IN\", \"unknown\"]\n\
             model = [\"family-{i}*\"]\n[rule.allow]\njurisdictions = [\"IN\", \"*\"]\n"
        ),
        _ => format!(
            "[[rule]]\nname = \"tier-{i}\"\n[rule.match]\ntier = [\"public\", \"internal\"]\n\
             model = [\"tiered-{i}\"]\n[rule.allow]\njurisdictions = [\"IN\"]\n"
        ),
    }
}

/// A valid policy of `rules` rules (the last one a catch-all), or fewer if
/// the text would pass `max_bytes`.
fn generated_policy(rules: usize, max_bytes: usize) -> String {
    const LAST: &str = "[[rule]]\nname = \"rest\"\n[rule.allow]\njurisdictions = [\"IN\"]\n";
    let mut text = String::from("name = \"generated\"\nunscannable_tier = \"restricted\"\n");
    for i in 0..rules.saturating_sub(1) {
        let r = rule(i);
        if text.len() + r.len() + LAST.len() > max_bytes {
            break;
        }
        text.push_str(&r);
    }
    text.push_str(LAST);
    text
}

fn bench_lint(c: &mut Criterion) {
    let mut g = c.benchmark_group("lint");
    g.sample_size(10);
    for rules in [250, 500, 1_000, 2_000, 10_000] {
        let text = generated_policy(rules, usize::MAX);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(rules), &text, |b, text| {
            b.iter(|| lint(black_box(text)).map(|p| p.rules().len()))
        });
    }
    g.finish();
}

/// A state directory holding 10 bundles (versions 1 to 10) of the given
/// policy, as installs leave it, and the config that trusts their key.
struct History {
    _dir: tempfile::TempDir,
    state: PathBuf,
    cfg: PolicyConfig,
}

fn history(text: &str) -> History {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = PolicySigningKey::from_seed(&[7; 32]);
    let pub_path = dir.path().join("policy.pub");
    std::fs::write(&pub_path, key.public().to_pem()).expect("write key");
    let state = dir.path().join("state");
    let store = PolicyStore::open(&state, 10).expect("open store");
    for v in 1..=10 {
        let bytes = sign(text, v, 1_790_000_000 + v, &key)
            .expect("sign")
            .encode();
        store.save(v, &bytes).expect("save");
    }
    drop(store);
    let cfg = PolicyConfig {
        trusted_keys: vec![pub_path],
        builtin_baseline: false,
        history: 10,
    };
    let opened = PolicyState::open(&cfg, &state).expect("open state");
    assert_eq!(opened.version(), Some(10));
    History {
        _dir: dir,
        state,
        cfg,
    }
}

fn bench_startup(c: &mut Criterion) {
    let mut g = c.benchmark_group("startup");
    g.sample_size(10);
    for (name, rules) in [
        ("history_10x100_rules", 100),
        ("history_10x200_rules", 200),
        ("history_10_full_bundles", usize::MAX),
    ] {
        let mut h: Option<History> = None;
        g.bench_function(name, |b| {
            let h = h.get_or_insert_with(|| {
                history(&generated_policy(
                    rules,
                    DEFAULT_MAX_BUNDLE_LEN - BUNDLE_OVERHEAD,
                ))
            });
            b.iter(|| {
                PolicyState::open(&h.cfg, &h.state)
                    .expect("open state")
                    .version()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_lint, bench_startup);
criterion_main!(benches);
