//! The migration lock on PostgreSQL: the session advisory lock, taken and released only on
//! the server session the run started on, and the lease row.

use std::time::Duration;

use crate::backend::Locking;
use crate::blocked::Blocker;
use crate::error::Error;
use crate::lock::{pg_locks_ids, Holder};

use crate::history::{LAYOUT, LAYOUT_V1};

use super::history::{is_creation_race, unknown_layout};
use super::sql;
use super::wire::{get, Op, Param, PgConn};
use super::PgBackend;

impl<C: PgConn> Locking for PgBackend<C> {
    async fn try_advisory_lock(&mut self, key: i64) -> Result<bool, Error> {
        let (classid, objid) = pg_locks_ids(key);
        let rows = self
            .query(
                sql::TRY_ADVISORY,
                vec![
                    Param::Int8(key),
                    Param::Oid(classid),
                    Param::Oid(objid),
                    Param::Int8(self.session_pid),
                ],
            )
            .await
            .map_err(|e| Error::db("pg_try_advisory_lock", e))?;
        let Some(row) = rows.first() else {
            return Ok(false);
        };
        let (acquired, pid, held): (bool, i64, bool) = (get(row, 0)?, get(row, 1)?, get(row, 2)?);
        if self.session_pid >= 0 && pid != self.session_pid {
            return Err(Error::Config(pooler(&format!(
                "this run's statements reach different server sessions (backend pid {} for \
                 the first, {pid} for the lock)",
                self.session_pid
            ))));
        }
        if held {
            return Err(Error::Config(pooler(&format!(
                "the server session (backend pid {pid}) already holds the migration lock \
                 although this run never took it: it is shared with another client"
            ))));
        }
        Ok(acquired)
    }

    async fn advisory_unlock(&mut self, key: i64) -> Result<(), Error> {
        let rows = self
            .query(
                sql::ADVISORY_UNLOCK,
                vec![Param::Int8(key), Param::Int8(self.session_pid)],
            )
            .await
            .map_err(|e| Error::db("pg_advisory_unlock", e))?;
        let Some(row) = rows.first() else {
            return Ok(());
        };
        let (released, pid): (Option<bool>, i64) = (get(row, 0)?, get(row, 1)?);
        match released {
            Some(true) => {}
            Some(false) => tracing::warn!("the advisory lock was not held at release"),
            None => {
                return Err(Error::Config(pooler(&format!(
                    "the migration lock taken on backend pid {} cannot be released from backend \
                     pid {pid}; it stays held until that server connection closes \
                     (`SELECT pg_terminate_backend({})`)",
                    self.session_pid, self.session_pid
                ))))
            }
        }
        Ok(())
    }

    async fn advisory_holder(&mut self, key: i64) -> Result<Option<Holder>, Error> {
        let (classid, objid) = pg_locks_ids(key);
        let rows = self
            .query(
                sql::ADVISORY_HOLDER,
                vec![Param::Oid(classid), Param::Oid(objid)],
            )
            .await
            .map_err(|e| Error::db("looking up the lock holder", e))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(Holder::Session {
            pid: get(row, 0)?,
            application_name: get(row, 1)?,
            client: get(row, 2)?,
            connected_since: get(row, 3)?,
            state: get(row, 4)?,
        }))
    }

    async fn try_lease(
        &mut self,
        owner: &str,
        ttl: Duration,
    ) -> Result<Result<(), Option<Holder>>, Error> {
        // The lease is a row of the history table (layout 2). While the table is of layout 1,
        // it is taken in layout 1's `<table>_lease`, as binaries that know only layout 1 take
        // it, so that they are excluded too; the upgrade then moves it into the table.
        self.ensure_schema().await?;
        let legacy = match self.layout().await? {
            None => {
                self.create_table().await?;
                false
            }
            Some(found) if found.comment == LAYOUT_V1 => true,
            Some(found) if found.comment == LAYOUT => false,
            Some(found) => return Err(unknown_layout(&self.sql.table, &found.comment)),
        };
        let (take, holder) = if legacy {
            let create = self.sql.legacy_lease.create.clone();
            if let Err(e) = self.one(Op::Simple(&create)).await {
                if !is_creation_race(&e) {
                    return Err(Error::db("creating the lease table", e));
                }
            }
            (
                self.sql.legacy_lease.try_take.clone(),
                self.sql.legacy_lease.holder.clone(),
            )
        } else {
            (self.sql.lease_try.clone(), self.sql.lease_holder.clone())
        };
        let rows = self
            .bookkeeping(
                "taking the lease",
                &take,
                vec![
                    Param::Text(owner.to_owned()),
                    Param::Float8(ttl.as_secs_f64()),
                ],
            )
            .await;
        let rows = match rows {
            // Two first-comers inserting at once: the loser retries. Layout 1's lease table
            // dropped meanwhile by an upgrade: the next attempt finds the lease in the table.
            Err(e) if matches!(e.sqlstate(), Some("23505" | "42P01")) => Vec::new(),
            other => other?,
        };
        if !rows.is_empty() {
            self.legacy_lease_owner = legacy.then(|| owner.to_owned());
            return Ok(Ok(()));
        }
        let rows = match self.bookkeeping("reading the lease", &holder, vec![]).await {
            Err(e) if e.sqlstate() == Some("42P01") => Vec::new(),
            other => other?,
        };
        Ok(Err(match rows.first() {
            Some(row) => Some(Holder::Lease {
                owner: get(row, 0)?,
                acquired_at: get(row, 1)?,
                expires_at: get(row, 2)?,
            }),
            None => None,
        }))
    }

    async fn renew_lease(&mut self, owner: &str, ttl: Duration) -> Result<bool, Error> {
        let sql = if self.legacy_lease_owner.is_some() {
            self.sql.legacy_lease.renew.clone()
        } else {
            self.sql.lease_renew.clone()
        };
        let rows = self
            .bookkeeping(
                "renewing the lease",
                &sql,
                vec![
                    Param::Text(owner.to_owned()),
                    Param::Float8(ttl.as_secs_f64()),
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn release_lease(&mut self, owner: &str) -> Result<(), Error> {
        let sql = if self.legacy_lease_owner.take().is_some() {
            self.sql.legacy_lease.release.clone()
        } else {
            self.sql.lease_release.clone()
        };
        match self
            .bookkeeping(
                "releasing the lease",
                &sql,
                vec![Param::Text(owner.to_owned())],
            )
            .await
        {
            // A lease table of layout 1 that is gone has no lease left to release.
            Err(e) if e.sqlstate() == Some("42P01") => Ok(()),
            other => other.map(drop),
        }
    }

    async fn lock_blockers(&mut self, since: Duration) -> Result<Vec<Blocker>, Error> {
        let rows = self
            .query(BLOCKERS, vec![Param::Float8(since.as_secs_f64())])
            .await
            .map_err(|e| Error::db("reading which sessions hold locks", e))?;
        rows.iter()
            .map(|row| {
                let relations: Vec<String> = get(row, 5)?;
                let modes: Vec<String> = get(row, 6)?;
                Ok(Blocker {
                    pid: get(row, 0)?,
                    application_name: get(row, 1)?,
                    state: get(row, 2)?,
                    transaction_start: get(row, 3)?,
                    query_start: get(row, 4)?,
                    locks: relations
                        .into_iter()
                        .zip(modes)
                        .map(|(r, m)| format!("{r} {m}"))
                        .collect(),
                    waiting_for: get(row, 7)?,
                })
            })
            .collect()
    }
}

/// The sessions of this database, other than this one, whose open transaction began at least
/// `$1` seconds ago (before the blocked migration's last attempt) and that hold locks on
/// tables, views or sequences outside the system schemas: their pid, application name, state,
/// transaction and query start, the relations (quoted, schema-qualified) with the lock modes,
/// and the sessions they wait for themselves. Their query texts are not read: they can hold
/// data. Oldest transaction first.
const BLOCKERS: &str = "SELECT a.pid, coalesce(a.application_name, ''), \
     coalesce(a.state, 'unknown state'), a.xact_start::text, a.query_start::text, \
     array_agg(format('%I.%I', r.nspname, r.relname) ORDER BY r.nspname, r.relname, r.mode), \
     array_agg(r.mode::text ORDER BY r.nspname, r.relname, r.mode), \
     pg_blocking_pids(a.pid) \
     FROM pg_stat_activity a \
     JOIN (SELECT l.pid, l.mode, n.nspname, c.relname FROM pg_locks l \
           JOIN pg_class c ON c.oid = l.relation \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE l.locktype = 'relation' AND l.granted \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND c.relkind IN ('r', 'p', 'm', 'v', 'f', 'S') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%') AS r ON r.pid = a.pid \
     WHERE a.pid <> pg_backend_pid() AND a.datname = current_database() \
     AND a.xact_start <= clock_timestamp() - make_interval(secs => $1) \
     GROUP BY a.pid, a.application_name, a.state, a.xact_start, a.query_start \
     ORDER BY a.xact_start, a.pid LIMIT 20";

/// The error when the session advisory lock meets a pooler in transaction mode.
fn pooler(what: &str) -> String {
    format!(
        "the session advisory lock cannot work on this connection: {what}. A connection pooler \
         in transaction mode (PgBouncer?) sits between Preflight and PostgreSQL; there a session \
         lock excludes no one. Migrate with the lease lock (`LockStrategy::Lease`, \
         `.lock(LockStrategy::lease())`), or through a direct or session-pooled connection"
    )
}
