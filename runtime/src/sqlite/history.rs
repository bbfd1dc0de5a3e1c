//! The history table on SQLite: the fast-path query, creation, reads, the row count, and the
//! rows of migrations that run statement by statement.

use rusqlite::{params, OptionalExtension};

use crate::backend::{Fast, HistoryTable};
use crate::error::Error;
use crate::history::{HistoryRow, NewRow, State};
use crate::Version;

use super::{db_error, is_missing_table, sql, SqliteBackend};

impl HistoryTable for SqliteBackend<'_> {
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

    async fn read_history_if_any(&mut self) -> Result<Vec<HistoryRow>, Error> {
        self.history()
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
}

impl SqliteBackend<'_> {
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

    /// Reads the history without a lock; an absent table is an empty history.
    fn history(&self) -> Result<Vec<HistoryRow>, Error> {
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
