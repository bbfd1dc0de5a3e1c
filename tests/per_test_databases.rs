//! `#[preflight::test]` as a user's suite uses it: twenty tests (sync and async on PostgreSQL,
//! SQLite, one that panics), each with its own migrated database, run in parallel by a child
//! process; afterwards none of the child's databases or files is left.

use std::process::Command;

use preflight::testing::{SqliteTestDatabase, TestDatabase};

static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations");
static SQLITE: preflight::Migrations = preflight::embed!("migrations-sqlite", dialect = "sqlite");

/// What every test checks: it starts at the latest migration, and sees only its own writes.
macro_rules! postgres_tests {
    ($($name:ident),*) => {$(
        #[preflight::test]
        fn $name(db: TestDatabase) {
            let mut client = db.connect();
            assert!(MIGRATIONS.run(&mut client).unwrap().fast_path);
            client
                .execute("INSERT INTO users (email) VALUES ($1)", &[&stringify!($name)])
                .unwrap();
            let rows: i64 = client.query_one("SELECT count(*) FROM users", &[]).unwrap().get(0);
            assert_eq!(rows, 1, "another test's row is visible");
        }
    )*};
}

macro_rules! async_postgres_tests {
    ($($name:ident),*) => {$(
        #[preflight::test(migrations = MIGRATIONS)]
        async fn $name(db: TestDatabase) -> Result<(), tokio_postgres::Error> {
            let mut client = db.connect_async().await;
            assert!(MIGRATIONS.run_async(&mut client).await.unwrap().fast_path);
            client
                .execute("INSERT INTO users (email) VALUES ($1)", &[&stringify!($name)])
                .await?;
            let rows: i64 = client.query_one("SELECT count(*) FROM users", &[]).await?.get(0);
            assert_eq!(rows, 1, "another test's row is visible");
            Ok(())
        }
    )*};
}

macro_rules! sqlite_tests {
    ($($name:ident),*) => {$(
        #[preflight::test(migrations = SQLITE)]
        fn $name(db: SqliteTestDatabase) {
            let mut conn = db.connect();
            assert!(SQLITE.run(&mut conn).unwrap().fast_path);
            conn.execute("INSERT INTO users (email) VALUES (?1)", [stringify!($name)])
                .unwrap();
            let rows: i64 = conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0)).unwrap();
            assert_eq!(rows, 1, "another test's row is visible");
        }
    )*};
}

postgres_tests!(each_pg_1, each_pg_2, each_pg_3, each_pg_4, each_pg_5, each_pg_6, each_pg_7);
async_postgres_tests!(
    each_async_1,
    each_async_2,
    each_async_3,
    each_async_4,
    each_async_5,
    each_async_6,
    each_async_7
);
sqlite_tests!(
    each_sqlite_1,
    each_sqlite_2,
    each_sqlite_3,
    each_sqlite_4,
    each_sqlite_5
);

/// A failing test's database is dropped too.
#[preflight::test]
#[should_panic(expected = "the test failed")]
fn each_panicking(db: TestDatabase) {
    db.connect()
        .execute("INSERT INTO users (email) VALUES ('x')", &[])
        .unwrap();
    panic!("the test failed");
}

#[test]
fn twenty_tests_in_parallel_share_nothing_and_leave_nothing() {
    // The child must use this process's server (with DATABASE_URL unset it would start a
    // private cluster of its own, which this test could not inspect afterwards).
    let server = preflight::testing::server_url();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["each_", "--test-threads=20"])
        .env("DATABASE_URL", server)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 20 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Names carry the creating process's id: `preflight_test_<secs>_<pid>_<n>`.
    let marker = format!("_{pid}_");
    let mut admin = postgres::Client::connect(server, postgres::NoTls).unwrap();
    let left: Vec<String> = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE left(datname, length($1)) = $1",
            &[&preflight::testing::DATABASE_PREFIX],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|name| name.contains(&marker))
        .collect();
    assert!(left.is_empty(), "databases left behind: {left:?}");
    let files: Vec<String> = std::fs::read_dir(std::env::temp_dir().join("preflight-sqlite"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(&marker))
        .collect();
    assert!(files.is_empty(), "SQLite files left behind: {files:?}");
}
