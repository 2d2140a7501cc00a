//! Classifier throughput: English and Hindi prompts without entities (the common case),
//! a 4 KB prompt with a few entities, a chat request body, and the `classify --jsonl`
//! command over the development corpus. Inputs are generated deterministically here.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use residency_agent::classify::cli::{self, CliOptions};
use residency_agent::classify::{Classifier, Tier};

const ENGLISH: &[&str] = &[
    "please",
    "summarise",
    "the",
    "following",
    "customer",
    "complaint",
    "about",
    "a",
    "delayed",
    "refund",
    "and",
    "draft",
    "polite",
    "reply",
    "in",
    "simple",
    "English",
    "explain",
    "how",
    "interest",
    "is",
    "calculated",
    "on",
    "savings",
    "for",
    "branch",
    "staff",
    "who",
    "are",
    "new",
    "to",
    "the",
    "policy,",
    "then",
    "list",
    "three",
    "next",
    "steps.",
    "Keep",
    "it",
    "short;",
    "avoid",
    "jargon",
    "where",
    "possible.",
    "monsoon",
    "Mumbai",
    "Telangana",
    "insurance",
    "premium",
    "claim",
    "settlement",
];

const HINDI: &[&str] = &[
    "कृपया",
    "निम्नलिखित",
    "ग्राहक",
    "शिकायत",
    "का",
    "सारांश",
    "लिखें",
    "और",
    "एक",
    "विनम्र",
    "उत्तर",
    "तैयार",
    "करें",
    "ब्याज",
    "की",
    "गणना",
    "कैसे",
    "होती",
    "है",
    "शाखा",
    "कर्मचारियों",
    "के",
    "लिए",
    "नीति",
    "समझाएँ।",
    "बीमा",
    "दावा",
    "निपटान",
    "मानसून",
    "मुंबई",
    "में",
    "देरी",
    "से",
    "वापसी",
];

/// Deterministic pseudo-random words (xorshift) until `len` bytes.
fn generate(words: &[&str], len: usize, seed: u64) -> String {
    let mut x = seed | 1;
    let mut s = String::with_capacity(len + 32);
    let mut n = 0u32;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(words[(x % words.len() as u64) as usize]);
        n += 1;
        // Realistic prompts carry a few small numbers (amounts, years, counts).
        if n % 97 == 0 {
            s.push_str(" 2024");
        } else if n % 61 == 0 {
            s.push_str(" 7%");
        }
        s.push(if n % 17 == 0 { '\n' } else { ' ' });
    }
    s
}

fn prompt_with_entities() -> String {
    let mut s = generate(ENGLISH, 3600, 3);
    s.push_str(
        " Customer Aadhaar 2345 6789 0124, mobile +91 98765 43210, mail priya@example.org, \
         card 4111 1111 1111 1111 and GSTIN 27AAPFU0939F1ZV, order 141350561390. ",
    );
    s.push_str(&generate(ENGLISH, 4096 - s.len(), 5));
    s
}

fn bench_scan(c: &mut Criterion) {
    let classifier = Classifier::new();
    let mut g = c.benchmark_group("scan");
    let inputs = [
        ("ascii_no_entities_64k", generate(ENGLISH, 64 * 1024, 1)),
        ("hindi_no_entities_64k", generate(HINDI, 64 * 1024, 2)),
        ("prompt_4k_few_entities", prompt_with_entities()),
    ];
    for (name, text) in &inputs {
        g.throughput(Throughput::Bytes(text.len() as u64));
        let mut out = Vec::new();
        g.bench_with_input(BenchmarkId::from_parameter(name), text, |b, t| {
            b.iter(|| {
                out.clear();
                classifier.scan_into(black_box(t), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn bench_request(c: &mut Criterion) {
    let classifier = Classifier::new();
    let body = serde_json::json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": generate(ENGLISH, 1024, 7)},
            {"role": "user", "content": [
                {"type": "text", "text": prompt_with_entities()},
                {"type": "text", "text": generate(HINDI, 1024, 8)}
            ]}
        ]
    })
    .to_string();
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("chat_body_6k", |b| {
        b.iter(|| classifier.scan_request(black_box(body.as_bytes()), Tier::Restricted))
    });
    g.finish();
}

fn bench_cli(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/pii-dev.jsonl"
    );
    let Ok(corpus) = std::fs::read(path) else {
        eprintln!("skipping cli bench: {path} not found");
        return;
    };
    let docs = corpus.iter().filter(|&&b| b == b'\n').count() as u64;
    let opts = CliOptions {
        jsonl: true,
        ..CliOptions::default()
    };
    let mut g = c.benchmark_group("cli");
    g.throughput(Throughput::Elements(docs));
    let mut out = Vec::with_capacity(corpus.len());
    g.bench_function("jsonl_dev_corpus", |b| {
        b.iter(|| {
            out.clear();
            cli::run(&opts, &mut corpus.as_slice(), &mut out).map(|()| out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_scan, bench_request, bench_cli);
criterion_main!(benches);
