//! The fast path: one query that tells whether the database is current, run before anything
//! else at every boot, and again by a run waiting for the lock.

use crate::backend::{Backend, Fast};
use crate::error::Error;
use crate::history::State;
use crate::plan;
use crate::Migrations;

use super::Config;

/// The fast path: one query; current iff the goal row is applied with the compiled chain, the
/// table holds exactly as many rows as the binary has migrations up to the goal, and none is
/// unfinished. Anything else, including a missing table, goes to the slow path.
pub(super) async fn fast_path<B: Backend>(
    b: &mut B,
    set: &Migrations,
    cfg: &Config,
) -> Result<bool, Error> {
    let Some((goal, count)) = plan::goal(set, cfg.policy.target) else {
        return Ok(false);
    };
    match b.fast_check(goal.version()).await? {
        Fast::NoTable => Ok(false),
        Fast::Found {
            chain,
            state,
            total,
            unfinished,
            counted,
        } => Ok(counted
            && state.as_deref() == Some(State::Applied.as_str())
            && chain.is_some_and(|c| c == goal.chain().to_string())
            && usize::try_from(total).is_ok_and(|t| t == count)
            && unfinished == 0),
    }
}
