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
    run(&["--timeout", "1", "host=db password=Zq1 sslmode=verify-full"])
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
