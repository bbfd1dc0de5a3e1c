//! The database scenarios: no-op boot, apply, storm. Every run alternates the contenders
//! (rotating their order each round) and every scenario works in fresh databases, dropped after.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use preflight_runtime::testing::TestDatabase;
use tokio::runtime::Runtime;

use crate::gen::{self, Shape};
use crate::preflight_impl;
use crate::report::{over_floor, Measure, Row};
use crate::tools::{boot, Outcome, Prepared, Tool};

/// How much to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rounds: usize,
    pub noop_sizes: Vec<u32>,
    pub apply_count: u32,
    /// Skip the DDL-heavy apply.
    pub light_only: bool,
    pub storm_processes: usize,
    pub storm_count: u32,
}

/// No-op boots last a few milliseconds, and the shared machine's noise is of the same order:
/// their rows take this many times the plan's rounds (the same for the SQLite no-op rows).
pub const NOOP_ROUNDS_FACTOR: usize = 5;

/// `tools` rotated by `round`: ABC, BCA, CAB, ...
fn rotation(tools: &[Tool], round: usize) -> Vec<Tool> {
    let mut v = tools.to_vec();
    if !v.is_empty() {
        let k = round % v.len();
        v.rotate_left(k);
    }
    v
}

fn runnable(tool: Tool) -> bool {
    !tool.needs_runner() || preflight_impl::RUNNER_READY
}

#[derive(Default)]
struct Collected {
    by_tool: HashMap<&'static str, Measure>,
}

impl Collected {
    fn record(&mut self, tool: Tool, result: Result<Outcome, String>, expect_fast: Option<bool>) {
        let m = self.by_tool.entry(tool.name()).or_default();
        match result {
            Ok(o) => {
                m.samples.push(o.elapsed);
                if let (Some(fast), Some(expected)) = (o.fast_path, expect_fast) {
                    if fast != expected {
                        m.note(if fast {
                            "took the fast path (unexpected)"
                        } else {
                            "did not take the fast path"
                        });
                    }
                }
            }
            Err(e) => m.note(format!("error: {e}")),
        }
    }

    fn take(&mut self, tool: Tool) -> Measure {
        if !runnable(tool) {
            return Measure::text(preflight_impl::NOT_READY);
        }
        self.by_tool.remove(tool.name()).unwrap_or_default()
    }
}

/// No-op boot: N migrations already applied, each tool in its own fresh database.
pub fn noop(rt: &Runtime, work: &Path, plan: &Plan) -> Vec<Row> {
    let mut rows = Vec::new();
    for &n in &plan.noop_sizes {
        eprintln!("no-op boot, {n} applied");
        let set = gen::write(work, Shape::Light, n);
        let prepared = Prepared::new(rt, &set);
        let dbs: HashMap<&str, TestDatabase> = ["preflight", "refinery", "sqlx"]
            .into_iter()
            .map(|k| (k, TestDatabase::empty()))
            .collect();
        let db_of = |tool: Tool| match tool {
            Tool::Refinery => &dbs["refinery"],
            Tool::Sqlx => &dbs["sqlx"],
            _ => &dbs["preflight"],
        };
        // Bring every database up to date (not timed).
        for tool in [Tool::Preflight, Tool::Refinery, Tool::Sqlx] {
            if runnable(tool) {
                if let Err(e) = boot(rt, tool, db_of(tool).url(), &prepared) {
                    eprintln!("  setup with {} failed: {e}", tool.name());
                }
            }
        }
        let tools: Vec<Tool> = [
            Tool::ConnectSelect1,
            Tool::Preflight,
            Tool::Refinery,
            Tool::Sqlx,
            Tool::ConnectSelect1Sync,
            Tool::PreflightSync,
        ]
        .into_iter()
        .filter(|t| runnable(*t))
        .collect();
        let mut c = Collected::default();
        // One untimed warm-up round (the first connection to a new database fills its caches).
        for &tool in &tools {
            let _ = boot(rt, tool, db_of(tool).url(), &prepared);
        }
        for round in 0..plan.rounds * NOOP_ROUNDS_FACTOR {
            for tool in rotation(&tools, round) {
                let r = boot(rt, tool, db_of(tool).url(), &prepared);
                c.record(tool, r, Some(true));
            }
        }
        let mut row = Row::new(format!("no-op boot, {n} applied (async)"));
        row.floor = c.take(Tool::ConnectSelect1);
        row.floor.note("connect + SELECT 1");
        row.preflight = c.take(Tool::Preflight);
        if let Some(d) = over_floor(&row.preflight, &row.floor) {
            row.preflight.note(d);
        }
        row.refinery = c.take(Tool::Refinery);
        row.sqlx = c.take(Tool::Sqlx);
        rows.push(row);
        let mut row = Row::new(format!("no-op boot, {n} applied (sync `postgres`)"));
        row.floor = c.take(Tool::ConnectSelect1Sync);
        row.floor.note("connect + SELECT 1");
        row.preflight = c.take(Tool::PreflightSync);
        if let Some(d) = over_floor(&row.preflight, &row.floor) {
            row.preflight.note(d);
        }
        row.refinery = Measure::text("(async only)");
        row.sqlx = Measure::text("(async only)");
        rows.push(row);
    }
    rows
}

/// Apply N migrations to an empty database; floor `psql -1 -f` of the concatenation.
pub fn apply(rt: &Runtime, work: &Path, plan: &Plan) -> Vec<Row> {
    let mut rows = Vec::new();
    let shapes: &[Shape] = if plan.light_only {
        &[Shape::Light]
    } else {
        &[Shape::Light, Shape::DdlHeavy]
    };
    for &shape in shapes {
        let n = plan.apply_count;
        eprintln!("apply {n} {} migrations", shape.label());
        let set = gen::write(work, shape, n);
        let prepared = Prepared::new(rt, &set);
        let tools: Vec<Tool> = [Tool::Psql, Tool::Preflight, Tool::Refinery, Tool::Sqlx]
            .into_iter()
            .filter(|t| runnable(*t))
            .collect();
        let mut c = Collected::default();
        for round in 0..plan.rounds {
            for tool in rotation(&tools, round) {
                let db = TestDatabase::empty();
                let r = boot(rt, tool, db.url(), &prepared);
                let r = r.and_then(|o| check_applied(&db, shape, n).map(|()| o));
                c.record(tool, r, Some(false));
            }
        }
        let what = match shape {
            Shape::Light => "one cheap statement each",
            Shape::DdlHeavy => "CREATE TABLE + CREATE INDEX each",
        };
        let mut row = Row::new(format!("apply {n} migrations, {what}"));
        row.floor = c.take(Tool::Psql);
        row.floor.note("`psql -1 -f` (one transaction)");
        row.preflight = c.take(Tool::Preflight);
        row.refinery = c.take(Tool::Refinery);
        row.sqlx = c.take(Tool::Sqlx);
        rows.push(row);
    }
    rows
}

/// Checks that a run left the expected schema, so that a silently skipped migration cannot
/// pass for a fast one.
fn check_applied(db: &TestDatabase, shape: Shape, n: u32) -> Result<(), String> {
    let mut client = db.connect();
    let (sql, expected) = match shape {
        Shape::Light => ("SELECT count(*) FROM bench_light", i64::from(n) - 1),
        Shape::DdlHeavy => (
            "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'bench_t%_a_idx'",
            i64::from(n),
        ),
    };
    let got: i64 = client
        .query_one(sql, &[])
        .map_err(|e| format!("checking the result: {e}"))?
        .get(0);
    if got == expected {
        Ok(())
    } else {
        Err(format!("wrong final state: {got} instead of {expected}"))
    }
}

/// What a storm (or a single boot) of child processes did.
struct StormResult {
    /// First spawn to last success.
    total: Duration,
    failed: usize,
    first_error: Option<String>,
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Spawns `processes` copies of this binary in the child role, all at once, on `url`.
fn storm_once(tool: Tool, url: &str, dir: &Path, processes: usize) -> Result<StormResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let t0 = unix_nanos();
    let mut children = Vec::with_capacity(processes);
    for _ in 0..processes {
        let child = Command::new(&exe)
            .args(["--storm-child", tool.name(), "--url", url, "--dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot spawn a child: {e}"))?;
        children.push(child);
    }
    let mut last_ok = None::<u128>;
    let mut failed = 0;
    let mut first_error = None;
    for child in children {
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for a child: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("").to_owned();
        match line
            .strip_prefix("ok ")
            .and_then(|t| t.parse::<u128>().ok())
        {
            Some(t) => last_ok = Some(last_ok.map_or(t, |l| l.max(t))),
            None => {
                failed += 1;
                if first_error.is_none() {
                    first_error = Some(if line.is_empty() {
                        format!("child exited with {}", out.status)
                    } else {
                        line.trim_start_matches("err ").to_owned()
                    });
                }
            }
        }
    }
    let total = last_ok
        .map(|t| Duration::from_nanos(t.saturating_sub(t0).try_into().unwrap_or(u64::MAX)))
        .ok_or_else(|| {
            format!(
                "no process succeeded: {}",
                first_error.clone().unwrap_or_default()
            )
        })?;
    Ok(StormResult {
        total,
        failed,
        first_error,
    })
}

/// The child role: boot once and say when it finished.
pub fn storm_child(tool: &str, url: &str, dir: &Path) -> i32 {
    let result = (|| {
        let tool = Tool::parse(tool).ok_or_else(|| format!("unknown tool {tool}"))?;
        let rt = runtime();
        let generated = gen::read_dir(dir)?;
        let prepared = Prepared::from_parts(&rt, dir, &generated, None);
        boot(&rt, tool, url, &prepared)
    })();
    match result {
        Ok(_) => {
            println!("ok {}", unix_nanos());
            0
        }
        Err(e) => {
            println!("err {}", e.replace('\n', " "));
            1
        }
    }
}

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// 32 processes booting at once on an empty database vs one.
pub fn storm(work: &Path, plan: &Plan) -> Vec<Row> {
    let n = plan.storm_count;
    let k = plan.storm_processes;
    eprintln!("storm: {k} processes, {n} light migrations");
    let set = gen::write(work, Shape::Light, n);
    // The floor: the same processes, spawned the same way, that only connect and `SELECT 1`:
    // what starting them on this machine costs, whatever they then do.
    let tools: Vec<Tool> = [
        Tool::ConnectSelect1,
        Tool::Preflight,
        Tool::Refinery,
        Tool::Sqlx,
    ]
    .into_iter()
    .filter(|t| runnable(*t))
    .collect();
    let mut single: HashMap<&str, Measure> = HashMap::new();
    let mut many: HashMap<&str, Measure> = HashMap::new();
    let mut failures: HashMap<&str, (usize, usize)> = HashMap::new();
    for round in 0..plan.rounds {
        for tool in rotation(&tools, round) {
            // Alternate which of the two goes first, too.
            let order = if round % 2 == 0 { [1, k] } else { [k, 1] };
            for processes in order {
                let db = TestDatabase::empty();
                let target = if processes == 1 {
                    single.entry(tool.name()).or_default()
                } else {
                    many.entry(tool.name()).or_default()
                };
                match storm_once(tool, db.url(), &set.dir, processes) {
                    Ok(r) => {
                        let state = match tool {
                            Tool::ConnectSelect1 => Ok(()),
                            _ => check_applied(&db, Shape::Light, n),
                        };
                        target.samples.push(r.total);
                        let f = failures.entry(tool.name()).or_default();
                        if processes > 1 {
                            f.0 += r.failed;
                            f.1 += processes;
                        }
                        if let Some(e) = r.first_error {
                            target.note(format!("e.g. {}", shorten(&e)));
                        }
                        if let Err(e) = state {
                            target.note(e);
                        }
                    }
                    Err(e) => target.note(format!("error: {}", shorten(&e))),
                }
            }
        }
    }
    let mut storm_row = Row::new(format!(
        "storm: {k} processes boot at once on an empty database ({n} light migrations), first start to last success"
    ));
    let mut single_row = Row::new("single boot, same set (a process spawned the same way)");
    let mut fill = |tool: Tool, s: &mut Measure, m: &mut Measure| {
        if !runnable(tool) {
            *s = Measure::text(preflight_impl::NOT_READY);
            *m = Measure::text(preflight_impl::NOT_READY);
            return;
        }
        *s = single.remove(tool.name()).unwrap_or_default();
        let mut mm = many.remove(tool.name()).unwrap_or_default();
        mm.base = Some(s.samples.clone());
        if let Some((failed, of)) = failures.get(tool.name()) {
            mm.notes
                .insert(0, format!("{failed}/{of} processes failed"));
        }
        *m = mm;
    };
    fill(
        Tool::Preflight,
        &mut single_row.preflight,
        &mut storm_row.preflight,
    );
    fill(
        Tool::Refinery,
        &mut single_row.refinery,
        &mut storm_row.refinery,
    );
    fill(Tool::Sqlx, &mut single_row.sqlx, &mut storm_row.sqlx);
    fill(
        Tool::ConnectSelect1,
        &mut single_row.floor,
        &mut storm_row.floor,
    );
    storm_row.floor.note(format!(
        "{k} processes that connect + SELECT 1; ratios: ÷ the tool's own single boot"
    ));
    single_row
        .floor
        .note("one process that connects + SELECT 1");
    // A single boot's ratio column would divide by nothing: leave it empty.
    vec![storm_row, single_row]
}

fn shorten(s: &str) -> String {
    let s = s.replace('|', "/");
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}
