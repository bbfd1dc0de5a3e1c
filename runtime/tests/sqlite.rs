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
    assert!(definition.contains("preflight-history v1"), "{definition}");
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
    assert!(err.to_string().contains("preflight-history v1"), "{err}");
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
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM ops.sqlite_schema WHERE name IN (?1, ?2)",
            [table, &format!("{table}_log")],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2);
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

/// (total, unfinished) as `h_count` holds them, and as counting the rows says.
fn counts(conn: &Connection) -> ((i64, i64), (i64, i64)) {
    let pair = |sql: &str| {
        conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    };
    (
        pair("SELECT total, unfinished FROM aux.h_count"),
        pair("SELECT count(*), count(*) FILTER (WHERE state <> 'applied') FROM aux.h"),
    )
}

#[test]
fn the_trigger_kept_row_count_follows_every_write_and_a_history_without_it_gets_it() {
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
    assert_eq!(counts(&conn), ((2, 0), (2, 0)));
    assert!(runner.run(&mut conn).unwrap().fast_path);
    conn.execute_batch(
        "INSERT INTO aux.h (version, name, checksum, chain, state) \
         VALUES ('3', 'by hand', 'x', 'x', 'in_progress')",
    )
    .unwrap();
    assert_eq!(counts(&conn), ((3, 1), (3, 1)));
    conn.execute_batch("UPDATE aux.h SET state = 'applied' WHERE version = '3'")
        .unwrap();
    assert_eq!(counts(&conn), ((3, 0), (3, 0)));
    // One row more than the binary knows, seen through the count alone.
    let report = runner.run(&mut conn).unwrap();
    assert!(!report.fast_path && report.applied.is_empty());
    conn.execute_batch("DELETE FROM aux.h WHERE version = '3'")
        .unwrap();
    assert_eq!(counts(&conn), ((2, 0), (2, 0)));
    assert!(runner.run(&mut conn).unwrap().fast_path);
    // A history from before the count: the next boot installs it, the one after is fast.
    conn.execute_batch(
        "DROP TRIGGER aux.h_count_insert; DROP TRIGGER aux.h_count_delete; \
         DROP TRIGGER aux.h_count_state; DROP TABLE aux.h_count",
    )
    .unwrap();
    let report = runner.run(&mut conn).unwrap();
    assert!(!report.fast_path && report.applied.is_empty());
    assert_eq!(counts(&conn), ((2, 0), (2, 0)));
    assert!(runner.run(&mut conn).unwrap().fast_path);
    // A count that drifted (a trigger dropped meanwhile) is recounted by the next slow path,
    // and the trigger restored.
    conn.execute_batch(
        "DROP TRIGGER aux.h_count_delete; DELETE FROM aux.h WHERE version = '2'; DROP TABLE b",
    )
    .unwrap();
    assert_eq!(counts(&conn), ((2, 0), (1, 0)));
    let report = runner.run(&mut conn).unwrap();
    assert_eq!(report.applied_versions(), [Version::new(2)]);
    assert_eq!(counts(&conn), ((2, 0), (2, 0)));
    // The count's row deleted: the slow path puts it back.
    conn.execute_batch("DELETE FROM aux.h_count").unwrap();
    let report = runner.run(&mut conn).unwrap();
    assert!(!report.fast_path && report.applied.is_empty());
    assert_eq!(counts(&conn), ((2, 0), (2, 0)));
    assert!(runner.run(&mut conn).unwrap().fast_path);
    conn.execute_batch("DELETE FROM aux.h WHERE version = '2'")
        .unwrap();
    assert_eq!(counts(&conn), ((1, 0), (1, 0)));
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
fn a_read_only_file_with_a_history_from_before_the_row_count_still_boots() {
    let (_dir, path, mut conn) = file_db();
    let m = set(vec![MigrationSpec::new(
        1,
        "a",
        "CREATE TABLE a (id INTEGER);",
    )]);
    m.run(&mut conn).unwrap();
    conn.execute_batch(
        "DROP TRIGGER preflight_history_count_insert; DROP TRIGGER preflight_history_count_delete; \
         DROP TRIGGER preflight_history_count_state; DROP TABLE preflight_history_count",
    )
    .unwrap();
    drop(conn);
    let mut read_only =
        Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    // The count cannot be installed here: a warning, not a failed boot.
    let report = m.run(&mut read_only).unwrap();
    assert!(!report.fast_path && report.applied.is_empty(), "{report:?}");
    let tables: i64 = read_only
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'preflight_history_count'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}
