//! The history table: the fast-path query, creation and the upgrade from layout 1, reads, and
//! the rows of migrations that run unit by unit (their progress).

use tokio_postgres::Row;

use crate::backend::{Fast, HistoryTable, Layout, Newest};
use crate::error::{DbError, Error};
use crate::history::{HistoryRow, Key, NewRow, State, LAYOUT, LAYOUT_V1};
use crate::Version;

use super::sql;
use super::wire::{get, Op, Param, PgConn};
use super::PgBackend;

impl<C: PgConn> HistoryTable for PgBackend<C> {
    async fn fast_check(&mut self, sets: &[&str]) -> Result<Option<Fast>, Error> {
        let sql = self.sql.fast_check.clone();
        let names = sets.iter().map(|s| (*s).to_owned()).collect();
        let rows = match self.query(&sql, vec![Param::TextArray(names)]).await {
            Ok(rows) => rows,
            // No table yet, or one of layout 1 (no `set` column): the slow path decides.
            Err(e) if is_missing_table(&e) || e.is("42703") => return Ok(None),
            Err(e) => return Err(Error::db("fast-path history check", e)),
        };
        let mut fast = Fast::default();
        for row in &rows {
            fast.unfinished |= get::<bool>(row, 3)?;
            let version: Option<String> = get(row, 0)?;
            fast.newest.push(match version {
                Some(version) => Some(Newest {
                    version,
                    chain: get(row, 1)?,
                    state: get(row, 2)?,
                }),
                None => None,
            });
        }
        Ok(Some(fast))
    }

    async fn ensure_history(&mut self) -> Result<Layout, Error> {
        self.ensure_schema().await?;
        let Some(found) = self.layout().await? else {
            self.create_table().await?;
            return Ok(Layout::Current);
        };
        let table = self.sql.table.clone();
        if found.comment == LAYOUT_V1 {
            let sql = self.sql.v1_rows.clone();
            let rows = self
                .query(&sql, vec![])
                .await
                .map_err(|e| Error::db("reading the history to upgrade it", e))?;
            let rows = rows
                .iter()
                .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
                .collect::<Result<_, Error>>()?;
            return Ok(Layout::V1 { rows });
        }
        if found.comment != LAYOUT {
            return Err(unknown_layout(&table, &found.comment));
        }
        if found.count || found.log || found.lease || found.counter {
            // Left by a binary that knows only layout 1 (it recreates its lease table before
            // it reads the layout and refuses): nothing uses them any more.
            self.drop_legacy(&found).await?;
        }
        Ok(Layout::Current)
    }

    async fn upgrade_history(&mut self, set: &str, ords: &[(String, String)]) -> Result<(), Error> {
        let Some(found) = self.layout().await? else {
            return Err(Error::History(
                "the history table to upgrade has gone".into(),
            ));
        };
        let sql = self.sql.v1_constraints.clone();
        let constraints = self
            .query(
                &sql,
                vec![
                    Param::Text(self.sql.table.clone()),
                    Param::Bool(self.cockroach),
                ],
            )
            .await
            .map_err(|e| Error::db("reading the history table's constraints", e))?
            .iter()
            .map(|r| get::<String>(r, 0))
            .collect::<Result<Vec<_>, Error>>()?;
        let transfer = self.legacy_lease_owner.clone();
        let upgrade = sql::upgrade(
            &self.sql,
            &self.table,
            &constraints,
            found.log,
            transfer.is_some(),
            self.cockroach,
        );
        let (versions, keys): (Vec<String>, Vec<String>) = ords.iter().cloned().unzip();
        let mut ops = vec![
            Op::Simple(&upgrade.head),
            Op::Query(&upgrade.set_rows, vec![Param::Text(set.to_owned())]),
            Op::Query(
                &upgrade.ords,
                vec![Param::TextArray(versions), Param::TextArray(keys)],
            ),
            Op::Simple(&upgrade.tail),
        ];
        if let (Some(sql), Some(owner)) = (&upgrade.transfer, &transfer) {
            ops.push(Op::Query(sql, vec![Param::Text(owner.clone())]));
        }
        ops.push(Op::Simple(&upgrade.last));
        let results = self.conn.pipeline(&ops).await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            drop(ops);
            let _ = self.one(Op::Simple("ROLLBACK")).await;
            return Err(Error::db("upgrading the history table to layout 2", e));
        }
        // The lease now lives in the table (see `lock.rs`).
        self.legacy_lease_owner = None;
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
        let rows = match self.query(&sql, vec![]).await {
            Err(e) if is_missing_table(&e) => return Ok(Vec::new()),
            // Layout 1, not upgraded yet (a dry run, `status`).
            Err(e) if e.is("42703") => {
                let sql = self.sql.read_v1.clone();
                self.query(&sql, vec![])
                    .await
                    .map_err(|e| Error::db("reading the history", e))?
            }
            Err(e) => return Err(Error::db("reading the history", e)),
            Ok(rows) => rows,
        };
        rows.iter().map(parse_row).collect()
    }

    async fn start_row(&mut self, row: &NewRow, done: u32, completed: &str) -> Result<(), Error> {
        let sql = self.sql.start_row.clone();
        let params = vec![
            Param::Text(row.key.set.clone()),
            Param::Text(row.key.version.to_string()),
            Param::Text(row.ord()),
            Param::Text(row.name.clone()),
            Param::Text(row.checksum.to_string()),
            Param::Text(row.chain_text()),
            Param::Int4(int4(done)),
            Param::Int4(int4(row.statements_total)),
            Param::Text(row.applied_by.clone()),
            Param::Bool(row.resume),
            Param::Text(completed.to_owned()),
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
                row.key.version
            )));
        }
        Ok(())
    }

    async fn start_revert(
        &mut self,
        key: &Key,
        total: u32,
        done: u32,
        completed: &str,
    ) -> Result<(), Error> {
        let sql = self.sql.start_revert.clone();
        let mut params = key_params(key);
        params.extend([
            Param::Int4(int4(done)),
            Param::Int4(int4(total)),
            Param::Text(completed.to_owned()),
        ]);
        let rows = self
            .bookkeeping("recording reverting", &sql, params)
            .await?;
        if rows.is_empty() {
            return Err(Error::History(format!(
                "migration {} has no applied history row although this run was about to revert \
                 it: another run changed it meanwhile (see `preflight status`); nothing of it \
                 was reverted here",
                key.version
            )));
        }
        Ok(())
    }

    async fn progress(&mut self, key: &Key, done: u32, completed: &str) -> Result<(), Error> {
        let sql = self.sql.progress.clone();
        let mut params = key_params(key);
        params.extend([Param::Int4(int4(done)), Param::Text(completed.to_owned())]);
        self.bookkeeping("recording progress", &sql, params)
            .await
            .map(drop)
    }

    async fn finish_row(
        &mut self,
        key: &Key,
        state: State,
        done: u32,
        execution_ms: i64,
        error: Option<&str>,
    ) -> Result<(), Error> {
        let sql = self.sql.finish_row.clone();
        let mut params = key_params(key);
        params.extend([
            Param::Text(state.as_str().to_owned()),
            Param::Int4(int4(done)),
            Param::Int8(execution_ms),
            Param::OptText(error.map(ToOwned::to_owned)),
        ]);
        self.bookkeeping("recording the end of a migration", &sql, params)
            .await
            .map(drop)
    }
}

/// What the layout query found beside the table.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub comment: String,
    pub count: bool,
    pub log: bool,
    pub lease: bool,
    pub counter: bool,
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

    /// The table's comment and layout 1's side objects; `None` when there is no table.
    pub(super) async fn layout(&mut self) -> Result<Option<Found>, Error> {
        let sql = if self.cockroach {
            self.sql.layout_cockroach.clone()
        } else {
            self.sql.layout.clone()
        };
        let params = self.sql.names.iter().cloned().map(Param::Text).collect();
        let rows = self
            .query(&sql, params)
            .await
            .map_err(|e| Error::db("checking the history table", e))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(Found {
            comment: get(row, 0)?,
            count: get(row, 1)?,
            log: get(row, 2)?,
            lease: get(row, 3)?,
            counter: get(row, 4)?,
        }))
    }

    /// Creates the table (layout 2); a table created meanwhile by another run (the lease path
    /// creates it before it holds the lease) is fine.
    pub(super) async fn create_table(&mut self) -> Result<(), Error> {
        let create = self.sql.create.clone();
        match self.one(Op::Simple(&create)).await {
            Ok(_) => {
                tracing::info!(table = %self.sql.table, "history table created");
                Ok(())
            }
            Err(e) => {
                let _ = self.one(Op::Simple("ROLLBACK")).await;
                if is_creation_race(&e) {
                    Ok(())
                } else {
                    Err(Error::db("creating the history table", e))
                }
            }
        }
    }

    /// Drops what layout 1 kept beside the table, in one transaction.
    async fn drop_legacy(&mut self, found: &Found) -> Result<(), Error> {
        let t = self.sql.table.clone();
        let legacy = self.sql.legacy.clone();
        let mut statements = vec!["BEGIN".to_owned()];
        if !self.cockroach {
            for trigger in [
                "preflight_count_rows",
                "preflight_count_state",
                "preflight_count_truncate",
            ] {
                statements.push(format!("DROP TRIGGER IF EXISTS {trigger} ON {t}"));
            }
        }
        if found.counter {
            statements.push(format!("DROP FUNCTION IF EXISTS {}", legacy.counter));
        }
        for (exists, name) in [
            (found.count, &legacy.count),
            (found.log, &legacy.log),
            (found.lease, &legacy.lease),
        ] {
            if exists {
                statements.push(format!("DROP TABLE IF EXISTS {name}"));
            }
        }
        statements.push("COMMIT".to_owned());
        let script = statements.join(";\n");
        if let Err(e) = self.one(Op::Simple(&script)).await {
            let _ = self.one(Op::Simple("ROLLBACK")).await;
            return Err(Error::db(
                "dropping what an older Preflight left beside the history table",
                e,
            ));
        }
        tracing::info!(table = %t, "dropped layout 1's side objects");
        Ok(())
    }
}

/// The refusal of a table that is not a Preflight history of a layout this version knows.
pub(super) fn unknown_layout(table: &str, comment: &str) -> Error {
    Error::History(format!(
        "{table} exists but is not a Preflight history table of a layout this version knows (its \
         comment is `{comment}`, expected `{LAYOUT}`); use another table name, or upgrade Preflight"
    ))
}

fn key_params(key: &Key) -> Vec<Param> {
    vec![
        Param::Text(key.set.clone()),
        Param::Text(key.version.to_string()),
    ]
}

fn int4(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn parse_row(row: &Row) -> Result<HistoryRow, Error> {
    let version: String = get(row, 1)?;
    let state: String = get(row, 5)?;
    let count = |i| -> Result<u32, Error> { Ok(u32::try_from(get::<i32>(row, i)?).unwrap_or(0)) };
    Ok(HistoryRow {
        set: get(row, 0)?,
        version: version
            .parse::<Version>()
            .map_err(|e| Error::History(format!("row with version `{version}`: {e}")))?,
        name: get(row, 2)?,
        checksum: get(row, 3)?,
        chain: get(row, 4)?,
        state: State::parse(&state)
            .ok_or_else(|| Error::History(format!("row {version} has unknown state `{state}`")))?,
        statements_done: count(6)?,
        statements_total: count(7)?,
        completed: get(row, 8)?,
        applied_at: get(row, 9)?,
        execution_ms: get(row, 10)?,
        applied_by: get(row, 11)?,
        error: get(row, 12)?,
        repaired: get(row, 13)?,
    })
}

/// A table or schema that does not exist yet.
pub(super) fn is_missing_table(e: &DbError) -> bool {
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
