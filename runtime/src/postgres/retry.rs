//! CockroachDB's serialization failures (SQLSTATE 40001, which PostgreSQL also uses under
//! SERIALIZABLE): Preflight's own statements, single statements of no-transaction
//! migrations, and bookkeeping transactions are retried with back-off, in one loop
//! ([`retried`]).

use std::time::Duration;

use tokio_postgres::Row;

use crate::error::{DbError, Error};

use super::wire::{Op, Param, PgConn};
use super::PgBackend;

/// How often a statement is retried on 40001.
const RETRIES: usize = 5;

/// Whether an error asks the client to retry the transaction.
pub(super) fn is_retryable(e: &DbError) -> bool {
    e.is("40001")
}

/// Sends `ops` until the outcome is final: on CockroachDB an outcome that `retryable` accepts
/// is tried again, at most [`RETRIES`] times, after 40, 80, ... ms. `outcome` reads the
/// pipeline's results.
pub(super) async fn retried<C: PgConn, T>(
    conn: &mut C,
    cockroach: bool,
    ops: &[Op<'_>],
    outcome: impl Fn(Vec<Result<Vec<Row>, DbError>>) -> T,
    retryable: impl Fn(&T) -> bool,
) -> T {
    let mut attempts = 0;
    loop {
        let result = outcome(conn.pipeline(ops).await);
        if !(cockroach && attempts < RETRIES && retryable(&result)) {
            return result;
        }
        attempts += 1;
        conn.sleep(Duration::from_millis(20 << attempts)).await;
    }
}

/// The result of a single request.
fn single(mut results: Vec<Result<Vec<Row>, DbError>>) -> Result<Vec<Row>, DbError> {
    results
        .pop()
        .unwrap_or_else(|| Err(DbError::other("no result from the driver")))
}

impl<C: PgConn> PgBackend<C> {
    /// One of Preflight's own statements.
    pub(super) async fn bookkeeping(
        &mut self,
        context: &'static str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>, Error> {
        self.one_retried(Op::Query(sql, params))
            .await
            .map_err(|e| Error::db(context, e))
    }

    /// One statement of a migration body, outside a transaction: one that failed with 40001
    /// did not take effect, so running it again is safe.
    pub(super) async fn statement(&mut self, sql: &str) -> Result<(), DbError> {
        self.one_retried(Op::Simple(sql)).await.map(drop)
    }

    async fn one_retried(&mut self, op: Op<'_>) -> Result<Vec<Row>, DbError> {
        let ops = [op];
        retried(
            &mut self.conn,
            self.cockroach,
            &ops,
            single,
            |r| matches!(r, Err(e) if is_retryable(e)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
