//! One unit of a body that runs outside Preflight's transaction: a statement of a
//! no-transaction migration, or, in a [`Kind::Script`](crate::Kind::Script) body, a statement
//! between blocks or a whole explicit `BEGIN; ... COMMIT;` block.
//!
//! After a unit, its progress is recorded: how many units are done and what they were (their
//! digests, `completed`; see [`crate::history`]). A block is sent up to its `COMMIT` as one
//! script; the progress row is updated inside the block's own transaction, then its `COMMIT`
//! is sent, so a block and the record that it ran commit together: a crash or a failure never
//! leaves a block applied but unrecorded, and a resumption never runs it twice. When any part
//! fails, the transaction the block opened is rolled back before the failure is recorded (the
//! session would otherwise stay in an aborted transaction, and the failure record would be
//! lost with it).

use crate::backend::Backend;
use crate::error::{DbError, Error};
use crate::history::Key;
use crate::Body;

/// Why a unit did not complete.
#[derive(Debug)]
pub(crate) enum UnitFailure {
    /// The unit's SQL failed (its block, if any, was rolled back).
    Sql(DbError),
    /// Recording the progress failed (its block, if any, was rolled back).
    Record(Error),
}

/// Runs unit `index` of `body`, then records that `index + 1` units of migration `key` are
/// done, `completed` being their digests (inside the block, for a block).
pub(crate) async fn run<B: Backend>(
    b: &mut B,
    body: &Body,
    index: usize,
    key: &Key,
    completed: &str,
) -> Result<(), UnitFailure> {
    let done = u32::try_from(index + 1).unwrap_or(u32::MAX);
    let Some((open, commit)) = body.block(index) else {
        let statement = body.statements().nth(index).unwrap_or_default();
        b.execute(statement).await.map_err(UnitFailure::Sql)?;
        return b
            .progress(key, done, completed)
            .await
            .map_err(UnitFailure::Record);
    };
    let outcome = run_block(b, open, commit, key, done, completed).await;
    if outcome.is_err() {
        if let Err(e) = b.rollback_open().await {
            // The failure itself is what the caller reports; a connection that cannot even
            // roll back will fail the failure record too, which is logged there.
            tracing::warn!(error = %e, "could not roll back the failed block");
        }
    }
    outcome
}

async fn run_block<B: Backend>(
    b: &mut B,
    open: &str,
    commit: &str,
    key: &Key,
    done: u32,
    completed: &str,
) -> Result<(), UnitFailure> {
    b.execute(open).await.map_err(UnitFailure::Sql)?;
    b.progress(key, done, completed)
        .await
        .map_err(UnitFailure::Record)?;
    b.execute(commit).await.map_err(UnitFailure::Sql)
}
