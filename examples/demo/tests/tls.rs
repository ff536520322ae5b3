//! The demo over TLS: private TLS-only servers (`DEMO_TLS=1`), restarted
//! under load, and external TLS servers through the usual variables.

use pool_testkit::{
    HbaTls, PgOptions, PgServer, PgTls, RedisOptions, RedisServer, RedisTls, TestCerts,
};
use std::process::{Command, Output, Stdio};

/// The demo binary with a clean environment, a short run.
fn demo() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DB_") || k.starts_with("REDIS_") || k.starts_with("DEMO_") {
            cmd.env_remove(k);
        }
    }
    for k in ["DATABASE_URL", "DATABASE_URL_FILE", "RUST_LOG"] {
        cmd.env_remove(k);
    }
    cmd.env("DEMO_SECONDS", "3")
        .env("DEMO_TASKS", "4")
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> (Output, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn private_tls_servers_are_verified_and_restarted_under_load() {
    let mut cmd = demo();
    cmd.env("DEMO_TLS", "1");
    let (out, text) = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text.matches("private throwaway server over TLS, verified (chain and host name)")
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains("postgres://postgres@localhost:"), "{text}");
    assert!(text.contains("rediss://localhost:"), "{text}");
    // Both servers restarted and the pools came back, nothing hung.
    assert_eq!(
        text.matches("ms after the server was back").count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches(" 0 hung, 0 panicked tasks").count(),
        2,
        "{text}"
    );
    let mut cmd = demo();
    cmd.env("DEMO_TLS", "maybe");
    let (out, text) = run(cmd);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("DEMO_TLS") && text.contains("maybe"),
        "{text}"
    );
}

#[test]
fn external_tls_servers_through_the_variables() {
    let certs = TestCerts::generate().unwrap();
    let pg = PgServer::start_with(PgOptions {
        password: Some("demo-pw-3x".into()),
        tls: Some(PgTls::new(&certs, HbaTls::SslOnly)),
        ..PgOptions::default()
    })
    .unwrap();
    let redis = RedisServer::start_with(RedisOptions {
        tls: Some(RedisTls::new(&certs, true)),
        ..RedisOptions::default()
    })
    .unwrap();
    let tls_env = |cmd: &mut Command| {
        cmd.env("DATABASE_URL", pg.url_at("localhost"))
            .env("DB_SSLMODE", "verify-full")
            .env("DB_SSLROOTCERT", certs.ca())
            .env("REDIS_URL", redis.tls_url().unwrap())
            .env("REDIS_TLS_CA_FILE", certs.ca())
            .env("REDIS_TLS_CERT_FILE", certs.client_cert())
            .env("REDIS_TLS_KEY_FILE", certs.client_key());
    };
    let mut cmd = demo();
    tls_env(&mut cmd);
    let (out, text) = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("demo-pw-3x"), "{text}");
    assert_eq!(
        text.matches("not restarted (external server)").count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches(" 0 errors surfaced to callers, 0 hung")
            .count(),
        2,
        "{text}"
    );
    // A missing file: exit 2, the variable and the file named.
    let mut cmd = demo();
    tls_env(&mut cmd);
    cmd.env("REDIS_TLS_KEY_FILE", "/nonexistent/client.key");
    let (out, text) = run(cmd);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("REDIS_TLS_KEY_FILE") && text.contains("/nonexistent/client.key"),
        "{text}"
    );
}
