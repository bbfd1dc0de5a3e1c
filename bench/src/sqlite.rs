//! The SQLite rows: no-op boot and apply on a database file, Preflight's SQLite backend
//! (`run` on `rusqlite`) beside refinery's `rusqlite` driver, sqlx's `SqliteConnection`
//! and the floor, the same SQL through `rusqlite` directly. Every timing is "open, then do the
//! thing"; closing is not timed. The files live in the bench's temporary directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use tokio::runtime::Runtime;

use crate::gen::{self, Set, Shape};
use crate::report::{curve, Measure, Table};
use crate::scenarios::{rotation, shorten, Plan};
use crate::tools::Prepared;

/// Who is measured on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tool {
    /// rusqlite: open + `SELECT 1` (no-op), or open + the concatenated files in one
    /// transaction (apply).
    Floor,
    Preflight,
    /// `synchronous_commits(true)`: every migration's commit synced, also in WAL mode.
    PreflightSynced,
    Refinery,
    /// `set_grouped(true)`: one transaction for the run.
    RefineryGrouped,
    /// `PRAGMA synchronous = NORMAL` on its connection first (WAL mode only).
    RefineryNormal,
    Sqlx,
    /// `SqliteConnectOptions::synchronous(Normal)` (WAL mode only).
    SqlxNormal,
}

const NOOP: [Tool; 4] = [Tool::Floor, Tool::Preflight, Tool::Refinery, Tool::Sqlx];
const APPLY: [Tool; 6] = [
    Tool::Floor,
    Tool::Preflight,
    Tool::PreflightSynced,
    Tool::Refinery,
    Tool::RefineryGrouped,
    Tool::Sqlx,
];
const APPLY_WAL: [Tool; 8] = [
    Tool::Floor,
    Tool::Preflight,
    Tool::PreflightSynced,
    Tool::Refinery,
    Tool::RefineryGrouped,
    Tool::RefineryNormal,
    Tool::Sqlx,
    Tool::SqlxNormal,
];

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Floor => "floor: rusqlite",
            Tool::Preflight => "Preflight",
            Tool::PreflightSynced => "Preflight, every commit synced",
            Tool::Refinery => "refinery 0.10",
            Tool::RefineryGrouped => "refinery 0.10, grouped",
            Tool::RefineryNormal => "refinery 0.10, synchronous = NORMAL",
            Tool::Sqlx => "sqlx 0.9",
            Tool::SqlxNormal => "sqlx 0.9, synchronous = NORMAL",
        }
    }

    /// (what it does, transactions, syncs).
    fn settings(self) -> [&'static str; 3] {
        const SYNCED: &str = "each commit synced (the file's `synchronous`, FULL by default)";
        const NORMAL: &str = "`synchronous = NORMAL` for the connection: in WAL mode no commit \
             syncs; the WAL is synced at checkpoints";
        match self {
            Tool::Floor => [
                "rusqlite: open + `SELECT 1` (no-op), or open + the concatenated files in one \
                 `execute_batch` (apply)",
                "one for everything",
                "one synced commit",
            ],
            Tool::Preflight => [
                "`run` on rusqlite; lock file, `BEGIN IMMEDIATE`",
                "one per migration, with its history row",
                "rollback journal: each synced. WAL: every migration but the run's last with \
                 `synchronous = NORMAL` (unsynced), the last synced, which makes the run durable \
                 before it returns",
            ],
            Tool::PreflightSynced => [
                "`runner().synchronous_commits(true).run`",
                "one per migration, with its history row",
                SYNCED,
            ],
            Tool::Refinery => [
                "`Runner::run` on rusqlite",
                "one per migration, with its history row",
                SYNCED,
            ],
            Tool::RefineryGrouped => [
                "`Runner::set_grouped(true).run` on rusqlite",
                "one for the whole run",
                "one synced commit",
            ],
            Tool::RefineryNormal => [
                "`Runner::run` on rusqlite, `PRAGMA synchronous = NORMAL` first",
                "one per migration, with its history row",
                NORMAL,
            ],
            Tool::Sqlx => [
                "`Migrator::run` on `SqliteConnection`",
                "one per migration, with its history row",
                SYNCED,
            ],
            Tool::SqlxNormal => [
                "`Migrator::run`, `SqliteConnectOptions::synchronous(Normal)`",
                "one per migration, with its history row",
                NORMAL,
            ],
        }
    }
}

/// The SQLite contenders table for the report.
fn contenders_table() -> String {
    let mut out =
        String::from("| contender (SQLite) | what | transactions | syncs |\n|---|---|---|---|\n");
    for t in APPLY_WAL {
        let [what, tx, sync] = t.settings();
        out.push_str(&format!("| {} | {what} | {tx} | {sync} |\n", t.label()));
    }
    out
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
        Tool::Preflight | Tool::PreflightSynced => {
            let start = Instant::now();
            let mut conn = open()?;
            let report = p
                .preflight
                .runner()
                .synchronous_commits(tool == Tool::PreflightSynced)
                .run(&mut conn)
                .map_err(|e| format!("preflight: {e}"))?;
            Ok(Outcome {
                elapsed: start.elapsed(),
                fast_path: Some(report.fast_path),
            })
        }
        Tool::Refinery | Tool::RefineryGrouped | Tool::RefineryNormal => {
            let start = Instant::now();
            let mut conn = open()?;
            if tool == Tool::RefineryNormal {
                conn.execute_batch("PRAGMA synchronous = NORMAL")
                    .map_err(|e| format!("PRAGMA synchronous: {e}"))?;
            }
            refinery::Runner::new(&p.refinery)
                .set_grouped(tool == Tool::RefineryGrouped)
                .run(&mut conn)
                .map_err(|e| format!("refinery: {e}"))?;
            Ok(plain(start.elapsed()))
        }
        Tool::Sqlx | Tool::SqlxNormal => rt.block_on(async {
            let start = Instant::now();
            let mut options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true);
            if tool == Tool::SqlxNormal {
                options = options.synchronous(SqliteSynchronous::Normal);
            }
            let mut conn = options.connect().await.map_err(|e| format!("open: {e}"))?;
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
    by_tool: HashMap<Tool, Measure>,
}

impl Collected {
    fn record(&mut self, tool: Tool, result: Result<Outcome, String>, expect_fast: bool) {
        let m = self.by_tool.entry(tool).or_default();
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
            Err(e) => m.note(format!("error: {}", shorten(&e))),
        }
    }

    fn table(mut self, heading: String, tools: &[Tool]) -> Table {
        let mut t = Table::new(heading);
        for &tool in tools {
            let m = self.by_tool.remove(&tool).unwrap_or_default();
            t.push(tool.label(), tool == Tool::Floor, m);
        }
        t
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

/// The SQLite section: the contenders, the no-op boot at each size of the plan (and its
/// curve), the apply in rollback-journal and in WAL mode.
pub fn sqlite(rt: &Runtime, work: &Path, plan: &Plan) -> Vec<String> {
    let root = work.join("sqlite");
    if let Err(e) = std::fs::create_dir_all(&root) {
        return vec![format!("error: cannot create {}: {e}\n", root.display())];
    }
    let mut out = vec![format!(
        "#### SQLite contenders\n\nA database file in the bench's temporary directory \
         (local disk); \"open, then do the thing\", closing not timed. The files start in \
         SQLite's default rollback-journal mode with `synchronous = FULL`; the WAL rows switch \
         the file to WAL mode first (untimed; the mode is stored in the file, so every tool \
         runs in it).\n\n{}",
        contenders_table()
    )];
    let mut noop = Vec::new();
    for &n in &plan.sizes {
        eprintln!("SQLite: no-op boot, {n} applied");
        let set = gen::write(work, Shape::Light, n);
        let prepared = Prepared::new(rt, &set);
        let db_of = |tool: Tool| {
            let owner = if tool == Tool::Floor {
                Tool::Preflight
            } else {
                tool
            };
            root.join(format!("noop-{n}-{owner:?}.db"))
        };
        let mut c = Collected::default();
        // Bring every database up to date (not timed), then one untimed warm-up round.
        for tool in [Tool::Preflight, Tool::Refinery, Tool::Sqlx] {
            if let Err(e) = boot(rt, tool, &db_of(tool), &prepared, None) {
                c.record(tool, Err(format!("setup: {e}")), true);
            }
        }
        for tool in NOOP {
            let _ = boot(rt, tool, &db_of(tool), &prepared, None);
        }
        let rounds = plan.rounds * crate::scenarios::NOOP_ROUNDS_FACTOR;
        for round in 0..rounds {
            for tool in rotation(&NOOP, round) {
                let r = boot(rt, tool, &db_of(tool), &prepared, None);
                c.record(tool, r, true);
            }
        }
        let mut t = c.table(format!("SQLite: no-op boot, {n} applied"), &NOOP);
        t.say(format!(
            "{}; each tool on a file it migrated itself (the floor on Preflight's), \
             rollback journal; one untimed warm-up round.",
            crate::report::rounds(rounds)
        ));
        noop.push((n, t));
    }
    let pairs: Vec<(u32, &Table)> = noop.iter().map(|(n, t)| (*n, t)).collect();
    out.push(curve(
        "SQLite: no-op boot by number of applied migrations",
        &pairs,
    ));
    out.extend(noop.iter().map(|(_, t)| t.markdown()));
    let n = plan.sqlite_apply;
    let set = gen::write(work, Shape::Light, n);
    let prepared = Prepared::new(rt, &set);
    for wal in [false, true] {
        eprintln!("SQLite: apply {n} light migrations, wal = {wal}");
        out.push(apply(rt, &root, &set, &prepared, plan, n, wal).markdown());
    }
    out
}

/// Applies the set to a fresh file per run. `wal`: the file is switched to WAL mode first (not
/// timed; the mode is kept in the file, so every tool then runs in it).
fn apply(
    rt: &Runtime,
    root: &Path,
    set: &Set,
    prepared: &Prepared,
    plan: &Plan,
    n: u32,
    wal: bool,
) -> Table {
    let mode = if wal { "WAL mode" } else { "rollback journal" };
    let heading = format!("SQLite: apply {n} migrations, one cheap statement each ({mode})");
    let tools: &[Tool] = if wal { &APPLY_WAL } else { &APPLY };
    let mut c = Collected::default();
    let all_sql = match std::fs::read_to_string(&set.all_sql) {
        Ok(s) => s,
        Err(e) => {
            let mut t = Table::new(heading);
            t.say(format!("error: {e}"));
            return t;
        }
    };
    let mut run = 0;
    for round in 0..plan.rounds {
        for tool in rotation(tools, round) {
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
    let mut t = c.table(heading, tools);
    t.say(format!(
        "{}, a fresh file per run, its rows checked after.{}",
        crate::report::rounds(plan.rounds),
        if wal {
            " The peers' rows with `synchronous = NORMAL` are their best documented setting \
             for WAL mode: no commit syncs, so unlike Preflight's run (whose last commit syncs \
             the WAL before it returns) a power loss after their run returned can still lose \
             its newest migrations."
        } else {
            ""
        }
    ));
    t
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
