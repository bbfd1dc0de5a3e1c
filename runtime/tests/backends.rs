//! The boot-time behaviour every backend shares, written once over a small test-backend trait
//! ([`Db`]) and run against a real PostgreSQL database (`testing::TestDatabase`) and a real SQLite
//! file in a temporary directory: `backends::postgres::*` and `backends::sqlite::*`.
//! Multi-process tests re-execute this test binary with `PREFLIGHT_CHILD` naming the child's
//! role and `PREFLIGHT_CHILD_URL` the database.

use std::any::Any;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use preflight_runtime::{
    Body, Connection, Error, HistoryRow, Kind, MigrationParts, MigrationSpec, Migrations, Repair,
    Report, Revert, Runner, Span, State, Version, Warning,
};

/// A database under test, on one connection.
trait Db: Sized {
    /// A fresh, empty database.
    fn fresh() -> Self;
    /// The database `url()` named, in a child process.
    fn open(url: &str) -> Self;
    fn url(&self) -> String;
    /// The connection, as every operation of the runner takes it, whatever the database.
    fn conn(&mut self) -> &mut dyn Connection;
    fn run(&mut self, r: &Runner<'_>) -> Result<Report, Error> {
        r.run(self.conn())
    }
    fn revert(&mut self, r: &Runner<'_>, revert: Revert) -> Result<Report, Error> {
        r.revert(self.conn(), revert)
    }
    fn repair(&mut self, r: &Runner<'_>, repair: Repair) -> Result<Report, Error> {
        r.repair(self.conn(), repair)
    }
    fn history(&mut self, r: &Runner<'_>) -> Result<Vec<HistoryRow>, Error> {
        r.history(self.conn())
    }
    fn exec(&mut self, sql: &str);
    fn count(&mut self, sql: &str) -> i64;
    fn table_exists(&mut self, name: &str) -> bool;
    /// Takes the migration lock as another process would, until the guard is dropped.
    fn hold_migration_lock(&mut self) -> Box<dyn Any>;
    /// A statement that blocks the child inside a migration until the parent kills it, and
    /// what the parent must hold for it to block (dropped after the kill).
    fn blocking_statement() -> &'static str;
    fn arrange_block(&mut self) -> Box<dyn Any>;
    /// Waits until the child is blocked in `blocking_statement`; returns what identifies it.
    fn wait_child_blocked(&mut self) -> i64;
    /// Waits until the killed child is gone from the database's point of view.
    fn wait_child_gone(&mut self, id: i64);
    /// Makes every insert of `version` into the history table fail from now on: an
    /// interruption at a chosen row.
    fn refuse_history_insert(&mut self, version: &str);
    /// Undoes [`Db::refuse_history_insert`].
    fn allow_history_inserts(&mut self);
    /// The SQLSTATE (PostgreSQL) or result code name (SQLite) of "no such table".
    const MISSING_TABLE: &'static str;
}

mod pg {
    use super::*;
    use preflight_runtime::testing::advisory_key;
    use preflight_runtime::testing::TestDatabase;

    pub struct Pg {
        _db: Option<TestDatabase>,
        url: String,
        name: String,
        client: ::postgres::Client,
    }

    impl Db for Pg {
        fn fresh() -> Self {
            let db = TestDatabase::empty();
            Pg {
                url: db.url().to_owned(),
                name: db.name().to_owned(),
                client: db.connect(),
                _db: Some(db),
            }
        }
        fn open(url: &str) -> Self {
            Pg {
                _db: None,
                url: url.to_owned(),
                name: String::new(),
                client: ::postgres::Client::connect(url, ::postgres::NoTls).unwrap(),
            }
        }
        fn url(&self) -> String {
            self.url.clone()
        }
        fn conn(&mut self) -> &mut dyn Connection {
            &mut self.client
        }
        fn exec(&mut self, sql: &str) {
            self.client.batch_execute(sql).unwrap();
        }
        fn count(&mut self, sql: &str) -> i64 {
            self.client.query_one(sql, &[]).unwrap().get(0)
        }
        fn table_exists(&mut self, name: &str) -> bool {
            self.client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                .unwrap()
                .get(0)
        }
        fn hold_migration_lock(&mut self) -> Box<dyn Any> {
            let mut holder = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
            let key = advisory_key(&self.name, "public", "preflight_history");
            holder
                .query_one("SELECT pg_advisory_lock($1)", &[&key])
                .unwrap();
            Box::new(holder)
        }
        fn blocking_statement() -> &'static str {
            "SELECT * FROM blocker;"
        }
        fn arrange_block(&mut self) -> Box<dyn Any> {
            let mut holder = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
            holder
                .batch_execute("BEGIN; LOCK TABLE blocker IN ACCESS EXCLUSIVE MODE")
                .unwrap();
            Box::new(holder)
        }
        fn wait_child_blocked(&mut self) -> i64 {
            let mut pid = 0i32;
            wait_until("the child to block on the blocker table", || {
                let rows = self
                    .client
                    .query(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                         AND application_name = 'preflight: kill-child' AND wait_event_type = 'Lock'",
                        &[],
                    )
                    .unwrap();
                rows.first().map(|r| pid = r.get(0)).is_some()
            });
            i64::from(pid)
        }
        fn wait_child_gone(&mut self, id: i64) {
            let pid = i32::try_from(id).unwrap();
            wait_until("the killed child's backend to exit", || {
                self.client
                    .query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid])
                    .unwrap()
                    .is_empty()
            });
        }
        fn refuse_history_insert(&mut self, version: &str) {
            self.client
                .batch_execute(&format!(
                    "CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                         IF NEW.version = '{version}' THEN RAISE EXCEPTION 'interrupted'; END IF;
                         RETURN NEW;
                     END $$;
                     CREATE TRIGGER refuse_row BEFORE INSERT ON preflight_history
                         FOR EACH ROW EXECUTE FUNCTION refuse_row();"
                ))
                .unwrap();
        }
        fn allow_history_inserts(&mut self) {
            self.exec("DROP TRIGGER refuse_row ON preflight_history");
        }
        const MISSING_TABLE: &'static str = "42P01";
    }
}

mod lite {
    use super::*;
    use rusqlite::{Connection, OptionalExtension};

    pub struct Lite {
        _dir: Option<tempfile::TempDir>,
        path: PathBuf,
        conn: Connection,
    }

    /// The file a child creates when it reaches the blocking statement.
    fn marker(path: &std::path::Path) -> PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(".blocked");
        PathBuf::from(p)
    }

    impl Db for Lite {
        fn fresh() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("app.db");
            let mut lite = Lite::open(path.to_str().unwrap());
            lite._dir = Some(dir);
            lite
        }
        fn open(url: &str) -> Self {
            let path = PathBuf::from(url);
            let conn = Connection::open(&path).unwrap();
            // What `blocking_statement` calls: tells the parent, then waits to be killed.
            let blocked = marker(&path);
            conn.create_scalar_function(
                "preflight_test_block",
                0,
                rusqlite::functions::FunctionFlags::SQLITE_UTF8,
                move |_| {
                    // Only a child blocks; in the parent (resuming) it is a no-op.
                    if std::env::var_os("PREFLIGHT_CHILD").is_some() {
                        std::fs::write(&blocked, std::process::id().to_string()).unwrap();
                        loop {
                            std::thread::park();
                        }
                    }
                    Ok(0)
                },
            )
            .unwrap();
            Lite {
                _dir: None,
                path,
                conn,
            }
        }
        fn url(&self) -> String {
            self.path.to_str().unwrap().to_owned()
        }
        fn conn(&mut self) -> &mut dyn preflight_runtime::Connection {
            &mut self.conn
        }
        fn exec(&mut self, sql: &str) {
            self.conn.execute_batch(sql).unwrap();
        }
        fn count(&mut self, sql: &str) -> i64 {
            self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
        }
        fn table_exists(&mut self, name: &str) -> bool {
            self.conn
                .query_row(
                    "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                    [name],
                    |_| Ok(()),
                )
                .optional()
                .unwrap()
                .is_some()
        }
        fn hold_migration_lock(&mut self) -> Box<dyn Any> {
            let mut lock = self.path.as_os_str().to_owned();
            lock.push("-preflight-lock");
            let holder = Connection::open(PathBuf::from(lock)).unwrap();
            holder.execute_batch("BEGIN IMMEDIATE").unwrap();
            Box::new(holder)
        }
        fn blocking_statement() -> &'static str {
            "SELECT preflight_test_block();"
        }
        fn arrange_block(&mut self) -> Box<dyn Any> {
            Box::new(())
        }
        fn wait_child_blocked(&mut self) -> i64 {
            let blocked = marker(&self.path);
            wait_until("the child to reach the blocking statement", || {
                blocked.exists()
            });
            0
        }
        fn wait_child_gone(&mut self, _id: i64) {
            // The parent waited for the process: its file locks went with it.
        }
        fn refuse_history_insert(&mut self, version: &str) {
            self.conn
                .execute_batch(&format!(
                    "CREATE TRIGGER refuse_row BEFORE INSERT ON preflight_history
                     WHEN NEW.version = '{version}'
                     BEGIN SELECT RAISE(ABORT, 'interrupted'); END;"
                ))
                .unwrap();
        }
        fn allow_history_inserts(&mut self) {
            self.exec("DROP TRIGGER refuse_row");
        }
        const MISSING_TABLE: &'static str = "SQLITE_ERROR";
    }
}

fn set(specs: Vec<MigrationSpec>) -> Migrations {
    Migrations::from_specs(specs).unwrap()
}

fn v(n: u64) -> Version {
    Version::new(n)
}

/// Polls a condition (not a sleep standing in for synchronisation: it waits for a fact).
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// (version, state, statements_done, statements_total), in version order.
fn rows<D: Db>(db: &mut D, m: &Migrations) -> Vec<(Version, State, u32, u32)> {
    let mut rows: Vec<_> = db
        .history(&m.runner())
        .unwrap()
        .into_iter()
        .map(|r| (r.version, r.state, r.statements_done, r.statements_total))
        .collect();
    rows.sort_by_key(|r| r.0);
    rows
}

fn versions<D: Db>(db: &mut D) -> Vec<Version> {
    rows(db, &set(vec![])).into_iter().map(|r| r.0).collect()
}

fn three() -> Migrations {
    set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int primary key);")
            .down("DROP TABLE users;"),
        MigrationSpec::new(2, "email", "ALTER TABLE users ADD email text;")
            .down("ALTER TABLE users DROP COLUMN email;"),
        MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);").down("DROP TABLE posts;"),
    ])
}

fn applies_once_then_takes_the_fast_path<D: Db>() {
    let mut db = D::fresh();
    let m = three();
    let first = db.run(&m.runner().application("test-app 1.0")).unwrap();
    assert_eq!(first.applied_versions(), [v(1), v(2), v(3)]);
    assert!(first.lock_taken && !first.fast_path);
    let second = db.run(&m.runner()).unwrap();
    assert!(second.fast_path && !second.lock_taken, "{second:?}");
    assert!(second.applied.is_empty());
    let history = db.history(&m.runner()).unwrap();
    assert_eq!(history.len(), 3);
    let r3 = history.iter().find(|r| r.version == v(3)).unwrap();
    let m3 = m.get(v(3)).unwrap();
    assert_eq!(r3.state, State::Applied);
    assert_eq!(r3.checksum, m3.checksum().to_string());
    assert_eq!(r3.chain, m3.chain().to_string());
    assert!(r3.applied_by.starts_with("test-app 1.0 on "), "{r3:?}");
    assert!(r3.applied_at.starts_with("20"), "{r3:?}");
}

fn failing_body_rolls_back_and_names_statement_and_line<D: Db>() {
    let mut db = D::fresh();
    // Split into statements as `embed!` does, so the error maps to the second statement.
    let text = "CREATE TABLE ok1 (id int);\n\nINSERT INTO nope VALUES (1);\n";
    let m = Migrations::from_parts(vec![MigrationParts {
        version: v(7),
        name: "bad".into(),
        path: "7_bad.sql".into(),
        checksum_text: text.into(),
        up: Body::owned(
            text.into(),
            vec![Span::new(0, 26), Span::new(28, 56)],
            Kind::Transactional,
        ),
        down: None,
        requires: Vec::new(),
    }])
    .unwrap();
    let err = db.run(&m.runner()).unwrap_err();
    match &err {
        Error::Migration(e) => {
            assert_eq!(e.version, v(7));
            assert_eq!(e.source.code.as_deref(), Some(D::MISSING_TABLE), "{e}");
            assert!(e.source.message.contains("nope"), "{e}");
            assert_eq!((e.statement, e.line), (Some(1), Some(3)), "{e}");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("7_bad.sql:3"), "{err}");
    assert!(versions(&mut db).is_empty());
    assert!(
        !db.table_exists("ok1"),
        "the first statement was rolled back"
    );
    // The connection is usable and outside a transaction afterwards.
    let fixed = set(vec![MigrationSpec::new(
        7,
        "bad",
        "CREATE TABLE ok1 (id int);",
    )]);
    assert_eq!(db.run(&fixed.runner()).unwrap().applied.len(), 1);
}

/// Tens of milliseconds of work on both databases, so that racing runs overlap.
const SLOW: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) \
                    SELECT count(*) FROM c;";

fn race_set() -> Migrations {
    let mut specs = vec![MigrationSpec::new(
        1,
        "log",
        "CREATE TABLE applied_log (v int);",
    )];
    for n in 2..=6u64 {
        // Not idempotent: applying it twice fails, and the log counts applications.
        specs.push(MigrationSpec::new(
            n,
            &format!("t{n}"),
            &format!("CREATE TABLE t{n} (id int); INSERT INTO applied_log VALUES ({n});\n{SLOW}"),
        ));
    }
    set(specs)
}

fn assert_race_result<D: Db>(db: &mut D) {
    assert_eq!(versions(db), (1..=6).map(v).collect::<Vec<_>>());
    assert_eq!(db.count("SELECT count(*) FROM applied_log"), 5);
    assert_eq!(db.count("SELECT count(DISTINCT v) FROM applied_log"), 5);
}

fn eight_threads_race_and_apply_each_migration_once<D: Db>() {
    let db = D::fresh();
    let url = db.url();
    let m = race_set();
    let barrier = std::sync::Barrier::new(8);
    let applied: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = D::open(&url);
                    barrier.wait();
                    mine.run(&m.runner().lock_timeout(Duration::from_secs(60)))
                        .unwrap()
                        .applied
                        .len()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(applied, 6, "every migration applied by exactly one thread");
    assert_race_result(&mut D::open(&url));
}

fn child_role() -> Option<(String, String)> {
    Some((
        std::env::var("PREFLIGHT_CHILD").ok()?,
        std::env::var("PREFLIGHT_CHILD_URL").ok()?,
    ))
}

fn spawn_child(test: &str, role: &str, url: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("PREFLIGHT_CHILD", role)
        .env("PREFLIGHT_CHILD_URL", url)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn eight_processes_race_and_apply_each_migration_once<D: Db>(test: &str) {
    if let Some((_, url)) = child_role() {
        let report = D::open(&url).run(&race_set().runner()).unwrap();
        // Each child reports how many it applied through its exit code.
        std::process::exit(i32::try_from(report.applied.len()).unwrap() + 10);
    }
    let mut db = D::fresh();
    let children: Vec<_> = (0..8)
        .map(|_| spawn_child(test, "race", &db.url()))
        .collect();
    let mut applied = 0;
    for mut c in children {
        let code = c.wait().unwrap().code().expect("exited");
        assert!((10..=16).contains(&code), "a racing process failed: {code}");
        applied += code - 10;
    }
    assert_eq!(applied, 6, "every migration applied by exactly one process");
    assert_race_result(&mut db);
}

fn blocker_sets<D: Db>() -> (Migrations, Migrations) {
    let tx = set(vec![
        MigrationSpec::new(1, "blocker", "CREATE TABLE blocker (id int);"),
        MigrationSpec::new(
            2,
            "slow",
            &format!(
                "CREATE TABLE made_by_2 (id int);\n{}",
                D::blocking_statement()
            ),
        ),
    ]);
    let notx = set(vec![
        MigrationSpec::new(1, "blocker", "CREATE TABLE blocker (id int);"),
        MigrationSpec::new(2, "slow", "").no_transaction(&[
            "CREATE TABLE nt1 (id int);",
            D::blocking_statement(),
            "CREATE TABLE nt3 (id int);",
        ]),
    ]);
    (tx, notx)
}

fn kill_child_main<D: Db>(role: &str, url: &str) -> ! {
    let (tx, notx) = blocker_sets::<D>();
    let m = if role == "tx" { tx } else { notx };
    let _ = D::open(url).run(&m.runner().application("kill-child"));
    unreachable!("the parent kills this process while it migrates");
}

/// Runs migration 1, starts a child that blocks inside migration 2, SIGKILLs it there.
fn kill_child_inside_migration_2<D: Db>(db: &mut D, test: &str, role: &str, m: &Migrations) {
    db.run(&m.runner().target(1u64)).unwrap();
    let guard = db.arrange_block();
    let mut child = spawn_child(test, role, &db.url());
    let id = db.wait_child_blocked();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(guard);
    db.wait_child_gone(id);
}

fn killed_inside_a_transactional_migration_nothing_is_recorded<D: Db>(test: &str) {
    if let Some((role, url)) = child_role() {
        kill_child_main::<D>(&role, &url);
    }
    let mut db = D::fresh();
    let (m, _) = blocker_sets::<D>();
    kill_child_inside_migration_2(&mut db, test, "tx", &m);
    assert_eq!(versions(&mut db), [v(1)], "no history row lies");
    assert!(!db.table_exists("made_by_2"));
    // The lock died with the process: the next boot does not wait for it.
    let report = db
        .run(&m.runner().target(2u64).lock_timeout(Duration::from_secs(5)))
        .map(|r| r.lock_wait);
    assert!(report.is_ok_and(|w| w < Duration::from_secs(1)));
    assert!(db.table_exists("made_by_2"));
    assert_eq!(versions(&mut db), [v(1), v(2)]);
}

fn killed_inside_a_no_transaction_migration_refuses_then_resumes<D: Db>(test: &str) {
    if let Some((role, url)) = child_role() {
        kill_child_main::<D>(&role, &url);
    }
    let mut db = D::fresh();
    let (_, m) = blocker_sets::<D>();
    kill_child_inside_migration_2(&mut db, test, "notx", &m);
    assert_eq!(rows(&mut db, &m)[1], (v(2), State::InProgress, 1, 3));
    let err = db.run(&m.runner()).unwrap_err();
    match &err {
        Error::Unfinished(u) => {
            assert_eq!(
                (u.version, u.state, u.statements_done, u.statements_total),
                (v(2), State::InProgress, 1, 3)
            );
            assert_eq!(u.next_line, Some(2));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("preflight repair --forget 2"));
    assert!(!db.table_exists("nt3"));
    let report = db.repair(&m.runner(), Repair::Resume(v(2))).unwrap();
    assert_eq!(report.applied_versions(), [v(2)]);
    assert!(report.warnings.contains(&Warning::Resumed {
        set: None,
        version: v(2),
        from_statement: 1
    }));
    assert!(db.table_exists("nt3"));
    assert_eq!(rows(&mut db, &m)[1], (v(2), State::Applied, 3, 3));
    assert!(db.run(&m.runner()).unwrap().fast_path);
}

fn failed_no_transaction_statement_is_recorded_and_repairs_are_recorded<D: Db>() {
    let mut db = D::fresh();
    let broken = set(vec![MigrationSpec::new(1, "nt", "").no_transaction(&[
        "CREATE TABLE IF NOT EXISTS n1 (id int);",
        "INSERT INTO missing_table VALUES (1);",
        "CREATE TABLE n3 (id int);",
    ])]);
    let err = db.run(&broken.runner()).unwrap_err();
    match &err {
        Error::Migration(e) => {
            assert_eq!((e.statement, e.line), (Some(1), Some(2)));
            assert_eq!(e.source.code.as_deref(), Some(D::MISSING_TABLE));
        }
        other => panic!("{other}"),
    }
    assert_eq!(rows(&mut db, &broken), [(v(1), State::Failed, 1, 3)]);
    let refused = db.run(&broken.runner()).unwrap_err();
    assert!(
        matches!(&refused, Error::Unfinished(u) if u.state == State::Failed),
        "{refused}"
    );
    assert!(refused.to_string().contains("missing_table"), "{refused}");
    db.repair(&broken.runner(), Repair::Forget(v(1))).unwrap();
    assert!(versions(&mut db).is_empty());
    assert!(
        db.run(&broken.runner()).is_err(),
        "runs again from the start"
    );
    db.exec("CREATE TABLE n3 (id int)");
    db.repair(&broken.runner(), Repair::MarkApplied(v(1)))
        .unwrap();
    assert_eq!(rows(&mut db, &broken), [(v(1), State::Applied, 3, 3)]);
    assert!(db.run(&broken.runner()).unwrap().fast_path);
    // The repair is recorded in the row it changed.
    let history = db.history(&broken.runner()).unwrap();
    let repaired = history[0].repaired.as_deref().unwrap_or_default();
    assert!(
        repaired.starts_with("mark-applied (was: failed 1/3) by "),
        "{repaired}"
    );
}

fn edited_migration_refuses_naming_both_checksums_and_can_be_accepted<D: Db>() {
    let mut db = D::fresh();
    db.run(&three().runner()).unwrap();
    let edited = set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id bigint primary key);"),
        MigrationSpec::new(2, "email", "ALTER TABLE users ADD email text;"),
        MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);"),
        MigrationSpec::new(4, "more", "CREATE TABLE more (id int);"),
    ]);
    let err = db.run(&edited.runner()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::ChecksumMismatch(ref c) if c.version == v(1)));
    assert!(text.contains(&three().get(v(1)).unwrap().checksum().to_string()));
    assert!(text.contains(&edited.get(v(1)).unwrap().checksum().to_string()));
    assert!(text.contains("1_users.sql"), "{text}");
    assert!(!db.table_exists("more"), "refused before touching anything");
    db.repair(&edited.runner(), Repair::AcceptChecksum(v(1)))
        .unwrap();
    assert_eq!(db.run(&edited.runner()).unwrap().applied_versions(), [v(4)]);
    assert!(db.run(&edited.runner()).unwrap().fast_path);
}

fn missing_ahead_and_out_of_order<D: Db>() {
    let mut db = D::fresh();
    db.run(&three().runner()).unwrap();
    // Missing: 2 applied, not in the binary.
    let without_2 = set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int primary key);")
            .down("DROP TABLE users;"),
        MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);").down("DROP TABLE posts;"),
    ]);
    let err = db.run(&without_2.runner()).unwrap_err();
    assert!(
        matches!(&err, Error::Missing { versions, .. } if versions == &[v(2)]),
        "{err}"
    );
    let report = db.run(&without_2.runner().allow_missing(true)).unwrap();
    assert_eq!(
        report.warnings,
        [Warning::Missing {
            set: None,
            versions: vec![v(2)]
        }]
    );
    // Ahead: an older binary boots with a warning.
    let old = set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int primary key);")
            .down("DROP TABLE users;"),
        MigrationSpec::new(2, "email", "ALTER TABLE users ADD email text;")
            .down("ALTER TABLE users DROP COLUMN email;"),
    ]);
    let report = db.run(&old.runner()).unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(
        report.warnings,
        [Warning::AheadOfBinary {
            set: None,
            versions: vec![v(3)]
        }]
    );
    // Out of order: 0.5 merged below the newest applied.
    let mut specs = vec![MigrationSpec::new(
        "0.5".parse::<Version>().unwrap(),
        "early",
        "CREATE TABLE early (id int);",
    )];
    specs.extend([
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int primary key);")
            .down("DROP TABLE users;"),
        MigrationSpec::new(2, "email", "ALTER TABLE users ADD email text;")
            .down("ALTER TABLE users DROP COLUMN email;"),
        MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);").down("DROP TABLE posts;"),
    ]);
    let merged = set(specs);
    let err = db.run(&merged.runner()).unwrap_err();
    assert!(
        matches!(&err, Error::OutOfOrder { newest_applied, .. } if *newest_applied == v(3)),
        "{err}"
    );
    assert!(!db.table_exists("early"));
    let report = db.run(&merged.runner().out_of_order(true)).unwrap();
    assert_eq!(
        report.applied_versions(),
        ["0.5".parse::<Version>().unwrap()]
    );
    assert!(db.run(&merged.runner()).unwrap().fast_path);
}

fn revert_by_steps_and_to_a_version_refusing_without_down<D: Db>() {
    let mut db = D::fresh();
    let m = three();
    db.run(&m.runner()).unwrap();
    let report = db.revert(&m.runner(), Revert::Steps(1)).unwrap();
    assert_eq!(report.reverted_versions(), [v(3)]);
    assert!(!db.table_exists("posts"));
    assert_eq!(versions(&mut db), [v(1), v(2)]);
    let report = db.revert(&m.runner(), Revert::To(v(0))).unwrap();
    assert_eq!(report.reverted_versions(), [v(2), v(1)]);
    assert!(versions(&mut db).is_empty() && !db.table_exists("users"));

    let partial = set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int);").down("DROP TABLE users;"),
        MigrationSpec::new(2, "keep", "CREATE TABLE keep (id int);"),
        MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);").down("DROP TABLE posts;"),
    ]);
    db.run(&partial.runner()).unwrap();
    let err = db.revert(&partial.runner(), Revert::To(v(0))).unwrap_err();
    assert!(matches!(err, Error::NoDown { .. }), "{err}");
    assert!(err.to_string().contains("2_keep.sql"), "{err}");
    assert_eq!(versions(&mut db), [v(1), v(2), v(3)]);
    assert!(db.table_exists("posts"), "nothing was touched");
}

/// diesel's first migration is `00000000000000_diesel_initial_setup`: version 0.
fn with_version_zero() -> Migrations {
    set(vec![
        MigrationSpec::new(0, "diesel_initial_setup", "CREATE TABLE setup0 (id int);")
            .down("DROP TABLE setup0;"),
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int);").down("DROP TABLE users;"),
    ])
}

fn down_to_zero_and_reset_revert_version_zero_too<D: Db>() {
    let mut db = D::fresh();
    let m = with_version_zero();
    db.run(&m.runner()).unwrap();
    let report = db.revert(&m.runner(), Revert::To(v(0))).unwrap();
    assert_eq!(report.reverted_versions(), [v(1), v(0)]);
    assert!(versions(&mut db).is_empty());
    assert!(!db.table_exists("setup0"));
    db.run(&m.runner()).unwrap();
    let report = m.runner().reset(db.conn()).unwrap();
    assert_eq!(report.reverted_versions(), [v(1), v(0)]);
    assert_eq!(report.applied_versions(), [v(0), v(1)]);
    assert_eq!(versions(&mut db), [v(0), v(1)]);
}

/// Migration 1 creates two tables; its down body runs outside a transaction, statement by
/// statement: `down` given as its statements.
fn with_no_transaction_down(down: &[&str]) -> Migrations {
    let up = "CREATE TABLE d1 (id int);\nCREATE TABLE d2 (id int);\n";
    let mut text = String::new();
    let mut spans = Vec::new();
    for statement in down {
        let start = text.len() as u32;
        text.push_str(statement);
        spans.push(Span::new(start, text.len() as u32));
        text.push('\n');
    }
    Migrations::from_parts(vec![MigrationParts {
        version: v(1),
        name: "two".into(),
        path: "1_two.up.sql".into(),
        checksum_text: up.into(),
        up: Body::owned(
            up.into(),
            vec![Span::new(0, up.len() as u32)],
            Kind::Transactional,
        ),
        down: Some(Body::owned(text, spans, Kind::NoTransaction)),
        requires: Vec::new(),
    }])
    .unwrap()
}

fn a_no_transaction_down_records_its_progress_and_continues<D: Db>() {
    let mut db = D::fresh();
    let broken = with_no_transaction_down(&[
        "DROP TABLE d1;",
        "DROP TABLE missing_table;",
        "DROP TABLE d2;",
    ]);
    db.run(&broken.runner()).unwrap();
    let err = db.revert(&broken.runner(), Revert::Steps(1)).unwrap_err();
    assert!(
        matches!(&err, Error::Migration(e) if e.down && e.statement == Some(1)),
        "{err}"
    );
    // Half-way: the row says so (it used to stay `applied`), with the down units done.
    assert_eq!(rows(&mut db, &broken), [(v(1), State::RevertFailed, 1, 3)]);
    assert!(!db.table_exists("d1") && db.table_exists("d2"));
    let refused = db.run(&broken.runner()).unwrap_err();
    assert!(
        refused.to_string().contains("was being reverted"),
        "{refused}"
    );
    // The down file fixed at the failed statement: the same revert continues there.
    let fixed = with_no_transaction_down(&[
        "DROP TABLE d1;",
        "DROP TABLE IF EXISTS missing_table;",
        "DROP TABLE d2;",
    ]);
    let report = db.revert(&fixed.runner(), Revert::Steps(1)).unwrap();
    assert_eq!(report.reverted_versions(), [v(1)]);
    assert!(versions(&mut db).is_empty() && !db.table_exists("d2"));

    // A completed down statement changed: refused, naming it and the command that resolves it.
    db.run(&broken.runner()).unwrap();
    db.revert(&broken.runner(), Revert::Steps(1)).unwrap_err();
    let edited = with_no_transaction_down(&[
        "DROP TABLE IF EXISTS d1;",
        "DROP TABLE IF EXISTS missing_table;",
        "DROP TABLE d2;",
    ]);
    let err = db.revert(&edited.runner(), Revert::Steps(1)).unwrap_err();
    assert!(
        matches!(&err, Error::CompletedChanged(c) if c.down && c.statement == Some(0)),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("completed down statement 1"), "{text}");
    assert!(text.contains("preflight repair --forget 1"), "{text}");
    // That command, in that state: the operator finished the revert by hand.
    db.exec("DROP TABLE d2");
    db.repair(&edited.runner(), Repair::Forget(v(1))).unwrap();
    assert!(versions(&mut db).is_empty());
    db.run(&edited.runner()).unwrap();
    assert!(db.table_exists("d1") && db.table_exists("d2"));
}

fn a_failed_no_transaction_migration_fixed_after_the_failure_resumes_there<D: Db>() {
    let mut db = D::fresh();
    let typo = [
        "CREATE TABLE f1 (id int);",
        "CREATE TABLE f2 (id innt);",
        "CREATE TABLE f3 (id int);",
    ];
    let first = |statements: &[&str]| {
        set(vec![
            MigrationSpec::new(1, "base", "CREATE TABLE base (id int);"),
            MigrationSpec::new(2, "nt", "").no_transaction(statements),
        ])
    };
    let broken = first(&typo);
    if db.run(&broken.runner()).is_ok() {
        // SQLite accepts any type name: make statement 2 fail there too.
        db.exec("DROP TABLE f2; DROP TABLE f3; DROP TABLE f1; DROP TABLE base; DROP TABLE preflight_history");
        let broken = first(&[typo[0], "INSERT INTO missing_table VALUES (1);", typo[2]]);
        return resumes_after_fix(&mut db, &broken, first);
    }
    resumes_after_fix(&mut db, &broken, first);
}

fn resumes_after_fix<D: Db>(
    db: &mut D,
    broken: &Migrations,
    first: impl Fn(&[&str]) -> Migrations,
) {
    let _ = db.run(&broken.runner());
    assert_eq!(rows(db, broken)[1], (v(2), State::Failed, 1, 3));
    // The engineer fixes statement 2; a plain run resumes there and says so.
    let fixed = first(&[
        "CREATE TABLE f1 (id int);",
        "CREATE TABLE f2 (id int);",
        "CREATE TABLE f3 (id int);",
    ]);
    let report = db.run(&fixed.runner()).unwrap();
    assert_eq!(report.applied_versions(), [v(2)]);
    assert!(report.warnings.contains(&Warning::ResumedAfterFix {
        set: None,
        version: v(2),
        from_statement: 1
    }));
    assert_eq!(rows(db, &fixed)[1], (v(2), State::Applied, 3, 3));
    let history = db.history(&fixed.runner()).unwrap();
    assert!(history[1].checksum_is(&fixed.get(v(2)).unwrap().checksum()));
    assert!(db.run(&fixed.runner()).unwrap().fast_path);

    // Again, but the fix also edits statement 1, which had run: refused, naming it and the
    // one command that resolves it, which is then run in that state.
    db.exec("DROP TABLE f1; DROP TABLE f2; DROP TABLE f3");
    db.repair(&fixed.runner(), Repair::Forget(v(2))).unwrap();
    let _ = db.run(&broken.runner().out_of_order(true));
    assert_eq!(rows(db, broken)[1], (v(2), State::Failed, 1, 3));
    let edited = first(&[
        "CREATE TABLE f1 (id int, note text);",
        "CREATE TABLE f2 (id int);",
        "CREATE TABLE f3 (id int);",
    ]);
    let err = db.run(&edited.runner()).unwrap_err();
    assert!(
        matches!(&err, Error::CompletedChanged(c) if c.statement == Some(0) && c.line == Some(1)),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("completed statement 1"), "{text}");
    assert!(text.contains("preflight repair --resume 2"), "{text}");
    let report = db.repair(&edited.runner(), Repair::Resume(v(2))).unwrap();
    assert_eq!(report.applied_versions(), [v(2)]);
    assert!(db.table_exists("f3"));
    assert!(db.run(&edited.runner()).unwrap().fast_path);
}

fn grouped_mode_is_all_or_nothing<D: Db>() {
    let mut db = D::fresh();
    let broken = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE ga (id int);"),
        MigrationSpec::new(2, "b", "CREATE TABLE gb (id int);"),
        MigrationSpec::new(
            3,
            "c",
            "CREATE TABLE gc (id int); INSERT INTO gone VALUES (1);",
        ),
    ]);
    let err = db.run(&broken.runner().grouped(true)).unwrap_err();
    assert!(
        matches!(&err, Error::Migration(e) if e.version == v(3)),
        "{err}"
    );
    assert!(!db.table_exists("ga") && !db.table_exists("gb"));
    assert!(versions(&mut db).is_empty());
    let fixed = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE ga (id int);"),
        MigrationSpec::new(2, "b", "CREATE TABLE gb (id int);"),
        MigrationSpec::new(3, "c", "CREATE TABLE gc (id int);"),
    ]);
    let report = db.run(&fixed.runner().grouped(true)).unwrap();
    assert_eq!(report.applied_versions(), [v(1), v(2), v(3)]);
    assert!(db.run(&fixed.runner()).unwrap().fast_path);
}

fn target_version_stops_there_and_is_current_there<D: Db>() {
    let mut db = D::fresh();
    let m = three();
    let report = db.run(&m.runner().target(2u64)).unwrap();
    assert_eq!(report.applied_versions(), [v(1), v(2)]);
    assert_eq!(
        report.skipped,
        [(preflight_runtime::DEFAULT_SET.to_owned(), v(3))]
    );
    assert!(db.run(&m.runner().target(2u64)).unwrap().fast_path);
    assert!(!db.run(&m.runner()).unwrap().fast_path);
    assert_eq!(versions(&mut db), [v(1), v(2), v(3)]);
    assert!(matches!(
        db.run(&m.runner().target(9u64)),
        Err(Error::UnknownVersion(_))
    ));
}

fn lock_timeout_names_the_holder_then_goes_through<D: Db>() {
    let mut db = D::fresh();
    let guard = db.hold_migration_lock();
    let started = Instant::now();
    let err = db
        .run(&three().runner().lock_timeout(Duration::from_millis(300)))
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        matches!(
            &err,
            Error::LockTimeout {
                holder: Some(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(!db.table_exists("users"));
    drop(guard);
    assert_eq!(db.run(&three().runner()).unwrap().applied.len(), 3);
}

/// Instantiates every shared test for one backend.
/// The same call applies a set whatever the driver: one generic function, called with a
/// `postgres::Client` and a `rusqlite::Connection`.
fn migrate<C: Connection + ?Sized>(set: &Migrations, conn: &mut C) -> Report {
    set.run(conn).unwrap()
}

fn the_same_call_applies_a_set_on_every_driver<D: Db>() {
    let mut db = D::fresh();
    let m = three();
    let first = migrate(&m, db.conn());
    assert_eq!(first.applied_versions(), [v(1), v(2), v(3)]);
    assert!(migrate(&m, db.conn()).fast_path);
    assert_eq!(m.history(db.conn()).unwrap().len(), 3);
    let reverted = m.revert(db.conn(), Revert::Steps(1)).unwrap();
    assert_eq!(reverted.reverted_versions(), [v(3)]);
    assert!(!db.table_exists("posts"));
}

fn a_dry_run_takes_the_same_decisions_as_the_run<D: Db>() {
    let mut db = D::fresh();
    let m = three();
    // Nothing is written by a dry run, not even the history table.
    let plan = m.plan(db.conn()).unwrap();
    assert!(!db.table_exists("preflight_history"));
    let planned = |p: &preflight_runtime::Plan<'_>| -> Vec<Version> {
        p.apply.iter().map(|s| s.migration().version()).collect()
    };
    assert_eq!(planned(&plan), [v(1), v(2), v(3)]);

    // A target: the same steps, the same skipped versions.
    let to_one = m.runner().target(v(1));
    let plan = to_one.plan(db.conn()).unwrap();
    let report = to_one.run(db.conn()).unwrap();
    assert_eq!(planned(&plan), report.applied_versions());
    let skipped: Vec<Version> = plan
        .skipped
        .iter()
        .map(|s| s.migration().version())
        .collect();
    assert_eq!(skipped, [v(2), v(3)]);
    let in_set = |v| (m.set().to_owned(), v);
    assert_eq!(report.skipped, [in_set(v(2)), in_set(v(3))]);

    // A policy refusal is the same error: 3 applied by a set without 2, then 2 is pending
    // below it.
    let without_two = set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int primary key);")
            .down("DROP TABLE users;"),
        MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);").down("DROP TABLE posts;"),
    ]);
    db.run(&without_two.runner()).unwrap();
    let refused_plan = m.plan(db.conn()).unwrap_err();
    let refused_run = m.run(db.conn()).unwrap_err();
    assert!(
        matches!(refused_run, Error::OutOfOrder { .. }),
        "{refused_run}"
    );
    assert_eq!(refused_plan.to_string(), refused_run.to_string());
    assert!(refused_plan.is_refusal());

    // Allowed, the same step and the same warning.
    let allowed = m.runner().out_of_order(true);
    let plan = allowed.plan(db.conn()).unwrap();
    let report = allowed.run(db.conn()).unwrap();
    assert_eq!(planned(&plan), [v(2)]);
    assert_eq!(planned(&plan), report.applied_versions());
    assert_eq!(plan.warnings, report.warnings);

    // A revert: the same migrations, newest first.
    let plan = m.plan_revert(db.conn(), Revert::Steps(2)).unwrap();
    let listed: Vec<Version> = plan
        .revert
        .iter()
        .map(|m| m.migration().version())
        .collect();
    let report = m.revert(db.conn(), Revert::Steps(2)).unwrap();
    assert_eq!(listed, report.reverted_versions());
    assert_eq!(listed, [v(3), v(2)]);

    // Current: nothing planned, and the run takes the fast path.
    m.run(db.conn()).unwrap();
    assert!(m.plan(db.conn()).unwrap().is_empty());
    assert!(m.run(db.conn()).unwrap().fast_path);
}

fn a_baseline_is_one_step_all_or_nothing<D: Db>() {
    let mut db = D::fresh();
    let m = three();
    db.run(&m.runner().target(v(1))).unwrap();
    // The baseline records 2 and 3; the insert of 3 fails half-way through.
    db.refuse_history_insert("3");
    let err = db.repair(&m.runner(), Repair::Baseline(v(3))).unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    assert_eq!(versions(&mut db), [v(1)], "nothing of the baseline remains");

    db.allow_history_inserts();
    let report = db.repair(&m.runner(), Repair::Baseline(v(3))).unwrap();
    assert_eq!(report.marked, [v(2), v(3)]);
    assert!(report.applied.is_empty());
    assert_eq!(versions(&mut db), [v(1), v(2), v(3)]);
    let history = db.history(&m.runner()).unwrap();
    assert!(history[0].repaired.is_none());
    for row in &history[1..] {
        let note = row.repaired.as_deref().unwrap_or_default();
        assert!(
            note.starts_with("baseline 3: recorded as applied without running it by "),
            "{note}"
        );
    }
    // Recorded without running: migration 3's table was never created.
    assert!(!db.table_exists("posts"));
    assert!(db.run(&m.runner()).unwrap().fast_path);
}

fn a_reset_reverts_or_tears_down_under_the_lock_then_reapplies<D: Db>() {
    let mut db = D::fresh();
    let m = three();
    db.run(&m.runner()).unwrap();
    db.exec("INSERT INTO users (id) VALUES (7)");
    // Every migration is reversible: the reset reverts, as its dry run says.
    let plan = m.plan_reset(db.conn()).unwrap();
    let listed: Vec<Version> = plan
        .revert
        .iter()
        .map(|m| m.migration().version())
        .collect();
    assert_eq!(listed, [v(3), v(2), v(1)]);
    assert!(plan.teardown.is_none());
    let report = m.reset(db.conn()).unwrap();
    assert_eq!(report.reverted_versions(), listed);
    assert_eq!(report.applied_versions(), [v(1), v(2), v(3)]);
    assert!(report.lock_taken);
    assert_eq!(db.count("SELECT count(*) FROM users"), 0);

    // Not reversible (no down body): every object of the schema is dropped instead.
    let forward = set(vec![MigrationSpec::new(
        1,
        "users",
        "CREATE TABLE users (id int primary key);",
    )]);
    let mut db = D::fresh();
    db.run(&forward.runner()).unwrap();
    db.exec("CREATE TABLE leftover (id int)");
    let plan = forward.plan_reset(db.conn()).unwrap();
    let teardown = plan.teardown.expect("a teardown");
    assert!(teardown.not_reversible[0].contains("has no down migration"));
    let names: Vec<&str> = teardown.objects.iter().map(|o| o.name.as_str()).collect();
    assert!(names.iter().any(|n| n.ends_with("leftover")), "{names:?}");
    let report = forward.reset(db.conn()).unwrap();
    assert_eq!(report.applied_versions(), [v(1)]);
    assert!(!db.table_exists("leftover"));
    assert_eq!(versions(&mut db), [v(1)]);
}

macro_rules! shared_tests {
    ($module:ident, $db:ty) => {
        mod $module {
            use super::*;

            fn name(test: &str) -> String {
                format!("{}::{test}", stringify!($module))
            }

            #[test]
            fn applies_once_then_takes_the_fast_path() {
                super::applies_once_then_takes_the_fast_path::<$db>();
            }
            #[test]
            fn failing_body_rolls_back_and_names_statement_and_line() {
                super::failing_body_rolls_back_and_names_statement_and_line::<$db>();
            }
            #[test]
            fn eight_threads_race_and_apply_each_migration_once() {
                super::eight_threads_race_and_apply_each_migration_once::<$db>();
            }
            #[test]
            fn eight_processes_race_and_apply_each_migration_once() {
                super::eight_processes_race_and_apply_each_migration_once::<$db>(&name(
                    "eight_processes_race_and_apply_each_migration_once",
                ));
            }
            #[test]
            fn killed_inside_a_transactional_migration_nothing_is_recorded() {
                super::killed_inside_a_transactional_migration_nothing_is_recorded::<$db>(&name(
                    "killed_inside_a_transactional_migration_nothing_is_recorded",
                ));
            }
            #[test]
            fn killed_inside_a_no_transaction_migration_refuses_then_resumes() {
                super::killed_inside_a_no_transaction_migration_refuses_then_resumes::<$db>(&name(
                    "killed_inside_a_no_transaction_migration_refuses_then_resumes",
                ));
            }
            #[test]
            fn failed_no_transaction_statement_is_recorded_and_repairs_are_recorded() {
                super::failed_no_transaction_statement_is_recorded_and_repairs_are_recorded::<$db>();
            }
            #[test]
            fn down_to_zero_and_reset_revert_version_zero_too() {
                super::down_to_zero_and_reset_revert_version_zero_too::<$db>();
            }
            #[test]
            fn a_no_transaction_down_records_its_progress_and_continues() {
                super::a_no_transaction_down_records_its_progress_and_continues::<$db>();
            }
            #[test]
            fn a_failed_no_transaction_migration_fixed_after_the_failure_resumes_there() {
                super::a_failed_no_transaction_migration_fixed_after_the_failure_resumes_there::<$db>();
            }
            #[test]
            fn edited_migration_refuses_naming_both_checksums_and_can_be_accepted() {
                super::edited_migration_refuses_naming_both_checksums_and_can_be_accepted::<$db>();
            }
            #[test]
            fn missing_ahead_and_out_of_order() {
                super::missing_ahead_and_out_of_order::<$db>();
            }
            #[test]
            fn revert_by_steps_and_to_a_version_refusing_without_down() {
                super::revert_by_steps_and_to_a_version_refusing_without_down::<$db>();
            }
            #[test]
            fn grouped_mode_is_all_or_nothing() {
                super::grouped_mode_is_all_or_nothing::<$db>();
            }
            #[test]
            fn target_version_stops_there_and_is_current_there() {
                super::target_version_stops_there_and_is_current_there::<$db>();
            }
            #[test]
            fn the_same_call_applies_a_set_on_every_driver() {
                super::the_same_call_applies_a_set_on_every_driver::<$db>();
            }
            #[test]
            fn a_dry_run_takes_the_same_decisions_as_the_run() {
                super::a_dry_run_takes_the_same_decisions_as_the_run::<$db>();
            }
            #[test]
            fn a_baseline_is_one_step_all_or_nothing() {
                super::a_baseline_is_one_step_all_or_nothing::<$db>();
            }
            #[test]
            fn a_reset_reverts_or_tears_down_under_the_lock_then_reapplies() {
                super::a_reset_reverts_or_tears_down_under_the_lock_then_reapplies::<$db>();
            }
            #[test]
            fn lock_timeout_names_the_holder_then_goes_through() {
                super::lock_timeout_names_the_holder_then_goes_through::<$db>();
            }
        }
    };
}

shared_tests!(postgres, pg::Pg);
shared_tests!(sqlite, lite::Lite);
