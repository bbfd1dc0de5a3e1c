//! Migrate, then hand out an r2d2 pool: `DATABASE_URL=... cargo run --example pool_r2d2 --features r2d2`
use preflight_runtime::{MigrationSpec, Migrations};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let migrations = Migrations::from_specs(vec![MigrationSpec::new(
        1,
        "create_users",
        "CREATE TABLE IF NOT EXISTS example_users (id bigint PRIMARY KEY);",
    )])
    .map_err(|v| format!("duplicate version {v}"))?;
    let manager = r2d2_postgres::PostgresConnectionManager::new(
        std::env::var("DATABASE_URL")?.parse()?,
        postgres::NoTls,
    );
    let (pool, report) = migrations.ready(r2d2::Pool::new(manager)?)?;
    println!("{report}"); // migrated: now the application may use the pool
    pool.get()?
        .query_one("SELECT count(*) FROM example_users", &[])?;
    Ok(())
}
