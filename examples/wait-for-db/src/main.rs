//! `wait-for-db`: a container entrypoint that waits until PostgreSQL, Redis
//! and TCP services are really ready, then execs the application.
//!
//! ```text
//! wait-for-db [OPTIONS] [TARGET...] [-- COMMAND [ARGS...]]
//! wait-for-db doctor [TARGET...]
//! ```
//!
//! Readiness is the real thing (an authenticated `SELECT 1`, `AUTH` +
//! `PING`), checked layer by layer by `pool_core::startup` with the shared
//! exponential backoff with jitter; errors waiting cannot fix (a wrong
//! password) stop the wait at once with exit code 3. See `--help` and
//! `docs/operations.md` for the exit codes.

mod cli;
mod doctor;
mod exec;
mod exit;
mod log;
mod targets;
mod tlscheck;
mod wait;

use clap::Parser;
use cli::{Cli, DoctorArgs, Sub, WaitArgs};
use pool_core::startup::{SystemResolver, WaitOptions};
use pool_core::RetryPolicy;
use std::io::Write;
use std::process;
use std::sync::Arc;
use std::time::Duration;
use targets::Target;

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|e| e.exit());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(exit::FATAL, &format!("cannot start the runtime: {e}")),
    };
    match cli.command {
        Some(Sub::Doctor(args)) => {
            log::init(false);
            process::exit(run_doctor(&rt, &args));
        }
        None => {
            log::init(cli.wait.quiet);
            run_wait(rt, &cli.wait)
        }
    }
}

/// Prints a usage or setup error and exits.
fn fail(code: i32, message: &str) -> ! {
    // A closed stderr must not turn the exit code into a panic's 101.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "wait-for-db: error: {message}");
    if code == exit::USAGE {
        let _ = writeln!(err, "\nFor more information, try '--help'.");
    }
    process::exit(code)
}

/// Reads the targets, or exits 2 with the reason.
fn read_targets(args: &[String], attempt_timeout: Duration, tls: &cli::TlsArgs) -> Vec<Target> {
    // Without arguments: DATABASE_URL and REDIS_URL, each possibly read
    // from the file its `_FILE` variable names (a Docker secret). A
    // variable that is not UTF-8 is an error naming it; others are ignored.
    let mut env = std::collections::HashMap::new();
    if args.is_empty() {
        for var in [pool_postgres::URL_VAR, pool_redis::URL_VAR] {
            let file_var = format!("{var}{}", pool_core::secret_file::FILE_SUFFIX);
            let mut read = std::collections::HashMap::new();
            for name in [var.to_string(), file_var] {
                match pool_core::settings::env::var(&name) {
                    Ok(Some(value)) => {
                        read.insert(name, value);
                    }
                    Ok(None) => {}
                    Err(e) => fail(exit::USAGE, &e.to_string()),
                }
            }
            match pool_core::secret_file::lookup(var, |k| read.get(k).cloned()) {
                Ok(Some(value)) => {
                    env.insert(var, value);
                }
                Ok(None) => {}
                Err(e) => fail(exit::USAGE, &e.to_string()),
            }
        }
    }
    let targets = targets::from_args_or_env_tls(
        args,
        |v| Ok(env.get(v).cloned()),
        attempt_timeout,
        &targets::TlsInputs::from_env(tls),
    )
    .unwrap_or_else(|e| fail(exit::USAGE, &e.to_string()));
    if targets.is_empty() {
        fail(
            exit::USAGE,
            "no TARGET given and neither DATABASE_URL nor REDIS_URL is set (nor DATABASE_URL_FILE, REDIS_URL_FILE)",
        );
    }
    targets
}

fn run_wait(rt: tokio::runtime::Runtime, args: &WaitArgs) -> ! {
    if let Err(e) = args.validate() {
        fail(exit::USAGE, &e);
    }
    let targets = read_targets(&args.targets, args.attempt_timeout, &args.tls);
    let opts = WaitOptions {
        deadline: args.deadline(),
        retry: RetryPolicy {
            initial: args.initial_delay,
            max: args.max_delay,
        },
        attempt_timeout: args.attempt_timeout,
        resolver: Arc::new(SystemResolver),
        once: args.once,
    };
    // Handlers first: a SIGTERM during the wait must end it at once, also
    // as PID 1 where an unhandled SIGTERM is ignored.
    let mut signals = {
        let _guard = rt.enter();
        wait::Signals::install()
            .unwrap_or_else(|e| fail(exit::FATAL, &format!("cannot handle signals: {e}")))
    };
    let names: Vec<String> = targets.iter().map(Target::describe).collect();
    tracing::info!(
        "waiting for {} ({})",
        names.join(", "),
        match opts.deadline {
            Some(d) if opts.once => format!("one attempt, at most {}s", d.as_secs_f64()),
            Some(d) => format!("timeout {}s", d.as_secs_f64()),
            None if opts.once => "one attempt".into(),
            None => "no timeout".into(),
        }
    );
    let report = rt.block_on(wait::wait_all(&targets, &opts, &mut signals));
    wait::log_verdict(&report, &opts);
    if args.json {
        let mut out = std::io::stdout().lock();
        // A closed stdout must not hide the exit code.
        let _ = serde_json::to_writer(&mut out, &report);
        let _ = writeln!(out);
        let _ = out.flush();
    }
    if report.exit_code != exit::READY || args.exec.is_empty() {
        process::exit(report.exit_code);
    }
    // Nothing of ours may linger in the command's process: stop the runtime
    // (without waiting for DNS lookups still running in its blocking pool).
    rt.shutdown_background();
    tracing::info!("exec {}", args.exec[0]);
    let (code, message) = exec::exec(&args.exec);
    tracing::error!("{message}");
    process::exit(code)
}

fn run_doctor(rt: &tokio::runtime::Runtime, args: &DoctorArgs) -> i32 {
    let targets = read_targets(&args.targets, args.attempt_timeout, &args.tls);
    let diagnoses = rt.block_on(doctor::diagnose_all(&targets, args.attempt_timeout));
    let passed = diagnoses.iter().all(doctor::Diagnosis::passed);
    let code = if passed { exit::READY } else { exit::NOT_READY };
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = serde_json::json!({
            "passed": passed,
            "exit_code": code,
            "targets": diagnoses,
        });
        let _ = writeln!(out, "{report}");
    } else {
        for d in &diagnoses {
            let _ = write!(out, "{}", d.render());
        }
        let count = |status| {
            diagnoses
                .iter()
                .flat_map(|d| &d.layers)
                .filter(|l| l.status == status)
                .count()
        };
        let (failed, skipped) = (count(doctor::Status::Fail), count(doctor::Status::Skip));
        let _ = match (passed, skipped) {
            (true, _) => writeln!(
                out,
                "doctor: every layer of {} target(s) passed",
                diagnoses.len()
            ),
            (false, 0) => writeln!(out, "doctor: {failed} layer(s) failed"),
            (false, _) => writeln!(
                out,
                "doctor: {failed} layer(s) failed, {skipped} not checked above them"
            ),
        };
    }
    let _ = out.flush();
    code
}
