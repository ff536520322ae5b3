//! One parser per kind of value, and the bounds every number must respect.
//!
//! The same bound functions check values read from the environment or a
//! file and values given to [`super::SettingsBuilder`], so a setting cannot
//! be accepted one way and refused the other.

use crate::error::SettingsError;
use std::time::Duration;

/// The most connections one pool may hold (`pool_size`, `max_overflow`).
/// Larger values are typos, and the engine reserves room per slot.
pub const MAX_CONNECTIONS: u32 = 10_000;
/// The shortest duration: timers are not finer than a millisecond.
pub const MIN_DURATION: Duration = Duration::from_millis(1);
/// The longest duration: a year. Longer values are typos.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// What a duration must be, for messages.
pub(crate) fn seconds_expected() -> String {
    format!(
        "a number of seconds from {} to {} (for example 30 or 2.5)",
        MIN_DURATION.as_secs_f64(),
        MAX_DURATION.as_secs()
    )
}

/// What a count from `min` must be, for messages.
pub(crate) fn count_expected(min: u32) -> String {
    format!("a whole number from {min} to {MAX_CONNECTIONS}")
}

/// A duration within [`MIN_DURATION`, `MAX_DURATION`].
pub(crate) fn duration_in_bounds(d: Duration) -> Result<Duration, String> {
    if (MIN_DURATION..=MAX_DURATION).contains(&d) {
        Ok(d)
    } else {
        Err(seconds_expected())
    }
}

/// A count within [`min`, `MAX_CONNECTIONS`].
pub(crate) fn count_in_bounds(n: u32, min: u32) -> Result<u32, String> {
    if (min..=MAX_CONNECTIONS).contains(&n) {
        Ok(n)
    } else {
        Err(count_expected(min))
    }
}

/// One raw value and where it came from (a variable, or a key in a file).
#[derive(Debug, Clone)]
pub struct Value {
    /// The variable (or `key in FILE`) that held it.
    pub origin: String,
    /// The text as given.
    pub text: String,
}

impl Value {
    /// An error naming the origin and the value.
    pub fn invalid(&self, expected: impl Into<String>) -> SettingsError {
        SettingsError::Invalid {
            variable: self.origin.clone(),
            value: self.text.clone(),
            expected: expected.into(),
        }
    }

    /// A whole number from `min` to [`MAX_CONNECTIONS`].
    pub fn count(&self, min: u32) -> Result<u32, SettingsError> {
        let n: u32 = self
            .text
            .trim()
            .parse()
            .map_err(|_| self.invalid(count_expected(min)))?;
        count_in_bounds(n, min).map_err(|e| self.invalid(e))
    }

    /// A count, or `off` (like `-1`) for "no limit".
    pub fn count_or(&self, off: i64, min: u32) -> Result<Option<u32>, SettingsError> {
        let expected = || format!("{}, or {off} for no limit", count_expected(min));
        let n: i64 = self
            .text
            .trim()
            .parse()
            .map_err(|_| self.invalid(expected()))?;
        if n == off {
            return Ok(None);
        }
        let n = u32::try_from(n).map_err(|_| self.invalid(expected()))?;
        count_in_bounds(n, min)
            .map(Some)
            .map_err(|_| self.invalid(expected()))
    }

    /// A number of seconds (float), finite.
    fn float(&self, expected: &str) -> Result<f64, SettingsError> {
        let v: f64 = self
            .text
            .trim()
            .parse()
            .map_err(|_| self.invalid(expected))?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.invalid(expected))
        }
    }

    /// Seconds within the duration bounds.
    pub fn seconds(&self) -> Result<Duration, SettingsError> {
        let expected = seconds_expected();
        let v = self.float(&expected)?;
        Duration::try_from_secs_f64(v)
            .ok()
            .and_then(|d| duration_in_bounds(d).ok())
            .ok_or_else(|| self.invalid(expected))
    }

    /// Seconds within the bounds, or exactly `0`.
    pub fn seconds_or_zero(&self) -> Result<Duration, SettingsError> {
        let expected = format!("0, or {}", seconds_expected());
        match self.float(&expected)? {
            0.0 => Ok(Duration::ZERO),
            _ => self.seconds().map_err(|_| self.invalid(expected)),
        }
    }

    /// Seconds within the bounds, or `off` (like `-1` or `0`) for "off".
    pub fn seconds_or_off(
        &self,
        off: f64,
        meaning: &str,
    ) -> Result<Option<Duration>, SettingsError> {
        let expected = format!("{}, or {off} {meaning}", seconds_expected());
        if self.float(&expected)? == off {
            return Ok(None);
        }
        self.seconds().map(Some).map_err(|_| self.invalid(expected))
    }

    /// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
    pub fn boolean(&self) -> Result<bool, SettingsError> {
        match self.text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(self.invalid("true or false (also 1/0, yes/no, on/off)")),
        }
    }

    /// The text trimmed, `None` when empty.
    pub fn text_or_none(&self) -> Option<String> {
        let text = self.text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    /// Non-empty text (trimmed).
    pub fn name(&self) -> Result<String, SettingsError> {
        let name = self.text.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(self.invalid("a non-empty name of at most 100 characters"));
        }
        Ok(name.to_string())
    }
}
