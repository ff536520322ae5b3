//! Command-line parsing (clap derive).
//!
//! Bad values are rejected by clap with a message naming the option and the
//! value, and exit code 2 ([`crate::exit::USAGE`]).

use clap::{Args, Parser, Subcommand};
use std::time::Duration;

const AFTER_HELP: &str = "\
TARGETS:
  postgres://USER[:PASSWORD]@HOST[:PORT]/DB   authenticated SELECT 1
  redis://[USER][:PASSWORD@]HOST[:PORT][/DB]  AUTH (when given) + PING
  tcp://HOST:PORT (or HOST:PORT)              DNS + TCP connect only
  Without TARGET, DATABASE_URL and REDIS_URL are used (whichever are set).

EXIT CODES:
  0    every target ready (with -- COMMAND: the command's own exit code)
  1    --once: a target is not ready; doctor: a layer failed
  2    bad usage, bad option value or bad URL
  3    fatal error waiting cannot fix (wrong password, unknown user or database)
  124  the --timeout deadline passed
  126  COMMAND found but not executable
  127  COMMAND not found
  128+N  signal N (SIGTERM 143, SIGINT 130) arrived while waiting

Logs go to stderr (WAIT_FOR_DB_LOG overrides the filter, e.g. debug).
Passwords are never printed.";

/// `wait-for-db [OPTIONS] [TARGET...] [-- COMMAND [ARGS...]]`.
#[derive(Debug, Parser)]
#[command(
    name = "wait-for-db",
    version,
    about = "Wait until PostgreSQL, Redis and TCP services are really ready, then exec COMMAND",
    override_usage = "wait-for-db [OPTIONS] [TARGET]... [-- COMMAND [ARGS]...]\n       \
                      wait-for-db doctor [OPTIONS] [TARGET]...",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "Subcommands"
)]
pub struct Cli {
    /// `doctor`, or nothing to wait.
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Options of the wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Diagnose each target layer by layer (DNS, TCP, TLS, login, query, capacity)
    /// and exit 0 when all pass, 1 otherwise.
    Doctor(DoctorArgs),
}

/// Options of the default mode: wait, then exec.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Services to wait for (postgres://, postgresql://, redis://, rediss://,
    /// tcp://HOST:PORT or HOST:PORT); default: $DATABASE_URL and $REDIS_URL.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Overall deadline in seconds (0 = wait forever); exit 124 when it passes.
    #[arg(short, long, value_name = "SECS", default_value = "60", value_parser = parse_secs, allow_hyphen_values = true)]
    pub timeout: Duration,

    /// Upper bound of the first pause between attempts, in seconds.
    #[arg(long, value_name = "SECS", default_value = "0.05", value_parser = parse_positive_secs, allow_hyphen_values = true)]
    pub initial_delay: Duration,

    /// Longest pause between attempts (jitter included), in seconds.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_positive_secs, allow_hyphen_values = true)]
    pub max_delay: Duration,

    /// Bound on each stage (DNS, connect, login) of one attempt, in seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_positive_secs, allow_hyphen_values = true)]
    pub attempt_timeout: Duration,

    /// Make one attempt per target and exit 0 (ready), 1 (not ready) or
    /// 3 (fatal): for compose healthchecks.
    #[arg(long, conflicts_with = "exec")]
    pub once: bool,

    /// Log errors only (the final verdict of a failure still shows).
    #[arg(short, long)]
    pub quiet: bool,

    /// Print a machine-readable report (one JSON object) on stdout.
    #[arg(long)]
    pub json: bool,

    /// Command to exec once everything is ready; it replaces this process
    /// (same PID, its exit code is the container's).
    #[arg(last = true, value_name = "COMMAND")]
    pub exec: Vec<String>,

    /// TLS files.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS files for every TLS target (override `DB_SSLROOTCERT`,
/// `DB_SSLCERT`, `DB_SSLKEY` for PostgreSQL and `REDIS_TLS_CA_FILE`,
/// `REDIS_TLS_CERT_FILE`, `REDIS_TLS_KEY_FILE` for `rediss://`).
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// CA file (PEM) to verify servers against (`system`: the OS roots,
    /// PostgreSQL only).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<String>,
    /// Client certificate file (PEM), for servers that require one.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// The client certificate's key file (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<String>,
}

/// Options of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Services to diagnose; default: $DATABASE_URL and $REDIS_URL.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Bound on each layer's check, in seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_positive_secs, allow_hyphen_values = true)]
    pub attempt_timeout: Duration,

    /// Print the diagnosis as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// TLS files.
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl WaitArgs {
    /// The overall deadline; `None` waits forever.
    pub fn deadline(&self) -> Option<Duration> {
        (!self.timeout.is_zero()).then_some(self.timeout)
    }

    /// Checks the options against each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.initial_delay > self.max_delay {
            return Err(format!(
                "--initial-delay {}s is longer than --max-delay {}s",
                self.initial_delay.as_secs_f64(),
                self.max_delay.as_secs_f64()
            ));
        }
        Ok(())
    }
}

/// Parses seconds: `1.5`, `2s`, `500ms`, `1m`; `0` allowed.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let expected = "expected seconds, e.g. 30, 1.5, 500ms or 2m";
    let value: f64 = number.trim().parse().map_err(|_| expected.to_string())?;
    let secs = value * scale;
    if !secs.is_finite() || secs < 0.0 {
        return Err(expected.to_string());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{expected}; this is too large"))
}

/// Like [`parse_secs`], but zero is rejected.
pub fn parse_positive_secs(s: &str) -> Result<Duration, String> {
    let d = parse_secs(s)?;
    if d.is_zero() {
        return Err("must be more than 0 seconds".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_secs("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_secs("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_secs("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_secs("0"), Ok(Duration::ZERO));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("abc").is_err());
        assert!(parse_secs("inf").is_err());
        assert!(parse_secs("NaN").is_err());
        assert!(parse_positive_secs("0").is_err());
    }

    #[test]
    fn targets_and_command_split_at_the_double_dash() {
        let cli = Cli::try_parse_from([
            "wait-for-db",
            "--timeout",
            "3",
            "postgres://u@db/app",
            "tcp://q:1",
            "--",
            "sh",
            "-c",
            "exit 7",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.wait.targets, ["postgres://u@db/app", "tcp://q:1"]);
        assert_eq!(cli.wait.exec, ["sh", "-c", "exit 7"]);
        assert_eq!(cli.wait.deadline(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn doctor_is_a_subcommand() {
        let cli = Cli::try_parse_from(["wait-for-db", "doctor", "redis://r"]).unwrap();
        match cli.command {
            Some(Sub::Doctor(d)) => assert_eq!(d.targets, ["redis://r"]),
            None => panic!("doctor not parsed"),
        }
    }

    #[test]
    fn once_conflicts_with_a_command() {
        assert!(Cli::try_parse_from(["wait-for-db", "--once", "tcp://a:1", "--", "true"]).is_err());
    }
}
