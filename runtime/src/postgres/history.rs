//! The history table: the fast-path query, creation, reads, and the rows of migrations that
//! run statement by statement (their progress).

use tokio_postgres::Row;

use crate::backend::{Fast, HistoryTable};
use crate::error::{DbError, Error};
use crate::history::{HistoryRow, NewRow, State};
use crate::Version;

use super::wire::{get, Op, Param, PgConn};
use super::PgBackend;

impl<C: PgConn> HistoryTable for PgBackend<C> {
    async fn fast_check(&mut self, goal: Version) -> Result<Fast, Error> {
        let goal = || vec![Param::Text(goal.to_string())];
        let sql = self.sql.fast_check.clone();
        match self.query(&sql, goal()).await {
            Ok(rows) if !rows.is_empty() => return fast_found(&rows[0], true),
            // No `<table>_count` (a history from before it, or none at all): count the rows.
            Ok(_) => {}
            Err(e) if is_missing_table(&e) => {}
            Err(e) => return Err(Error::db("fast-path history check", e)),
        }
        let sql = self.sql.fast_check_uncounted.clone();
        match self.query(&sql, goal()).await {
            Err(e) if is_missing_table(&e) => Ok(Fast::NoTable),
            Err(e) => Err(Error::db("fast-path history check", e)),
            Ok(rows) => match rows.first() {
                Some(row) => fast_found(row, false),
                None => Ok(Fast::NoTable),
            },
        }
    }

    async fn ensure_history(&mut self) -> Result<(), Error> {
        self.ensure_schema().await?;
        let layout = if self.cockroach {
            self.sql.layout_cockroach.clone()
        } else {
            self.sql.layout.clone()
        };
        let table = self.sql.table.clone();
        let count_table = self.sql.count_table.clone();
        let rows = self
            .query(
                &layout,
                vec![Param::Text(table.clone()), Param::Text(count_table)],
            )
            .await
            .map_err(|e| Error::db("checking the history table", e))?;
        let (counted, kept) = match rows.first() {
            None => {
                let create = self.sql.create.clone();
                match self.one(Op::Simple(&create)).await {
                    Ok(_) => tracing::info!(table = %table, "history table created"),
                    // Created meanwhile by a run that holds no lock (lock strategy None).
                    Err(e) if is_creation_race(&e) => {
                        let _ = self.one(Op::Simple("ROLLBACK")).await;
                    }
                    Err(e) => {
                        let _ = self.one(Op::Simple("ROLLBACK")).await;
                        return Err(Error::db("creating the history table", e));
                    }
                }
                (false, false)
            }
            Some(row) => {
                let comment: String = get(row, 0)?;
                if comment != crate::history::LAYOUT {
                    return Err(Error::History(format!(
                        "{table} exists but is not a Preflight history table of a layout this \
                         version knows (its comment is `{comment}`, expected `{}`); use another \
                         table name, or upgrade Preflight",
                        crate::history::LAYOUT
                    )));
                }
                (get(row, 1)?, get(row, 2)?)
            }
        };
        self.ensure_counter(counted, kept).await;
        Ok(())
    }

    async fn read_history(&mut self) -> Result<Vec<HistoryRow>, Error> {
        let sql = self.sql.read.clone();
        let rows = self
            .query(&sql, vec![])
            .await
            .map_err(|e| Error::db("reading the history", e))?;
        rows.iter().map(parse_row).collect()
    }

    async fn read_history_if_any(&mut self) -> Result<Vec<HistoryRow>, Error> {
        let sql = self.sql.read.clone();
        match self.query(&sql, vec![]).await {
            Err(e) if is_missing_table(&e) => Ok(Vec::new()),
            Err(e) => Err(Error::db("reading the history", e)),
            Ok(rows) => rows.iter().map(parse_row).collect(),
        }
    }

    async fn start_row(&mut self, row: &NewRow, done: u32) -> Result<(), Error> {
        let sql = self.sql.start_row.clone();
        let params = vec![
            Param::Text(row.version.to_string()),
            Param::Text(row.name.clone()),
            Param::Text(row.checksum.to_string()),
            Param::Text(row.chain.to_string()),
            Param::Int4(i32::try_from(done).unwrap_or(i32::MAX)),
            Param::Int4(i32::try_from(row.statements_total).unwrap_or(i32::MAX)),
            Param::Text(row.applied_by.clone()),
            Param::Bool(row.resume),
        ];
        let rows = self
            .bookkeeping("recording in_progress", &sql, params)
            .await?;
        if rows.is_empty() {
            return Err(Error::History(format!(
                "migration {} already has a history row although this run was about to start \
                 it: another run started it meanwhile, so the migration lock did not exclude it \
                 (`LockStrategy::None`, a lease that expired while its holder was paused — raise \
                 its time-to-live —, or a connection pooler). Nothing of it was run here; see \
                 `preflight status`",
                row.version
            )));
        }
        Ok(())
    }

    async fn progress(&mut self, version: Version, done: u32) -> Result<(), Error> {
        let sql = self.sql.progress.clone();
        let params = vec![
            Param::Text(version.to_string()),
            Param::Int4(i32::try_from(done).unwrap_or(i32::MAX)),
        ];
        self.bookkeeping("recording progress", &sql, params)
            .await
            .map(drop)
    }

    async fn finish_row(
        &mut self,
        version: Version,
        state: State,
        done: u32,
        execution_ms: i64,
        error: Option<&str>,
    ) -> Result<(), Error> {
        let sql = self.sql.finish_row.clone();
        let params = vec![
            Param::Text(version.to_string()),
            Param::Text(state.as_str().to_owned()),
            Param::Int4(i32::try_from(done).unwrap_or(i32::MAX)),
            Param::Int8(execution_ms),
            Param::OptText(error.map(ToOwned::to_owned)),
        ];
        self.bookkeeping("recording the end of a migration", &sql, params)
            .await
            .map(drop)
    }
}

impl<C: PgConn> PgBackend<C> {
    pub(super) async fn ensure_schema(&mut self) -> Result<(), Error> {
        if let Some(create) = self.sql.create_schema.clone() {
            if let Err(e) = self.one(Op::Simple(&create)).await {
                if !is_creation_race(&e) {
                    return Err(Error::db("creating the schema", e));
                }
            }
        }
        Ok(())
    }
}

fn parse_row(row: &Row) -> Result<HistoryRow, Error> {
    let version: String = get(row, 0)?;
    let state: String = get(row, 4)?;
    let count = |i| -> Result<u32, Error> { Ok(u32::try_from(get::<i32>(row, i)?).unwrap_or(0)) };
    Ok(HistoryRow {
        version: version
            .parse::<Version>()
            .map_err(|e| Error::History(format!("row with version `{version}`: {e}")))?,
        name: get(row, 1)?,
        checksum: get(row, 2)?,
        chain: get(row, 3)?,
        state: State::parse(&state)
            .ok_or_else(|| Error::History(format!("row {version} has unknown state `{state}`")))?,
        statements_done: count(5)?,
        statements_total: count(6)?,
        applied_at: get(row, 7)?,
        execution_ms: get(row, 8)?,
        applied_by: get(row, 9)?,
        error: get(row, 10)?,
    })
}

fn fast_found(row: &Row, counted: bool) -> Result<Fast, Error> {
    Ok(Fast::Found {
        chain: get(row, 0)?,
        state: get(row, 1)?,
        total: get(row, 2)?,
        unfinished: get(row, 3)?,
        counted,
    })
}

/// A table or schema that does not exist yet.
fn is_missing_table(e: &DbError) -> bool {
    e.is("42P01") || e.is("3F000")
}

/// Concurrent `CREATE ... IF NOT EXISTS` can still collide in the catalog: a unique violation
/// in `pg_class`/`pg_type`/`pg_namespace` (23505), or, for a table, its row type created by the
/// other session first (42710 `type ... already exists`; seen with 32 processes racing for the
/// lease table).
pub(super) fn is_creation_race(e: &DbError) -> bool {
    e.is("23505") || e.is("42P06") || e.is("42P07") || e.is("42710")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_creation_races() {
        let e = |c: &str| DbError {
            code: Some(c.into()),
            ..DbError::default()
        };
        // 42710: `type "preflight_history_lease" already exists`, from 32 processes racing.
        for code in ["23505", "42P06", "42P07", "42710"] {
            assert!(is_creation_race(&e(code)), "{code}");
        }
        assert!(!is_creation_race(&e("42501")));
    }

    #[test]
    fn classifies_missing_tables() {
        let e = |c: &str| DbError {
            code: Some(c.into()),
            ..DbError::default()
        };
        assert!(is_missing_table(&e("42P01")));
        assert!(is_missing_table(&e("3F000")));
        assert!(!is_missing_table(&e("42501")));
    }
}
