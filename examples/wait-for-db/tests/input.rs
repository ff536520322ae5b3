//! Unusual but legal input: every URL form of the pools, non-UTF-8
//! variables, a closed pipe. No password ever shows, nothing panics.

mod common;

use common::{refusing, run, wait_for_db, Running};
use pool_testkit::PgServer;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;

#[test]
fn a_non_utf8_url_variable_exits_2_naming_it_without_the_password() {
    let mut cmd = wait_for_db();
    cmd.env(
        "DATABASE_URL",
        std::ffi::OsStr::from_bytes(b"postgres://app:Zq1\xffZq2@127.0.0.1:1/app"),
    );
    cmd.args(["--timeout", "1"]);
    let out = Running::spawn(cmd).finish();
    out.expect_code(2)
        .stderr_has("DATABASE_URL is not valid UTF-8")
        .stderr_has("postgres://app:***@127.0.0.1:1/app")
        .never_shows("Zq");
}

#[test]
fn unrelated_non_utf8_variables_are_ignored() {
    let (_closed, url) = refusing();
    for sub in [&["doctor"][..], &["--once"][..]] {
        let mut cmd = wait_for_db();
        cmd.env(
            "UNRELATED_SECRET",
            std::ffi::OsStr::from_bytes(b"Sekrit-\xff-Value"),
        );
        cmd.args(sub).arg(&url);
        let out = Running::spawn(cmd).finish();
        out.expect_code(1)
            .never_shows("Sekrit")
            .never_shows("panicked");
    }
}

#[test]
fn key_value_and_unix_urls_are_targets() {
    let (closed, _) = refusing();
    let port = closed.port();
    for url in [
        format!("host=127.0.0.1 port={port} user=app password='Zq1 x' dbname=app"),
        "unix:///nonexistent/redis.sock?db=1&pass=Zq1".to_string(),
        "redis+unix:///nonexistent/redis.sock".to_string(),
        "postgres://app:Zq1@%2Fnonexistent-dir/app".to_string(),
    ] {
        run(&["--timeout", "1", &url])
            .expect_code(124)
            .never_shows("Zq1")
            .never_shows("invalid");
    }
}

#[test]
fn a_bad_postgres_option_is_named() {
    run(&["--timeout", "1", "postgres://app:Zq1@db/app?sslmod=require"])
        .expect_code(2)
        .stderr_has("unknown option 'sslmod'")
        .never_shows("Zq1");
    run(&[
        "--timeout",
        "1",
        "host=db user=u password=Zq1 sslmode=bogus",
    ])
    .expect_code(2)
    .stderr_has("'sslmode'")
    .never_shows("Zq1");
}

#[test]
fn passwords_with_delimiters_never_show() {
    let (closed, _) = refusing();
    let port = closed.port();
    for url in [
        format!("postgres://app:Hash#Zq1@127.0.0.1:{port}/app"),
        format!("postgres://app:Q?Zq1x@127.0.0.1:{port}/app"),
        format!("postgres://weird:p@ss:w/rd%Zq?#x@127.0.0.1:{port}/postgres"),
        format!("redis://:Hash#Zq1@127.0.0.1:{port}/0"),
        format!("host=127.0.0.1 port={port} user=u password = 'Quo\\'teZq1'"),
    ] {
        for args in [&["--timeout", "1"][..], &["doctor"][..]] {
            let mut all = args.to_vec();
            all.push(&url);
            let out = run(&all);
            out.never_shows("Zq").never_shows("panicked");
            assert!(matches!(out.code, Some(1 | 124)), "{url}: {out:?}");
        }
    }
}

#[test]
fn a_closed_pipe_keeps_the_exit_code() {
    let (_closed, url) = refusing();
    // `wait-for-db URL 2>&1 | head -1`: both streams into one pipe whose
    // reader goes away after one line.
    let (reader, writer) = std::io::pipe().unwrap();
    let mut cmd = wait_for_db();
    cmd.args(["--timeout", "2", &url])
        .stdout(writer.try_clone().unwrap())
        .stderr(writer);
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut first = String::new();
    BufReader::new(reader).read_line(&mut first).unwrap();
    // The reader is dropped here: later writes get EPIPE.
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(124), "first line {first:?}");
}

#[test]
fn multi_host_with_the_first_host_down_becomes_ready() {
    let pg = PgServer::start().unwrap();
    let (closed, _) = refusing();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres",
        closed.port(),
        pg.port()
    );
    run(&["--timeout", "10", &url]).expect_code(0);
    let kv = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres",
        closed.port(),
        pg.port()
    );
    run(&["--timeout", "10", &kv]).expect_code(0);
    // A Unix socket directory, percent-encoded as the host.
    let dir = pg.socket_dir().to_str().unwrap().replace('/', "%2F");
    let unix = format!("postgres://postgres@{dir}:{}/postgres", pg.port());
    run(&["--timeout", "10", &unix]).expect_code(0);
}

#[test]
fn a_redis_database_index_out_of_range_is_fatal() {
    let redis = pool_testkit::RedisServer::start().unwrap();
    let url = format!("redis://{}:{}/99", redis.host(), redis.port());
    let out = run(&["--timeout", "20", &url]);
    out.expect_code(3)
        .stderr_has("DB index is out of range")
        .stderr_has("databases");
    assert!(
        out.elapsed < std::time::Duration::from_secs(10),
        "{:?}",
        out.elapsed
    );
}

#[test]
fn a_server_that_is_not_redis_is_said_in_one_line() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 256];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let out = run(&["--timeout", "2", &format!("redis://127.0.0.1:{port}/0")]);
    out.expect_code(124)
        .stderr_has("did not answer in the Redis protocol")
        .never_shows("Unexpected '");
}

#[test]
fn doctor_counts_other_roles_sessions() {
    let pg = PgServer::start().unwrap();
    pg.psql("CREATE ROLE watcher LOGIN").unwrap();
    // Four sessions of the superuser, invisible in detail to `watcher`.
    let mut sessions: Vec<std::process::Child> = (0..4)
        .map(|_| {
            let mut cmd = pg.psql_command(None);
            cmd.args(["-c", "SELECT pg_sleep(30)"]);
            cmd.stdout(std::process::Stdio::null()).spawn().unwrap()
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pg.client_sessions().unwrap() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("postgres://watcher@127.0.0.1:{}/postgres", pg.port());
    let out = run(&["doctor", &url]);
    for s in &mut sessions {
        let _ = s.kill();
        let _ = s.wait();
    }
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("other session(s)"))
        .unwrap_or_else(|| panic!("no capacity line:\n{}", out.stdout));
    let others: i64 = line
        .split(", ")
        .find_map(|p| p.strip_suffix(" other session(s) in use"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(others >= 4, "{line}");
}
