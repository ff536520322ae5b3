//! The workloads and their Markdown tables.
//!
//! Every workload measures its rows (pools, no-pool ceiling) in interleaved
//! rounds (A B C, A B C, ...) on the same runtime against the same server,
//! so that noise from the rest of the machine hits every row alike; tables
//! give ratios between rows of the same run.

use crate::driver::{quantile, run, RunStats, Stop, Subject};
use crate::subjects::{
    Bb8CounterPool, Bb8Redis, DeadpoolCounter, DeadpoolPg, Hold, NoPoolPg, NoPoolRedis,
    OursCounter, OursPg, OursRedis, CONNECTIONS,
};
use deadpool_postgres::RecyclingMethod;
use pool_core::PoolCounters;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A boxed, sendable future.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

type RunFn = dyn Fn(usize, Stop, bool) -> BoxFut<RunStats> + Send + Sync;
type CountersFn = dyn Fn() -> PoolCounters + Send + Sync;

/// One row of a workload: a named subject.
#[derive(Clone)]
pub struct Row {
    /// The name shown in tables and bench ids.
    pub name: String,
    /// A short id for criterion (`ours`, `deadpool-fast`, ...).
    pub id: String,
    run: Arc<RunFn>,
    counters: Option<Arc<CountersFn>>,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").field("name", &self.name).finish()
    }
}

impl Row {
    /// A row running `subject`.
    pub fn new<S: Subject>(id: &str, name: &str, subject: S) -> Row {
        let subject = Arc::new(subject);
        Row {
            name: name.into(),
            id: id.into(),
            run: Arc::new(move |tasks, stop, record| {
                Box::pin(run(subject.clone(), tasks, stop, record))
            }),
            counters: None,
        }
    }

    /// Also read this pool's counters (pings per checkout).
    fn with_counters(mut self, f: impl Fn() -> PoolCounters + Send + Sync + 'static) -> Row {
        self.counters = Some(Arc::new(f));
        self
    }

    /// One run of the driver on this row.
    pub fn run(&self, tasks: usize, stop: Stop, record: bool) -> BoxFut<RunStats> {
        (self.run)(tasks, stop, record)
    }
}

/// How long and how often each row is measured.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One measurement window.
    pub window: Duration,
    /// Interleaved rounds (each row runs `rounds` windows).
    pub rounds: usize,
    /// A run before the rounds that is not counted (opens the connections).
    pub warmup: Duration,
    /// Timed-out checkouts per pool in the timeout workload.
    pub timeout_tries: usize,
    /// `pool_timeout` in the timeout workload.
    pub timeout: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            window: Duration::from_millis(500),
            rounds: 8,
            warmup: Duration::from_millis(300),
            timeout_tries: 50,
            timeout: Duration::from_millis(50),
        }
    }
}

/// CPU time this process has used (all threads, user + system), from
/// `/proc/self/stat` (USER_HZ = 100 ticks per second on Linux).
pub fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The 1-minute load average, for the report's header.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// A row's result.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The row's name.
    pub name: String,
    /// Everything the driver saw, all rounds merged.
    pub stats: RunStats,
    /// CPU time of this process (pool, driver, client library) during the
    /// rounds; the server's is not included.
    pub cpu: Duration,
    /// Operations per second of each round, in order.
    pub round_rates: Vec<f64>,
    /// Validation pings per checkout during the rounds (our pools only).
    pub pings_per_checkout: Option<f64>,
}

/// Measures `rows` with `tasks` tasks each: a warm-up, then `plan.rounds`
/// interleaved windows.
pub async fn measure(rows: &[Row], tasks: usize, plan: &Plan, record: bool) -> Vec<Measured> {
    for row in rows {
        row.run(tasks, Stop::Window(plan.warmup), false).await;
    }
    let before: Vec<_> = rows
        .iter()
        .map(|r| r.counters.as_ref().map(|f| f()))
        .collect();
    let mut stats = vec![RunStats::default(); rows.len()];
    let mut cpu = vec![Duration::ZERO; rows.len()];
    let mut rates = vec![Vec::new(); rows.len()];
    for _ in 0..plan.rounds.max(1) {
        for (i, row) in rows.iter().enumerate() {
            let c0 = process_cpu();
            let one = row.run(tasks, Stop::Window(plan.window), record).await;
            cpu[i] += process_cpu().saturating_sub(c0);
            rates[i].push(one.ops_per_sec());
            stats[i].merge(one);
        }
    }
    rows.iter()
        .zip(stats)
        .zip(before)
        .zip(cpu)
        .zip(rates)
        .map(|((((row, stats), before), cpu), round_rates)| {
            let pings = match (&row.counters, before) {
                (Some(f), Some(b)) => {
                    let a = f();
                    let checkouts = a.checkouts - b.checkouts;
                    (checkouts > 0)
                        .then(|| (a.validations - b.validations) as f64 / checkouts as f64)
                }
                _ => None,
            };
            if let Some(e) = &stats.first_error {
                eprintln!("warning: {}: {} errors, first: {e}", row.name, stats.errors);
            }
            Measured {
                name: row.name.clone(),
                stats,
                cpu,
                round_rates,
                pings_per_checkout: pings,
            }
        })
        .collect()
}

// ------------------------------------------------------------------- rows

/// Row names, stable: the docs and the goal checks refer to them.
pub mod names {
    /// Our PostgreSQL pool, default settings (pre-ping on, 0.5 s window).
    pub const OURS_PG: &str = "ours (pool-postgres)";
    /// Raw deadpool-postgres, `RecyclingMethod::Fast`.
    pub const DEADPOOL_FAST: &str = "deadpool-postgres Fast";
    /// Raw deadpool-postgres, `RecyclingMethod::Verified`.
    pub const DEADPOOL_VERIFIED: &str = "deadpool-postgres Verified";
    /// 8 dedicated tokio-postgres clients.
    pub const NO_POOL_PG: &str = "no pool (8 dedicated clients)";
    /// Our Redis pool, default settings.
    pub const OURS_REDIS: &str = "ours (pool-redis)";
    /// Raw bb8-redis, defaults (`test_on_check_out` = true).
    pub const BB8_REDIS: &str = "bb8-redis (defaults: PING on checkout)";
    /// 8 dedicated multiplexed connections.
    pub const NO_POOL_REDIS: &str = "no pool (8 dedicated connections)";
    /// Our engine around a counter.
    pub const OURS_COUNTER: &str = "ours (pool-core)";
    /// Raw deadpool around a counter.
    pub const DEADPOOL_COUNTER: &str = "deadpool";
    /// Raw deadpool around a counter with a 30 s `wait_timeout` (as our
    /// pool always has a `pool_timeout`).
    pub const DEADPOOL_COUNTER_TIMEOUT: &str = "deadpool (wait_timeout 30 s)";
    /// Raw bb8 around a counter, no checkout test.
    pub const BB8_COUNTER: &str = "bb8 (test_on_check_out = false)";
    /// Raw bb8 around a counter, with its default checkout test.
    pub const BB8_COUNTER_TESTED: &str = "bb8 (test_on_check_out = true)";
}

/// The PostgreSQL exhaustion rows: ours, deadpool Fast and Verified, no pool.
pub async fn pg_rows(url: &str) -> Vec<Row> {
    let ours = OursPg::new(url, |_| {});
    let pool = ours.0.clone();
    vec![
        Row::new("ours", names::OURS_PG, ours).with_counters(move || pool.status().counters),
        Row::new(
            "deadpool-fast",
            names::DEADPOOL_FAST,
            DeadpoolPg::new(url, RecyclingMethod::Fast),
        ),
        Row::new(
            "deadpool-verified",
            names::DEADPOOL_VERIFIED,
            DeadpoolPg::new(url, RecyclingMethod::Verified),
        ),
        Row::new(
            "no-pool",
            names::NO_POOL_PG,
            NoPoolPg::connect(url).await.expect("connect to PostgreSQL"),
        ),
    ]
}

/// The Redis exhaustion rows: ours, bb8-redis (defaults), no pool.
pub async fn redis_rows(url: &str) -> Vec<Row> {
    let ours = OursRedis::new(url, |_| {});
    let pool = ours.0.clone();
    vec![
        Row::new("ours", names::OURS_REDIS, ours).with_counters(move || pool.status().counters),
        Row::new("bb8", names::BB8_REDIS, Bb8Redis::new(url, true).await),
        Row::new(
            "no-pool",
            names::NO_POOL_REDIS,
            NoPoolRedis::connect(url).await.expect("connect to Redis"),
        ),
    ]
}

/// The three validation settings of our pools.
const VALIDATION: [(&str, &str, Option<Duration>); 3] = [
    ("pre-ping-off", "ours, pre-ping off", None),
    (
        "window-default",
        "ours, pre-ping on, 0.5 s window (default)",
        Some(Duration::from_millis(500)),
    ),
    (
        "window-0",
        "ours, pre-ping on, window 0 (ping every checkout)",
        Some(Duration::ZERO),
    ),
];

/// Validation rows for PostgreSQL: our pool with pre-ping off, on with the
/// default window, on with window 0; raw deadpool Fast / Verified for
/// reference.
pub fn pg_validation_rows(url: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for (id, name, window) in VALIDATION {
        let ours = OursPg::new(url, |s| match window {
            None => s.pre_ping = false,
            Some(w) => s.pre_ping_window = w,
        });
        let pool = ours.0.clone();
        rows.push(Row::new(id, name, ours).with_counters(move || pool.status().counters));
    }
    rows.push(Row::new(
        "deadpool-fast",
        names::DEADPOOL_FAST,
        DeadpoolPg::new(url, RecyclingMethod::Fast),
    ));
    rows.push(Row::new(
        "deadpool-verified",
        names::DEADPOOL_VERIFIED,
        DeadpoolPg::new(url, RecyclingMethod::Verified),
    ));
    rows
}

/// Validation rows for Redis: our pool in the three settings; raw bb8-redis
/// without and with its checkout `PING` for reference.
pub async fn redis_validation_rows(url: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for (id, name, window) in VALIDATION {
        let ours = OursRedis::new(url, |s| match window {
            None => s.pre_ping = false,
            Some(w) => s.pre_ping_window = w,
        });
        let pool = ours.0.clone();
        rows.push(Row::new(id, name, ours).with_counters(move || pool.status().counters));
    }
    rows.push(Row::new(
        "bb8-untested",
        "bb8-redis (test_on_check_out = false)",
        Bb8Redis::new(url, false).await,
    ));
    rows.push(Row::new(
        "bb8",
        names::BB8_REDIS,
        Bb8Redis::new(url, true).await,
    ));
    rows
}

/// Bookkeeping rows (a free counter connection): ours, deadpool (without and
/// with a wait timeout), bb8 without and with its checkout test.
pub async fn bookkeeping_rows(hold: Hold) -> Vec<Row> {
    vec![
        {
            let ours = OursCounter::new(hold, |_| {});
            let pool = ours.0.clone();
            Row::new("ours", names::OURS_COUNTER, ours)
                .with_counters(move || pool.status().counters)
        },
        Row::new(
            "deadpool",
            names::DEADPOOL_COUNTER,
            DeadpoolCounter::new(hold, None),
        ),
        Row::new(
            "deadpool-timeout",
            names::DEADPOOL_COUNTER_TIMEOUT,
            DeadpoolCounter::new(hold, Some(Duration::from_secs(30))),
        ),
        Row::new(
            "bb8",
            names::BB8_COUNTER,
            Bb8CounterPool::new(hold, false, None).await,
        ),
        Row::new(
            "bb8-tested",
            names::BB8_COUNTER_TESTED,
            Bb8CounterPool::new(hold, true, None).await,
        ),
    ]
}

// ---------------------------------------------------------------- timeout

/// A pool whose checkouts time out after `T`, for the timeout workload.
#[derive(Clone)]
pub struct TimeoutRow {
    /// The name shown.
    pub name: String,
    /// A short id for criterion.
    pub id: String,
    try_once: Arc<dyn Fn() -> BoxFut<Result<Duration, String>> + Send + Sync>,
    /// Dropping the last clone lets the holder task return the connections.
    _release: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for TimeoutRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutRow")
            .field("name", &self.name)
            .finish()
    }
}

impl TimeoutRow {
    /// Checks out every connection of `subject` and keeps them; each try is
    /// then one checkout that must time out.
    pub async fn new<S: Subject>(id: &str, name: &str, subject: S) -> Result<TimeoutRow, String> {
        let subject = Arc::new(subject);
        // Hold all connections for the row's lifetime, from a task that
        // owns its own reference to the subject.
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let holder = subject.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            for i in 0..CONNECTIONS {
                match holder.checkout(i).await {
                    Ok(c) => held.push(c),
                    Err(e) => {
                        let _ = held_tx.send(Err(e));
                        return;
                    }
                }
            }
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let _ = held_tx.send(Ok(stop_tx));
            let _ = stop_rx.await;
            drop(held);
        });
        let release = held_rx
            .await
            .map_err(|_| "holder task died".to_string())??;
        let try_once = move || -> BoxFut<Result<Duration, String>> {
            let subject = subject.clone();
            Box::pin(async move {
                let t0 = Instant::now();
                match subject.checkout(0).await {
                    Ok(_) => Err("checkout succeeded with every connection held".into()),
                    Err(_) => Ok(t0.elapsed()),
                }
            })
        };
        Ok(TimeoutRow {
            name: name.into(),
            id: id.into(),
            try_once: Arc::new(try_once),
            _release: Arc::new(release),
        })
    }

    /// One checkout that times out; returns how long it took.
    pub fn try_once(&self) -> BoxFut<Result<Duration, String>> {
        (self.try_once)()
    }
}

/// Timeout rows (pool of 8, all held, timeout `t`): ours around a counter,
/// ours on PostgreSQL (when a URL is given), deadpool (`wait_timeout`), bb8
/// (`connection_timeout`).
pub async fn timeout_rows(t: Duration, pg_url: Option<&str>) -> Vec<TimeoutRow> {
    let mut rows = vec![TimeoutRow::new(
        "ours",
        names::OURS_COUNTER,
        OursCounter::new(Hold::Nothing, |s| s.pool_timeout = t),
    )
    .await
    .expect("hold the counter pool")];
    if let Some(url) = pg_url {
        rows.push(
            TimeoutRow::new(
                "ours-pg",
                names::OURS_PG,
                OursPg::new(url, |s| s.pool_timeout = t),
            )
            .await
            .expect("hold the PostgreSQL pool"),
        );
    }
    rows.push(
        TimeoutRow::new(
            "deadpool",
            "deadpool (wait_timeout)",
            DeadpoolCounter::new(Hold::Nothing, Some(t)),
        )
        .await
        .expect("hold the deadpool pool"),
    );
    rows.push(
        TimeoutRow::new(
            "bb8",
            "bb8 (connection_timeout)",
            Bb8CounterPool::new(Hold::Nothing, false, Some(t)).await,
        )
        .await
        .expect("hold the bb8 pool"),
    );
    rows
}

/// Busy-waits up to 1 ms (a different phase each try) so that tries do not
/// all start at the same point of tokio's 1 ms timer tick.
fn dephase(i: usize) {
    let until = Instant::now() + Duration::from_micros(((i * 137) % 1000) as u64);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// A timeout row's result.
#[derive(Debug, Clone)]
pub struct TimeoutMeasured {
    /// The row's name.
    pub name: String,
    /// How long each timed-out checkout took.
    pub took: Vec<Duration>,
    /// Errors (a checkout that succeeded).
    pub errors: Vec<String>,
}

/// Runs `tries` timed-out checkouts on each row, interleaved.
pub async fn measure_timeouts(rows: &[TimeoutRow], tries: usize) -> Vec<TimeoutMeasured> {
    let mut out: Vec<TimeoutMeasured> = rows
        .iter()
        .map(|r| TimeoutMeasured {
            name: r.name.clone(),
            took: Vec::new(),
            errors: Vec::new(),
        })
        .collect();
    for i in 0..tries {
        for (row, m) in rows.iter().zip(out.iter_mut()) {
            dephase(i);
            match row.try_once().await {
                Ok(d) => m.took.push(d),
                Err(e) => m.errors.push(e),
            }
        }
    }
    out
}

// ----------------------------------------------------------------- tables

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
                facts.push(BookkeepingFacts {
                    tasks: *tasks,
                    vs_deadpool: dp,
                    vs_deadpool_timeout: dpt,
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

static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Records the worker threads of the runtime the report runs on.
pub fn set_tokio_workers(n: usize) {
    let _ = WORKERS.set(n);
}

/// Cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Tokio worker threads of the runtime (one per core unless set).
pub fn tokio_workers() -> usize {
    WORKERS.get().copied().unwrap_or_else(cores)
}

/// The machine, for the report's header.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "{} cores (available_parallelism), CPU: {cpu}, Linux {kernel}, tokio multi-thread runtime with {} workers",
        cores(),
        tokio_workers()
    )
}

/// `SHOW server_version` of the PostgreSQL server.
pub async fn pg_version(url: &str) -> String {
    let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return "unknown".into();
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    match client.query_one("SHOW server_version", &[]).await {
        Ok(row) => row.get::<_, String>(0),
        Err(_) => "unknown".into(),
    }
}

/// `redis_version` from `INFO server`.
pub async fn redis_version(url: &str) -> String {
    use bb8_redis::redis;
    let Ok(client) = redis::Client::open(url) else {
        return "unknown".into();
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return "unknown".into();
    };
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
