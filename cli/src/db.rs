//! The database a command works on: PostgreSQL or SQLite, as a `preflight::Connection`, so
//! that every command has one code path (the runner does the backend-specific work).

use std::time::Duration;

use preflight_runtime::{redact_url, Connection, Scratch};

use crate::CliError;

/// Connects to the database of `--database-url`: SQLite for a `sqlite:` URL, PostgreSQL
/// otherwise. Every command then works through the runner's operations, which take either.
pub(crate) fn connect(url: &str) -> Result<Box<dyn Connection>, CliError> {
    if preflight_runtime::sqlite::parse_url(url).is_some() {
        return preflight_runtime::sqlite::connect(url)
            .map(|c| Box::new(c) as Box<dyn Connection>)
            .map_err(|e| CliError::Connect(format!("cannot open {url}: {e}")));
    }
    connect_postgres(url).map(|c| Box::new(c) as Box<dyn Connection>)
}

/// Connects to PostgreSQL with the CLI's application name and a connect timeout.
fn connect_postgres(url: &str) -> Result<postgres::Client, CliError> {
    // TLS: `sslmode` / `sslrootcert` become the rustls connector (see `tls`).
    let (driver_url, tls) = crate::tls::configure(url)
        .map_err(|e| CliError::Connect(format!("{}: {e}", redact_url(url))))?;
    let mut config: postgres::Config = driver_url.parse().map_err(|e| {
        CliError::Connect(format!(
            "{} is not a valid database URL: {e}",
            redact_url(url)
        ))
    })?;
    config.application_name("preflight");
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.connect(tls).map_err(|e| {
        CliError::Connect(format!(
            "cannot connect to {}: {}",
            redact_url(url),
            preflight_runtime::error::with_causes(&e)
        ))
    })
}

/// Where `drift` creates its scratch database: the PostgreSQL server and role of `url`, with
/// the same TLS settings as the connection itself.
pub(crate) fn scratch(url: &str) -> Result<Scratch, CliError> {
    let (driver_url, tls) = crate::tls::configure(url)
        .map_err(|e| CliError::Connect(format!("{}: {e}", redact_url(url))))?;
    let config: tokio_postgres::Config = driver_url.parse().map_err(|e| {
        CliError::Connect(format!(
            "{} is not a valid database URL: {e}",
            redact_url(url)
        ))
    })?;
    Ok(Scratch::postgres(config, tls))
}
