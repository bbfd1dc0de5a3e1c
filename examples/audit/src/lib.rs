//! An example library crate that ships its own migrations: an audit log that applications
//! compose with their own sets (`preflight::compose`), migrated together through one history
//! table, where its rows are set `audit`.
//!
//! ```
//! use preflight::{MigrationSpec, Migrations};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The application's own set (usually `embed!("migrations")`).
//! let app = Migrations::from_specs(vec![
//!     MigrationSpec::new(1, "accounts", "CREATE TABLE accounts (id INTEGER PRIMARY KEY);"),
//! ]).unwrap().named("app");
//! let all = preflight::compose([&app, &preflight_example_audit::SQLITE_MIGRATIONS])?;
//! let mut conn = rusqlite::Connection::open_in_memory()?;
//! all.run(&mut conn)?;
//! preflight_example_audit::record(&conn, "ops", "deploy")?;
//! # Ok(()) }
//! ```

/// The audit log's migrations for PostgreSQL, checked when this crate was compiled.
pub static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations", set = "audit");

/// The same migrations in SQLite's dialect, applied to an in-memory SQLite when this crate was
/// compiled.
pub static SQLITE_MIGRATIONS: preflight::Migrations =
    preflight::embed!("migrations-sqlite", dialect = "sqlite", set = "audit");

/// Records an event in the audit log (SQLite).
pub fn record(conn: &rusqlite::Connection, actor: &str, action: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit_events (actor, action) VALUES (?1, ?2)",
        (actor, action),
    )
    .map(drop)
}
