//! Bad input to the backend binary: a non-UTF-8 variable it reads, an
//! unrelated one, absurd sizes. Exit 2 naming the variable, never a panic,
//! never a password. (No server is needed: each run stops at its settings,
//! or, for the unrelated variable, at a refused startup wait.)

mod common;

use std::os::unix::ffi::OsStrExt;

const PASSWORD: &str = "Zq-backend-Secret";

fn run(extra: &[(&str, &std::ffi::OsStr)]) -> (Option<i32>, String) {
    let mut env = common::base_env();
    env.push(("STARTUP_TIMEOUT".into(), "1".into()));
    env.push((
        "DATABASE_URL".into(),
        format!("postgres://app:{PASSWORD}@127.0.0.1:1/app"),
    ));
    env.push(("REDIS_URL".into(), "redis://127.0.0.1:1/0".into()));
    let mut cmd = common::command(&env);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains("Zq"), "a secret leaked:\n{text}");
    (out.status.code(), text)
}

#[test]
fn a_non_utf8_database_url_exits_2_naming_it_without_the_password() {
    let bad = std::ffi::OsStr::from_bytes(b"postgres://app:Zq-backend-\xff-Secret@127.0.0.1:1/app");
    let (code, text) = run(&[("DATABASE_URL", bad)]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("DATABASE_URL is not valid UTF-8"), "{text}");
}

#[test]
fn an_unrelated_non_utf8_variable_is_ignored() {
    let bad = std::ffi::OsStr::from_bytes(b"Zq-Sekrit-\xff-Value");
    let (code, text) = run(&[("UNRELATED_SECRET", bad)]);
    // It goes on to the startup wait, which the refused ports end.
    assert_ne!(code, Some(2), "{text}");
    assert!(text.contains("waiting for the servers"), "{text}");
}

#[test]
fn absurd_sizes_and_durations_exit_2_naming_the_variable() {
    for (var, value) in [
        ("DB_POOL_SIZE", "4294967295"),
        ("REDIS_MAX_OVERFLOW", "100000"),
        ("DB_POOL_TIMEOUT", "1e-12"),
        ("REDIS_POOL_RECYCLE", "1e300"),
    ] {
        let (code, text) = run(&[(var, std::ffi::OsStr::new(value))]);
        assert_eq!(code, Some(2), "{var}={value}: {text}");
        assert!(
            text.contains(var) && text.contains(value),
            "{var}={value}: {text}"
        );
    }
}
