//! wait-for-db against real TLS servers: the variables of each target's
//! prefix, `--tls-ca` / `--tls-cert` / `--tls-key`, and the documented exit
//! codes (0 ready, 3 fatal) with the cause named.

mod common;

use common::run;
use pool_testkit::{
    HbaTls, PgOptions, PgServer, PgTls, RedisOptions, RedisServer, RedisTls, ServerCert, TestCerts,
};

#[test]
fn postgres_verify_full_by_flag_and_by_variable_and_its_fatal_cases() {
    let certs = TestCerts::generate().unwrap();
    let pg = PgServer::start_with(PgOptions {
        password: Some("pw-Zq9".into()),
        tls: Some(PgTls::new(&certs, HbaTls::SslOnly)),
        ..PgOptions::default()
    })
    .unwrap();
    let ca = certs.ca().display().to_string();
    let good = format!("{}?sslmode=verify-full", pg.url_at("localhost"));
    run(&["--once", "--tls-ca", &ca, &good])
        .expect_code(0)
        .never_shows("pw-Zq9");
    // The same through DB_SSLROOTCERT.
    let mut cmd = common::wait_for_db();
    cmd.env("DB_SSLROOTCERT", &ca).args(["--once", &good]);
    common::Running::spawn(cmd).finish().expect_code(0);
    // 127.0.0.1 is not on the certificate: fatal at once, cause named.
    let by_ip = format!("{}?sslmode=verify-full", pg.url());
    run(&["--timeout", "20", "--tls-ca", &ca, &by_ip])
        .expect_code(3)
        .stderr_has("host name mismatch")
        .never_shows("pw-Zq9");
    // A CA that did not sign it.
    let other = certs.other_ca().display().to_string();
    run(&["--timeout", "20", "--tls-ca", &other, &good])
        .expect_code(3)
        .stderr_has("unknown CA");
    // Plaintext against hostssl-only: the server's reason, fatal.
    let plain = format!("{}?sslmode=disable", pg.url());
    run(&["--timeout", "20", &plain])
        .expect_code(3)
        .stderr_has("no encryption");
    // A missing CA file: a usage error naming the flag and the file.
    run(&["--once", "--tls-ca", "/nonexistent/ca.pem", &good])
        .expect_code(2)
        .stderr_has("--tls-ca")
        .stderr_has("/nonexistent/ca.pem");
}

#[test]
fn rediss_with_client_certificates_and_without_the_ca() {
    let certs = TestCerts::generate().unwrap();
    let redis = RedisServer::start_with(RedisOptions {
        tls: Some(RedisTls::new(&certs, true)),
        ..RedisOptions::default()
    })
    .unwrap();
    let url = redis.tls_url().unwrap();
    let ca = certs.ca().display().to_string();
    let cert = certs.client_cert().display().to_string();
    let key = certs.client_key().display().to_string();
    run(&[
        "--once",
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        &url,
    ])
    .expect_code(0);
    let mut cmd = common::wait_for_db();
    cmd.env("REDIS_TLS_CA_FILE", &ca)
        .env("REDIS_TLS_CERT_FILE", &cert)
        .env("REDIS_TLS_KEY_FILE", &key)
        .args(["--once", &url]);
    common::Running::spawn(cmd).finish().expect_code(0);
    run(&["--timeout", "20", &url])
        .expect_code(3)
        .stderr_has("unknown CA");
    // The doctor without the client certificate: TLS 1.3 completes the
    // client's handshake, then the server's alert fails the tls layer.
    let out = run(&["doctor", "--attempt-timeout", "20", "--tls-ca", &ca, &url]);
    out.expect_code(1);
    let (tls, hint) = doctor_line(&out.stdout, "tls");
    assert!(
        tls.starts_with("  [FAIL] tls        negotiated TLSv1.3")
            && tls.contains("then the server"),
        "{tls}"
    );
    assert!(
        hint.as_deref()
            .is_some_and(|h| h.starts_with("hint: the server requires a client certificate")),
        "{hint:?}"
    );
    assert!(out.stdout.contains("[skip] login"), "{}", out.stdout);
    // With it: the layer passes.
    let out = run(&[
        "doctor",
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        &url,
    ]);
    out.expect_code(0);
    let (tls, _) = doctor_line(&out.stdout, "tls");
    assert!(tls.starts_with("  [ ok ] tls        negotiated"), "{tls}");
}

/// The doctor's line for `layer` (`[ ok ] tls        ...`), and the hint
/// line after it when there is one.
fn doctor_line(stdout: &str, layer: &str) -> (String, Option<String>) {
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.len() > 9 && l[9..].starts_with(&format!("{layer:<10} ")))
        .unwrap_or_else(|| panic!("no {layer} line:\n{stdout}"));
    let hint = lines
        .get(at + 1)
        .filter(|l| l.trim_start().starts_with("hint: "))
        .map(|l| l.trim().to_string());
    (lines[at].to_string(), hint)
}

#[test]
fn doctor_tls_layer_against_postgres() {
    let certs = TestCerts::generate().unwrap();
    let pg = PgServer::start_with(PgOptions {
        password: Some("pw-Dr7".into()),
        tls: Some(PgTls {
            server_cert: ServerCert::ExpiresSoon,
            ..PgTls::new(&certs, HbaTls::SslOnly)
        }),
        ..PgOptions::default()
    })
    .unwrap();
    let ca = certs.ca().display().to_string();

    // verify-full by name: negotiated, verified, but the certificate
    // expires in 7 days: a warning, which does not fail the run.
    let good = format!("{}?sslmode=verify-full", pg.url_at("localhost"));
    let out = run(&["doctor", "--attempt-timeout", "20", "--tls-ca", &ca, &good]);
    out.expect_code(0).never_shows("pw-Dr7");
    let (tls, hint) = doctor_line(&out.stdout, "tls");
    assert!(
        tls.starts_with("  [warn] tls        negotiated TLSv1."),
        "{tls}"
    );
    assert!(
        tls.contains("chain and host name verified (sslmode=verify-full); certificate CN=localhost, expires in "),
        "{tls}"
    );
    let days: i64 = tls
        .split("expires in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{tls}"));
    assert!((6..=7).contains(&days), "{tls}");
    assert!(
        hint.as_deref().is_some_and(
            |h| h.starts_with("hint: the server's certificate expires in under 14 days")
        ),
        "{hint:?}"
    );
    for layer in ["dns", "tcp", "login", "query", "server", "capacity"] {
        assert!(
            out.stdout.contains(&format!("[ ok ] {layer}")),
            "{layer}:\n{}",
            out.stdout
        );
    }

    // require without a root certificate: encrypted, nothing verified.
    let require = format!("{}?sslmode=require", pg.url());
    let out = run(&["doctor", "--attempt-timeout", "20", &require]);
    let (tls, _) = doctor_line(&out.stdout, "tls");
    assert!(
        tls.contains("certificate not verified (sslmode=require); certificate CN=localhost"),
        "{tls}"
    );
    out.expect_code(0);

    // By IP address: the host name check fails the layer, with the
    // certificate described and the cause as the hint; the layers above
    // are not checked.
    let by_ip = format!("{}?sslmode=verify-full", pg.url());
    let out = run(&["doctor", "--attempt-timeout", "20", "--tls-ca", &ca, &by_ip]);
    out.expect_code(1);
    let (tls, hint) = doctor_line(&out.stdout, "tls");
    assert!(
        tls.starts_with("  [FAIL] tls        handshake failed: "),
        "{tls}"
    );
    assert!(
        tls.contains("certificate CN=localhost, expires in"),
        "{tls}"
    );
    assert!(
        hint.as_deref()
            .is_some_and(|h| h.starts_with("hint: host name mismatch")),
        "{hint:?}"
    );
    for layer in ["login", "query", "server", "capacity"] {
        assert!(
            out.stdout.contains(&format!("[skip] {layer}")),
            "{layer}:\n{}",
            out.stdout
        );
    }

    // A CA that did not sign it.
    let other = certs.other_ca().display().to_string();
    let out = run(&[
        "doctor",
        "--attempt-timeout",
        "20",
        "--tls-ca",
        &other,
        &good,
    ]);
    out.expect_code(1);
    let (_, hint) = doctor_line(&out.stdout, "tls");
    assert!(
        hint.as_deref()
            .is_some_and(|h| h.starts_with("hint: unknown CA")),
        "{hint:?}"
    );
}

#[test]
fn doctor_tls_layer_against_a_plain_postgres() {
    let pg = PgServer::start().unwrap();
    // The default, prefer: the server refuses TLS, plaintext is accepted.
    let out = run(&["doctor", "--attempt-timeout", "20", &pg.url()]);
    out.expect_code(0);
    let (tls, _) = doctor_line(&out.stdout, "tls");
    assert_eq!(
        tls,
        "  [ ok ] tls        not negotiated: the server refused TLS, the connection is plaintext (sslmode=prefer)"
    );
    let out = run(&[
        "doctor",
        "--attempt-timeout",
        "20",
        &format!("{}?sslmode=disable", pg.url()),
    ]);
    out.expect_code(0);
    let (tls, _) = doctor_line(&out.stdout, "tls");
    assert_eq!(
        tls,
        "  [ ok ] tls        not negotiated: sslmode=disable, plaintext"
    );
    // require does not fall back.
    let out = run(&[
        "doctor",
        "--attempt-timeout",
        "20",
        &format!("{}?sslmode=require", pg.url()),
    ]);
    out.expect_code(1);
    let (tls, hint) = doctor_line(&out.stdout, "tls");
    assert_eq!(
        tls,
        "  [FAIL] tls        not negotiated: the server refused TLS, and sslmode=require does not fall back to plaintext"
    );
    assert!(hint.is_some_and(|h| h.contains("ssl on")));
    assert!(out.stdout.contains("[skip] login"), "{}", out.stdout);
}

#[test]
fn doctor_tls_layer_against_redis() {
    let certs = TestCerts::generate().unwrap();
    let redis = RedisServer::start_with(RedisOptions {
        tls: Some(RedisTls::new(&certs, false)),
        ..RedisOptions::default()
    })
    .unwrap();
    let url = redis.tls_url().unwrap();
    let ca = certs.ca().display().to_string();
    let out = run(&["doctor", "--attempt-timeout", "20", "--tls-ca", &ca, &url]);
    out.expect_code(0);
    let (tls, hint) = doctor_line(&out.stdout, "tls");
    assert!(
        tls.starts_with("  [ ok ] tls        negotiated TLSv1."),
        "{tls}"
    );
    assert!(
        tls.contains(
            "chain and host name verified (rediss://); certificate CN=localhost, expires in "
        ),
        "{tls}"
    );
    assert_eq!(hint, None);
    for layer in ["login", "server", "read_write"] {
        assert!(
            out.stdout.contains(&format!("[ ok ] {layer}")),
            "{layer}:\n{}",
            out.stdout
        );
    }
    // Without the CA: the OS roots do not know the test CA.
    let out = run(&["doctor", "--attempt-timeout", "20", &url]);
    out.expect_code(1);
    let (tls, hint) = doctor_line(&out.stdout, "tls");
    assert!(
        tls.starts_with("  [FAIL] tls        handshake failed: "),
        "{tls}"
    );
    assert!(
        hint.as_deref()
            .is_some_and(|h| h.starts_with("hint: unknown CA")),
        "{hint:?}"
    );
    // #insecure: encrypted, not verified.
    let out = run(&[
        "doctor",
        "--attempt-timeout",
        "20",
        &format!("{url}#insecure"),
    ]);
    out.expect_code(0);
    let (tls, _) = doctor_line(&out.stdout, "tls");
    assert!(
        tls.contains("certificate not verified (#insecure)"),
        "{tls}"
    );
    // Plain redis://.
    let plain = RedisServer::start().unwrap();
    let out = run(&["doctor", "--attempt-timeout", "20", &plain.url()]);
    out.expect_code(0);
    let (tls, _) = doctor_line(&out.stdout, "tls");
    assert_eq!(
        tls,
        "  [ ok ] tls        not negotiated: redis:// is plaintext (rediss:// for TLS)"
    );
}

#[test]
fn doctor_tls_layer_names_an_expired_certificate() {
    let certs = TestCerts::generate().unwrap();
    let redis = RedisServer::start_with(RedisOptions {
        tls: Some(RedisTls {
            server_cert: ServerCert::Expired,
            ..RedisTls::new(&certs, false)
        }),
        ..RedisOptions::default()
    })
    .unwrap();
    let url = redis.tls_url().unwrap();
    let ca = certs.ca().display().to_string();
    let out = run(&["doctor", "--attempt-timeout", "20", "--tls-ca", &ca, &url]);
    out.expect_code(1);
    let (tls, hint) = doctor_line(&out.stdout, "tls");
    assert!(tls.contains("certificate CN=localhost, expired "), "{tls}");
    assert!(tls.contains("(2020-"), "{tls}");
    assert!(
        hint.as_deref()
            .is_some_and(|h| h.starts_with("hint: expired certificate")),
        "{hint:?}"
    );
    // Not verified (#insecure): it works, and the expiry is a warning.
    let out = run(&[
        "doctor",
        "--attempt-timeout",
        "20",
        &format!("{url}#insecure"),
    ]);
    out.expect_code(0);
    let (tls, hint) = doctor_line(&out.stdout, "tls");
    assert!(tls.starts_with("  [warn] tls"), "{tls}");
    assert!(hint.is_some_and(|h| h.contains("expired on 2020-")));
}

/// `sslnegotiation=direct` (tokio-postgres 0.7.18 supports it): the kit's
/// PostgreSQL 15 has no direct TLS, so a connect is fatal at once with the
/// cause named; modes weaker than `require` are refused before any connect.
#[test]
fn sslnegotiation_direct_against_postgres_15() {
    let certs = TestCerts::generate().unwrap();
    let pg = PgServer::start_with(PgOptions {
        tls: Some(PgTls::new(&certs, HbaTls::SslOrPlain)),
        ..PgOptions::default()
    })
    .unwrap();
    let direct = format!(
        "{}?sslmode=require&sslnegotiation=direct",
        pg.url_at("localhost")
    );
    let out = run(&["--timeout", "20", &direct]);
    out.expect_code(3)
        .stderr_has("direct TLS handshake (sslnegotiation=direct)")
        .stderr_has("sslnegotiation=direct needs PostgreSQL 17 or later");
    assert!(
        out.elapsed < std::time::Duration::from_secs(10),
        "{:?}",
        out.elapsed
    );
    let out = run(&["doctor", "--attempt-timeout", "20", &direct]);
    out.expect_code(1);
    let (tls, hint) = doctor_line(&out.stdout, "tls");
    assert!(
        tls.starts_with("  [FAIL] tls        handshake failed: "),
        "{tls}"
    );
    assert!(
        hint.as_deref()
            .is_some_and(|h| h.starts_with("hint: sslnegotiation=direct needs PostgreSQL 17")),
        "{hint:?}"
    );
    // Without require: refused as a setting, naming both parameters.
    for query in [
        "sslnegotiation=direct",
        "sslmode=prefer&sslnegotiation=direct",
        "sslmode=disable&sslnegotiation=direct",
    ] {
        let url = format!("{}?{query}", pg.url_at("localhost"));
        run(&["--once", &url])
            .expect_code(2)
            .stderr_has("sslnegotiation in TARGET #1=\"direct\"")
            .stderr_has("expected sslmode=require, verify-ca or verify-full with it");
    }
    // The default, postgres, against the same server: fine.
    let negotiated = format!(
        "{}?sslmode=require&sslnegotiation=postgres",
        pg.url_at("localhost")
    );
    run(&["--once", &negotiated]).expect_code(0);
}

/// `sslrootcert=system`: the OS roots, read by rustls-native-certs, which
/// takes `SSL_CERT_FILE` instead of the system store when it is set (the
/// child process's environment only).
#[test]
fn sslrootcert_system_uses_the_os_roots() {
    let certs = TestCerts::generate().unwrap();
    let pg = PgServer::start_with(PgOptions {
        tls: Some(PgTls::new(&certs, HbaTls::SslOnly)),
        ..PgOptions::default()
    })
    .unwrap();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert=system",
        pg.url_at("localhost")
    );
    let with_roots = |file: &std::path::Path, args: &[&str]| {
        let mut cmd = common::wait_for_db();
        cmd.env("SSL_CERT_FILE", file)
            .env_remove("SSL_CERT_DIR")
            .args(args);
        common::Running::spawn(cmd).finish()
    };
    // The test CA as the system's roots: verified.
    with_roots(&certs.ca(), &["--once", &url]).expect_code(0);
    let out = with_roots(&certs.ca(), &["doctor", &url]);
    out.expect_code(0);
    let (tls, _) = doctor_line(&out.stdout, "tls");
    assert!(
        tls.contains("chain and host name verified (sslmode=verify-full)"),
        "{tls}"
    );
    // Roots without the test CA: fatal, unknown CA.
    with_roots(&certs.other_ca(), &["--timeout", "20", &url])
        .expect_code(3)
        .stderr_has("unknown CA");
    // The same through DB_SSLROOTCERT.
    let mut cmd = common::wait_for_db();
    cmd.env("SSL_CERT_FILE", certs.other_ca())
        .env_remove("SSL_CERT_DIR")
        .env("DB_SSLROOTCERT", "system")
        .env("DB_SSLMODE", "verify-full")
        .args(["--timeout", "20", &pg.url_at("localhost")]);
    common::Running::spawn(cmd)
        .finish()
        .expect_code(3)
        .stderr_has("unknown CA");
}
