//! The sync driver: `postgres::Client`, blocking calls inside the backend's `async fn`s, driven
//! by `futures_executor::block_on`. Adjacent simple queries travel together (`BEGIN` with the
//! script), so a migration costs three round trips: `BEGIN; <script>`, the history `INSERT`,
//! `COMMIT`. Unlike the async driver, it stops at the first failed request and rolls back.

use std::time::Duration;

use crate::backend::ScratchWork;
use crate::drift::Catalog;
use crate::error::{DbError, Error};
use crate::scratch::Scratch;

use super::scratch::{run_work, with_drop, ScratchDatabase};
use super::wire::{db_error, typed, Op, PgConn};

pub(crate) struct SyncConn<'c>(pub &'c mut postgres::Client);

impl PgConn for SyncConn<'_> {
    async fn pipeline(&mut self, ops: &[Op<'_>]) -> Vec<Result<Vec<postgres::Row>, DbError>> {
        let mut results = Vec::with_capacity(ops.len());
        let mut i = 0;
        while i < ops.len() && !results.iter().any(|r: &Result<_, _>| r.is_err()) {
            match &ops[i] {
                Op::Query(sql, params) => {
                    results.push(
                        self.0
                            .query_typed(sql, &typed(params))
                            .map_err(|e| db_error(&e)),
                    );
                    i += 1;
                }
                Op::Simple(_) => {
                    // Merge the run of simple queries starting here into one round trip.
                    let mut texts = Vec::new();
                    while let Some(Op::Simple(text)) = ops.get(i) {
                        texts.push(*text);
                        i += 1;
                    }
                    results.extend(self.merged(&texts));
                }
            }
        }
        if results.len() < ops.len() {
            // Stop at the first failure, unlike the async driver whose requests are all in
            // flight: the server rejects a merged `BEGIN; <script>` whole when the script does
            // not parse, so `BEGIN` never ran and a following INSERT would commit on its own.
            // Roll back whatever is open (a warning only when nothing is).
            let _ = self.0.batch_execute("ROLLBACK");
            results.resize_with(ops.len(), || {
                Err(DbError::other("not run: an earlier request failed"))
            });
        }
        results
    }

    async fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
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
        let mut admin = server.blocking(None).map_err(connecting)?;
        let db = ScratchDatabase::create(&mut SyncConn(&mut admin)).await?;
        // No `?` until the database is dropped.
        let built = match server.blocking(Some(db.name())) {
            Ok(mut client) => run_work(SyncConn(&mut client), work).await,
            Err(e) => Err(connecting(e)),
        };
        let dropped = db.drop_with(&mut SyncConn(&mut admin)).await;
        with_drop(built, dropped)
    }
}

impl SyncConn<'_> {
    /// Runs several simple queries as one, and splits the outcome back per query: a server
    /// error position tells which one failed (with the position made relative to it),
    /// otherwise the last one is blamed; the ones after a failure did not run.
    fn merged(&mut self, texts: &[&str]) -> Vec<Result<Vec<postgres::Row>, DbError>> {
        if let [one] = texts {
            return vec![self
                .0
                .batch_execute(one)
                .map(|()| Vec::new())
                .map_err(|e| db_error(&e))];
        }
        const SEPARATOR: &str = ";\n";
        let joined = texts.join(SEPARATOR);
        let error = match self.0.batch_execute(&joined) {
            Ok(()) => return texts.iter().map(|_| Ok(Vec::new())).collect(),
            Err(e) => db_error(&e),
        };
        let mut starts = Vec::with_capacity(texts.len());
        let mut chars = 0u32;
        for t in texts {
            starts.push(chars);
            chars += (t.chars().count() + SEPARATOR.len()) as u32;
        }
        let culprit = match error.position {
            Some(p) => starts
                .iter()
                .rposition(|&s| s < p)
                .unwrap_or(texts.len() - 1),
            None => texts.len() - 1,
        };
        let mut error = error;
        if let Some(p) = error.position {
            error.position = Some(p - starts[culprit]);
        }
        (0..texts.len())
            .map(|i| match i.cmp(&culprit) {
                std::cmp::Ordering::Less => Ok(Vec::new()),
                std::cmp::Ordering::Equal => Err(error.clone()),
                std::cmp::Ordering::Greater => {
                    Err(DbError::other("not run: an earlier statement failed"))
                }
            })
            .collect()
    }
}
