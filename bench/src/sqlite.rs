//! The SQLite rows: no-op boot and apply on a database file, Preflight's SQLite backend
//! (`run` on `rusqlite`) beside refinery's `rusqlite` driver, sqlx's `SqliteConnection`
//! and the floor, the same SQL through `rusqlite` directly. Every timing is "open, then do the
//! thing"; closing is not timed. The files live in the bench's temporary directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::runtime::Runtime;

use crate::gen::{self, Set, Shape};
use crate::report::{over_floor, Measure, Row};
use crate::scenarios::Plan;
use crate::tools::Prepared;

/// Who is measured on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    /// rusqlite: open + `SELECT 1` (no-op), or open + the concatenated files in one
    /// transaction (apply).
    Floor,
    Preflight,
    Refinery,
    Sqlx,
}

const TOOLS: [Tool; 4] = [Tool::Floor, Tool::Preflight, Tool::Refinery, Tool::Sqlx];

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Floor => "rusqlite",
            Tool::Preflight => "preflight",
            Tool::Refinery => "refinery",
            Tool::Sqlx => "sqlx",
        }
    }
}

fn rotation(round: usize) -> Vec<Tool> {
    let mut v = TOOLS.to_vec();
    v.rotate_left(round % TOOLS.len());
    v
}

/// What one timed run did: how long, and for Preflight whether it took the fast path.
struct Outcome {
    elapsed: Duration,
    fast_path: Option<bool>,
}

/// Opens `path` (created if missing) and runs `tool` once. `all_sql`: the concatenated files,
/// for the apply floor (`None`: the no-op floor, `SELECT 1`).
fn boot(
    rt: &Runtime,
    tool: Tool,
    path: &Path,
    p: &Prepared,
    all_sql: Option<&str>,
) -> Result<Outcome, String> {
    let plain = |elapsed| Outcome {
        elapsed,
        fast_path: None,
    };
    let open = || rusqlite::Connection::open(path).map_err(|e| format!("open: {e}"));
    match tool {
        Tool::Floor => {
            let start = Instant::now();
            let conn = open()?;
            match all_sql {
                Some(sql) => conn
                    .execute_batch(&format!("BEGIN;\n{sql}\nCOMMIT;"))
                    .map_err(|e| format!("applying the concatenated files: {e}"))?,
                None => {
                    let one: i64 = conn
                        .query_row("SELECT 1", [], |r| r.get(0))
                        .map_err(|e| format!("SELECT 1: {e}"))?;
                    if one != 1 {
                        return Err(format!("SELECT 1 returned {one}"));
                    }
                }
            }
            Ok(plain(start.elapsed()))
        }
        Tool::Preflight => {
            let start = Instant::now();
            let mut conn = open()?;
            let report = p
                .preflight
                .run(&mut conn)
                .map_err(|e| format!("preflight: {e}"))?;
            Ok(Outcome {
                elapsed: start.elapsed(),
                fast_path: Some(report.fast_path),
            })
        }
        Tool::Refinery => {
            let start = Instant::now();
            let mut conn = open()?;
            refinery::Runner::new(&p.refinery)
                .run(&mut conn)
                .map_err(|e| format!("refinery: {e}"))?;
            Ok(plain(start.elapsed()))
        }
        Tool::Sqlx => rt.block_on(async {
            let start = Instant::now();
            let mut conn = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .connect()
                .await
                .map_err(|e| format!("open: {e}"))?;
            p.sqlx
                .run(&mut conn)
                .await
                .map_err(|e| format!("sqlx: {e}"))?;
            let elapsed = start.elapsed();
            let _ = conn.close().await;
            Ok(plain(elapsed))
        }),
    }
}

#[derive(Default)]
struct Collected {
    by_tool: HashMap<&'static str, Measure>,
}

impl Collected {
    fn record(&mut self, tool: Tool, result: Result<Outcome, String>, expect_fast: bool) {
        let m = self.by_tool.entry(tool.name()).or_default();
        match result {
            Ok(o) => {
                m.samples.push(o.elapsed);
                if o.fast_path.is_some_and(|fast| fast != expect_fast) {
                    m.note(if expect_fast {
                        "did not take the fast path"
                    } else {
                        "took the fast path (unexpected)"
                    });
                }
            }
            Err(e) => m.note(format!("error: {e}")),
        }
    }

    fn take(&mut self, tool: Tool) -> Measure {
        self.by_tool.remove(tool.name()).unwrap_or_default()
    }

    fn row(mut self, scenario: String, floor_note: &str, over: bool) -> Row {
        let mut row = Row::new(scenario);
        row.floor = self.take(Tool::Floor);
        row.floor.note(floor_note);
        row.preflight = self.take(Tool::Preflight);
        if over {
            if let Some(d) = over_floor(&row.preflight, &row.floor) {
                row.preflight.note(d);
            }
        }
        row.refinery = self.take(Tool::Refinery);
        row.sqlx = self.take(Tool::Sqlx);
        row
    }
}

/// Checks that an apply left the expected rows, so that a skipped migration cannot pass for a
/// fast one.
fn check_applied(path: &Path, n: u32) -> Result<(), String> {
    let conn = rusqlite::Connection::open(path).map_err(|e| format!("open: {e}"))?;
    let got: i64 = conn
        .query_row("SELECT count(*) FROM bench_light", [], |r| r.get(0))
        .map_err(|e| format!("checking the result: {e}"))?;
    let expected = i64::from(n) - 1;
    if got == expected {
        Ok(())
    } else {
        Err(format!("wrong final state: {got} instead of {expected}"))
    }
}

/// The SQLite rows: no-op boot at each size of the plan, then apply of the plan's count of
/// light migrations.
pub fn sqlite(rt: &Runtime, work: &Path, plan: &Plan) -> Vec<Row> {
    let root = work.join("sqlite");
    if let Err(e) = std::fs::create_dir_all(&root) {
        let mut row = Row::new("SQLite");
        row.floor = Measure::text(format!("error: cannot create {}: {e}", root.display()));
        return vec![row];
    }
    let mut rows = Vec::new();
    for &n in &plan.noop_sizes {
        eprintln!("SQLite: no-op boot, {n} applied");
        let set = gen::write(work, Shape::Light, n);
        let prepared = Prepared::new(rt, &set);
        let db_of = |tool: Tool| root.join(format!("noop-{n}-{}.db", tool.name()));
        let mut c = Collected::default();
        // Bring every database up to date (not timed), then one untimed warm-up round.
        for tool in [Tool::Preflight, Tool::Refinery, Tool::Sqlx] {
            if let Err(e) = boot(rt, tool, &db_of(tool), &prepared, None) {
                c.record(tool, Err(format!("setup: {e}")), true);
            }
        }
        for tool in TOOLS {
            let _ = boot(rt, tool, &db_of(tool), &prepared, None);
        }
        for round in 0..plan.rounds * crate::scenarios::NOOP_ROUNDS_FACTOR {
            for tool in rotation(round) {
                let r = boot(rt, tool, &db_of(tool), &prepared, None);
                c.record(tool, r, true);
            }
        }
        rows.push(c.row(
            format!("SQLite: no-op boot, {n} applied"),
            "open + SELECT 1 (rusqlite)",
            true,
        ));
    }
    let n = plan.apply_count;
    eprintln!("SQLite: apply {n} light migrations");
    let set = gen::write(work, Shape::Light, n);
    let prepared = Prepared::new(rt, &set);
    rows.push(apply(rt, &root, &set, &prepared, plan, false));
    eprintln!("SQLite: apply {n} light migrations, WAL mode");
    rows.push(apply(rt, &root, &set, &prepared, plan, true));
    rows
}

/// Applies the set to a fresh file per run. `wal`: the file is switched to WAL mode first (not
/// timed; the mode is kept in the file, so every tool then runs in it).
fn apply(rt: &Runtime, root: &Path, set: &Set, prepared: &Prepared, plan: &Plan, wal: bool) -> Row {
    let n = plan.apply_count;
    let mut c = Collected::default();
    let all_sql = match std::fs::read_to_string(&set.all_sql) {
        Ok(s) => s,
        Err(e) => {
            let mut row = Row::new(format!("SQLite: apply {n} light migrations"));
            row.floor = Measure::text(format!("error: {e}"));
            return row;
        }
    };
    let mut run = 0;
    for round in 0..plan.rounds {
        for tool in rotation(round) {
            run += 1;
            // A fresh database file per run, removed with its journal and lock files after.
            let dir = root.join(format!("apply-{run}"));
            let path: PathBuf = dir.join("bench.db");
            let result = std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))
                .and_then(|()| if wal { to_wal(&path) } else { Ok(()) })
                .and_then(|()| boot(rt, tool, &path, prepared, Some(&all_sql)))
                .and_then(|o| check_applied(&path, n).map(|()| o));
            c.record(tool, result, false);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let mode = if wal { "WAL mode" } else { "rollback journal" };
    c.row(
        format!("SQLite: apply {n} migrations, one cheap statement each ({mode})"),
        "rusqlite: the concatenated files in one transaction",
        false,
    )
}

/// Creates the database file in WAL mode.
fn to_wal(path: &Path) -> Result<(), String> {
    let conn = rusqlite::Connection::open(path).map_err(|e| format!("open: {e}"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| format!("PRAGMA journal_mode: {e}"))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(format!("journal_mode is {mode}, not wal"))
    }
}
