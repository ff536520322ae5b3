//! Markdown for the fault report: one row per scenario with our figures
//! beside the raw pool's, then the DNS rows, the details, and the soak.

use super::dns::DnsFigures;
use super::figures::{fmt_opt_ms, Figures};
use super::scenarios::{Profile, Scenario};
use super::soak::SoakFigures;

/// One scenario's results: ours, the raw pool's, and extra variants (ours
/// with a caller that drops its connection on timeout).
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario.
    pub scenario: Scenario,
    /// Each pool's figures, or why the run failed.
    pub runs: Vec<Result<Figures, String>>,
}

fn cell<T>(runs: &[Result<Figures, String>], f: impl Fn(&Figures) -> T) -> String
where
    T: std::fmt::Display,
{
    runs.iter()
        .map(|r| match r {
            Ok(fig) => f(fig).to_string(),
            Err(_) => "run failed".into(),
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

fn after(f: &Figures) -> String {
    let c = &f.counts;
    if c.after() == 0 {
        "0".into()
    } else {
        format!(
            "{} ({}/{}/{})",
            c.after(),
            c.handout,
            c.outage,
            c.unexpected
        )
    }
}

fn end_state(f: &Figures) -> String {
    let peak = f.sessions_max.map_or("?".into(), |n| n.to_string());
    let mark = if f.settled && f.live_tasks == 0 && f.panics == 0 && f.stuck == 0 {
        ""
    } else {
        " LEAK"
    };
    format!(
        "{}/{}/{} · {peak}{mark}",
        f.end.open, f.end.in_use, f.end.waiting
    )
}

fn recovery(f: &Figures) -> String {
    if f.healed {
        match f.recovery {
            Some(d) => format!("{} ms", d.as_millis()),
            None => "never".into(),
        }
    } else {
        "n/a".into()
    }
}

/// The pools of a row, for its label: `ours / deadpool-postgres`.
fn pools(runs: &[Result<Figures, String>]) -> String {
    cell(runs, |f| f.pool)
}

/// The main table.
pub fn fault_table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| scenario | fault as run | pools | ops | errors in flight | errors after the fault: total (dead handouts / bounded timeouts / unexpected) | hung | back → first good checkout | end: open/in_use/waiting · peak server sessions |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let p = Profile::report();
    for r in rows {
        let fault = r
            .runs
            .iter()
            .find_map(|f| f.as_ref().ok().map(|f| f.fault_as_run.clone()))
            .unwrap_or_else(|| r.scenario.fault_as_run(&p));
        s.push_str(&format!(
            "| {} {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario.db.as_str(),
            r.scenario.title,
            fault,
            pools(&r.runs),
            cell(&r.runs, |f| f.counts.ops),
            cell(&r.runs, |f| f.counts.in_flight),
            cell(&r.runs, after),
            cell(&r.runs, |f| f.counts.hung),
            cell(&r.runs, recovery),
            cell(&r.runs, end_state),
        ));
    }
    s
}

/// The DNS rows.
pub fn dns_table(rows: &[DnsFigures]) -> String {
    let mut s = String::from(
        "| scenario | backend | pool | outcome | attempts | time | name resolved → ready | what the caller sees |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for f in rows {
        let detail: String = f.detail.chars().take(220).collect();
        let detail = detail.replace('\n', " ");
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} ms | {} | {} |\n",
            f.id,
            f.db.as_str(),
            f.pool,
            f.outcome,
            f.attempts.map_or("-".into(), |a| a.to_string()),
            f.waited.as_millis(),
            fmt_opt_ms(f.after_resolve),
            detail.replace('|', "\\|"),
        ));
    }
    s
}

/// Notes and the most frequent errors of every run.
pub fn details(rows: &[Row]) -> String {
    let mut s = String::new();
    for r in rows {
        s.push_str(&format!(
            "\n#### {} {} (`{}`)\n",
            r.scenario.db.as_str(),
            r.scenario.title,
            r.scenario.id
        ));
        for run in &r.runs {
            match run {
                Err(e) => s.push_str(&format!("- run failed: {e}\n")),
                Ok(f) => {
                    let notes = f.notes.join("; ").replace('\n', " ");
                    s.push_str(&format!("- **{}**: {notes}", f.pool));
                    if let Some(d) = f.handout_last {
                        s.push_str(&format!(
                            "; last dead handout {} ms after the fault",
                            d.as_millis()
                        ));
                    }
                    s.push('\n');
                    for (n, e) in &f.errors {
                        let e: String = e.chars().take(300).collect();
                        let e = e.replace('\n', " ");
                        s.push_str(&format!("  - {n}× `{}`\n", e.replace('`', "'")));
                    }
                }
            }
        }
    }
    s
}

/// The soak section.
pub fn soak_section(f: &SoakFigures) -> String {
    let mut s = format!(
        "Soak: {:.0} s of load on both of our pools (16 tasks each, pool of 8, each behind a fault proxy), \
         {} faults on a schedule ({}).\n\n\
         | pool | ops | ok | errors | hung | end open/in_use/waiting | back to baseline | counters reconcile | peak / end server sessions |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        f.duration.as_secs_f64(),
        f.faults.len(),
        summarize_faults(&f.faults),
    );
    for p in &f.pools {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {}/{}/{} | {} | {} (checkouts {} = returns {} + in use {}; created {} − closed {} = open {}) | {} / {} |\n",
            p.db,
            p.ops,
            p.ok,
            p.errors,
            p.hung,
            p.end.0,
            p.end.1,
            p.end.2,
            yes(p.settled),
            yes(p.reconciled),
            p.counters.checkouts,
            p.counters.returns,
            p.end.1,
            p.counters.created,
            p.counters.closed.total(),
            p.end.0,
            p.sessions_max.map_or("?".into(), |n| n.to_string()),
            p.sessions_end.map_or("?".into(), |n| n.to_string()),
        ));
    }
    s.push_str(&format!(
        "\nVmRSS after warm-up {} KiB, at the end {} KiB; tasks spawned by the fault code still alive: {}; \
         stuck {}, panicked {}; tokio's alive tasks {} after warm-up (load tasks excluded), {} at the end.\n",
        f.rss_start_kib,
        f.rss_end_kib,
        f.live_tasks,
        f.stuck,
        f.panics,
        f.runtime_tasks_start,
        f.runtime_tasks_end
    ));
    s
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

fn summarize_faults(faults: &[&'static str]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for f in faults {
        match counts.iter_mut().find(|(n, _)| n == f) {
            Some(e) => e.1 += 1,
            None => counts.push((f, 1)),
        }
    }
    counts
        .iter()
        .map(|(n, c)| format!("{n} ×{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
