//! Files that manage their own transactions (`Kind::Script`, issue #14 class 2) on PostgreSQL
//! and SQLite: each `BEGIN; ... COMMIT;` block atomic together with its progress record, the
//! statements between blocks one by one; a failing block is rolled back before the failure is
//! recorded, and a resumption starts at the failed unit.

use preflight_runtime::testing::TestDatabase;
use preflight_runtime::{
    Body, Error, Kind, MigrationParts, Migrations, Repair, Span, State, Version, Warning,
};

/// A script body from its units: a unit starting with `BEGIN` is a block (it ends with its
/// `COMMIT;`), any other a statement.
fn script(units: &[&str]) -> Body {
    let mut text = String::from("-- a file with its own transaction blocks\n");
    let mut spans = Vec::new();
    for unit in units {
        let start = text.len() as u32;
        text.push_str(unit);
        let end = text.len() as u32;
        spans.push(if unit.starts_with("BEGIN") {
            let commit = start + unit.rfind("COMMIT").unwrap() as u32;
            Span::block(start, commit, end)
        } else {
            Span::new(start, end)
        });
        text.push('\n');
    }
    Body::owned(text, spans, Kind::Script)
}

fn set(body: Body) -> Migrations {
    Migrations::from_parts(vec![MigrationParts {
        version: Version::new(1),
        name: "blocks".into(),
        path: "migrations/1_blocks.up.sql".into(),
        checksum_text: body.text().to_owned(),
        up: body,
        down: None,
        requires: Vec::new(),
    }])
    .unwrap()
}

const POSTGRES_UNITS: [&str; 4] = [
    "CREATE TABLE log (id int PRIMARY KEY);",
    "BEGIN;\nINSERT INTO log VALUES (1);\nCREATE TABLE a (id int);\nCOMMIT;",
    "BEGIN;\nCREATE TABLE b (id int);\nINSERT INTO needs_me VALUES (1);\nCOMMIT;",
    "CREATE INDEX CONCURRENTLY log_idx ON log (id);",
];

fn pg_exists(client: &mut postgres::Client, name: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .unwrap()
        .get(0)
}

fn pg_row(client: &mut postgres::Client) -> (String, i32, i32) {
    let r = client
        .query_one(
            "SELECT state, statements_done, statements_total FROM preflight_history",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[test]
fn postgres_script_blocks_are_atomic_and_a_failure_resumes_at_its_block() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let m = set(script(&POSTGRES_UNITS));
    let err = m.run(&mut client).unwrap_err();
    match &err {
        Error::Migration(e) => {
            assert_eq!(e.statement, Some(2), "{err}");
            assert_eq!(e.source.code.as_deref(), Some("42P01"), "{err}");
        }
        other => panic!("{other}"),
    }
    // Block 1 committed with its progress; block 2 rolled back whole; the session is usable
    // (the failure record was written after the rollback).
    assert_eq!(pg_row(&mut client), ("failed".to_owned(), 2, 4));
    assert!(pg_exists(&mut client, "a"));
    assert!(!pg_exists(&mut client, "b"));
    assert!(!pg_exists(&mut client, "log_idx"));
    let refused = m.run(&mut client).unwrap_err();
    assert!(
        matches!(&refused, Error::Unfinished(u) if u.state == State::Failed && u.statements_done == 2),
        "{refused}"
    );

    // The fix is the database's (the table block 2 needs), the file is unchanged: resume.
    client
        .batch_execute("CREATE TABLE needs_me (id int)")
        .unwrap();
    let report = m
        .repair(&mut client, Repair::Resume(Version::new(1)))
        .unwrap();
    assert_eq!(report.applied_versions(), [Version::new(1)]);
    assert!(report.warnings.contains(&Warning::Resumed {
        set: None,
        version: Version::new(1),
        from_statement: 2
    }));
    assert_eq!(pg_row(&mut client), ("applied".to_owned(), 4, 4));
    assert!(pg_exists(&mut client, "b") && pg_exists(&mut client, "log_idx"));
    // Block 1 ran once: its INSERT into a primary key would have failed a second time.
    let n: i64 = client
        .query_one("SELECT count(*) FROM log", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert!(m.run(&mut client).unwrap().fast_path);
}

#[test]
fn postgres_a_failed_commit_rolls_the_block_back_with_its_progress() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    // A deferred constraint fails at COMMIT: the block and its progress row go together.
    let m = set(script(&[
        "CREATE TABLE p (id int PRIMARY KEY);\n",
        "CREATE TABLE c (p int REFERENCES p DEFERRABLE INITIALLY DEFERRED);",
        "BEGIN;\nINSERT INTO c VALUES (7);\nCOMMIT;",
    ]));
    let err = m.run(&mut client).unwrap_err();
    assert!(
        matches!(&err, Error::Migration(e) if e.statement == Some(2) && e.source.code.as_deref() == Some("23503")),
        "{err}"
    );
    assert_eq!(pg_row(&mut client), ("failed".to_owned(), 2, 3));
    let n: i64 = client
        .query_one("SELECT count(*) FROM c", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[test]
fn sqlite_script_blocks_are_atomic_and_a_failure_resumes_at_its_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    let m = set(script(&[
        "CREATE TABLE log (id INTEGER PRIMARY KEY);",
        "BEGIN;\nINSERT INTO log VALUES (1);\nCREATE TABLE a (id int);\nCOMMIT;",
        "BEGIN IMMEDIATE;\nCREATE TABLE b (id int);\nINSERT INTO needs_me VALUES (1);\nCOMMIT;",
        "CREATE INDEX log_idx ON log (id);",
    ]));
    let err = m.run(&mut conn).unwrap_err();
    assert!(
        matches!(&err, Error::Migration(e) if e.statement == Some(2)),
        "{err}"
    );
    assert!(conn.is_autocommit(), "the failed block was rolled back");
    let row = |conn: &rusqlite::Connection| -> (String, i64, i64) {
        conn.query_row(
            "SELECT state, statements_done, statements_total FROM preflight_history",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    let exists = |conn: &rusqlite::Connection, name: &str| -> bool {
        conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    };
    assert_eq!(row(&conn), ("failed".to_owned(), 2, 4));
    assert!(exists(&conn, "a") && !exists(&conn, "b"));

    conn.execute_batch("CREATE TABLE needs_me (id int)")
        .unwrap();
    let report = m
        .repair(&mut conn, Repair::Resume(Version::new(1)))
        .unwrap();
    assert_eq!(report.applied_versions(), [Version::new(1)]);
    assert_eq!(row(&conn), ("applied".to_owned(), 4, 4));
    assert!(exists(&conn, "b") && exists(&conn, "log_idx"));
    let n: i64 = conn
        .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}
