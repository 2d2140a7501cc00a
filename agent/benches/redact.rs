//! Reversible redaction's cost: replacing the values of a chat request body
//! (against the scan every request already pays), and restoring an answer
//! chunk by chunk as it streams (against a stage that passes the chunk on
//! unchanged). The stream is a chat completion in small SSE events, as
//! providers send them; chunks with no placeholder, with a whole one, and
//! with one split across two events are timed separately. Inputs are built
//! here, deterministically.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use residency_agent::body::{Event, Stage, Step};
use residency_agent::classify::{Classifier, EntityType, Tier};
use residency_agent::redact::{
    redact_json, restore_json, PlaceholderStyle, Placeholders, SseRestorer,
};

/// Values with valid check digits, as the classifier wants them.
const PAN: &str = "ABCPE1234F";
const AADHAAR: &str = "2345 6789 0124";
const CARD: &str = "4111 1111 1111 1111";

/// Polls a stage's future once: the restorers never wait.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("a restorer does not wait"),
    }
}

fn data(step: Step) -> Bytes {
    match step {
        Step::Data(b) | Step::End(b) | Step::Fail(b, _) => b,
    }
}

/// Passes every chunk on as it is: the baseline a stage is compared to.
struct Passthrough;

impl Stage for Passthrough {
    async fn on_event(&mut self, event: Event) -> Step {
        match event {
            Event::Data(d) => Step::Data(d),
            Event::End => Step::End(Bytes::new()),
            Event::Failed(e) => Step::Fail(Bytes::new(), e),
        }
    }
}

/// One chat completion chunk carrying `content`.
fn chunk(n: usize, content: &str) -> Bytes {
    let delta = serde_json::json!({
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": 1_765_000_000 + n,
        "model": "gpt-5",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}],
    });
    Bytes::from(format!("data: {delta}\n\n"))
}

/// A table holding the placeholders a redacted request was given.
fn table() -> (Placeholders, Vec<String>) {
    let mut t = Placeholders::new(PlaceholderStyle::default(), 1024);
    let issued = [
        (EntityType::Pan, PAN),
        (EntityType::Aadhaar, AADHAAR),
        (EntityType::PaymentCard, CARD),
    ]
    .iter()
    .map(|(k, v)| t.placeholder_for(*k, v).map(str::to_owned))
    .collect::<Result<Vec<_>, _>>()
    .expect("placeholders");
    (t, issued)
}

/// A 2 KB chat request: a system prompt, a pasted customer note with three
/// values, and a question.
fn request_body() -> String {
    let note = format!(
        "Customer note from the branch: the account holder's PAN is {PAN}, \
         the Aadhaar on file is {AADHAAR} and the card ending in the statement \
         is {CARD}. They ask why the last two statements show a late fee when \
         the payment was made on time through the branch counter. "
    );
    let filler = "Please be polite, cite the relevant fee schedule and keep it short. ";
    serde_json::json!({
        "model": "gpt-5",
        "stream": true,
        "messages": [
            {"role": "system", "content": filler.repeat(8)},
            {"role": "user", "content": format!("{note}{}", filler.repeat(12))},
        ],
    })
    .to_string()
}

fn bench_redact(c: &mut Criterion) {
    let classifier = Classifier::new();
    let body = request_body();
    let kinds = EntityType::ALL;
    let mut g = c.benchmark_group("redact_request");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("scan_only", |b| {
        b.iter(|| classifier.scan_request(black_box(body.as_bytes()), Tier::Restricted))
    });
    g.bench_function("redact_json", |b| {
        b.iter(|| {
            let mut t = Placeholders::new(PlaceholderStyle::default(), 1024);
            redact_json(black_box(body.as_bytes()), &classifier, &kinds, &mut t).expect("redacts")
        })
    });
    g.finish();

    let (t, issued) = table();
    let answer = serde_json::json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content":
            format!("The late fee on the card {} was charged because ... PAN {} ...", issued[2], issued[0])
                .repeat(6)}, "finish_reason": "stop"}],
    })
    .to_string();
    let mut g = c.benchmark_group("restore_answer");
    g.throughput(Throughput::Bytes(answer.len() as u64));
    g.bench_function("restore_json", |b| {
        b.iter(|| restore_json(black_box(answer.as_bytes()), &t))
    });
    g.finish();
}

fn bench_stream(c: &mut Criterion) {
    let (t, issued) = table();
    let pan = &issued[0];
    let (head, rest) = pan.split_at(3);
    let cases: Vec<(&str, Vec<Bytes>)> = vec![
        (
            "no_placeholder",
            vec![chunk(0, "The late fee was charged ")],
        ),
        (
            "whole_placeholder",
            vec![chunk(0, &format!("for PAN {pan} because"))],
        ),
        (
            "split_placeholder",
            vec![
                chunk(0, &format!("for PAN {head}")),
                chunk(1, &format!("{rest} because")),
            ],
        ),
    ];
    let mut g = c.benchmark_group("restore_stream_chunk");
    for (name, events) in &cases {
        let bytes: usize = events.iter().map(Bytes::len).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_with_input(
            BenchmarkId::new("passthrough", name),
            events,
            |b, events| {
                let mut s = Passthrough;
                b.iter(|| {
                    for e in events {
                        black_box(data(now(s.on_event(Event::Data(e.clone())))));
                    }
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("sse_restorer", name),
            events,
            |b, events| {
                let mut s = SseRestorer::new(t.clone());
                b.iter(|| {
                    for e in events {
                        black_box(data(now(s.on_event(Event::Data(e.clone())))));
                    }
                })
            },
        );
    }
    g.finish();

    // Check once that the timed restorer did restore: a benchmark of a
    // stage that forgot to would be meaningless.
    let mut s = SseRestorer::new(t.clone());
    let mut out = Vec::new();
    for e in &cases[2].1 {
        out.extend_from_slice(&data(now(s.on_event(Event::Data(e.clone())))));
    }
    out.extend_from_slice(&data(now(s.on_event(Event::End))));
    let out = String::from_utf8(out).expect("UTF-8");
    assert!(out.contains(PAN) && !out.contains(pan.as_str()), "{out}");
}

criterion_group!(benches, bench_redact, bench_stream);
criterion_main!(benches);
