//! Classifier throughput: English and Hindi prompts without entities (the common case),
//! a 4 KB prompt with a few entities, a pasted markdown table, chat request bodies
//! (mixed, all-ASCII and all-Devanagari), and the `classify --jsonl` command over the
//! development corpus and over Devanagari lines. Inputs are generated
//! deterministically here. Throughput is in bytes, so criterion reports MB/s on the
//! one core a benchmark runs on.

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

/// A pasted markdown table of customers: names, masked and labelled numbers, amounts.
fn markdown_table(len: usize) -> String {
    let mut s =
        String::from("| Name | Account No | Invoice | Amount | City |\n|---|---|---|---|---|\n");
    let mut i = 0u64;
    while s.len() < len {
        s.push_str(&format!(
            "| Customer {i} | XXXX XXXX {:04} | INV-{:06} | ₹{},{:03}.00 | Pune |\n",
            i % 10_000,
            100_000 + i,
            1 + i % 90,
            i % 1000
        ));
        i += 1;
    }
    s
}

fn bench_scan(c: &mut Criterion) {
    let classifier = Classifier::new();
    let mut g = c.benchmark_group("scan");
    let inputs = [
        ("ascii_no_entities_64k", generate(ENGLISH, 64 * 1024, 1)),
        ("hindi_no_entities_64k", generate(HINDI, 64 * 1024, 2)),
        ("prompt_4k_few_entities", prompt_with_entities()),
        ("markdown_table_16k", markdown_table(16 * 1024)),
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

fn chat_body(parts: &[String]) -> String {
    let content: Vec<_> = parts
        .iter()
        .map(|t| serde_json::json!({"type": "text", "text": t}))
        .collect();
    serde_json::json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful bank assistant."},
            {"role": "user", "content": content}
        ]
    })
    .to_string()
}

fn bench_request(c: &mut Criterion) {
    let classifier = Classifier::new();
    let bodies = [
        (
            "chat_body_6k",
            chat_body(&[
                generate(ENGLISH, 1024, 7),
                prompt_with_entities(),
                generate(HINDI, 1024, 8),
            ]),
        ),
        (
            "chat_body_ascii_64k",
            chat_body(&[
                generate(ENGLISH, 32 * 1024, 9),
                generate(ENGLISH, 32 * 1024, 10),
            ]),
        ),
        (
            "chat_body_devanagari_64k",
            chat_body(&[
                generate(HINDI, 32 * 1024, 11),
                generate(HINDI, 32 * 1024, 12),
            ]),
        ),
    ];
    let mut g = c.benchmark_group("request");
    for (name, body) in &bodies {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| classifier.scan_request(black_box(body.as_bytes()), Tier::Restricted))
        });
    }
    g.finish();
}

/// `classify --jsonl` input: Hindi sentences with Devanagari digits (a few numbers
/// each), one JSON object a line.
fn devanagari_jsonl(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        let text = format!(
            "{} खाता संख्या १२३४५६७८९ और मोबाइल ९८७६५ ४३२१०, {}",
            generate(HINDI, 160, i as u64 + 1),
            generate(HINDI, 120, i as u64 + 7)
        );
        let line = serde_json::json!({"id": format!("hi-{i}"), "text": text});
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
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
    let opts = CliOptions {
        jsonl: true,
        ..CliOptions::default()
    };
    let mut g = c.benchmark_group("cli");
    for (name, input) in [
        ("jsonl_dev_corpus", corpus),
        ("jsonl_devanagari", devanagari_jsonl(2000)),
    ] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        let mut out = Vec::with_capacity(input.len());
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                cli::run(&opts, &mut input.as_slice(), &mut out).map(|()| out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_scan, bench_request, bench_cli);
criterion_main!(benches);
