//! The TCP options both backends set on their sockets, derived from the
//! settings in one place.
//!
//! A peer that vanishes without closing (a cut network, a frozen server) is
//! noticed only by the kernel: keepalive probes catch it on an idle
//! connection, `TCP_USER_TIMEOUT` on one with data waiting to be
//! acknowledged. Without them a pooled connection can sit dead for the
//! kernel's defaults (over two hours of keepalive idle, about fifteen
//! minutes of retransmissions). Each driver has its own setters
//! (tokio-postgres `Config`, redis-rs `TcpSettings`); this module says what
//! they set.

use crate::PoolSettings;
use std::time::Duration;

/// Keepalive probing: the first probe after `idle` without traffic, then one
/// every `interval`; the kernel drops the connection after `retries`
/// unanswered probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (`tcp_keepalive`).
    pub idle: Duration,
    /// Time between probes: a third of `idle`, at least one second, so a
    /// dead peer is noticed about `2 × idle` after the last traffic.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub retries: u32,
}

/// What a backend sets on each new TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    /// Keepalive probing; `None` turns keepalive off.
    pub keepalive: Option<Keepalive>,
    /// `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged
    /// before the kernel drops the connection; `None` keeps the kernel's
    /// default.
    pub user_timeout: Option<Duration>,
}

impl TcpOptions {
    /// The options `settings` ask for (`tcp_keepalive`, `tcp_user_timeout`).
    pub fn from_settings(settings: &PoolSettings) -> TcpOptions {
        TcpOptions {
            keepalive: settings.tcp_keepalive.map(|idle| Keepalive {
                idle,
                interval: (idle / 3).max(Duration::from_secs(1)),
                retries: 3,
            }),
            user_timeout: settings.tcp_user_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_probe_every_third_of_the_idle_time() {
        let o = TcpOptions::from_settings(&PoolSettings::new("t"));
        assert_eq!(
            o.keepalive,
            Some(Keepalive {
                idle: Duration::from_secs(30),
                interval: Duration::from_secs(10),
                retries: 3,
            })
        );
        assert_eq!(o.user_timeout, Some(Duration::from_secs(15)));
    }

    #[test]
    fn short_idle_probes_at_most_once_a_second() {
        let mut s = PoolSettings::new("t");
        s.tcp_keepalive = Some(Duration::from_secs(2));
        let k = TcpOptions::from_settings(&s).keepalive.unwrap();
        assert_eq!(k.interval, Duration::from_secs(1));
    }

    #[test]
    fn off_when_the_settings_say_so() {
        let mut s = PoolSettings::new("t");
        s.tcp_keepalive = None;
        s.tcp_user_timeout = None;
        assert_eq!(
            TcpOptions::from_settings(&s),
            TcpOptions {
                keepalive: None,
                user_timeout: None
            }
        );
    }
}
