//! Boot with `tokio-postgres`: `DATABASE_URL=... cargo run --example async_tokio_postgres --features tokio-postgres`
use std::time::Duration;

use preflight_runtime::{MigrationSpec, Migrations};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let migrations = Migrations::from_specs(vec![MigrationSpec::new(
        1,
        "create_users",
        "CREATE TABLE IF NOT EXISTS example_users (id bigint PRIMARY KEY);",
    )])
    .map_err(|v| format!("duplicate version {v}"))?;
    let url = std::env::var("DATABASE_URL")?;
    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let report = migrations
        .runner()
        .application("example 0.1")
        .lock_timeout(Duration::from_secs(30))
        .run_async(&mut client)
        .await?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "applied {:?}, fast path: {}",
        report.applied_versions(),
        report.fast_path
    );
    Ok(())
}
