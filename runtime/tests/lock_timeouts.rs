//! Lock timeouts with bounded retries (issue #20), against real servers: another session holds
//! a real lock on a table a migration needs (an open transaction that read it), and the tests
//! learn what the migration is doing from `pg_stat_activity`, never from sleeps.

use std::time::{Duration, Instant};

use preflight_runtime::testing::TestDatabase;
use preflight_runtime::{
    Error, MigrationSpec, Migrations, Repair, Timeout, Timeouts, Version, Warning,
};

fn set(specs: Vec<MigrationSpec>) -> Migrations {
    Migrations::from_specs(specs).unwrap()
}

fn v(n: u64) -> Version {
    Version::new(n)
}

fn applied(client: &mut postgres::Client) -> Vec<(String, String, i32)> {
    client
        .query(
            "SELECT version, state, statements_done FROM preflight_history ORDER BY version::int",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn has_column(client: &mut postgres::Client, table: &str, column: &str) -> bool {
    client
        .query_one(
            "SELECT count(*) = 1 FROM information_schema.columns \
             WHERE table_name = $1 AND column_name = $2",
            &[&table, &column],
        )
        .unwrap()
        .get(0)
}

/// A session that holds `ACCESS SHARE` on `table` until it commits: an open transaction that
/// read it, as a long report or a forgotten `BEGIN` in a console would. Returns its pid.
fn hold(client: &mut postgres::Client, table: &str) -> i32 {
    client
        .batch_execute(&format!(
            "SET application_name = 'long-report'; BEGIN; SELECT count(*) FROM {table};"
        ))
        .unwrap();
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0)
}

/// Polls a condition (a fact on the server, not a sleep standing in for synchronisation).
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `users(id)` and `audit(id)` applied; version 2 needs `ACCESS EXCLUSIVE` on `users`.
fn users() -> Vec<MigrationSpec> {
    vec![
        MigrationSpec::new(
            1,
            "tables",
            "CREATE TABLE users (id int); CREATE TABLE audit (id int);",
        ),
        MigrationSpec::new(2, "flag", "ALTER TABLE users ADD COLUMN flag bool;"),
    ]
}

#[test]
fn a_blocked_migration_fails_whole_naming_the_table_and_the_session() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    set(users()[..1].to_vec()).run(&mut client).unwrap();
    let mut holder = db.connect();
    let pid = hold(&mut holder, "users");

    let err = set(users())
        .runner()
        .sql_lock_timeout(Duration::from_millis(100))
        .lock_retries(2)
        .lock_retry_delay(Duration::from_millis(10))
        .run(&mut client)
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("55P03"), "{err}");
    let Error::Blocked(blocked) = &err else {
        panic!("expected Error::Blocked, got {err:?}");
    };
    assert_eq!(blocked.attempts, 3);
    assert_eq!(blocked.migration.version, v(2));
    assert_eq!(blocked.tables, ["public.users"]);
    assert_eq!(blocked.progress, None);
    let first = &blocked.blockers[0];
    assert_eq!(first.pid, pid);
    assert_eq!(first.application_name, "long-report");
    assert_eq!(first.state, "idle in transaction");
    assert!(first.transaction_start.is_some() && first.query_start.is_some());
    assert_eq!(first.locks, ["public.users AccessShareLock"]);
    let text = err.to_string();
    for part in [
        "migration 2 `flag`",
        "within its lock timeout (100ms) in 3 attempt(s)",
        "Nothing of it was applied",
        "Locked table: public.users",
        &format!("pg_terminate_backend({pid})"),
    ] {
        assert!(text.contains(part), "{part}\n{text}");
    }
    // Rolled back whole, history untouched.
    assert!(!has_column(&mut client, "users", "flag"));
    assert_eq!(applied(&mut client), [("1".into(), "applied".into(), 1)]);

    holder.batch_execute("COMMIT").unwrap();
    let report = set(users()).run(&mut client).unwrap();
    assert_eq!(report.applied_versions(), [v(2)]);
    assert!(has_column(&mut client, "users", "flag"));
}

#[test]
fn a_blocked_migration_is_tried_again_until_the_lock_is_free() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    // 2 commits before the blocked 3, in the same window on the async driver.
    let m = set(vec![
        users().remove(0),
        MigrationSpec::new(2, "audit", "ALTER TABLE audit ADD note text;"),
        MigrationSpec::new(3, "flag", "ALTER TABLE users ADD COLUMN flag bool;"),
    ]);
    set(users()[..1].to_vec()).run(&mut client).unwrap();
    let mut holder = db.connect();
    hold(&mut holder, "users");

    let report = std::thread::scope(|s| {
        let migrating = s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut client = db.connect_async().await;
                    m.runner()
                        .application("retrying")
                        .sql_lock_timeout(Duration::from_millis(150))
                        .lock_retries(100)
                        .lock_retry_delay(Duration::from_millis(5))
                        .run_async(&mut client)
                        .await
                })
        });
        // Two different attempts seen waiting for the lock: the migration was tried again.
        let mut observer = db.connect();
        let mut seen: Vec<String> = Vec::new();
        wait_until("a second attempt waits for the lock", || {
            let rows = observer
                .query(
                    "SELECT query_start::text FROM pg_stat_activity \
                     WHERE application_name = 'preflight: retrying' AND wait_event_type = 'Lock'",
                    &[],
                )
                .unwrap();
            for r in rows {
                let start: String = r.get(0);
                if !seen.contains(&start) {
                    seen.push(start);
                }
            }
            seen.len() >= 2
        });
        assert!(!migrating.is_finished());
        holder.batch_execute("COMMIT").unwrap();
        migrating.join().unwrap()
    })
    .unwrap();
    assert_eq!(report.applied_versions(), [v(2), v(3)]);
    let retried = report.warnings.iter().find_map(|w| match w {
        Warning::LockRetried {
            version, attempts, ..
        } => Some((*version, *attempts)),
        _ => None,
    });
    let (version, attempts) = retried.expect("a LockRetried warning");
    assert_eq!(version, v(3));
    assert!(attempts >= 2, "{attempts}");
    assert!(has_column(&mut client, "users", "flag"));
    assert!(has_column(&mut client, "audit", "note"));
}

#[test]
fn a_no_transaction_migration_stops_at_the_blocked_statement_and_resumes_there() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let m = set(vec![
        users().remove(0),
        MigrationSpec::new(2, "three", "").no_transaction(&[
            "ALTER TABLE audit ADD COLUMN a int",
            "ALTER TABLE users ADD COLUMN b int",
            "ALTER TABLE audit ADD COLUMN c int",
        ]),
    ]);
    set(users()[..1].to_vec()).run(&mut client).unwrap();
    let session_lock_timeout: String = client.query_one("SHOW lock_timeout", &[]).unwrap().get(0);
    let mut holder = db.connect();
    let pid = hold(&mut holder, "users");

    let runner = m
        .runner()
        .sql_lock_timeout(Duration::from_millis(100))
        .lock_retries(1)
        .lock_retry_delay(Duration::from_millis(10));
    let err = runner.run(&mut client).unwrap_err();
    let Error::Blocked(blocked) = &err else {
        panic!("expected Error::Blocked, got {err:?}");
    };
    assert_eq!(blocked.progress, Some((1, 3)));
    assert_eq!(blocked.migration.statement, Some(1));
    assert_eq!(blocked.tables, ["public.users"]);
    assert_eq!(blocked.blockers[0].pid, pid);
    let text = err.to_string();
    assert!(
        text.contains("statements 1..1 of 3 completed, statement 2 did not take its lock"),
        "{text}"
    );
    assert!(text.contains("preflight repair --resume 2"), "{text}");
    // Exactly where it stopped: the first statement took effect, the second did not.
    assert!(has_column(&mut client, "audit", "a"));
    assert!(!has_column(&mut client, "users", "b"));
    assert_eq!(applied(&mut client)[1], ("2".into(), "failed".into(), 1));
    // The session's own lock_timeout is back.
    let after: String = client.query_one("SHOW lock_timeout", &[]).unwrap().get(0);
    assert_eq!(after, session_lock_timeout);

    holder.batch_execute("COMMIT").unwrap();
    runner.repair(&mut client, Repair::Resume(v(2))).unwrap();
    assert!(has_column(&mut client, "users", "b") && has_column(&mut client, "audit", "c"));
    assert_eq!(applied(&mut client)[1], ("2".into(), "applied".into(), 3));
}

/// A migration that records the limits its body ran under.
fn probe(n: u64, timeouts: Timeouts) -> MigrationSpec {
    MigrationSpec::new(
        n,
        &format!("probe{n}"),
        &format!(
            "CREATE TABLE probe{n} AS SELECT current_setting('lock_timeout') AS l, \
             current_setting('statement_timeout') AS s;"
        ),
    )
    .timeouts(timeouts)
}

fn limits(client: &mut postgres::Client, n: u64) -> (String, String) {
    let row = client
        .query_one(&format!("SELECT l, s FROM probe{n}"), &[])
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn each_migration_runs_under_its_directives_or_the_runners_limits() {
    let thirty = Timeouts {
        lock: Some(Timeout::After(Duration::from_secs(30))),
        statement: Some(Timeout::Off),
    };
    let specs = vec![
        probe(1, Timeouts::NONE),
        probe(2, thirty),
        probe(3, Timeouts::NONE),
        MigrationSpec::new(4, "probe4", "")
            .no_transaction(&["CREATE TABLE probe4 AS SELECT current_setting('lock_timeout') AS l, current_setting('statement_timeout') AS s"])
            .timeouts(Timeouts {
                lock: Some(Timeout::After(Duration::from_millis(250))),
                statement: None,
            }),
    ];
    for grouped in [false, true] {
        let db = TestDatabase::empty();
        let mut client = db.connect();
        let specs = if grouped {
            specs[..3].to_vec()
        } else {
            specs.clone()
        };
        set(specs)
            .runner()
            .grouped(grouped)
            .sql_statement_timeout(Duration::from_secs(600))
            .run(&mut client)
            .unwrap();
        // The default lock timeout, 1 s; the runner's statement timeout; a directive's own.
        assert_eq!(
            limits(&mut client, 1),
            ("1s".into(), "10min".into()),
            "grouped {grouped}"
        );
        assert_eq!(
            limits(&mut client, 2),
            ("30s".into(), "0".into()),
            "grouped {grouped}"
        );
        assert_eq!(
            limits(&mut client, 3),
            ("1s".into(), "10min".into()),
            "grouped {grouped}"
        );
        if !grouped {
            assert_eq!(limits(&mut client, 4), ("250ms".into(), "10min".into()));
        }
        // Transaction-local or restored: the session keeps its own.
        let row = client
            .query_one(
                "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')",
                &[],
            )
            .unwrap();
        assert_eq!(
            (row.get::<_, String>(0), row.get::<_, String>(1)),
            ("0".into(), "0".into())
        );
    }
    // Off: the server's limit is lifted for the migration.
    let db = TestDatabase::empty();
    let mut client = db.connect();
    set(vec![probe(1, Timeouts::NONE)])
        .runner()
        .sql_lock_timeout(Timeout::Off)
        .run(&mut client)
        .unwrap();
    assert_eq!(limits(&mut client, 1).0, "0");
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn a_writer_holding_the_database_blocks_a_migration_until_its_busy_timeout_then_retries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let mut conn = Connection::open(&path).unwrap();
        let m = set(vec![
            MigrationSpec::new(1, "t", "CREATE TABLE t (id INTEGER);"),
            MigrationSpec::new(2, "u", "ALTER TABLE t ADD COLUMN u TEXT;"),
        ]);
        Migrations::from_specs(vec![MigrationSpec::new(
            1,
            "t",
            "CREATE TABLE t (id INTEGER);",
        )])
        .unwrap()
        .run(&mut conn)
        .unwrap();
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();

        let started = Instant::now();
        let err = m
            .runner()
            // The busy timeout of the run's own bookkeeping, which the writer blocks too.
            .lock_timeout(Duration::from_millis(200))
            .sql_lock_timeout(Duration::from_millis(50))
            .lock_retries(2)
            .lock_retry_delay(Duration::from_millis(5))
            .run(&mut conn)
            .unwrap_err();
        let Error::Blocked(blocked) = &err else {
            panic!("expected Error::Blocked, got {err:?}");
        };
        assert_eq!(blocked.attempts, 3);
        assert_eq!(
            blocked.migration.source.code.as_deref(),
            Some("SQLITE_BUSY")
        );
        // Three busy waits of 50 ms each.
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(err.to_string().contains("write lock"), "{err}");
        let columns: i64 = conn
            .query_row("SELECT count(*) FROM pragma_table_info('t')", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(columns, 1);

        writer.execute_batch("COMMIT").unwrap();
        assert_eq!(m.run(&mut conn).unwrap().applied_versions(), [v(2)]);
    }

    #[test]
    fn a_statement_running_past_its_statement_timeout_is_interrupted() {
        let mut conn = Connection::open_in_memory().unwrap();
        let endless =
            "CREATE TABLE n AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                       SELECT count(*) FROM c;";
        let m = set(vec![MigrationSpec::new(1, "endless", endless).timeouts(
            Timeouts {
                lock: None,
                statement: Some(Timeout::After(Duration::from_millis(50))),
            },
        )]);
        let err = m.run(&mut conn).unwrap_err();
        assert_eq!(err.sqlstate(), Some("SQLITE_INTERRUPT"), "{err}");
        // The handler is gone: the connection runs long statements again.
        let n: i64 = conn
            .query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) \
                 SELECT count(*) FROM c",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 200000);
    }
}
