//! The backend over TLS to both servers: `/health` at 200 with
//! `verify-full` to PostgreSQL and `rediss://` with a private CA to Redis.

mod common;

use common::{base_env, command, Backend, PG_PASSWORD, REDIS_PASSWORD};
use pool_testkit::{
    HbaTls, PgOptions, PgServer, PgTls, RedisOptions, RedisServer, RedisTls, TestCerts,
};

#[test]
fn health_is_200_over_tls_to_both() {
    let certs = TestCerts::generate().unwrap();
    let pg = PgServer::start_with(PgOptions {
        password: Some(PG_PASSWORD.into()),
        tls: Some(PgTls::new(&certs, HbaTls::SslOnly)),
        ..PgOptions::default()
    })
    .unwrap();
    let redis = RedisServer::start_with(RedisOptions {
        password: Some(REDIS_PASSWORD.into()),
        tls: Some(RedisTls::new(&certs, false)),
        ..RedisOptions::default()
    })
    .unwrap();
    let ca = certs.ca().display().to_string();
    let mut env = base_env();
    env.extend([
        (
            "DATABASE_URL".to_string(),
            format!("{}?sslmode=verify-full", pg.url_at("localhost")),
        ),
        ("DB_SSLROOTCERT".to_string(), ca.clone()),
        ("REDIS_URL".to_string(), redis.tls_url().unwrap()),
        ("REDIS_TLS_CA_FILE".to_string(), ca),
    ]);
    let app = Backend::spawn(command(&env));
    let r = app.get("/health");
    assert_eq!(r.status, 200, "{}\n{}", r.body, app.logs());
    // The server sees encrypted sessions only (pg_hba accepts nothing else).
    let encrypted: u32 = pg
        .psql("select count(*) from pg_stat_ssl s join pg_stat_activity a using (pid) where a.backend_type = 'client backend' and s.ssl")
        .unwrap()
        .parse()
        .unwrap();
    assert!(encrypted >= 1, "{encrypted}");
    app.assert_no_secret();
}
