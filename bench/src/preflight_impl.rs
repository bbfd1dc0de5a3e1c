//! The Preflight side of every measurement, kept in one place so that it follows the runner's
//! API as it settles.
//!
//! A set is built at run time with `Migrations::from_specs` from the generated files (what
//! `embed!` would have put in a `static`; building it is not timed), then applied with the
//! default runner: `Migrations::run_async` on a `tokio_postgres::Client` (also with
//! `synchronous_commits(true)`), `Migrations::run` on a `postgres::Client`.

use std::time::{Duration, Instant};

use preflight_runtime::{MigrationSpec, Migrations};

use crate::gen::Generated;

/// The set, as `embed!` would have produced it.
pub fn migrations(generated: &[Generated]) -> Migrations {
    Migrations::from_specs(
        generated
            .iter()
            .map(|m| MigrationSpec::new(u64::from(m.version), &m.name, &m.sql))
            .collect(),
    )
    .expect("generated versions are unique")
}

/// Connects and migrates with the async driver (`every_commit_synced`: with
/// `synchronous_commits(true)`); on success, whether it took the fast path and how long
/// connecting and migrating took (closing the connection is not timed).
pub async fn boot_async(
    url: &str,
    migrations: &Migrations,
    every_commit_synced: bool,
) -> Result<(bool, Duration), String> {
    let start = Instant::now();
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let driver = tokio::spawn(connection);
    let report = migrations
        .runner()
        .synchronous_commits(every_commit_synced)
        .run_async(&mut client)
        .await
        .map_err(|e| format!("preflight: {e}"))?;
    let elapsed = start.elapsed();
    // Finish the connection task so that no work leaks into the next measurement.
    drop(client);
    let _ = driver.await;
    Ok((report.fast_path, elapsed))
}

/// Connects and migrates with the blocking driver (default settings); like [`boot_async`].
pub fn boot_blocking(url: &str, migrations: &Migrations) -> Result<(bool, Duration), String> {
    let start = Instant::now();
    let mut client =
        postgres::Client::connect(url, postgres::NoTls).map_err(|e| format!("connect: {e}"))?;
    let report = migrations
        .run(&mut client)
        .map_err(|e| format!("preflight: {e}"))?;
    Ok((report.fast_path, start.elapsed()))
}
