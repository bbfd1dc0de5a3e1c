//! The CLI over several migration directories composed together: `--dir SET=DIR` (repeated),
//! `--set`, `status` grouped by set, a set that is no longer composed.

use std::fs;
use std::path::Path;
use std::process::Command;

use preflight_runtime::testing::TestDatabase;

mod common;
use common::{Run, BIN};

/// `app` (its 2 requires `auth` 2) and `auth`, with the same versions.
fn directories(root: &Path) {
    let write = |dir: &str, name: &str, text: &str| {
        let dir = root.join(dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), text).unwrap();
    };
    write("app", "1_posts.up.sql", "CREATE TABLE posts (id int);\n");
    write("app", "1_posts.down.sql", "DROP TABLE posts;\n");
    write(
        "app",
        "2_author.up.sql",
        "-- preflight:requires auth 2\nALTER TABLE posts ADD author int REFERENCES users (id);\n",
    );
    write(
        "app",
        "2_author.down.sql",
        "ALTER TABLE posts DROP COLUMN author;\n",
    );
    write("auth", "1_users.up.sql", "CREATE TABLE users (id int);\n");
    write("auth", "1_users.down.sql", "DROP TABLE users;\n");
    write(
        "auth",
        "2_users_key.up.sql",
        "ALTER TABLE users ADD PRIMARY KEY (id);\n",
    );
    write(
        "auth",
        "2_users_key.down.sql",
        "ALTER TABLE users DROP CONSTRAINT users_pkey;\n",
    );
}

fn run(root: &Path, url: &str, args: &[&str]) -> Run {
    Run::of(
        Command::new(BIN)
            .current_dir(root)
            .env("DATABASE_URL", url)
            .args(args),
    )
}

const BOTH: [&str; 4] = ["--dir", "app=app", "--dir", "auth=auth"];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = BOTH.to_vec();
    args.extend_from_slice(extra);
    args
}

#[test]
fn two_directories_migrate_as_one_composition() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    directories(tmp.path());
    let url = db.url();

    // The dry run lists the composed order: auth 1 and 2 before app 2, which requires auth 2.
    let plan = run(tmp.path(), url, &with(&["up", "--dry-run"]));
    assert_eq!(plan.code, 0, "{}", plan.all());
    let listed: Vec<&str> = plan
        .stdout
        .lines()
        .filter(|l| l.starts_with("-- "))
        .collect();
    assert_eq!(listed.len(), 4, "{}", plan.stdout);
    for (line, expected) in
        listed
            .iter()
            .zip(["-- app 1 ", "-- auth 1 ", "-- auth 2 ", "-- app 2 "])
    {
        assert!(line.starts_with(expected), "{line}: {}", plan.stdout);
    }
    let up = run(tmp.path(), url, &with(&["up"]));
    assert_eq!(up.code, 0, "{}", up.all());

    // status groups by set.
    let status = run(tmp.path(), url, &with(&["status"]));
    assert_eq!(status.code, 0, "{}", status.all());
    status.assert_stdout_has(&["set app:", "set auth:", "database is current"]);
    let app_at = status.stdout.find("set app:").unwrap();
    let auth_at = status.stdout.find("set auth:").unwrap();
    assert!(app_at < auth_at, "{}", status.stdout);

    // A version needs its set; per set, a migration another set requires is kept.
    let down = run(tmp.path(), url, &with(&["down", "--to", "1"]));
    assert_eq!(down.code, 1, "{}", down.all());
    assert!(down.stderr.contains("--set"), "{}", down.stderr);
    let down = run(
        tmp.path(),
        url,
        &with(&["--set", "auth", "down", "--steps", "1"]),
    );
    assert_eq!(down.code, 1, "{}", down.all());
    assert!(down.stderr.contains("requires `auth` 2"), "{}", down.stderr);
    // To a point: app 2 goes too.
    let down = run(
        tmp.path(),
        url,
        &with(&["--set", "auth", "down", "--point", "1"]),
    );
    assert_eq!(down.code, 0, "{}", down.all());
    let rows: i64 = db
        .connect()
        .query_one("SELECT count(*) FROM preflight_history", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 2);

    // Only app's directory, named: auth is shown apart and left as it is.
    let alone = run(tmp.path(), url, &["--dir", "app=app", "status"]);
    assert_eq!(
        alone.code,
        1,
        "app 2 requires auth, which is not composed: {}",
        alone.all()
    );
    assert!(
        alone.stderr.contains("no set `auth` is composed"),
        "{}",
        alone.all()
    );
    fs::remove_file(tmp.path().join("app/2_author.up.sql")).unwrap();
    fs::remove_file(tmp.path().join("app/2_author.down.sql")).unwrap();
    let alone = run(tmp.path(), url, &["--dir", "app=app", "status"]);
    assert_eq!(alone.code, 0, "{}", alone.all());
    alone.assert_stdout_has(&[
        "set app:",
        "set auth (in the history, not composed here: left as it is):",
        "applied (set not composed)",
    ]);
}
