//! Real migration directories through the binary (issue #14): read-only commands on a
//! directory with problems, declared naming patterns, pop's one directory for every dialect,
//! files that manage their own transactions; and (issue #15) `check` takes its dialect from
//! `--dialect`, not from `DATABASE_URL`, MySQL's included.

use std::fs;
use std::path::Path;
use std::process::Command;

use preflight_runtime::testing::TestDatabase;

mod common;
use common::{Run, BIN};

fn run(dir: &Path, url: Option<&str>, args: &[&str]) -> Run {
    let mut c = Command::new(BIN);
    c.arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("DATABASE_URL");
    if let Some(url) = url {
        c.env("DATABASE_URL", url);
    }
    Run::of(&mut c)
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

fn count(db: &TestDatabase, sql: &str) -> i64 {
    db.connect().query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn status_shows_a_directory_with_a_broken_down_file_and_only_running_it_refuses() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        dir,
        &[
            (
                "1_users.up.sql",
                "CREATE TABLE users (id bigint PRIMARY KEY);\n",
            ),
            // A real defect of real directories: a missing comma in a down file.
            ("1_users.down.sql", "DROP TABLE users\nDROP TABLE other;\n"),
            (
                "2_email.up.sql",
                "ALTER TABLE users ADD COLUMN email text;\n",
            ),
            ("2_email.down.sql", "ALTER TABLE users DROP COLUMN email;\n"),
        ],
    );
    let status = run(dir, Some(db.url()), &["status"]);
    assert_eq!(status.code, 1, "{}", status.all());
    status.assert_stdout_has(&[
        "pending",
        "1_users.down.sql:1:17: error: syntax error",
        "problem(s) in the migration directory",
    ]);
    // `up` never runs a down file: it applies both.
    let up = run(dir, Some(db.url()), &["up"]);
    assert_eq!(up.code, 0, "{}", up.all());
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 2);
    let json = run(dir, Some(db.url()), &["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(doc["problems"][0]
        .as_str()
        .is_some_and(|p| p.contains("1_users.down.sql")));
    // Reverting 2 runs a good file; reverting 1 would run the broken one: refused, naming it,
    // before anything is touched.
    let down = run(dir, Some(db.url()), &["down", "--to", "0"]);
    assert_eq!(down.code, 1);
    assert!(
        down.stderr.contains("1_users.down.sql:1:17"),
        "{}",
        down.stderr
    );
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 2);
    let one = run(dir, Some(db.url()), &["down", "--steps", "1"]);
    assert_eq!(one.code, 0, "{}", one.all());
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 1);
    // An ambiguous directory (a duplicate version) refuses every command that writes.
    write(dir, &[("2_again.up.sql", "select 1;\n")]);
    let dup = run(dir, Some(db.url()), &["up"]);
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("duplicate version 2"), "{}", dup.stderr);
    let status = run(dir, Some(db.url()), &["status"]);
    status.assert_stdout_has(&[
        "duplicate version 2",
        "problem(s) in the migration directory",
    ]);
}

#[test]
fn check_takes_its_dialect_from_the_option_not_the_database_url() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    // PostgreSQL-only SQL: SQLite refuses `GENERATED ... AS IDENTITY`.
    write(
        &dir,
        &[(
            "1_t.sql",
            "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\n",
        )],
    );
    let sqlite_url = format!("sqlite://{}", tmp.path().join("app.db").display());
    let checked = run(&dir, Some(&sqlite_url), &["check"]);
    assert_eq!(checked.code, 0, "{}", checked.all());
    assert!(checked.stdout.contains("(postgres)"), "{}", checked.stdout);
    let as_sqlite = run(&dir, None, &["check", "--dialect", "sqlite"]);
    assert_eq!(as_sqlite.code, 1, "{}", as_sqlite.all());
    assert!(as_sqlite.stderr.contains("SQLite:"), "{}", as_sqlite.stderr);
}

#[test]
fn check_in_the_mysql_dialect_reports_notes_and_commands_that_run_refuse_it() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    // Valid MySQL that sqlparser's grammar refuses (a note, never a warning), and pop's MySQL
    // file taken over the generic one.
    write(
        &dir,
        &[
            (
                "20260703000000000000_t.up.sql",
                "CREATE TABLE t (id INT, KEY k (id) INVISIBLE);\n",
            ),
            (
                "20260703000000000000_t.mysql.up.sql",
                "CREATE TABLE t (id INT, KEY k (id) INVISIBLE) ENGINE=InnoDB;\n",
            ),
        ],
    );
    let checked = run(
        &dir,
        None,
        &["check", "--dialect", "mysql", "--deny-warnings", "--json"],
    );
    assert_eq!(checked.code, 0, "{}", checked.all());
    let doc: serde_json::Value = serde_json::from_str(&checked.stdout).unwrap();
    assert_eq!(doc["dialect"], "mysql", "{doc}");
    assert_eq!(doc["warnings"].as_array().unwrap().len(), 0, "{doc}");
    let notes = doc["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{doc}");
    let note = notes[0].as_str().unwrap();
    assert!(
        note.contains("t.mysql.up.sql:1:") && note.contains("note: not checked by sqlparser"),
        "{note}"
    );

    // Preflight has no MySQL driver: MySQL's statements must not be run on PostgreSQL.
    let up = run(&dir, Some(db.url()), &["--dialect", "mysql", "up"]);
    assert_eq!(up.code, 2, "{}", up.all());
    assert!(
        up.stderr.contains("`--dialect mysql` works with `check`"),
        "{}",
        up.stderr
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM pg_tables WHERE tablename = 't'"),
        0
    );
}

#[test]
fn declared_pattern_and_project_wide_lint_options() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        dir,
        &[
            (
                "V0001.Initial_Schema.up.sql",
                "CREATE TABLE accounts (id bigint PRIMARY KEY, email varchar(200));\n",
            ),
            ("V0001.Initial_Schema.down.sql", "DROP TABLE accounts;\n"),
            (
                "V0002.Index_Email.up.sql",
                "CREATE INDEX accounts_email ON accounts (email);\n",
            ),
            ("schema.sql", "-- a dump, not a migration\n"),
        ],
    );
    let pattern = "V{version}.{name}.{direction}.sql";
    // Without the pattern the names are misnamed Flyway files.
    assert_eq!(run(dir, None, &["check"]).code, 1);
    let checked = run(dir, None, &["--names", pattern, "check"]);
    assert_eq!(
        checked.code, 1,
        "a non-matching .sql file is an error under a pattern"
    );
    assert!(checked
        .stderr
        .contains("schema.sql: error: does not match the declared naming pattern"));
    fs::remove_file(dir.join("schema.sql")).unwrap();
    let checked = run(dir, None, &["--names", pattern, "check"]);
    assert_eq!(checked.code, 0, "{}", checked.all());
    checked.assert_stdout_has(&["V0002.Index_Email.up.sql:1:1: warning", "1 warning(s)"]);
    let allowed = run(
        dir,
        None,
        &[
            "--names",
            pattern,
            "check",
            "--deny-warnings",
            "--allow",
            "require-concurrent-index-creation",
        ],
    );
    assert_eq!(allowed.code, 0, "{}", allowed.all());
    let style = run(
        dir,
        None,
        &["--names", pattern, "check", "--enable", "style"],
    );
    assert!(style.stdout.contains("prefer-"), "{}", style.stdout);
    assert_eq!(
        run(dir, None, &["check", "--allow", "no-such-rule"]).code,
        2
    );
    let up = run(dir, Some(db.url()), &["--names", pattern, "up"]);
    assert_eq!(up.code, 0, "{}", up.all());
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 2);
    let new = run(
        dir,
        None,
        &["--names", pattern, "new", "add users", "--reversible"],
    );
    assert_eq!(new.code, 0, "{}", new.all());
    assert!(dir.join("V0003.add_users.down.sql").exists());
}

#[test]
fn pop_directory_applies_the_dialects_files_and_long_versions() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        dir,
        &[
            (
                "20260703000000000000_networks.up.sql",
                "this is not PostgreSQL, but the postgres file wins;\n",
            ),
            (
                "20260703000000000000_networks.postgres.up.sql",
                "CREATE TABLE networks (id uuid PRIMARY KEY);\n",
            ),
            (
                "20260703000000000000_networks.sqlite3.up.sql",
                "CREATE TABLE networks (id TEXT PRIMARY KEY);\n",
            ),
            (
                "20260703000000000000_networks.mysql.up.sql",
                "CREATE TABLE networks (id CHAR(36));\n",
            ),
            (
                "20260703000000000000_networks.down.sql",
                "DROP TABLE networks;\n",
            ),
            (
                "20260703000000000001_index.postgres.autocommit.up.sql",
                "CREATE INDEX CONCURRENTLY networks_id ON networks (id);\n",
            ),
            ("20260703000000000001_index.sqlite3.up.sql", ""),
            ("20260703000000000001_index.down.sql", ""),
        ],
    );
    let up = run(dir, Some(db.url()), &["up"]);
    assert_eq!(up.code, 0, "{}", up.all());
    let versions: Vec<String> = db
        .connect()
        .query(
            "SELECT version FROM preflight_history ORDER BY applied_at",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, ["20260703000000000000", "20260703000000000001"]);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'networks_id'"
        ),
        1
    );
    let status = run(dir, Some(db.url()), &["status"]);
    assert_eq!(status.code, 0, "{}", status.all());
    let down = run(dir, Some(db.url()), &["down", "--to", "0"]);
    assert_eq!(down.code, 0, "{}", down.all());
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 0);
}
