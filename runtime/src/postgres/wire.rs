//! What the two PostgreSQL drivers have in common: requests ([`Op`]) with typed parameters,
//! the one trait each driver implements ([`PgConn`]), and the server's errors.

use std::time::Duration;

use postgres_types::{ToSql, Type};
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::Row;

use crate::backend::ScratchWork;
use crate::drift::Catalog;
use crate::error::{DbError, Error};
use crate::scratch::Scratch;

/// A parameter value, with the type sent to the server (unnamed statements carry explicit
/// types, so no extra round trip asks the server for them).
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    TextArray(Vec<String>),
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
            Param::TextArray(v) => (v, Type::TEXT_ARRAY),
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
    /// Creates a scratch database on `scratch`'s server with this driver, runs `work` on it
    /// and drops it, on every path (see `scratch`).
    async fn on_scratch<W: ScratchWork>(
        &mut self,
        _scratch: &Scratch,
        _work: W,
    ) -> Result<Catalog, Error> {
        Err(Error::Config(
            "this connection cannot open a scratch database".into(),
        ))
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

/// Column `i` of a row Preflight's own query returned.
pub(crate) fn get<'r, T: postgres_types::FromSql<'r>>(row: &'r Row, i: usize) -> Result<T, Error> {
    row.try_get(i)
        .map_err(|e| Error::History(format!("unexpected column {i}: {e}")))
}
