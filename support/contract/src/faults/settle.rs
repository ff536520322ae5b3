//! After the load: waiting, a few seconds at most, for a pool to get back
//! to its baseline and for the server to drop the sessions the pool
//! closed, so that what is left then is a leak, not a late close. The
//! rig and the soak both end this way.

use super::driver::{bounded_sample, Monitor, Snapshot, Target};
use std::time::{Duration, Instant};

/// How long each wait may take.
const WAIT: Duration = Duration::from_secs(3);

/// Polls the pool until nothing is in use or waiting and at most its
/// `pool_size` is open; the gauges then, and whether it got there.
pub async fn pool_baseline(target: &dyn Target) -> (Snapshot, bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = target.snapshot();
        let ok = s.in_use == 0 && s.waiting == 0 && s.open <= target.pool_size();
        if ok || Instant::now() >= deadline {
            return (s, ok);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Samples the server's sessions until they are at most the pool's
/// `pool_size`; the last sample the server answered.
pub async fn server_sessions(monitor: &mut dyn Monitor, target: &dyn Target) -> Option<usize> {
    let deadline = Instant::now() + WAIT;
    let mut sessions = None;
    loop {
        if let Some(n) = bounded_sample(monitor).await {
            sessions = Some(n);
            if n <= target.pool_size() as usize {
                return sessions;
            }
        }
        if Instant::now() >= deadline {
            return sessions;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
