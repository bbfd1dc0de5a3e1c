//! A library crate's migration set (`examples/audit`, set `audit`) composed with an
//! application's (`examples/composed/`, set `app`, whose migration 2 requires `audit` 1), both
//! embedded: the order, the test databases keyed by the composition, and the embedded CLI.

use preflight::testing::{SqliteTestDatabase, TestDatabase};
use preflight::{compose, Composition, Migrations};

static APP: Migrations = preflight::embed!("examples/composed/migrations", set = "app");
static APP_SQLITE: Migrations = preflight::embed!(
    "examples/composed/migrations-sqlite",
    dialect = "sqlite",
    set = "app"
);

fn order(all: &Composition<'_>) -> Vec<String> {
    all.order()
        .map(|(set, m)| format!("{set} {}", m.version()))
        .collect()
}

#[test]
fn the_requirement_embedded_from_a_directive_orders_the_composition() {
    let requires = APP.as_slice()[1].requires();
    assert_eq!(requires.len(), 1);
    assert_eq!(
        (requires[0].set(), requires[0].version()),
        ("audit", 1u64.into())
    );
    assert_eq!(preflight_example_audit::MIGRATIONS.set(), "audit");
    let all = compose([&APP, &preflight_example_audit::MIGRATIONS]).unwrap();
    assert_eq!(order(&all), ["app 1", "audit 1", "app 2"]);
    // Without the library, the application's set cannot run: refused before any I/O.
    let err = compose([&APP]).unwrap_err();
    assert!(
        err.to_string().contains("no set `audit` is composed"),
        "{err}"
    );
}

#[test]
fn a_test_database_of_the_composition_on_postgres() {
    let all = compose([&APP, &preflight_example_audit::MIGRATIONS]).unwrap();
    let db = TestDatabase::new(&all);
    let mut client = db.connect();
    client
        .batch_execute(
            "INSERT INTO accounts (name) VALUES ('ops'); \
             INSERT INTO audit_events (actor, action) VALUES ('ops', 'deploy')",
        )
        .unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM account_activity", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert!(all.run(&mut client).unwrap().fast_path);
    // The template is keyed by the composition: the application's set alone is another one.
    assert_ne!(
        TestDatabase::template_name(&all),
        TestDatabase::template_name(&APP)
    );
}

#[test]
fn a_test_database_of_the_composition_on_sqlite() {
    let all = compose([&APP_SQLITE, &preflight_example_audit::SQLITE_MIGRATIONS]).unwrap();
    let db = SqliteTestDatabase::new(&all);
    let mut conn = db.connect();
    preflight_example_audit::record(&conn, "ops", "deploy").unwrap();
    conn.execute("INSERT INTO accounts (name) VALUES ('ops')", [])
        .unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM account_activity", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let report = all.run(&mut conn).unwrap();
    assert!(report.fast_path, "{report:?}");
    let sets: Vec<String> = all
        .history(&mut conn)
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r.set, r.version))
        .collect();
    assert_eq!(sets, ["app 1", "app 2", "audit 1"]);
}

#[test]
fn the_embedded_cli_works_on_the_composition() {
    let all = compose([&APP_SQLITE, &preflight_example_audit::SQLITE_MIGRATIONS]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let run = |args: &[&str]| {
        let mut full = vec!["migrate", "--database-url", url.as_str()];
        full.extend_from_slice(args);
        preflight::cli::run_composed(Some(&all), full)
    };
    assert_eq!(run(&["up"]), std::process::ExitCode::SUCCESS);
    assert_eq!(run(&["status"]), std::process::ExitCode::SUCCESS);
    // A version is a set's: `down --to` needs `--set` here.
    assert_eq!(run(&["down", "--to", "0"]), std::process::ExitCode::from(1));
    assert_eq!(
        run(&["--set", "app", "down", "--steps", "1"]),
        std::process::ExitCode::SUCCESS
    );
    let mut conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    let rows = all.history(&mut conn).unwrap();
    assert_eq!(rows.len(), 2);
}
