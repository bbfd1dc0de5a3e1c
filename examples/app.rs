//! The example application: boots, migrates, serves a tiny query, prints the migration status.
//!
//! ```sh
//! cargo run --example app                      # SQLite file ./preflight-example.db, no server
//! DATABASE_URL=sqlite:///tmp/app.db cargo run --example app
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example app
//! ```
//!
//! The two databases speak different SQL, so the example embeds two directories, each checked
//! at compile time in its own dialect: `migrations/` (PostgreSQL: identity column,
//! `CREATE INDEX CONCURRENTLY` outside a transaction) and `migrations-sqlite/` (SQLite:
//! `AUTOINCREMENT`, applied to an in-memory SQLite by the macro). Same versions, same names,
//! same schema. `build.rs` makes a new file in either re-embed.

use std::error::Error;

use preflight::{HistoryRow, Migrations, Report};

/// Every migration of `migrations/`, checked as PostgreSQL when this example was compiled.
static MIGRATIONS: Migrations = preflight::embed!("migrations");

/// The same migrations for SQLite, applied to an in-memory SQLite when this example was
/// compiled (the first failing statement would have been a compile error).
static SQLITE_MIGRATIONS: Migrations = preflight::embed!("migrations-sqlite", dialect = "sqlite");

/// With no `DATABASE_URL`: a SQLite file in the working directory.
const DEFAULT_URL: &str = "sqlite://preflight-example.db";

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    if preflight::sqlite::parse_url(&url).is_some() {
        sqlite(&url)
    } else {
        postgres(&url)
    }
}

fn sqlite(url: &str) -> Result<(), Box<dyn Error>> {
    let mut conn = preflight::sqlite::connect(url)?;
    // Boot: when this returns, the database is exactly at the embedded version.
    let report = SQLITE_MIGRATIONS.run(&mut conn)?;
    print_report(&SQLITE_MIGRATIONS, &report);

    // Serve a tiny query on the migrated schema.
    let email = format!("visitor-{}@example.com", std::process::id());
    conn.execute(
        "INSERT INTO users (email, display_name) VALUES (?1, ?2) ON CONFLICT (email) DO NOTHING",
        (&email, "Visitor"),
    )?;
    let users: i64 = conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
    println!("users: {users} (SQLite, {url})");

    let history = SQLITE_MIGRATIONS.history(&mut conn)?;
    print_status(&SQLITE_MIGRATIONS, &history);
    Ok(())
}

fn postgres(url: &str) -> Result<(), Box<dyn Error>> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| {
        format!(
            "cannot connect to {} ({e}); set DATABASE_URL to a PostgreSQL database, or unset it \
             to use a SQLite file",
            preflight::redact_url(url)
        )
    })?;
    let report = MIGRATIONS.run(&mut client)?;
    print_report(&MIGRATIONS, &report);

    let email = format!("visitor-{}@example.com", std::process::id());
    client.execute(
        "INSERT INTO users (email, display_name) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING",
        &[&email, &"Visitor"],
    )?;
    let users: i64 = client.query_one("SELECT count(*) FROM users", &[])?.get(0);
    println!("users: {users} (PostgreSQL)");

    let history = MIGRATIONS.history(&mut client)?;
    print_status(&MIGRATIONS, &history);
    Ok(())
}

fn print_report(set: &Migrations, report: &Report) {
    if report.fast_path {
        println!("database is current ({} migrations)", set.len());
    } else {
        for a in &report.applied {
            println!("applied {} {} in {:?}", a.version, a.name, a.duration);
        }
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
}

/// The migration status, as an operator would want to see it.
fn print_status(set: &Migrations, history: &[HistoryRow]) {
    println!(
        "\n{:<8} {:<20} {:<10} APPLIED AT",
        "VERSION", "NAME", "STATE"
    );
    for m in set.iter() {
        let row = history.iter().find(|r| r.version == m.version());
        println!(
            "{:<8} {:<20} {:<10} {}",
            m.version(),
            m.name(),
            row.map_or("pending".to_owned(), |r| r.state.to_string()),
            row.map_or("", |r| r.applied_at.get(..19).unwrap_or(&r.applied_at)),
        );
    }
}
