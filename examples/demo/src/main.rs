//! The main job: a load on a PostgreSQL pool and a Redis pool while both
//! databases restart under it.
//!
//! ```text
//! cargo run --release --bin demo
//! ```
//!
//! Pools come from the environment (`DB_*` with `DATABASE_URL`, `REDIS_*`
//! with `REDIS_URL`; see docs/configuration.md). When a URL is unset, the
//! demo starts a throwaway private server for it (from the installed
//! binaries, on a free port, removed at exit) and restarts it mid-run; an
//! external server is never restarted. Every second it prints throughput,
//! errors and pool state; at the end, the errors callers saw and how long
//! each pool took to recover.
//!
//! `DEMO_TASKS` (default 32) and `DEMO_SECONDS` (default 12) size the run.
//! `DEMO_TLS=1` makes the private servers TLS-only (certificates from a
//! throwaway CA, valid for `localhost`) and the pools verify them
//! (`sslmode=verify-full`, `rediss://`), restart included. External servers
//! take the usual TLS settings: `sslmode` & co. in `DATABASE_URL` or
//! `DB_SSLMODE`, `DB_SSLROOTCERT`, `DB_SSLCERT`, `DB_SSLKEY`; `rediss://` in
//! `REDIS_URL` with `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE`,
//! `REDIS_TLS_KEY_FILE`.
//! A bad setting prints the error and exits with status 2.

mod load;
mod options;
mod report;

use load::{Load, Target};
use pool_contract::{Backend, Postgres, Redis};
use pool_testkit::TestCerts;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let opts = match options::Options::from_env() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(load::Failure::Settings(e)) => {
            eprintln!("demo: {e}");
            ExitCode::from(2)
        }
        Err(load::Failure::Run(e)) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(opts: options::Options) -> Result<(), load::Failure> {
    let certs =
        if opts.tls {
            Some(TestCerts::generate().map_err(|e| {
                load::Failure::Run(format!("cannot make the TLS certificates: {e}"))
            })?)
        } else {
            None
        };
    let pg = Target::<Postgres>::prepare("PostgreSQL", opts.pg, opts.seconds / 3, certs.as_ref())?;
    let redis =
        Target::<Redis>::prepare("Redis", opts.redis, opts.seconds * 2 / 3, certs.as_ref())?;
    println!(
        "demo: {} tasks per pool for {}s; PostgreSQL {} ({}), Redis {} ({})",
        opts.tasks,
        opts.seconds,
        pg.pool.target(),
        pg.origin(),
        redis.pool.target(),
        redis.origin(),
    );
    println!(
        "pools: {}; {}",
        report::sizing(&pg.pool.status()),
        report::sizing(&redis.pool.status())
    );

    let start = Instant::now();
    let until = start + Duration::from_secs(opts.seconds);
    let pg_load = Load::start(pg, opts.tasks, until);
    let redis_load = Load::start(redis, opts.tasks, until);

    report::header();
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let (mut pg_prev, mut redis_prev) = (pg_load.totals(), redis_load.totals());
    let mut shown = ("", "");
    while Instant::now() < until {
        tick.tick().await;
        let (pg_now, redis_now) = (pg_load.totals(), redis_load.totals());
        // Events are shown once, when they change.
        let events = (pg_load.event(), redis_load.event());
        let fresh = |now: &'static str, before: &'static str| if now == before { "" } else { now };
        report::row(
            start.elapsed(),
            (
                &pg_now - &pg_prev,
                &pg_load.status(),
                fresh(events.0, shown.0),
            ),
            (
                &redis_now - &redis_prev,
                &redis_load.status(),
                fresh(events.1, shown.1),
            ),
        );
        shown = events;
        (pg_prev, redis_prev) = (pg_now, redis_now);
    }
    let pg_summary = pg_load.finish().await.map_err(load::Failure::Run)?;
    let redis_summary = redis_load.finish().await.map_err(load::Failure::Run)?;
    report::summary(&[pg_summary, redis_summary]);
    Ok(())
}

/// Where a target's server comes from.
#[allow(missing_debug_implementations)]
pub enum Origin<B: Backend> {
    /// A URL from the environment; never restarted.
    External,
    /// A throwaway private server, restarted mid-run.
    Private {
        /// The server.
        server: B::Server,
        /// Whether it speaks TLS only (`DEMO_TLS`).
        tls: bool,
    },
}
