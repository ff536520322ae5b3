//! `backend`: a small axum service on the resilient PostgreSQL and Redis
//! pools, showing health endpoints, Prometheus metrics and a graceful
//! shutdown.
//!
//! Startup, in order:
//!
//! 1. read the configuration ([`config`]); a bad setting prints the error
//!    and exits with status 2;
//! 2. install the Prometheus recorder ([`telemetry`]) — before the pools,
//!    which register their metrics when built;
//! 3. wait until both servers are really ready (DNS, TCP, authenticated
//!    round trip), at most `STARTUP_TIMEOUT`; exit 1 if they are not;
//! 4. create the counters table and warm both pools (`Pool::warm_up`:
//!    `min_idle` connections, else `pool_size`, within `STARTUP_TIMEOUT`),
//!    so the first requests pay no connect; then serve ([`routes`]) — only
//!    now does `/health` answer, and it answers ready.
//!
//! On SIGTERM or SIGINT it stops accepting connections, lets in-flight
//! requests finish (at most `SHUTDOWN_TIMEOUT`), closes both pools and
//! exits 0. A signal during the startup wait exits 0 at once.
//!
//! Exit statuses:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | stopped by SIGTERM/SIGINT, every in-flight request finished |
//! | 1 | startup failed (servers not ready in `STARTUP_TIMEOUT`, port in use) |
//! | 2 | a bad setting |
//! | 3 | `SHUTDOWN_TIMEOUT` ran out: in-flight requests were cut off |
//! | 130, 143 | a second SIGINT / SIGTERM during the shutdown: exited at once |

mod config;
mod counter;
mod error;
mod routes;
mod shutdown;
mod state;
mod telemetry;

use config::Config;
use pool_core::startup::WaitOptions;
use shutdown::Shutdown;
use state::AppState;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Exit status for a startup failure (servers not ready, port in use).
const EXIT_STARTUP: u8 = 1;
/// Exit status for a bad setting.
const EXIT_CONFIG: u8 = 2;
/// Exit status when `SHUTDOWN_TIMEOUT` ran out before in-flight requests
/// finished (they were cut off: an orchestrator should know).
const EXIT_DRAIN_TIMEOUT: u8 = 3;

fn main() -> ExitCode {
    telemetry::init_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("backend: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("backend: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let shutdown = match Shutdown::listen() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    let metrics = match telemetry::install_metrics() {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the metrics recorder");
            return ExitCode::from(EXIT_STARTUP);
        }
    };

    // URLs were checked by `Config`; a probe or pool can still reject one
    // that parses but is unusable (no host, wrong scheme).
    let probes = pool_postgres::PgProbe::new(&config.pg)
        .and_then(|pg| Ok((pg, pool_redis::RedisProbe::new(&config.redis)?)));
    let pools = pool_postgres::build_pool(config.pg.clone())
        .and_then(|pg| Ok((pg, pool_redis::build_pool(config.redis.clone())?)));
    let ((pg_probe, redis_probe), (pg, redis)) = match probes.and_then(|p| Ok((p, pools?))) {
        Ok(built) => built,
        Err(e) => {
            eprintln!("backend: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };

    let wait = WaitOptions {
        deadline: Some(config.startup_timeout),
        ..WaitOptions::default()
    };
    tracing::info!(
        database = pg.target(),
        redis = redis.target(),
        timeout_s = config.startup_timeout.as_secs_f64(),
        "waiting for the servers"
    );
    let ready = tokio::select! {
        r = async { tokio::join!(pg_probe.wait(&wait), redis_probe.wait(&wait)) } => r,
        signal = shutdown.wait() => {
            tracing::info!(signal, "shutdown during the startup wait: exiting, nothing was served yet");
            return ExitCode::SUCCESS;
        }
    };
    match ready {
        (Ok(p), Ok(r)) => tracing::info!(
            database_ms = p.waited_ms,
            redis_ms = r.waited_ms,
            "both servers are ready"
        ),
        (p, r) => {
            for e in [p.err(), r.err()].into_iter().flatten() {
                tracing::error!(error = %e, "server not ready");
            }
            return ExitCode::from(EXIT_STARTUP);
        }
    }
    if let Err(e) = counter::ensure_schema(&pg).await {
        tracing::error!(error = %e, "cannot create the counters table");
        return ExitCode::from(EXIT_STARTUP);
    }
    let warmed = tokio::join!(
        pg.warm_up(None, config.startup_timeout),
        redis.warm_up(None, config.startup_timeout)
    );
    match warmed {
        (Ok(pg_open), Ok(redis_open)) => {
            tracing::info!(database = pg_open, redis = redis_open, "pools warmed")
        }
        (p, r) => {
            for e in [p.err(), r.err()].into_iter().flatten() {
                tracing::error!(error = %e, "cannot warm the pools");
            }
            return ExitCode::from(EXIT_STARTUP);
        }
    }

    let state = AppState {
        pg: pg.clone(),
        redis: redis.clone(),
        metrics,
        health_timeout: config.health_timeout,
        cache_timeout: config.cache_timeout,
    };
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen");
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %local, "listening on http://{local}");

    let code = serve(
        listener,
        routes::router(state),
        &shutdown,
        config.shutdown_timeout,
    )
    .await;
    pg.close();
    redis.close();
    tracing::info!("pools closed, exiting");
    code
}

/// Serves until a shutdown signal, then drains in-flight requests for at
/// most `grace`.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: &Shutdown,
    grace: std::time::Duration,
) -> ExitCode {
    let signalled = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        signalled.wait().await;
    });
    let deadline = async {
        let signal = shutdown.wait().await;
        tracing::info!(
            signal,
            grace_s = grace.as_secs_f64(),
            "shutting down: no new connections, finishing in-flight requests"
        );
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = server => match r {
            Ok(()) => {
                tracing::info!("in-flight requests finished");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                ExitCode::from(EXIT_STARTUP)
            }
        },
        () = deadline => {
            tracing::error!(
                grace_s = grace.as_secs_f64(),
                exit_code = EXIT_DRAIN_TIMEOUT,
                "SHUTDOWN_TIMEOUT ran out: in-flight requests cut off"
            );
            ExitCode::from(EXIT_DRAIN_TIMEOUT)
        }
    }
}
