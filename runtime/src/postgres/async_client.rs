//! The async driver: `tokio_postgres::Client`. The requests of a migration are polled together
//! in order, so that tokio-postgres writes them all before the first answer arrives: one round
//! trip for `BEGIN`, the script, the history `INSERT` and `COMMIT` — or for a whole window of
//! migration transactions (see `Backend::transaction_window`).

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use crate::backend::ScratchWork;
use crate::drift::Catalog;
use crate::error::{DbError, Error};
use crate::scratch::Scratch;

use super::scratch::{run_work, with_drop, ScratchDatabase};
use super::wire::{db_error, typed, Op, PgConn};

type Request<'a> = Pin<Box<dyn Future<Output = Result<Vec<Row>, DbError>> + Send + 'a>>;

pub(crate) struct AsyncConn<'c> {
    client: &'c tokio_postgres::Client,
    /// Statements a pipeline repeated (a window sends the guard and the history `INSERT` once
    /// per migration), prepared once as named statements of the session, so that the server
    /// parses and plans them once per run instead of once per migration. Windows only run
    /// under the session's advisory lock (never through a transaction-mode pooler, which would
    /// lose a named statement between transactions).
    prepared: HashMap<String, Statement>,
}

impl<'c> AsyncConn<'c> {
    pub(crate) fn new(client: &'c tokio_postgres::Client) -> AsyncConn<'c> {
        AsyncConn {
            client,
            prepared: HashMap::new(),
        }
    }
}

impl PgConn for AsyncConn<'_> {
    /// Prepares the parameterised requests that `ops` sends more than once. A failure only
    /// leaves them unprepared: they are then sent as before.
    async fn prepare_repeated(&mut self, ops: &[Op<'_>]) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for op in ops {
            if let Op::Query(sql, _) = op {
                *seen.entry(sql).or_default() += 1;
            }
        }
        for op in ops {
            let Op::Query(sql, params) = op else { continue };
            if seen.get(sql).is_some_and(|n| *n > 1) && !self.prepared.contains_key(*sql) {
                let types: Vec<_> = typed(params).into_iter().map(|(_, t)| t).collect();
                if let Ok(statement) = self.client.prepare_typed(sql, &types).await {
                    self.prepared.insert((*sql).to_owned(), statement);
                }
            }
        }
    }

    async fn pipeline(&mut self, ops: &[Op<'_>]) -> Vec<Result<Vec<Row>, DbError>> {
        let client = self.client;
        let prepared = &self.prepared;
        let mut requests: Vec<Option<Request<'_>>> = ops
            .iter()
            .map(|op| -> Option<Request<'_>> {
                Some(match op {
                    Op::Simple(sql) => Box::pin(async move {
                        client
                            .batch_execute(sql)
                            .await
                            .map(|()| Vec::new())
                            .map_err(|e| db_error(&e))
                    }),
                    Op::Query(sql, params) => match prepared.get(*sql) {
                        Some(statement) => Box::pin(async move {
                            let values: Vec<&(dyn ToSql + Sync)> =
                                typed(params).into_iter().map(|(v, _)| v).collect();
                            client
                                .query(statement, &values)
                                .await
                                .map_err(|e| db_error(&e))
                        }),
                        None => Box::pin(async move {
                            let params = typed(params);
                            client
                                .query_typed(sql, &params)
                                .await
                                .map_err(|e| db_error(&e))
                        }),
                    },
                })
            })
            .collect();
        let mut results: Vec<Option<Result<Vec<Row>, DbError>>> =
            ops.iter().map(|_| None).collect();
        // Each request is written to the connection when first polled: one pass in index order
        // (unlike `join_all` over many futures) sends them all, in our order, before any reply
        // is awaited.
        poll_fn(|cx| {
            for (request, result) in requests.iter_mut().zip(results.iter_mut()) {
                if let Some(r) = request {
                    if let Poll::Ready(r) = r.as_mut().poll(cx) {
                        *result = Some(r);
                        *request = None;
                    }
                }
            }
            Poll::Ready(())
        })
        .await;
        // The server answers in order: awaiting the requests one after the other costs no extra
        // round trip, and unlike re-polling every pending request at each wake-up (quadratic in
        // a window of many migrations) polls each reply once.
        for (request, result) in requests.iter_mut().zip(results.iter_mut()) {
            if let Some(r) = request.take() {
                *result = Some(r.await);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(DbError::other("request not completed"))))
            .collect()
    }

    async fn sleep(&mut self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn pipelines(&self) -> bool {
        true
    }

    async fn on_scratch<W: ScratchWork>(
        &mut self,
        scratch: &Scratch,
        work: W,
    ) -> Result<Catalog, Error> {
        let server = scratch.postgres_server();
        let connecting = |e| {
            Error::db(
                format!("connecting to the scratch {}", server.describe()),
                e,
            )
        };
        let admin = server.connect(None).await.map_err(connecting)?;
        let db = ScratchDatabase::create(&mut AsyncConn::new(&admin)).await?;
        // No `?` until the database is dropped.
        let built = match server.connect(Some(db.name())).await {
            Ok(client) => run_work(AsyncConn::new(&client), work).await,
            Err(e) => Err(connecting(e)),
        };
        let dropped = db.drop_with(&mut AsyncConn::new(&admin)).await;
        with_drop(built, dropped)
    }
}
