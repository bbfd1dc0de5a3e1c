//! Boot-time runner against a real PostgreSQL server: each test creates its own database
//! (`testing::TestDatabase`) and drops it afterwards. Multi-process tests re-execute this test binary
//! with `PREFLIGHT_CHILD` naming the child's role.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use preflight_runtime::lock::Holder;
use preflight_runtime::testing::advisory_key;
use preflight_runtime::testing::TestDatabase;
use preflight_runtime::{
    Body, Error, Kind, LockStrategy, MigrationParts, MigrationSpec, Migrations, Repair, Revert,
    Span, State, Version, Warning,
};

fn set(specs: Vec<MigrationSpec>) -> Migrations {
    Migrations::from_specs(specs).unwrap()
}

fn v(n: u64) -> Version {
    Version::new(n)
}

/// (version, state, statements_done, statements_total), in version order.
fn history(client: &mut postgres::Client, table: &str) -> Vec<(Version, String, i32, i32)> {
    let sql = format!("SELECT version, state, statements_done, statements_total FROM {table}");
    let mut rows: Vec<_> = client
        .query(&sql, &[])
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0).parse::<Version>().unwrap(),
                r.get::<_, String>(1),
                r.get::<_, i32>(2),
                r.get::<_, i32>(3),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    rows
}

fn versions(client: &mut postgres::Client) -> Vec<Version> {
    history(client, "preflight_history")
        .into_iter()
        .map(|r| r.0)
        .collect()
}

fn table_exists(client: &mut postgres::Client, name: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .unwrap()
        .get(0)
}

/// Polls a condition (not a sleep standing in for synchronisation: it waits for a fact).
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn three() -> Migrations {
    set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int primary key);")
            .down("DROP TABLE users;"),
        MigrationSpec::new(2, "email", "ALTER TABLE users ADD email text;")
            .down("ALTER TABLE users DROP email;"),
        MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);").down("DROP TABLE posts;"),
    ])
}

#[test]
fn applies_once_then_takes_the_fast_path_without_a_lock() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    client
        .batch_execute("SET application_name = 'my app'")
        .unwrap();
    let m = three();
    let first = m
        .runner()
        .application("test-app 1.0")
        .run(&mut client)
        .unwrap();
    assert_eq!(first.applied_versions(), [v(1), v(2), v(3)]);
    assert!(first.lock_taken && !first.fast_path);
    let second = m.run(&mut client).unwrap();
    assert!(second.fast_path, "{second:?}");
    assert!(!second.lock_taken);
    assert!(second.applied.is_empty());
    let rows = history(&mut client, "preflight_history");
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.1 == "applied"));
    // The contract columns.
    let row = client
        .query_one(
            "SELECT checksum, chain, applied_by, obj_description('preflight_history'::regclass, 'pg_class') \
             FROM preflight_history WHERE version = '3'",
            &[],
        )
        .unwrap();
    let m3 = m.get(v(3)).unwrap();
    assert_eq!(row.get::<_, String>(0), m3.checksum().to_string());
    assert_eq!(row.get::<_, String>(1), m3.chain().to_string());
    assert!(row.get::<_, String>(2).starts_with("test-app 1.0 on "));
    assert_eq!(row.get::<_, String>(3), "preflight-history v1");
    // The connection's application_name is restored.
    let name: String = client
        .query_one("SELECT current_setting('application_name')", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, "my app");
    // No advisory lock left behind by this session.
    let locks: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(locks, 0);
}

#[test]
fn async_driver_applies_and_takes_the_fast_path() {
    let db = TestDatabase::empty();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let m = three();
        // The future is Send, so it can be spawned on a multi-threaded runtime.
        fn assert_send<T: Send>(t: T) -> T {
            t
        }
        let report = assert_send(m.run_async(&mut client)).await.unwrap();
        assert_eq!(report.applied_versions(), [v(1), v(2), v(3)]);
        let again = m.run_async(&mut client).await.unwrap();
        assert!(again.fast_path && !again.lock_taken);
        // A failing body: its error is reported, nothing recorded, the connection usable.
        let bad = set(vec![
            MigrationSpec::new(1, "users", "CREATE TABLE users (id int primary key);")
                .down("DROP TABLE users;"),
            MigrationSpec::new(2, "email", "ALTER TABLE users ADD email text;")
                .down("ALTER TABLE users DROP email;"),
            MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);")
                .down("DROP TABLE posts;"),
            MigrationSpec::new(
                4,
                "broken",
                "CREATE TABLE ok4 (id int);\nSELECT * FROM nope;",
            ),
        ]);
        let err = bad.run_async(&mut client).await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("42P01"), "{err}");
        assert!(err.to_string().contains("migration 4 `broken`"), "{err}");
        let rows = client
            .query("SELECT count(*) FROM preflight_history", &[])
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, i64>(0), 3);
        let ok4: bool = client
            .query_one("SELECT to_regclass('ok4') IS NULL", &[])
            .await
            .unwrap()
            .get(0);
        assert!(
            ok4,
            "the failed migration's first statement was rolled back"
        );
    });
}

#[test]
fn syntax_error_names_statement_line_and_sqlstate() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    // Split into statements as `embed!` does, so the error maps to the second statement.
    let text = "CREATE TABLE a (id int);\n\nCREATE TABLE b (id intt;\n";
    let m = Migrations::from_parts(vec![MigrationParts {
        version: v(7),
        name: "bad".into(),
        path: "7_bad.sql".into(),
        checksum_text: text.into(),
        up: Body::owned(
            text.into(),
            vec![Span::new(0, 24), Span::new(26, 50)],
            Kind::Transactional,
        ),
        down: None,
    }])
    .unwrap();
    let err = m.run(&mut client).unwrap_err();
    match &err {
        Error::Migration(e) => {
            assert_eq!(e.version, v(7));
            assert_eq!(e.source.code.as_deref(), Some("42601"));
            assert_eq!(e.path, "7_bad.sql");
            // The server's error position, mapped back through the script to the statement.
            assert_eq!((e.statement, e.line), (Some(1), Some(3)));
        }
        other => panic!("{other}"),
    }
    assert!(versions(&mut client).is_empty());
    assert!(!table_exists(&mut client, "a"));
}

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
            &format!("CREATE TABLE t{n} (id int); INSERT INTO applied_log VALUES ({n});"),
        ));
    }
    set(specs)
}

fn assert_race_result(client: &mut postgres::Client) {
    assert_eq!(versions(client), (1..=6).map(v).collect::<Vec<_>>());
    let row = client
        .query_one("SELECT count(*), count(DISTINCT v) FROM applied_log", &[])
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (5, 5));
}

#[test]
fn sixteen_threads_race_and_apply_each_migration_once() {
    let db = TestDatabase::empty();
    let m = race_set();
    let barrier = std::sync::Barrier::new(16);
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    let mut client = db.connect();
                    barrier.wait();
                    m.runner()
                        .lock_timeout(Duration::from_secs(60))
                        .run(&mut client)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut applied = 0;
    for r in reports {
        applied += r.unwrap().applied.len();
    }
    assert_eq!(applied, 6, "every migration applied by exactly one thread");
    assert_race_result(&mut db.connect());
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

#[test]
fn eight_processes_race_and_apply_each_migration_once() {
    if let Some((_, url)) = child_role() {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        race_set().run(&mut client).unwrap();
        return;
    }
    let db = TestDatabase::empty();
    let children: Vec<_> = (0..8)
        .map(|_| {
            spawn_child(
                "eight_processes_race_and_apply_each_migration_once",
                "race",
                db.url(),
            )
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a racing process failed");
    }
    assert_race_result(&mut db.connect());
}

fn blocker_sets() -> (Migrations, Migrations) {
    let tx = set(vec![
        MigrationSpec::new(1, "blocker", "CREATE TABLE blocker (id int);"),
        MigrationSpec::new(
            2,
            "slow",
            "CREATE TABLE made_by_2 (id int);\nSELECT * FROM blocker;",
        ),
    ]);
    let notx = set(vec![
        MigrationSpec::new(1, "blocker", "CREATE TABLE blocker (id int);"),
        MigrationSpec::new(2, "slow", "").no_transaction(&[
            "CREATE TABLE nt1 (id int);",
            "SELECT * FROM blocker;",
            "CREATE TABLE nt3 (id int);",
        ]),
    ]);
    (tx, notx)
}

/// Runs migration 1, holds a lock on `blocker`, starts a child that blocks on it inside
/// migration 2, SIGKILLs the child once the server shows it waiting, and waits until its
/// backend is gone.
fn kill_child_inside_migration_2(db: &TestDatabase, test: &str, role: &str, m: &Migrations) {
    let mut client = db.connect();
    m.runner().target(1u64).run(&mut client).unwrap();
    let mut holder = db.connect();
    holder
        .batch_execute("BEGIN; LOCK TABLE blocker IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut child = spawn_child(test, role, db.url());
    let mut watcher = db.connect();
    let mut pid = 0i32;
    wait_until("the child to block on the blocker table", || {
        let rows = watcher
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'preflight: kill-child' AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap();
        rows.first().map(|r| pid = r.get(0)).is_some()
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    holder.batch_execute("ROLLBACK").unwrap();
    wait_until("the killed child's backend to exit", || {
        watcher
            .query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid])
            .unwrap()
            .is_empty()
    });
}

fn kill_child_main(role: &str, url: &str) {
    let (tx, notx) = blocker_sets();
    let m = if role == "tx" { tx } else { notx };
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let _ = m.runner().application("kill-child").run(&mut client);
    unreachable!("the parent kills this process while it migrates");
}

#[test]
fn killed_inside_a_transactional_migration_nothing_is_recorded_and_it_reapplies() {
    if let Some((role, url)) = child_role() {
        kill_child_main(&role, &url);
    }
    let db = TestDatabase::empty();
    let (m, _) = blocker_sets();
    kill_child_inside_migration_2(
        &db,
        "killed_inside_a_transactional_migration_nothing_is_recorded_and_it_reapplies",
        "tx",
        &m,
    );
    let mut client = db.connect();
    assert_eq!(versions(&mut client), [v(1)], "no history row lies");
    assert!(!table_exists(&mut client, "made_by_2"));
    let report = m.run(&mut client).unwrap();
    assert_eq!(report.applied_versions(), [v(2)]);
    assert!(table_exists(&mut client, "made_by_2"));
}

#[test]
fn killed_inside_a_no_transaction_migration_refuses_then_resumes() {
    if let Some((role, url)) = child_role() {
        kill_child_main(&role, &url);
    }
    let db = TestDatabase::empty();
    let (_, m) = blocker_sets();
    kill_child_inside_migration_2(
        &db,
        "killed_inside_a_no_transaction_migration_refuses_then_resumes",
        "notx",
        &m,
    );
    let mut client = db.connect();
    let rows = history(&mut client, "preflight_history");
    assert_eq!(rows[1], (v(2), "in_progress".to_owned(), 1, 3));
    let err = m.run(&mut client).unwrap_err();
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
    assert!(
        err.to_string().contains("preflight repair --forget 2"),
        "{err}"
    );
    assert!(!table_exists(&mut client, "nt3"));
    let report = m.repair(&mut client, Repair::Resume(v(2))).unwrap();
    assert_eq!(report.applied_versions(), [v(2)]);
    assert!(report.warnings.contains(&Warning::Resumed {
        version: v(2),
        from_statement: 1
    }));
    assert!(table_exists(&mut client, "nt3"));
    assert_eq!(
        history(&mut client, "preflight_history")[1],
        (v(2), "applied".to_owned(), 3, 3)
    );
    assert!(m.run(&mut client).unwrap().fast_path);
}

#[test]
fn failed_no_transaction_statement_is_recorded_and_repairs_are_logged() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let broken = set(vec![MigrationSpec::new(1, "idx", "").no_transaction(&[
        "CREATE TABLE IF NOT EXISTS n1 (id int);",
        "CREATE INDEX CONCURRENTLY n1_idx ON missing_table (id);",
        "CREATE TABLE n3 (id int);",
    ])]);
    let err = broken.run(&mut client).unwrap_err();
    match &err {
        Error::Migration(e) => {
            assert_eq!((e.statement, e.line), (Some(1), Some(2)));
            assert_eq!(e.source.code.as_deref(), Some("42P01"));
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        history(&mut client, "preflight_history"),
        [(v(1), "failed".to_owned(), 1, 3)]
    );
    let refused = broken.run(&mut client).unwrap_err();
    assert!(
        matches!(&refused, Error::Unfinished(u) if u.state == State::Failed),
        "{refused}"
    );
    assert!(refused.to_string().contains("missing_table"), "{refused}");
    // Forget: the row goes, the migration runs again from the start (and fails again).
    broken
        .runner()
        .repair(&mut client, Repair::Forget(v(1)))
        .unwrap();
    assert!(versions(&mut client).is_empty());
    assert!(broken.run(&mut client).is_err());
    // Mark applied: the operator finished it by hand.
    client.batch_execute("CREATE TABLE n3 (id int)").unwrap();
    broken
        .runner()
        .repair(&mut client, Repair::MarkApplied(v(1)))
        .unwrap();
    assert_eq!(
        history(&mut client, "preflight_history"),
        [(v(1), "applied".to_owned(), 3, 3)]
    );
    assert!(broken.run(&mut client).unwrap().fast_path);
    let actions: Vec<String> = client
        .query("SELECT action FROM preflight_history_log ORDER BY at", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actions, ["forget", "mark-applied"]);
}

#[test]
fn edited_migration_refuses_naming_both_checksums_and_can_be_accepted() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    three().run(&mut client).unwrap();
    let edited = set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id bigint primary key);"),
        MigrationSpec::new(2, "email", "ALTER TABLE users ADD email text;"),
        MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);"),
        MigrationSpec::new(4, "more", "CREATE TABLE more (id int);"),
    ]);
    let err = edited.run(&mut client).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::ChecksumMismatch { version, .. } if version == v(1)));
    assert!(
        text.contains(&three().get(v(1)).unwrap().checksum().to_string()),
        "{text}"
    );
    assert!(
        text.contains(&edited.get(v(1)).unwrap().checksum().to_string()),
        "{text}"
    );
    assert!(text.contains("1_users.sql"), "{text}");
    assert!(
        !table_exists(&mut client, "more"),
        "refused before touching anything"
    );
    edited
        .runner()
        .repair(&mut client, Repair::AcceptChecksum(v(1)))
        .unwrap();
    assert_eq!(edited.run(&mut client).unwrap().applied_versions(), [v(4)]);
    assert!(edited.run(&mut client).unwrap().fast_path);
}

#[test]
fn missing_migration_refuses_unless_allowed() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    three().run(&mut client).unwrap();
    let without_2 = set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int primary key);")
            .down("DROP TABLE users;"),
        MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);").down("DROP TABLE posts;"),
    ]);
    let err = without_2.run(&mut client).unwrap_err();
    assert!(
        matches!(&err, Error::Missing { versions } if versions == &[v(2)]),
        "{err}"
    );
    let report = without_2
        .runner()
        .allow_missing(true)
        .run(&mut client)
        .unwrap();
    assert_eq!(
        report.warnings,
        [Warning::Missing {
            versions: vec![v(2)]
        }]
    );
}

#[test]
fn history_ahead_of_the_binary_boots_with_a_warning() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    three().run(&mut client).unwrap();
    let old = set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int primary key);")
            .down("DROP TABLE users;"),
        MigrationSpec::new(2, "email", "ALTER TABLE users ADD email text;")
            .down("ALTER TABLE users DROP email;"),
    ]);
    let report = old.run(&mut client).unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(
        report.warnings,
        [Warning::AheadOfBinary {
            versions: vec![v(3)]
        }]
    );
    assert_eq!(versions(&mut client), [v(1), v(2), v(3)]);
}

#[test]
fn out_of_order_refused_by_default_and_applied_when_allowed() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let branch_a = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE a (id int);"),
        MigrationSpec::new(3, "c", "CREATE TABLE c (id int);"),
    ]);
    branch_a.run(&mut client).unwrap();
    let merged = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE a (id int);"),
        MigrationSpec::new(2, "b", "CREATE TABLE b (id int);"),
        MigrationSpec::new(3, "c", "CREATE TABLE c (id int);"),
    ]);
    let err = merged.run(&mut client).unwrap_err();
    assert!(
        matches!(&err, Error::OutOfOrder { pending, newest_applied } if pending == &[v(2)] && *newest_applied == v(3)),
        "{err}"
    );
    assert!(!table_exists(&mut client, "b"));
    let report = merged.runner().out_of_order(true).run(&mut client).unwrap();
    assert_eq!(report.applied_versions(), [v(2)]);
    assert_eq!(
        report.warnings,
        [Warning::OutOfOrder {
            versions: vec![v(2)]
        }]
    );
    // The slow path refreshed the newest row's chain: the next boot is fast again.
    assert!(merged.run(&mut client).unwrap().fast_path);
}

#[test]
fn lock_timeout_names_the_holder() {
    let db = TestDatabase::empty();
    let mut holder = db.connect();
    holder
        .batch_execute("SET application_name = 'holder-app'")
        .unwrap();
    let key = advisory_key(db.name(), "public", "preflight_history");
    let holder_pid: i32 = holder
        .query_one(
            "SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock($1)) l",
            &[&key],
        )
        .unwrap()
        .get(0);
    let mut client = db.connect();
    let started = Instant::now();
    let err = three()
        .runner()
        .lock_timeout(Duration::from_millis(300))
        .run(&mut client)
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    match &err {
        Error::LockTimeout {
            holder: Some(h), ..
        } => match h.as_ref() {
            Holder::Session {
                pid,
                application_name,
                ..
            } => {
                assert_eq!(*pid, holder_pid);
                assert_eq!(application_name, "holder-app");
            }
            other => panic!("{other}"),
        },
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("holder-app"), "{err}");
    assert!(!table_exists(&mut client, "users"));
    // Once released, the run goes through.
    holder
        .query("SELECT pg_advisory_unlock($1)", &[&key])
        .unwrap();
    assert_eq!(three().run(&mut client).unwrap().applied.len(), 3);
}

#[test]
fn revert_by_steps_and_to_a_version_refusing_without_down() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let m = three();
    m.run(&mut client).unwrap();
    let report = m.runner().revert(&mut client, Revert::Steps(1)).unwrap();
    assert_eq!(report.reverted_versions(), [v(3)]);
    assert!(!table_exists(&mut client, "posts"));
    assert_eq!(versions(&mut client), [v(1), v(2)]);
    let report = m.runner().revert(&mut client, Revert::To(v(0))).unwrap();
    assert_eq!(report.reverted_versions(), [v(2), v(1)]);
    assert!(versions(&mut client).is_empty() && !table_exists(&mut client, "users"));

    let partial = set(vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int);").down("DROP TABLE users;"),
        MigrationSpec::new(2, "keep", "CREATE TABLE keep (id int);"),
        MigrationSpec::new(3, "posts", "CREATE TABLE posts (id int);").down("DROP TABLE posts;"),
    ]);
    partial.run(&mut client).unwrap();
    let err = partial
        .runner()
        .revert(&mut client, Revert::To(v(0)))
        .unwrap_err();
    assert!(matches!(err, Error::NoDown { .. }), "{err}");
    assert!(err.to_string().contains("2_keep.sql"), "{err}");
    // Nothing was touched, not even migration 3 which has a down.
    assert_eq!(versions(&mut client), [v(1), v(2), v(3)]);
    assert!(table_exists(&mut client, "posts"));
    let logged: i64 = client
        .query_one(
            "SELECT count(*) FROM preflight_history_log WHERE action = 'revert'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(logged, 3);
}

#[test]
fn lease_lock_takes_over_an_expired_lease_and_names_a_live_holder() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let lease = LockStrategy::Lease {
        ttl: Duration::from_secs(30),
    };
    let m = three();
    // A dead owner's expired lease is taken over.
    client
        .batch_execute(
            "CREATE TABLE preflight_history_lease (id integer PRIMARY KEY CHECK (id = 1), \
             owner text NOT NULL, acquired_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, \
             renewed_at timestamptz NOT NULL); \
             INSERT INTO preflight_history_lease VALUES (1, 'dead replica', now() - interval '1 hour', \
             now() - interval '1 minute', now() - interval '2 minutes')",
        )
        .unwrap();
    let report = m
        .runner()
        .lock(lease)
        .target(1u64)
        .run(&mut client)
        .unwrap();
    assert!(report.lock_taken);
    assert_eq!(report.applied_versions(), [v(1)]);
    let left: i64 = client
        .query_one("SELECT count(*) FROM preflight_history_lease", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the lease is released");
    // A live lease held by someone else: timeout naming it.
    client
        .batch_execute(
            "INSERT INTO preflight_history_lease VALUES (1, 'replica-b on host-b', now(), \
             now() + interval '1 hour', now())",
        )
        .unwrap();
    let err = m
        .runner()
        .lock(lease)
        .lock_timeout(Duration::from_millis(200))
        .run(&mut client)
        .unwrap_err();
    assert!(
        matches!(&err, Error::LockTimeout { holder: Some(h), .. } if matches!(h.as_ref(), Holder::Lease { owner, .. } if owner == "replica-b on host-b")),
        "{err}"
    );
    // A lease that expires while we wait is taken over.
    client
        .batch_execute(
            "UPDATE preflight_history_lease SET expires_at = now() + interval '1 second'",
        )
        .unwrap();
    let report = m
        .runner()
        .lock(lease)
        .lock_timeout(Duration::from_secs(20))
        .run(&mut client)
        .unwrap();
    assert_eq!(report.applied_versions(), [v(2), v(3)]);
    assert!(report.lock_wait >= Duration::from_millis(200), "{report:?}");
}

#[test]
fn grouped_mode_is_all_or_nothing() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let broken = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE ga (id int);"),
        MigrationSpec::new(2, "b", "CREATE TABLE gb (id int);"),
        MigrationSpec::new(3, "c", "CREATE TABLE gc (id int); SELECT 1/0;"),
    ]);
    let err = broken.runner().grouped(true).run(&mut client).unwrap_err();
    assert!(
        matches!(&err, Error::Migration(e) if e.version == v(3) && e.source.code.as_deref() == Some("22012")),
        "{err}"
    );
    assert!(!table_exists(&mut client, "ga") && !table_exists(&mut client, "gb"));
    assert!(versions(&mut client).is_empty());
    let fixed = set(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE ga (id int);"),
        MigrationSpec::new(2, "b", "CREATE TABLE gb (id int);"),
        MigrationSpec::new(3, "c", "CREATE TABLE gc (id int);"),
    ]);
    let report = fixed.runner().grouped(true).run(&mut client).unwrap();
    assert_eq!(report.applied_versions(), [v(1), v(2), v(3)]);
    assert!(fixed.run(&mut client).unwrap().fast_path);
}

#[test]
fn target_version_stops_there_and_is_current_there() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let m = three();
    let report = m.runner().target(2u64).run(&mut client).unwrap();
    assert_eq!(report.applied_versions(), [v(1), v(2)]);
    assert_eq!(report.skipped, [v(3)]);
    assert!(m.runner().target(2u64).run(&mut client).unwrap().fast_path);
    assert!(!m.run(&mut client).unwrap().fast_path);
    assert_eq!(versions(&mut client), [v(1), v(2), v(3)]);
    assert!(matches!(
        m.runner().target(9u64).run(&mut client),
        Err(Error::UnknownVersion(_))
    ));
}

#[test]
fn schema_qualified_table_with_quotes_in_its_names() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let schema = "we\"ird schema";
    let table = "my \"history\"; DROP TABLE x; --";
    let m = three();
    let runner = m.runner().schema(schema).table(table);
    assert_eq!(runner.run(&mut client).unwrap().applied.len(), 3);
    assert!(runner.run(&mut client).unwrap().fast_path);
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename IN ($2, $3)",
            &[&schema, &table, &format!("{table}_log")],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let rows = runner.history(&mut client).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.state == State::Applied));
    // Two migration sets in one database, with different tables, do not see each other.
    assert_eq!(m.run(&mut client).unwrap_err().sqlstate(), Some("42P07"));
}

#[test]
fn statement_timeout_applies_inside_migration_transactions() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let m = set(vec![MigrationSpec::new(1, "slow", "SELECT pg_sleep(5);")]);
    let started = Instant::now();
    let err = m
        .runner()
        .sql_statement_timeout(Duration::from_millis(100))
        .run(&mut client)
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("57014"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
    // The timeout was transaction-local: the session's setting is untouched.
    let t: String = client
        .query_one("SHOW statement_timeout", &[])
        .unwrap()
        .get(0);
    assert_eq!(t, "0");
}

/// Migrations that record the `synchronous_commit` their transaction ran with.
fn commit_probe(versions: &[u64]) -> Vec<MigrationSpec> {
    versions
        .iter()
        .map(|&n| {
            MigrationSpec::new(
                n,
                &format!("probe{n}"),
                &format!(
                    "CREATE TABLE probe{n} AS SELECT current_setting('synchronous_commit') AS s;"
                ),
            )
        })
        .collect()
}

fn probe(client: &mut postgres::Client, n: u64) -> String {
    client
        .query_one(&format!("SELECT s FROM probe{n}"), &[])
        .unwrap()
        .get(0)
}

#[test]
fn every_migration_but_the_last_commits_asynchronously_and_each_stays_atomic() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let session_setting: String = client
        .query_one("SHOW synchronous_commit", &[])
        .unwrap()
        .get(0);
    // A timeout setting puts parameterised requests between BEGIN and the body: still one
    // transaction, still the asynchronous commit.
    let report = set(commit_probe(&[1, 2, 3]))
        .runner()
        .sql_lock_timeout(Duration::from_secs(5))
        .run(&mut client)
        .unwrap();
    assert_eq!(report.applied_versions(), [v(1), v(2), v(3)]);
    assert_eq!(probe(&mut client, 1), "off");
    assert_eq!(probe(&mut client, 2), "off");
    // The last one commits synchronously: its flush makes the earlier commits durable.
    assert_eq!(probe(&mut client, 3), session_setting);
    // `SET LOCAL`: the session's own setting is untouched.
    let after: String = client
        .query_one("SHOW synchronous_commit", &[])
        .unwrap()
        .get(0);
    assert_eq!(after, session_setting);

    // A failing migration after asynchronously committed ones: those stay applied and
    // recorded, the failing one leaves nothing (body and history row roll back together).
    let mut specs = commit_probe(&[1, 2, 3, 4, 5]);
    specs.push(MigrationSpec::new(
        6,
        "broken",
        "CREATE TABLE probe6 (id int);\nSELECT 1/0;",
    ));
    specs.extend(commit_probe(&[7]));
    let broken = set(specs);
    let err = broken.run(&mut client).unwrap_err();
    assert!(
        matches!(&err, Error::Migration(e) if e.version == v(6) && e.source.code.as_deref() == Some("22012")),
        "{err}"
    );
    assert_eq!(versions(&mut client), [v(1), v(2), v(3), v(4), v(5)]);
    assert!(history(&mut client, "preflight_history")
        .iter()
        .all(|r| r.1 == "applied"));
    assert_eq!(probe(&mut client, 4), "off");
    assert_eq!(probe(&mut client, 5), "off");
    assert!(!table_exists(&mut client, "probe6") && !table_exists(&mut client, "probe7"));

    // Fixed: 6 (not last: asynchronous) and 7 (last: synchronous).
    let mut specs = commit_probe(&[1, 2, 3, 4, 5, 6]);
    specs.extend(commit_probe(&[7]));
    let fixed = set(specs);
    let report = fixed.run(&mut client).unwrap();
    assert_eq!(report.applied_versions(), [v(6), v(7)]);
    assert_eq!(probe(&mut client, 6), "off");
    assert_eq!(probe(&mut client, 7), session_setting);
    assert!(fixed.run(&mut client).unwrap().fast_path);
}

#[test]
fn async_driver_commits_asynchronously_except_the_last_and_grouped_mode_synchronously() {
    let db = TestDatabase::empty();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let session_setting: String = client
            .query_one("SHOW synchronous_commit", &[])
            .await
            .unwrap()
            .get(0);
        // A no-transaction migration in the middle: the ones before and after it that are not
        // the last commit asynchronously; it runs statement by statement as before.
        let mut specs = commit_probe(&[1, 2]);
        specs.push(
            MigrationSpec::new(3, "idx", "")
                .no_transaction(&["CREATE INDEX CONCURRENTLY probe1_s ON probe1 (s);"]),
        );
        specs.extend(commit_probe(&[4, 5]));
        let m = set(specs);
        let report = m.run_async(&mut client).await.unwrap();
        assert_eq!(report.applied_versions(), [v(1), v(2), v(3), v(4), v(5)]);
        let mut seen = Vec::new();
        for n in [1, 2, 4, 5] {
            let s: String = client
                .query_one(&format!("SELECT s FROM probe{n}"), &[])
                .await
                .unwrap()
                .get(0);
            seen.push(s);
        }
        assert_eq!(seen, ["off", "off", "off", session_setting.as_str()]);
        // A failure in the middle of the async driver's run: atomic per migration.
        let mut specs = commit_probe(&[1, 2]);
        specs.push(
            MigrationSpec::new(3, "idx", "")
                .no_transaction(&["CREATE INDEX CONCURRENTLY probe1_s ON probe1 (s);"]),
        );
        specs.extend(commit_probe(&[4, 5, 6]));
        specs.push(MigrationSpec::new(
            7,
            "broken",
            "CREATE TABLE probe7 (id int);\nSELECT * FROM nope;",
        ));
        specs.extend(commit_probe(&[8]));
        let err = set(specs).run_async(&mut client).await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("42P01"), "{err}");
        let recorded: i64 = client
            .query_one(
                "SELECT count(*) FROM preflight_history WHERE state = 'applied'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(recorded, 6);
        let gone: bool = client
            .query_one(
                "SELECT to_regclass('probe7') IS NULL AND to_regclass('probe8') IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(gone);
    });
    // Grouped mode is one transaction: it commits synchronously.
    let mut client = db.connect();
    client
        .batch_execute("CREATE SCHEMA grouped; SET search_path = grouped")
        .unwrap();
    let session_setting: String = client
        .query_one("SHOW synchronous_commit", &[])
        .unwrap()
        .get(0);
    let report = set(commit_probe(&[1, 2, 3]))
        .runner()
        .grouped(true)
        .run(&mut client)
        .unwrap();
    assert_eq!(report.applied_versions(), [v(1), v(2), v(3)]);
    for n in [1, 2, 3] {
        assert_eq!(probe(&mut client, n), session_setting);
    }
}

#[test]
fn lock_waiters_return_through_the_fast_path_once_the_holder_has_migrated() {
    let db = TestDatabase::empty();
    // Someone holds the migration lock for the whole test.
    let mut holder = db.connect();
    let key = advisory_key(db.name(), "public", "preflight_history");
    holder
        .query("SELECT pg_advisory_lock($1)", &[&key])
        .unwrap();
    let url = db.url().to_owned();
    let waiter = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let report = three()
            .runner()
            .application("storm-waiter")
            .lock_timeout(Duration::from_secs(60))
            .run(&mut client);
        (report, client)
    });
    // The waiter is past its boot-time fast path (the database was empty) and polls the lock:
    // the slow path named its connection.
    let mut observer = db.connect();
    wait_until("the waiter to wait for the lock", || {
        observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'preflight: storm-waiter'",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 1
    });
    // Another run migrates (without the lock, which stays held).
    let mut other = db.connect();
    let applied = three()
        .runner()
        .lock(LockStrategy::None)
        .run(&mut other)
        .unwrap();
    assert_eq!(applied.applied.len(), 3);
    let (report, mut client) = waiter.join().unwrap();
    let report = report.unwrap();
    assert!(report.fast_path, "{report:?}");
    assert!(!report.lock_taken, "{report:?}");
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(versions(&mut client), [v(1), v(2), v(3)]);
    // Its connection is as it was: application_name restored, no lock held.
    let (name, locks): (String, i64) = {
        let row = client
            .query_one(
                "SELECT current_setting('application_name'), \
                 (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_ne!(name, "preflight: storm-waiter");
    assert_eq!(locks, 0);
}

/// `count` light migrations (`w{n}`: a table and a row), migration `broken` (if any) failing
/// with 42P01 after creating its table: a SQLSTATE no pipelining guard produces (22012), so
/// the error reported is the body's.
fn window_set(count: u64, broken: Option<u64>) -> Migrations {
    set((1..=count)
        .map(|n| {
            let body = if Some(n) == broken {
                format!("CREATE TABLE w{n} (id int);\nSELECT * FROM nope;")
            } else {
                format!("CREATE TABLE w{n} (id int);\nINSERT INTO w{n} VALUES ({n});")
            };
            MigrationSpec::new(n, &format!("w{n}"), &body)
        })
        .collect())
}

/// Runs `m` through the async driver (which pipelines migration transactions in windows).
fn run_async(db: &TestDatabase, m: &Migrations) -> Result<preflight_runtime::Report, Error> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        m.runner()
            .sql_statement_timeout(Duration::from_secs(60))
            .run_async(&mut client)
            .await
    })
}

/// The `w{n}` tables that exist, in order.
fn window_tables(client: &mut postgres::Client, count: u64) -> Vec<u64> {
    (1..=count)
        .filter(|n| table_exists(client, &format!("w{n}")))
        .collect()
}

#[test]
fn pipelined_window_commits_nothing_after_a_failed_migration() {
    // (migrations, the broken one): in the middle of the first window; the first of the
    // second window (64 per window), unguarded itself, whose successors' guards must hold.
    for (count, broken) in [(12, 7), (70, 65)] {
        let db = TestDatabase::empty();
        let err = run_async(&db, &window_set(count, Some(broken))).unwrap_err();
        match &err {
            Error::Migration(e) => {
                assert_eq!(e.version, v(broken), "{err}");
                assert_eq!(e.source.code.as_deref(), Some("42P01"), "{err}");
            }
            other => panic!("expected migration {broken}'s body error, got: {other}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("migration {broken} `w{broken}`")),
            "{err}"
        );
        let mut client = db.connect();
        let before: Vec<u64> = (1..broken).collect();
        let recorded = history(&mut client, "preflight_history");
        assert_eq!(
            recorded.iter().map(|r| r.0).collect::<Vec<_>>(),
            before.iter().map(|&n| v(n)).collect::<Vec<_>>(),
            "exactly the migrations before {broken} are recorded"
        );
        assert!(recorded.iter().all(|r| r.1 == "applied"));
        assert_eq!(
            window_tables(&mut client, count),
            before,
            "nothing from migration {broken} on took effect"
        );
        // Fixed: the rest applies in order, and the next boot is current.
        let fixed = window_set(count, None);
        let report = run_async(&db, &fixed).unwrap();
        let rest: Vec<Version> = (broken..=count).map(v).collect();
        assert_eq!(report.applied_versions(), rest);
        assert_eq!(
            window_tables(&mut client, count),
            (1..=count).collect::<Vec<_>>()
        );
        assert!(run_async(&db, &fixed).unwrap().fast_path);
    }
}

#[test]
fn pipelined_run_records_every_migration_in_order_and_only_the_last_synchronously() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let session_setting: String = client
        .query_one("SHOW synchronous_commit", &[])
        .unwrap()
        .get(0);
    // 130 migrations: three windows (64, 64, 2), every one recording its commit setting.
    let count = 130;
    let all: Vec<u64> = (1..=count).collect();
    let m = set(commit_probe(&all));
    let report = run_async(&db, &m).unwrap();
    assert_eq!(
        report.applied_versions(),
        all.iter().map(|&n| v(n)).collect::<Vec<_>>()
    );
    // Each migration committed in its own transaction, one after the other in version order:
    // their transaction ids (the rows' xmin) strictly increase with the version.
    let rows = client
        .query(
            "SELECT version, state, xmin::text::int8 FROM preflight_history",
            &[],
        )
        .unwrap();
    let mut recorded: Vec<(Version, String, i64)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0).parse().unwrap(), r.get(1), r.get(2)))
        .collect();
    recorded.sort_by_key(|r| r.0);
    assert_eq!(recorded.len(), all.len());
    assert!(recorded.iter().all(|r| r.1 == "applied"));
    assert!(
        recorded.windows(2).all(|w| w[0].2 < w[1].2),
        "one transaction per migration, in order: {recorded:?}"
    );
    // Asynchronous commits within and across windows; the run's last one synchronous.
    for n in [1, 63, 64, 65, 128, 129] {
        assert_eq!(probe(&mut client, n), "off", "migration {n}");
    }
    assert_eq!(probe(&mut client, count), session_setting);
    assert!(run_async(&db, &m).unwrap().fast_path);
}

#[test]
fn synchronous_commits_makes_every_migration_commit_synchronously_on_both_drivers() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let session_setting: String = client
        .query_one("SHOW synchronous_commit", &[])
        .unwrap()
        .get(0);
    assert_ne!(
        session_setting, "off",
        "the test needs a server that commits synchronously"
    );
    // Sync driver, one migration at a time.
    let report = set(commit_probe(&[1, 2, 3]))
        .runner()
        .synchronous_commits(true)
        .run(&mut client)
        .unwrap();
    assert_eq!(report.applied_versions(), [v(1), v(2), v(3)]);
    for n in 1..=3 {
        assert_eq!(probe(&mut client, n), session_setting, "migration {n}");
    }
    // Async driver, pipelined windows (70 migrations: two windows).
    let all: Vec<u64> = (4..=73).collect();
    let mut specs = commit_probe(&[1, 2, 3]);
    specs.extend(commit_probe(&all));
    let m = set(specs);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt
        .block_on(async {
            let (mut c, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            m.runner().synchronous_commits(true).run_async(&mut c).await
        })
        .unwrap();
    assert_eq!(report.applied_versions().len(), all.len());
    for n in all {
        assert_eq!(probe(&mut client, n), session_setting, "migration {n}");
    }
    assert!(run_async(&db, &m).unwrap().fast_path);
}

/// (total, unfinished) as `count` (the `<table>_count` of `table`) holds them, and as counting
/// the rows says.
fn counts(client: &mut postgres::Client, table: &str, count: &str) -> ((i64, i64), (i64, i64)) {
    let kept = client
        .query_one(&format!("SELECT total, unfinished FROM {count}"), &[])
        .unwrap();
    let real = client
        .query_one(
            &format!("SELECT count(*), count(*) FILTER (WHERE state <> 'applied') FROM {table}"),
            &[],
        )
        .unwrap();
    ((kept.get(0), kept.get(1)), (real.get(0), real.get(1)))
}

#[test]
fn the_trigger_kept_row_count_follows_every_write_and_feeds_the_fast_path() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    // Names that need quoting in the trigger function's body, including its dollar quote.
    let schema = "count \"schema\"";
    let table = "h$preflight$ \"x\"";
    let m = three();
    let runner = m.runner().schema(schema).table(table);
    runner.run(&mut client).unwrap();
    let t = "\"count \"\"schema\"\"\".\"h$preflight$ \"\"x\"\"\"";
    let count = "\"count \"\"schema\"\"\".\"h$preflight$ \"\"x\"\"_count\"";
    let c = |client: &mut postgres::Client| counts(client, t, count);
    assert_eq!(c(&mut client), ((3, 0), (3, 0)));
    assert!(runner.run(&mut client).unwrap().fast_path);
    // A writer with another search_path: the function names its table itself.
    client
        .batch_execute(&format!(
            "SET search_path = pg_catalog; \
             INSERT INTO {t} (version, name, checksum, chain, state) \
             VALUES ('4', 'by hand', 'x', 'x', 'in_progress'); RESET search_path"
        ))
        .unwrap();
    assert_eq!(c(&mut client), ((4, 1), (4, 1)));
    client
        .batch_execute(&format!(
            "UPDATE {t} SET state = 'applied' WHERE version = '4'"
        ))
        .unwrap();
    assert_eq!(c(&mut client), ((4, 0), (4, 0)));
    // One row more than the binary knows: the fast path sees it through the count alone
    // (the goal row 3 is unchanged), and the slow path reports it.
    let report = runner.run(&mut client).unwrap();
    assert!(!report.fast_path);
    assert_eq!(
        report.warnings,
        [Warning::AheadOfBinary {
            versions: vec![v(4)]
        }]
    );
    client
        .batch_execute(&format!(
            "UPDATE {t} SET state = 'failed' WHERE version = '4'"
        ))
        .unwrap();
    assert_eq!(c(&mut client), ((4, 1), (4, 1)));
    client
        .batch_execute(&format!("DELETE FROM {t} WHERE version = '4'"))
        .unwrap();
    assert_eq!(c(&mut client), ((3, 0), (3, 0)));
    assert!(runner.run(&mut client).unwrap().fast_path);
    // A row deleted behind the triggers' back: the stale count sends the boot to the slow
    // path (goal row missing), which recounts before re-applying.
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL session_replication_role = replica; \
             DELETE FROM {t} WHERE version = '3'; COMMIT"
        ))
        .unwrap();
    assert_eq!(c(&mut client), ((3, 0), (2, 0)));
    client.batch_execute("DROP TABLE posts").unwrap();
    let report = runner.run(&mut client).unwrap();
    assert_eq!(report.applied_versions(), [v(3)]);
    assert_eq!(c(&mut client), ((3, 0), (3, 0)));
    assert!(runner.run(&mut client).unwrap().fast_path);
    // The count's row deleted: the fast path cannot answer, the slow path puts it back.
    client
        .batch_execute(&format!("DELETE FROM {count}"))
        .unwrap();
    assert!(!runner.run(&mut client).unwrap().fast_path);
    assert_eq!(c(&mut client), ((3, 0), (3, 0)));
    assert!(runner.run(&mut client).unwrap().fast_path);
    client.batch_execute(&format!("TRUNCATE {t}")).unwrap();
    assert_eq!(c(&mut client), ((0, 0), (0, 0)));
}

/// A database migrated by `three()` whose history looks as one written before the row count
/// existed.
fn migrated_without_row_count() -> (TestDatabase, postgres::Client, Migrations) {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let m = three();
    m.run(&mut client).unwrap();
    client
        .batch_execute(
            "DROP TABLE preflight_history_count; \
             DROP FUNCTION preflight_history_counter() CASCADE",
        )
        .unwrap();
    (db, client, m)
}

#[test]
fn a_history_without_the_row_count_gets_it_on_its_next_boot() {
    let (_db, mut client, m) = migrated_without_row_count();
    let report = m.run(&mut client).unwrap();
    assert!(!report.fast_path && report.lock_taken, "{report:?}");
    assert!(report.applied.is_empty());
    assert_eq!(
        counts(&mut client, "preflight_history", "preflight_history_count"),
        ((3, 0), (3, 0))
    );
    let triggers: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'preflight_history'::regclass \
             AND NOT tgisinternal",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(triggers, 3);
    assert!(m.run(&mut client).unwrap().fast_path);
}

#[test]
fn a_role_that_cannot_create_the_trigger_still_boots_and_counts_in_the_fast_query() {
    let (db, mut admin, m) = migrated_without_row_count();
    let role = format!("pf_count_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON preflight_history, preflight_history_log \
             TO {role}"
        ))
        .unwrap();
    let cleanup = |admin: &mut postgres::Client| {
        admin
            .batch_execute(&format!(
                "REVOKE ALL ON SCHEMA public FROM {role}; DROP OWNED BY {role}"
            ))
            .unwrap();
        let mut server =
            postgres::Client::connect(preflight_runtime::testing::server_url(), postgres::NoTls)
                .unwrap();
        server.batch_execute(&format!("DROP ROLE {role}")).unwrap();
    };
    let mut as_role: postgres::Config = db.url().parse().unwrap();
    as_role.user(&role).password("");
    let mut client = as_role.connect(postgres::NoTls).unwrap();
    // No privilege to create anything: the run warns and goes on, every time.
    let first = m.run(&mut client);
    let second = m.run(&mut client);
    // May create tables, not triggers on a table it does not own: the `-1` marker.
    admin
        .batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {role}"))
        .unwrap();
    let third = m.run(&mut client);
    let fourth = m.run(&mut client);
    let marker: Option<(i64, i64)> = admin
        .query_opt("SELECT total, unfinished FROM preflight_history_count", &[])
        .unwrap()
        .map(|r| (r.get(0), r.get(1)));
    drop(client);
    cleanup(&mut admin);
    let (first, second, third, fourth) = (
        first.unwrap(),
        second.unwrap(),
        third.unwrap(),
        fourth.unwrap(),
    );
    assert!(first.applied.is_empty() && !first.fast_path);
    assert!(second.applied.is_empty() && !second.fast_path);
    assert!(third.applied.is_empty() && !third.fast_path);
    assert_eq!(marker, Some((-1, -1)));
    assert!(fourth.fast_path, "{fourth:?}");
}
