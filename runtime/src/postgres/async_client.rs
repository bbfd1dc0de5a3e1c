//! The async driver: `tokio_postgres::Client`. The requests of a migration are polled together
//! in order, so that tokio-postgres writes them all before the first answer arrives: one round
//! trip for `BEGIN`, the script, the history `INSERT` and `COMMIT`.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio_postgres::Row;

use crate::error::DbError;

use super::{db_error, typed, Op, PgConn};

pub(crate) struct AsyncConn<'c>(pub &'c tokio_postgres::Client);

type Request<'a> = Pin<Box<dyn Future<Output = Result<Vec<Row>, DbError>> + Send + 'a>>;

impl PgConn for AsyncConn<'_> {
    async fn pipeline(&mut self, ops: &[Op<'_>]) -> Vec<Result<Vec<Row>, DbError>> {
        let client = self.0;
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
                    Op::Query(sql, params) => Box::pin(async move {
                        let params = typed(params);
                        client
                            .query_typed(sql, &params)
                            .await
                            .map_err(|e| db_error(&e))
                    }),
                })
            })
            .collect();
        let mut results: Vec<Option<Result<Vec<Row>, DbError>>> =
            ops.iter().map(|_| None).collect();
        // Each request is written to the connection when first polled; polling them in index
        // order (unlike `join_all` over many futures) keeps the server's order ours.
        poll_fn(|cx| {
            let mut pending = false;
            for (slot, result) in requests.iter_mut().zip(results.iter_mut()) {
                if let Some(request) = slot {
                    match request.as_mut().poll(cx) {
                        Poll::Ready(r) => {
                            *result = Some(r);
                            *slot = None;
                        }
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(DbError::other("request not completed"))))
            .collect()
    }

    async fn sleep(&mut self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
