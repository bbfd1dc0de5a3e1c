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
