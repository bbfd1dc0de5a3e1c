//! SQLite (feature `sqlite`): the backend on `rusqlite` (SQLite compiled in, no system library),
//! behind the same private backend trait as PostgreSQL, so the plan, the policies and the runner
//! loop are the PostgreSQL ones. `rusqlite::Connection` is a [`Connection`](crate::Connection):
//! every operation takes it, `MIGRATIONS.run(&mut conn)` as on PostgreSQL.
//!
//! # How a run goes
//!
//! * **Fast path**: one `SELECT` of the newest history row of each set and whether any is
//!   unfinished, two index probes (as on PostgreSQL; see [`crate::history`]); no lock, nothing
//!   else.
//! * **Lock** ([`LockStrategy::Advisory`](crate::LockStrategy::Advisory), the default): SQLite
//!   has no session advisory lock, so the runner opens a second connection on a sidecar file
//!   next to the database, `<database>-preflight-lock` (an empty SQLite database, like SQLite's
//!   own `-journal` / `-wal` files), and holds `BEGIN IMMEDIATE` on it, which is SQLite's
//!   `RESERVED` file lock: at most one connection in any process holds it, it is tried with a
//!   zero busy timeout (so it is polled with back-off and a timeout like the PostgreSQL lock),
//!   and the operating system drops it when the holding process dies, however it dies — the
//!   same lifetime as a PostgreSQL session lock. Nothing is ever written to that file. An
//!   in-memory or temporary database needs no lock (no other connection can open it).
//! * **Apply**: under that lock the runner re-reads the history (another process may have
//!   finished meanwhile), plans, and applies each migration in its own `BEGIN IMMEDIATE`
//!   transaction together with its history row. `BEGIN IMMEDIATE` takes the database's write
//!   lock up front, so a migration never fails half-way on a read-to-write lock upgrade; the
//!   connection's busy timeout is set to the runner's lock timeout while migrating (and restored
//!   afterwards), so an application writer holding the write lock briefly is waited for.
//!   In WAL mode every migration of a run but the last commits with `synchronous = NORMAL`
//!   (not synced) and the last one syncs the WAL, and with it every earlier commit — the same
//!   durability argument as PostgreSQL's asynchronous commits (see `transaction_async_commit`).
//!
//! Why exactly once: every history write happens while holding the sidecar lock, after a
//! history read made under that lock; two runs cannot hold it at once; and each migration's body
//! and row commit together (or not at all, if the process dies: SQLite rolls the transaction
//! back from its journal), so the next holder reads a history that tells exactly what ran.
//!
//! No-transaction migrations run statement by statement with their progress recorded, as on
//! PostgreSQL (SQLite runs everything in a transaction except `VACUUM` and a few pragmas).
//! [`LockStrategy::Lease`](crate::LockStrategy::Lease) is for PgBouncer and CockroachDB and is
//! refused here. The lock timeout of a migration ([`Runner::sql_lock_timeout`](crate::Runner::sql_lock_timeout), `-- preflight:lock-timeout`)
//! is the busy timeout of its `BEGIN IMMEDIATE` (and of each statement of a no-transaction
//! one), and its statement timeout interrupts a statement that runs longer (a progress
//! handler; it replaces one the application set on the connection). The runner's `schema` names an attached database (`main` by
//! default). Error codes ([`DbError::code`](crate::DbError)) are SQLite's primary result code
//! names (`SQLITE_ERROR`, `SQLITE_CONSTRAINT`, `SQLITE_BUSY`).
//!
//! Files: `statements.rs` (splitting as SQLite splits), `sql.rs` (the history table's SQL),
//! `history.rs` (the fast path, creation and the upgrade from layout 1, reads, progress rows),
//! `lock.rs` (the lock file), `apply.rs` (migration transactions), `reset.rs` (the database's
//! objects) and `catalog.rs` (the schema as drift compares it, and the in-memory scratch
//! database).

mod apply;
mod catalog;
mod history;
mod lock;
mod reset;
mod sql;
mod statements;

pub use statements::statements;

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::backend::{Backend, ForeignHistories, Product, Session};
use crate::error::{DbError, Error};
use crate::runner::Config;
use crate::timeout::{Timeout, Timeouts};

use sql::Sql;

/// Where a `sqlite:` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `sqlite::memory:`: a private in-memory database.
    Memory,
    /// A database file (created if missing).
    File(PathBuf),
}

/// Parses a SQLite URL: `sqlite://relative/path.db`, `sqlite:///absolute/path.db`,
/// `sqlite:path.db` and `sqlite::memory:`. `None` when the URL is not a `sqlite:` one (so the
/// caller tries PostgreSQL).
///
/// ```
/// use preflight_runtime::sqlite::{parse_url, Location};
/// use std::path::PathBuf;
/// assert_eq!(parse_url("sqlite://data/app.db"), Some(Location::File(PathBuf::from("data/app.db"))));
/// assert_eq!(parse_url("sqlite:///var/lib/app.db"), Some(Location::File(PathBuf::from("/var/lib/app.db"))));
/// assert_eq!(parse_url("sqlite::memory:"), Some(Location::Memory));
/// assert_eq!(parse_url("postgres://db/app"), None);
/// ```
pub fn parse_url(url: &str) -> Option<Location> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    Some(match path {
        ":memory:" | "" => Location::Memory,
        p => Location::File(PathBuf::from(p)),
    })
}

/// Opens the database a `sqlite:` URL names (see [`parse_url`]); a file is created if missing.
pub fn connect(url: &str) -> Result<Connection, Error> {
    let opened = match parse_url(url) {
        None => {
            return Err(Error::Config(format!(
                "`{}` is not a SQLite URL (sqlite://path.db, sqlite:///abs/path.db, \
                 sqlite::memory:)",
                crate::redact_url(url)
            )))
        }
        Some(Location::Memory) => Connection::open_in_memory(),
        Some(Location::File(path)) => Connection::open(&path),
    };
    opened.map_err(|e| Error::db(format!("opening {url}"), db_error(&e)))
}

/// Copies what SQLite said out of rusqlite's error.
pub(crate) fn db_error(e: &rusqlite::Error) -> DbError {
    match e {
        rusqlite::Error::SqliteFailure(f, message) => DbError {
            code: Some(code_name(f.extended_code).to_owned()),
            message: message.clone().unwrap_or_else(|| f.to_string()),
            ..DbError::default()
        },
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => DbError {
            code: Some(code_name(error.extended_code).to_owned()),
            message: msg.clone(),
            // Byte offset in the statement; the caller makes it a position in the script.
            position: u32::try_from(*offset).ok().map(|o| o + 1),
            ..DbError::default()
        },
        other => DbError::other(other.to_string()),
    }
}

/// SQLite's primary result code name (the low byte of an extended code).
fn code_name(extended: i32) -> &'static str {
    match extended & 0xff {
        1 => "SQLITE_ERROR",
        2 => "SQLITE_INTERNAL",
        3 => "SQLITE_PERM",
        4 => "SQLITE_ABORT",
        5 => "SQLITE_BUSY",
        6 => "SQLITE_LOCKED",
        7 => "SQLITE_NOMEM",
        8 => "SQLITE_READONLY",
        9 => "SQLITE_INTERRUPT",
        10 => "SQLITE_IOERR",
        11 => "SQLITE_CORRUPT",
        13 => "SQLITE_FULL",
        14 => "SQLITE_CANTOPEN",
        15 => "SQLITE_PROTOCOL",
        17 => "SQLITE_SCHEMA",
        18 => "SQLITE_TOOBIG",
        19 => "SQLITE_CONSTRAINT",
        20 => "SQLITE_MISMATCH",
        21 => "SQLITE_MISUSE",
        23 => "SQLITE_AUTH",
        25 => "SQLITE_RANGE",
        26 => "SQLITE_NOTADB",
        _ => "SQLITE_UNKNOWN",
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// A table or attached database that does not exist (yet).
fn is_missing_table(e: &rusqlite::Error) -> bool {
    let text = e.to_string();
    text.contains("no such table") || text.contains("unknown database")
}

/// The SQLite backend over one connection (plus, while locked, the sidecar lock connection).
pub(crate) struct SqliteBackend<'c> {
    conn: &'c Connection,
    sql: Sql,
    schema: Option<String>,
    busy_timeout: Duration,
    /// The busy timeout the caller's connection had, restored after the run.
    previous_busy_ms: Option<i64>,
    /// The connection holding `BEGIN IMMEDIATE` on the sidecar lock file.
    lock: Option<Connection>,
    /// The limits of the no-transaction migration running (see `Apply::set_timeouts`).
    executing: Timeouts,
}

/// The busy timeout for "no limit": SQLite's busy timeout is a C `int` of milliseconds, and 0
/// would not wait at all.
const UNLIMITED_BUSY: Duration = Duration::from_millis(i32::MAX as u64);

impl<'c> SqliteBackend<'c> {
    pub fn new(conn: &'c Connection, cfg: &Config) -> Result<SqliteBackend<'c>, Error> {
        Ok(SqliteBackend {
            conn,
            sql: Sql::new(cfg.schema.as_deref(), &cfg.table),
            schema: cfg.schema.clone(),
            busy_timeout: cfg.lock_timeout,
            previous_busy_ms: None,
            lock: None,
            executing: Timeouts::NONE,
        })
    }

    /// Waits up to `lock` for the database's write lock (`None`: the runner's lock timeout).
    fn wait_for_locks(&self, lock: Option<Timeout>) -> Result<(), DbError> {
        let wait = match lock {
            None => self.busy_timeout,
            Some(t) => t.duration().unwrap_or(UNLIMITED_BUSY),
        };
        self.conn.busy_timeout(wait).map_err(|e| db_error(&e))
    }

    /// Runs one statement (or script) interrupted after `limit`, SQLite's statement timeout.
    fn limited<T>(
        &self,
        limit: Option<Timeout>,
        run: impl FnOnce() -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let Some(limit) = limit.and_then(Timeout::duration) else {
            return run();
        };
        let deadline = std::time::Instant::now() + limit;
        // Checked every 1000 virtual-machine instructions: microseconds.
        self.conn
            .progress_handler(1000, Some(move || std::time::Instant::now() >= deadline))?;
        let result = run();
        self.conn.progress_handler(0, None::<fn() -> bool>)?;
        result
    }

    /// The database file holding the history table; `None` when it is in memory or temporary.
    fn database_file(&self) -> Result<Option<PathBuf>, Error> {
        let schema = self.schema.as_deref().unwrap_or("main");
        let mut stmt = self
            .conn
            .prepare("SELECT file FROM pragma_database_list WHERE name = ?1")
            .map_err(|e| Error::db("reading the database list", db_error(&e)))?;
        let file: Option<String> = stmt
            .query_row([schema], |r| r.get(0))
            .optional()
            .map_err(|e| Error::db("reading the database list", db_error(&e)))?;
        match file {
            None => Err(Error::Config(format!(
                "no attached database named `{schema}` holds the history table"
            ))),
            Some(f) if f.is_empty() => Ok(None),
            Some(f) => Ok(Some(PathBuf::from(f))),
        }
    }

    fn exec(&self, context: &'static str, sql: &str) -> Result<(), Error> {
        self.conn
            .execute_batch(sql)
            .map_err(|e| Error::db(context, db_error(&e)))
    }
}

impl Backend for SqliteBackend<'_> {
    async fn session(&mut self, _application_name: &str) -> Result<Session, Error> {
        if !self.conn.is_autocommit() {
            return Err(Error::Config(
                "the SQLite connection has an open transaction; migrate on a connection \
                 outside a transaction (each migration runs in its own)"
                    .into(),
            ));
        }
        let previous: i64 = self
            .conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .map_err(|e| Error::db("reading busy_timeout", db_error(&e)))?;
        self.conn
            .busy_timeout(self.busy_timeout)
            .map_err(|e| Error::db("setting busy_timeout", db_error(&e)))?;
        self.previous_busy_ms = Some(previous);
        let database = self
            .database_file()?
            .map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string());
        Ok(Session {
            database,
            schema: self.schema.clone().unwrap_or_else(|| "main".to_owned()),
            product: Product::Sqlite,
            previous_application_name: String::new(),
            backend_pid: i64::from(std::process::id()),
        })
    }

    async fn restore_session(&mut self, _session: &Session) -> Result<(), Error> {
        if let Some(ms) = self.previous_busy_ms.take() {
            self.conn
                .busy_timeout(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
                .map_err(|e| Error::db("restoring busy_timeout", db_error(&e)))?;
        }
        Ok(())
    }

    async fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Other tools' histories are recognised on PostgreSQL only: SQLite finds none.
impl ForeignHistories for SqliteBackend<'_> {}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn names_result_codes() {
        assert_eq!(code_name(1555), "SQLITE_CONSTRAINT");
        assert_eq!(code_name(5), "SQLITE_BUSY");
        assert_eq!(
            lock::lock_path(Path::new("/tmp/app.db")),
            Path::new("/tmp/app.db-preflight-lock")
        );
    }
}
