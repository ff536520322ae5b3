//! Runs every fault scenario against our pools and the raw ones
//! (deadpool-postgres, bb8-redis), the DNS startup waits and the soak,
//! and prints Markdown tables.
//!
//! ```text
//! cargo run --release -p pool-contract --bin fault-report [-- OPTIONS] > report.md
//!   --only ID[,ID...]    run only these scenarios (ids: pg-restart-fast, redis-loading, ...)
//!   --no-raw             skip the raw pools
//!   --no-dns             skip the DNS rows
//!   --soak-seconds N     soak length (default: SOAK_SECONDS or 120; 0 skips it)
//!   --list               print the scenario ids and exit
//! FAULT_FREEZE_SECS      freeze / black hole / DEBUG SLEEP length (default 5)
//! ```
//! Progress goes to stderr, the report to stdout.

use pool_contract::faults::dns;
use pool_contract::faults::report::{self, Row};
use pool_contract::faults::soak::{soak, SoakConfig};
use pool_contract::faults::{run, Db, Fault, PoolKind, Profile, Scenario};
use std::time::{Duration, Instant};

struct Args {
    only: Option<Vec<String>>,
    raw: bool,
    dns: bool,
    soak_seconds: f64,
    list: bool,
}

fn args() -> Args {
    let mut a = Args {
        only: None,
        raw: true,
        dns: true,
        soak_seconds: std::env::var("SOAK_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120.0),
        list: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--only" => {
                a.only = it
                    .next()
                    .map(|v| v.split(',').map(str::to_string).collect())
            }
            "--no-raw" => a.raw = false,
            "--no-dns" => a.dns = false,
            "--soak-seconds" => {
                a.soak_seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--soak-seconds N")
            }
            "--list" => a.list = true,
            other => {
                eprintln!("unknown argument {other:?} (see the source's header for options)");
                std::process::exit(2);
            }
        }
    }
    a
}

/// Runs one scenario in a task of its own, so that a failing kit call
/// becomes a "run failed" cell instead of ending the report.
async fn run_caught(
    s: &Scenario,
    kind: PoolKind,
    p: &Profile,
) -> Result<pool_contract::faults::Figures, String> {
    let (s2, p2) = (s.clone(), p.clone());
    let started = Instant::now();
    let r = tokio::spawn(async move { run(&s2, kind, &p2).await })
        .await
        .map_err(|e| {
            let msg = if e.is_panic() {
                let p = e.into_panic();
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into())
            } else {
                e.to_string()
            };
            msg.lines().next().unwrap_or_default().to_string()
        });
    match &r {
        Ok(f) => eprintln!(
            "  {:.1} s  {}",
            started.elapsed().as_secs_f64(),
            f.summary()
        ),
        Err(e) => eprintln!("  {} / {kind:?}: run failed: {e}", s.id),
    }
    r
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let p = Profile::report();
    let scenarios: Vec<Scenario> = p
        .scenarios()
        .into_iter()
        .filter(|s| {
            a.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|id| id == s.id))
        })
        .collect();
    if a.list {
        for s in p.scenarios() {
            println!("{}\t{} {}", s.id, s.db.as_str(), s.title);
        }
        return;
    }
    let t0 = Instant::now();
    let mut rows = Vec::new();
    for s in &scenarios {
        eprintln!("{} ...", s.id);
        let mut runs = vec![run_caught(s, PoolKind::Ours, &p).await];
        if a.raw {
            runs.push(run_caught(s, PoolKind::Raw, &p).await);
        }
        if s.fault == Fault::Blackhole {
            runs.push(run_caught(s, PoolKind::OursCallerDrops, &p).await);
        }
        rows.push(Row {
            scenario: s.clone(),
            runs,
        });
    }

    let mut dns_rows = Vec::new();
    if a.dns && a.only.is_none() {
        let deadline = Duration::from_secs(2);
        for db in [Db::Postgres, Db::Redis] {
            eprintln!("dns {} ...", db.as_str());
            dns_rows.push(dns::late(db, 3).await);
            dns_rows.push(dns::never(db, deadline).await);
            if a.raw {
                dns_rows.push(dns::never_raw(db, p.pool_timeout).await);
            }
        }
        for d in &dns_rows {
            eprintln!("  {}", d.summary());
        }
    }

    let soak_figures = if a.soak_seconds > 0.0 && a.only.is_none() {
        eprintln!("soak {} s ...", a.soak_seconds);
        let mut cfg = SoakConfig::from_env(a.soak_seconds);
        cfg.duration = Duration::from_secs_f64(a.soak_seconds);
        let f = soak(&cfg).await;
        eprintln!("  {}", f.summary());
        Some(f)
    } else {
        None
    };

    println!("# Fault report\n");
    println!(
        "Generated by `cargo run --release -p pool-contract --bin fault-report` in {:.0} s. \
         Load: {} tasks doing checkout + one round trip (`SELECT 1` / `PING`, bounded by the caller at {} ms), \
         {} ms pause between ops, pool of {} (ours: pool_size {}, max_overflow 0, pool_timeout {:.1} s, \
         connect_timeout {:.1} s, validation_timeout {:.1} s, backoff {}–{} ms; raw deadpool-postgres: max_size {}, \
         RecyclingMethod::Fast, Timeouts {{ wait: {:.1} s }}; raw bb8-redis: defaults, max_size {}, connection_timeout {:.1} s). \
         Every op bounded by an outer {:.1} s timeout (pool_timeout + validation_timeout + {:.1} s); \
         faults fire {:.1} s into the load; the load goes on {:.1} s after the server is back. \
         Freezes, black holes and DEBUG SLEEP last {:.1} s.\n",
        t0.elapsed().as_secs_f64(),
        p.tasks,
        p.validation_timeout.as_millis(),
        p.think.as_millis(),
        p.pool_size,
        p.pool_size,
        p.pool_timeout.as_secs_f64(),
        p.connect_timeout.as_secs_f64(),
        p.validation_timeout.as_secs_f64(),
        p.retry.initial.as_millis(),
        p.retry.max.as_millis(),
        p.pool_size,
        p.pool_timeout.as_secs_f64(),
        p.pool_size,
        p.pool_timeout.as_secs_f64(),
        p.outer_timeout().as_secs_f64(),
        p.slack.as_secs_f64(),
        p.fire_at.as_secs_f64(),
        p.tail.as_secs_f64(),
        p.freeze.as_secs_f64(),
    );
    println!(
        "Cells read `ours / raw`; the black-hole rows add `/ ours, caller drops on timeout` (a caller that \
         cancels instead of marking the connection broken).\n"
    );
    println!("{}", report::fault_table(&rows));
    if !dns_rows.is_empty() {
        println!("## DNS (startup wait)\n\n{}", report::dns_table(&dns_rows));
    }
    if let Some(f) = &soak_figures {
        println!("## Soak\n\n{}", report::soak_section(f));
    }
    println!("## Details\n{}", report::details(&rows));
}
