//! `wait` (issue #20): replicas that must not migrate wait for the process that does. Real
//! servers; what the migrating process is doing is read from `pg_stat_activity`, never
//! guessed with sleeps.

use std::time::{Duration, Instant};

use preflight_runtime::testing::TestDatabase;
use preflight_runtime::{Error, MigrationSpec, Migrations, Timeout, Version, Warning};

fn set(specs: Vec<MigrationSpec>) -> Migrations {
    Migrations::from_specs(specs).unwrap()
}

fn v(n: u64) -> Version {
    Version::new(n)
}

fn specs() -> Vec<MigrationSpec> {
    vec![
        MigrationSpec::new(1, "users", "CREATE TABLE users (id int);"),
        MigrationSpec::new(2, "flag", "ALTER TABLE users ADD COLUMN flag bool;"),
        MigrationSpec::new(3, "audit", "CREATE TABLE audit (id int);"),
    ]
}

fn has_flag(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT count(*) = 1 FROM information_schema.columns \
             WHERE table_name = 'users' AND column_name = 'flag'",
            &[],
        )
        .unwrap()
        .get(0)
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn replicas_wait_while_one_process_migrates_and_never_take_the_lock() {
    let db = TestDatabase::empty();
    let m = set(specs());
    set(specs()[..1].to_vec()).run(&mut db.connect()).unwrap();
    // Migration 2 will wait behind this session's lock on `users` until the test lets it go.
    let mut holder = db.connect();
    holder
        .batch_execute("BEGIN; SELECT count(*) FROM users;")
        .unwrap();

    std::thread::scope(|s| {
        let replica = |n: usize| {
            let (db, m) = (&db, &m);
            move || {
                let mut client = db.connect();
                let report = m
                    .runner()
                    .application(format!("replica {n}"))
                    .wait_timeout(Duration::from_secs(120))
                    .wait(&mut client)
                    .unwrap();
                // Returned only once the schema is the binary's.
                assert!(has_flag(&mut client));
                report
            }
        };
        let mut replicas: Vec<_> = (0..3).map(|n| s.spawn(replica(n))).collect();
        replicas.push(s.spawn(|| {
            // The async twin, on tokio-postgres.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut client = db.connect_async().await;
                    m.runner()
                        .wait_timeout(Duration::from_secs(120))
                        .wait_async(&mut client)
                        .await
                        .unwrap()
                })
        }));
        let migrator = s.spawn(|| {
            m.runner()
                .application("migrator")
                .sql_lock_timeout(Timeout::Off)
                .run(&mut db.connect())
                .unwrap()
        });

        // Whatever these checks find, the holder lets go: the migrator waits without limit.
        let checks = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut observer = db.connect();
            wait_until("the migrator waits for the table lock", || {
                observer
                    .query_one(
                        "SELECT count(*) = 1 FROM pg_stat_activity \
                         WHERE application_name = 'preflight: migrator' \
                         AND wait_event_type = 'Lock'",
                        &[],
                    )
                    .unwrap()
                    .get(0)
            });
            // Mid-migration: no replica returned, and only the migrator holds a migration
            // lock.
            assert!(replicas.iter().all(|r| !r.is_finished()));
            let advisory: Vec<String> = observer
                .query(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                     WHERE l.locktype = 'advisory' AND l.granted \
                     AND a.datname = current_database()",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(advisory, ["preflight: migrator"]);
        }));
        holder.batch_execute("COMMIT").unwrap();
        if let Err(panic) = checks {
            std::panic::resume_unwind(panic);
        }
        let migrated = migrator.join().unwrap();
        assert_eq!(migrated.applied_versions(), [v(2), v(3)]);
        for r in replicas {
            let report = r.join().unwrap();
            assert!(report.fast_path && !report.lock_taken, "{report:?}");
            assert!(report.applied.is_empty());
            assert!(report.waited > Duration::ZERO);
        }
    });
    // Every row was written by the migrator.
    let by: Vec<String> = db
        .connect()
        .query(
            "SELECT DISTINCT applied_by FROM preflight_history WHERE version <> '1'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(by.len(), 1);
    assert!(by[0].starts_with("migrator on "), "{by:?}");
}

#[test]
fn wait_times_out_naming_what_is_pending_and_writes_nothing() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let err = set(specs()[..2].to_vec())
        .runner()
        .wait_timeout(Duration::from_millis(150))
        .wait(&mut client)
        .unwrap_err();
    match &err {
        Error::WaitTimeout {
            pending,
            in_progress,
            waited,
        } => {
            assert_eq!(pending, &[v(1), v(2)]);
            assert_eq!(*in_progress, None);
            assert!(*waited >= Duration::from_millis(150));
        }
        other => panic!("expected WaitTimeout, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("migration(s) 1, 2 still pending and none in progress"),
        "{text}"
    );
    let created: bool = client
        .query_one("SELECT to_regclass('preflight_history') IS NOT NULL", &[])
        .unwrap()
        .get(0);
    assert!(!created, "wait must not create the history table");
}

#[test]
fn a_database_ahead_of_the_binary_is_accepted_and_a_refusal_fails_at_once() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    set(specs()).run(&mut client).unwrap();
    // An older replica in a rolling deploy: the newer release migrated further.
    let report = set(specs()[..2].to_vec()).wait(&mut client).unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::AheadOfBinary { versions, .. } if versions == &[v(3)])),
        "{report:?}"
    );

    // A binary whose migration 2 differs from the applied one: `run` refuses, so does `wait`,
    // at once rather than after its timeout.
    let mut changed = specs();
    changed[1] = MigrationSpec::new(2, "flag", "ALTER TABLE users ADD COLUMN flag int;");
    let started = Instant::now();
    let err = set(changed).wait(&mut client).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_replicas_wait_for_the_file_to_be_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let m = set(specs());
    let mut replica = rusqlite::Connection::open(&path).unwrap();
    let err = m
        .runner()
        .wait_timeout(Duration::from_millis(50))
        .wait(&mut replica)
        .unwrap_err();
    assert!(
        matches!(err, Error::WaitTimeout { ref pending, .. } if pending.len() == 3),
        "{err:?}"
    );
    m.run(&mut rusqlite::Connection::open(&path).unwrap())
        .unwrap();
    let report = m.wait(&mut replica).unwrap();
    assert!(report.fast_path);
}
