//! Crash matrix (issue #7): Preflight never loses or lies about history when the migrating
//! process is SIGKILLed or the server stops (`pg_ctl stop -m immediate`) at any point of a
//! transactional, grouped or no-transaction migration.
//!
//! Everything runs on a private cluster this test starts (never the shared server). Every
//! scenario gets a fresh database and a migrating child process (this test binary re-executed),
//! drives it to one crash point and crashes it there. Crash points are reached by
//! synchronising on what the server shows, never on sleeps:
//!
//! * **gates**: every work statement is preceded by `SELECT pg_advisory_xact_lock(k)`; the test
//!   holds the session lock `k`, so the child stops *before* that statement (a statement
//!   boundary), seen in `pg_locks` as its ungranted advisory lock `k`;
//! * **mid-statement**: the data statement takes lock `k` after half of its rows are written;
//! * **blocked bookkeeping**: the test holds an uncommitted history row (or a row lock on it)
//!   so that the child stops *after* a statement and *before* it is recorded — the history
//!   `INSERT` of a transactional migration, `start_row` and the progress updates of a
//!   no-transaction one — seen as `pg_blocking_pids(child)` containing the test's session;
//! * **inside `CREATE INDEX CONCURRENTLY`**: the test holds a `ROW EXCLUSIVE` lock on the table,
//!   so the index build stops after it has created its (invalid) index.
//!
//! After each crash: restart if needed, check that schema and history agree (every applied row's
//! migration is wholly in the schema, nothing of a migration without a row is, an unfinished row
//! has statements `1..done` in the schema and nothing after `done + 1`), run again and check that
//! it completes, or refuses with the documented recovery step; then apply that recovery (resume,
//! undo by hand + forget, or finish by hand + mark-applied, chosen by the seeded RNG and by what
//! the database shows) and check that it completes, that the schema is whole, and that the next
//! boot takes the fast path.
//!
//! Reproducible: `PREFLIGHT_CRASH_SEED` (default 7) drives the choice of points, drivers and
//! recoveries; `PREFLIGHT_CRASH_SCENARIOS` how many scenarios (default 64 of the 124 possible:
//! about 50 s on 2 cores; `all` runs every point with both crash kinds, about 100 s).
//! `PREFLIGHT_CRASH_ONLY=<text>` keeps the scenarios whose description contains the text (to
//! reproduce one), `PREFLIGHT_CRASH_DEBUG=1` prints the history just before each server stop.

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use preflight_runtime::testing::{with_database, PrivateCluster};
use preflight_runtime::{Error, MigrationSpec, Migrations, Repair, State, Version};

/// Rows the data statement inserts.
const ROWS: i64 = 20_000;
/// Migrations per set.
const MIGRATIONS: u64 = 3;
/// Work statements per migration: create a table, fill it, index it.
const WORK: usize = 3;
const CHILD_APP: &str = "crash-child";
/// Scenarios run by default: about half of the 124 (every point of every mode with both crash
/// kinds), which takes about 50 s on 2 cores; `PREFLIGHT_CRASH_SCENARIOS=all` runs them all.
const DEFAULT_SCENARIOS: usize = 64;
/// Server stops that lost asynchronously committed migrations (whole; see `runner::migrate`).
static LOST_ASYNC_COMMITS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One transaction per migration.
    Tx,
    /// All pending migrations in one transaction.
    Grouped,
    /// Statement by statement with recorded progress (`CREATE INDEX CONCURRENTLY`).
    NoTx,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Tx => "tx",
            Mode::Grouped => "grouped",
            Mode::NoTx => "notx",
        }
    }

    fn parse(s: &str) -> Mode {
        match s {
            "tx" => Mode::Tx,
            "grouped" => Mode::Grouped,
            _ => Mode::NoTx,
        }
    }
}

fn gate_key(m: u64, j: usize) -> i64 {
    1000 + 10 * m as i64 + j as i64
}

fn mid_key(m: u64) -> i64 {
    1000 + 10 * m as i64 + 5
}

fn progress_key(m: u64, done: i32) -> i64 {
    2000 + 10 * m as i64 + i64::from(done)
}

/// Work statement `j` of migration `m`.
fn work(mode: Mode, m: u64, j: usize) -> String {
    match j {
        0 => format!("CREATE TABLE m{m}_a (id int)"),
        1 => format!(
            "INSERT INTO m{m}_a SELECT i FROM generate_series(1, {ROWS}) AS i \
             WHERE CASE WHEN i = {half} THEN pg_advisory_xact_lock({key})::text = '' ELSE true END",
            half = ROWS / 2,
            key = mid_key(m)
        ),
        _ if mode == Mode::NoTx => format!("CREATE INDEX CONCURRENTLY m{m}_idx ON m{m}_a (id)"),
        _ => format!("CREATE INDEX m{m}_idx ON m{m}_a (id)"),
    }
}

/// The statements of migration `m`: a gate before each work statement and one at the end
/// (`G0 W0 G1 W1 G2 W2 G3`), so work statement `j` has index `2j + 1`.
fn statements(mode: Mode, m: u64) -> Vec<String> {
    let gate = |j| format!("SELECT pg_advisory_xact_lock({})", gate_key(m, j));
    let mut list: Vec<String> = (0..WORK)
        .flat_map(|j| [gate(j), work(mode, m, j)])
        .collect();
    list.push(gate(WORK));
    list
}

fn migration_set(mode: Mode) -> Migrations {
    let specs = (1..=MIGRATIONS)
        .map(|m| {
            let list = statements(mode, m);
            let name = format!("step{m}");
            match mode {
                Mode::NoTx => {
                    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
                    MigrationSpec::new(m, &name, "").no_transaction(&refs)
                }
                _ => MigrationSpec::new(m, &name, &(list.join(";\n") + ";")),
            }
        })
        .collect();
    Migrations::from_specs(specs).unwrap()
}

/// What the test holds while the child runs into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// The session advisory lock `key`: the child waits for it (seen in `pg_locks`).
    Advisory(i64),
    /// An uncommitted history row for `version`: the child's INSERT waits for it.
    InsertRow(u64),
    /// A trigger on the history table that takes the advisory lock `progress_key(m, done)` when
    /// the child records `done` statements of migration `m`; the test holds that lock, so the
    /// child stops after the statement and before its progress is recorded. (Not a row or
    /// table lock: `CREATE INDEX CONCURRENTLY` waits for every open transaction, so a lock held
    /// in one would stop the index build instead.)
    Progress { m: u64, done: i32 },
    /// `LOCK TABLE m{m}_a IN ROW EXCLUSIVE MODE`: a concurrent index build waits.
    LockTable(u64),
}

/// A crash point: the blocks established one after the other (each next one is set up while
/// the child waits on the previous one, which is then released); the crash happens while the
/// child waits on the last one.
#[derive(Debug, Clone)]
struct Point {
    label: String,
    blocks: Vec<Block>,
    /// What a server stop at this point leaves (frozen, unlike a killed client whose backend
    /// finishes its statement): migrations fully applied, and the unfinished row's
    /// `statements_done` with the effect of the statement that was running.
    after_stop: (u64, Option<(i32, Effect)>),
}

fn points(mode: Mode) -> Vec<Point> {
    let mut list = Vec::new();
    let before = |m: u64| if mode == Mode::Grouped { 0 } else { m - 1 };
    // The unfinished row a stop leaves: only no-transaction migrations have one.
    let row = |done: i32, e: Effect| (mode == Mode::NoTx).then_some((done, e));
    for m in 1..=MIGRATIONS {
        for j in 0..WORK {
            list.push(Point {
                label: format!("m{m} before work statement {}", j + 1),
                blocks: vec![Block::Advisory(gate_key(m, j))],
                after_stop: (before(m), row(2 * j as i32, Effect::Absent)),
            });
        }
        list.push(Point {
            label: format!("m{m} inside the INSERT, half of its rows written"),
            blocks: vec![Block::Advisory(mid_key(m))],
            after_stop: (before(m), row(3, Effect::Absent)),
        });
        match mode {
            Mode::Tx | Mode::Grouped => list.push(Point {
                label: format!("m{m} body done, history INSERT waiting (before COMMIT)"),
                blocks: vec![Block::Advisory(gate_key(m, WORK)), Block::InsertRow(m)],
                after_stop: (before(m), None),
            }),
            Mode::NoTx => {
                list.push(Point {
                    label: format!("m{m} inside CREATE INDEX CONCURRENTLY (invalid index exists)"),
                    blocks: vec![Block::Advisory(gate_key(m, WORK - 1)), Block::LockTable(m)],
                    after_stop: (before(m), row(5, Effect::Partial)),
                });
                if m >= 2 {
                    list.push(Point {
                        label: format!("m{m} before its in_progress row is recorded"),
                        blocks: vec![Block::Advisory(gate_key(m - 1, WORK)), Block::InsertRow(m)],
                        after_stop: (m - 1, None),
                    });
                }
                for j in 0..WORK {
                    list.push(Point {
                        label: format!("m{m} gate {} done, progress not recorded", j + 1),
                        blocks: vec![
                            Block::Advisory(gate_key(m, j)),
                            Block::Progress {
                                m,
                                done: 2 * j as i32 + 1,
                            },
                        ],
                        after_stop: (before(m), row(2 * j as i32, Effect::Absent)),
                    });
                }
                list.push(Point {
                    label: format!("m{m} INSERT done, progress not recorded"),
                    blocks: vec![Block::Advisory(mid_key(m)), Block::Progress { m, done: 4 }],
                    after_stop: (before(m), row(3, Effect::Present)),
                });
                list.push(Point {
                    label: format!("m{m} CREATE INDEX CONCURRENTLY done, progress not recorded"),
                    blocks: vec![
                        Block::Advisory(gate_key(m, WORK - 1)),
                        Block::Progress { m, done: 6 },
                    ],
                    after_stop: (before(m), row(5, Effect::Present)),
                });
            }
        }
    }
    list
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// SIGKILL the migrating process.
    Kill,
    /// `pg_ctl stop -m immediate`, then start again.
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Sync,
    Async,
}

/// splitmix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

struct Scenario {
    mode: Mode,
    point: Point,
    crash: Crash,
    driver: Driver,
    /// Which recovery to prefer when more than one is possible.
    recovery_choice: bool,
}

impl Scenario {
    fn describe(&self) -> String {
        format!(
            "{} / {:?} / {:?} driver / {}",
            self.mode.name(),
            self.crash,
            self.driver,
            self.point.label
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The child: migrates, and is crashed by the parent.

fn child_main(spec: &str, url: &str) -> ! {
    let mut parts = spec.split(':');
    let mode = Mode::parse(parts.next().unwrap_or(""));
    let driver = parts.next().unwrap_or("sync");
    let set = migration_set(mode);
    let runner = set
        .runner()
        .application(CHILD_APP)
        .grouped(mode == Mode::Grouped);
    let result = if driver == "async" {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            runner.run_async(&mut client).await.map(drop)
        })
    } else {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        runner.run(&mut client).map(drop)
    };
    // Reached only when the server went away under the child (or nothing crashed it).
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("crash child: {e}");
            std::process::exit(3)
        }
    }
}

fn spawn_child(mode: Mode, driver: Driver, url: &str) -> Child {
    let driver = match driver {
        Driver::Sync => "sync",
        Driver::Async => "async",
    };
    Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_matrix_never_loses_or_lies_about_history",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PREFLIGHT_CRASH_CHILD", format!("{}:{driver}", mode.name()))
        .env("PREFLIGHT_CRASH_CHILD_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The parent.

type Outcome = Result<String, String>;

fn connect(url: &str) -> Result<postgres::Client, String> {
    postgres::Client::connect(url, postgres::NoTls).map_err(|e| format!("connect: {e}"))
}

fn q<T: for<'a> postgres::types::FromSql<'a>>(
    c: &mut postgres::Client,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<T, String> {
    c.query_one(sql, params)
        .and_then(|r| r.try_get(0))
        .map_err(|e| format!("`{sql}`: {e}"))
}

/// Polls `condition` until it holds, failing when the child exits or a deadline passes.
fn wait_for(
    what: &str,
    child: &mut Child,
    mut condition: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if condition()? {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the child exited ({status}) before {what}"));
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The child's backend pid, once it is migrating.
fn child_pid(watcher: &mut postgres::Client) -> Result<Option<i32>, String> {
    let rows = watcher
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = $1",
            &[&format!("preflight: {CHILD_APP}")],
        )
        .map_err(|e| e.to_string())?;
    Ok(rows.first().map(|r| r.get(0)))
}

/// Whether the child waits for the advisory lock `key`.
fn waits_for_advisory(watcher: &mut postgres::Client, key: i64) -> Result<bool, String> {
    let Some(pid) = child_pid(watcher)? else {
        return Ok(false);
    };
    q(
        watcher,
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' \
         AND NOT granted AND classid = 0 AND objid = $2::bigint::oid AND objsubid = 1)",
        &[&pid, &key],
    )
}

/// Whether the child is blocked by the session `blocker`.
fn blocked_by(watcher: &mut postgres::Client, blocker: i32) -> Result<bool, String> {
    let Some(pid) = child_pid(watcher)? else {
        return Ok(false);
    };
    q(
        watcher,
        "SELECT $2 = ANY (pg_blocking_pids($1))",
        &[&pid, &blocker],
    )
}

/// The sessions holding the blocks.
struct Holders {
    gates: postgres::Client,
    others: Vec<postgres::Client>,
}

fn establish(
    block: Block,
    url: &str,
    holders: &mut Holders,
) -> Result<Option<postgres::Client>, String> {
    let run = |c: &mut postgres::Client, sql: &str| {
        c.batch_execute(sql).map_err(|e| format!("`{sql}`: {e}"))
    };
    match block {
        Block::Advisory(key) => {
            q::<String>(
                &mut holders.gates,
                "SELECT pg_advisory_lock($1)::text",
                &[&key],
            )?;
            Ok(None)
        }
        Block::InsertRow(m) => {
            let mut c = connect(url)?;
            run(
                &mut c,
                &format!(
                    // An uncommitted row with the migration's key: the child's INSERT of it
                    // waits for this transaction.
                    "BEGIN; \
                     INSERT INTO preflight_history (\"set\", version, name, checksum, chain, state) \
                     VALUES ('{set}', '{m}', 'held by the test', 'x', 'x', 'applied')",
                    set = preflight_runtime::DEFAULT_SET
                ),
            )?;
            Ok(Some(c))
        }
        Block::Progress { m, done } => {
            let key = progress_key(m, done);
            run(
                &mut holders.gates,
                &format!(
                    "CREATE OR REPLACE FUNCTION crash_gate() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF NEW.version = '{m}' AND NEW.statements_done = {done} THEN \
                     PERFORM pg_advisory_xact_lock({key}); END IF; RETURN NEW; END $$; \
                     CREATE OR REPLACE TRIGGER crash_gate BEFORE UPDATE ON preflight_history \
                     FOR EACH ROW EXECUTE FUNCTION crash_gate()"
                ),
            )?;
            q::<String>(
                &mut holders.gates,
                "SELECT pg_advisory_lock($1)::text",
                &[&key],
            )?;
            Ok(None)
        }
        Block::LockTable(m) => {
            let mut c = connect(url)?;
            run(
                &mut c,
                &format!("BEGIN; LOCK TABLE m{m}_a IN ROW EXCLUSIVE MODE"),
            )?;
            Ok(Some(c))
        }
    }
}

/// The advisory lock the child waits for at this block, if it is one.
fn advisory(block: Block) -> Option<i64> {
    match block {
        Block::Advisory(key) => Some(key),
        Block::Progress { m, done } => Some(progress_key(m, done)),
        _ => None,
    }
}

fn release(block: Block, holders: &mut Holders, session: Option<postgres::Client>) {
    match advisory(block) {
        Some(key) => {
            let _ = holders
                .gates
                .query("SELECT pg_advisory_unlock($1)", &[&key]);
        }
        _ => {
            if let Some(mut c) = session {
                let _ = c.batch_execute("ROLLBACK");
            }
        }
    }
}

/// What a work statement left in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Absent,
    Present,
    /// Something of it, not all: an invalid index left by an interrupted concurrent build
    /// (the one kind of partial effect PostgreSQL itself can leave), or a half-filled table
    /// (never acceptable).
    Partial,
}

fn effect(c: &mut postgres::Client, m: u64, j: usize) -> Result<Effect, String> {
    let table = format!("m{m}_a");
    let exists: bool = q(c, "SELECT to_regclass($1) IS NOT NULL", &[&table])?;
    match j {
        0 => Ok(if exists {
            Effect::Present
        } else {
            Effect::Absent
        }),
        1 => {
            if !exists {
                return Ok(Effect::Absent);
            }
            let n: i64 = q(c, &format!("SELECT count(*) FROM {table}"), &[])?;
            Ok(match n {
                0 => Effect::Absent,
                ROWS => Effect::Present,
                _ => Effect::Partial,
            })
        }
        _ => {
            let valid: Option<bool> = c
                .query_opt(
                    "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)",
                    &[&format!("m{m}_idx")],
                )
                .map_err(|e| e.to_string())?
                .map(|r| r.get(0));
            Ok(match valid {
                None => Effect::Absent,
                Some(true) => Effect::Present,
                Some(false) => Effect::Partial,
            })
        }
    }
}

/// (version, state, statements_done, checksum)
fn history(c: &mut postgres::Client) -> Result<Vec<(u64, String, i32, String)>, String> {
    let exists: bool = q(
        c,
        "SELECT to_regclass('preflight_history') IS NOT NULL",
        &[],
    )?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut rows: Vec<_> = c
        .query(
            "SELECT version, state, statements_done, checksum FROM preflight_history \
             WHERE \"set\" <> ''",
            &[],
        )
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0).parse::<u64>().unwrap_or(u64::MAX),
                r.get(1),
                r.get(2),
                r.get(3),
            )
        })
        .collect();
    rows.sort();
    Ok(rows)
}

/// Schema and history agree. Returns the unfinished row (version, done), if any.
fn check_agreement(
    c: &mut postgres::Client,
    mode: Mode,
    set: &Migrations,
) -> Result<Option<(u64, i32)>, String> {
    let rows = history(c)?;
    let mut unfinished = None;
    let mut seen_gap = false;
    for m in 1..=MIGRATIONS {
        let row = rows.iter().find(|r| r.0 == m);
        let effects: Vec<Effect> = (0..WORK)
            .map(|j| effect(c, m, j))
            .collect::<Result<_, _>>()?;
        let compiled = set.get(Version::new(m)).unwrap().checksum().to_string();
        match row {
            None => {
                seen_gap = true;
                if effects.iter().any(|e| *e != Effect::Absent) {
                    return Err(format!(
                        "migration {m} has no history row but is in the schema: {effects:?}"
                    ));
                }
            }
            Some((_, state, done, checksum)) => {
                if seen_gap {
                    return Err(format!(
                        "migration {m} is recorded but an earlier one is not"
                    ));
                }
                if *checksum != compiled {
                    return Err(format!("migration {m} recorded with a wrong checksum"));
                }
                match State::parse(state) {
                    Some(State::Applied) => {
                        if effects.iter().any(|e| *e != Effect::Present) {
                            return Err(format!(
                                "migration {m} is recorded applied but the schema has {effects:?}"
                            ));
                        }
                    }
                    Some(State::InProgress) | Some(State::Failed) if mode == Mode::NoTx => {
                        if unfinished.is_some() {
                            return Err("two unfinished rows".into());
                        }
                        seen_gap = true;
                        unfinished = Some((m, *done));
                        for (j, e) in effects.iter().enumerate() {
                            let index = 2 * j as i32 + 1;
                            let ok = match index.cmp(done) {
                                std::cmp::Ordering::Less => *e == Effect::Present,
                                std::cmp::Ordering::Greater => *e == Effect::Absent,
                                // The statement that was running may or may not have taken
                                // effect; a concurrent index build may leave an invalid index.
                                std::cmp::Ordering::Equal => *e != Effect::Partial || j == WORK - 1,
                            };
                            if !ok {
                                return Err(format!(
                                    "migration {m} is recorded {state} with {done} statements \
                                     done, but work statement {} (statement {}) is {e:?}",
                                    j + 1,
                                    index + 1
                                ));
                            }
                        }
                    }
                    _ => {
                        return Err(format!(
                            "migration {m} is recorded `{state}` in mode {}",
                            mode.name()
                        ))
                    }
                }
            }
        }
    }
    if mode == Mode::Grouped {
        let applied = rows.iter().filter(|r| r.1 == "applied").count();
        if applied != 0 && applied != MIGRATIONS as usize {
            return Err(format!(
                "grouped mode left {applied} of {MIGRATIONS} applied"
            ));
        }
    }
    if let Some(r) = rows.iter().find(|r| r.0 > MIGRATIONS) {
        return Err(format!("unknown history row {r:?}"));
    }
    Ok(unfinished)
}

fn run_once(c: &mut postgres::Client, set: &Migrations, mode: Mode) -> Result<(), Error> {
    set.runner()
        .grouped(mode == Mode::Grouped)
        .lock_timeout(Duration::from_secs(20))
        .run(c)
        .map(drop)
}

/// Runs again after the crash: it completes, or refuses with the documented recovery, which is
/// then applied. Returns which recovery was used.
fn recover(
    c: &mut postgres::Client,
    set: &Migrations,
    s: &Scenario,
    unfinished: Option<(u64, i32)>,
) -> Result<String, String> {
    let first = run_once(c, set, s.mode);
    let Some((m, done)) = unfinished else {
        return first
            .map(|()| "re-run completed".to_owned())
            .map_err(|e| format!("the re-run failed: {e}"));
    };
    let err = match first {
        Ok(()) => {
            return Err(format!(
                "migration {m} was unfinished but the re-run went ahead"
            ))
        }
        Err(e) => e,
    };
    match &err {
        Error::Unfinished(u)
            if u.version == Version::new(m) && u.statements_done == done as u32 => {}
        other => return Err(format!("expected a refusal naming migration {m}: {other}")),
    }
    let text = err.to_string();
    for step in ["--resume", "--forget", "--mark-applied"] {
        if !text.contains(&format!("preflight repair {step} {m}")) {
            return Err(format!(
                "the refusal does not name `repair {step} {m}`: {text}"
            ));
        }
    }
    let v = Version::new(m);
    // The statement that may or may not have run: index `done` (0-based).
    let running = done as usize;
    let work_index = (running % 2 == 1).then_some(running / 2);
    let state = match work_index {
        Some(j) => effect(c, m, j)?,
        None => Effect::Absent, // a gate: nothing to undo
    };
    let sql = |c: &mut postgres::Client, sql: &str| {
        c.batch_execute(sql).map_err(|e| format!("`{sql}`: {e}"))
    };
    let undo_and_forget = |c: &mut postgres::Client| -> Result<String, String> {
        sql(c, &format!("DROP TABLE IF EXISTS m{m}_a CASCADE"))?;
        set.runner()
            .repair(c, Repair::Forget(v))
            .map_err(|e| format!("repair --forget: {e}"))?;
        run_once(c, set, s.mode).map_err(|e| format!("run after forget: {e}"))?;
        Ok("undo by hand + repair --forget".to_owned())
    };
    let resume = |c: &mut postgres::Client| -> Result<String, String> {
        set.runner()
            .repair(c, Repair::Resume(v))
            .map_err(|e| format!("repair --resume: {e}"))?;
        run_once(c, set, s.mode).map_err(|e| format!("run after resume: {e}"))?;
        Ok("repair --resume".to_owned())
    };
    match state {
        Effect::Absent if s.recovery_choice => resume(c),
        Effect::Absent => undo_and_forget(c),
        Effect::Partial => {
            // An interrupted concurrent build leaves an invalid index: drop it, then resume.
            sql(c, &format!("DROP INDEX m{m}_idx"))?;
            resume(c).map(|r| format!("drop the invalid index + {r}"))
        }
        Effect::Present if s.recovery_choice => {
            // Finish by hand: the work statements after the one that ran.
            let j = work_index.unwrap_or(0);
            for k in j + 1..WORK {
                sql(c, &work(s.mode, m, k))?;
            }
            set.runner()
                .repair(c, Repair::MarkApplied(v))
                .map_err(|e| format!("repair --mark-applied: {e}"))?;
            run_once(c, set, s.mode).map_err(|e| format!("run after mark-applied: {e}"))?;
            Ok("finish by hand + repair --mark-applied".to_owned())
        }
        Effect::Present => undo_and_forget(c),
    }
}

fn check_complete(c: &mut postgres::Client, set: &Migrations, mode: Mode) -> Result<(), String> {
    if check_agreement(c, mode, set)?.is_some() {
        return Err("still unfinished after recovery".into());
    }
    let rows = history(c)?;
    if rows.len() != MIGRATIONS as usize || rows.iter().any(|r| r.1 != "applied") {
        return Err(format!("not complete after recovery: {rows:?}"));
    }
    let report = set
        .run(c)
        .map_err(|e| format!("boot after recovery: {e}"))?;
    if !report.fast_path {
        return Err("the boot after recovery did not take the fast path".into());
    }
    Ok(())
}

fn scenario(cluster: &PrivateCluster, n: usize, s: &Scenario) -> Outcome {
    let admin_url = cluster.url();
    let name = format!("crash_{n}");
    let url = with_database(&admin_url, &name);
    {
        let mut admin = connect(&admin_url)?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .and_then(|()| admin.batch_execute(&format!("CREATE DATABASE {name}")))
            .map_err(|e| format!("create database: {e}"))?;
    }
    let set = migration_set(s.mode);
    let mut holders = Holders {
        gates: connect(&url)?,
        others: Vec::new(),
    };
    let mut watcher = connect(&url)?;
    let first = s.point.blocks[0];
    establish(first, &url, &mut holders)?;
    let mut child = spawn_child(s.mode, s.driver, &url);
    let driven = drive(
        &mut child,
        &mut watcher,
        &url,
        &mut holders,
        &s.point.blocks,
    );
    let pid = child_pid(&mut watcher).ok().flatten();
    if let Err(e) = driven {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    // Crash.
    match s.crash {
        Crash::Kill => {
            child.kill().map_err(|e| format!("kill: {e}"))?;
            let _ = child.wait();
            // Let the orphaned backend go: it finishes the statement it was in, finds its
            // client gone and exits (rolling back an open transaction).
            for c in holders.others.iter_mut() {
                let _ = c.batch_execute("ROLLBACK");
            }
            drop(holders);
            let deadline = Instant::now() + Duration::from_secs(30);
            while let Some(pid) = pid {
                let alive: bool = q(
                    &mut watcher,
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
                    &[&pid],
                )?;
                if !alive {
                    break;
                }
                if Instant::now() > deadline {
                    return Err("the killed child's backend did not exit".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Crash::Stop => {
            if std::env::var("PREFLIGHT_CRASH_DEBUG").is_ok() {
                eprintln!("before the stop: {:?}", history(&mut watcher));
            }
            cluster.stop_immediate()?;
            drop(holders);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.code() == Some(3) => break,
                    Ok(Some(status)) => {
                        return Err(format!(
                            "the child did not report the lost server: {status}"
                        ))
                    }
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        return Err("the child hangs after the server stopped".into());
                    }
                    _ => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            cluster.start_server()?;
        }
    }
    drop(watcher);
    let mut c = connect(&url)?;
    c.batch_execute(
        "DO $$ BEGIN IF to_regclass('preflight_history') IS NOT NULL THEN \
         DROP TRIGGER IF EXISTS crash_gate ON preflight_history; END IF; END $$",
    )
    .map_err(|e| format!("dropping the test's trigger: {e}"))?;
    let unfinished = check_agreement(&mut c, s.mode, &set)?;
    if s.crash == Crash::Stop {
        // The point was really reached: the server froze the state there.
        let (applied, row) = s.point.after_stop;
        let rows = history(&mut c)?;
        let got = rows.iter().filter(|r| r.1 == "applied").count() as u64;
        let expected = row;
        let seen = match unfinished {
            Some((m, done)) => {
                let running = done as usize;
                let e = if running % 2 == 1 {
                    effect(&mut c, m, running / 2)?
                } else {
                    Effect::Absent
                };
                Some((done, e))
            }
            None => None,
        };
        // Transactional migrations but the run's last commit asynchronously (see
        // `runner::migrate`): a server crash may lose the newest of them, whole (body and
        // history row), which the checks above and the re-run cover. Anything else is exact.
        let lost_ok = s.mode == Mode::Tx && got <= applied;
        if lost_ok && got < applied {
            LOST_ASYNC_COMMITS.fetch_add(1, Ordering::Relaxed);
        }
        if !lost_ok && got != applied || seen != expected {
            return Err(format!(
                "the stop did not happen where intended: {got} applied and unfinished \
                 {seen:?}, expected {applied} and {expected:?}"
            ));
        }
    }
    let recovery = recover(&mut c, &set, s, unfinished)?;
    check_complete(&mut c, &set, s.mode)?;
    drop(c);
    let mut admin = connect(&admin_url)?;
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    Ok(recovery)
}

/// Establishes the blocks one after the other while the child runs into them.
fn drive(
    child: &mut Child,
    watcher: &mut postgres::Client,
    url: &str,
    holders: &mut Holders,
    blocks: &[Block],
) -> Result<(), String> {
    let mut previous: Option<(Block, Option<postgres::Client>)> = None;
    for (i, block) in blocks.iter().copied().enumerate() {
        let session = if i == 0 {
            None // established before the child started
        } else {
            establish(block, url, holders)?
        };
        let mut session = session;
        let pid = match session.as_mut() {
            Some(c) => Some(q::<i32>(c, "SELECT pg_backend_pid()", &[])?),
            None => None,
        };
        if let Some((b, s)) = previous.take() {
            release(b, holders, s);
        }
        let what = format!("the child to wait for {block:?}");
        match (advisory(block), pid) {
            (Some(key), _) => wait_for(&what, child, || waits_for_advisory(watcher, key))?,
            (None, Some(pid)) => wait_for(&what, child, || blocked_by(watcher, pid))?,
            (None, None) => return Err(format!("no session holds {block:?}")),
        }
        previous = Some((block, session));
    }
    // The last block stays held (advisory locks by `holders.gates`) until the crash.
    if let Some((_, Some(s))) = previous {
        holders.others.push(s);
    }
    Ok(())
}

fn scenarios(seed: u64, count: Option<usize>) -> Vec<Scenario> {
    let mut rng = Rng(seed);
    let mut all = Vec::new();
    for mode in [Mode::Tx, Mode::Grouped, Mode::NoTx] {
        for point in points(mode) {
            for crash in [Crash::Kill, Crash::Stop] {
                all.push((mode, point.clone(), crash));
            }
        }
    }
    // Fisher-Yates with the seeded RNG, then keep `count`, and put them back in matrix order.
    let mut order: Vec<usize> = (0..all.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let keep = count.unwrap_or(all.len()).min(all.len());
    let mut chosen: Vec<usize> = order[..keep].to_vec();
    chosen.sort_unstable();
    chosen
        .into_iter()
        .map(|i| {
            let (mode, point, crash) = all[i].clone();
            Scenario {
                mode,
                point,
                crash,
                driver: if rng.coin() {
                    Driver::Async
                } else {
                    Driver::Sync
                },
                recovery_choice: rng.coin(),
            }
        })
        .collect()
}

#[test]
fn crash_matrix_never_loses_or_lies_about_history() {
    if let (Ok(spec), Ok(url)) = (
        std::env::var("PREFLIGHT_CRASH_CHILD"),
        std::env::var("PREFLIGHT_CRASH_CHILD_URL"),
    ) {
        child_main(&spec, &url);
    }
    let seed = std::env::var("PREFLIGHT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7u64);
    let count = match std::env::var("PREFLIGHT_CRASH_SCENARIOS").as_deref() {
        Ok("all") => None,
        Ok(n) => Some(
            n.parse()
                .expect("PREFLIGHT_CRASH_SCENARIOS: a number or `all`"),
        ),
        Err(_) => Some(DEFAULT_SCENARIOS),
    };
    let mut list = scenarios(seed, count);
    if let Ok(only) = std::env::var("PREFLIGHT_CRASH_ONLY") {
        // Reproduce one scenario: `PREFLIGHT_CRASH_ONLY='tx / Stop / Async driver / m2 before'`.
        list.retain(|s| s.describe().contains(&only));
    }
    let cluster = PrivateCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut log = String::new();
    for (n, s) in list.iter().enumerate() {
        let t = Instant::now();
        match scenario(&cluster, n, s) {
            Ok(recovery) => {
                let _ = writeln!(
                    log,
                    "  ok   {:>5} ms  {}  -> {recovery}",
                    t.elapsed().as_millis(),
                    s.describe()
                );
            }
            Err(e) => {
                let _ = writeln!(log, "  FAIL {}: {e}", s.describe());
                failures.push(format!("{}: {e}", s.describe()));
            }
        }
    }
    let kills = list.iter().filter(|s| s.crash == Crash::Kill).count();
    println!("{log}");
    println!(
        "crash matrix: {} scenarios ({} SIGKILL, {} server stop; tx {}, grouped {}, no-transaction {}), \
         {} failures, seed {seed}, {:.1} s; {} server stop(s) lost the newest asynchronously \
         committed migration(s), whole, and the re-run applied them again",
        list.len(),
        kills,
        list.len() - kills,
        list.iter().filter(|s| s.mode == Mode::Tx).count(),
        list.iter().filter(|s| s.mode == Mode::Grouped).count(),
        list.iter().filter(|s| s.mode == Mode::NoTx).count(),
        failures.len(),
        started.elapsed().as_secs_f64(),
        LOST_ASYNC_COMMITS.load(Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "{} crash scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
