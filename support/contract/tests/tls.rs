//! TLS end to end, against real TLS servers from the test kit: every
//! `sslmode` outcome for the PostgreSQL pool, `rediss://` with a private
//! CA, client certificates and `#insecure` for the Redis pool, the hints
//! that name the cause of a rejected certificate, and a restart under TLS
//! load.

use std::time::{Duration, Instant};

use pool_core::settings::SettingsSource;
use pool_core::{PoolError, PoolSettings};
use pool_postgres::PgPool;
use pool_redis::redis;
use pool_redis::RedisPool;
use pool_testkit::{
    HbaTls, PgOptions, PgServer, PgTls, RedisOptions, RedisServer, RedisTls, ServerCert, TestCerts,
};

fn pg_settings(url: &str, vars: &[(&str, String)]) -> PoolSettings {
    let mut all: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.into()),
        ("DB_POOL_SIZE".into(), "2".into()),
        ("DB_POOL_TIMEOUT".into(), "10".into()),
        ("DB_CONNECT_TIMEOUT".into(), "3".into()),
    ];
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
    SettingsSource::new("DB_", "DATABASE_URL")
        .vars(all)
        .load()
        .unwrap()
}

fn path(p: std::path::PathBuf) -> String {
    p.display().to_string()
}

fn pg_tls_server(certs: &TestCerts, hba: HbaTls, cert: ServerCert) -> PgServer {
    PgServer::start_with(PgOptions {
        tls: Some(PgTls {
            certs: certs.clone(),
            server_cert: cert,
            hba,
        }),
        ..PgOptions::default()
    })
    .unwrap()
}

/// Whether the session is encrypted, as the server sees it.
async fn pg_ssl_in_use(pool: &PgPool) -> Result<bool, PoolError> {
    let conn = pool.get().await?;
    let row = conn
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query");
    Ok(row.get(0))
}

/// A checkout that must fail as fatal, at once (well inside the 10 s
/// pool timeout); returns the message.
async fn pg_fatal(settings: PoolSettings) -> String {
    let pool = pool_postgres::build_pool(settings).unwrap();
    let t = Instant::now();
    let err = pg_ssl_in_use(&pool).await.expect_err("must fail");
    assert!(
        matches!(err, PoolError::Fatal { .. }),
        "expected a fatal error, got {err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a fatal error must not be retried until the timeout ({:?})",
        t.elapsed()
    );
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sslmodes_against_a_tls_only_server() {
    let certs = TestCerts::generate().unwrap();
    let pg = pg_tls_server(&certs, HbaTls::SslOnly, ServerCert::Valid);
    let ca = ("DB_SSLROOTCERT", path(certs.ca()));

    // verify-full by the name on the certificate.
    let s = pg_settings(
        &pg.url_at("localhost"),
        &[("DB_SSLMODE", "verify-full".into()), ca.clone()],
    );
    let pool = pool_postgres::build_pool(s).unwrap();
    assert!(pg_ssl_in_use(&pool).await.unwrap());

    // The same in the URL, as libpq writes it.
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url_at("localhost"),
        certs.ca().display()
    );
    assert!(
        pg_ssl_in_use(&pool_postgres::build_pool(pg_settings(&url, &[])).unwrap())
            .await
            .unwrap()
    );
    // A URL parameter and a variable that disagree: an error naming both.
    let e = pool_postgres::build_pool(pg_settings(&url, &[("DB_SSLMODE", "require".into())]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("DB_SSLMODE") && e.contains("sslmode in DATABASE_URL"),
        "{e}"
    );

    // verify-ca ignores the name, checks the chain.
    let s = pg_settings(&pg.url(), &[("DB_SSLMODE", "verify-ca".into()), ca.clone()]);
    assert!(pg_ssl_in_use(&pool_postgres::build_pool(s).unwrap())
        .await
        .unwrap());

    // require without a root certificate: encrypted, nothing verified.
    let s = pg_settings(&pg.url(), &[("DB_SSLMODE", "require".into())]);
    assert!(pg_ssl_in_use(&pool_postgres::build_pool(s).unwrap())
        .await
        .unwrap());

    // prefer (the default) uses TLS when the server has it.
    let s = pg_settings(&pg.url(), &[]);
    assert!(pg_ssl_in_use(&pool_postgres::build_pool(s).unwrap())
        .await
        .unwrap());

    // allow: plaintext is refused by pg_hba.conf, so TLS.
    let s = pg_settings(&pg.url(), &[("DB_SSLMODE", "allow".into())]);
    assert!(pg_ssl_in_use(&pool_postgres::build_pool(s).unwrap())
        .await
        .unwrap());

    // verify-full against 127.0.0.1: the certificate names localhost only.
    let e = pg_fatal(pg_settings(
        &pg.url(),
        &[("DB_SSLMODE", "verify-full".into()), ca.clone()],
    ))
    .await;
    assert!(e.contains("host name mismatch"), "{e}");

    // A CA that did not sign the server's certificate.
    let e = pg_fatal(pg_settings(
        &pg.url_at("localhost"),
        &[
            ("DB_SSLMODE", "verify-full".into()),
            ("DB_SSLROOTCERT", path(certs.other_ca())),
        ],
    ))
    .await;
    assert!(e.contains("unknown CA"), "{e}");

    // disable against hostssl-only: the server's own reason.
    let e = pg_fatal(pg_settings(&pg.url(), &[("DB_SSLMODE", "disable".into())])).await;
    assert!(e.contains("no encryption") && e.contains("28000"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_expired_certificate_is_fatal_with_a_hint() {
    let certs = TestCerts::generate().unwrap();
    let pg = pg_tls_server(&certs, HbaTls::SslOnly, ServerCert::Expired);
    let e = pg_fatal(pg_settings(
        &pg.url_at("localhost"),
        &[
            ("DB_SSLMODE", "verify-full".into()),
            ("DB_SSLROOTCERT", path(certs.ca())),
        ],
    ))
    .await;
    assert!(e.contains("expired certificate"), "{e}");
    // require does not look at the certificate at all (libpq's meaning).
    let s = pg_settings(&pg.url(), &[("DB_SSLMODE", "require".into())]);
    assert!(pg_ssl_in_use(&pool_postgres::build_pool(s).unwrap())
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_prefer_falls_back_only_when_the_server_refuses_tls() {
    let plain = PgServer::start().unwrap();
    let s = pg_settings(&plain.url(), &[("DB_SSLMODE", "prefer".into())]);
    let pool = pool_postgres::build_pool(s).unwrap();
    assert!(!pg_ssl_in_use(&pool).await.unwrap());
    // require never falls back.
    let e = pg_fatal(pg_settings(
        &plain.url(),
        &[("DB_SSLMODE", "require".into())],
    ))
    .await;
    assert!(e.to_lowercase().contains("tls"), "{e}");
    // A server that accepts both: prefer takes TLS.
    let certs = TestCerts::generate().unwrap();
    let both = pg_tls_server(&certs, HbaTls::SslOrPlain, ServerCert::Valid);
    let s = pg_settings(&both.url(), &[]);
    assert!(pg_ssl_in_use(&pool_postgres::build_pool(s).unwrap())
        .await
        .unwrap());
    let s = pg_settings(&both.url(), &[("DB_SSLMODE", "disable".into())]);
    assert!(!pg_ssl_in_use(&pool_postgres::build_pool(s).unwrap())
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_client_certificates_and_scram_over_tls() {
    let certs = TestCerts::generate().unwrap();
    let pg = PgServer::start_with(PgOptions {
        password: Some("s3cr:et@pw".into()),
        tls: Some(PgTls::new(&certs, HbaTls::ClientCert)),
        ..PgOptions::default()
    })
    .unwrap();
    let base = vec![
        ("DB_SSLMODE", "verify-full".to_string()),
        ("DB_SSLROOTCERT", path(certs.ca())),
    ];
    let e = pg_fatal(pg_settings(&pg.url_at("localhost"), &base)).await;
    assert!(e.contains("certificate"), "{e}");
    assert!(!e.contains("s3cr"), "{e}");
    let mut with_cert = base.clone();
    with_cert.push(("DB_SSLCERT", path(certs.client_cert())));
    with_cert.push(("DB_SSLKEY", path(certs.client_key())));
    // SCRAM-SHA-256 with channel binding over TLS.
    let pool = pool_postgres::build_pool(pg_settings(&pg.url_at("localhost"), &with_cert)).unwrap();
    assert!(pg_ssl_in_use(&pool).await.unwrap());
    // A missing key file is named with its variable.
    let mut missing = base.clone();
    missing.push(("DB_SSLCERT", path(certs.client_cert())));
    missing.push(("DB_SSLKEY", "/nonexistent/client.key".into()));
    let e = pool_postgres::build_pool(pg_settings(&pg.url_at("localhost"), &missing))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("DB_SSLKEY") && e.contains("/nonexistent/client.key"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_recovers_from_a_restart_under_tls_load() {
    let certs = TestCerts::generate().unwrap();
    let mut pg = pg_tls_server(&certs, HbaTls::SslOnly, ServerCert::Valid);
    let s = pg_settings(
        &pg.url_at("localhost"),
        &[
            ("DB_SSLMODE", "verify-full".into()),
            ("DB_SSLROOTCERT", path(certs.ca())),
            ("DB_POOL_SIZE", "4".into()),
            ("DB_POOL_TIMEOUT", "15".into()),
        ],
    );
    let pool = pool_postgres::build_pool(s).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match pool.get().await {
                    Ok(mut c) => {
                        let r = c.simple_query("select 1").await;
                        match c.observe(r) {
                            Ok(_) => ok += 1,
                            Err(_) => err += 1,
                        }
                    }
                    Err(_) => err += 1,
                }
            }
            (ok, err)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart_fast().unwrap();
        pg
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap().0;
    }
    assert!(ok > 0);
    // After the restart every checkout works again, over TLS.
    for _ in 0..10 {
        assert!(pg_ssl_in_use(&pool).await.unwrap());
    }
    drop(pg);
}

fn redis_settings(url: &str, vars: &[(&str, String)]) -> PoolSettings {
    let mut all: Vec<(String, String)> = vec![
        ("REDIS_URL".into(), url.into()),
        ("REDIS_POOL_SIZE".into(), "2".into()),
        ("REDIS_POOL_TIMEOUT".into(), "10".into()),
        ("REDIS_CONNECT_TIMEOUT".into(), "3".into()),
    ];
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
    SettingsSource::new("REDIS_", "REDIS_URL")
        .vars(all)
        .load()
        .unwrap()
}

async fn redis_ping(pool: &RedisPool) -> Result<String, PoolError> {
    let mut conn = pool.get().await?;
    let r: Result<String, _> = redis::cmd("PING").query_async(&mut *conn).await;
    Ok(conn.observe(r).expect("PING"))
}

async fn redis_fatal(settings: PoolSettings) -> String {
    let pool = pool_redis::build_pool(settings).unwrap();
    let t = Instant::now();
    let err = redis_ping(&pool).await.expect_err("must fail");
    assert!(
        matches!(err, PoolError::Fatal { .. }),
        "expected a fatal error, got {err}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tls_with_a_private_ca_and_insecure() {
    let certs = TestCerts::generate().unwrap();
    let server = RedisServer::start_with(RedisOptions {
        tls: Some(RedisTls::new(&certs, false)),
        ..RedisOptions::default()
    })
    .unwrap();
    let url = server.tls_url().unwrap();
    let ca = ("REDIS_TLS_CA_FILE", path(certs.ca()));
    let pool = pool_redis::build_pool(redis_settings(&url, std::slice::from_ref(&ca))).unwrap();
    assert_eq!(redis_ping(&pool).await.unwrap(), "PONG");

    // Without the CA file the OS roots do not know the test CA.
    let e = redis_fatal(redis_settings(&url, &[])).await;
    assert!(e.contains("unknown CA"), "{e}");

    // #insecure works (with a warning at every start).
    let insecure = format!("{url}#insecure");
    let pool = pool_redis::build_pool(redis_settings(&insecure, &[])).unwrap();
    assert_eq!(redis_ping(&pool).await.unwrap(), "PONG");

    // TLS files with a plaintext URL are a settings error naming both.
    let plain_url = url.replacen("rediss://", "redis://", 1);
    let e = pool_redis::build_pool(redis_settings(&plain_url, &[ca]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("REDIS_TLS_CA_FILE") && e.contains("REDIS_URL"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_client_certificates_and_expired_server_certificates() {
    let certs = TestCerts::generate().unwrap();
    let server = RedisServer::start_with(RedisOptions {
        tls: Some(RedisTls::new(&certs, true)),
        ..RedisOptions::default()
    })
    .unwrap();
    let url = server.tls_url().unwrap();
    let ca = ("REDIS_TLS_CA_FILE", path(certs.ca()));
    let pool = pool_redis::build_pool(redis_settings(
        &url,
        &[
            ca.clone(),
            ("REDIS_TLS_CERT_FILE", path(certs.client_cert())),
            ("REDIS_TLS_KEY_FILE", path(certs.client_key())),
        ],
    ))
    .unwrap();
    assert_eq!(redis_ping(&pool).await.unwrap(), "PONG");
    let pool = pool_redis::build_pool(redis_settings(&url, std::slice::from_ref(&ca))).unwrap();
    let err = redis_ping(&pool).await.expect_err("no client certificate");
    let e = err.to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    let expired = RedisServer::start_with(RedisOptions {
        tls: Some(RedisTls {
            certs: certs.clone(),
            server_cert: ServerCert::Expired,
            auth_clients: false,
        }),
        ..RedisOptions::default()
    })
    .unwrap();
    let e = redis_fatal(redis_settings(&expired.tls_url().unwrap(), &[ca])).await;
    assert!(e.contains("expired certificate"), "{e}");
}

/// Reset on return above TLS: the watcher reads the decrypted protocol (a
/// transaction left open is rolled back), and a request in flight is
/// cancelled with a cancel request over TLS (verify-full, SSL-only server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reset_on_return_over_tls() {
    let certs = TestCerts::generate().unwrap();
    let pg = pg_tls_server(&certs, HbaTls::SslOnly, ServerCert::Valid);
    let s = pg_settings(
        &pg.url_at("localhost"),
        &[
            ("DB_SSLMODE", "verify-full".into()),
            ("DB_SSLROOTCERT", path(certs.ca())),
            ("DB_POOL_SIZE", "1".into()),
            ("DB_MAX_OVERFLOW", "0".into()),
        ],
    );
    let pool = pool_postgres::build_pool(s).unwrap();
    assert!(pg_ssl_in_use(&pool).await.unwrap());
    let a = pool.get().await.unwrap();
    a.batch_execute("BEGIN; SET LOCAL statement_timeout = '1234ms'")
        .await
        .unwrap();
    drop(a);
    let b = pool.get().await.unwrap();
    let v: String = b
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(v, "1234ms");
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        b.simple_query("SELECT pg_sleep(3)"),
    )
    .await;
    assert!(gave_up.is_err());
    drop(b);
    let t = Instant::now();
    let c = pool.get().await.unwrap();
    c.query_one("SELECT 1", &[]).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(c);
    drop(pool.get().await.unwrap());
    let st = pool.status();
    assert_eq!((st.counters.resets, st.counters.cancels), (1, 1), "{st:?}");
    assert_eq!(st.counters.closed.total(), 0, "{st:?}");
}

/// `sslnegotiation=direct` through the pool: the kit's PostgreSQL 15 has no
/// direct TLS, so a checkout is fatal at once with the cause named; weaker
/// modes than `require` are rejected when the pool is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_direct_tls_against_postgres_15() {
    let certs = TestCerts::generate().unwrap();
    let pg = pg_tls_server(&certs, HbaTls::SslOrPlain, ServerCert::Valid);
    let url = format!(
        "{}?sslmode=require&sslnegotiation=direct",
        pg.url_at("localhost")
    );
    let e = pg_fatal(pg_settings(&url, &[])).await;
    assert!(
        e.contains("direct TLS handshake (sslnegotiation=direct)")
            && e.contains("needs PostgreSQL 17 or later"),
        "{e}"
    );
    let weak = format!("{}?sslnegotiation=direct", pg.url_at("localhost"));
    let e = pool_postgres::build_pool(pg_settings(&weak, &[]))
        .expect_err("prefer with direct")
        .to_string();
    assert!(
        e.contains("sslnegotiation in DATABASE_URL") && e.contains("sslmode is prefer by default"),
        "{e}"
    );
}
