//! The example application: boots, migrates, serves a tiny query, prints the migration status.
//!
//! ```sh
//! cargo run --example app                      # PostgreSQL on 127.0.0.1:5432, user postgres
//! DATABASE_URL=postgres://me@db/app cargo run --example app
//! ```
//!
//! The migrations are the crate's `migrations/` directory, embedded and checked at compile time;
//! `build.rs` makes a new file there re-embed.

use std::error::Error;

/// Every migration of `migrations/`, checked when this example was compiled.
static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations");

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(|e| {
        format!(
            "cannot connect to {} ({e}); set DATABASE_URL to a PostgreSQL database",
            preflight::redact_url(&url)
        )
    })?;

    // Boot: when this returns, the database is exactly at the embedded version.
    let report = MIGRATIONS.run(&mut client)?;
    if report.fast_path {
        println!("database is current ({} migrations)", MIGRATIONS.len());
    } else {
        for a in &report.applied {
            println!("applied {} {} in {:?}", a.version, a.name, a.duration);
        }
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }

    // Serve a tiny query on the migrated schema.
    let email = format!("visitor-{}@example.com", std::process::id());
    client.execute(
        "INSERT INTO users (email, display_name) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING",
        &[&email, &"Visitor"],
    )?;
    let users: i64 = client.query_one("SELECT count(*) FROM users", &[])?.get(0);
    println!("users: {users}");

    // The migration status, as an operator would want to see it.
    let history = MIGRATIONS.runner().history(&mut client)?;
    println!(
        "\n{:<8} {:<20} {:<10} APPLIED AT",
        "VERSION", "NAME", "STATE"
    );
    for m in MIGRATIONS.iter() {
        let row = history.iter().find(|r| r.version == m.version());
        println!(
            "{:<8} {:<20} {:<10} {}",
            m.version(),
            m.name(),
            row.map_or("pending".to_owned(), |r| r.state.to_string()),
            row.map_or("", |r| r.applied_at.get(..19).unwrap_or(&r.applied_at)),
        );
    }
    Ok(())
}
