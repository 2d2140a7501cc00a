//! Load benchmark for the request path, on loopback, in one run:
//! direct to the mock provider vs through agent -> QUIC -> gateway -> mock,
//! at concurrency 1 and 16, for an agent with the default durable audit (each
//! response waits for its record's group commit) and one with
//! `durable_before_response = false`, side by side, and a third agent like the
//! second that reaches the gateway over HTTP/2 on TCP (`[transport] mode =
//! "h2"`) instead of QUIC. Reports added p50/p99
//! latency, requests/s, CPU per request, each agent's idle and loaded RSS,
//! the disk's fdatasync latency, and which targets each mode meets.
//!
//! ```sh
//! cargo build --release -p residency-agent
//! cargo run --release -p residency-tests --bin loadbench -- [SECONDS_PER_RUN]
//! ```
//!
//! The agents and the gateway run as separate processes (the release binary),
//! so the RSS figures are each agent's alone; the mock provider and the load
//! generator share this process. `BENCH_AGENT_WORKERS` / `BENCH_GATEWAY_WORKERS`
//! set `worker_threads`.

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
                // The mock provider, asked directly, wants a key like a real one.
                let req = hyper::Request::post(&url)
                    .header("content-type", "application/json")
                    .header("authorization", "Bearer sk-loadbench")
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

fn rps(s: &Stats) -> f64 {
    s.requests as f64 / s.elapsed.as_secs_f64()
}

/// One agent under test: its audit mode, process, URL and metrics address.
struct Agent {
    audit: &'static str,
    pid: u32,
    url: String,
    observe: std::net::SocketAddr,
    _proc: Proc,
}

/// A free loopback port.
fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The agent's audit counters from `/metrics`: (records, group commits).
async fn audit_counts(observe: std::net::SocketAddr) -> (f64, f64) {
    let r = client()
        .get(format!("http://{observe}/metrics").parse().unwrap())
        .await
        .unwrap();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    (
        value("residency_audit_records_total"),
        value("residency_audit_batches_total"),
    )
}

/// Starts an agent process on free ports with `extra` config lines and
/// waits until it answers a request.
async fn start_agent(
    dir: &std::path::Path,
    audit: &'static str,
    region: &str,
    gw_addr: std::net::SocketAddr,
    extra: &str,
    body: &str,
) -> Agent {
    let (agent_addr, observe) = (free_addr(), free_addr());
    let cfg = dir.join(format!("agent-{}.toml", audit.replace('/', "-")));
    std::fs::write(
        &cfg,
        agent_config_text(region, &gateway_block(region, gw_addr), extra)
            .replacen("127.0.0.1:0", &agent_addr.to_string(), 1)
            .replacen("127.0.0.1:0", &observe.to_string(), 1)
            .replace(FAST_QUIC, ""),
    )
    .unwrap();
    let agent = Proc(
        std::process::Command::new(agent_bin())
            .args(["--log-level", "warn", "run", "--config"])
            .arg(&cfg)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    let url = format!("http://{agent_addr}/v1/chat/completions");
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(Ok(r)) = tokio::time::timeout(
            Duration::from_secs(1),
            client().request(
                hyper::Request::post(&url)
                    .body(Full::new(Bytes::from(body.to_owned())))
                    .unwrap(),
            ),
        )
        .await
        {
            if r.status() == 200 {
                return Agent {
                    audit,
                    pid,
                    url,
                    observe,
                    _proc: agent,
                };
            }
        }
    }
    panic!("agent {audit} did not become ready");
}

/// p50 of a 4 KiB append + `fdatasync` in `dir`: the disk's floor under a
/// durable audit record.
fn fdatasync_p50(dir: &std::path::Path) -> Duration {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = [0u8; 4096];
    let mut lat: Vec<Duration> = (0..200)
        .map(|_| {
            f.write_all(&block).unwrap();
            let t = Instant::now();
            f.sync_data().unwrap();
            t.elapsed()
        })
        .collect();
    drop(f);
    let _ = std::fs::remove_file(&path);
    lat.sort();
    lat[lat.len() / 2]
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
    // BENCH_MODEL_MAP=1: the gateway serves the model under another name,
    // so every request is matched against advertised models by the agent,
    // resolved and renamed in the body by the gateway.
    let model_map = if std::env::var_os("BENCH_MODEL_MAP").is_some() {
        "[[model]]\nname = \"mock-gpt\"\nupstream = \"mock-gpt-mapped\"\nprocessing = \"region\"\n"
    } else {
        ""
    };
    std::fs::write(
        &gw_cfg,
        workers("BENCH_GATEWAY_WORKERS") + &text.replace(FAST_QUIC, "") + model_map,
    )
    .unwrap();
    println!(
        "gateway model map: {}",
        if model_map.is_empty() {
            "none (any model passed on)"
        } else {
            "mock-gpt -> mock-gpt-mapped"
        }
    );
    let (gw, gw_addr) = spawn_gateway(&gw_cfg);
    let gw_pid = gw.0.id();

    let body = chat(
        "Summarise the branch's quarterly notes in two lines.",
        false,
    );
    // Both audit modes against the same gateway and mock: the default (each
    // response waits for its record's group commit) and the record written
    // right after the response.
    let mut agents = Vec::new();
    for (audit, extra) in [
        ("durable", String::new()),
        (
            "async",
            "[audit]\ndurable_before_response = false\n".to_owned(),
        ),
        (
            "async/h2",
            "[audit]\ndurable_before_response = false\n[transport]\nmode = \"h2\"\n".to_owned(),
        ),
    ] {
        let extra = workers("BENCH_AGENT_WORKERS") + &extra;
        agents.push(start_agent(dir.path(), audit, region, gw_addr, &extra, &body).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss: Vec<u64> = agents.iter().map(|a| rss_kib(a.pid, "VmRSS:")).collect();
    let direct = format!("{}/chat/completions", mock.base_url());

    println!("request path benchmark: {secs} s per run, non-streaming chat completion");
    println!(
        "disk under the agents' state: 4 KiB append + fdatasync p50 {:.3} ms",
        ms(fdatasync_p50(dir.path()))
    );
    println!(
        "{:<17} {:>5} {:>9} {:>8} {:>8} {:>7} {:>13} {:>11} {:>10}",
        "path",
        "conc",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "agent us/req",
        "gw us/req",
        "rec/group"
    );
    // (concurrency, direct, [(audit mode, stats)])
    let mut rows = Vec::new();
    for conc in [1usize, 16] {
        // Warm every path's connection pools.
        load(
            direct.clone(),
            body.clone(),
            conc,
            Duration::from_millis(300),
        )
        .await;
        for a in &agents {
            load(
                a.url.clone(),
                body.clone(),
                conc,
                Duration::from_millis(300),
            )
            .await;
        }
        let d = load(direct.clone(), body.clone(), conc, dur).await;
        // cpu: (agent, gateway) seconds per request; group: audit records
        // per group commit.
        let line = |name: &str, s: &Stats, cpu: Option<(f64, f64, f64)>| {
            let (a, g, r) = cpu.map_or(("-".into(), "-".into(), "-".into()), |(a, g, r)| {
                (
                    format!("{:.1}", a * 1e6),
                    format!("{:.1}", g * 1e6),
                    format!("{r:.1}"),
                )
            });
            println!(
                "{:<17} {:>5} {:>9.0} {:>8.3} {:>8.3} {:>7} {:>13} {:>11} {:>10}",
                name,
                conc,
                rps(s),
                ms(s.p50),
                ms(s.p99),
                s.errors,
                a,
                g,
                r
            );
        };
        line("direct", &d, None);
        let mut via = Vec::new();
        for a in &agents {
            let (c_agent, c_gw) = (cpu_secs(a.pid), cpu_secs(gw_pid));
            let (recs, groups) = audit_counts(a.observe).await;
            let s = load(a.url.clone(), body.clone(), conc, dur).await;
            let n = s.requests.max(1) as f64;
            let (recs2, groups2) = audit_counts(a.observe).await;
            let cpu = (
                (cpu_secs(a.pid) - c_agent) / n,
                (cpu_secs(gw_pid) - c_gw) / n,
                (recs2 - recs) / (groups2 - groups).max(1.0),
            );
            line(&format!("via agent/{}", a.audit), &s, Some(cpu));
            via.push((a.audit, s));
        }
        rows.push((conc, d, via));
    }
    println!();
    for (conc, d, via) in &rows {
        for (audit, a) in via {
            println!(
                "concurrency {conc:>2}, audit {audit:<7}: added p50 {:+.3} ms, added p99 {:+.3} ms, {:.0} req/s = {:.2}x direct",
                ms(a.p50) - ms(d.p50),
                ms(a.p99) - ms(d.p99),
                rps(a),
                rps(a) / rps(d)
            );
        }
    }
    // HTTP/2 against QUIC, both with the audit written after the response.
    for (conc, d, via) in &rows {
        let added = |mode: &str| {
            via.iter()
                .find(|(m, _)| *m == mode)
                .map(|(_, s)| (ms(s.p50) - ms(d.p50), rps(s)))
        };
        if let (Some((q, q_rps)), Some((h, h_rps))) = (added("async"), added("async/h2")) {
            println!(
                "concurrency {conc:>2}: h2 added p50 {h:+.3} ms vs QUIC {q:+.3} ms = {:.2}x; req/s h2 {h_rps:.0} vs QUIC {q_rps:.0} = {:.2}x",
                h / q.max(1e-6),
                h_rps / q_rps.max(1e-6)
            );
        }
    }
    for (a, idle) in agents.iter().zip(&idle_rss) {
        println!(
            "agent RSS, audit {:<7}: idle {:.1} MiB, peak under load {:.1} MiB",
            a.audit,
            *idle as f64 / 1024.0,
            rss_kib(a.pid, "VmHWM:") as f64 / 1024.0
        );
    }
    // The request path's targets, per audit mode.
    println!();
    for (i, a) in agents.iter().enumerate() {
        let pick = |conc: usize| {
            rows.iter()
                .find(|(c, _, _)| *c == conc)
                .map(|(_, d, via)| (d, &via[i].1))
                .unwrap()
        };
        let (d1, a1) = pick(1);
        let (_, a16) = pick(16);
        let checks = [
            ("added p50 <= 0.3 ms at c=1", ms(a1.p50) - ms(d1.p50) <= 0.3),
            ("added p99 <= 1 ms at c=1", ms(a1.p99) - ms(d1.p99) <= 1.0),
            (">= 10,000 req/s at c=16", rps(a16) >= 10_000.0),
            ("idle RSS <= 15 MiB", idle_rss[i] <= 15 * 1024),
        ];
        let verdict: Vec<String> = checks
            .iter()
            .map(|(what, ok)| format!("{what}: {}", if *ok { "met" } else { "missed" }))
            .collect();
        println!("targets, audit {:<7}: {}", a.audit, verdict.join("; "));
    }
}
