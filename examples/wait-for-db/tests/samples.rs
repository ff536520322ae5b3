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

mod common;

use common::{wait_for_db, Running};
use pool_testkit::{PgOptions, PgServer, RedisOptions, RedisServer};
use std::path::Path;

/// The doc's ports for the sample servers.
const DOC_PG_PORT: &str = "55432";
const DOC_REDIS_PORT: &str = "56379";
/// The doc's port that nothing listens on.
const DOC_CLOSED_PORT: &str = "55433";

/// The samples this test runs, by their `$` line.
const SAMPLES: [&str; 4] = [
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

/// Digits (and runs of digits with `.`) become `N`.
fn normalise(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line.chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('N');
                in_number = true;
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[test]
fn operations_doc_samples_match_what_the_binary_prints() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let blocks = samples(&doc);

    let pg = PgServer::start_with(PgOptions {
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
    let (closed, _) = common::refusing();
    let ports = |s: &str| {
        s.replace(DOC_PG_PORT, &pg.port().to_string())
            .replace(DOC_REDIS_PORT, &redis.port().to_string())
            .replace(DOC_CLOSED_PORT, &closed.port().to_string())
    };
    let database_url = ports("postgres://app:app-secret@127.0.0.1:55432/app");
    let redis_url = ports("redis://:redis-secret@127.0.0.1:56379/0");

    for wanted in SAMPLES {
        let sample = blocks
            .iter()
            .find(|b| b.command == wanted)
            .unwrap_or_else(|| panic!("docs/operations.md has no sample `$ {wanted}`"));
        let mut cmd = wait_for_db();
        cmd.env("DATABASE_URL", &database_url)
            .env("REDIS_URL", &redis_url);
        let mut words = sample.command.split_whitespace().peekable();
        while let Some((k, v)) = words.peek().and_then(|w| w.split_once('=')) {
            cmd.env(k, v);
            words.next();
        }
        assert_eq!(words.next(), Some("wait-for-db"), "{wanted}");
        cmd.args(words.map(ports));
        let out = Running::spawn(cmd).finish();
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
        }
        assert_eq!(
            printed, shown,
            "`$ {wanted}` prints something else than docs/operations.md shows \
             (digits normalised; left: printed, right: the doc)"
        );
    }
}

#[test]
fn normalise_hides_digits_only() {
    assert_eq!(
        normalise("[ ok ] tcp 127.0.0.1:55432 accepts connections (0.3 ms)"),
        "[ ok ] tcp N:N accepts connections (N ms)"
    );
}
