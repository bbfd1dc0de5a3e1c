//! The history table on SQLite: the fast-path query, creation and the upgrade from layout 1,
//! reads, and the rows of migrations that run unit by unit.

use rusqlite::{params, OptionalExtension};

use crate::backend::{Fast, HistoryTable, Layout, Newest};
use crate::error::Error;
use crate::history::{HistoryRow, Key, NewRow, State, LAYOUT, LAYOUT_V1};
use crate::Version;

use super::{db_error, is_missing_table, sql, SqliteBackend};

impl HistoryTable for SqliteBackend<'_> {
    async fn fast_check(&mut self, sets: &[&str]) -> Result<Option<Fast>, Error> {
        let sql = self.sql.fast_check(sets.len());
        let read = self.conn.prepare_cached(&sql).and_then(|mut stmt| {
            stmt.query_map(rusqlite::params_from_iter(sets), |r| {
                let version: Option<String> = r.get(0)?;
                let newest = match version {
                    Some(version) => Some(Newest {
                        version,
                        chain: r.get(1)?,
                        state: r.get(2)?,
                    }),
                    None => None,
                };
                Ok((newest, r.get::<_, bool>(3)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        });
        match read {
            Ok(rows) => {
                let mut fast = Fast::default();
                for (newest, unfinished) in rows {
                    fast.unfinished |= unfinished;
                    fast.newest.push(newest);
                }
                Ok(Some(fast))
            }
            // No table yet, or one of layout 1 (or not ours, which the slow path explains).
            Err(e) if is_missing_table(&e) || e.to_string().contains("no such column") => Ok(None),
            Err(e) => Err(Error::db("fast-path history check", db_error(&e))),
        }
    }

    async fn ensure_history(&mut self) -> Result<Layout, Error> {
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
        let Some(text) = found else {
            let create = self.sql.create.clone();
            if let Err(e) = self.exec("creating the history table", &create) {
                self.rollback();
                return Err(e);
            }
            tracing::info!(table = %table, "history table created");
            return Ok(Layout::Current);
        };
        let text = text.unwrap_or_default();
        if text.contains(LAYOUT_V1) {
            let rows = self
                .conn
                .prepare(&self.sql.v1_rows)
                .and_then(|mut stmt| {
                    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<Vec<(String, String)>>>()
                })
                .map_err(|e| Error::db("reading the history to upgrade it", db_error(&e)))?;
            return Ok(Layout::V1 { rows });
        }
        if !text.contains(LAYOUT) {
            return Err(Error::History(format!(
                "{table} exists but is not a Preflight history table of a layout this version \
                 knows (its definition has no `{LAYOUT}` comment); use another table name, or \
                 upgrade Preflight"
            )));
        }
        self.drop_legacy()?;
        Ok(Layout::Current)
    }

    async fn upgrade_history(&mut self, set: &str, ords: &[(String, String)]) -> Result<(), Error> {
        let log = self
            .legacy_objects()?
            .iter()
            .any(|(kind, name)| kind == "table" && *name == self.sql.legacy_names[1]);
        let upgrade = self.sql.upgrade(log);
        let result = (|| -> rusqlite::Result<()> {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.conn.execute_batch(&upgrade.create)?;
            self.conn.execute(&upgrade.insert, [set])?;
            if let Some(log) = &upgrade.log {
                self.conn.execute_batch(log)?;
            }
            let mut ord = self.conn.prepare(&self.sql.upgrade_ord())?;
            for (version, key) in ords {
                ord.execute([version, key])?;
            }
            drop(ord);
            self.conn.execute_batch(&upgrade.finish)?;
            self.conn.execute_batch("COMMIT")
        })();
        result.map_err(|e| {
            self.rollback();
            Error::db("upgrading the history table to layout 2", db_error(&e))
        })
    }

    async fn read_history(&mut self) -> Result<Vec<HistoryRow>, Error> {
        self.read(&self.sql.read)
            .map_err(|e| Error::db("reading the history", db_error(&e)))?
            .into_iter()
            .collect()
    }

    async fn read_history_if_any(&mut self) -> Result<Vec<HistoryRow>, Error> {
        self.history()
    }

    async fn start_row(&mut self, row: &NewRow, done: u32, completed: &str) -> Result<(), Error> {
        self.conn
            .execute(
                &self.sql.start_row,
                params![
                    row.key.set,
                    row.key.version.to_string(),
                    row.ord(),
                    row.name,
                    row.checksum.to_string(),
                    row.chain_text(),
                    i64::from(done),
                    i64::from(row.statements_total),
                    row.applied_by,
                    completed
                ],
            )
            .map(drop)
            .map_err(|e| Error::db("recording in_progress", db_error(&e)))
    }

    async fn start_revert(
        &mut self,
        key: &Key,
        total: u32,
        done: u32,
        completed: &str,
    ) -> Result<(), Error> {
        let changed = self
            .conn
            .execute(
                &self.sql.start_revert,
                params![
                    key.set,
                    key.version.to_string(),
                    i64::from(done),
                    i64::from(total),
                    completed
                ],
            )
            .map_err(|e| Error::db("recording reverting", db_error(&e)))?;
        if changed == 0 {
            return Err(Error::History(format!(
                "migration {} has no applied history row although this run was about to revert \
                 it; nothing of it was reverted",
                key.version
            )));
        }
        Ok(())
    }

    async fn progress(&mut self, key: &Key, done: u32, completed: &str) -> Result<(), Error> {
        self.conn
            .execute(
                &self.sql.progress,
                params![key.set, key.version.to_string(), i64::from(done), completed],
            )
            .map(drop)
            .map_err(|e| Error::db("recording progress", db_error(&e)))
    }

    async fn finish_row(
        &mut self,
        key: &Key,
        state: State,
        done: u32,
        execution_ms: i64,
        error: Option<&str>,
    ) -> Result<(), Error> {
        self.conn
            .execute(
                &self.sql.finish_row,
                params![
                    key.set,
                    key.version.to_string(),
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
    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Layout 1's side objects that still exist: (type, name).
    fn legacy_objects(&self) -> Result<Vec<(String, String)>, Error> {
        self.conn
            .prepare(&self.sql.legacy_objects)
            .and_then(|mut stmt| {
                stmt.query_map(rusqlite::params_from_iter(&self.sql.legacy_names), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| Error::db("checking the history table", db_error(&e)))
    }

    /// Drops what layout 1 kept beside a table of layout 2 (left by a binary that knew only
    /// layout 1), in one transaction.
    fn drop_legacy(&self) -> Result<(), Error> {
        let found = self.legacy_objects()?;
        if found.is_empty() {
            return Ok(());
        }
        let mut script = vec!["BEGIN IMMEDIATE".to_owned()];
        for (kind, name) in &found {
            let kind = if kind == "trigger" {
                "TRIGGER"
            } else {
                "TABLE"
            };
            script.push(format!(
                "DROP {kind} IF EXISTS {}.{}",
                self.sql.schema,
                sql::quote_ident(name)
            ));
        }
        script.push("COMMIT".to_owned());
        if let Err(e) = self.conn.execute_batch(&script.join(";\n")) {
            self.rollback();
            return Err(Error::db(
                "dropping what an older Preflight left beside the history table",
                db_error(&e),
            ));
        }
        Ok(())
    }

    /// Reads the history without a lock; an absent table is an empty history, a table of
    /// layout 1 is read with an empty set.
    fn history(&self) -> Result<Vec<HistoryRow>, Error> {
        let read = match self.read(&self.sql.read) {
            Err(e) if e.to_string().contains("no such column") => self.read(&self.sql.read_v1),
            other => other,
        };
        match read {
            Err(e) if is_missing_table(&e) => Ok(Vec::new()),
            other => other
                .map_err(|e| Error::db("reading the history", db_error(&e)))?
                .into_iter()
                .collect(),
        }
    }

    fn read(&self, sql: &str) -> rusqlite::Result<Vec<Result<HistoryRow, Error>>> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                (r.get::<_, i64>(6)?, r.get::<_, i64>(7)?),
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, String>(11)?,
                (
                    r.get::<_, Option<String>>(12)?,
                    r.get::<_, Option<String>>(13)?,
                ),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                (set, version),
                name,
                checksum,
                chain,
                state,
                (done, total),
                completed,
                at,
                ms,
                by,
                (error, repaired),
            ) = row?;
            let count = |n: i64| u32::try_from(n).unwrap_or(0);
            out.push(
                version
                    .parse::<Version>()
                    .map_err(|e| Error::History(format!("row with version `{version}`: {e}")))
                    .and_then(|v| {
                        Ok(HistoryRow {
                            set,
                            version: v,
                            name,
                            checksum,
                            chain,
                            state: State::parse(&state).ok_or_else(|| {
                                Error::History(format!("row {v} has unknown state `{state}`"))
                            })?,
                            statements_done: count(done),
                            statements_total: count(total),
                            completed,
                            applied_at: at,
                            execution_ms: ms,
                            applied_by: by,
                            error,
                            repaired,
                        })
                    }),
            );
        }
        Ok(out)
    }
}
