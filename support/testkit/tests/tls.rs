//! The TLS test servers, checked with the stock clients (`psql`, `redis-cli`)
//! so the kit is proven independently of our own TLS code.

use std::process::Command;

use pool_testkit::{
    bins::pg_bins, HbaTls, PgOptions, PgServer, PgTls, RedisOptions, RedisServer, RedisTls,
    TestCerts,
};

fn psql(conninfo: &str) -> (bool, String) {
    let out = Command::new(pg_bins().unwrap().psql)
        .args([
            "-X",
            "-A",
            "-t",
            "-w",
            "-c",
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
        ])
        .arg(conninfo)
        .env_remove("PGSSLMODE")
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

#[test]
fn postgres_tls_only_server_refuses_plaintext_and_verifies_for_localhost() {
    let certs = TestCerts::generate().unwrap();
    let pg = PgServer::start_with(PgOptions {
        tls: Some(PgTls::new(&certs, HbaTls::SslOnly)),
        ..PgOptions::default()
    })
    .unwrap();
    let ca = certs.ca().display().to_string();
    let port = pg.port();
    let (ok, out) = psql(
        &format!("host=localhost port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert={ca}"),
    );
    assert!(ok && out == "t", "{out}");
    let (ok, out) = psql(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert={ca}"),
    );
    assert!(!ok && out.contains("does not match host name"), "{out}");
    let (ok, out) = psql(&format!(
        "host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable"
    ));
    assert!(!ok && out.contains("no encryption"), "{out}");
    // The kit's own helpers still work (over the Unix socket).
    assert_eq!(pg.psql("select 1").unwrap(), "1");
}

#[test]
fn postgres_client_cert_server_needs_the_certificate() {
    let certs = TestCerts::generate().unwrap();
    let pg = PgServer::start_with(PgOptions {
        tls: Some(PgTls::new(&certs, HbaTls::ClientCert)),
        ..PgOptions::default()
    })
    .unwrap();
    let base = format!(
        "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
        pg.port(),
        certs.ca().display()
    );
    let (ok, out) = psql(&base);
    assert!(!ok && out.contains("certificate"), "{out}");
    let (ok, out) = psql(&format!(
        "{base} sslcert={} sslkey={}",
        certs.client_cert().display(),
        certs.client_key().display()
    ));
    assert!(ok && out == "t", "{out}");
}

#[test]
fn redis_tls_server_answers_over_tls_only() {
    let certs = TestCerts::generate().unwrap();
    let redis = RedisServer::start_with(RedisOptions {
        tls: Some(RedisTls::new(&certs, true)),
        ..RedisOptions::default()
    })
    .unwrap();
    assert_eq!(redis.cmd(&["PING"]).unwrap(), "PONG");
    assert!(redis.tls_url().unwrap().starts_with("rediss://localhost:"));
    let cli = |extra: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-h", "localhost", "-p", &redis.port().to_string()])
            .args(extra)
            .arg("PING")
            .output()
            .expect("redis-cli (apt-get install -y redis-tools)");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let ca = certs.ca().display().to_string();
    let cert = certs.client_cert().display().to_string();
    let key = certs.client_key().display().to_string();
    assert!(
        cli(&["--tls", "--cacert", &ca, "--cert", &cert, "--key", &key]).contains("PONG"),
        "TLS with a client certificate"
    );
    assert!(
        !cli(&["--tls", "--cacert", &ca]).contains("PONG"),
        "tls-auth-clients yes must refuse a client without a certificate"
    );
    assert!(!cli(&[]).contains("PONG"), "plaintext must not be served");
}
