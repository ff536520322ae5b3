//! docs/operations.md's sample outputs are what the binary prints.
//!
//! Each sample block below (`$ COMMAND`, the output, `$ echo $?`, the exit
//! code) is run against private servers set up as the doc describes (a
//! PostgreSQL role and database `app` with the password `app-secret`, Redis
//! with the password `redis-secret`), with the doc's ports replaced by the
//! servers' own. Digits are normalised (timings, ports, versions, counts);
//! every other character of every line must match, in order, and the exit
//! code too. A change to what `wait-for-db` prints fails here until the
//! doc shows it.
//!
//! The waits that retry print one line per attempt, and how many attempts
//! fit (and where a concurrent target's line falls among them) depends on
//! the jitter: for those, repeated lines count once and the order is free;
//! every distinct line must still be the doc's.

mod common;

use common::{wait_for_db, Running};
use pool_testkit::samples::normalise_digits as normalise;
use pool_testkit::{PgOptions, PgServer, RedisOptions, RedisServer};
use std::path::Path;

/// The doc's ports for the sample servers.
const DOC_PG_PORT: &str = "55432";
const DOC_REDIS_PORT: &str = "56379";
/// The doc's port of a Redis replica whose master is unreachable.
const DOC_REPLICA_PORT: &str = "56380";
/// The doc's port that nothing listens on.
const DOC_CLOSED_PORT: &str = "55433";

/// The samples this test runs, by their `$` line.
const SAMPLES: [&str; 7] = [
    "wait-for-db doctor redis://127.0.0.1:56380/0 postgres://app:app-secret@127.0.0.1:55432/app",
    "wait-for-db --timeout 2",
    "wait-for-db tcp://127.0.0.1:55433 & sleep 1.2; kill -TERM $!; wait $!",
    "wait-for-db doctor",
    "wait-for-db doctor postgres://app:wrong@127.0.0.1:55432/app redis://:wrong@127.0.0.1:56379/0 \
     tcp://127.0.0.1:55433 postgres://app:app-secret@postgress:5432/app",
    "DB_POOL_SIZE=90 DB_MAX_OVERFLOW=20 wait-for-db doctor",
    "wait-for-db --timeout 5 postgres://app:wrong-password@127.0.0.1:55432/app",
];

struct Sample {
    command: String,
    output: Vec<String>,
    code: i32,
}

/// The `text` blocks of the doc that start with `$ ` and end with
/// `$ echo $?` and a code.
fn samples(doc: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for block in doc.split("```text\n").skip(1) {
        let Some(block) = block.split("\n```").next() else {
            continue;
        };
        let lines: Vec<&str> = block.lines().collect();
        let Some(first) = lines.first().and_then(|l| l.strip_prefix("$ ")) else {
            continue;
        };
        // A command continued with `\` on the next lines.
        let mut command = first.to_string();
        let mut start = 1;
        while command.ends_with('\\') && start < lines.len() {
            command.pop();
            command = format!("{} {}", command.trim_end(), lines[start].trim());
            start += 1;
        }
        let Some(echo) = lines.iter().position(|l| *l == "$ echo $?") else {
            continue;
        };
        let Some(code) = lines.get(echo + 1).and_then(|c| c.parse().ok()) else {
            continue;
        };
        out.push(Sample {
            command,
            output: lines[start..echo].iter().map(|l| l.to_string()).collect(),
            code,
        });
    }
    out
}

#[test]
fn operations_doc_samples_match_what_the_binary_prints() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let blocks = samples(&doc);

    let mut pg = PgServer::start_with(PgOptions {
        password: Some("pg-admin-secret".into()),
        ..PgOptions::default()
    })
    .unwrap();
    pg.psql("CREATE ROLE app LOGIN PASSWORD 'app-secret'")
        .unwrap();
    pg.psql("CREATE DATABASE app OWNER app").unwrap();
    let redis = RedisServer::start_with(RedisOptions {
        password: Some("redis-secret".into()),
        ..RedisOptions::default()
    })
    .unwrap();
    // "the same PostgreSQL restarted as a standby with hot_standby = off"
    let standby = PgServer::start_with(PgOptions {
        standby_57p03: true,
        ..PgOptions::default()
    })
    .unwrap();
    let replica = RedisServer::start_with(RedisOptions {
        replica_of_unreachable_master: true,
        ..RedisOptions::default()
    })
    .unwrap();
    let (closed, _) = common::refusing();
    // The samples of servers that are not ready use the standby.
    let not_ready =
        |command: &str| command.contains("--timeout 2") || command.contains(DOC_REPLICA_PORT);
    let ports = |s: &str, pg_port: u16| {
        s.replace(DOC_PG_PORT, &pg_port.to_string())
            .replace(DOC_REPLICA_PORT, &replica.port().to_string())
            .replace(DOC_REDIS_PORT, &redis.port().to_string())
            .replace(DOC_CLOSED_PORT, &closed.port().to_string())
    };
    let database_url = ports("postgres://app:app-secret@127.0.0.1:55432/app", pg.port());
    let redis_url = ports("redis://:redis-secret@127.0.0.1:56379/0", pg.port());

    for wanted in SAMPLES {
        let sample = blocks
            .iter()
            .find(|b| b.command == wanted)
            .unwrap_or_else(|| panic!("docs/operations.md has no sample `$ {wanted}`"));
        let retries = sample.command.contains("--timeout 2") || sample.command.contains("kill");
        let pg_port = if not_ready(&sample.command) {
            standby.port()
        } else {
            pg.port()
        };
        let database_url = database_url.replace(&pg.port().to_string(), &pg_port.to_string());
        let mut cmd = wait_for_db();
        cmd.env("DATABASE_URL", &database_url)
            .env("REDIS_URL", &redis_url);
        let mut words = sample.command.split_whitespace().peekable();
        while let Some((k, v)) = words.peek().and_then(|w| w.split_once('=')) {
            cmd.env(k, v);
            words.next();
        }
        assert_eq!(words.next(), Some("wait-for-db"), "{wanted}");
        // `wait-for-db ARGS & sleep 1.2; kill -TERM $!; wait $!`
        let args: Vec<String> = words
            .take_while(|w| *w != "&")
            .map(|w| ports(w, pg_port))
            .collect();
        cmd.args(&args);
        let running = Running::spawn(cmd);
        if sample.command.contains("kill -TERM") {
            std::thread::sleep(std::time::Duration::from_millis(1200));
            running.signal(nix::sys::signal::Signal::SIGTERM);
        }
        let out = running.finish();
        assert_eq!(out.code, Some(sample.code), "`$ {wanted}`: exit code");
        // A terminal shows the two streams interleaved; the doc shows one
        // after the other (either way round).
        let (stdout, stderr) = (out.stdout.lines(), out.stderr.lines());
        let printed: Vec<String> = stdout
            .clone()
            .chain(stderr.clone())
            .map(normalise)
            .collect();
        let shown: Vec<String> = sample.output.iter().map(|l| normalise(l)).collect();
        if printed != shown {
            let other: Vec<String> = stderr.chain(stdout).map(normalise).collect();
            if other == shown {
                continue;
            }
            if retries {
                let set =
                    |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
                assert_eq!(
                    set(&printed),
                    set(&shown),
                    "`$ {wanted}`: the distinct lines printed (left) are not the doc's (right)"
                );
                continue;
            }
        }
        assert_eq!(
            printed, shown,
            "`$ {wanted}` prints something else than docs/operations.md shows \
             (digits normalised; left: printed, right: the doc)"
        );
    }

    // `wait-for-db -- sh -c '...'` while PostgreSQL comes up after a few
    // attempts (the doc's server came up after 3 s).
    let wanted = r#"wait-for-db -- sh -c 'echo "backend starting (PID $$)"'"#;
    let sample = blocks
        .iter()
        .find(|b| b.command == wanted)
        .unwrap_or_else(|| panic!("docs/operations.md has no sample `$ {wanted}`"));
    pg.stop_fast().unwrap();
    let mut cmd = wait_for_db();
    cmd.env("DATABASE_URL", &database_url)
        .env("REDIS_URL", &redis_url)
        .args(["--", "sh", "-c", r#"echo "backend starting (PID $$)""#]);
    let mut running = Running::spawn(cmd);
    running.wait_for_line("attempt 3:", std::time::Duration::from_secs(20));
    pg.start_again().unwrap();
    let out = running.finish();
    assert_eq!(out.code, Some(sample.code), "`$ {wanted}`: exit code");
    let distinct =
        |lines: &mut dyn Iterator<Item = String>| lines.collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        distinct(&mut out.stdout.lines().chain(out.stderr.lines()).map(normalise)),
        distinct(&mut sample.output.iter().map(|l| normalise(l))),
        "`$ {wanted}`: the distinct lines printed (left) are not the doc's (right)"
    );

    // `--json`: the object printed has the doc's keys, shape and words.
    let (command, shown) = json_sample(&doc);
    let mut words = command.split_whitespace();
    assert_eq!(words.next(), Some("wait-for-db"), "{command}");
    let mut cmd = wait_for_db();
    cmd.args(words.map(|w| ports(w, standby.port())));
    let out = Running::spawn(cmd).finish();
    let printed: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("`$ {command}` printed no JSON ({e}):\n{}", out.stdout));
    assert_eq!(
        normalise_json(printed),
        normalise_json(shown),
        "`$ {command}` prints another object than docs/operations.md shows"
    );
}

/// The doc's `--json` sample: the command in a `text` block, the object in
/// the `json` block right after it.
fn json_sample(doc: &str) -> (String, serde_json::Value) {
    let start = doc
        .find("```text\n$ wait-for-db --json")
        .expect("docs/operations.md has no --json sample");
    let rest = &doc[start + "```text\n$ ".len()..];
    let command = rest.lines().next().unwrap().to_string();
    let json = rest
        .split("```json\n")
        .nth(1)
        .and_then(|j| j.split("\n```").next())
        .expect("the --json sample's object");
    (
        command,
        serde_json::from_str(json).expect("the doc's JSON parses"),
    )
}

/// Numbers become 0 and strings are normalised: what stays is the shape,
/// the keys and the words.
fn normalise_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(_) => Value::from(0),
        Value::String(s) => Value::String(normalise(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(normalise_json).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, normalise_json(v))).collect())
        }
        other => other,
    }
}
