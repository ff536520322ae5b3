//! Bad input to the demo: exit 2 naming the variable, never a panic, never
//! a password; an unrelated non-UTF-8 variable is ignored.

use std::os::unix::ffi::OsStrExt;
use std::process::Command;

fn demo(extra: &[(&str, &std::ffi::OsStr)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    cmd.env_remove("DATABASE_URL").env_remove("REDIS_URL");
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
fn a_non_utf8_url_exits_2_naming_it_without_the_password() {
    let bad = std::ffi::OsStr::from_bytes(b"redis://:Zq-demo-\xff-Secret@127.0.0.1:1/0");
    let (code, text) = demo(&[("REDIS_URL", bad)]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("REDIS_URL is not valid UTF-8"), "{text}");
}

#[test]
fn bad_and_absurd_values_exit_2_naming_the_variable() {
    for (var, value) in [
        ("DEMO_TASKS", "0"),
        ("DEMO_SECONDS", "abc"),
        ("DB_POOL_SIZE", "4294967295"),
        ("REDIS_POOL_TIMEOUT", "1e-12"),
    ] {
        let (code, text) = demo(&[(var, std::ffi::OsStr::new(value))]);
        assert_eq!(code, Some(2), "{var}={value}: {text}");
        assert!(
            text.contains(var) && text.contains(value),
            "{var}={value}: {text}"
        );
    }
}

#[test]
fn an_unrelated_non_utf8_variable_is_ignored() {
    // With a bad DEMO_TASKS the run stops at its settings, after the
    // environment was read: the unrelated variable did not stop it first.
    let (code, text) = demo(&[
        ("UNRELATED_SECRET", std::ffi::OsStr::from_bytes(b"Zq-\xff")),
        ("DEMO_TASKS", std::ffi::OsStr::new("0")),
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("DEMO_TASKS"), "{text}");
}
