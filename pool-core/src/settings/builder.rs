//! Building [`PoolSettings`] in code, checked by the same bounds as the
//! environment.
//!
//! ```
//! use pool_core::settings::{Overflow, PoolSettings};
//! use std::time::Duration;
//! let settings = PoolSettings::builder()
//!     .name("orders")
//!     .url("postgres://app:secret@db/orders")
//!     .pool_size(8)
//!     .max_overflow(Overflow::Limited(4))
//!     .pool_timeout(Duration::from_secs(5))
//!     .build()
//!     .unwrap();
//! assert_eq!(settings.max_size(), Some(12));
//! assert!(PoolSettings::builder().pool_size(0).build().is_err());
//! ```

use super::{validate, Overflow, PoolSettings};
use crate::error::SettingsError;
use crate::redact::SecretUrl;
use crate::RetryPolicy;
use std::time::Duration;

/// A builder of [`PoolSettings`]; starts from the defaults of the variable
/// table. Backend crates give one that knows their URL variable
/// (`pool_postgres::settings_builder()`).
#[derive(Debug, Clone)]
pub struct SettingsBuilder {
    settings: PoolSettings,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty => $($field:ident).+) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.settings.$($field).+ = value.into();
            self
        }
    };
}

impl SettingsBuilder {
    /// The defaults, pool named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        SettingsBuilder {
            settings: PoolSettings::new(name),
        }
    }

    /// The variable named when the URL is missing or bad (the backend's:
    /// `DATABASE_URL`, `REDIS_URL`).
    pub fn url_var(mut self, var: impl Into<String>) -> Self {
        self.settings.url_var = var.into();
        self
    }

    /// Where to connect (any form of [`crate::url`]); shown redacted.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.settings.url = Some(SecretUrl::new(url));
        self
    }

    setter!(/// The pool's name in logs, metrics and errors.
        name: &str => name);
    setter!(/// Connections kept open (1 to 10000).
        pool_size: u32 => pool_size);
    setter!(/// Extra connections under load.
        max_overflow: Overflow => max_overflow);
    setter!(/// Bound on a whole checkout.
        pool_timeout: Duration => pool_timeout);
    setter!(/// Age after which a connection is replaced at checkout; `None` = never.
        pool_recycle: Option<Duration> => pool_recycle);
    setter!(/// Validate idle connections before handing them out.
        pre_ping: bool => pre_ping);
    setter!(/// No ping within this long of a proven use; zero = always ping.
        pre_ping_window: Duration => pre_ping_window);
    setter!(/// Bound on one validation ping.
        validation_timeout: Duration => validation_timeout);
    setter!(/// Bound on one connection attempt.
        connect_timeout: Duration => connect_timeout);
    setter!(/// Redis: bound on each command's answer (plus a blocking command's own timeout); `None` = no limit.
        command_timeout: Option<Duration> => command_timeout);
    setter!(/// Idle time before TCP keepalive probes; `None` = off.
        tcp_keepalive: Option<Duration> => tcp_keepalive);
    setter!(/// `TCP_USER_TIMEOUT`; `None` = off.
        tcp_user_timeout: Option<Duration> => tcp_user_timeout);
    setter!(/// Backoff between connect attempts.
        retry: RetryPolicy => retry);
    setter!(/// Fail checkouts at once while the server is down.
        fail_fast: bool => fail_fast);
    setter!(/// Checkouts slower than this are logged.
        slow_checkout: Duration => slow_checkout);
    setter!(/// Connections the housekeeper keeps idle (at most `pool_size`).
        min_idle: u32 => min_idle);
    setter!(/// Idle connections above `min_idle` unused this long are closed; `None` = off.
        idle_timeout: Option<Duration> => idle_timeout);
    setter!(/// Idle connections unused this long are pinged; `None` = off.
        keepalive: Option<Duration> => keepalive);
    setter!(/// Checkouts held longer are reported as leaks; `None` = off.
        leak_threshold: Option<Duration> => leak_threshold);
    setter!(/// What a returned connection goes through before its next use.
        reset_on_return: super::ResetOnReturn => reset_on_return);
    setter!(/// The longest time between housekeeping runs.
        housekeeping_period: Duration => housekeeping_period);

    /// Checks every bound (the same as for variables) and returns the
    /// settings; an error names the setting and the value.
    pub fn build(self) -> Result<PoolSettings, SettingsError> {
        validate(&self.settings, &|key| format!("{key} (set in code)"))?;
        Ok(self.settings)
    }
}
