//! The Markdown tables `docs/benchmarks.md` quotes, and the facts drawn
//! from them for the goals. Ratios are taken between rows of the same run.

use super::measure::{Measured, Plan, TimeoutMeasured};
use super::probe::tokio_workers;
use super::workloads::names;
use crate::driver::quantile;
use std::fmt::Write as _;
use std::time::Duration;

/// A duration for tables: µs below 1 ms, ms below 1 s, else s.
pub fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10.0 {
        format!("{us:.1} µs")
    } else if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// The median over rounds of `a`'s throughput ÷ `b`'s in the same round
/// (rows run back to back within a round, so a burst of load from other
/// processes mostly hits one round of both, and the median drops it).
pub fn paired_ratio(a: &Measured, b: &Measured) -> f64 {
    median_ratio(&a.round_rates, &b.round_rates)
}

/// The median of `a[i] / b[i]`.
pub fn median_ratio(a: &[f64], b: &[f64]) -> f64 {
    let mut r: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, y)| **y > 0.0)
        .map(|(x, y)| x / y)
        .collect();
    if r.is_empty() {
        return f64::NAN;
    }
    r.sort_by(f64::total_cmp);
    let n = r.len();
    if n % 2 == 1 {
        r[n / 2]
    } else {
        (r[n / 2 - 1] + r[n / 2]) / 2.0
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// Process CPU time per operation.
fn cpu_per_op(m: &Measured) -> Duration {
    if m.stats.ops == 0 {
        return Duration::ZERO;
    }
    m.cpu / m.stats.ops.min(u64::from(u32::MAX)) as u32
}

/// Facts drawn from an exhaustion table, for the goals.
#[derive(Debug, Clone)]
pub struct ExhaustionRow {
    /// Row name.
    pub name: String,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Throughput / the no-pool row's.
    pub vs_ceiling: f64,
    /// Throughput / the raw pool's.
    pub vs_raw: f64,
    /// Checkout wait p50, p99, max.
    pub wait: [Duration; 3],
    /// `tasks` ÷ throughput: what a FIFO queue would make each task wait.
    pub fifo_ideal: Duration,
    /// Worst round's tasks with at most one checkout.
    pub starved: usize,
    /// Checkout waits longer than 3x the FIFO ideal.
    pub over_3x: usize,
    /// Checkout waits measured.
    pub waits: usize,
    /// Operations per second of each round.
    pub round_rates: Vec<f64>,
}

/// The exhaustion table for one backend and task count. `raw` and
/// `ceiling` name the rows the ratios are taken against.
pub fn exhaustion_table(
    title: &str,
    rows: &mut [Measured],
    raw: &str,
    ceiling: &str,
    plan: &Plan,
) -> (String, Vec<ExhaustionRow>) {
    let find = |name: &str| rows.iter().find(|m| m.name == name).cloned();
    let raw_row = find(raw);
    let ceiling_row = find(ceiling);
    let vs = |m: &Measured, other: &Option<Measured>| {
        other
            .as_ref()
            .map(|o| paired_ratio(m, o))
            .unwrap_or(f64::NAN)
    };
    let mut facts = Vec::new();
    let mut t = String::new();
    let _ = writeln!(t, "### {title}\n");
    let _ = writeln!(
        t,
        "| subject | ops/s | vs no pool | vs {raw} | wait p50 | wait p99 | wait p99.9 | wait max | max / FIFO ideal | waits > 3x ideal | starved | pings / checkout | client CPU / op |"
    );
    let _ = writeln!(
        t,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in rows.iter_mut() {
        let rate = m.stats.ops_per_sec();
        let tasks = m.stats.tasks;
        let wait = [
            m.stats.wait_quantile(0.5),
            m.stats.wait_quantile(0.99),
            m.stats.wait_quantile(1.0),
        ];
        let p999 = m.stats.wait_quantile(0.999);
        let fifo_ideal = Duration::from_secs_f64(tasks as f64 / rate.max(1e-9));
        let bound = 3 * fifo_ideal.as_nanos() as u64;
        let over_3x = m.stats.waits_ns.iter().filter(|&&w| w > bound).count();
        let row = ExhaustionRow {
            name: m.name.clone(),
            ops_per_sec: rate,
            vs_ceiling: vs(m, &ceiling_row),
            vs_raw: vs(m, &raw_row),
            wait,
            fifo_ideal,
            starved: m.stats.starved,
            over_3x,
            waits: m.stats.waits_ns.len(),
            round_rates: m.round_rates.clone(),
        };
        let pings = m
            .pings_per_checkout
            .map(|p| format!("{p:.3}"))
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            t,
            "| {} | {} | {:.2}x | {:.2}x | {} | {} | {} | {} | {:.1}x | {} of {} | {} of {} | {} | {} |",
            m.name,
            fmt_rate(rate),
            row.vs_ceiling,
            row.vs_raw,
            fmt_dur(wait[0]),
            fmt_dur(wait[1]),
            fmt_dur(p999),
            fmt_dur(wait[2]),
            ratio(wait[2].as_secs_f64(), fifo_ideal.as_secs_f64()),
            row.over_3x,
            row.waits,
            row.starved,
            tasks,
            pings,
            fmt_dur(cpu_per_op(m)),
        );
        facts.push(row);
    }
    let _ = writeln!(
        t,
        "\n{} interleaved rounds of {} per row; ops/s over all rounds; ratios = median over rounds of the ratio within a round. FIFO ideal = tasks ÷ the row's throughput (= tasks/connections × time per operation). Starved = tasks with ≤ 1 checkout in one {} window (worst round). Client CPU = this process's CPU time (pool, driver, client library; not the server) ÷ operations.",
        plan.rounds,
        fmt_dur(plan.window),
        fmt_dur(plan.window),
    );
    (t, facts)
}

/// The validation-cost table: rows × task counts, throughput relative to
/// the first row (pre-ping off).
pub fn validation_table(title: &str, by_tasks: &mut [(usize, Vec<Measured>)]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "### {title}\n");
    let mut header = String::from("| setting |");
    let mut rule = String::from("|---|");
    for (tasks, _) in by_tasks.iter() {
        let _ = write!(
            header,
            " {tasks} task{s}: ops/s | vs pre-ping off | pings / checkout |",
            s = if *tasks == 1 { "" } else { "s" }
        );
        rule.push_str("---:|---:|---:|");
    }
    let _ = writeln!(t, "{header}\n{rule}");
    let names: Vec<String> = by_tasks
        .first()
        .map(|(_, rows)| rows.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        let mut line = format!("| {name} |");
        for (_, rows) in by_tasks.iter() {
            let m = &rows[i];
            let rate = m.stats.ops_per_sec();
            let pings = m
                .pings_per_checkout
                .map(|p| format!("{p:.3}"))
                .unwrap_or_else(|| "–".into());
            let _ = write!(
                line,
                " {} | {:.2}x | {} |",
                fmt_rate(rate),
                paired_ratio(m, &rows[0]),
                pings
            );
        }
        let _ = writeln!(t, "{line}");
    }
    t
}

/// Ours / deadpool in the bookkeeping workload, for one task count.
#[derive(Debug, Clone, Copy)]
pub struct BookkeepingFacts {
    /// Tasks.
    pub tasks: usize,
    /// Our time per checkout + return ÷ raw deadpool's (no timeout).
    pub vs_deadpool: f64,
    /// The same ÷ deadpool with a 30 s `wait_timeout`.
    pub vs_deadpool_timeout: f64,
    /// Our time with every upkeep feature on ÷ with them off.
    pub upkeep_vs_off: f64,
}

/// The bookkeeping table: wall time per checkout + return, and the ratio to
/// deadpool's (without and with a wait timeout), for each task count.
pub fn bookkeeping_table(by_tasks: &[(usize, Vec<Measured>)]) -> (String, Vec<BookkeepingFacts>) {
    let mut t = String::new();
    let mut facts = Vec::new();
    let _ = writeln!(
        t,
        "### Pool bookkeeping alone (counter connection, no I/O), pool of 8\n"
    );
    let mut header = String::from("| pool |");
    let mut rule = String::from("|---|");
    for (tasks, _) in by_tasks {
        let _ = write!(
            header,
            " {tasks} task{s}: ns / op | vs deadpool | vs deadpool (wait_timeout) |",
            s = if *tasks == 1 { "" } else { "s" }
        );
        rule.push_str("---:|---:|---:|");
    }
    let _ = writeln!(t, "{header}\n{rule}");
    let row_names: Vec<String> = by_tasks
        .first()
        .map(|(_, rows)| rows.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    // Time ratio = the other's throughput ÷ ours, paired by round.
    let vs = |rows: &[Measured], m: &Measured, name: &str| {
        rows.iter()
            .find(|o| o.name == name)
            .map(|o| paired_ratio(o, m))
            .unwrap_or(f64::NAN)
    };
    for (i, name) in row_names.iter().enumerate() {
        let mut line = format!("| {name} |");
        for (tasks, rows) in by_tasks {
            let m = &rows[i];
            let dp = vs(rows, m, names::DEADPOOL_COUNTER);
            let dpt = vs(rows, m, names::DEADPOOL_COUNTER_TIMEOUT);
            let ns = m.stats.ns_per_op();
            if m.name == names::OURS_COUNTER {
                let upkeep_vs_off = rows
                    .iter()
                    .find(|o| o.name == names::OURS_COUNTER_UPKEEP)
                    .map(|o| paired_ratio(m, o))
                    .unwrap_or(f64::NAN);
                facts.push(BookkeepingFacts {
                    tasks: *tasks,
                    vs_deadpool: dp,
                    vs_deadpool_timeout: dpt,
                    upkeep_vs_off,
                });
            }
            let _ = write!(line, " {ns:.0} | {dp:.2}x | {dpt:.2}x |");
        }
        let _ = writeln!(t, "{line}");
    }
    let pings: Vec<String> = by_tasks
        .iter()
        .filter_map(|(tasks, rows)| {
            rows.iter()
                .find(|m| m.name == names::OURS_COUNTER)
                .and_then(|m| m.pings_per_checkout)
                .map(|p| format!("{p:.3} with {tasks} task(s)"))
        })
        .collect();
    let _ = writeln!(
        t,
        "\nOur pool's validation pings per checkout: {}.",
        pings.join(", ")
    );
    let _ = writeln!(
        t,
        "\nns / op = wall time ÷ operations (checkout + return) over all rounds and tasks; ratios = median over rounds of the ratio within a round; measured on the {}-worker runtime, no clock reads by the driver; 1 task: back to back; more tasks: each holds its connection across one `yield_now()` so that tasks contend.",
        tokio_workers()
    );
    (t, facts)
}

/// Lateness facts of one timeout row.
#[derive(Debug, Clone)]
pub struct TimeoutFacts {
    /// Row name.
    pub name: String,
    /// Tries that returned before `T`.
    pub early: usize,
    /// Lateness p50, p99, max (0 for early tries).
    pub late: [Duration; 3],
    /// Tries that did not time out.
    pub errors: usize,
}

/// The timeout-precision table.
pub fn timeout_table(t_out: Duration, rows: &[TimeoutMeasured]) -> (String, Vec<TimeoutFacts>) {
    let mut t = String::new();
    let mut facts = Vec::new();
    let _ = writeln!(
        t,
        "### Timeout precision: pool of 8, all held, checkout timeout T = {}\n",
        fmt_dur(t_out)
    );
    let _ = writeln!(
        t,
        "| pool | tries | early (< T) | late p50 | late p99 | late max | not timed out |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|");
    for m in rows {
        let early = m.took.iter().filter(|d| **d < t_out).count();
        let mut late: Vec<u64> = m
            .took
            .iter()
            .map(|d| d.saturating_sub(t_out).as_nanos() as u64)
            .collect();
        let q = [
            quantile(&mut late, 0.5),
            quantile(&mut late, 0.99),
            quantile(&mut late, 1.0),
        ];
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} |",
            m.name,
            m.took.len(),
            early,
            fmt_dur(q[0]),
            fmt_dur(q[1]),
            fmt_dur(q[2]),
            m.errors.len()
        );
        facts.push(TimeoutFacts {
            name: m.name.clone(),
            early,
            late: q,
            errors: m.errors.len(),
        });
    }
    (t, facts)
}

/// One goal's verdict.
#[derive(Debug, Clone)]
pub struct Goal {
    /// What is checked.
    pub what: String,
    /// What was measured.
    pub measured: String,
    /// The target.
    pub target: String,
    /// Met or missed; `None` for a figure shown for reference.
    pub met: Option<bool>,
}

/// The goals table.
pub fn goals_table(goals: &[Goal]) -> String {
    let mut t = String::from("| goal | measured | target | result |\n|---|---:|---:|---|\n");
    for g in goals {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} |",
            g.what,
            g.measured,
            g.target,
            match g.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "(reference)",
            }
        );
    }
    t
}

/// What the TLS table found for one raw subject: ours ÷ it, in plaintext
/// and over TLS, each the median of the per-round ratios of the same run.
#[derive(Debug, Clone)]
pub struct TlsFacts {
    /// The raw subject.
    pub raw: String,
    /// Ours ÷ it, plaintext.
    pub plain: f64,
    /// Ours ÷ it, TLS.
    pub tls: f64,
}

/// The TLS table: `rows` holds n subjects in plaintext, then the same n
/// over TLS, ours first in each half. One line per subject: throughput
/// both ways, TLS ÷ plaintext, and ours ÷ the subject both ways.
pub fn tls_table(title: &str, rows: &[Measured]) -> (String, Vec<TlsFacts>) {
    let n = rows.len() / 2;
    let mut t = String::new();
    let _ = writeln!(t, "### {title}\n");
    let _ = writeln!(
        t,
        "| subject | plaintext ops/s | TLS ops/s | TLS ÷ plaintext | ours ÷ it, plaintext | ours ÷ it, TLS |\n|---|---:|---:|---:|---:|---:|"
    );
    let mut facts = Vec::new();
    for i in 0..n {
        let (plain, tls) = (&rows[i], &rows[n + i]);
        let (vs_plain, vs_tls) = (paired_ratio(&rows[0], plain), paired_ratio(&rows[n], tls));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.2}x | {} | {} |",
            plain.name,
            fmt_rate(plain.stats.ops_per_sec()),
            fmt_rate(tls.stats.ops_per_sec()),
            paired_ratio(tls, plain),
            if i == 0 {
                "–".into()
            } else {
                format!("{vs_plain:.2}x")
            },
            if i == 0 {
                "–".into()
            } else {
                format!("{vs_tls:.2}x")
            },
        );
        if i > 0 {
            facts.push(TlsFacts {
                raw: plain.name.clone(),
                plain: vs_plain,
                tls: vs_tls,
            });
        }
    }
    (t, facts)
}
