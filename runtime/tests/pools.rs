//! Pool hand-out: migrate on a pool connection, then hand the pool out; a failed run's
//! connection never returns to the pool holding the lock.

use preflight_runtime::testing::TestDatabase;
use preflight_runtime::{MigrationSpec, Migrations};

fn good() -> Migrations {
    Migrations::from_specs(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE a (id int);"),
        MigrationSpec::new(2, "b", "CREATE TABLE b (id int);"),
    ])
    .unwrap()
}

fn bad() -> Migrations {
    Migrations::from_specs(vec![
        MigrationSpec::new(1, "a", "CREATE TABLE a (id int);"),
        MigrationSpec::new(2, "b", "CREATE TABLE b (id int);"),
        MigrationSpec::new(3, "c", "SELECT * FROM does_not_exist;"),
    ])
    .unwrap()
}

fn applied(db: &TestDatabase) -> i64 {
    db.connect()
        .query_one("SELECT count(*) FROM preflight_history", &[])
        .unwrap()
        .get(0)
}

/// Advisory locks held by any session on the test database.
fn advisory_locks(db: &TestDatabase) -> i64 {
    db.connect()
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND d.datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn deadpool_migrates_then_hands_out_the_pool() {
    let db = TestDatabase::empty();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut cfg = deadpool_postgres::Config::new();
        cfg.url = Some(db.url().to_owned());
        let pool = cfg
            .create_pool(
                Some(deadpool_postgres::Runtime::Tokio1),
                tokio_postgres::NoTls,
            )
            .unwrap();
        let (pool, report) = good().ready_async(pool).await.unwrap();
        // The report comes back with the pool, for the application to log.
        assert_eq!(report.applied.len(), 2, "{report}");
        let mut client = pool.get().await.unwrap();
        // A pooled connection is a connection like any other.
        assert!(good().run_async(&mut client).await.unwrap().fast_path);
        let n: i64 = client
            .query_one("SELECT count(*) FROM preflight_history", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
        drop(client);
        let err = bad().ready_async(pool.clone()).await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("42P01"), "{err}");
        // The pool's one connection served the failed run and was detached, not returned.
        assert_eq!(pool.status().size, 0, "{:?}", pool.status());
    });
    assert_eq!(applied(&db), 2);
    assert_eq!(advisory_locks(&db), 0);
}

#[test]
fn bb8_migrates_then_hands_out_the_pool() {
    let db = TestDatabase::empty();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let manager = bb8_postgres::PostgresConnectionManager::new_from_stringlike(
            db.url(),
            tokio_postgres::NoTls,
        )
        .unwrap();
        let pool = bb8::Pool::builder()
            .max_size(2)
            .build(manager)
            .await
            .unwrap();
        let (pool, report) = good()
            .runner()
            .application("bb8 app")
            .ready_async(pool)
            .await
            .unwrap();
        assert_eq!(report.applied.len(), 2, "{report}");
        assert!(
            good()
                .run_async(&mut pool.get().await.unwrap())
                .await
                .unwrap()
                .fast_path
        );
        let n: i64 = pool
            .get()
            .await
            .unwrap()
            .query_one("SELECT count(*) FROM preflight_history", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
        assert!(bad().ready_async(pool.clone()).await.is_err());
    });
    assert_eq!(applied(&db), 2);
    assert_eq!(advisory_locks(&db), 0);
}

#[test]
fn r2d2_migrates_then_hands_out_the_pool() {
    let db = TestDatabase::empty();
    let manager =
        r2d2_postgres::PostgresConnectionManager::new(db.url().parse().unwrap(), postgres::NoTls);
    let pool = r2d2::Pool::builder().max_size(1).build(manager).unwrap();
    let (pool, report) = good().ready(pool).unwrap();
    assert_eq!(report.applied.len(), 2, "{report}");
    assert!(good().run(&mut pool.get().unwrap()).unwrap().fast_path);
    let n: i64 = pool
        .get()
        .unwrap()
        .query_one("SELECT count(*) FROM preflight_history", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert!(bad().ready(pool.clone()).is_err());
    // The one pooled connection came back clean: no lock, application_name reset.
    let mut c = pool.get().unwrap();
    let locks: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(locks, 0);
    let in_tx: String = c
        .query_one("SELECT current_setting('application_name')", &[])
        .unwrap()
        .get(0);
    assert!(!in_tx.starts_with("preflight"), "{in_tx}");
    drop(c);
    assert_eq!(applied(&db), 2);
}
