//! SQLite (feature `sqlite`): the backend on `rusqlite` (SQLite compiled in, no system library),
//! behind the same private backend trait as PostgreSQL, so the plan, the policies and the runner
//! loop are the PostgreSQL ones. Entry points: [`Runner::run_sqlite`](crate::Runner::run_sqlite),
//! `revert_sqlite`, `repair_sqlite`, `history_sqlite` and
//! [`Migrations::run_sqlite`](crate::Migrations::run_sqlite).
//!
//! # How a run goes
//!
//! * **Fast path**: one `SELECT` of the goal row and the trigger-kept row count (the same query
//!   as on PostgreSQL; see [`crate::history`]); no lock, nothing else.
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
//! refused here, as are the PostgreSQL server settings `sql_lock_timeout` and
//! `sql_statement_timeout`. The runner's `schema` names an attached database (`main` by
//! default). Error codes ([`DbError::code`](crate::DbError)) are SQLite's primary result code
//! names (`SQLITE_ERROR`, `SQLITE_CONSTRAINT`, `SQLITE_BUSY`).

mod sql;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use crate::backend::{Backend, Fast, LogEntry, Product, Record, Session, TxFailure, TxItem};
use crate::error::{DbError, Error};
use crate::history::{HistoryRow, NewRow, State};
use crate::lock::Holder;
use crate::runner::Config;
use crate::{Span, Version};

use sql::Sql;

/// Splits SQLite SQL into statements exactly as SQLite does: a statement ends at a `;` for which
/// `sqlite3_complete` says the text so far is complete (so semicolons inside strings, quoted
/// identifiers, comments and `CREATE TRIGGER ... BEGIN ... END` bodies do not split). Each span
/// starts at the statement's first token (leading whitespace and comments skipped, so that a
/// line number points at the statement) and ends after its `;`. Empty statements are dropped;
/// a last statement without `;` is kept.
///
/// ```
/// let sql = "-- users\nCREATE TABLE t (x text DEFAULT ';');\n\
///            CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;\n;\nSELECT 3";
/// let spans = preflight_runtime::sqlite::statements(sql);
/// let texts: Vec<&str> = spans.iter().map(|s| &sql[s.range()]).collect();
/// assert_eq!(texts, [
///     "CREATE TABLE t (x text DEFAULT ';');",
///     "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;",
///     "SELECT 3",
/// ]);
/// ```
pub fn statements(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b';' && i >= start && is_complete(&text[start..=i]) {
            push_span(text, start, i + 1, &mut spans);
            start = i + 1;
        }
    }
    if start < text.len() {
        let end = start + text[start..].trim_end().len();
        push_span(text, start, end, &mut spans);
    }
    spans
}

fn push_span(text: &str, start: usize, end: usize, spans: &mut Vec<Span>) {
    let first = start + skip_blank(&text[start..end]);
    // Nothing but blanks, or a lone `;`: an empty statement.
    if first >= end || text[first..end].trim() == ";" {
        return;
    }
    // Spans are u32, as everywhere in the model (a migration file over 4 GiB is not one).
    spans.push(Span::new(
        u32::try_from(first).unwrap_or(u32::MAX),
        u32::try_from(end).unwrap_or(u32::MAX),
    ));
}

/// The length of the leading whitespace and comments of `s`.
fn skip_blank(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            i = s[i..].find('\n').map_or(b.len(), |n| i + n + 1);
        } else if b[i..].starts_with(b"/*") {
            i = s[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
        } else {
            return i;
        }
    }
}

/// `sqlite3_complete`: whether the text ends with a complete statement (a `;` outside strings,
/// comments and trigger bodies). Text with a NUL byte is not SQL SQLite would run.
fn is_complete(text: &str) -> bool {
    let Ok(c) = CString::new(text) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; sqlite3_complete
    // only reads it and needs no connection.
    unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 }
}

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

/// The sidecar lock file of a database file: `<path>-preflight-lock`.
pub(crate) fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-preflight-lock");
    PathBuf::from(name)
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
}

impl<'c> SqliteBackend<'c> {
    pub fn new(conn: &'c Connection, cfg: &Config) -> SqliteBackend<'c> {
        SqliteBackend {
            conn,
            sql: Sql::new(cfg.schema.as_deref(), &cfg.table),
            schema: cfg.schema.clone(),
            busy_timeout: cfg.lock_timeout,
            previous_busy_ms: None,
            lock: None,
        }
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

    /// Lowers `main`'s `synchronous` to `NORMAL` when that is safe (see
    /// `transaction_async_commit`); returns the statement that restores it.
    fn relax_synchronous(&self) -> rusqlite::Result<Option<&'static str>> {
        let mode: String = self
            .conn
            .query_row("PRAGMA main.journal_mode", [], |r| r.get(0))?;
        let attached: i64 = self.conn.query_row(
            "SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp')",
            [],
            |r| r.get(0),
        )?;
        if !mode.eq_ignore_ascii_case("wal") || attached > 0 {
            return Ok(None);
        }
        let level: i64 = self
            .conn
            .query_row("PRAGMA main.synchronous", [], |r| r.get(0))?;
        let restore = match level {
            2 => "PRAGMA main.synchronous = FULL",
            3 => "PRAGMA main.synchronous = EXTRA",
            _ => return Ok(None),
        };
        self.conn
            .execute_batch("PRAGMA main.synchronous = NORMAL")?;
        Ok(Some(restore))
    }

    /// Makes `<table>_count` exist and kept by triggers, or recounts it if it drifted: the
    /// fast path then reads two rows instead of counting the history. Only a speed-up: when it
    /// cannot be done (a read-only file), the run goes on with a warning, and boots count the
    /// rows and take the slow path until it can.
    fn ensure_counter(&self) {
        let kept = self.conn.query_row(
            &self.sql.counter_kept,
            self.sql.counter_triggers.clone(),
            |r| r.get::<_, i64>(0),
        );
        let (what, sql) = match kept {
            Ok(3) => ("recount", &self.sql.recount),
            Ok(_) => ("install", &self.sql.counter_install),
            Err(e) => {
                tracing::warn!(error = %e, "could not check the history's row count");
                return;
            }
        };
        if let Err(e) = self.conn.execute_batch(sql) {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            tracing::warn!(error = %e, "could not {what} the history's row count");
        }
    }

    fn exec(&self, context: &'static str, sql: &str) -> Result<(), Error> {
        self.conn
            .execute_batch(sql)
            .map_err(|e| Error::db(context, db_error(&e)))
    }

    fn record(&self, record: &Record, execution_ms: i64) -> rusqlite::Result<usize> {
        let c = self.conn;
        match record {
            Record::Insert(row) => c.execute(&self.sql.insert_applied, applied(row, execution_ms)),
            Record::Upsert(row) => c.execute(&self.sql.upsert_applied, applied(row, 0)),
            Record::Delete(v) => c.execute(&self.sql.delete, [v.to_string()]),
            Record::SetChecksum {
                version,
                checksum,
                chain,
            } => c.execute(
                &self.sql.set_checksum,
                [version.to_string(), checksum.to_string(), chain.to_string()],
            ),
            Record::SetChain { version, chain } => c.execute(
                &self.sql.set_chain,
                [version.to_string(), chain.to_string()],
            ),
        }
    }

    fn log(&self, log: &LogEntry) -> rusqlite::Result<usize> {
        self.conn.execute(
            &self.sql.log,
            params![
                log.action,
                log.version.map(|v| v.to_string()),
                log.detail,
                log.by
            ],
        )
    }

    /// Runs a script statement by statement (split as SQLite does), so that a failure names
    /// its statement: the error's position is made relative to the whole script.
    fn run_script(&self, script: &str) -> Result<(), DbError> {
        for span in statements(script) {
            let range = span.range();
            if let Err(e) = self.conn.execute_batch(&script[range.clone()]) {
                let mut error = db_error(&e);
                let before = script[..range.start].chars().count();
                let within = error.position.map_or(1, |p| {
                    // SQLite's offset is in bytes of the statement: count its characters.
                    let byte = (p as usize - 1).min(range.len());
                    script[range.start..range.start + byte].chars().count() + 1
                });
                error.position = u32::try_from(before + within).ok();
                return Err(error);
            }
        }
        Ok(())
    }

    fn transaction_body(&self, items: &[TxItem<'_>]) -> Result<(), TxFailure> {
        for (index, item) in items.iter().enumerate() {
            let started = Instant::now();
            if let Some(body) = item.body {
                self.run_script(body)
                    .map_err(|error| TxFailure::Body { index, error })?;
            }
            let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            self.record(&item.record, ms).map_err(|e| {
                TxFailure::Other(Error::db("recording in the history", db_error(&e)))
            })?;
            if let Some(log) = &item.log {
                self.log(log).map_err(|e| {
                    TxFailure::Other(Error::db("recording in the history log", db_error(&e)))
                })?;
            }
        }
        Ok(())
    }

    /// Reads the history without a lock; an absent table is an empty history.
    pub(crate) fn history(&self) -> Result<Vec<HistoryRow>, Error> {
        match self.read() {
            Err(e) if is_missing_table(&e) => Ok(Vec::new()),
            other => other
                .map_err(|e| Error::db("reading the history", db_error(&e)))?
                .into_iter()
                .collect(),
        }
    }

    fn read(&self) -> rusqlite::Result<Vec<Result<HistoryRow, Error>>> {
        let mut stmt = self.conn.prepare(&self.sql.read)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, Option<String>>(10)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (version, name, checksum, chain, state, done, total, at, ms, by, error) = row?;
            let count = |n: i64| u32::try_from(n).unwrap_or(0);
            out.push(
                version
                    .parse::<Version>()
                    .map_err(|e| Error::History(format!("row with version `{version}`: {e}")))
                    .and_then(|v| {
                        Ok(HistoryRow {
                            version: v,
                            name,
                            checksum,
                            chain,
                            state: State::parse(&state).ok_or_else(|| {
                                Error::History(format!("row {v} has unknown state `{state}`"))
                            })?,
                            statements_done: count(done),
                            statements_total: count(total),
                            applied_at: at,
                            execution_ms: ms,
                            applied_by: by,
                            error,
                        })
                    }),
            );
        }
        Ok(out)
    }
}

fn applied(row: &NewRow, execution_ms: i64) -> rusqlite::ParamsFromIter<[Value; 7]> {
    rusqlite::params_from_iter([
        Value::Text(row.version.to_string()),
        Value::Text(row.name.clone()),
        Value::Text(row.checksum.to_string()),
        Value::Text(row.chain.to_string()),
        Value::Integer(i64::from(row.statements_total)),
        Value::Text(row.applied_by.clone()),
        Value::Integer(execution_ms),
    ])
}

/// Who holds the lock file: on Linux, the process whose POSIX lock on it `/proc/locks` lists.
fn lock_holder(path: &Path) -> Holder {
    Holder::LockFile {
        path: path.display().to_string(),
        pid: lock_holder_pid(path),
    }
}

#[cfg(target_os = "linux")]
fn lock_holder_pid(path: &Path) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let own = i32::try_from(std::process::id()).ok()?;
    // `1: POSIX  ADVISORY  WRITE 12345 08:01:1234567 1073741825 1073741825`
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let pid: i32 = fields.get(4)?.parse().ok()?;
        let ino: u64 = fields.get(5)?.rsplit(':').next()?.parse().ok()?;
        (fields.get(1) == Some(&"POSIX") && ino == inode && pid != own).then_some(pid)
    })
}

#[cfg(not(target_os = "linux"))]
fn lock_holder_pid(_path: &Path) -> Option<i32> {
    None
}

impl Backend for SqliteBackend<'_> {
    async fn fast_check(&mut self, goal: Version) -> Result<Fast, Error> {
        let query = |sql: &str, counted: bool| {
            self.conn.prepare_cached(sql).and_then(|mut stmt| {
                stmt.query_row([goal.to_string()], |r| {
                    Ok(Fast::Found {
                        chain: r.get(0)?,
                        state: r.get(1)?,
                        total: r.get(2)?,
                        unfinished: r.get(3)?,
                        counted,
                    })
                })
            })
        };
        match query(&self.sql.fast_check, true) {
            Ok(found) => return Ok(found),
            // No `<table>_count` yet (or no history at all): count the rows.
            Err(rusqlite::Error::QueryReturnedNoRows) => {}
            Err(e) if is_missing_table(&e) => {}
            Err(e) => return Err(Error::db("fast-path history check", db_error(&e))),
        }
        match query(&self.sql.fast_check_uncounted, false) {
            Err(e) if is_missing_table(&e) => Ok(Fast::NoTable),
            // A table of that name but not ours: the slow path's layout check explains.
            Err(e) if e.to_string().contains("no such column") => Ok(Fast::NoTable),
            Err(e) => Err(Error::db("fast-path history check", db_error(&e))),
            Ok(found) => Ok(found),
        }
    }

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

    async fn try_advisory_lock(&mut self, _key: i64) -> Result<bool, Error> {
        let Some(file) = self.database_file()? else {
            return Ok(true); // in memory: no other connection can reach it
        };
        let path = lock_path(&file);
        let lock = match self.lock.take() {
            Some(lock) => lock,
            None => {
                let lock = Connection::open(&path).map_err(|e| {
                    Error::db(
                        format!("opening the lock file {}", path.display()),
                        db_error(&e),
                    )
                })?;
                // Zero: a try-lock, polled by the runner with back-off and its timeout.
                lock.busy_timeout(Duration::ZERO)
                    .map_err(|e| Error::db("setting the lock file's busy timeout", db_error(&e)))?;
                lock
            }
        };
        match lock.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                self.lock = Some(lock);
                Ok(true)
            }
            Err(e) if is_busy(&e) => {
                self.lock = Some(lock);
                Ok(false)
            }
            Err(e) => Err(Error::db(
                format!("locking {}", path.display()),
                db_error(&e),
            )),
        }
    }

    async fn advisory_unlock(&mut self, _key: i64) -> Result<(), Error> {
        if let Some(lock) = self.lock.take() {
            // Closing the connection releases the file lock whatever ROLLBACK says.
            if let Err(e) = lock.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "releasing the lock file");
            }
        }
        Ok(())
    }

    async fn advisory_holder(&mut self, _key: i64) -> Result<Option<Holder>, Error> {
        Ok(self
            .database_file()?
            .map(|file| lock_holder(&lock_path(&file))))
    }

    async fn try_lease(
        &mut self,
        _owner: &str,
        _ttl: Duration,
    ) -> Result<Result<(), Option<Holder>>, Error> {
        Err(Error::Config(
            "the lease lock strategy is for PgBouncer and CockroachDB; on SQLite use \
             LockStrategy::Advisory (a lock file next to the database)"
                .into(),
        ))
    }

    async fn renew_lease(&mut self, _owner: &str, _ttl: Duration) -> Result<bool, Error> {
        Ok(false)
    }

    async fn release_lease(&mut self, _owner: &str) -> Result<(), Error> {
        Ok(())
    }

    async fn ensure_history(&mut self) -> Result<(), Error> {
        let found: Option<Option<String>> = self
            .conn
            .query_row(&self.sql.layout, [&self.sql.table_name], |r| r.get(0))
            .optional()
            .map_err(|e| Error::db("checking the history table", db_error(&e)))?;
        let table = format!(
            "{}.{}",
            self.sql.schema,
            sql::quote_ident(&self.sql.table_name)
        );
        match found {
            None => {
                let create = self.sql.create.clone();
                if let Err(e) = self.exec("creating the history table", &create) {
                    if !self.conn.is_autocommit() {
                        let _ = self.conn.execute_batch("ROLLBACK");
                    }
                    return Err(e);
                }
                tracing::info!(table = %table, "history table created");
            }
            Some(text) => {
                let text = text.unwrap_or_default();
                if !text.contains(crate::history::LAYOUT) {
                    return Err(Error::History(format!(
                        "{table} exists but is not a Preflight history table of a layout this \
                         version knows (its definition has no `{}` comment); use another table \
                         name, or upgrade Preflight",
                        crate::history::LAYOUT
                    )));
                }
            }
        }
        self.ensure_counter();
        Ok(())
    }

    async fn read_history(&mut self) -> Result<Vec<HistoryRow>, Error> {
        self.read()
            .map_err(|e| Error::db("reading the history", db_error(&e)))?
            .into_iter()
            .collect()
    }

    async fn transaction(&mut self, items: &[TxItem<'_>]) -> Result<(), TxFailure> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| TxFailure::Other(Error::db("starting the transaction", db_error(&e))))?;
        let result = self.transaction_body(items).and_then(|()| {
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| TxFailure::Other(Error::db("committing", db_error(&e))))
        });
        if result.is_err() && !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a failed migration transaction");
            }
        }
        result
    }

    /// In WAL mode, every migration of a run but the last commits with `synchronous = NORMAL`
    /// (not synced): the WAL is appended in order and recovered as a prefix, so the last
    /// migration's synced commit makes every earlier one durable, and a crash before it loses
    /// the newest migrations whole, each with its history row — PostgreSQL's asynchronous
    /// commit, same argument. Not in rollback-journal mode, where an unsynced commit can corrupt
    /// the file on power loss; not with other databases attached, whose commits the last one
    /// would not sync; not when the application already chose a weaker level.
    async fn transaction_async_commit(&mut self, items: &[TxItem<'_>]) -> Result<(), TxFailure> {
        let restore = self
            .relax_synchronous()
            .map_err(|e| TxFailure::Other(Error::db("reading the journal mode", db_error(&e))))?;
        let result = self.transaction(items).await;
        if let Some(level) = restore {
            if let Err(e) = self.conn.execute_batch(level) {
                // Left at NORMAL, the run's last commit would not be synced either.
                return Err(TxFailure::Other(Error::db(
                    "restoring PRAGMA synchronous",
                    db_error(&e),
                )));
            }
        }
        result
    }

    async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql).map_err(|e| db_error(&e))
    }

    async fn rollback_open(&mut self) -> Result<(), Error> {
        // SQLite rolls some failures back by itself, and refuses `ROLLBACK` without a
        // transaction: ask it whether one is still open.
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn
            .execute_batch("ROLLBACK")
            .map_err(|e| Error::db("rolling back a failed block", db_error(&e)))
    }

    async fn start_row(&mut self, row: &NewRow, done: u32) -> Result<(), Error> {
        self.conn
            .execute(
                &self.sql.start_row,
                params![
                    row.version.to_string(),
                    row.name,
                    row.checksum.to_string(),
                    row.chain.to_string(),
                    i64::from(done),
                    i64::from(row.statements_total),
                    row.applied_by
                ],
            )
            .map(drop)
            .map_err(|e| Error::db("recording in_progress", db_error(&e)))
    }

    async fn progress(&mut self, version: Version, done: u32) -> Result<(), Error> {
        self.conn
            .execute(
                &self.sql.progress,
                params![version.to_string(), i64::from(done)],
            )
            .map(drop)
            .map_err(|e| Error::db("recording progress", db_error(&e)))
    }

    async fn finish_row(
        &mut self,
        version: Version,
        state: State,
        done: u32,
        execution_ms: i64,
        error: Option<&str>,
    ) -> Result<(), Error> {
        self.conn
            .execute(
                &self.sql.finish_row,
                params![
                    version.to_string(),
                    state.as_str(),
                    i64::from(done),
                    execution_ms,
                    error
                ],
            )
            .map(drop)
            .map_err(|e| Error::db("recording the end of a migration", db_error(&e)))
    }

    async fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

mod api {
    //! The public entry points on [`Runner`] and [`Migrations`].

    use rusqlite::Connection;

    use super::SqliteBackend;
    use crate::error::Error;
    use crate::history::HistoryRow;
    use crate::plan::Revert;
    use crate::report::Report;
    use crate::runner::{self, Repair, Runner, Work};
    use crate::Migrations;

    impl Runner<'_> {
        /// Migrates a SQLite database: the fast path (one query) when it is current, otherwise
        /// lock (a lock file next to the database, see [`crate::sqlite`]), plan, apply each
        /// migration in its own `BEGIN IMMEDIATE` transaction with its history row, unlock.
        ///
        /// ```
        /// # use preflight_runtime::{MigrationSpec, Migrations};
        /// let migrations = Migrations::from_specs(vec![
        ///     MigrationSpec::new(1, "users", "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT);"),
        /// ]).unwrap();
        /// let mut conn = rusqlite::Connection::open_in_memory()?;
        /// let report = migrations.runner().run_sqlite(&mut conn)?;
        /// assert_eq!(report.applied.len(), 1);
        /// assert!(migrations.runner().run_sqlite(&mut conn)?.fast_path);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn run_sqlite(&self, conn: &mut Connection) -> Result<Report, Error> {
            self.sqlite(conn, Work::Migrate)
        }

        /// Reverts applied migrations on SQLite (newest first, each in a transaction with its
        /// history row removed); see [`Runner::revert`].
        pub fn revert_sqlite(
            &self,
            conn: &mut Connection,
            revert: Revert,
        ) -> Result<Report, Error> {
            self.sqlite(conn, Work::Revert(revert))
        }

        /// Repairs the history of a SQLite database under the lock, recorded in
        /// `<table>_log`; see [`Runner::repair`].
        pub fn repair_sqlite(
            &self,
            conn: &mut Connection,
            repair: Repair,
        ) -> Result<Report, Error> {
            self.sqlite(conn, Work::Repair(repair))
        }

        /// Reads the history of a SQLite database (no lock; empty when the table does not
        /// exist yet).
        pub fn history_sqlite(&self, conn: &mut Connection) -> Result<Vec<HistoryRow>, Error> {
            self.cfg.validate()?;
            SqliteBackend::new(conn, &self.cfg).history()
        }

        fn sqlite(&self, conn: &mut Connection, work: Work) -> Result<Report, Error> {
            if self.cfg.sql_lock_timeout.is_some() || self.cfg.sql_statement_timeout.is_some() {
                return Err(Error::Config(
                    "sql_lock_timeout and sql_statement_timeout are PostgreSQL server settings; \
                     on SQLite the lock timeout is also the busy timeout"
                        .into(),
                ));
            }
            let mut backend = SqliteBackend::new(conn, &self.cfg);
            // Nothing in the SQLite backend awaits anything: each future completes when
            // first polled.
            futures_executor::block_on(runner::run(&mut backend, self.set, &self.cfg, work))
        }
    }

    impl Migrations {
        /// Migrates a SQLite database with the default settings (see [`Runner::run_sqlite`]).
        pub fn run_sqlite(&self, conn: &mut Connection) -> Result<Report, Error> {
            self.runner().run_sqlite(conn)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        statements(sql).iter().map(|s| &sql[s.range()]).collect()
    }

    #[test]
    fn splits_like_sqlite() {
        assert_eq!(texts(""), Vec::<&str>::new());
        assert_eq!(
            texts("  -- only a comment\n /* and another */ ;\n"),
            Vec::<&str>::new()
        );
        assert_eq!(
            texts("SELECT ';' /* ; */; -- ;\nSELECT \"a;b\" FROM [x;y];"),
            ["SELECT ';' /* ; */;", "SELECT \"a;b\" FROM [x;y];"]
        );
        let trigger = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE b SET n = n + 1;\n  DELETE FROM c;\nEND;";
        assert_eq!(texts(&format!("{trigger}\nVACUUM")), [trigger, "VACUUM"]);
    }

    #[test]
    fn names_result_codes() {
        assert_eq!(code_name(1555), "SQLITE_CONSTRAINT");
        assert_eq!(code_name(5), "SQLITE_BUSY");
        assert_eq!(
            lock_path(Path::new("/tmp/app.db")),
            Path::new("/tmp/app.db-preflight-lock")
        );
    }
}
