//! Exit codes that need no database: usage errors, exec, signals, `--once`,
//! `--json`, DNS failures and `doctor` against a closed port.

mod common;

use common::{listening, refusing, run, wait_for_db, Running};
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[test]
fn bad_urls_exit_2_without_the_password() {
    for url in [
        "http://u:hunter2@db/app",
        "postgres://u:hunter2@db:notaport/app",
        "redis://:hunter2@cache:notaport/0",
        "tcp://db",
        "postgres://:hunter2@db/app",
    ] {
        run(&["--timeout", "2", url])
            .expect_code(2)
            .stderr_has("invalid TARGET #1")
            .never_shows("hunter2");
    }
}

#[test]
fn bad_option_values_exit_2_naming_option_and_value() {
    let out = run(&["--timeout", "abc", "tcp://db:1"]);
    out.expect_code(2).stderr_has("--timeout").stderr_has("abc");
    let out = run(&["--max-delay", "0", "tcp://db:1"]);
    out.expect_code(2)
        .stderr_has("--max-delay")
        .stderr_has("'0'");
    let out = run(&["--attempt-timeout", "-1", "tcp://db:1"]);
    out.expect_code(2).stderr_has("--attempt-timeout");
    let out = run(&["--initial-delay", "5", "--max-delay", "1", "tcp://db:1"]);
    out.expect_code(2).stderr_has("--initial-delay");
    run(&["--no-such-option"]).expect_code(2);
    run(&["--once", "tcp://db:1", "--", "true"]).expect_code(2);
}

#[test]
fn no_target_and_no_environment_exits_2() {
    run(&[])
        .expect_code(2)
        .stderr_has("neither DATABASE_URL nor REDIS_URL");
}

#[test]
fn help_and_version_exit_0() {
    let out = run(&["--help"]);
    out.expect_code(0);
    assert!(out.stdout.contains("EXIT CODES"), "{}", out.stdout);
    run(&["--version"]).expect_code(0);
}

#[test]
fn exec_replaces_the_process() {
    let (_l, ready) = listening();
    let mut cmd = wait_for_db();
    cmd.args([&ready, "--", "sh", "-c", "echo $$"]);
    let out = Running::spawn(cmd).finish();
    out.expect_code(0);
    assert_eq!(
        out.stdout.trim(),
        out.pid.to_string(),
        "the command must run in wait-for-db's own process\n{}",
        out.stderr
    );
}

#[test]
fn the_command_exit_code_is_passed_through() {
    let (_l, ready) = listening();
    run(&[&ready, "--", "sh", "-c", "exit 7"]).expect_code(7);
    run(&["-q", &ready, "--", "true"]).expect_code(0);
}

#[test]
fn a_missing_command_exits_127() {
    let (_l, ready) = listening();
    run(&[&ready, "--", "no-such-command-wait-for-db-test"])
        .expect_code(127)
        .stderr_has("not found");
}

#[test]
fn a_non_executable_command_exits_126() {
    let (_l, ready) = listening();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("app.sh");
    std::fs::write(&script, "#!/bin/sh\necho should-not-run\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&[&ready, "--", script.to_str().unwrap()]);
    out.expect_code(126).stderr_has("not executable");
    assert!(!out.stdout.contains("should-not-run"));
    // A directory is "found but not executable" too.
    run(&[&ready, "--", dir.path().to_str().unwrap()]).expect_code(126);
}

#[test]
fn once_exits_0_when_ready_and_1_when_not() {
    let (_l, ready) = listening();
    let (_p, refused) = refusing();
    run(&["--once", &ready]).expect_code(0);
    let out = run(&["--once", &ready, &refused]);
    out.expect_code(1).stderr_has("Connection refused");
    assert!(out.elapsed < Duration::from_secs(3), "{:?}", out.elapsed);
}

#[test]
fn a_refused_port_keeps_waiting_until_the_deadline() {
    let (_p, refused) = refusing();
    let out = run(&["--timeout", "1.5", &refused]);
    out.expect_code(124)
        .stderr_has("attempt 3")
        .stderr_has("refused")
        .stderr_has("hint: nothing listens");
    assert!(
        out.elapsed >= Duration::from_millis(1400) && out.elapsed < Duration::from_secs(4),
        "{:?}",
        out.elapsed
    );
}

#[test]
fn an_unresolvable_name_keeps_waiting_with_a_dns_hint() {
    let out = run(&[
        "--timeout",
        "1.5",
        "postgres://app:pw-dns-test@db-does-not-exist.invalid:5432/app",
    ]);
    out.expect_code(124)
        .stderr_has("dns: 'db-does-not-exist.invalid' does not resolve")
        .stderr_has("hint: the name does not resolve")
        .stderr_has("compose")
        .never_shows("pw-dns-test");
}

#[test]
fn json_reports_every_target() {
    let (_l, ready) = listening();
    let (_p, refused) = refusing();
    let out = run(&["--json", "--timeout", "1", &ready, &refused]);
    out.expect_code(124);
    let v = out.json();
    assert_eq!(v["outcome"], "timeout");
    assert_eq!(v["exit_code"], 124);
    assert!(v["waited_ms"].as_u64().unwrap() >= 900, "{v}");
    let t = v["targets"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0]["target"], ready.as_str());
    assert_eq!(t[0]["kind"], "tcp");
    assert_eq!(t[0]["outcome"], "ready");
    assert_eq!(t[0]["attempts"], 1);
    assert!(t[0]["last_failure"].is_null());
    assert_eq!(t[1]["target"], refused.as_str());
    assert_eq!(t[1]["outcome"], "not_ready");
    assert!(t[1]["attempts"].as_u64().unwrap() >= 2, "{v}");
    let f = &t[1]["last_failure"];
    assert_eq!(f["stage"], "tcp");
    assert_eq!(f["class"], "unavailable");
    assert!(f["message"].as_str().unwrap().contains("refused"), "{v}");
    assert!(
        f["hint"].as_str().unwrap().contains("nothing listens"),
        "{v}"
    );
}

/// Starts a wait that cannot end by itself and waits for its first failed
/// attempt (so the signal handlers are installed).
fn waiting() -> (Running, pool_testkit::ClosedPort) {
    let (p, refused) = refusing();
    let mut cmd = wait_for_db();
    cmd.args(["--timeout", "30", "--json", &refused]);
    let mut running = Running::spawn(cmd);
    running.wait_for_line("attempt 1", Duration::from_secs(10));
    (running, p)
}

#[test]
fn sigterm_while_waiting_exits_143_at_once() {
    let (running, _p) = waiting();
    let sent = std::time::Instant::now();
    running.signal(Signal::SIGTERM);
    let out = running.finish();
    out.expect_code(143).stderr_has("SIGTERM");
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    let v = out.json();
    assert_eq!(v["outcome"], "interrupted");
    assert_eq!(v["signal"], "SIGTERM");
    assert_eq!(v["targets"][0]["outcome"], "cancelled");
}

#[test]
fn sigint_while_waiting_exits_130() {
    let (running, _p) = waiting();
    let sent = std::time::Instant::now();
    running.signal(Signal::SIGINT);
    running.finish().expect_code(130);
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
}

#[test]
fn doctor_fails_on_a_closed_port_and_skips_the_layers_above() {
    let (_p, refused) = refusing();
    let port = refused.rsplit(':').next().unwrap();
    let pg = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let out = run(&["doctor", &pg]);
    out.expect_code(1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("postgres://postgres@127.0.0.1:"),
        "{}",
        out.stdout
    );
    assert!(lines[1].contains("[ ok ] dns"), "{}", out.stdout);
    assert!(
        lines[2].contains("[FAIL] tcp") && lines[2].contains("refused"),
        "{}",
        out.stdout
    );
    assert!(lines[3].contains("hint: nothing listens"), "{}", out.stdout);
    for layer in ["tls", "login", "query", "server", "capacity"] {
        assert!(
            out.stdout.contains(&format!("[skip] {layer}")),
            "{layer}: {}",
            out.stdout
        );
    }
    let out = run(&["doctor", "tcp://db-does-not-exist.invalid:5432"]);
    out.expect_code(1);
    assert!(out.stdout.contains("[FAIL] dns"), "{}", out.stdout);
    assert!(out.stdout.contains("[skip] tcp"), "{}", out.stdout);
    run(&["doctor", "nope://x"]).expect_code(2);
}
