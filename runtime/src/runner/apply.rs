//! Applying migrations: each in a transaction with its history row (sent in pipelined windows
//! where the driver can), all in one transaction (grouped mode), or statement by statement
//! with recorded progress ([`one_by_one`], shared with reverts).

use std::time::{Duration, Instant};

use crate::backend::{Backend, Record, TxFailure, TxItem, WindowTx};
use crate::error::{DbError, Error};
use crate::history::{HistoryRow, NewRow, State};
use crate::plan::{self, Plan, Step};
use crate::report::Applied;
use crate::timeout::Timeouts;
use crate::{Body, Kind, Migration, Migrations, Version};

use super::context::Ctx;
use super::retry::Retry;
use super::unit::{self, UnitFailure};

/// Applies a plan's steps, then refreshes the goal row's chain when another binary wrote it.
pub(super) async fn migrate<B: Backend>(
    b: &mut B,
    set: &Migrations,
    rows: &[HistoryRow],
    plan: Plan<'_>,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    for w in plan.warnings {
        ctx.warn(w);
    }
    ctx.report.skipped = plan.skipped;
    let steps = plan.apply;
    if ctx.cfg.grouped && !ctx.cockroach && !steps.is_empty() {
        apply_grouped(b, &steps, ctx).await?;
    } else {
        // Durability: every migration transaction but the run's last commits asynchronously
        // (`synchronous_commit = off`: the commit returns before its WAL record is flushed);
        // the last one commits synchronously. The WAL is one sequential log and a flush
        // covers everything before it, so the last commit, once acknowledged, has made every
        // earlier commit of the run durable too (and, with synchronous replication, has waited
        // for the standby to have them as well). A server crash before that point loses a
        // suffix of the run's commits: whole migrations, each body with its history row
        // (they share a transaction), never half of one, and the next boot applies them again.
        // A run that stops on a failed migration leaves its earlier commits to the WAL writer
        // (flushed within a few `wal_writer_delay`s); a crash in that window loses them the
        // same way. No-transaction migrations, their progress rows and the history bookkeeping
        // keep synchronous commits (a lost progress row would make a resume re-run a statement
        // that took effect), and each of them flushes the asynchronous commits before it.
        //
        // Consecutive transactional migrations are sent in windows (one round trip each, on a
        // driver that pipelines; see `window`), each transaction still committing on its own.
        let last = steps.len().saturating_sub(1);
        let limit = window_limit(b, ctx);
        // A migration blocked by a table lock is tried again, alone or as the first of the
        // next window: those before it in its window committed, it rolled back whole.
        let mut retry = Retry::new(ctx.cfg);
        let mut i = 0;
        while let Some(step) = steps.get(i) {
            ctx.guard.renew_if_due(b).await?;
            retry.attempt(step.migration().version(), None);
            let outcome = match *step {
                Step::Apply(m) if atomic(m, ctx) => {
                    let window = window(&steps[i..], limit, ctx);
                    if let [one] = window.as_slice() {
                        let async_commit = i < last && !ctx.cfg.synchronous_commits;
                        apply_transactional(b, one, async_commit, ctx)
                            .await
                            .map(|()| 1)
                            .map_err(|e| (0, e))
                    } else {
                        apply_window(b, &window, i + window.len() - 1 == last, ctx).await
                    }
                }
                Step::Apply(m) => apply_recorded(b, m, None, &mut retry, ctx)
                    .await
                    .map(|()| 1)
                    .map_err(|e| (0, e)),
                Step::Resume { migration, from } => {
                    apply_recorded(b, migration, Some(from), &mut retry, ctx)
                        .await
                        .map(|()| 1)
                        .map_err(|e| (0, e))
                }
            };
            match outcome {
                Ok(done) => {
                    retry.done(Some(ctx));
                    i += done;
                }
                Err((committed, error)) => {
                    if committed > 0 {
                        retry.done(Some(ctx));
                        i += committed;
                    }
                    let Some(m) = steps.get(i).map(|s| s.migration()) else {
                        return Err(error);
                    };
                    retry.attempt(m.version(), None);
                    retry.after_failure(b, error, m, false, None, ctx).await?;
                }
            }
        }
    }
    // A slow path that verified the whole set refreshes the goal row's chain, so that the next
    // boot takes the fast path (the chain differs when another binary applied the row, e.g.
    // after an out-of-order application).
    if let Some((goal, _)) = plan::goal(set, ctx.cfg.policy.target) {
        let stale = rows
            .iter()
            .find(|r| r.version == goal.version())
            .is_some_and(|r| r.is_applied() && r.chain != goal.chain().to_string());
        if stale {
            let item = TxItem {
                body: None,
                record: Record::SetChain {
                    version: goal.version(),
                    chain: goal.chain(),
                },
                log: None,
                timeouts: Timeouts::NONE,
            };
            b.transaction(&[item])
                .await
                .map_err(|f| tx_error(f, &[goal], false))?;
        }
    }
    Ok(())
}

/// The most bytes of migration scripts sent in one window: pipelining saves a round trip per
/// migration, which matters for small ones; a large script costs more than a round trip to
/// send and run, and a window of them would only hold more in memory.
const WINDOW_BYTES: usize = 256 * 1024;

/// Whether a migration is applied in a transaction with its history row.
fn atomic(m: &Migration, ctx: &Ctx<'_>) -> bool {
    m.up().kind() == Kind::Transactional && !ctx.cockroach
}

/// How many migration transactions one window may hold: the backend's limit, and 1 unless the
/// run holds the advisory lock. The lease must be renewed between migrations, and a window of
/// slow migrations could outlast it; without a lock (`LockStrategy::None`) another run may
/// record a migration this run failed, which would satisfy the next one's guard.
fn window_limit<B: Backend>(b: &B, ctx: &Ctx<'_>) -> usize {
    if ctx.guard.is_advisory() {
        b.window_limit().max(1)
    } else {
        1
    }
}

/// The migrations of the next window: the transactional `Apply` steps at the start of `steps`,
/// at most `limit` of them and [`WINDOW_BYTES`] of scripts (but at least one). It stops before
/// anything else (a no-transaction migration, a resumption), which runs on its own.
fn window<'m>(steps: &[Step<'m>], limit: usize, ctx: &Ctx<'_>) -> Vec<&'m Migration> {
    let mut window = Vec::new();
    let mut bytes = 0;
    for step in steps.iter().take(limit) {
        let Step::Apply(m) = *step else { break };
        let size = m.up().script().map_or(0, str::len);
        if !atomic(m, ctx) || (!window.is_empty() && bytes + size > WINDOW_BYTES) {
            break;
        }
        bytes += size;
        window.push(m);
    }
    window
}

/// Several transactional migrations sent together (see `Apply::transaction_window`): each
/// in its own transaction with its history row, each after the first guarded by its
/// predecessor's row, so that nothing after a failed one commits. `ends_run`: the window's last
/// migration is the run's, and commits synchronously (see [`migrate`]). Returns how many
/// committed; on failure, with the error of the one that did not.
async fn apply_window<B: Backend>(
    b: &mut B,
    migrations: &[&Migration],
    ends_run: bool,
    ctx: &mut Ctx<'_>,
) -> Result<usize, (usize, Error)> {
    let started = Instant::now();
    let last = migrations.len().saturating_sub(1);
    let txs: Vec<WindowTx<'_>> = migrations
        .iter()
        .enumerate()
        .map(|(j, m)| WindowTx {
            item: up_item(m, ctx),
            async_commit: !(ctx.cfg.synchronous_commits || ends_run && j == last),
            after: j
                .checked_sub(1)
                .and_then(|p| migrations.get(p))
                .map(|p| p.version()),
        })
        .collect();
    let outcome = b.transaction_window(&txs).await;
    // Sent together, the migrations are not timed one by one: each is reported with an equal
    // share of the window's time (the history's `execution_ms` is measured by the server).
    let share = started.elapsed() / u32::try_from(migrations.len()).unwrap_or(u32::MAX).max(1);
    let committed = match &outcome {
        Ok(()) => migrations.len(),
        Err(f) => f.index,
    };
    for m in migrations.iter().take(committed) {
        applied(ctx, m, share);
    }
    match outcome {
        Ok(()) => Ok(committed),
        Err(f) => Err((
            committed,
            match migrations.get(f.index) {
                Some(m) => tx_error(f.failure, &[m], false),
                None => tx_error(f.failure, &[], false),
            },
        )),
    }
}

/// A migration's up body with the `applied` row it records, under its limits.
fn up_item<'m>(m: &'m Migration, ctx: &Ctx<'_>) -> TxItem<'m> {
    TxItem {
        body: m.up().script(),
        record: Record::Insert(NewRow::of(m, &ctx.applied_by)),
        log: None,
        timeouts: ctx.cfg.limits(Some(m.up())),
    }
}

/// One transactional migration with its history row; `async_commit` for all but the run's
/// last (see [`migrate`]).
async fn apply_transactional<B: Backend>(
    b: &mut B,
    m: &Migration,
    async_commit: bool,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let items = [up_item(m, ctx)];
    let outcome = if async_commit {
        b.transaction_async_commit(&items).await
    } else {
        b.transaction(&items).await
    };
    outcome.map_err(|f| tx_error(f, &[m], false))?;
    applied(ctx, m, started.elapsed());
    Ok(())
}

fn applied(ctx: &mut Ctx<'_>, m: &Migration, duration: Duration) {
    tracing::info!(
        version = %m.version(),
        name = m.name(),
        ms = duration.as_millis() as u64,
        "migration applied"
    );
    ctx.report.applied.push(Applied {
        version: m.version(),
        name: m.name().to_owned(),
        duration,
    });
}

async fn apply_grouped<B: Backend>(
    b: &mut B,
    steps: &[Step<'_>],
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let mut migrations = Vec::with_capacity(steps.len());
    for step in steps {
        match *step {
            Step::Apply(m) if m.up().kind() == Kind::Transactional => migrations.push(m),
            other => {
                let m = other.migration();
                return Err(Error::Config(format!(
                    "grouped mode applies everything in one transaction, but migration {} ({}) \
                     is no-transaction or unfinished; migrate without grouped mode",
                    m.version(),
                    m.path()
                )));
            }
        }
    }
    let items: Vec<TxItem<'_>> = migrations.iter().map(|m| up_item(m, ctx)).collect();
    let mut retry = Retry::new(ctx.cfg);
    let started = loop {
        let started = Instant::now();
        retry.attempt(
            migrations.first().map_or(Version::new(0), |m| m.version()),
            None,
        );
        let Err(failure) = b.transaction(&items).await else {
            break started;
        };
        // The whole group rolled back; a blocked one is tried again with all the others.
        let failed_at = match &failure {
            TxFailure::Body { index, .. } => *index,
            TxFailure::Other(_) => 0,
        };
        let error = tx_error(failure, &migrations, false);
        match migrations.get(failed_at) {
            Some(m) => retry.after_failure(b, error, m, false, None, ctx).await?,
            None => return Err(error),
        }
    };
    retry.done(Some(ctx));
    // One transaction: each migration is reported with the group's duration.
    let elapsed = started.elapsed();
    for m in migrations {
        applied(ctx, m, elapsed);
    }
    Ok(())
}

/// A non-atomic migration (no-transaction, or any on CockroachDB): recorded `in_progress`,
/// then statement by statement with progress, then `applied` (or `failed` with the statement).
async fn apply_recorded<B: Backend>(
    b: &mut B,
    m: &Migration,
    resume_from: Option<u32>,
    retry: &mut Retry,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut row = NewRow::of(m, &ctx.applied_by);
    // A fresh start claims the migration: its row must not exist yet (see
    // `HistoryTable::start_row`).
    row.resume = resume_from.is_some();
    let from = resume_from.unwrap_or(0);
    let total = row.statements_total;
    b.start_row(&row, from).await?;
    if from > 0 || total > 0 {
        tracing::info!(version = %m.version(), from = from + 1, total, "running statements one by one");
    }
    one_by_one(b, m, false, from, Progress::Recorded, retry, ctx).await?;
    b.finish_row(
        m.version(),
        State::Applied,
        total,
        millis(started.elapsed()),
        None,
    )
    .await?;
    applied(ctx, m, started.elapsed());
    Ok(())
}

/// Whether [`one_by_one`] records its progress in the migration's history row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// After each statement `statements_done` is recorded, and a failure marks the row
    /// `failed` with the statement: the next run refuses, naming it, and can resume after it.
    Recorded,
    /// Nothing is recorded until the body is done (a down body today).
    Unrecorded,
}

/// Runs a body's statements one by one, outside a transaction, from statement `from`
/// (0-based), renewing the lease between them, under the body's limits (set for the session,
/// restored afterwards, when the advisory lock pins the session): the one place where up and
/// down bodies that cannot run in a transaction are executed. In a [`Kind::Script`] body a
/// whole `BEGIN; ... COMMIT;` block is one unit, committed with its progress (see `unit`).
/// `down` chooses the body. A unit blocked by a table lock is tried again (see `retry`); when
/// the retries run out it is the one recorded as failed.
pub(super) async fn one_by_one<B: Backend>(
    b: &mut B,
    m: &Migration,
    down: bool,
    from: u32,
    progress: Progress,
    retry: &mut Retry,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let body = if down { m.down() } else { Some(m.up()) };
    let Some(body) = body else {
        return Ok(());
    };
    // A session setting stays on one server connection only while the session advisory lock
    // pins it; under the lease (a transaction-mode pooler, CockroachDB) it could land on
    // another client's connection: there the session keeps its own limits.
    let limits = if ctx.guard.is_advisory() {
        ctx.cfg.limits(Some(body))
    } else {
        Timeouts::NONE
    };
    let previous = b.set_timeouts(limits).await?;
    let result = units(b, m, body, down, from, progress, retry, ctx).await;
    match (result, b.restore_timeouts(previous).await) {
        (Err(e), Err(restore)) => {
            tracing::warn!(error = %restore, "could not restore the session's time limits");
            Err(e)
        }
        (result, restored) => result.and(restored),
    }
}

#[allow(clippy::too_many_arguments)]
async fn units<B: Backend>(
    b: &mut B,
    m: &Migration,
    body: &Body,
    down: bool,
    from: u32,
    progress: Progress,
    retry: &mut Retry,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let total = u32::try_from(body.statement_count()).unwrap_or(u32::MAX);
    let record = (progress == Progress::Recorded).then(|| m.version());
    for i in from as usize..body.statement_count() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        loop {
            ctx.guard.renew_if_due(b).await?;
            retry.attempt(m.version(), Some(index));
            // A statement, or a whole block of a script body with its progress (see `unit`).
            let source = match unit::run(b, body, i, record).await {
                Ok(()) => break,
                Err(UnitFailure::Record(e)) => return Err(e),
                Err(UnitFailure::Sql(source)) => source,
            };
            let error = Error::migration(m, down, Some(i), source);
            let stopped = record.map(|_| (index, total));
            let Err(error) = retry.after_failure(b, error, m, down, stopped, ctx).await else {
                continue;
            };
            if progress == Progress::Recorded {
                let ms = millis(started.elapsed());
                let text = error.to_string();
                if let Err(record_error) = b
                    .finish_row(m.version(), State::Failed, index, ms, Some(&text))
                    .await
                {
                    tracing::error!(error = %record_error, "could not record the failure");
                }
            }
            tracing::error!("{error}");
            return Err(error);
        }
        retry.done(Some(ctx));
    }
    Ok(())
}

/// Turns a failed transaction into the error naming the migration, statement and line.
pub(super) fn tx_error(failure: TxFailure, migrations: &[&Migration], down: bool) -> Error {
    match failure {
        TxFailure::Other(e) => e,
        TxFailure::Body { index, error } => {
            let Some(m) = migrations.get(index) else {
                return Error::db("migration transaction", error);
            };
            let body = if down { m.down() } else { Some(m.up()) };
            let statement = body.and_then(|b| statement_at_position(b, &error));
            tracing::error!(version = %m.version(), error = %error, "migration failed, rolled back");
            Error::migration(m, down, statement, error)
        }
    }
}

/// The statement a server error position (1-based, in characters of the script sent) falls
/// in. Errors without a position (most run-time errors) leave the statement unknown.
fn statement_at_position(body: &Body, error: &DbError) -> Option<usize> {
    let position = usize::try_from(error.position?).ok()?;
    let script = body.script()?;
    let byte = script
        .char_indices()
        .nth(position.checked_sub(1)?)
        .map(|(i, _)| i)?;
    let base = script.as_ptr() as usize;
    let mut found = None;
    for (i, s) in body.statements().enumerate() {
        // Statements are slices of the same text as the script: their offset is the distance.
        let start = (s.as_ptr() as usize).checked_sub(base)?;
        if start <= byte {
            found = Some(i);
        }
    }
    found
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MigrationParts, Span, Version};

    #[test]
    fn maps_server_positions_to_statements() {
        let text = "-- head\nCREATE TABLE a (id int);\n\nCREATE TABLE b (id intt);\n";
        let spans = vec![Span::new(8, 32), Span::new(34, 59)];
        let body = Body::owned(text.to_owned(), spans, Kind::Transactional);
        let script = body.script().unwrap();
        let pos = script.find("intt").unwrap() + 1;
        let err = DbError {
            position: Some(pos as u32),
            ..DbError::default()
        };
        assert_eq!(statement_at_position(&body, &err), Some(1));
        assert_eq!(body.line_of(1), Some(4));
        let first = DbError {
            position: Some(1),
            ..DbError::default()
        };
        assert_eq!(statement_at_position(&body, &first), Some(0));
        assert_eq!(statement_at_position(&body, &DbError::default()), None);
        let _ = MigrationParts {
            version: Version::new(1),
            name: String::new(),
            path: String::new(),
            checksum_text: String::new(),
            up: body,
            down: None,
        };
    }
}
