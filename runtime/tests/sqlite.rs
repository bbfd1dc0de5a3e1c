//! What only SQLite has: in-memory databases, `VACUUM`, triggers with inner semicolons, the
//! layout marker in `sqlite_schema`, the connection's busy timeout, attached databases and the
//! lock file. The behaviour shared with PostgreSQL is in `backends.rs`.

use std::time::Duration;

use preflight_runtime::lock::Holder;
use preflight_runtime::{Error, LockStrategy, MigrationSpec, Migrations, State, Version};
use rusqlite::Connection;

fn set(specs: Vec<MigrationSpec>) -> Migrations {
    Migrations::from_specs(specs).unwrap()
}

fn file_db() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = Connection::open(&path).unwrap();
    (dir, path, conn)
}

#[test]
fn in_memory_database_migrates_without_a_lock_file() {
    let mut conn = Connection::open_in_memory().unwrap();
    let m = set(vec![MigrationSpec::new(
        1,
        "users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT UNIQUE);",
    )]);
    let report = m.run(&mut conn).unwrap();
    assert_eq!(report.applied_versions(), [Version::new(1)]);
    assert!(m.run(&mut conn).unwrap().fast_path);
    conn.execute("INSERT INTO users (email) VALUES ('a@b')", [])
        .unwrap();
}

#[test]
fn triggers_vacuum_and_the_layout_marker() {
    let (_dir, path, mut conn) = file_db();
    let m = set(vec![
        MigrationSpec::new(
            1,
            "counts",
            "CREATE TABLE items (id INTEGER PRIMARY KEY);\n\
             CREATE TABLE counts (n INTEGER NOT NULL);\n\
             INSERT INTO counts VALUES (0);\n\
             CREATE TRIGGER items_count AFTER INSERT ON items BEGIN\n\
               UPDATE counts SET n = n + 1;\n\
               SELECT 'a; b';\n\
             END;",
        ),
        // VACUUM cannot run inside a transaction: a no-transaction migration.
        MigrationSpec::new(2, "vacuum", "").no_transaction(&["VACUUM;"]),
    ]);
    let report = m.run(&mut conn).unwrap();
    assert_eq!(report.applied.len(), 2);
    conn.execute_batch("INSERT INTO items DEFAULT VALUES; INSERT INTO items DEFAULT VALUES;")
        .unwrap();
    let n: i64 = conn
        .query_row("SELECT n FROM counts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2, "the whole trigger body was one statement");
    let rows = m.runner().history(&mut conn).unwrap();
    assert_eq!(rows[1].state, State::Applied);
    assert_eq!((rows[1].statements_done, rows[1].statements_total), (1, 1));
    let definition: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'preflight_history'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        definition.contains(preflight_runtime::history::LAYOUT),
        "{definition}"
    );
    // The lock file exists next to the database and nobody holds it any more.
    let mut lock = path.as_os_str().to_owned();
    lock.push("-preflight-lock");
    let other = Connection::open(std::path::PathBuf::from(lock)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE; ROLLBACK").unwrap();
}

#[test]
fn a_foreign_table_with_the_history_name_is_refused() {
    let (_dir, _path, mut conn) = file_db();
    conn.execute_batch("CREATE TABLE preflight_history (version text)")
        .unwrap();
    let err = set(vec![MigrationSpec::new(1, "a", "CREATE TABLE a (id int);")])
        .run(&mut conn)
        .unwrap_err();
    assert!(matches!(err, Error::History(_)), "{err}");
    assert!(err.to_string().contains("preflight-history v2"), "{err}");
}

#[test]
fn busy_timeout_is_restored_and_an_open_transaction_is_refused() {
    let (_dir, _path, mut conn) = file_db();
    conn.busy_timeout(Duration::from_millis(1234)).unwrap();
    let m = set(vec![MigrationSpec::new(1, "a", "CREATE TABLE a (id int);")]);
    m.runner()
        .lock_timeout(Duration::from_secs(7))
        .run(&mut conn)
        .unwrap();
    let ms: i64 = conn
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ms, 1234);

    let more = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE a (id int);"),
        MigrationSpec::new(2, "b", "CREATE TABLE b (id int);"),
    ]);
    conn.execute_batch("BEGIN").unwrap();
    let err = more.run(&mut conn).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(more.run(&mut conn).unwrap().applied.len(), 1);
}

#[test]
fn quoted_table_in_an_attached_database() {
    let (dir, _path, mut conn) = file_db();
    let aux = dir.path().join("aux.db");
    conn.execute("ATTACH DATABASE ?1 AS ops", [aux.to_str().unwrap()])
        .unwrap();
    let table = "my \"history\"; DROP TABLE x; --";
    let m = set(vec![MigrationSpec::new(1, "a", "CREATE TABLE a (id int);")]);
    let runner = m.runner().schema("ops").table(table);
    assert_eq!(runner.run(&mut conn).unwrap().applied.len(), 1);
    assert!(runner.run(&mut conn).unwrap().fast_path);
    // One table (and its indexes) in the attached database, nothing else.
    let objects: Vec<(String, String)> = conn
        .prepare("SELECT type, name FROM ops.sqlite_schema ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let tables: Vec<&str> = objects
        .iter()
        .filter(|(kind, _)| kind != "index")
        .map(|(_, name)| name.as_str())
        .collect();
    assert_eq!(tables, [table], "{objects:?}");
    // The default table in `main` is a different history.
    assert!(m.runner().history(&mut conn).unwrap().is_empty());
    // An unknown attached database is a configuration error, not a crash.
    let err = m.runner().schema("nope").run(&mut conn).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn lock_timeout_names_the_lock_file_and_lease_is_refused() {
    let (_dir, path, mut conn) = file_db();
    let mut lock = path.as_os_str().to_owned();
    lock.push("-preflight-lock");
    let holder = Connection::open(std::path::PathBuf::from(&lock)).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let m = set(vec![MigrationSpec::new(1, "a", "CREATE TABLE a (id int);")]);
    let err = m
        .runner()
        .lock_timeout(Duration::from_millis(100))
        .run(&mut conn)
        .unwrap_err();
    match &err {
        Error::LockTimeout {
            holder: Some(h), ..
        } => assert!(
            matches!(h.as_ref(), Holder::LockFile { path, .. } if path.ends_with("app.db-preflight-lock"))
        ),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("app.db-preflight-lock"), "{err}");
    drop(holder);
    let err = m
        .runner()
        .lock(LockStrategy::lease())
        .run(&mut conn)
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(m.run(&mut conn).is_ok());
}

/// A child process holds the lock file (as a migrating replica would): the timeout names its
/// pid (Linux), and once it is killed the lock is free at once — it died with the process.
#[test]
fn lock_held_by_another_process_names_its_pid_and_dies_with_it() {
    if let Ok(lock) = std::env::var("PREFLIGHT_CHILD_LOCK") {
        let holder = Connection::open(&lock).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::fs::write(format!("{lock}.held"), "").unwrap();
        loop {
            std::thread::park();
        }
    }
    let (_dir, path, mut conn) = file_db();
    let lock = format!("{}-preflight-lock", path.display());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "lock_held_by_another_process_names_its_pid_and_dies_with_it",
            "--exact",
            "--nocapture",
        ])
        .env("PREFLIGHT_CHILD_LOCK", &lock)
        .spawn()
        .unwrap();
    let held = std::path::PathBuf::from(format!("{lock}.held"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Waits for a fact (the child has the lock), not for time to pass.
    while !held.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let m = set(vec![MigrationSpec::new(1, "a", "CREATE TABLE a (id int);")]);
    let err = m
        .runner()
        .lock_timeout(Duration::from_millis(100))
        .run(&mut conn)
        .unwrap_err();
    match &err {
        Error::LockTimeout {
            holder: Some(h), ..
        } => match h.as_ref() {
            Holder::LockFile { pid, .. } => {
                if cfg!(target_os = "linux") {
                    assert_eq!(*pid, Some(i32::try_from(child.id()).unwrap()), "{err}");
                }
            }
            other => panic!("{other}"),
        },
        other => panic!("{other}"),
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let report = m
        .runner()
        .lock_timeout(Duration::from_secs(5))
        .run(&mut conn)
        .unwrap();
    assert_eq!(report.applied.len(), 1);
    assert!(report.lock_wait < Duration::from_secs(1), "{report:?}");
}

/// The objects of an attached database besides its indexes: (type, name).
fn objects(conn: &Connection, schema: &str) -> Vec<(String, String)> {
    conn.prepare(&format!(
        "SELECT type, name FROM {schema}.sqlite_schema WHERE type <> 'index' ORDER BY type, name"
    ))
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn the_fast_path_reads_the_newest_row_and_sees_unfinished_and_newer_rows() {
    let (dir, _path, mut conn) = file_db();
    conn.execute(
        "ATTACH DATABASE ?1 AS aux",
        [dir.path().join("aux.db").to_str().unwrap()],
    )
    .unwrap();
    let m = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE a (id INTEGER);"),
        MigrationSpec::new(2, "b", "CREATE TABLE b (id INTEGER);"),
    ]);
    let runner = m.runner().schema("aux").table("h");
    runner.run(&mut conn).unwrap();
    // The migrations went to `main`; `aux` holds the history table alone (and its indexes).
    assert_eq!(
        objects(&conn, "aux"),
        [("table".to_owned(), "h".to_owned())]
    );
    assert!(runner.run(&mut conn).unwrap().fast_path);
    // An unfinished row (here one the binary does not know): no fast path, and a refusal.
    conn.execute(
        "INSERT INTO aux.h (\"set\", version, ord, name, checksum, chain, state) \
         VALUES (?1, '3', ?2, 'by hand', 'x', 'x', 'in_progress')",
        [
            m.set(),
            &preflight_runtime::history::order_key(Version::new(3)),
        ],
    )
    .unwrap();
    assert!(matches!(runner.run(&mut conn), Err(Error::Unfinished(_))));
    // Applied, it is newer than the binary's newest: the slow path warns.
    conn.execute_batch("UPDATE aux.h SET state = 'applied' WHERE version = '3'")
        .unwrap();
    let report = runner.run(&mut conn).unwrap();
    assert!(!report.fast_path && report.applied.is_empty());
    assert!(matches!(
        report.warnings[..],
        [preflight_runtime::Warning::AheadOfBinary { .. }]
    ));
    conn.execute_batch("DELETE FROM aux.h WHERE version = '3'")
        .unwrap();
    assert!(runner.run(&mut conn).unwrap().fast_path);
    // A row deleted by hand below the newest is the slow path's business: the fast path
    // still finds the goal row; the next slow path (a release with a new migration) sees it.
    conn.execute_batch("DELETE FROM aux.h WHERE version = '1'")
        .unwrap();
    assert!(runner.run(&mut conn).unwrap().fast_path);
    let next = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE a (id INTEGER);"),
        MigrationSpec::new(2, "b", "CREATE TABLE b (id INTEGER);"),
        MigrationSpec::new(3, "c", "CREATE TABLE c (id INTEGER);"),
    ]);
    let err = next
        .runner()
        .schema("aux")
        .table("h")
        .run(&mut conn)
        .unwrap_err();
    assert!(matches!(err, Error::OutOfOrder { .. }), "{err}");
}

/// A history of layout 1 as Preflight 0.1 wrote it on SQLite: the table with its marker, the
/// row count kept by three triggers, and the log.
fn layout_1(conn: &Connection, rows: &[(&str, &str, &str)]) {
    conn.execute_batch(
        "CREATE TABLE \"main\".\"preflight_history\" ( -- preflight-history v1
           version text PRIMARY KEY NOT NULL,
           name text NOT NULL,
           checksum text NOT NULL,
           chain text NOT NULL,
           state text NOT NULL CHECK (state IN ('applied', 'in_progress', 'failed')),
           statements_done integer NOT NULL DEFAULT 0,
           statements_total integer NOT NULL DEFAULT 0,
           applied_at text NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00', 'now')),
           execution_ms integer NOT NULL DEFAULT 0,
           applied_by text NOT NULL DEFAULT '',
           error text
         );
         CREATE TABLE IF NOT EXISTS \"main\".\"preflight_history_log\" (
           at text NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00', 'now')),
           action text NOT NULL,
           version text,
           detail text NOT NULL,
           performed_by text NOT NULL
         );
         CREATE TABLE IF NOT EXISTS \"main\".\"preflight_history_count\" (
           id integer PRIMARY KEY CHECK (id = 1),
           total integer NOT NULL,
           unfinished integer NOT NULL
         );
         CREATE TRIGGER IF NOT EXISTS \"main\".\"preflight_history_count_insert\" AFTER INSERT ON \"preflight_history\" BEGIN UPDATE \"preflight_history_count\" SET total = total + 1, unfinished = unfinished + (NEW.state <> 'applied') WHERE id = 1; END;
         CREATE TRIGGER IF NOT EXISTS \"main\".\"preflight_history_count_delete\" AFTER DELETE ON \"preflight_history\" BEGIN UPDATE \"preflight_history_count\" SET total = total - 1, unfinished = unfinished - (OLD.state <> 'applied') WHERE id = 1; END;
         CREATE TRIGGER IF NOT EXISTS \"main\".\"preflight_history_count_state\" AFTER UPDATE OF state ON \"preflight_history\" WHEN OLD.state IS NOT NEW.state BEGIN UPDATE \"preflight_history_count\" SET unfinished = unfinished + (NEW.state <> 'applied') - (OLD.state <> 'applied') WHERE id = 1; END;
         INSERT INTO preflight_history_count VALUES (1, 0, 0);",
    )
    .unwrap();
    for (version, checksum, chain) in rows {
        conn.execute(
            "INSERT INTO preflight_history (version, name, checksum, chain, state, \
             statements_done, statements_total, applied_by) \
             VALUES (?1, 'm' || ?1, ?2, ?3, 'applied', 1, 1, 'v1 binary')",
            [version, checksum, chain],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO preflight_history_log (action, version, detail, performed_by) \
         VALUES ('accept-checksum', '1', 'checksum x replaced by y', 'ops')",
        [],
    )
    .unwrap();
}

#[test]
fn a_layout_1_history_is_upgraded_in_place_under_the_lock() {
    let (_dir, _path, mut conn) = file_db();
    let m = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE a (id INTEGER);"),
        MigrationSpec::new(2, "b", "CREATE TABLE b (id INTEGER);"),
        MigrationSpec::new(3, "c", "CREATE TABLE c (id INTEGER);"),
    ])
    .named("app");
    let recorded: Vec<(String, String, String)> = m
        .iter()
        .take(2)
        .map(|x| {
            (
                x.version().to_string(),
                x.checksum().to_string(),
                x.chain().to_string(),
            )
        })
        .collect();
    conn.execute_batch("CREATE TABLE a (id INTEGER); CREATE TABLE b (id INTEGER);")
        .unwrap();
    let rows: Vec<(&str, &str, &str)> = recorded
        .iter()
        .map(|(v, c, h)| (v.as_str(), c.as_str(), h.as_str()))
        .collect();
    layout_1(&conn, &rows);
    // A dry run reads it as it is, with the set an upgrade would give it.
    let plan = m.plan(&mut conn).unwrap();
    assert_eq!(plan.apply.len(), 1);
    let before = m.history(&mut conn).unwrap();
    assert!(before.iter().all(|r| r.set == "app"), "{before:?}");
    // The run upgrades it and applies what is pending.
    let report = m.run(&mut conn).unwrap();
    assert_eq!(report.applied_versions(), [Version::new(3)]);
    assert_eq!(
        objects(&conn, "main"),
        [
            ("table".to_owned(), "a".to_owned()),
            ("table".to_owned(), "b".to_owned()),
            ("table".to_owned(), "c".to_owned()),
            ("table".to_owned(), "preflight_history".to_owned())
        ]
    );
    let rows = m.history(&mut conn).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.set == "app"));
    assert_eq!(rows[0].applied_by, "v1 binary");
    let repaired = rows[0].repaired.as_deref().unwrap_or_default();
    assert!(
        repaired.starts_with("accept-checksum: checksum x replaced by y by ops at "),
        "{repaired}"
    );
    let definition: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'preflight_history'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(definition.contains("preflight-history v2"), "{definition}");
    assert!(m.run(&mut conn).unwrap().fast_path);
}

/// Migrations that each record the connection's `synchronous` level while they run.
fn synchronous_probes() -> Migrations {
    set((1..=3)
        .map(|n| {
            MigrationSpec::new(
                n,
                &format!("probe{n}"),
                &format!(
                    "CREATE TABLE p{n} AS SELECT synchronous AS level FROM pragma_synchronous;"
                ),
            )
        })
        .collect())
}

fn probed_levels(conn: &Connection) -> Vec<i64> {
    (1..=3)
        .map(|n| {
            conn.query_row(&format!("SELECT level FROM p{n}"), [], |r| r.get(0))
                .unwrap()
        })
        .collect()
}

#[test]
fn in_wal_mode_every_migration_but_the_last_commits_unsynced() {
    // WAL, FULL: NORMAL (1) for the first two, FULL (2) for the last, FULL restored after.
    let (_dir, _path, mut conn) = file_db();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
        .unwrap();
    synchronous_probes().run(&mut conn).unwrap();
    assert_eq!(probed_levels(&conn), [1, 1, 2]);
    let level: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(level, 2);
    // WAL, EXTRA: restored to EXTRA.
    let (_dir, _path, mut conn) = file_db();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = EXTRA")
        .unwrap();
    synchronous_probes().run(&mut conn).unwrap();
    assert_eq!(probed_levels(&conn), [1, 1, 3]);
    // Rollback journal: every commit synced.
    let (_dir, _path, mut conn) = file_db();
    conn.execute_batch("PRAGMA synchronous = FULL").unwrap();
    synchronous_probes().run(&mut conn).unwrap();
    assert_eq!(probed_levels(&conn), [2, 2, 2]);
    // WAL with another database attached: its commits would not be synced by the last one.
    let (dir, _path, mut conn) = file_db();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
        .unwrap();
    conn.execute(
        "ATTACH DATABASE ?1 AS other",
        [dir.path().join("other.db").to_str().unwrap()],
    )
    .unwrap();
    synchronous_probes().run(&mut conn).unwrap();
    assert_eq!(probed_levels(&conn), [2, 2, 2]);
}

#[test]
fn synchronous_commits_keeps_every_commit_synced_in_wal_mode() {
    let (_dir, _path, mut conn) = file_db();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
        .unwrap();
    synchronous_probes()
        .runner()
        .synchronous_commits(true)
        .run(&mut conn)
        .unwrap();
    assert_eq!(probed_levels(&conn), [2, 2, 2]);
}

#[test]
fn a_layout_1_history_upgraded_by_a_composition_goes_to_the_set_it_matches() {
    let (_dir, _path, mut conn) = file_db();
    let app = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE a (id INTEGER);"),
        MigrationSpec::new(2, "b", "CREATE TABLE b (id INTEGER);"),
    ])
    .named("app");
    let auth = set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id INTEGER);"),
        MigrationSpec::new(2, "roles", "CREATE TABLE roles (id INTEGER);"),
    ])
    .named("auth");
    let recorded: Vec<(String, String, String)> = app
        .iter()
        .map(|x| {
            (
                x.version().to_string(),
                x.checksum().to_string(),
                x.chain().to_string(),
            )
        })
        .collect();
    conn.execute_batch("CREATE TABLE a (id INTEGER); CREATE TABLE b (id INTEGER);")
        .unwrap();
    let rows: Vec<(&str, &str, &str)> = recorded
        .iter()
        .map(|(v, c, h)| (v.as_str(), c.as_str(), h.as_str()))
        .collect();
    layout_1(&conn, &rows);
    // auth is listed first, and has versions 1 and 2 too: the rows are app's by their checksums.
    let all = preflight_runtime::compose([&auth, &app]).unwrap();
    let report = all.run(&mut conn).unwrap();
    let applied: Vec<(String, Version)> = report
        .applied
        .iter()
        .map(|a| (a.set.clone(), a.version))
        .collect();
    assert_eq!(
        applied,
        [
            ("auth".to_owned(), Version::new(1)),
            ("auth".to_owned(), Version::new(2))
        ]
    );
    let history = all.history(&mut conn).unwrap();
    let sets: Vec<&str> = history.iter().map(|r| r.set.as_str()).collect();
    assert_eq!(sets, ["app", "app", "auth", "auth"]);
    assert!(all.run(&mut conn).unwrap().fast_path);
}

#[test]
fn a_read_only_file_boots_on_the_fast_path() {
    let (_dir, path, mut conn) = file_db();
    let m = set(vec![MigrationSpec::new(
        1,
        "a",
        "CREATE TABLE a (id INTEGER);",
    )]);
    m.run(&mut conn).unwrap();
    drop(conn);
    let mut read_only =
        Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let report = m.run(&mut read_only).unwrap();
    assert!(report.fast_path, "{report:?}");
}
