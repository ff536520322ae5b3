//! Runs every workload for a few seconds and prints Markdown tables
//! (throughput, ratios, checkout-wait distribution, starvation, validation
//! cost, bookkeeping cost, timeout precision) and the goals, met or missed.
//!
//! ```text
//! cargo run --release -p benches --bin report [-- OPTIONS]
//!   --window-ms N   one measurement window (default 500)
//!   --rounds N      interleaved rounds per row (default 8)
//!   --tries N       timed-out checkouts per pool (default 50)
//!   --only LIST     comma-separated sections: pg (= pg-exhaustion and
//!                   pg-validation), redis (= redis-exhaustion and
//!                   redis-validation), tls, bookkeeping, timeout
//!   --workers N     tokio worker threads (default: one per core)
//!   --quick         a smoke run: 200 ms windows, 1 round, 10 tries
//! ```
//!
//! Tables go to stdout, progress to stderr.

use benches::report::{self, names, ExhaustionRow, Goal, Plan};
use benches::subjects::Hold;
use pool_testkit::{
    HbaTls, PgOptions, PgServer, PgTls, RedisOptions, RedisServer, RedisTls, TestCerts, TLS_HOST,
};
use std::io::Write as _;
use std::time::Duration;

const EXHAUSTION_TASKS: [usize; 3] = [8, 64, 256];
const SMALL_TASKS: [usize; 2] = [1, 64];

struct Args {
    plan: Plan,
    only: Vec<String>,
    workers: Option<usize>,
}

fn usage() -> ! {
    eprintln!(
        "usage: report [--window-ms N] [--rounds N] [--tries N] [--workers N] [--only pg,pg-exhaustion,pg-validation,redis,redis-exhaustion,redis-validation,tls,bookkeeping,timeout] [--quick]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut plan = Plan::default();
    let mut only = Vec::new();
    let mut workers = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let num = |it: &mut dyn Iterator<Item = String>| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--window-ms" => plan.window = Duration::from_millis(num(&mut it)),
            "--rounds" => plan.rounds = num(&mut it) as usize,
            "--workers" => workers = Some(num(&mut it) as usize),
            "--tries" => plan.timeout_tries = num(&mut it) as usize,
            "--only" => {
                only = it
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            "--quick" => {
                plan.window = Duration::from_millis(200);
                plan.rounds = 1;
                plan.warmup = Duration::from_millis(100);
                plan.timeout_tries = 10;
            }
            // `cargo bench` may pass this to every target.
            "--bench" => {}
            _ => usage(),
        }
    }
    Args {
        plan,
        only,
        workers,
    }
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
    let _ = o.flush();
}

fn find<'a>(rows: &'a [ExhaustionRow], name: &str) -> &'a ExhaustionRow {
    rows.iter()
        .find(|r| r.name == name)
        .expect("row present in its table")
}

fn ratio_goal(what: String, value: f64, at_least: f64) -> Goal {
    Goal {
        what,
        measured: format!("{value:.2}x"),
        target: format!("≥ {at_least:.2}x"),
        met: Some(value >= at_least),
    }
}

fn fairness_goals(
    goals: &mut Vec<Goal>,
    backend: &str,
    tasks: usize,
    ours: &ExhaustionRow,
    ceiling: &ExhaustionRow,
) {
    goals.push(Goal {
        what: format!("{backend}, {tasks} tasks on 8: starved tasks (ours)"),
        measured: ours.starved.to_string(),
        target: "0".into(),
        met: Some(ours.starved == 0),
    });
    let over = ours.wait[2].as_secs_f64() / ours.fifo_ideal.as_secs_f64();
    goals.push(Goal {
        what: format!(
            "{backend}, {tasks} tasks on 8: max wait / FIFO ideal (ours: {} / {})",
            report::fmt_dur(ours.wait[2]),
            report::fmt_dur(ours.fifo_ideal)
        ),
        measured: format!(
            "{over:.2}x ({} of {} waits > 3x; no pool in the same run: {:.2}x)",
            ours.over_3x,
            ours.waits,
            ceiling.wait[2].as_secs_f64() / ceiling.fifo_ideal.as_secs_f64()
        ),
        target: "≤ 3x".into(),
        met: Some(over <= 3.0),
    });
}

async fn exhaustion(
    backend: &str,
    rows: &[report::Row],
    raw: &str,
    ceiling: &str,
    plan: &Plan,
) -> Vec<(usize, Vec<ExhaustionRow>)> {
    let mut all = Vec::new();
    for tasks in EXHAUSTION_TASKS {
        eprintln!("{backend}: exhaustion, {tasks} tasks ...");
        let mut measured = report::measure(rows, tasks, plan, true).await;
        let (table, facts) = report::exhaustion_table(
            &format!("{backend}: {tasks} tasks on 8 connections"),
            &mut measured,
            raw,
            ceiling,
            plan,
        );
        out(&table);
        all.push((tasks, facts));
    }
    all
}

async fn validation(backend: &str, rows: &[report::Row], plan: &Plan) {
    let mut by_tasks = Vec::new();
    for tasks in SMALL_TASKS {
        eprintln!("{backend}: validation cost, {tasks} task(s) ...");
        by_tasks.push((tasks, report::measure(rows, tasks, plan, false).await));
    }
    out(&report::validation_table(
        &format!("{backend}: validation cost, pool of 8"),
        &mut by_tasks,
    ));
}

/// Which sections `--only` asks for (all when it is empty).
struct Sections(Vec<String>);

impl Sections {
    /// `--only pg` selects `pg-exhaustion` and `pg-validation`.
    fn wants(&self, section: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|o| {
                o == section
                    || section
                        .strip_prefix(o.as_str())
                        .is_some_and(|r| r.starts_with('-'))
            })
    }
}

async fn main_async(args: Args) {
    let plan = args.plan;
    let sections = Sections(args.only);
    let mut goals = Vec::new();
    out("## Environment\n");
    out(&format!("- machine: {}", report::machine()));
    out(&format!(
        "- load average (1 min) at the start: {} (other processes share the cores)",
        report::loadavg()
    ));
    let (pg, redis) = start_servers(&sections).await;
    out(&format!(
        "- plan: {} interleaved rounds of {} per row after a {} warm-up; {} timed-out checkouts per pool\n",
        plan.rounds,
        report::fmt_dur(plan.window),
        report::fmt_dur(plan.warmup),
        plan.timeout_tries
    ));

    if let Some(pg) = &pg {
        if sections.wants("pg-exhaustion") {
            pg_exhaustion(pg, &plan, &mut goals).await;
        }
        if sections.wants("pg-validation") {
            out("## PostgreSQL: validation cost\n");
            let rows = report::pg_validation_rows(&pg.url());
            validation("PostgreSQL", &rows, &plan).await;
        }
    }
    if let Some(r) = &redis {
        if sections.wants("redis-exhaustion") {
            redis_exhaustion(r, &plan, &mut goals).await;
        }
        if sections.wants("redis-validation") {
            out("## Redis: validation cost\n");
            let rows = report::redis_validation_rows(&r.url()).await;
            validation("Redis", &rows, &plan).await;
        }
    }
    drop(redis);
    if sections.wants("tls") {
        tls(&plan, &mut goals).await;
    }
    if sections.wants("bookkeeping") {
        bookkeeping(&plan, &mut goals).await;
    }
    if sections.wants("timeout") {
        timeout(pg.as_ref(), &plan, &mut goals).await;
    }
    drop(pg);

    out(&format!(
        "Load average (1 min) at the end: {}\n",
        report::loadavg()
    ));
    out("## Goals\n");
    out(&report::goals_table(&goals));
}

/// Starts the private servers the chosen sections need and prints their
/// versions. PostgreSQL is also used by the timeout workload's PG row.
async fn start_servers(sections: &Sections) -> (Option<PgServer>, Option<RedisServer>) {
    let pg = if sections.wants("pg-exhaustion")
        || sections.wants("pg-validation")
        || sections.wants("timeout")
    {
        eprintln!("starting PostgreSQL ...");
        Some(PgServer::start().expect("start the private PostgreSQL server"))
    } else {
        None
    };
    let redis = if sections.wants("redis-exhaustion") || sections.wants("redis-validation") {
        eprintln!("starting Redis ...");
        Some(RedisServer::start().expect("start the private Redis server"))
    } else {
        None
    };
    if let Some(pg) = &pg {
        out(&format!(
            "- PostgreSQL {} (private server from pool-testkit, port {})",
            report::pg_version(&pg.url()).await,
            pg.port()
        ));
    }
    if let Some(r) = &redis {
        out(&format!(
            "- Redis {} (private server from pool-testkit, port {})",
            report::redis_version(&r.url()).await,
            r.port()
        ));
    }
    (pg, redis)
}

/// PostgreSQL exhaustion tables; goals: throughput against raw
/// deadpool-postgres and no pool at 64 tasks, fairness from 64 tasks.
async fn pg_exhaustion(pg: &PgServer, plan: &Plan, goals: &mut Vec<Goal>) {
    out("## PostgreSQL: exhaustion (checkout → `SELECT 1` → return)\n");
    let url = pg.url();
    let rows = report::pg_rows(&url).await;
    let all = exhaustion(
        "PostgreSQL",
        &rows,
        names::DEADPOOL_FAST,
        names::NO_POOL_PG,
        plan,
    )
    .await;
    drop(rows);
    for (tasks, facts) in &all {
        let ours = find(facts, names::OURS_PG);
        if *tasks == 64 {
            goals.push(ratio_goal(
                "PostgreSQL, 64 tasks on 8: ours / raw deadpool-postgres (Fast)".into(),
                ours.vs_raw,
                0.95,
            ));
            let verified = find(facts, names::DEADPOOL_VERIFIED);
            goals.push(ratio_goal(
                "PostgreSQL, 64 tasks on 8: ours / raw deadpool-postgres (Verified)".into(),
                report::median_ratio(&ours.round_rates, &verified.round_rates),
                0.95,
            ));
            goals.push(ratio_goal(
                "PostgreSQL, 64 tasks on 8: ours / no pool".into(),
                ours.vs_ceiling,
                0.9,
            ));
            let none = find(facts, names::OURS_PG_NO_RESET);
            goals.push(ratio_goal(
                "PostgreSQL, 64 tasks on 8: reset on return rollback (default) / none".into(),
                report::median_ratio(&ours.round_rates, &none.round_rates),
                0.95,
            ));
        }
        if *tasks >= 64 {
            let ceiling = find(facts, names::NO_POOL_PG);
            fairness_goals(goals, "PostgreSQL", *tasks, ours, ceiling);
        }
    }
}

/// Redis exhaustion tables; goals: throughput against no pool at 64 tasks
/// (raw bb8-redis for reference), fairness from 64 tasks.
async fn redis_exhaustion(r: &RedisServer, plan: &Plan, goals: &mut Vec<Goal>) {
    out("## Redis: exhaustion (checkout → `PING` → return)\n");
    let url = r.url();
    let rows = report::redis_rows(&url).await;
    let all = exhaustion("Redis", &rows, names::BB8_REDIS, names::NO_POOL_REDIS, plan).await;
    drop(rows);
    for (tasks, facts) in &all {
        let ours = find(facts, names::OURS_REDIS);
        if *tasks == 64 {
            goals.push(ratio_goal(
                "Redis, 64 tasks on 8, validation on: ours / no pool".into(),
                ours.vs_ceiling,
                0.9,
            ));
            let none = find(facts, names::OURS_REDIS_NO_RESET);
            goals.push(ratio_goal(
                "Redis, 64 tasks on 8: reset on return rollback (default) / none".into(),
                report::median_ratio(&ours.round_rates, &none.round_rates),
                0.95,
            ));
            let bb8 = find(facts, names::BB8_REDIS);
            goals.push(Goal {
                what: "Redis, 64 tasks on 8: raw bb8-redis / no pool (for reference)".into(),
                measured: format!("{:.2}x", bb8.vs_ceiling),
                target: "–".into(),
                met: None,
            });
        }
        if *tasks >= 64 {
            let ceiling = find(facts, names::NO_POOL_REDIS);
            fairness_goals(goals, "Redis", *tasks, ours, ceiling);
        }
    }
}

/// Tasks of the TLS workload (on 8 connections).
const TLS_TASKS: usize = 64;

/// The TLS tables: each backend's subjects in plaintext and over TLS,
/// interleaved in one run against private servers with the test
/// certificates (verified: chain and host name). Goal: ours ÷ each raw
/// subject over TLS at least 95% of the same ratio in plaintext.
async fn tls(plan: &Plan, goals: &mut Vec<Goal>) {
    out(&format!(
        "## TLS: plaintext and TLS rows interleaved in one run ({TLS_TASKS} tasks on 8 connections)\n"
    ));
    let certs = TestCerts::generate().expect("make the test certificates");
    eprintln!("starting PostgreSQL with TLS ...");
    let pg = PgServer::start_with(PgOptions {
        tls: Some(PgTls::new(&certs, HbaTls::SslOrPlain)),
        ..PgOptions::default()
    })
    .expect("start the private PostgreSQL server with TLS");
    eprintln!("PostgreSQL: TLS, {TLS_TASKS} tasks ...");
    let rows = report::pg_tls_rows(&pg.url_at(TLS_HOST), &certs.ca());
    let measured = report::measure(&rows, TLS_TASKS, plan, false).await;
    drop(rows);
    drop(pg);
    let (table, facts) = report::tls_table(
        "PostgreSQL: checkout → `SELECT 1` → return; TLS = `sslmode=verify-full` (raw deadpool-postgres with our pool's rustls connector)",
        &measured,
    );
    out(&table);
    goals.extend(facts.iter().map(|f| tls_goal("PostgreSQL", f)));

    eprintln!("starting Redis, plaintext and TLS ...");
    let plain = RedisServer::start().expect("start the private Redis server");
    let tls = RedisServer::start_with(RedisOptions {
        tls: Some(RedisTls::new(&certs, false)),
        ..RedisOptions::default()
    })
    .expect("start the private Redis server with TLS");
    eprintln!("Redis: TLS, {TLS_TASKS} tasks ...");
    let url = tls.tls_url().expect("a rediss:// URL");
    let rows = report::redis_tls_rows(&plain.url(), &url, &certs.ca()).await;
    let measured = report::measure(&rows, TLS_TASKS, plan, false).await;
    drop(rows);
    let (table, facts) = report::tls_table(
        "Redis: checkout → `PING` → return; TLS = `rediss://` verified against the test CA (raw rows with our pool's connection info)",
        &measured,
    );
    out(&table);
    goals.extend(facts.iter().map(|f| tls_goal("Redis", f)));
}

fn tls_goal(backend: &str, f: &report::TlsFacts) -> Goal {
    Goal {
        what: format!(
            "{backend} over TLS, {TLS_TASKS} tasks on 8: ours ÷ {} (plaintext in the same run: {:.2}x)",
            f.raw, f.plain
        ),
        measured: format!("{:.2}x", f.tls),
        target: format!("≥ {:.2}x (plaintext − 5%)", f.plain * 0.95),
        met: Some(f.tls >= f.plain * 0.95),
    }
}

/// The bookkeeping table; goal: time per checkout + return within 1.2x raw
/// deadpool's.
async fn bookkeeping(plan: &Plan, goals: &mut Vec<Goal>) {
    out("## Pool bookkeeping\n");
    let mut by_tasks = Vec::new();
    for tasks in SMALL_TASKS {
        eprintln!("bookkeeping, {tasks} task(s) ...");
        let hold = if tasks == 1 {
            Hold::Nothing
        } else {
            Hold::Yield
        };
        let rows = report::bookkeeping_rows(hold).await;
        by_tasks.push((tasks, report::measure(&rows, tasks, plan, false).await));
    }
    let (table, facts) = report::bookkeeping_table(&by_tasks);
    out(&table);
    for f in facts {
        goals.push(Goal {
            what: format!(
                "Bookkeeping, {} task(s): ours / raw deadpool, time per checkout + return (ours / deadpool with wait_timeout: {:.2}x)",
                f.tasks, f.vs_deadpool_timeout
            ),
            measured: format!("{:.2}x", f.vs_deadpool),
            target: "≤ 1.20x".into(),
            met: Some(f.vs_deadpool <= 1.2),
        });
        goals.push(Goal {
            what: format!(
                "Bookkeeping, {} task(s): every upkeep feature on / off, time per checkout + return",
                f.tasks
            ),
            measured: format!("{:.3}x", f.upkeep_vs_off),
            target: "≤ 1.05x".into(),
            met: Some(f.upkeep_vs_off <= 1.05),
        });
    }
}

/// The timeout-precision table; goals for our pools: never early, at most
/// 20 ms late.
async fn timeout(pg: Option<&PgServer>, plan: &Plan, goals: &mut Vec<Goal>) {
    out("## Timeout precision\n");
    eprintln!("timeout precision ...");
    let rows = report::timeout_rows(plan.timeout, pg.map(|p| p.url()).as_deref()).await;
    let measured = report::measure_timeouts(&rows, plan.timeout_tries).await;
    drop(rows);
    let (table, facts) = report::timeout_table(plan.timeout, &measured);
    out(&table);
    for f in facts
        .iter()
        .filter(|f| f.name == names::OURS_COUNTER || f.name == names::OURS_PG)
    {
        goals.push(Goal {
            what: format!("Timeout ({}): fired early", f.name),
            measured: format!("{} of {}", f.early, plan.timeout_tries),
            target: "0".into(),
            met: Some(f.early == 0 && f.errors == 0),
        });
        goals.push(Goal {
            what: format!(
                "Timeout ({}): max lateness past T = {}",
                f.name,
                report::fmt_dur(plan.timeout)
            ),
            measured: report::fmt_dur(f.late[2]),
            target: "≤ 20 ms".into(),
            met: Some(f.late[2] <= Duration::from_millis(20) && f.errors == 0),
        });
    }
}

fn main() {
    let args = parse_args();
    report::set_tokio_workers(args.workers.unwrap_or_else(report::cores));
    benches::runtime_with(args.workers).block_on(main_async(args));
}
