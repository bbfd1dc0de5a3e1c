//! The database a command works on: PostgreSQL or SQLite, behind one enum so that every
//! command has one code path (the runner does the backend-specific work).

use std::time::Duration;

use preflight_runtime::{redact_url, HistoryRow, Repair, Report, Revert, Runner};

use crate::foreign::{self, Foreign};
use crate::CliError;

/// An open connection to the database of `--database-url`.
pub(crate) enum Db {
    /// `postgres://...` (or a key-value connection string).
    Postgres(Box<postgres::Client>),
    /// `sqlite://path.db`, `sqlite:///abs/path.db`, `sqlite::memory:`.
    Sqlite(rusqlite::Connection),
}

impl Db {
    /// Connects to `url`: SQLite for a `sqlite:` URL, PostgreSQL otherwise.
    pub(crate) fn connect(url: &str) -> Result<Db, CliError> {
        if preflight_runtime::sqlite::parse_url(url).is_some() {
            return preflight_runtime::sqlite::connect(url)
                .map(Db::Sqlite)
                .map_err(|e| CliError::Connect(format!("cannot open {url}: {e}")));
        }
        connect_postgres(url).map(|c| Db::Postgres(Box::new(c)))
    }

    pub(crate) fn history(&mut self, r: &Runner<'_>) -> Result<Vec<HistoryRow>, CliError> {
        Ok(match self {
            Db::Postgres(c) => r.history(c)?,
            Db::Sqlite(c) => r.history_sqlite(c)?,
        })
    }

    pub(crate) fn run(&mut self, r: &Runner<'_>) -> Result<Report, CliError> {
        Ok(match self {
            Db::Postgres(c) => r.run(c)?,
            Db::Sqlite(c) => r.run_sqlite(c)?,
        })
    }

    pub(crate) fn revert(&mut self, r: &Runner<'_>, revert: Revert) -> Result<Report, CliError> {
        Ok(match self {
            Db::Postgres(c) => r.revert(c, revert)?,
            Db::Sqlite(c) => r.revert_sqlite(c, revert)?,
        })
    }

    pub(crate) fn repair(&mut self, r: &Runner<'_>, repair: Repair) -> Result<Report, CliError> {
        Ok(match self {
            Db::Postgres(c) => r.repair(c, repair)?,
            Db::Sqlite(c) => r.repair_sqlite(c, repair)?,
        })
    }

    /// Other tools' history tables. Recognising them is implemented for PostgreSQL; on
    /// SQLite none are reported.
    pub(crate) fn foreign(&mut self, r: &Runner<'_>) -> Result<Vec<Foreign>, CliError> {
        match self {
            Db::Postgres(c) => foreign::detect(r, c),
            Db::Sqlite(_) => Ok(Vec::new()),
        }
    }
}

/// Connects to PostgreSQL with the CLI's application name and a connect timeout.
pub(crate) fn connect_postgres(url: &str) -> Result<postgres::Client, CliError> {
    if preflight_runtime::sqlite::parse_url(url).is_some() {
        return Err(CliError::Usage(format!(
            "this command needs a PostgreSQL database, not {url}"
        )));
    }
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
