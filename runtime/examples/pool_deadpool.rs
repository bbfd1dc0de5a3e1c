//! Migrate, then hand out a deadpool-postgres pool: `DATABASE_URL=... cargo run --example pool_deadpool --features deadpool`
use preflight_runtime::{MigrationSpec, Migrations};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let migrations = Migrations::from_specs(vec![MigrationSpec::new(
        1,
        "create_users",
        "CREATE TABLE IF NOT EXISTS example_users (id bigint PRIMARY KEY);",
    )])
    .map_err(|v| format!("duplicate version {v}"))?;
    let mut cfg = deadpool_postgres::Config::new();
    cfg.url = Some(std::env::var("DATABASE_URL")?);
    let pool = cfg.create_pool(
        Some(deadpool_postgres::Runtime::Tokio1),
        tokio_postgres::NoTls,
    )?;
    let (pool, report) = migrations.ready_async(pool).await?;
    println!("{report}"); // migrated: now the application may use the pool
    let client = pool.get().await?;
    client
        .query_one("SELECT count(*) FROM example_users", &[])
        .await?;
    Ok(())
}
