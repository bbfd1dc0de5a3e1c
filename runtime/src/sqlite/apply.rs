//! Migration transactions on SQLite: each in its own `BEGIN IMMEDIATE` transaction with its
//! history record, its script run statement by statement so that a failure names its
//! statement.

use std::time::Instant;

use rusqlite::params;
use rusqlite::types::Value;

use crate::backend::{Apply, PreviousTimeouts, Record, TxFailure, TxItem};
use crate::error::{DbError, Error};
use crate::history::{Key, NewRow};
use crate::timeout::{Timeout, Timeouts};

use super::{db_error, statements, SqliteBackend};

impl Apply for SqliteBackend<'_> {
    async fn transaction(&mut self, items: &[TxItem<'_>]) -> Result<(), TxFailure> {
        // The write lock is waited for as long as the migration's lock timeout (the first
        // body's, in a group), then the runner tries again or reports it.
        let lock = items
            .iter()
            .find(|i| i.body.is_some())
            .and_then(|i| i.timeouts.lock);
        self.wait_for_locks(lock)
            .map_err(|e| TxFailure::Other(Error::db("setting busy_timeout", e)))?;
        let begun = self.conn.execute_batch("BEGIN IMMEDIATE");
        self.wait_for_locks(None)
            .map_err(|e| TxFailure::Other(Error::db("restoring busy_timeout", e)))?;
        begun.map_err(|e| TxFailure::Other(Error::db("starting the transaction", db_error(&e))))?;
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
        let limits = self.executing;
        self.limited(limits.statement, || self.conn.execute_batch(sql))
            .map_err(|e| db_error(&e))
    }

    async fn set_timeouts(&mut self, timeouts: Timeouts) -> Result<PreviousTimeouts, Error> {
        self.executing = timeouts;
        self.wait_for_locks(timeouts.lock)
            .map_err(|e| Error::db("setting busy_timeout", e))?;
        Ok(PreviousTimeouts::default())
    }

    async fn restore_timeouts(&mut self, _previous: PreviousTimeouts) -> Result<(), Error> {
        self.executing = Timeouts::NONE;
        self.wait_for_locks(None)
            .map_err(|e| Error::db("restoring busy_timeout", e))
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
}

impl SqliteBackend<'_> {
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

    fn record(&self, record: &Record, execution_ms: i64) -> rusqlite::Result<usize> {
        let c = self.conn;
        let key = |k: &Key| [k.set.clone(), k.version.to_string()];
        let chain = |ch: &Option<crate::Checksum>| ch.map(|c| c.to_string()).unwrap_or_default();
        match record {
            Record::Insert(row) => c.execute(&self.sql.insert_applied, applied(row, execution_ms)),
            Record::Upsert(row) => c.execute(&self.sql.upsert_applied, applied(row, 0)),
            Record::Delete(k) => c.execute(&self.sql.delete, key(k)),
            Record::SetChecksum {
                key: k,
                checksum,
                chain: ch,
            } => {
                let [set, version] = key(k);
                c.execute(
                    &self.sql.set_checksum,
                    [set, version, checksum.to_string(), chain(ch)],
                )
            }
            Record::SetChain { key: k, chain: ch } => {
                let [set, version] = key(k);
                c.execute(&self.sql.set_chain, [set, version, chain(ch)])
            }
        }
    }

    fn note(&self, key: &Key, note: &str) -> rusqlite::Result<usize> {
        self.conn.execute(
            &self.sql.note,
            params![key.set, key.version.to_string(), note],
        )
    }

    /// Runs a script statement by statement (split as SQLite does), so that a failure names
    /// its statement: the error's position is made relative to the whole script.
    fn run_script(&self, script: &str, limit: Option<Timeout>) -> Result<(), DbError> {
        for span in statements(script) {
            let range = span.range();
            let statement = &script[range.clone()];
            if let Err(e) = self.limited(limit, || self.conn.execute_batch(statement)) {
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
                self.run_script(body, item.timeouts.statement)
                    .map_err(|error| TxFailure::Body { index, error })?;
            }
            let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            self.record(&item.record, ms).map_err(|e| {
                TxFailure::Other(Error::db("recording in the history", db_error(&e)))
            })?;
            if let Some(note) = &item.note {
                self.note(item.record.key(), note)
                    .map_err(|e| TxFailure::Other(Error::db("recording a repair", db_error(&e))))?;
            }
        }
        Ok(())
    }
}

fn applied(row: &NewRow, execution_ms: i64) -> rusqlite::ParamsFromIter<[Value; 9]> {
    rusqlite::params_from_iter([
        Value::Text(row.key.set.clone()),
        Value::Text(row.key.version.to_string()),
        Value::Text(row.ord()),
        Value::Text(row.name.clone()),
        Value::Text(row.checksum.to_string()),
        Value::Text(row.chain_text()),
        Value::Integer(i64::from(row.statements_total)),
        Value::Text(row.applied_by.clone()),
        Value::Integer(execution_ms),
    ])
}
