//! Migrate, then hand out a bb8 pool: `DATABASE_URL=... cargo run --example pool_bb8 --features bb8`
use preflight_runtime::{MigrationSpec, Migrations};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let migrations = Migrations::from_specs(vec![MigrationSpec::new(
        1,
        "create_users",
        "CREATE TABLE IF NOT EXISTS example_users (id bigint PRIMARY KEY);",
    )])
    .map_err(|v| format!("duplicate version {v}"))?;
    let manager = bb8_postgres::PostgresConnectionManager::new_from_stringlike(
        std::env::var("DATABASE_URL")?,
        tokio_postgres::NoTls,
    )?;
    let (pool, report) = migrations
        .ready_async(bb8::Pool::builder().build(manager).await?)
        .await?;
    println!("{report}"); // migrated: now the application may use the pool
    pool.get()
        .await?
        .query_one("SELECT count(*) FROM example_users", &[])
        .await?;
    Ok(())
}
