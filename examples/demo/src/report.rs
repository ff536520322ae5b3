//! The live table and the summary.

use crate::load::{Summary, Totals};
use pool_core::PoolStatus;
use std::time::Duration;

/// `size 8 overflow 0 timeout 30s` for the banner.
pub fn sizing(s: &PoolStatus) -> String {
    format!(
        "{}: size {} overflow {} timeout {}s",
        s.name, s.pool_size, s.max_overflow, s.pool_timeout
    )
}

/// The table header.
pub fn header() {
    println!("{:>4} | {:>24} | {:>24}", "t", "PostgreSQL", "Redis");
    println!(
        "{:>4} | {:>7} {:>4} {:>11} | {:>7} {:>4} {:>11}",
        "s", "ops/s", "err", "open/use/wt", "ops/s", "err", "open/use/wt"
    );
}

/// One line per second.
pub fn row(t: Duration, pg: (Totals, &PoolStatus, &str), redis: (Totals, &PoolStatus, &str)) {
    let cell = |(d, s, _): &(Totals, &PoolStatus, &str)| {
        format!(
            "{:>7} {:>4} {:>11}",
            d.ok,
            d.errors,
            format!("{}/{}/{}", s.open, s.in_use, s.waiting)
        )
    };
    let events: Vec<String> = [("PostgreSQL", pg.2), ("Redis", redis.2)]
        .iter()
        .filter(|(_, e)| !e.is_empty())
        .map(|(n, e)| format!("{n} {e}"))
        .collect();
    println!(
        "{:>4} | {} | {}  {}",
        t.as_secs(),
        cell(&pg),
        cell(&redis),
        events.join(", ")
    );
}

/// The end-of-run summary.
pub fn summary(summaries: &[Summary]) {
    println!();
    println!("summary");
    for s in summaries {
        let c = &s.status.counters;
        println!(
            "  {}: {} ok, {} errors surfaced to callers, {} hung, {} panicked tasks",
            s.name, s.totals.ok, s.totals.errors, s.hung, s.panicked
        );
        match (s.down_for, s.recovered_after) {
            (Some(down), Some(rec)) => println!(
                "    restart took {} ms; first success {} ms after the server was back",
                down.as_millis(),
                rec.as_millis()
            ),
            (Some(down), None) => println!(
                "    restart took {} ms; NO success after the server was back",
                down.as_millis()
            ),
            _ => println!("    not restarted (external server)"),
        }
        println!(
            "    pool at the end: open {} idle {} in_use {} waiting {}; created {}, closed {} (broken {}, validation failed {}, overflow {}), timeouts {}",
            s.status.open,
            s.status.idle,
            s.status.in_use,
            s.status.waiting,
            c.created,
            c.closed.total(),
            c.closed.broken,
            c.closed.validation_failed,
            c.closed.overflow,
            c.timeouts,
        );
        for sample in &s.samples {
            println!("    error seen: {sample}");
        }
    }
}
