//! `preflight::cli::run_from` over embedded migrations (feature `cli`).
#![cfg(feature = "cli")]

use std::process::ExitCode;

use preflight_runtime::testing::TestDatabase;

static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations");

#[test]
fn embedded_commands_use_the_compiled_set() {
    let db = TestDatabase::empty();
    let url = db.url();
    let run = |args: &[&str]| {
        let mut all = vec!["migrate", "--database-url", url];
        all.extend_from_slice(args);
        preflight::cli::run_from(Some(&MIGRATIONS), all)
    };
    assert_eq!(run(&["up"]), ExitCode::SUCCESS);
    let rows: i64 = db
        .connect()
        .query_one("SELECT count(*) FROM preflight_history", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, MIGRATIONS.len() as i64);
    assert_eq!(run(&["status"]), ExitCode::SUCCESS);
    // A directory is not what an embedded CLI works on.
    assert_eq!(run(&["new", "x"]), ExitCode::from(2));
    assert_eq!(run(&["down", "--steps", "1"]), ExitCode::SUCCESS);
    let rows: i64 = db
        .connect()
        .query_one("SELECT count(*) FROM preflight_history", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, MIGRATIONS.len() as i64 - 1);
}

/// A set whose compile-time check found a lint warning (an index built without CONCURRENTLY
/// on a table of an earlier migration). Its compile-time warning is what the test is about.
#[allow(deprecated)]
static LINTED: preflight::Migrations = preflight::embed!("tests/fixtures/lints");

#[test]
fn check_on_an_embedded_set_reports_its_compile_time_warnings() {
    // Issue #15: `check` over embedded migrations reported no warnings and ignored
    // `--deny-warnings`. The set carries the warnings its `embed!` found.
    assert_eq!(LINTED.warnings().len(), 1);
    assert!(
        LINTED.warnings()[0].contains("2_index.sql:1:1: warning"),
        "{:?}",
        LINTED.warnings()
    );
    assert_eq!(LINTED.dialect(), "postgres");
    let run = |args: &[&str]| {
        let mut all = vec!["migrate"];
        all.extend_from_slice(args);
        preflight::cli::run_from(Some(&LINTED), all)
    };
    assert_eq!(run(&["check"]), ExitCode::SUCCESS);
    assert_eq!(run(&["check", "--deny-warnings"]), ExitCode::from(1));
    assert_eq!(run(&["check", "--allow", "lock"]), ExitCode::from(2));
    // The clean example set passes `--deny-warnings`.
    assert!(MIGRATIONS.warnings().is_empty());
    assert_eq!(
        preflight::cli::run_from(Some(&MIGRATIONS), ["migrate", "check", "--deny-warnings"]),
        ExitCode::SUCCESS
    );
}
