//! The PostgreSQL backend, for the sync `postgres` and the async `tokio-postgres` drivers.
//!
//! The backend logic is written once over a tiny connection trait (`PgConn`: run a list of
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
//!   advisory lock (see `runner::window_limit`) and never on CockroachDB.
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

mod sql;

// The test helpers quote the database names they create the same way.
#[cfg(feature = "testing")]
pub(crate) use sql::quote_ident;

#[cfg(feature = "tokio-postgres")]
mod async_client;
#[cfg(any(feature = "deadpool", feature = "bb8", feature = "r2d2"))]
pub mod pool;
#[cfg(feature = "postgres")]
mod sync_client;

use std::time::Duration;

use postgres_types::{ToSql, Type};
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::Row;

use crate::adopt::{AdoptError, ForeignHistory, ForeignTable, Tool};
use crate::backend::{
    Backend, Fast, LogEntry, Product, Record, Session, TxFailure, TxItem, WindowFailure, WindowTx,
};
use crate::error::{DbError, Error};
use crate::history::{HistoryRow, NewRow, State};
use crate::lock::{pg_locks_ids, Holder};
use crate::runner::Config;
use crate::Version;

use sql::Sql;

/// A parameter value, with the type sent to the server (unnamed statements carry explicit
/// types, so no extra round trip asks the server for them).
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    Int4(i32),
    Int8(i64),
    Float8(f64),
    Oid(u32),
    Bool(bool),
}

impl Param {
    fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Param::Text(v) => (v, Type::TEXT),
            Param::OptText(v) => (v, Type::TEXT),
            Param::Int4(v) => (v, Type::INT4),
            Param::Int8(v) => (v, Type::INT8),
            Param::Float8(v) => (v, Type::FLOAT8),
            Param::Oid(v) => (v, Type::OID),
            Param::Bool(v) => (v, Type::BOOL),
        }
    }
}

pub(crate) fn typed(params: &[Param]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params.iter().map(Param::typed).collect()
}

/// One request to the server.
#[derive(Debug, Clone)]
pub(crate) enum Op<'a> {
    /// Simple query protocol: any number of statements, no parameters.
    Simple(&'a str),
    /// An unnamed prepared statement with typed parameters.
    Query(&'a str, Vec<Param>),
}

/// What a driver provides: run requests in order (pipelined where the driver can), and sleep.
pub(crate) trait PgConn {
    /// Runs the requests in order and returns one result per request. After a failure the
    /// transaction the requests opened must end rolled back: the async driver has sent
    /// everything (the server turns the final `COMMIT` into `ROLLBACK`), the sync driver stops
    /// and sends `ROLLBACK`. Requests not run report an error.
    async fn pipeline(&mut self, ops: &[Op<'_>]) -> Vec<Result<Vec<Row>, DbError>>;
    /// Prepares, where the driver can, the parameterised requests `ops` repeats, for the
    /// following pipelines of this run. Only for pipelines sent under the session's advisory
    /// lock: a transaction-mode pooler would lose a named statement between transactions.
    async fn prepare_repeated(&mut self, _ops: &[Op<'_>]) {}
    async fn sleep(&mut self, duration: Duration);
    /// Whether [`PgConn::pipeline`] sends every request before reading the first reply (so
    /// that several transactions cost one round trip) and runs them all whatever fails.
    fn pipelines(&self) -> bool {
        false
    }
}

/// Copies what the server said out of the driver's error.
pub(crate) fn db_error(e: &tokio_postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(d) => DbError {
            code: Some(d.code().code().to_owned()),
            message: d.message().to_owned(),
            detail: d.detail().map(ToOwned::to_owned),
            hint: d.hint().map(ToOwned::to_owned),
            position: match d.position() {
                Some(ErrorPosition::Original(p)) => Some(*p),
                _ => None,
            },
        },
        None => DbError::other(e.to_string()),
    }
}

/// The error when the session advisory lock meets a pooler in transaction mode.
fn pooler(what: &str) -> String {
    format!(
        "the session advisory lock cannot work on this connection: {what}. A connection pooler \
         in transaction mode (PgBouncer?) sits between Preflight and PostgreSQL; there a session \
         lock excludes no one. Migrate with the lease lock (`LockStrategy::Lease`, \
         `.lock(LockStrategy::lease())`), or through a direct or session-pooled connection"
    )
}

/// CockroachDB identifies itself in `version()`.
pub(crate) fn is_cockroach(version: &str) -> bool {
    version.trim_start().starts_with("CockroachDB")
}

/// Whether an error asks the client to retry the transaction (CockroachDB's serialization
/// failures, SQLSTATE 40001; PostgreSQL uses the same code under SERIALIZABLE).
pub(crate) fn is_retryable(e: &DbError) -> bool {
    e.is("40001")
}

/// How often a bookkeeping statement is retried on 40001.
const RETRIES: usize = 5;

/// The most migration transactions sent in one round trip: enough that the round trip is
/// spread over many migrations, few enough that the requests and replies of a window stay
/// small in memory.
const WINDOW_LIMIT: usize = 64;

/// The PostgreSQL backend over any driver.
pub(crate) struct PgBackend<C> {
    conn: C,
    sql: Sql,
    cfg_schema: Option<String>,
    table: String,
    /// The history table's schema as the session resolved it (`cfg_schema` or the current
    /// schema); empty before the session query.
    schema: String,
    sql_lock_timeout: Option<Duration>,
    sql_statement_timeout: Option<Duration>,
    cockroach: bool,
    /// The backend pid the run's session query saw: the advisory lock is taken and released
    /// only there (see `sql::TRY_ADVISORY`); -1 before the session query.
    session_pid: i64,
}

impl<C: PgConn> PgBackend<C> {
    pub fn new(conn: C, cfg: &Config) -> PgBackend<C> {
        PgBackend {
            conn,
            sql: Sql::new(cfg.schema.as_deref(), &cfg.table),
            cfg_schema: cfg.schema.clone(),
            table: cfg.table.clone(),
            schema: String::new(),
            sql_lock_timeout: cfg.sql_lock_timeout,
            sql_statement_timeout: cfg.sql_statement_timeout,
            cockroach: false,
            session_pid: -1,
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

    /// A bookkeeping statement, retried on CockroachDB's serialization failures.
    async fn bookkeeping(
        &mut self,
        context: &'static str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>, Error> {
        let mut attempt = 0;
        loop {
            match self.query(sql, params.clone()).await {
                Err(e) if self.cockroach && is_retryable(&e) && attempt < RETRIES => {
                    attempt += 1;
                    self.conn.sleep(Duration::from_millis(20 << attempt)).await;
                }
                other => return other.map_err(|e| Error::db(context, e)),
            }
        }
    }

    fn record_op<'s>(sql: &'s Sql, record: &Record) -> Op<'s> {
        match record {
            Record::Insert(row) => Op::Query(&sql.insert_applied, applied_params(row)),
            Record::Upsert(row) => Op::Query(&sql.upsert_applied, applied_params(row)),
            Record::Delete(v) => Op::Query(&sql.delete, vec![Param::Text(v.to_string())]),
            Record::SetChecksum {
                version,
                checksum,
                chain,
            } => Op::Query(
                &sql.set_checksum,
                vec![
                    Param::Text(version.to_string()),
                    Param::Text(checksum.to_string()),
                    Param::Text(chain.to_string()),
                ],
            ),
            Record::SetChain { version, chain } => Op::Query(
                &sql.set_chain,
                vec![
                    Param::Text(version.to_string()),
                    Param::Text(chain.to_string()),
                ],
            ),
        }
    }

    fn log_op<'s>(sql: &'s Sql, log: &LogEntry) -> Op<'s> {
        Op::Query(
            &sql.log,
            vec![
                Param::Text(log.action.to_owned()),
                Param::OptText(log.version.map(|v| v.to_string())),
                Param::Text(log.detail.clone()),
                Param::Text(log.by.clone()),
            ],
        )
    }

    /// The requests of one transaction, appended to `ops` with their roles. `async_commit`:
    /// its commit does not wait for the WAL flush (`SET LOCAL synchronous_commit = off`, sent
    /// with `BEGIN`/the body, no extra round trip); the runner asks for it on every migration
    /// but the last of a run (see `runner::migrate`). Ignored on CockroachDB. `after`: the
    /// transaction first checks that this migration's `applied` row exists (see
    /// [`Backend::transaction_window`]).
    fn push_transaction<'s>(
        &self,
        sql: &'s Sql,
        ops: &mut Vec<Op<'s>>,
        roles: &mut Vec<Role>,
        items: &[TxItem<'s>],
        async_commit: bool,
        after: Option<Version>,
    ) {
        // Asynchronous commit rides with `BEGIN`: one request fewer per migration.
        let asynchronous = async_commit && !self.cockroach;
        ops.push(Op::Simple(if asynchronous {
            sql::BEGIN_ASYNC_COMMIT
        } else {
            "BEGIN"
        }));
        roles.push(Role::Setup);
        if let Some(previous) = after {
            // First in the transaction, so that nothing of it runs when the predecessor did
            // not commit: the division by zero aborts it and its `COMMIT` becomes `ROLLBACK`.
            ops.push(Op::Query(
                &sql.guard,
                vec![Param::Text(previous.to_string())],
            ));
            roles.push(Role::Guard(previous));
        }
        for (name, value) in [
            ("lock_timeout", self.sql_lock_timeout),
            ("statement_timeout", self.sql_statement_timeout),
        ] {
            if let Some(d) = value {
                ops.push(Op::Query(
                    sql::SET_CONFIG,
                    vec![
                        Param::Text(name.to_owned()),
                        Param::Text(format!("{}ms", d.as_millis())),
                        Param::Bool(true),
                    ],
                ));
                roles.push(Role::Setup);
            }
        }
        for (i, item) in items.iter().enumerate() {
            if let Some(body) = item.body {
                ops.push(Op::Simple(body));
                roles.push(Role::Body(i));
            }
            ops.push(Self::record_op(sql, &item.record));
            roles.push(Role::Record);
            if let Some(log) = &item.log {
                ops.push(Self::log_op(sql, log));
                roles.push(Role::Record);
            }
        }
        ops.push(Op::Simple("COMMIT"));
        roles.push(Role::Commit);
    }

    /// One transaction (see [`PgBackend::push_transaction`]).
    async fn transaction_once(
        &mut self,
        items: &[TxItem<'_>],
        async_commit: bool,
    ) -> Result<(), TxFailure> {
        let mut ops = Vec::new();
        let mut roles = Vec::new();
        self.push_transaction(&self.sql, &mut ops, &mut roles, items, async_commit, None);
        let results = self.conn.pipeline(&ops).await;
        drop(ops);
        match first_failure(&roles, results) {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Several transactions in one pipeline (see [`Backend::transaction_window`]).
    async fn window_once(&mut self, txs: &[WindowTx<'_>]) -> Result<(), WindowFailure> {
        let mut ops = Vec::new();
        let mut roles = Vec::new();
        // Where each transaction's requests start in `ops`.
        let mut starts = Vec::with_capacity(txs.len());
        for tx in txs {
            starts.push(ops.len());
            self.push_transaction(
                &self.sql,
                &mut ops,
                &mut roles,
                std::slice::from_ref(&tx.item),
                tx.async_commit,
                tx.after,
            );
        }
        // Every transaction of a window sends the same guard and history INSERT.
        self.conn.prepare_repeated(&ops).await;
        let results = self.conn.pipeline(&ops).await;
        drop(ops);
        // The first transaction that failed is the cause: every one after it failed its guard
        // (and then 25P02 within it) as a consequence, and none of them committed.
        let mut results = results.into_iter();
        for (index, &start) in starts.iter().enumerate() {
            let end = starts.get(index + 1).copied().unwrap_or(roles.len());
            let tx_roles = roles.get(start..end).unwrap_or_default();
            let tx_results: Vec<_> = results.by_ref().take(end - start).collect();
            if let Some(failure) = first_failure(tx_roles, tx_results) {
                return Err(WindowFailure { index, failure });
            }
        }
        Ok(())
    }
}

/// What a request of a transaction is for, to name a failure.
#[derive(Debug, Clone, Copy)]
enum Role {
    Setup,
    /// The check that this migration committed before the transaction's own.
    Guard(Version),
    Body(usize),
    Record,
    Commit,
}

/// The first failed request of a transaction, as the transaction's failure: the ones after it
/// are its consequences (25P02, or not run). A missing result counts as a failure.
fn first_failure(roles: &[Role], results: Vec<Result<Vec<Row>, DbError>>) -> Option<TxFailure> {
    let mut results = results.into_iter();
    for role in roles {
        let error = match results.next() {
            Some(Ok(_)) => continue,
            Some(Err(error)) => error,
            None => DbError::other("no result from the driver"),
        };
        return Some(match *role {
            Role::Body(index) => TxFailure::Body { index, error },
            Role::Setup => TxFailure::Other(Error::db("starting the transaction", error)),
            Role::Guard(previous) => TxFailure::Other(Error::db(
                format!(
                    "checking that migration {previous}, sent before in the same round trip, \
                     committed (its history row is missing although it reported no error)"
                ),
                error,
            )),
            Role::Record => TxFailure::Other(Error::db("recording in the history", error)),
            Role::Commit => TxFailure::Other(Error::db("committing", error)),
        });
    }
    None
}

fn applied_params(row: &NewRow) -> Vec<Param> {
    vec![
        Param::Text(row.version.to_string()),
        Param::Text(row.name.clone()),
        Param::Text(row.checksum.to_string()),
        Param::Text(row.chain.to_string()),
        Param::Int4(i32::try_from(row.statements_total).unwrap_or(i32::MAX)),
        Param::Text(row.applied_by.clone()),
    ]
}

fn get<'r, T: postgres_types::FromSql<'r>>(row: &'r Row, i: usize) -> Result<T, Error> {
    row.try_get(i)
        .map_err(|e| Error::History(format!("unexpected column {i}: {e}")))
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
fn is_creation_race(e: &DbError) -> bool {
    e.is("23505") || e.is("42P06") || e.is("42P07") || e.is("42710")
}

impl<C: PgConn> Backend for PgBackend<C> {
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
        self.ensure_schema().await?;
        let create = self.sql.lease_create.clone();
        if let Err(e) = self.one(Op::Simple(&create)).await {
            if !is_creation_race(&e) {
                return Err(Error::db("creating the lease table", e));
            }
        }
        let sql = self.sql.lease_try.clone();
        let rows = self
            .bookkeeping(
                "taking the lease",
                &sql,
                vec![
                    Param::Text(owner.to_owned()),
                    Param::Float8(ttl.as_secs_f64()),
                ],
            )
            .await;
        let rows = match rows {
            // Two first-comers inserting at once: the loser retries.
            Err(e) if e.sqlstate() == Some("23505") => Vec::new(),
            other => other?,
        };
        if !rows.is_empty() {
            return Ok(Ok(()));
        }
        let sql = self.sql.lease_holder.clone();
        let rows = self.bookkeeping("reading the lease", &sql, vec![]).await?;
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
        let sql = self.sql.lease_renew.clone();
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
        let sql = self.sql.lease_release.clone();
        self.bookkeeping(
            "releasing the lease",
            &sql,
            vec![Param::Text(owner.to_owned())],
        )
        .await
        .map(drop)
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

    async fn transaction(&mut self, items: &[TxItem<'_>]) -> Result<(), TxFailure> {
        self.transaction_retried(items, false).await
    }

    async fn transaction_async_commit(&mut self, items: &[TxItem<'_>]) -> Result<(), TxFailure> {
        self.transaction_retried(items, true).await
    }

    fn window_limit(&self) -> usize {
        // Only a driver that sends requests before reading replies gains anything; CockroachDB
        // never gets here (its migrations run statement by statement), but stays out anyway.
        if self.conn.pipelines() && !self.cockroach {
            WINDOW_LIMIT
        } else {
            1
        }
    }

    async fn transaction_window(&mut self, txs: &[WindowTx<'_>]) -> Result<(), WindowFailure> {
        if txs.len() > 1 && self.window_limit() > 1 {
            return self.window_once(txs).await;
        }
        // One by one, as `Backend::transaction_window`'s default does.
        for (index, tx) in txs.iter().enumerate() {
            let items = std::slice::from_ref(&tx.item);
            self.transaction_retried(items, tx.async_commit)
                .await
                .map_err(|failure| WindowFailure { index, failure })?;
        }
        Ok(())
    }

    async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        let mut attempt = 0;
        loop {
            match self.one(Op::Simple(sql)).await {
                // A statement that failed with 40001 did not take effect: run it again.
                Err(e) if self.cockroach && is_retryable(&e) && attempt < RETRIES => {
                    attempt += 1;
                    self.conn.sleep(Duration::from_millis(20 << attempt)).await;
                }
                other => return other.map(drop),
            }
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

    async fn sleep(&mut self, duration: Duration) {
        self.conn.sleep(duration).await;
    }

    async fn foreign_tables(&mut self) -> Result<Vec<ForeignTable>, Error> {
        let rows = self
            .query(sql::FOREIGN_TABLES, vec![])
            .await
            .map_err(|e| Error::db("looking for other migration tools' tables", e))?;
        let mut found = Vec::new();
        for row in &rows {
            let schema: String = get(row, 0)?;
            let table: String = get(row, 1)?;
            let columns: Vec<String> = get(row, 2)?;
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            found.extend(ForeignTable::identify(&schema, &table, &columns));
        }
        Ok(found)
    }

    async fn read_foreign(&mut self, table: &ForeignTable) -> Result<ForeignHistory, Error> {
        let Some(tool) = table.tool else {
            return Err(Error::Adopt(AdoptError::UnknownTool {
                table: table.to_string(),
            }));
        };
        let text = sql::read_foreign(tool, &table.schema, &table.table);
        let rows = self
            .query(&text, vec![])
            .await
            .map_err(|e| Error::db(format!("reading {tool}'s history {}", table.qualified()), e))?;
        let context = |e: Error| match e {
            Error::History(m) => {
                Error::History(format!("{tool}'s table {}: {m}", table.qualified()))
            }
            other => other,
        };
        let history = match tool {
            Tool::GolangMigrate => ForeignHistory::GolangMigrate(match rows.first() {
                Some(row) => Some((get(row, 0)?, get(row, 1)?)),
                None => None,
            }),
            Tool::Goose => ForeignHistory::Goose(
                rows.iter()
                    .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?)))
                    .collect::<Result<_, Error>>()
                    .map_err(context)?,
            ),
            Tool::Sqlx => ForeignHistory::Sqlx(
                rows.iter()
                    .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?, get(r, 3)?)))
                    .collect::<Result<_, Error>>()
                    .map_err(context)?,
            ),
            Tool::Refinery => ForeignHistory::Refinery(
                rows.iter()
                    .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?)))
                    .collect::<Result<_, Error>>()
                    .map_err(context)?,
            ),
            Tool::Diesel => ForeignHistory::Diesel(
                rows.iter()
                    .map(|r| get(r, 0))
                    .collect::<Result<_, Error>>()
                    .map_err(context)?,
            ),
            Tool::Flyway => ForeignHistory::Flyway(
                rows.iter()
                    .map(|r| {
                        Ok((
                            get(r, 0)?,
                            get(r, 1)?,
                            get(r, 2)?,
                            get(r, 3)?,
                            get(r, 4)?,
                            get(r, 5)?,
                        ))
                    })
                    .collect::<Result<_, Error>>()
                    .map_err(context)?,
            ),
        };
        Ok(history)
    }
}

impl<C: PgConn> PgBackend<C> {
    async fn transaction_retried(
        &mut self,
        items: &[TxItem<'_>],
        async_commit: bool,
    ) -> Result<(), TxFailure> {
        let mut attempt = 0;
        loop {
            match self.transaction_once(items, async_commit).await {
                // Only bookkeeping transactions (no body) are replayed: replaying a body is the
                // runner's decision, not the driver's.
                Err(TxFailure::Other(e))
                    if self.cockroach
                        && e.sqlstate() == Some("40001")
                        && items.iter().all(|i| i.body.is_none())
                        && attempt < RETRIES =>
                {
                    attempt += 1;
                    self.conn.sleep(Duration::from_millis(20 << attempt)).await;
                }
                other => return other,
            }
        }
    }
}

impl<C: PgConn> PgBackend<C> {
    /// Makes `<table>_count` exist and, where triggers can keep it, kept (see
    /// `sql::counter_install`); recounts a kept one that drifted (rows written with triggers
    /// disabled). The count only speeds the fast path up: when it cannot be installed the run
    /// goes on, with a warning, and the fast path counts the rows itself.
    async fn ensure_counter(&mut self, counted: bool, kept: bool) {
        if kept {
            let recount = self.sql.recount.clone();
            if let Err(e) = self.one(Op::Simple(&recount)).await {
                let _ = self.one(Op::Simple("ROLLBACK")).await;
                tracing::warn!(error = %e, "could not recount {}", self.sql.count_table);
            }
            return;
        }
        if !self.cockroach {
            let install = sql::counter_install(&self.schema, &self.table);
            match self.one(Op::Simple(&install)).await {
                Ok(_) => {
                    tracing::debug!(table = %self.sql.count_table, "history row count installed");
                    return;
                }
                Err(e) => {
                    let _ = self.one(Op::Simple("ROLLBACK")).await;
                    tracing::warn!(
                        error = %e,
                        "could not install the trigger that keeps {} (the fast path counts the \
                         rows instead, which costs more with many migrations); run Preflight \
                         once as the history table's owner to install it",
                        self.sql.count_table
                    );
                }
            }
        }
        // CockroachDB (no triggers here) or no privilege: the marker row `-1` tells the fast
        // path to count, in its single query.
        if !counted {
            let marker = self.sql.counter_marker.clone();
            if let Err(e) = self.one(Op::Simple(&marker)).await {
                if !is_creation_race(&e) {
                    tracing::warn!(error = %e, "could not create {}", self.sql.count_table);
                }
            }
        }
    }

    async fn ensure_schema(&mut self) -> Result<(), Error> {
        if let Some(create) = self.sql.create_schema.clone() {
            if let Err(e) = self.one(Op::Simple(&create)).await {
                if !is_creation_race(&e) {
                    return Err(Error::db("creating the schema", e));
                }
            }
        }
        Ok(())
    }

    /// Reads the history without a lock; an absent table is an empty history.
    pub(crate) async fn history(&mut self) -> Result<Vec<HistoryRow>, Error> {
        let sql = self.sql.read.clone();
        match self.query(&sql, vec![]).await {
            Err(e) if is_missing_table(&e) => Ok(Vec::new()),
            Err(e) => Err(Error::db("reading the history", e)),
            Ok(rows) => rows.iter().map(parse_row).collect(),
        }
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

    #[test]
    fn classifies_retries() {
        let serialization = DbError {
            code: Some("40001".into()),
            message: "restart transaction: TransactionRetryWithProtoRefreshError".into(),
            ..DbError::default()
        };
        assert!(is_retryable(&serialization));
        assert!(!is_retryable(&DbError {
            code: Some("40P01".into()),
            ..DbError::default()
        }));
        assert!(!is_retryable(&DbError::other("connection closed")));
    }

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

    /// A connection that plays the server's part in a pipeline: a failed request aborts its
    /// transaction (later requests fail with 25P02 until `COMMIT`, which then rolls back), and
    /// the pipelining guard fails unless its version was committed.
    #[derive(Default)]
    struct Scripted {
        pipelines: usize,
        guards: Vec<String>,
        committed: Vec<String>,
    }

    impl PgConn for Scripted {
        async fn pipeline(&mut self, ops: &[Op<'_>]) -> Vec<Result<Vec<Row>, DbError>> {
            self.pipelines += 1;
            let code = |c: &str| DbError {
                code: Some(c.into()),
                ..DbError::default()
            };
            let (mut aborted, mut pending) = (false, Vec::new());
            let mut results = Vec::new();
            for op in ops {
                let (text, first) = match op {
                    Op::Simple(t) => (*t, None),
                    Op::Query(t, params) => match params.first() {
                        Some(Param::Text(v)) => (*t, Some(v.clone())),
                        _ => (*t, None),
                    },
                };
                if text == "COMMIT" {
                    if !aborted {
                        self.committed.append(&mut pending);
                    }
                    pending.clear();
                    aborted = false;
                    results.push(Ok(Vec::new()));
                    continue;
                }
                if aborted {
                    results.push(Err(code("25P02")));
                    continue;
                }
                let failure = if text.starts_with("SELECT 1 / count(*)") {
                    let previous = first.unwrap_or_default();
                    let missing = !self.committed.contains(&previous);
                    self.guards.push(previous);
                    missing.then(|| code("22012"))
                } else if text.contains("nope") {
                    Some(code("42P01"))
                } else {
                    if text.starts_with("INSERT INTO") {
                        pending.extend(first);
                    }
                    None
                };
                aborted = failure.is_some();
                results.push(failure.map_or(Ok(Vec::new()), Err));
            }
            results
        }

        async fn sleep(&mut self, _duration: Duration) {}

        fn pipelines(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_window_is_one_pipeline_and_stops_committing_at_the_first_failure() {
        let specs = (1..=5u64)
            .map(|n| {
                let body = if n == 3 {
                    "SELECT * FROM nope;".to_owned()
                } else {
                    format!("CREATE TABLE t{n} (id int);")
                };
                crate::MigrationSpec::new(n, &format!("t{n}"), &body)
            })
            .collect();
        let set = crate::Migrations::from_specs(specs).unwrap();
        let migrations: Vec<_> = set.iter().collect();
        let txs: Vec<WindowTx<'_>> = migrations
            .iter()
            .enumerate()
            .map(|(j, m)| WindowTx {
                item: TxItem {
                    body: m.up().script(),
                    record: Record::Insert(NewRow::of(m, "test")),
                    log: None,
                },
                async_commit: j + 1 < migrations.len(),
                after: j.checked_sub(1).map(|p| migrations[p].version()),
            })
            .collect();
        let mut backend = PgBackend::new(Scripted::default(), &Config::default());
        assert_eq!(backend.window_limit(), WINDOW_LIMIT);
        let failure = futures_executor::block_on(backend.transaction_window(&txs)).unwrap_err();
        // Migration 3 (index 2) is the cause, with its body's error, not a guard's.
        assert_eq!(failure.index, 2);
        match failure.failure {
            TxFailure::Body { index: 0, error } => assert_eq!(error.code.as_deref(), Some("42P01")),
            other => panic!("expected the body's failure, got {other:?}"),
        }
        let conn = &backend.conn;
        assert_eq!(conn.pipelines, 1, "the whole window in one round trip");
        assert_eq!(
            conn.guards,
            ["1", "2", "3", "4"],
            "each guarded by its predecessor"
        );
        assert_eq!(
            conn.committed,
            ["1", "2"],
            "nothing after the failure committed"
        );

        // CockroachDB never gets windows, whatever the driver.
        let mut one_by_one = PgBackend::new(Scripted::default(), &Config::default());
        one_by_one.cockroach = true;
        assert_eq!(one_by_one.window_limit(), 1);
    }

    #[test]
    fn a_guard_failing_first_names_the_predecessor() {
        let roles = [Role::Setup, Role::Guard(Version::new(41)), Role::Body(0)];
        let results = vec![
            Ok(Vec::new()),
            Err(DbError {
                code: Some("22012".into()),
                ..DbError::default()
            }),
            Err(DbError::other("25P02")),
        ];
        match first_failure(&roles, results) {
            Some(TxFailure::Other(e)) => {
                assert!(e.to_string().contains("migration 41"), "{e}");
                assert_eq!(e.sqlstate(), Some("22012"));
            }
            other => panic!("{other:?}"),
        }
        assert!(first_failure(&roles, (0..3).map(|_| Ok(Vec::new())).collect()).is_none());
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

mod api {
    //! The public entry points on [`Runner`] and [`Migrations`].

    #[cfg(feature = "tokio-postgres")]
    use super::async_client::AsyncConn;
    #[cfg(feature = "postgres")]
    use super::sync_client::SyncConn;
    use super::PgBackend;
    use crate::adopt::{Adopted, ForeignTable};
    use crate::backend::Backend;
    use crate::error::Error;
    use crate::history::HistoryRow;
    use crate::plan::Revert;
    use crate::report::Report;
    use crate::runner::{self, Repair, Runner, Work};
    use crate::Migrations;

    #[cfg(feature = "postgres")]
    impl Runner<'_> {
        /// Migrates through a sync `postgres` client: the fast path (one query) when the
        /// database is current, otherwise lock, plan, apply, record, unlock. Three round trips
        /// per migration applied.
        ///
        /// ```no_run
        /// # use preflight_runtime::{MigrationSpec, Migrations};
        /// # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "init", "CREATE TABLE t (id int);")]).unwrap();
        /// let mut client = postgres::Client::connect("postgres://app@localhost/app", postgres::NoTls)?;
        /// let report = migrations.runner().run(&mut client)?;
        /// assert!(report.fast_path || report.lock_taken);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn run(&self, client: &mut postgres::Client) -> Result<Report, Error> {
            self.sync(client, Work::Migrate)
        }

        /// Reverts applied migrations (newest first, each in a transaction with its history row
        /// removed). Refuses before touching anything when one in the range has no down body.
        pub fn revert(
            &self,
            client: &mut postgres::Client,
            revert: Revert,
        ) -> Result<Report, Error> {
            self.sync(client, Work::Revert(revert))
        }

        /// Repairs the history under the lock, recorded in `<table>_log`.
        pub fn repair(
            &self,
            client: &mut postgres::Client,
            repair: Repair,
        ) -> Result<Report, Error> {
            self.sync(client, Work::Repair(repair))
        }

        /// Reads the history (no lock; empty when the table does not exist yet).
        pub fn history(&self, client: &mut postgres::Client) -> Result<Vec<HistoryRow>, Error> {
            self.cfg.validate()?;
            let mut backend = PgBackend::new(SyncConn(client), &self.cfg);
            futures_executor::block_on(backend.history())
        }

        /// Takes another tool's history over, explicitly, and applies nothing: under the lock,
        /// while Preflight's history is empty, records the versions the tool chosen by
        /// [`Runner::adopt`] (default: whichever is found) applied, in one transaction. Refuses,
        /// untouched, when there is nothing to adopt or it cannot be adopted
        /// ([`Error::Adopt`]). With a non-empty history nothing happens and
        /// [`Report::adopted`] is `None`.
        pub fn adopt_history(&self, client: &mut postgres::Client) -> Result<Report, Error> {
            self.sync(client, Work::Adopt)
        }

        /// What [`Runner::adopt_history`] would record, read without the lock and without
        /// writing anything.
        pub fn preview_adoption(&self, client: &mut postgres::Client) -> Result<Adopted, Error> {
            let mut backend = PgBackend::new(SyncConn(client), &self.cfg);
            futures_executor::block_on(runner::preview_adoption(
                &mut backend,
                self.set,
                &self.cfg,
                self.cfg.adopt,
            ))
        }

        /// Other migration tools' history tables in the database.
        pub fn foreign_tables(
            &self,
            client: &mut postgres::Client,
        ) -> Result<Vec<ForeignTable>, Error> {
            let mut backend = PgBackend::new(SyncConn(client), &self.cfg);
            futures_executor::block_on(backend.foreign_tables())
        }

        fn sync(&self, client: &mut postgres::Client, work: Work) -> Result<Report, Error> {
            let mut backend = PgBackend::new(SyncConn(client), &self.cfg);
            futures_executor::block_on(runner::run(&mut backend, self.set, &self.cfg, work))
        }
    }

    #[cfg(feature = "tokio-postgres")]
    impl Runner<'_> {
        /// Migrates through a `tokio-postgres` client: the fast path (one query) when the
        /// database is current, otherwise lock, plan, apply, record, unlock. Consecutive
        /// transactional migrations are sent in windows of up to 64, one round trip each, every
        /// migration still in its own transaction (see "Pipelining" on [`Runner`]);
        /// no-transaction migrations run statement by statement.
        ///
        /// ```no_run
        /// # use preflight_runtime::{MigrationSpec, Migrations};
        /// # async fn f(migrations: &Migrations) -> Result<(), Box<dyn std::error::Error>> {
        /// let (mut client, connection) =
        ///     tokio_postgres::connect("postgres://app@localhost/app", tokio_postgres::NoTls).await?;
        /// tokio::spawn(connection);
        /// let report = migrations.runner().out_of_order(true).run_async(&mut client).await?;
        /// println!("{:?}", report.applied_versions());
        /// # Ok(()) }
        /// ```
        pub async fn run_async(
            &self,
            client: &mut tokio_postgres::Client,
        ) -> Result<Report, Error> {
            self.async_work(client, Work::Migrate).await
        }

        /// Async [`Runner::revert`].
        pub async fn revert_async(
            &self,
            client: &mut tokio_postgres::Client,
            revert: Revert,
        ) -> Result<Report, Error> {
            self.async_work(client, Work::Revert(revert)).await
        }

        /// Async [`Runner::repair`].
        pub async fn repair_async(
            &self,
            client: &mut tokio_postgres::Client,
            repair: Repair,
        ) -> Result<Report, Error> {
            self.async_work(client, Work::Repair(repair)).await
        }

        /// Async [`Runner::history`].
        pub async fn history_async(
            &self,
            client: &mut tokio_postgres::Client,
        ) -> Result<Vec<HistoryRow>, Error> {
            self.cfg.validate()?;
            PgBackend::new(AsyncConn::new(client), &self.cfg)
                .history()
                .await
        }

        /// Async [`Runner::adopt_history`].
        pub async fn adopt_history_async(
            &self,
            client: &mut tokio_postgres::Client,
        ) -> Result<Report, Error> {
            self.async_work(client, Work::Adopt).await
        }

        /// Async [`Runner::preview_adoption`].
        pub async fn preview_adoption_async(
            &self,
            client: &mut tokio_postgres::Client,
        ) -> Result<Adopted, Error> {
            let mut backend = PgBackend::new(AsyncConn::new(client), &self.cfg);
            runner::preview_adoption(&mut backend, self.set, &self.cfg, self.cfg.adopt).await
        }

        /// Async [`Runner::foreign_tables`].
        pub async fn foreign_tables_async(
            &self,
            client: &mut tokio_postgres::Client,
        ) -> Result<Vec<ForeignTable>, Error> {
            PgBackend::new(AsyncConn::new(client), &self.cfg)
                .foreign_tables()
                .await
        }

        async fn async_work(
            &self,
            client: &mut tokio_postgres::Client,
            work: Work,
        ) -> Result<Report, Error> {
            let mut backend = PgBackend::new(AsyncConn::new(client), &self.cfg);
            runner::run(&mut backend, self.set, &self.cfg, work).await
        }
    }

    impl Migrations {
        /// Migrates with the default settings through a sync `postgres` client
        /// (see [`Runner::run`]).
        ///
        /// ```no_run
        /// # use preflight_runtime::{MigrationSpec, Migrations};
        /// # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "init", "CREATE TABLE t (id int);")]).unwrap();
        /// let mut client = postgres::Client::connect("postgres://app@localhost/app", postgres::NoTls)?;
        /// migrations.run(&mut client)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[cfg(feature = "postgres")]
        pub fn run(&self, client: &mut postgres::Client) -> Result<Report, Error> {
            self.runner().run(client)
        }

        /// Migrates with the default settings through a `tokio-postgres` client
        /// (see [`Runner::run_async`]).
        #[cfg(feature = "tokio-postgres")]
        pub async fn run_async(
            &self,
            client: &mut tokio_postgres::Client,
        ) -> Result<Report, Error> {
            self.runner().run_async(client).await
        }
    }
}
