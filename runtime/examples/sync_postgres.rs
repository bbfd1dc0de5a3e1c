//! Boot with the sync `postgres` driver: `DATABASE_URL=postgres://... cargo run --example sync_postgres --features postgres`
use preflight_runtime::{MigrationSpec, Migrations};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Real applications use `static MIGRATIONS: Migrations = preflight::embed!("migrations");`.
    let migrations = Migrations::from_specs(vec![MigrationSpec::new(
        1,
        "create_users",
        "CREATE TABLE IF NOT EXISTS example_users (id bigint PRIMARY KEY);",
    )])
    .map_err(|v| format!("duplicate version {v}"))?;
    let url = std::env::var("DATABASE_URL")?;
    let mut client = postgres::Client::connect(&url, postgres::NoTls)
        .map_err(|e| format!("{}: {e}", preflight_runtime::redact_url(&url)))?;
    let report = migrations.run(&mut client)?;
    println!(
        "applied {:?}, fast path: {}",
        report.applied_versions(),
        report.fast_path
    );
    Ok(())
}
