//! The `preflight` binary on SQLite files: the same commands, URLs `sqlite://relative.db`,
//! `sqlite:///absolute.db` and `sqlite::memory:`.

use std::fs;
use std::path::Path;
use std::process::Command;

use rusqlite::Connection;

mod common;
use common::{Run, BIN};

/// Three reversible migrations in SQLite's SQL, the second without a down file.
fn migrations(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let files = [
        (
            "1_users.up.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email text);\n",
        ),
        ("1_users.down.sql", "DROP TABLE users;\n"),
        (
            "2_seed.up.sql",
            // SQLite's syntax (PostgreSQL has no `OR IGNORE`): read in SQLite's dialect.
            "INSERT OR IGNORE INTO users VALUES (1, 'a@example.com');\n",
        ),
        (
            "3_names.up.sql",
            "ALTER TABLE users ADD COLUMN name text;\n",
        ),
        ("3_names.down.sql", "ALTER TABLE users DROP COLUMN name;\n"),
    ];
    for (name, text) in files {
        fs::write(dir.join(name), text).unwrap();
    }
}

/// Runs the binary in `cwd` with `--dir migrations`.
fn run(cwd: &Path, url: &str, args: &[&str]) -> Run {
    Run::of(
        Command::new(BIN)
            .current_dir(cwd)
            .args(["--dir", "migrations", "--database-url", url])
            .args(args)
            .env_remove("DATABASE_URL"),
    )
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn status_up_down_on_a_relative_file() {
    let tmp = tempfile::tempdir().unwrap();
    migrations(&tmp.path().join("migrations"));
    let url = "sqlite://data.db";
    let db = tmp.path().join("data.db");

    let before = run(tmp.path(), url, &["status"]);
    assert_eq!(before.code, 0, "{}", before.stderr);
    assert!(before.stdout.contains("pending"), "{}", before.stdout);

    let up = run(tmp.path(), url, &["up", "--to", "2"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(
        up.stdout.ends_with("2 migration(s) applied\n"),
        "{}",
        up.stdout
    );
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 1);
    assert!(run(tmp.path(), url, &["up"])
        .stdout
        .ends_with("1 migration(s) applied\n"));
    let again = run(tmp.path(), url, &["up"]);
    assert_eq!(again.stdout, "database is current: nothing to do\n");

    let status = run(tmp.path(), url, &["status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(doc.to_string().matches("\"applied\"").count(), 3, "{doc}");

    let down = run(tmp.path(), url, &["down", "--steps", "1"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'name'"
        ),
        0
    );
    // Migration 2 has no down file: refused before anything is touched.
    let refused = run(tmp.path(), url, &["down", "--to", "0"]);
    assert_eq!(refused.code, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 2);
}

#[test]
fn absolute_url_baseline_and_repairs() {
    let tmp = tempfile::tempdir().unwrap();
    migrations(&tmp.path().join("migrations"));
    let db = tmp.path().join("abs.db");
    let url = format!("sqlite://{}", db.display());
    assert!(url.starts_with("sqlite:///"));
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, email text)")
        .unwrap();
    let baseline = run(tmp.path(), &url, &["baseline", "1"]);
    assert_eq!(baseline.code, 0, "{}", baseline.stderr);
    assert_eq!(run(tmp.path(), &url, &["up"]).code, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 1);

    // An edited applied migration: status and up refuse, repair accepts.
    fs::write(
        tmp.path().join("migrations/3_names.up.sql"),
        "-- reviewed\nALTER TABLE users ADD COLUMN name text;\n",
    )
    .unwrap();
    let status = run(tmp.path(), &url, &["status"]);
    assert_eq!(status.code, 1);
    assert!(status.stdout.contains("changed"), "{}", status.stdout);
    assert_eq!(run(tmp.path(), &url, &["up"]).code, 1);
    let repair = run(tmp.path(), &url, &["repair", "--accept-checksum", "3"]);
    assert_eq!(repair.code, 0, "{}", repair.stderr);
    assert_eq!(run(tmp.path(), &url, &["status"]).code, 0);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM preflight_history WHERE repaired LIKE 'accept-checksum: %'"
        ),
        1
    );
}

#[test]
fn failed_no_transaction_migration_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    fs::create_dir_all(&dir).unwrap();
    // Valid on an empty database (the check that applies the chain in memory passes), but the
    // real database already has `taken`: statement 2 fails there.
    fs::write(
        dir.join("1_two.sql"),
        "-- preflight:no-transaction\nCREATE TABLE a (id int);\nCREATE TABLE taken (id int);\n",
    )
    .unwrap();
    let url = "sqlite://nt.db";
    let db = tmp.path().join("nt.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE taken (x text)")
        .unwrap();
    let up = run(tmp.path(), url, &["up"]);
    assert_eq!(up.code, 1);
    assert!(
        up.stderr.contains("table taken already exists"),
        "{}",
        up.stderr
    );
    let status = run(tmp.path(), url, &["status"]);
    assert!(
        status.stdout.contains("failed at statement 2/2"),
        "{}",
        status.stdout
    );
    Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TABLE taken")
        .unwrap();
    let r = run(tmp.path(), url, &["repair", "--resume", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pragma_table_info('taken') WHERE name = 'id'"
        ),
        1
    );
    assert_eq!(run(tmp.path(), url, &["status"]).code, 0);
}

#[test]
fn check_applies_the_chain_to_an_in_memory_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    migrations(&dir);
    // `check` needs no database: its dialect is `--dialect`'s, never guessed from the URL.
    let ok = run(
        tmp.path(),
        "sqlite://x.db",
        &["check", "--dialect", "sqlite"],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(!tmp.path().join("x.db").exists(), "check needs no database");
    fs::write(
        dir.join("4_typo.up.sql"),
        "CREATE INDEX i ON user (email);\n",
    )
    .unwrap();
    let bad = run(
        tmp.path(),
        "sqlite://x.db",
        &["check", "--dialect", "sqlite"],
    );
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("4_typo.up.sql:1:1") && bad.stderr.contains("no such table: main.user"),
        "{}",
        bad.stderr
    );
    let up = run(tmp.path(), "sqlite://x.db", &["up"]);
    assert_eq!(up.code, 1, "refused before touching the database");
    assert!(!tmp.path().join("x.db").exists());
}

#[test]
fn in_memory_database_and_bad_paths() {
    let tmp = tempfile::tempdir().unwrap();
    migrations(&tmp.path().join("migrations"));
    let up = run(tmp.path(), "sqlite::memory:", &["up"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(
        up.stdout.ends_with("3 migration(s) applied\n"),
        "{}",
        up.stdout
    );
    assert!(!tmp.path().join(":memory:").exists());

    let missing_dir = run(tmp.path(), "sqlite://no/such/dir/x.db", &["status"]);
    assert_eq!(missing_dir.code, 1);
    assert!(
        missing_dir.stderr.contains("sqlite://no/such/dir/x.db"),
        "{}",
        missing_dir.stderr
    );
}

/// `data.db` in `dir`, migrated with `up`: its URL and its path.
fn migrated(dir: &Path) -> (&'static str, std::path::PathBuf) {
    migrations(&dir.join("migrations"));
    let url = "sqlite://data.db";
    assert_eq!(run(dir, url, &["up"]).code, 0);
    (url, dir.join("data.db"))
}

#[test]
fn reset_drops_the_files_objects_and_reapplies() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, db) = migrated(tmp.path());
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO users VALUES (2, 'b@example.com', 'B');
             CREATE TABLE \"odd \"\"name\" (id INTEGER REFERENCES users (id));
             CREATE VIEW emails AS SELECT email FROM users;
             CREATE INDEX users_email ON users (email);",
        )
        .unwrap();

    let dry = run(tmp.path(), url, &["reset"]);
    assert_eq!(dry.code, 1);
    assert!(dry.stdout.contains("nothing was changed"), "{}", dry.stdout);
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 2);

    let reset = run(tmp.path(), url, &["reset", "--yes"]);
    assert_eq!(reset.code, 0, "{}{}", reset.stdout, reset.stderr);
    reset.assert_stdout_has(&[
        "has no down migration",
        "view emails",
        "table odd \"name",
        "table users",
        "table preflight_history",
        "reset: 3 migration(s) applied",
    ]);
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sqlite_schema WHERE name IN ('emails', 'odd \"name', 'users_email')"
        ),
        0
    );
    // A file is on this machine: no --allow-remote needed.
    assert!(!reset.stderr.contains("allow-remote"));
}

#[test]
fn reset_takes_the_migration_lock_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, db) = migrated(tmp.path());
    Connection::open(&db)
        .unwrap()
        .execute("INSERT INTO users VALUES (2, 'b@example.com', 'B')", [])
        .unwrap();
    // What a booting process holds while it migrates: the lock file next to the database.
    let holder = Connection::open(tmp.path().join("data.db-preflight-lock")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let refused = run(
        tmp.path(),
        url,
        &["reset", "--yes", "--lock-timeout", "300ms"],
    );
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("could not take the migration lock")
            && refused.stderr.contains("data.db-preflight-lock"),
        "{}",
        refused.stderr
    );
    // Nothing was dropped or reverted while the lock was held.
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 2);
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 3);

    holder.execute_batch("ROLLBACK").unwrap();
    let reset = run(tmp.path(), url, &["reset", "--yes"]);
    assert_eq!(reset.code, 0, "{}{}", reset.stdout, reset.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 1);
}

#[test]
fn drift_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (url, file) = migrated(dir.path());
    let tmp = dir.path();
    let clean = run(tmp, url, &["drift"]);
    assert_eq!(clean.code, 0, "{}", clean.all());
    Connection::open(&file)
        .unwrap()
        .execute_batch("CREATE INDEX hot_fix ON users (email)")
        .unwrap();
    let drifted = run(tmp, url, &["drift"]);
    assert_eq!(drifted.code, 1, "{}", drifted.all());
    drifted.assert_stdout_has(&["added   index  hot_fix  CREATE INDEX hot_fix ON users (email)"]);
}
