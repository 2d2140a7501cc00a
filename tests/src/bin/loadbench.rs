//! Load benchmark for the request path, on loopback, in one run:
//! direct to the mock provider vs through agent -> QUIC -> gateway -> mock,
//! at concurrency 1 and 16. Reports added p50/p99 latency, requests/s, and the
//! agent process's idle and loaded RSS.
//!
//! ```sh
//! cargo build --release -p residency-agent
//! cargo run --release -p residency-tests --bin loadbench -- [SECONDS_PER_RUN]
//! ```
//!
//! The agent and the gateway run as separate processes (the release binary),
//! so the RSS figures are the agent's alone; the mock provider and the load
//! generator share this process.

#![allow(clippy::unwrap_used)] // a benchmark tool: fail loudly

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use residency_agent::demo::mock_provider::{MockOptions, MockProvider};
use residency_agent::keys;
use residency_proto::RegionId;
use residency_tests::*;

#[derive(Debug)]
struct Stats {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

async fn load(url: String, body: String, concurrency: usize, dur: Duration) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (url, body, stop) = (url.clone(), body.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut lat = Vec::new();
            let mut errors = 0;
            while !stop.load(Ordering::Relaxed) {
                let req = hyper::Request::post(&url)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.clone())))
                    .unwrap();
                let t = Instant::now();
                match c.request(req).await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.into_body().collect().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Stats {
        requests: all.len(),
        errors,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let dur = seconds_per_run();
    let secs = dur.as_secs();
    let dir = tempfile::tempdir().unwrap();
    gen_keys(dir.path());
    let mock = MockProvider::start(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            label: "bench".into(),
            ..MockOptions::default()
        },
    )
    .await
    .unwrap();
    let region = "aws:ap-south-1";
    let stem = keys::gateway_stem(&RegionId::new(region).unwrap());
    let gw_cfg = write_gateway_config(dir.path(), region, &mock.base_url(), "127.0.0.1:0", &stem);
    // Default QUIC settings for the benchmark, not the tests' fast timeouts.
    let text = std::fs::read_to_string(&gw_cfg).unwrap();
    let workers = |var: &str| {
        std::env::var(var)
            .map(|n| format!("worker_threads = {n}\n"))
            .unwrap_or_default()
    };
    std::fs::write(
        &gw_cfg,
        workers("BENCH_GATEWAY_WORKERS") + &text.replace(FAST_QUIC, ""),
    )
    .unwrap();
    let (gw, gw_addr) = spawn_gateway(&gw_cfg);
    let gw_pid = gw.0.id();

    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let agent_addr = listen.local_addr().unwrap();
    drop(listen);
    let agent_cfg = dir.path().join("agent.toml");
    std::fs::write(
        &agent_cfg,
        agent_config_text(
            region,
            &gateway_block(region, gw_addr),
            &(workers("BENCH_AGENT_WORKERS")
                + if std::env::var_os("BENCH_AUDIT_ASYNC").is_some() {
                    "[audit]\ndurable_before_response = false\n"
                } else {
                    ""
                }),
        )
        .replacen("127.0.0.1:0", &agent_addr.to_string(), 1)
        .replace(FAST_QUIC, ""),
    )
    .unwrap();
    let agent = Proc(
        std::process::Command::new(agent_bin())
            .args(["--log-level", "warn", "run", "--config"])
            .arg(&agent_cfg)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    let via = format!("http://{agent_addr}/v1/chat/completions");
    let direct = format!("{}/chat/completions", mock.base_url());
    let body = chat(
        "Summarise the branch's quarterly notes in two lines.",
        false,
    );
    let mut ready = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(Ok(r)) = tokio::time::timeout(
            Duration::from_secs(1),
            client().request(
                hyper::Request::post(&via)
                    .body(Full::new(Bytes::from(body.clone())))
                    .unwrap(),
            ),
        )
        .await
        {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
    }
    assert!(ready, "agent did not become ready");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kib(pid, "VmRSS:");

    println!("request path benchmark: {secs} s per run, non-streaming chat completion");
    println!(
        "{:<12} {:>5} {:>10} {:>10} {:>10} {:>8}",
        "path", "conc", "req/s", "p50 ms", "p99 ms", "errors"
    );
    let mut rows = Vec::new();
    let mut cpu = Vec::new();
    for conc in [1usize, 16] {
        // Warm both paths' connection pools.
        load(
            direct.clone(),
            body.clone(),
            conc,
            Duration::from_millis(300),
        )
        .await;
        load(via.clone(), body.clone(), conc, Duration::from_millis(300)).await;
        let d = load(direct.clone(), body.clone(), conc, dur).await;
        let (c_agent, c_gw) = (cpu_secs(pid), cpu_secs(gw_pid));
        let a = load(via.clone(), body.clone(), conc, dur).await;
        let (c_agent, c_gw) = (cpu_secs(pid) - c_agent, cpu_secs(gw_pid) - c_gw);
        cpu.push((conc, c_agent / a.requests as f64, c_gw / a.requests as f64));
        for (name, s) in [("direct", &d), ("via agent", &a)] {
            println!(
                "{:<12} {:>5} {:>10.0} {:>10.3} {:>10.3} {:>8}",
                name,
                conc,
                s.requests as f64 / s.elapsed.as_secs_f64(),
                ms(s.p50),
                ms(s.p99),
                s.errors
            );
        }
        rows.push((conc, d, a));
    }
    let loaded_rss = rss_kib(pid, "VmHWM:");
    println!();
    for (conc, d, a) in &rows {
        let rps_d = d.requests as f64 / d.elapsed.as_secs_f64();
        let rps_a = a.requests as f64 / a.elapsed.as_secs_f64();
        println!(
            "concurrency {conc:>2}: added p50 {:+.3} ms, added p99 {:+.3} ms, throughput via agent {:.0} req/s = {:.2}x direct",
            ms(a.p50) - ms(d.p50),
            ms(a.p99) - ms(d.p99),
            rps_a,
            rps_a / rps_d
        );
    }
    for (conc, a, g) in &cpu {
        println!(
            "concurrency {conc:>2}: CPU per request: agent {:.1} us, gateway {:.1} us",
            a * 1e6,
            g * 1e6
        );
    }
    println!(
        "agent RSS: idle {:.1} MiB, peak under load {:.1} MiB",
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0
    );
}
