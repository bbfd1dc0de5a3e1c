//! Reverting applied migrations, newest first, with their down bodies.

use std::time::Instant;

use crate::backend::{Backend, LogEntry, Record, TxItem};
use crate::error::Error;
use crate::report::Applied;
use crate::{Kind, Migration};

use super::apply::{one_by_one, tx_error, Progress};
use super::context::Ctx;
use super::retry::Retry;

/// Reverts `list` (decided by `plan::plan_down`, which refused before anything was touched
/// when one of them cannot be reverted): each down body with its history row deleted and a
/// `<table>_log` entry, in one transaction; a down body that cannot run in a transaction (or
/// any on CockroachDB) runs statement by statement, then its row goes.
pub(super) async fn revert<B: Backend>(
    b: &mut B,
    list: &[&Migration],
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let mut retry = Retry::new(ctx.cfg);
    for &m in list {
        ctx.guard.renew_if_due(b).await?;
        let Some(down) = m.down() else {
            continue; // plan_down guarantees a down body
        };
        let started = Instant::now();
        let atomic = down.kind() == Kind::Transactional && !ctx.cockroach;
        if !atomic {
            one_by_one(b, m, true, 0, Progress::Unrecorded, &mut retry, ctx).await?;
        }
        let item = TxItem {
            body: if atomic { down.script() } else { None },
            record: Record::Delete(m.version()),
            log: Some(LogEntry {
                action: "revert",
                version: Some(m.version()),
                detail: format!("reverted {} ({})", m.name(), m.path()),
                by: ctx.applied_by.clone(),
            }),
            timeouts: ctx.cfg.limits(Some(down)),
        };
        // A down body blocked by a table lock is tried again, like an up body.
        loop {
            retry.attempt(m.version(), None);
            let Err(failure) = b.transaction(std::slice::from_ref(&item)).await else {
                break;
            };
            let error = tx_error(failure, &[m], true);
            retry.after_failure(b, error, m, true, None, ctx).await?;
        }
        retry.done(Some(ctx));
        let duration = started.elapsed();
        tracing::info!(version = %m.version(), ms = duration.as_millis() as u64, "migration reverted");
        ctx.report.reverted.push(Applied {
            version: m.version(),
            name: m.name().to_owned(),
            duration,
        });
    }
    Ok(())
}
