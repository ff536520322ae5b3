//! wait-for-db against real TLS servers: the variables of each target's
//! prefix, `--tls-ca` / `--tls-cert` / `--tls-key`, and the documented exit
//! codes (0 ready, 3 fatal) with the cause named.

mod common;

use common::run;
use pool_testkit::{
    HbaTls, PgOptions, PgServer, PgTls, RedisOptions, RedisServer, RedisTls, TestCerts,
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
}
