//! Bounded retries of a migration that could not take a table lock within its lock timeout
//! (SQLSTATE 55P03 `lock_not_available`; `SQLITE_BUSY` on SQLite), with back-off and jitter,
//! and the error naming the blocking session when they run out (see [`crate::blocked`]).
//! Nothing else is retried: any other failure is the migration's own.

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::blocked::Blocked;
use crate::error::{DbError, Error, MigrationError};
use crate::history::Key;
use crate::lock::Backoff;
use crate::report::Warning;
use crate::timeout::Timeout;
use crate::Migration;

use super::context::Ctx;
use super::Config;

/// The longest delay between two attempts of a blocked migration (before jitter).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The retries of the migration being applied; [`Retry::done`] starts afresh for the next.
pub(super) struct Retry {
    /// The migration being tried, and the statement for a no-transaction one.
    key: Option<(Key, Option<u32>)>,
    failed: u32,
    first: Option<Instant>,
    last: Instant,
    backoff: Backoff,
    first_delay: Duration,
}

/// The lock timeout a migration body runs under (`None`: the server's own setting).
pub(super) fn lock_timeout(m: &Migration, down: bool, cfg: &Config) -> Option<Timeout> {
    let body = if down { m.down() } else { Some(m.up()) };
    body.and_then(|b| b.timeouts().lock)
        .or(cfg.sql_lock_timeout)
}

/// The server error behind `error` when it says a lock was not available.
fn lock_unavailable(error: &Error) -> Option<&DbError> {
    let source = match error {
        Error::Migration(m) => &m.source,
        Error::Database { source, .. } => source,
        _ => return None,
    };
    let busy = ["55P03", "SQLITE_BUSY", "SQLITE_LOCKED"];
    busy.iter().any(|c| source.is(c)).then_some(source)
}

impl Retry {
    pub fn new(cfg: &Config) -> Retry {
        Retry {
            key: None,
            failed: 0,
            first: None,
            last: Instant::now(),
            backoff: Backoff::between(cfg.lock_retry_delay, MAX_RETRY_DELAY, Backoff::seed()),
            first_delay: cfg.lock_retry_delay,
        }
    }

    /// Marks the start of an attempt at migration `key` (at `statement`, for a
    /// no-transaction one, whose statements are retried one by one).
    pub fn attempt(&mut self, key: Key, statement: Option<u32>) {
        let key = Some((key, statement));
        if self.key != key {
            self.done(None);
            self.key = key;
        }
        self.last = Instant::now();
        self.first.get_or_insert(self.last);
    }

    /// The migration being tried committed (or the run moves past it): a warning when it
    /// needed retries, and the next migration starts with a fresh count.
    pub fn done(&mut self, ctx: Option<&mut Ctx<'_>>) {
        if let (Some((key, _)), Some(ctx)) = (self.key.take(), ctx) {
            if self.failed > 0 {
                ctx.warn(Warning::LockRetried {
                    set: ctx.label(&key.set),
                    version: key.version,
                    attempts: self.failed + 1,
                    waited: self.first.map_or(Duration::ZERO, |f| f.elapsed()),
                });
            }
        }
        self.key = None;
        self.failed = 0;
        self.first = None;
        self.backoff = Backoff::between(self.first_delay, MAX_RETRY_DELAY, Backoff::seed());
    }

    /// After the attempt at `m` failed with `error`: `Ok` once the back-off has passed when
    /// it was blocked by a lock and may be tried again. Otherwise the error to report: when
    /// the retries ran out, [`Error::Blocked`] naming the sessions that held locks since
    /// before the last attempt; any other failure unchanged. `progress` (no-transaction):
    /// `(done, total)` statements. `m` is a migration of set `set`.
    #[allow(clippy::too_many_arguments)]
    pub async fn after_failure<B: Backend>(
        &mut self,
        b: &mut B,
        error: Error,
        set: &str,
        m: &Migration,
        down: bool,
        progress: Option<(u32, u32)>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Error> {
        let Some(source) = lock_unavailable(&error).cloned() else {
            return Err(error);
        };
        if self.failed < ctx.cfg.lock_retries {
            self.failed += 1;
            let delay = self.backoff.delay(Duration::MAX);
            tracing::warn!(
                version = %m.version(),
                attempt = self.failed,
                retry_in_ms = delay.as_millis() as u64,
                "migration blocked by a lock held by another session; trying again"
            );
            ctx.guard.renew_if_due(b).await?;
            b.sleep(delay).await;
            ctx.guard.renew_if_due(b).await?;
            return Ok(());
        }
        let blockers = b
            .lock_blockers(self.last.elapsed())
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not read which sessions hold locks");
                Vec::new()
            });
        let statement = match &error {
            Error::Migration(e) => e.statement,
            _ => progress.map(|(done, _)| done as usize),
        };
        let mut blocked = Blocked {
            migration: MigrationError::new(ctx.label(set), m, down, statement, source),
            attempts: self.failed + 1,
            waited: self.first.map_or(Duration::ZERO, |f| f.elapsed()),
            lock_timeout: lock_timeout(m, down, ctx.cfg),
            tables: Vec::new(),
            blockers,
            progress,
        };
        let body = if down { m.down() } else { Some(m.up()) };
        let text = body.map_or(String::new(), |body| match statement {
            Some(i) => body.statements().nth(i).unwrap_or_default().to_owned(),
            None => body.statements().collect::<Vec<_>>().join("\n"),
        });
        blocked.name_tables(&text);
        let error = Error::Blocked(Box::new(blocked));
        tracing::error!("{error}");
        self.done(None);
        Err(error)
    }
}
