//! Migration transactions: each one's requests (`BEGIN`, the script, the history record,
//! `COMMIT`) sent as one pipeline, and several of them as one pipelined window.

use tokio_postgres::Row;

use crate::backend::{Apply, PreviousTimeouts, Record, TxFailure, TxItem, WindowFailure, WindowTx};
use crate::error::{DbError, Error};
use crate::history::{Key, NewRow};
use crate::timeout::Timeouts;

use super::retry::retried;
use super::sql::{self, Sql};
use super::wire::{get, Op, Param, PgConn};
use super::PgBackend;

/// The most migration transactions sent in one round trip: enough that the round trip is
/// spread over many migrations, few enough that the requests and replies of a window stay
/// small in memory.
const WINDOW_LIMIT: usize = 64;

impl<C: PgConn> Apply for PgBackend<C> {
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
        // One by one, as `Apply::transaction_window`'s default does.
        for (index, tx) in txs.iter().enumerate() {
            let items = std::slice::from_ref(&tx.item);
            self.transaction_retried(items, tx.async_commit)
                .await
                .map_err(|failure| WindowFailure { index, failure })?;
        }
        Ok(())
    }

    async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.statement(sql).await
    }

    async fn set_timeouts(&mut self, timeouts: Timeouts) -> Result<PreviousTimeouts, Error> {
        let mut previous = PreviousTimeouts::default();
        for (name, value) in [
            ("lock_timeout", timeouts.lock),
            ("statement_timeout", timeouts.statement),
        ] {
            let Some(value) = value else { continue };
            // Read and set in one statement: the subquery runs first (`OFFSET 0` keeps it
            // from being merged into the outer select).
            let rows = self
                .query(
                    sql::SWAP_SETTING,
                    vec![
                        Param::Text(name.to_owned()),
                        Param::Text(value.server_value()),
                    ],
                )
                .await
                .map_err(|e| Error::db(format!("setting {name}"), e))?;
            let before: String = match rows.first() {
                Some(row) => get(row, 0)?,
                None => continue,
            };
            previous.0.push((name, before));
        }
        Ok(previous)
    }

    async fn restore_timeouts(&mut self, previous: PreviousTimeouts) -> Result<(), Error> {
        for (name, value) in previous.0 {
            self.query(
                sql::SET_CONFIG,
                vec![
                    Param::Text(name.to_owned()),
                    Param::Text(value),
                    Param::Bool(false),
                ],
            )
            .await
            .map_err(|e| Error::db(format!("restoring {name}"), e))?;
        }
        Ok(())
    }
}

impl<C: PgConn> PgBackend<C> {
    fn record_op<'s>(sql: &'s Sql, record: &Record) -> Op<'s> {
        let key = |key: &Key| {
            vec![
                Param::Text(key.set.clone()),
                Param::Text(key.version.to_string()),
            ]
        };
        let chain =
            |c: &Option<crate::Checksum>| Param::Text(c.map(|c| c.to_string()).unwrap_or_default());
        match record {
            Record::Insert(row) => Op::Query(&sql.insert_applied, applied_params(row)),
            Record::Upsert(row) => Op::Query(&sql.upsert_applied, applied_params(row)),
            Record::Delete(k) => Op::Query(&sql.delete, key(k)),
            Record::SetChecksum {
                key: k,
                checksum,
                chain: c,
            } => {
                let mut params = key(k);
                params.extend([Param::Text(checksum.to_string()), chain(c)]);
                Op::Query(&sql.set_checksum, params)
            }
            Record::SetChain { key: k, chain: c } => {
                let mut params = key(k);
                params.push(chain(c));
                Op::Query(&sql.set_chain, params)
            }
        }
    }

    fn note_op<'s>(sql: &'s Sql, key: &Key, note: &str) -> Op<'s> {
        Op::Query(
            &sql.note,
            vec![
                Param::Text(key.set.clone()),
                Param::Text(key.version.to_string()),
                Param::Text(note.to_owned()),
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
        after: Option<&Key>,
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
                vec![
                    Param::Text(previous.set.clone()),
                    Param::Text(previous.version.to_string()),
                ],
            ));
            roles.push(Role::Guard(previous.version));
        }
        // Each body under its own limits (`SET LOCAL`); in a group, changed only where the
        // next body's differ, and back to the session's value (`RESET`) where it has none.
        let mut current = Timeouts::NONE;
        for (i, item) in items.iter().enumerate() {
            if item.body.is_some() {
                for (name, want, have) in [
                    ("lock_timeout", item.timeouts.lock, &mut current.lock),
                    (
                        "statement_timeout",
                        item.timeouts.statement,
                        &mut current.statement,
                    ),
                ] {
                    if want == *have {
                        continue;
                    }
                    match want {
                        Some(t) => ops.push(Op::Query(
                            sql::SET_CONFIG,
                            vec![
                                Param::Text(name.to_owned()),
                                Param::Text(t.server_value()),
                                Param::Bool(true),
                            ],
                        )),
                        None => ops.push(Op::Simple(if name == "lock_timeout" {
                            "RESET lock_timeout"
                        } else {
                            "RESET statement_timeout"
                        })),
                    }
                    roles.push(Role::Setup);
                    *have = want;
                }
            }
            if let Some(body) = item.body {
                ops.push(Op::Simple(body));
                roles.push(Role::Body(i));
            }
            ops.push(Self::record_op(sql, &item.record));
            roles.push(Role::Record);
            if let Some(note) = &item.note {
                ops.push(Self::note_op(sql, item.record.key(), note));
                roles.push(Role::Record);
            }
        }
        ops.push(Op::Simple("COMMIT"));
        roles.push(Role::Commit);
    }

    /// One transaction (see [`PgBackend::push_transaction`]). A bookkeeping transaction (no
    /// body) is retried on a serialization failure; replaying a body is the runner's
    /// decision, not the driver's.
    pub(super) async fn transaction_retried(
        &mut self,
        items: &[TxItem<'_>],
        async_commit: bool,
    ) -> Result<(), TxFailure> {
        let mut ops = Vec::new();
        let mut roles = Vec::new();
        self.push_transaction(&self.sql, &mut ops, &mut roles, items, async_commit, None);
        let bookkeeping = items.iter().all(|i| i.body.is_none());
        retried(
            &mut self.conn,
            self.cockroach,
            &ops,
            |results| first_failure(&roles, results).map_or(Ok(()), Err),
            |outcome| {
                bookkeeping
                    && matches!(outcome, Err(TxFailure::Other(e)) if e.sqlstate() == Some("40001"))
            },
        )
        .await
    }

    /// Several transactions in one pipeline (see [`Apply::transaction_window`]).
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
                tx.after.as_ref(),
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
    Guard(crate::Version),
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
        Param::Text(row.key.set.clone()),
        Param::Text(row.key.version.to_string()),
        Param::Text(row.ord()),
        Param::Text(row.name.clone()),
        Param::Text(row.checksum.to_string()),
        Param::Text(row.chain_text()),
        Param::Int4(i32::try_from(row.statements_total).unwrap_or(i32::MAX)),
        Param::Text(row.applied_by.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runner::Config;

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
                // Preflight's own requests start with the set and the version.
                let (text, first) = match op {
                    Op::Simple(t) => (*t, None),
                    Op::Query(t, params) => match params.get(1) {
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
                    record: Record::Insert(NewRow::of("app", m, "test")),
                    note: None,
                    timeouts: Timeouts::NONE,
                },
                async_commit: j + 1 < migrations.len(),
                after: j
                    .checked_sub(1)
                    .map(|p| Key::new("app", migrations[p].version())),
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
        let roles = [
            Role::Setup,
            Role::Guard(crate::Version::new(41)),
            Role::Body(0),
        ];
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
}
