//! Reverting applied migrations, newest first, with their down bodies.

use std::time::Instant;

use crate::backend::{Backend, Record, TxItem};
use crate::error::Error;
use crate::history::{completed_of, Key};
use crate::plan::Step;
use crate::report::Applied;
use crate::Kind;

use super::apply::{one_by_one, tx_error};
use super::context::Ctx;
use super::retry::Retry;

/// Reverts `list` (decided by `plan::plan_down`, which refused before anything was touched
/// when one of them cannot be reverted): each down body with its history row deleted, in one
/// transaction. A down body that cannot run in a transaction (or any on CockroachDB) runs unit
/// by unit with its progress recorded in the row (`reverting`, then `revert_failed` if a unit
/// fails), as an up body does; then its row goes. A revert that stopped half-way continues at
/// the step's unit.
pub(super) async fn revert<B: Backend>(
    b: &mut B,
    list: &[Step<'_>],
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let mut retry = Retry::new(ctx.cfg);
    for step in list {
        ctx.guard.renew_if_due(b).await?;
        let m = step.migration();
        let Some(down) = m.down() else {
            continue; // plan_down guarantees a down body
        };
        let key = Key::new(step.set(), m.version());
        let started = Instant::now();
        let atomic = down.kind() == Kind::Transactional && !ctx.cockroach && !step.is_resume();
        if !atomic {
            let from = step.from();
            let completed = completed_of(down.statements(), from as usize);
            let total = u32::try_from(down.statement_count()).unwrap_or(u32::MAX);
            b.start_revert(&key, total, from, &completed).await?;
            one_by_one(b, step, true, completed, &mut retry, ctx).await?;
        }
        let item = TxItem {
            body: if atomic { down.script() } else { None },
            record: Record::Delete(key.clone()),
            note: None,
            timeouts: ctx.cfg.limits(Some(down)),
        };
        // A down body blocked by a table lock is tried again, like an up body.
        loop {
            retry.attempt(key.clone(), None);
            let Err(failure) = b.transaction(std::slice::from_ref(&item)).await else {
                break;
            };
            let error = tx_error(failure, &[*step], true, ctx);
            retry
                .after_failure(b, error, step.set(), m, true, None, ctx)
                .await?;
        }
        retry.done(Some(ctx));
        let duration = started.elapsed();
        tracing::warn!(
            set = step.set(),
            version = %m.version(),
            name = m.name(),
            by = %ctx.applied_by,
            ms = duration.as_millis() as u64,
            "migration reverted"
        );
        ctx.report.reverted.push(Applied {
            set: step.set().to_owned(),
            version: m.version(),
            name: m.name().to_owned(),
            duration,
        });
    }
    Ok(())
}
