//! Replacing this process with the command.
//!
//! `exec` keeps the PID, so in a container the command becomes PID 1 and
//! receives `docker stop`'s SIGTERM itself, and its exit code is the
//! container's. Nothing of wait-for-db stays behind: no parent that would
//! have to forward signals or reap zombies.

use crate::exit;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Execs `argv` (`argv[0]` looked up in `PATH` unless it contains a `/`).
/// Returns only when the exec failed: the exit code to use (127 not found,
/// 126 not executable) and why, in words.
pub fn exec(argv: &[String]) -> (i32, String) {
    let Some((program, args)) = argv.split_first() else {
        return (exit::USAGE, "no command given after --".into());
    };
    let err = Command::new(program).args(args).exec();
    explain(program, &err)
}

/// The exit code and message for a failed exec of `program`.
pub fn explain(program: &str, err: &io::Error) -> (i32, String) {
    let searched = if program.contains('/') {
        String::new()
    } else {
        format!(
            " (searched PATH={})",
            std::env::var("PATH").unwrap_or_default()
        )
    };
    match err.kind() {
        io::ErrorKind::NotFound => (
            exit::NOT_FOUND,
            format!("cannot run '{program}': command not found{searched}: {err}"),
        ),
        io::ErrorKind::PermissionDenied => (
            exit::NOT_EXECUTABLE,
            format!(
                "cannot run '{program}': permission denied ({err}): the file is not executable \
                 (chmod +x it, or COPY --chmod=755 in the Dockerfile), is a directory, or sits on a noexec mount"
            ),
        ),
        _ => (
            exit::NOT_EXECUTABLE,
            format!("cannot run '{program}': {err} (wrong architecture or a broken #! interpreter line?)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_shell_exit_codes() {
        let (code, msg) = explain("nope", &io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(code, 127);
        assert!(msg.contains("not found") && msg.contains("PATH="), "{msg}");
        let (code, msg) = explain("./x", &io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(code, 126);
        assert!(
            msg.contains("not executable") && !msg.contains("PATH="),
            "{msg}"
        );
    }
}
