//! Audit write benchmark: the group-commit writer on a real sled database in
//! a temporary directory, with N concurrent requests that each wait for
//! their record to be durable (`durable_before_response = true`), and a run
//! that hands records over without waiting (`= false`). Reports records/s,
//! records per group, latency of a durable append, and this process's CPU
//! per record (it includes sled's own threads).
//!
//! ```sh
//! cargo run --release -p residency-tests --bin auditbench -- [SECONDS_PER_RUN]
//! ```
//!
//! Set `TMPDIR` to put the database on the disk under test.

#![allow(clippy::unwrap_used)] // a benchmark tool: fail loudly

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use residency_agent::audit::{AuditLog, AuditWriter, NewRecord};
use residency_tests::{cpu_secs, rss_kib, seconds_per_run};

fn record(i: u64) -> NewRecord {
    NewRecord {
        time_ms: 1_780_000_000_000 + i,
        request_id: format!("01J{i:023}"),
        app: Some("loans".into()),
        client: Some("10.1.2.3".into()),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        model: Some("gpt-4o-mini".into()),
        tier: "restricted".into(),
        entities: vec![("aadhaar".into(), 1), ("phone".into(), 2)],
        unscannable: vec![],
        subject_country: Some("IN".into()),
        country_source: "site".into(),
        policy_version: Some(7),
        policy_label: "rbi-2026-11".into(),
        rule: "aadhaar-in-india".into(),
        decision: "allow".into(),
        region: Some("aws:ap-south-1".into()),
        endpoint: Some("gw-mumbai-1".into()),
        status: 200,
        bytes_in: 1200,
        bytes_out: 5400,
        latency_ms: 1.25,
        outcome: "complete".into(),
    }
}

async fn durable(
    writer: &AuditWriter,
    concurrency: usize,
    dur: Duration,
) -> (usize, Vec<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (writer, stop) = (writer.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = t as u64 * 1_000_000_000;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                writer.append(record(i)).await.unwrap();
                lat.push(started.elapsed());
            }
            lat
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    (all.len(), all)
}

#[tokio::main]
async fn main() {
    let dur = seconds_per_run();
    let secs = dur.as_secs();
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let (writer, _task) = AuditWriter::spawn(log).unwrap();

    println!(
        "audit write benchmark: {secs} s per run, sled in {}",
        dir.path().display()
    );
    println!("mode                 conc   records/s  per group   p50 ms   p99 ms  CPU us/record");
    for concurrency in [1, 16, 64] {
        let (before, cpu0, t0) = (writer.stats(), cpu_secs(std::process::id()), Instant::now());
        let (n, lat) = durable(&writer, concurrency, dur).await;
        let (after, cpu, elapsed) = (
            writer.stats(),
            cpu_secs(std::process::id()) - cpu0,
            t0.elapsed(),
        );
        let groups = (after.batches - before.batches).max(1);
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        println!(
            "durable append     {concurrency:>5} {:>11.0} {:>10.1} {:>8.3} {:>8.3} {:>14.1}",
            n as f64 / elapsed.as_secs_f64(),
            n as f64 / groups as f64,
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            cpu * 1e6 / n.max(1) as f64,
        );
    }

    // Hand-over without waiting, at a fixed rate of 10,000 records/s.
    let (before, cpu0, t0) = (writer.stats(), cpu_secs(std::process::id()), Instant::now());
    let mut n = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while t0.elapsed() < dur {
        tick.tick().await;
        for _ in 0..10 {
            n += 1;
            writer.append_later(record(n));
        }
    }
    // Let the last group land.
    while writer.stats().records - before.records < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (after, cpu) = (writer.stats(), cpu_secs(std::process::id()) - cpu0);
    println!(
        "append_later 10k/s      - {:>11.0} {:>10.1} {:>8} {:>8} {:>14.1}",
        n as f64 / t0.elapsed().as_secs_f64(),
        n as f64 / (after.batches - before.batches).max(1) as f64,
        "-",
        "-",
        cpu * 1e6 / n.max(1) as f64,
    );
    writer.shutdown().await;
    // sled holds more memory the more bytes each leaf carries (see the
    // agent's `ENTRY_RECORDS`): the peak shows it.
    let me = std::process::id();
    println!(
        "process RSS after {} records: now {:.1} MiB, peak {:.1} MiB",
        writer.stats().records,
        rss_kib(me, "VmRSS:") as f64 / 1024.0,
        rss_kib(me, "VmHWM:") as f64 / 1024.0
    );
}
