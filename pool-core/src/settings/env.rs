//! Reading the environment without panicking.
//!
//! `std::env::vars()` (and the `config` crate's `Environment`, which calls
//! it) panics on any variable that is not UTF-8, even one the program never
//! reads. Here only the variables a pool reads are looked at: any other is
//! ignored whatever its bytes, and a non-UTF-8 value in one we read is an
//! error naming it, with the value shown lossily and redacted.

use crate::error::SettingsError;
use crate::redact::redact_url;
use std::collections::HashMap;
use std::ffi::OsString;

/// The text of the variables for which `wanted(name)` is true.
pub fn read(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    wanted: impl Fn(&str) -> bool,
) -> Result<HashMap<String, String>, SettingsError> {
    let mut out = HashMap::new();
    for (name, value) in vars {
        // A name that is not UTF-8 cannot be one of ours.
        let Some(name) = name.to_str().filter(|n| wanted(n)) else {
            continue;
        };
        match value.into_string() {
            Ok(text) => {
                out.insert(name.to_string(), text);
            }
            Err(raw) => {
                return Err(SettingsError::NotUtf8 {
                    variable: name.to_string(),
                    value: redact_url(&raw.to_string_lossy()),
                })
            }
        }
    }
    Ok(out)
}

/// One variable of the process environment, read safely: `Ok(None)` when
/// unset, an error naming it when not UTF-8.
pub fn var(name: &str) -> Result<Option<String>, SettingsError> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|raw| SettingsError::NotUtf8 {
                variable: name.to_string(),
                value: redact_url(&raw.to_string_lossy()),
            }),
    }
}
