//! The `preflight` binary against real databases: every command, every exit code.

use std::fs;
use std::path::Path;
use std::process::Command;

use preflight_runtime::testing::TestDatabase;

mod common;
use common::{Run, BIN};

/// A migration directory of three reversible migrations, the second without a down file.
fn migrations(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let files = [
        (
            "1_users.up.sql",
            "CREATE TABLE users (id int PRIMARY KEY, email text);\n",
        ),
        ("1_users.down.sql", "DROP TABLE users;\n"),
        (
            "2_seed.up.sql",
            "INSERT INTO users VALUES (1, 'a@example.com');\n",
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

fn count(db: &TestDatabase, sql: &str) -> i64 {
    db.connect().query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn status_up_status_is_snapshotted() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    migrations(&dir);

    let before = run(&dir, Some(db.url()), &["status"]);
    assert_eq!(before.code, 0, "{}", before.stderr);
    insta::assert_snapshot!("status_pending", before.stdout);

    let up = run(&dir, Some(db.url()), &["up"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(
        up.stdout.ends_with("3 migration(s) applied\n"),
        "{}",
        up.stdout
    );
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 1);

    let after = run(&dir, Some(db.url()), &["status"]);
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "[time]"),
        (r"\d+ ms", "[ms]"),
    ]}, {
        insta::assert_snapshot!("status_applied", after.stdout);
    });

    let again = run(&dir, Some(db.url()), &["up"]);
    assert_eq!(again.stdout, "database is current: nothing to do\n");
}

#[test]
fn dry_run_touches_nothing() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    let r = run(
        tmp.path(),
        Some(db.url()),
        &["up", "--dry-run", "--to", "2"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("would apply 2 migration(s):"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("INSERT INTO users VALUES"));
    assert!(!r.stdout.contains("ADD COLUMN name"));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"
        ),
        0
    );
}

#[test]
fn up_to_then_down_by_steps_and_to() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    assert_eq!(
        run(tmp.path(), Some(db.url()), &["up", "--to", "1"]).code,
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 1);
    assert_eq!(run(tmp.path(), Some(db.url()), &["up"]).code, 0);

    let down = run(tmp.path(), Some(db.url()), &["down", "--steps", "1"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(
        count(&db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'name'"),
        0
    );
    // Migration 2 has no down file: refused before anything is touched.
    let refused = run(tmp.path(), Some(db.url()), &["down", "--to", "0"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains('2'), "{}", refused.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 2);
}

#[test]
fn edited_migration_refuses_then_repair_accepts() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    assert_eq!(run(tmp.path(), Some(db.url()), &["up"]).code, 0);
    fs::write(
        tmp.path().join("3_names.up.sql"),
        "-- reviewed\nALTER TABLE users ADD COLUMN name text;\n",
    )
    .unwrap();

    let status = run(tmp.path(), Some(db.url()), &["status"]);
    assert_eq!(status.code, 1);
    assert!(status.stdout.contains("changed"), "{}", status.stdout);
    assert!(status.stdout.contains("would refuse"), "{}", status.stdout);
    let up = run(tmp.path(), Some(db.url()), &["up"]);
    assert_eq!(up.code, 1);

    let repair = run(
        tmp.path(),
        Some(db.url()),
        &["repair", "--accept-checksum", "3"],
    );
    assert_eq!(repair.code, 0, "{}", repair.stderr);
    assert_eq!(run(tmp.path(), Some(db.url()), &["status"]).code, 0);
}

#[test]
fn baseline_marks_without_running() {
    let db = TestDatabase::empty();
    db.connect()
        .batch_execute("CREATE TABLE users (id int PRIMARY KEY, email text)")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    let r = run(tmp.path(), Some(db.url()), &["baseline", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(run(tmp.path(), Some(db.url()), &["up"]).code, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 1);
}

#[test]
fn failed_no_transaction_migration_forget_and_mark_applied() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("1_two.sql"),
        "-- preflight:no-transaction\nCREATE TABLE a (id int);\nCREATE TABLE a (id int);\n",
    )
    .unwrap();
    let up = run(tmp.path(), Some(db.url()), &["up"]);
    assert_eq!(up.code, 1);
    assert!(up.stderr.contains("42P07"), "{}", up.stderr);
    let status = run(tmp.path(), Some(db.url()), &["status"]);
    assert!(
        status.stdout.contains("failed at statement 2/2"),
        "{}",
        status.stdout
    );

    assert_eq!(
        run(
            tmp.path(),
            Some(db.url()),
            &["repair", "--mark-applied", "1"]
        )
        .code,
        0
    );
    assert_eq!(run(tmp.path(), Some(db.url()), &["status"]).code, 0);
    assert_eq!(
        run(tmp.path(), Some(db.url()), &["repair", "--forget", "1"]).code,
        0
    );
    // Forgotten: the next `up` runs it again from the start (and fails the same way).
    assert_eq!(run(tmp.path(), Some(db.url()), &["up"]).code, 1);
}

#[test]
fn resume_continues_after_the_last_completed_statement() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("1_two.sql");
    fs::write(
        &file,
        "-- preflight:no-transaction\nCREATE TABLE a (id int);\nINSERT INTO missing VALUES (1);\n",
    )
    .unwrap();
    assert_eq!(run(tmp.path(), Some(db.url()), &["up"]).code, 1);
    db.connect()
        .batch_execute("CREATE TABLE missing (id int)")
        .unwrap();
    let r = run(tmp.path(), Some(db.url()), &["repair", "--resume", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM missing"), 1);
    assert_eq!(run(tmp.path(), Some(db.url()), &["status"]).code, 0);
}

#[test]
fn new_follows_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    let r = run(tmp.path(), None, &["new", "add_index", "--reversible"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(tmp.path().join("4_add_index.up.sql").exists());
    assert!(tmp.path().join("4_add_index.down.sql").exists());
    assert_eq!(run(tmp.path(), None, &["check"]).code, 0);
}

#[test]
fn check_reports_errors_and_lints() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("1_a.sql"), "CREATE TABLE t (id int);\n").unwrap();
    fs::write(tmp.path().join("2_b.sql"), "CREATE INDEX i ON t (id);\n").unwrap();
    let ok = run(tmp.path(), None, &["check"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("2_b.sql:1:1: warning"), "{}", ok.stdout);
    assert_eq!(run(tmp.path(), None, &["check", "--deny-warnings"]).code, 1);

    fs::write(tmp.path().join("3_c.sql"), "CREATE TABLE (;\n").unwrap();
    let bad = run(tmp.path(), None, &["check"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("3_c.sql:1:"), "{}", bad.stderr);
    let json = run(tmp.path(), None, &["check", "--json"]);
    assert_eq!(json.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["ok"], false);
}

#[test]
fn usage_and_connection_errors() {
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    assert_eq!(run(tmp.path(), None, &["frobnicate"]).code, 2);
    assert_eq!(run(tmp.path(), None, &["down"]).code, 2);
    let no_url = run(tmp.path(), None, &["status"]);
    assert_eq!(no_url.code, 2);
    assert!(no_url.stderr.contains("DATABASE_URL"));

    let bad_url = run(tmp.path(), Some("postgres://u:hunter2@[bad"), &["status"]);
    assert_eq!(bad_url.code, 1);
    assert!(!bad_url.stderr.contains("hunter2"), "{}", bad_url.stderr);

    let unreachable = run(
        tmp.path(),
        Some("postgres://u:hunter2@127.0.0.1:1/db"),
        &["status", "--json"],
    );
    assert_eq!(unreachable.code, 1);
    assert!(
        unreachable.stdout.contains("cannot connect"),
        "{}",
        unreachable.stdout
    );
    assert!(!unreachable.stdout.contains("hunter2"));

    let missing = run(&tmp.path().join("nope"), None, &["check"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );
}

#[test]
fn database_of_another_tool_is_recognised() {
    let db = TestDatabase::empty();
    db.connect()
        .batch_execute(
            "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES (2, false);",
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    let status = run(tmp.path(), Some(db.url()), &["status"]);
    assert!(
        status.stdout.contains("migrated by golang-migrate"),
        "{}",
        status.stdout
    );
    let up = run(tmp.path(), Some(db.url()), &["up"]);
    assert_eq!(up.code, 1);
    assert!(up.stderr.contains("golang-migrate"), "{}", up.stderr);
    assert!(up.stderr.contains("run `preflight adopt`"), "{}", up.stderr);

    let other = TestDatabase::empty();
    other
        .connect()
        .batch_execute("CREATE TABLE schema_migrations (version varchar PRIMARY KEY)")
        .unwrap();
    let status = run(tmp.path(), Some(other.url()), &["status"]);
    assert!(status.stdout.contains("unknown tool"), "{}", status.stdout);
    let up = run(tmp.path(), Some(other.url()), &["up"]);
    assert_eq!(up.code, 1);
    assert!(up.stderr.contains("preflight baseline"), "{}", up.stderr);
}

#[test]
fn adopt_takes_over_another_tools_history() {
    let db = TestDatabase::empty();
    // goose applied 1 and 2 of the directory's three migrations (its table as goose v3 makes it).
    db.connect()
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text);
             INSERT INTO users VALUES (1, 'a@example.com');
             CREATE TABLE goose_db_version (id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
               version_id bigint NOT NULL, is_applied boolean NOT NULL,
               tstamp timestamp NOT NULL DEFAULT now());
             INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (1, true), (2, true);",
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    let history_tables = "SELECT count(*) FROM pg_tables WHERE tablename = 'preflight_history'";

    let status = run(tmp.path(), Some(db.url()), &["status"]);
    assert!(
        status.stdout.contains("migrated by goose"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("preflight adopt"),
        "{}",
        status.stdout
    );
    let up = run(tmp.path(), Some(db.url()), &["up"]);
    assert_eq!(up.code, 1);
    assert!(up.stderr.contains("run `preflight adopt`"), "{}", up.stderr);

    let dry = run(tmp.path(), Some(db.url()), &["adopt", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(
        dry.stdout,
        "would adopt 2 migration(s) from goose (public.goose_db_version): 1, 2\n\
         pending for `preflight up`: 3\n"
    );
    let json = run(
        tmp.path(),
        Some(db.url()),
        &["adopt", "--dry-run", "--json"],
    );
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["adopted"]["versions"], serde_json::json!(["1", "2"]));
    assert_eq!(doc["pending"], serde_json::json!(["3"]));
    assert_eq!(count(&db, history_tables), 0);

    let wrong = run(tmp.path(), Some(db.url()), &["adopt", "--from", "flyway"]);
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("no history table of flyway"),
        "{}",
        wrong.stderr
    );
    assert_eq!(
        run(tmp.path(), Some(db.url()), &["adopt", "--from", "nope"]).code,
        2
    );

    let adopt = run(tmp.path(), Some(db.url()), &["adopt", "--from", "goose"]);
    assert_eq!(adopt.code, 0, "{}", adopt.stderr);
    assert!(
        adopt
            .stdout
            .starts_with("adopted 2 migration(s) from goose"),
        "{}",
        adopt.stdout
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM preflight_history \
             WHERE applied_by = 'adopted from goose (goose_db_version)'"
        ),
        2
    );
    // Each adopted row records where it came from.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM preflight_history \
             WHERE repaired LIKE 'adopted from goose''s table public.goose_db_version by %'"
        ),
        2
    );
    assert_eq!(count(&db, "SELECT count(*) FROM goose_db_version"), 3);

    let up = run(tmp.path(), Some(db.url()), &["up"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(
        up.stdout.ends_with("1 migration(s) applied\n"),
        "{}",
        up.stdout
    );
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 1);

    let again = run(tmp.path(), Some(db.url()), &["adopt"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("nothing adopted"), "{}", again.stdout);
    assert_eq!(run(tmp.path(), Some(db.url()), &["status"]).code, 0);
}

#[test]
fn a_tool_that_applied_nothing_does_not_block_up() {
    // goose created its table (and its version-0 marker row) but applied nothing.
    let db = TestDatabase::empty();
    db.connect()
        .batch_execute(
            "CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL,
               is_applied boolean NOT NULL, tstamp timestamp NULL DEFAULT now());
             INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true);",
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    let dry = run(tmp.path(), Some(db.url()), &["adopt", "--dry-run"]);
    assert!(dry.stdout.contains("none applied there"), "{}", dry.stdout);
    assert!(
        dry.stdout.contains("pending for `preflight up`: 1, 2, 3"),
        "{}",
        dry.stdout
    );
    let up = run(tmp.path(), Some(db.url()), &["up"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(
        up.stdout.ends_with("3 migration(s) applied\n"),
        "{}",
        up.stdout
    );
}

#[test]
fn adopt_refuses_a_dirty_golang_migrate_database() {
    let db = TestDatabase::empty();
    db.connect()
        .batch_execute(
            "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES (2, true);",
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    let r = run(tmp.path(), Some(db.url()), &["adopt"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("golang-migrate says migration 2 is dirty"),
        "{}",
        r.stderr
    );
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 0);
}

#[test]
fn reset_prints_its_plan_and_needs_yes() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    assert_eq!(run(tmp.path(), Some(db.url()), &["up"]).code, 0);
    db.connect()
        .batch_execute("INSERT INTO users VALUES (2, 'b@example.com')")
        .unwrap();

    let dry = run(tmp.path(), Some(db.url()), &["reset"]);
    assert_eq!(dry.code, 1, "{}", dry.stderr);
    // Migration 2 has no down file: the reset would drop the schema's objects instead.
    dry.assert_stdout_has(&[
        "migration 2 (",
        "has no down migration",
        "dropping every object in schema public",
        "table public.users",
        "table public.preflight_history",
        "nothing was changed: run again with --yes",
    ]);
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 2);
}

#[test]
fn reset_drops_nothing_while_a_migration_run_holds_the_lock() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    assert_eq!(run(tmp.path(), Some(db.url()), &["up"]).code, 0);
    // What a booting application's run holds while it migrates.
    let key = preflight_runtime::testing::advisory_key(db.name(), "public", "preflight_history");
    let mut holder = db.connect();
    holder
        .query_one("SELECT pg_advisory_lock($1)::text", &[&key])
        .unwrap();
    // The reset waits for the runner's lock like any run, then gives up naming the holder.
    let refused = run(
        tmp.path(),
        Some(db.url()),
        &["reset", "--yes", "--lock-timeout", "300ms"],
    );
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("could not take the migration lock")
            && refused.stderr.contains("held by backend pid"),
        "{}",
        refused.stderr
    );
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 1);
    holder
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .unwrap();
    let reset = run(tmp.path(), Some(db.url()), &["reset", "--yes"]);
    assert_eq!(reset.code, 0, "{}{}", reset.stdout, reset.stderr);
}

#[test]
fn reset_refuses_other_machines_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    let remote = "postgres://app:hunter2@db.example.invalid:5432/app";
    let refused = run(tmp.path(), Some(remote), &["reset", "--yes"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("db.example.invalid") && refused.stderr.contains("--allow-remote"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
    // Allowed, it goes on to connect (and fails here: the host does not exist).
    let allowed = run(
        tmp.path(),
        Some(remote),
        &["reset", "--yes", "--allow-remote"],
    );
    assert_eq!(allowed.code, 1);
    assert!(
        allowed.stderr.contains("cannot connect") && !allowed.stderr.contains("--allow-remote"),
        "{}",
        allowed.stderr
    );
}

#[test]
fn reset_drops_every_object_of_the_schema_then_reapplies() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    assert_eq!(run(tmp.path(), Some(db.url()), &["up"]).code, 0);
    db.connect()
        .batch_execute(
            "INSERT INTO users VALUES (2, 'b@example.com');
             CREATE EXTENSION citext;
             CREATE TYPE mood AS ENUM ('ok', 'sad');
             CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
             CREATE TYPE pair AS (a int, b int);
             CREATE TABLE notes (
                 id int GENERATED ALWAYS AS IDENTITY, m mood, e email, s serial, c citext
             );
             CREATE TABLE events (at date) PARTITION BY RANGE (at);
             CREATE TABLE events_2026 PARTITION OF events
                 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             CREATE VIEW user_emails AS SELECT email FROM users;
             CREATE MATERIALIZED VIEW user_count AS SELECT count(*) FROM users;
             CREATE SEQUENCE tickets;
             CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b';
             CREATE SCHEMA elsewhere;
             CREATE TABLE elsewhere.kept (id int);",
        )
        .unwrap();

    let reset = run(tmp.path(), Some(db.url()), &["reset", "--yes"]);
    assert_eq!(reset.code, 0, "{}{}", reset.stdout, reset.stderr);
    reset.assert_stdout_has(&[
        "type public.mood",
        "domain public.email",
        "type public.pair",
        "table public.notes",
        "table public.events",
        "view public.user_emails",
        "materialized view public.user_count",
        "sequence public.tickets",
        "function public.add(a integer, b integer)",
        "extension citext",
        "reset: 3 migration(s) applied",
    ]);
    // Dropped with their table, not listed: partitions and owned sequences.
    assert!(!reset.stdout.contains("events_2026"), "{}", reset.stdout);
    assert!(!reset.stdout.contains("notes_s_seq"), "{}", reset.stdout);
    // An extension's own functions and types go with it.
    assert!(!reset.stdout.contains("public.citext"), "{}", reset.stdout);
    // The schema holds what the migrations made, and nothing else; other schemas are untouched.
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
        ),
        // users and the history's tables
        count(
            &db,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN \
             ('users', 'preflight_history')"
        )
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_type WHERE typname IN ('mood', 'email', 'pair', 'citext')"
        ),
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM elsewhere.kept"), 0);
    let status = run(tmp.path(), Some(db.url()), &["up"]);
    assert_eq!(status.stdout, "database is current: nothing to do\n");
}

#[test]
fn reset_reverts_when_every_migration_is_reversible() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    migrations(tmp.path());
    // Without the seed (the one without a down file), every migration is reversible.
    fs::remove_file(tmp.path().join("2_seed.up.sql")).unwrap();
    assert_eq!(run(tmp.path(), Some(db.url()), &["up"]).code, 0);
    db.connect()
        .batch_execute(
            "INSERT INTO users VALUES (1, 'a@example.com'); CREATE TABLE not_migrated (id int)",
        )
        .unwrap();

    let reset = run(tmp.path(), Some(db.url()), &["reset", "--yes"]);
    assert_eq!(reset.code, 0, "{}{}", reset.stdout, reset.stderr);
    assert!(
        reset
            .stdout
            .starts_with("every applied migration is reversible: reverting 2 migration(s)"),
        "{}",
        reset.stdout
    );
    assert!(reset.stdout.contains("reset: 2 migration(s) applied"));
    // The migrations ran down and up again; what they do not own is kept.
    assert_eq!(count(&db, "SELECT count(*) FROM users"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM not_migrated"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM preflight_history"), 2);
}

#[test]
fn wait_exits_1_naming_what_is_pending_then_0_once_migrated() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    migrations(&dir);

    let pending = run(&dir, Some(db.url()), &["wait", "--timeout", "100ms"]);
    assert_eq!(pending.code, 1, "{}", pending.all());
    assert!(
        pending
            .stderr
            .contains("migration(s) 1, 2, 3 still pending"),
        "{}",
        pending.stderr
    );
    assert_eq!(run(&dir, Some(db.url()), &["up"]).code, 0);
    let current = run(&dir, Some(db.url()), &["wait", "--json"]);
    assert_eq!(current.code, 0, "{}", current.all());
    let doc: serde_json::Value = serde_json::from_str(&current.stdout).unwrap();
    assert_eq!(doc["ok"], true);
}

#[test]
fn drift_exits_0_when_clean_and_1_naming_the_hand_change() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    migrations(&dir);
    assert_eq!(run(&dir, Some(db.url()), &["up"]).code, 0);

    let clean = run(&dir, Some(db.url()), &["drift"]);
    assert_eq!(clean.code, 0, "{}", clean.all());
    assert!(clean.stdout.starts_with("no drift:"), "{}", clean.stdout);

    db.connect()
        .batch_execute("CREATE INDEX users_email ON users (email); ALTER TABLE users ALTER COLUMN email SET NOT NULL")
        .unwrap();
    let drifted = run(&dir, Some(db.url()), &["drift"]);
    assert_eq!(drifted.code, 1, "{}", drifted.all());
    drifted.assert_stdout_has(&[
        "drift: 2 difference(s)",
        "CHANGE   KIND    NAME                DETAIL",
        "changed  column  public.users.email  not null: live yes, migrations (none)",
        "added    index   public.users_email  CREATE INDEX users_email ON public.users USING btree (email)",
    ]);
    let json = run(&dir, Some(db.url()), &["drift", "--json"]);
    assert_eq!(json.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["clean"], false);
    assert_eq!(doc["differences"][1]["name"], "public.users_email");
    assert_eq!(doc["differences"][0]["changes"][0]["attribute"], "not null");
    assert_eq!(doc["compared"], serde_json::json!(["1", "2", "3"]));
    // The scratch databases are gone.
    let left = count(
        &db,
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'preflight\\_drift\\_%'",
    );
    assert_eq!(left, 0);
}

#[test]
fn a_migration_blocked_by_a_lock_names_the_session_holding_it() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    migrations(&dir);
    assert_eq!(run(&dir, Some(db.url()), &["up", "--to", "2"]).code, 0);
    let mut holder = db.connect();
    holder
        .batch_execute("SET application_name = 'console'; BEGIN; SELECT count(*) FROM users;")
        .unwrap();
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let blocked = run(
        &dir,
        Some(db.url()),
        &["up", "--sql-lock-timeout", "50ms", "--lock-retries", "1"],
    );
    assert_eq!(blocked.code, 1, "{}", blocked.all());
    for part in [
        "migration 3 `names`",
        "within its lock timeout (50ms) in 2 attempt(s)",
        "Locked table: public.users",
        &format!("pid {pid} (application_name `console`, idle in transaction"),
    ] {
        assert!(blocked.stderr.contains(part), "{part}: {}", blocked.stderr);
    }
    holder.batch_execute("COMMIT").unwrap();
    assert_eq!(run(&dir, Some(db.url()), &["up"]).code, 0);
}
