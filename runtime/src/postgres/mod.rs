//! The PostgreSQL backend, for the sync `postgres` and the async `tokio-postgres` drivers.
//!
//! The backend is written once over a tiny connection trait (`wire::PgConn`: run a list of
//! requests, sleep); the two drivers only implement that trait:
//!
//! * **async** (`tokio-postgres`): the requests of a migration (`BEGIN`, the script as one
//!   simple query, the parameterised history `INSERT` as an unnamed statement, `COMMIT`) are
//!   polled together, so tokio-postgres pipelines them: one round trip per migration. If the
//!   body fails, the transaction is aborted, the `INSERT` fails with 25P02 and `COMMIT` becomes
//!   `ROLLBACK`; the body's error is reported. Consecutive transactional migrations go further:
//!   up to 64 of them (and 256 KiB of scripts) are sent as **one round trip per window**, each
//!   still its own transaction with its own `COMMIT`. Every transaction after the first of a
//!   window starts with a guard, `SELECT 1 / count(*)::int FROM <history> WHERE version = $1
//!   AND state = 'applied'` naming its predecessor, because a failed transaction's `COMMIT`
//!   *ends* it as a `ROLLBACK`: without the guard the next `BEGIN` would open a fresh
//!   transaction and commit after its predecessor failed. With it, the failure of migration k
//!   makes k+1's guard divide by zero, k+1 records nothing, k+2's guard fails in turn, and
//!   nothing after k commits; the runner reports k's own error. Windows are used only under the
//!   advisory lock (see `runner::apply`) and never on CockroachDB.
//! * **sync** (`postgres`): the same requests one after the other, adjacent simple queries
//!   merged (`BEGIN` travels with the script): **three round trips per migration**.
//!
//! The fast path is one unnamed-statement query (Parse/Bind/Execute/Sync in one message, so it
//! works through PgBouncer in transaction mode) on both.
//!
//! **CockroachDB** (detected from `SELECT version()` on the slow path): the lease lock is used
//! instead of advisory locks (stubs there), every migration is recorded `in_progress` and run
//! statement by statement, then recorded `applied` (DDL inside `BEGIN` is not atomic there), and
//! Preflight's own bookkeeping statements are retried on SQLSTATE 40001. We have no CockroachDB
//! server in CI: the detection, the retry classification and the plan are unit-tested, the SQL is
//! written in the subset CockroachDB supports, but it has not been run against a live cluster.
//!
//! Files, one concern each: `wire.rs` (requests, the driver trait, server errors),
//! `sync_client.rs` / `async_client.rs` (the two drivers), `sql.rs` (the history table's SQL),
//! `history.rs` (the fast path, creation, the upgrade from layout 1, reads and progress rows),
//! `lock.rs` (advisory lock and lease, and the sessions that block a migration),
//! `transaction.rs` (migration transactions and pipelined windows, under their time limits),
//! `retry.rs` (CockroachDB's serialization retries), `foreign.rs` (other tools'
//! histories), `reset.rs` (the schema's objects), `catalog.rs` (the schema as drift compares
//! it) and `scratch.rs` (throwaway databases: drift's scratch database, the test helpers'). The
//! pools (deadpool, bb8, r2d2) are in `crate::pool`.

mod catalog;
mod foreign;
mod history;
mod lock;
mod reset;
mod retry;
pub(crate) mod scratch;
mod sql;
mod transaction;
mod wire;

#[cfg(feature = "tokio-postgres")]
mod async_client;
#[cfg(feature = "postgres")]
mod sync_client;

// The test helpers quote the database names they create the same way.
#[cfg(feature = "testing")]
pub(crate) use sql::quote_ident;

pub(crate) use scratch::{Connect, Connector};

#[cfg(feature = "tokio-postgres")]
pub(crate) use async_client::AsyncConn;
#[cfg(feature = "postgres")]
pub(crate) use sync_client::SyncConn;

use std::time::Duration;

use tokio_postgres::Row;

use crate::backend::{Backend, Product, Session};
use crate::error::{DbError, Error};
use crate::runner::Config;

use sql::Sql;
use wire::{get, Op, Param, PgConn};

/// The PostgreSQL backend over any driver.
pub(crate) struct PgBackend<C> {
    conn: C,
    sql: Sql,
    cfg_schema: Option<String>,
    table: String,
    /// The history table's schema as the session resolved it (`cfg_schema` or the current
    /// schema); empty before the session query.
    schema: String,
    cockroach: bool,
    /// Where drift builds its scratch database.
    scratch: Option<crate::scratch::Scratch>,
    /// The backend pid the run's session query saw: the advisory lock is taken and released
    /// only there (see `sql::TRY_ADVISORY`); -1 before the session query.
    session_pid: i64,
    /// The owner of the lease this run holds in layout 1's `<table>_lease` (the history table
    /// was of layout 1 when the lease was taken), until the upgrade moves it into the table.
    legacy_lease_owner: Option<String>,
}

impl<C: PgConn> PgBackend<C> {
    pub fn new(conn: C, cfg: &Config) -> PgBackend<C> {
        PgBackend {
            conn,
            sql: Sql::new(cfg.schema.as_deref(), &cfg.table),
            cfg_schema: cfg.schema.clone(),
            table: cfg.table.clone(),
            schema: String::new(),
            cockroach: false,
            scratch: cfg.scratch.clone(),
            session_pid: -1,
            legacy_lease_owner: None,
        }
    }

    async fn one(&mut self, op: Op<'_>) -> Result<Vec<Row>, DbError> {
        let mut results = self.conn.pipeline(&[op]).await;
        results
            .pop()
            .unwrap_or_else(|| Err(DbError::other("no result from the driver")))
    }

    async fn query(&mut self, sql: &str, params: Vec<Param>) -> Result<Vec<Row>, DbError> {
        self.one(Op::Query(sql, params)).await
    }
}

/// CockroachDB identifies itself in `version()`.
fn is_cockroach(version: &str) -> bool {
    version.trim_start().starts_with("CockroachDB")
}

impl<C: PgConn> Backend for PgBackend<C> {
    async fn session(&mut self, application_name: &str) -> Result<Session, Error> {
        // Both requests travel together; the first reads the application_name the second
        // replaces.
        let ops = [
            Op::Query(sql::SESSION, vec![]),
            Op::Query(
                sql::SET_CONFIG,
                vec![
                    Param::Text("application_name".into()),
                    Param::Text(application_name.into()),
                    Param::Bool(false),
                ],
            ),
        ];
        let mut results = self.conn.pipeline(&ops).await.into_iter();
        let rows = results
            .next()
            .unwrap_or_else(|| Err(DbError::other("no result")))
            .map_err(|e| Error::db("reading the session", e))?;
        if let Some(Err(e)) = results.next() {
            return Err(Error::db("setting application_name", e));
        }
        let row = rows
            .first()
            .ok_or_else(|| Error::History("session query returned no row".into()))?;
        let version: String = get(row, 2)?;
        let product = if is_cockroach(&version) {
            Product::CockroachDb
        } else {
            Product::Postgres
        };
        self.cockroach = product == Product::CockroachDb;
        self.session_pid = get(row, 4)?;
        let current_schema: String = get(row, 1)?;
        self.schema = self.cfg_schema.clone().unwrap_or(current_schema);
        Ok(Session {
            database: get(row, 0)?,
            schema: self.schema.clone(),
            product,
            previous_application_name: get(row, 3)?,
            backend_pid: get(row, 4)?,
        })
    }

    async fn restore_session(&mut self, session: &Session) -> Result<(), Error> {
        self.query(
            sql::SET_CONFIG,
            vec![
                Param::Text("application_name".into()),
                Param::Text(session.previous_application_name.clone()),
                Param::Bool(false),
            ],
        )
        .await
        .map(drop)
        .map_err(|e| Error::db("restoring application_name", e))
    }

    async fn sleep(&mut self, duration: Duration) {
        self.conn.sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_cockroach() {
        assert!(is_cockroach(
            "CockroachDB CCL v24.1.0 (x86_64-pc-linux-gnu, built 2024/05/15, go1.22.2)"
        ));
        assert!(!is_cockroach(
            "PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu"
        ));
    }
}
