//! Exit codes, chosen to match the conventions of `timeout(1)` and shells.

/// Every target is ready (or, in `doctor`, every layer passed).
pub const READY: i32 = 0;
/// `--once`: a target is not ready; `doctor`: a layer failed.
pub const NOT_READY: i32 = 1;
/// Bad usage, bad option value or bad URL (clap uses 2 as well).
pub const USAGE: i32 = 2;
/// An error that waiting cannot fix (wrong password, unknown database).
pub const FATAL: i32 = 3;
/// The deadline passed (like `timeout(1)`).
pub const TIMEOUT: i32 = 124;
/// The command exists but cannot be executed (shell convention).
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found (shell convention).
pub const NOT_FOUND: i32 = 127;

/// The exit code for a signal (shell convention: 128 + N).
pub fn signal(signo: i32) -> i32 {
    128 + signo
}
