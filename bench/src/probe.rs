//! The apply floor that keeps per-migration atomicity: each migration in its own transaction
//! with a history row, all sent before the first reply is read (one round trip for the run),
//! over tokio-postgres simple queries. No lock, no checks, no planning: what a runner that
//! keeps one transaction per migration cannot beat on a single connection.
//!
//! Its values are generated numbers and names written into the SQL text: a measuring probe,
//! not a pattern (Preflight binds them).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::gen::Generated;

/// How the probe commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commits {
    /// `SET LOCAL synchronous_commit = off` in every transaction but the last (Preflight's
    /// default).
    AsyncButLast,
    /// Every commit waits for the WAL flush.
    Synchronous,
}

const HISTORY: &str = "CREATE TABLE IF NOT EXISTS probe_history (version bigint PRIMARY KEY, \
     name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())";

/// Connects to `url` and applies `migrations`, timed from before connecting (closing is not
/// timed). Creates its history table if missing (inside the timed part, as a runner would).
pub async fn apply(
    url: &str,
    migrations: &[Generated],
    commits: Commits,
) -> Result<Duration, String> {
    let start = Instant::now();
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(HISTORY)
        .await
        .map_err(|e| format!("probe history: {e}"))?;
    let last = migrations.len().saturating_sub(1);
    let scripts: Vec<String> = migrations
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let local = if commits == Commits::AsyncButLast && i != last {
                "SET LOCAL synchronous_commit = off;\n"
            } else {
                ""
            };
            format!(
                "BEGIN;\n{local}{}INSERT INTO probe_history (version, name, checksum) VALUES ({}, '{}', '{:064x}');\nCOMMIT;",
                m.sql, m.version, m.name, m.version
            )
        })
        .collect();
    pipelined(&client, &scripts).await?;
    let elapsed = start.elapsed();
    drop(client);
    let _ = driver.await;
    Ok(elapsed)
}

/// Polls every script's request together, in order: tokio-postgres writes each one as soon as
/// it is polled, so all are sent before the first reply is read.
async fn pipelined(client: &tokio_postgres::Client, scripts: &[String]) -> Result<(), String> {
    type Request<'a> = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + 'a>>;
    let mut requests: Vec<Option<Request<'_>>> = scripts
        .iter()
        .map(|s| Some(Box::pin(client.batch_execute(s)) as Request<'_>))
        .collect();
    let mut first_error = None;
    poll_fn(|cx| {
        let mut pending = false;
        for slot in requests.iter_mut() {
            if let Some(request) = slot {
                match request.as_mut().poll(cx) {
                    Poll::Ready(r) => {
                        if let (Err(e), None) = (r, &first_error) {
                            first_error = Some(e.to_string());
                        }
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
    first_error.map_or(Ok(()), Err)
}
