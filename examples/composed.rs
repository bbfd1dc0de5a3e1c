//! An application composed of its own migrations and a library crate's
//! (`examples/audit`, which ships the `audit` set): one history table, one lock, one fast-path
//! query, and an order in which the library's migration 1 comes before the application's
//! migration 2, which requires it (`-- preflight:requires audit 1`), although the application
//! is listed first.
//!
//! ```sh
//! cargo run --example composed                 # SQLite file ./preflight-composed.db
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example composed
//! ```

use std::error::Error;

use preflight::{compose, Composition, HistoryRow, Migrations, Report};

/// The application's own migrations, as set `app` (PostgreSQL; SQLite below).
static APP: Migrations = preflight::embed!("examples/composed/migrations", set = "app");

static APP_SQLITE: Migrations = preflight::embed!(
    "examples/composed/migrations-sqlite",
    dialect = "sqlite",
    set = "app"
);

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "sqlite://preflight-composed.db".to_owned());
    if preflight::sqlite::parse_url(&url).is_some() {
        // Validated before any I/O: set names, requirements, no cycle.
        let all = compose([&APP_SQLITE, &preflight_example_audit::SQLITE_MIGRATIONS])?;
        let mut conn = preflight::sqlite::connect(&url)?;
        let report = all.run(&mut conn)?;
        print(&all, &report, &all.history(&mut conn)?);
        preflight_example_audit::record(&conn, "ops", "deploy")?;
    } else {
        let all = compose([&APP, &preflight_example_audit::MIGRATIONS])?;
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        let report = all.run(&mut client)?;
        print(&all, &report, &all.history(&mut client)?);
    }
    Ok(())
}

fn print(all: &Composition<'_>, report: &Report, history: &[HistoryRow]) {
    println!("composition: {all}");
    println!("{report}");
    for (set, m) in all.order() {
        let state = history
            .iter()
            .find(|r| r.set == set && r.version == m.version())
            .map_or("pending".to_owned(), |r| r.state.to_string());
        println!("{set:<8} {:<4} {:<20} {state}", m.version(), m.name());
    }
}
