//! Applying migrations: each in a transaction with its history row (sent in pipelined windows
//! where the driver can), all in one transaction (grouped mode), or statement by statement
//! with recorded progress ([`one_by_one`], shared with reverts).

use std::time::{Duration, Instant};

use crate::backend::{Backend, Record, TxFailure, TxItem, WindowTx};
use crate::composition::Composition;
use crate::error::{DbError, Error};
use crate::history::{completed_of, unit_digest, HistoryRow, Key, NewRow, State};
use crate::plan::{self, Plan, Step};
use crate::report::Applied;
use crate::timeout::Timeouts;
use crate::{Body, Kind, Migration};

use super::context::Ctx;
use super::retry::Retry;
use super::unit::{self, UnitFailure};

/// Applies a plan's steps, then refreshes each set's goal row's chain when another binary
/// wrote it.
pub(super) async fn migrate<B: Backend>(
    b: &mut B,
    comp: &Composition<'_>,
    rows: &[HistoryRow],
    plan: Plan<'_>,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    for w in plan.warnings {
        ctx.warn(w);
    }
    ctx.report.skipped = plan
        .skipped
        .iter()
        .map(|s| (s.set().to_owned(), s.migration().version()))
        .collect();
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
            retry.attempt(key(step), None);
            let outcome = if !step.is_resume() && atomic(step.migration(), ctx) {
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
            } else {
                apply_recorded(b, step, &mut retry, ctx)
                    .await
                    .map(|()| 1)
                    .map_err(|e| (0, e))
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
                    let Some(step) = steps.get(i) else {
                        return Err(error);
                    };
                    retry.attempt(key(step), None);
                    retry
                        .after_failure(b, error, step.set(), step.migration(), false, None, ctx)
                        .await?;
                }
            }
        }
    }
    // A slow path that verified the whole composition refreshes each set's goal row's chain,
    // so that the next boot takes the fast path (the chain differs when another binary applied
    // the row, e.g. after an out-of-order application, or when a repair left it unverified).
    for (set, goal) in plan::goals(comp, &ctx.cfg.policy)? {
        let Some(goal) = goal else { continue };
        let stale = rows
            .iter()
            .find(|r| r.set == set && r.version == goal.version())
            .is_some_and(|r| r.is_applied() && r.chain != goal.chain().to_string());
        if stale {
            let item = TxItem {
                body: None,
                record: Record::SetChain {
                    key: Key::new(set, goal.version()),
                    chain: Some(goal.chain()),
                },
                note: None,
                timeouts: Timeouts::NONE,
            };
            b.transaction(&[item])
                .await
                .map_err(|f| tx_error(f, &[], false, ctx))?;
        }
    }
    Ok(())
}

/// A step's row in the history table.
fn key(step: &Step<'_>) -> Key {
    Key::new(step.set(), step.migration().version())
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

/// The migrations of the next window: the fresh transactional steps at the start of `steps`,
/// at most `limit` of them and [`WINDOW_BYTES`] of scripts (but at least one). It stops before
/// anything else (a no-transaction migration, a resumption), which runs on its own.
fn window<'m>(steps: &[Step<'m>], limit: usize, ctx: &Ctx<'_>) -> Vec<Step<'m>> {
    let mut window = Vec::new();
    let mut bytes = 0;
    for step in steps.iter().take(limit) {
        let m = step.migration();
        let size = m.up().script().map_or(0, str::len);
        if step.is_resume()
            || !atomic(m, ctx)
            || (!window.is_empty() && bytes + size > WINDOW_BYTES)
        {
            break;
        }
        bytes += size;
        window.push(*step);
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
    steps: &[Step<'_>],
    ends_run: bool,
    ctx: &mut Ctx<'_>,
) -> Result<usize, (usize, Error)> {
    let started = Instant::now();
    let last = steps.len().saturating_sub(1);
    let txs: Vec<WindowTx<'_>> = steps
        .iter()
        .enumerate()
        .map(|(j, step)| WindowTx {
            item: up_item(step, ctx),
            async_commit: !(ctx.cfg.synchronous_commits || ends_run && j == last),
            after: j.checked_sub(1).and_then(|p| steps.get(p)).map(key),
        })
        .collect();
    let outcome = b.transaction_window(&txs).await;
    // Sent together, the migrations are not timed one by one: each is reported with an equal
    // share of the window's time (the history's `execution_ms` is measured by the server).
    let share = started.elapsed() / u32::try_from(steps.len()).unwrap_or(u32::MAX).max(1);
    let committed = match &outcome {
        Ok(()) => steps.len(),
        Err(f) => f.index,
    };
    for step in steps.iter().take(committed) {
        applied(ctx, step, share);
    }
    match outcome {
        Ok(()) => Ok(committed),
        Err(f) => Err((
            committed,
            match steps.get(f.index) {
                Some(step) => tx_error(f.failure, &[*step], false, ctx),
                None => tx_error(f.failure, &[], false, ctx),
            },
        )),
    }
}

/// A migration's up body with the `applied` row it records, under its limits.
fn up_item<'m>(step: &Step<'m>, ctx: &Ctx<'_>) -> TxItem<'m> {
    let m = step.migration();
    TxItem {
        body: m.up().script(),
        record: Record::Insert(NewRow::of(step.set(), m, &ctx.applied_by)),
        note: None,
        timeouts: ctx.cfg.limits(Some(m.up())),
    }
}

/// One transactional migration with its history row; `async_commit` for all but the run's
/// last (see [`migrate`]).
async fn apply_transactional<B: Backend>(
    b: &mut B,
    step: &Step<'_>,
    async_commit: bool,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let items = [up_item(step, ctx)];
    let outcome = if async_commit {
        b.transaction_async_commit(&items).await
    } else {
        b.transaction(&items).await
    };
    outcome.map_err(|f| tx_error(f, &[*step], false, ctx))?;
    applied(ctx, step, started.elapsed());
    Ok(())
}

fn applied(ctx: &mut Ctx<'_>, step: &Step<'_>, duration: Duration) {
    let m = step.migration();
    tracing::info!(
        set = step.set(),
        version = %m.version(),
        name = m.name(),
        ms = duration.as_millis() as u64,
        "migration applied"
    );
    ctx.report.applied.push(Applied {
        set: step.set().to_owned(),
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
    for step in steps {
        let m = step.migration();
        if step.is_resume() || m.up().kind() != Kind::Transactional {
            return Err(Error::Config(format!(
                "grouped mode applies everything in one transaction, but migration {} ({}) \
                 is no-transaction or unfinished; migrate without grouped mode",
                m.version(),
                m.path()
            )));
        }
    }
    let items: Vec<TxItem<'_>> = steps.iter().map(|s| up_item(s, ctx)).collect();
    let mut retry = Retry::new(ctx.cfg);
    let started = loop {
        let started = Instant::now();
        if let Some(first) = steps.first() {
            retry.attempt(key(first), None);
        }
        let Err(failure) = b.transaction(&items).await else {
            break started;
        };
        // The whole group rolled back; a blocked one is tried again with all the others.
        let failed_at = match &failure {
            TxFailure::Body { index, .. } => *index,
            TxFailure::Other(_) => 0,
        };
        let error = tx_error(failure, steps, false, ctx);
        match steps.get(failed_at) {
            Some(step) => {
                retry
                    .after_failure(b, error, step.set(), step.migration(), false, None, ctx)
                    .await?
            }
            None => return Err(error),
        }
    };
    retry.done(Some(ctx));
    // One transaction: each migration is reported with the group's duration.
    let elapsed = started.elapsed();
    for step in steps {
        applied(ctx, step, elapsed);
    }
    Ok(())
}

/// A non-atomic migration (no-transaction, a file that manages its own transactions, or any
/// on CockroachDB): recorded `in_progress`, then unit by unit with progress, then `applied`
/// (or `failed` with the unit). A resumption starts at the step's unit, recording the units
/// before it as the file has them now (the plan checked that they are unchanged, or the
/// operator asked to resume anyway).
async fn apply_recorded<B: Backend>(
    b: &mut B,
    step: &Step<'_>,
    retry: &mut Retry,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let m = step.migration();
    let mut row = NewRow::of(step.set(), m, &ctx.applied_by);
    // A fresh start claims the migration: its row must not exist yet (see
    // `HistoryTable::start_row`).
    row.resume = step.is_resume();
    let from = step.from();
    let total = row.statements_total;
    let completed = completed_of(m.up().statements(), from as usize);
    b.start_row(&row, from, &completed).await?;
    if from > 0 || total > 0 {
        tracing::info!(set = step.set(), version = %m.version(), from = from + 1, total, "running statements one by one");
    }
    one_by_one(b, step, false, completed, retry, ctx).await?;
    b.finish_row(
        &row.key,
        State::Applied,
        total,
        millis(started.elapsed()),
        None,
    )
    .await?;
    applied(ctx, step, started.elapsed());
    Ok(())
}

/// Runs a body's units one by one, outside a transaction, from the step's unit (0-based),
/// renewing the lease between them, under the body's limits (set for the session, restored
/// afterwards, when the advisory lock pins the session): the one place where up and down
/// bodies that cannot run in a transaction are executed. In a [`Kind::Script`] body a whole
/// `BEGIN; ... COMMIT;` block is one unit, committed with its progress (see `unit`). After
/// each unit `statements_done` and `completed` (the units' digests, see [`crate::history`])
/// are recorded, and a failure marks the row `failed` (`revert_failed` for a down body) with
/// the unit: the next run refuses, naming it, and can resume after it. `down` chooses the
/// body; `completed` holds the digests of the units before the step's first. A unit blocked by
/// a table lock is tried again (see `retry`); when the retries run out it is the one recorded
/// as failed.
pub(super) async fn one_by_one<B: Backend>(
    b: &mut B,
    step: &Step<'_>,
    down: bool,
    completed: String,
    retry: &mut Retry,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let m = step.migration();
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
    let result = units(b, step, body, down, completed, retry, ctx).await;
    match (result, b.restore_timeouts(previous).await) {
        (Err(e), Err(restore)) => {
            tracing::warn!(error = %restore, "could not restore the session's time limits");
            Err(e)
        }
        (result, restored) => result.and(restored),
    }
}

async fn units<B: Backend>(
    b: &mut B,
    step: &Step<'_>,
    body: &Body,
    down: bool,
    mut completed: String,
    retry: &mut Retry,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let m = step.migration();
    let key = key(step);
    let total = u32::try_from(body.statement_count()).unwrap_or(u32::MAX);
    for (i, text) in body.statements().enumerate().skip(step.from() as usize) {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        // What `completed` holds once this unit ran: written with its progress.
        let after = format!("{completed}{}", unit_digest(text));
        loop {
            ctx.guard.renew_if_due(b).await?;
            retry.attempt(key.clone(), Some(index));
            // A statement, or a whole block of a script body with its progress (see `unit`).
            let source = match unit::run(b, body, i, &key, &after).await {
                Ok(()) => break,
                Err(UnitFailure::Record(e)) => return Err(e),
                Err(UnitFailure::Sql(source)) => source,
            };
            let error = Error::migration(ctx.label(step.set()), m, down, Some(i), source);
            let stopped = Some((index, total));
            let Err(error) = retry
                .after_failure(b, error, step.set(), m, down, stopped, ctx)
                .await
            else {
                continue;
            };
            let ms = millis(started.elapsed());
            let text = error.to_string();
            let state = if down {
                State::RevertFailed
            } else {
                State::Failed
            };
            if let Err(record_error) = b.finish_row(&key, state, index, ms, Some(&text)).await {
                tracing::error!(error = %record_error, "could not record the failure");
            }
            tracing::error!("{error}");
            return Err(error);
        }
        completed = after;
        retry.done(Some(ctx));
    }
    Ok(())
}

/// Turns a failed transaction into the error naming the migration, statement and line.
pub(super) fn tx_error(failure: TxFailure, steps: &[Step<'_>], down: bool, ctx: &Ctx<'_>) -> Error {
    match failure {
        TxFailure::Other(e) => e,
        TxFailure::Body { index, error } => {
            let Some(step) = steps.get(index) else {
                return Error::db("migration transaction", error);
            };
            let m = step.migration();
            let body = if down { m.down() } else { Some(m.up()) };
            let statement = body.and_then(|b| statement_at_position(b, &error));
            tracing::error!(set = step.set(), version = %m.version(), error = %error, "migration failed, rolled back");
            Error::migration(ctx.label(step.set()), m, down, statement, error)
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
            requires: Vec::new(),
        };
    }
}
