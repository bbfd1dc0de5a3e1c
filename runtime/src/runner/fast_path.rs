//! The fast path: one query that tells whether the database is current, run before anything
//! else at every boot, and again by a run waiting for the lock.

use crate::backend::Backend;
use crate::composition::Composition;
use crate::error::Error;
use crate::history::State;
use crate::plan;

use super::Config;

/// The fast path: one query; current iff, for each set of the composition, its newest history
/// row is its goal migration (the last one up to the target), applied, with the compiled
/// chain (a set with no migration up to the target has no row), and none of their rows is
/// unfinished. Anything else, including a missing table, goes to the slow path.
pub(super) async fn fast_path<B: Backend>(
    b: &mut B,
    comp: &Composition<'_>,
    cfg: &Config,
) -> Result<bool, Error> {
    let goals = plan::goals(comp, &cfg.policy)?;
    if goals.iter().all(|(_, goal)| goal.is_none()) {
        return Ok(false);
    }
    let sets: Vec<&str> = goals.iter().map(|(set, _)| *set).collect();
    let Some(found) = b.fast_check(&sets).await? else {
        return Ok(false);
    };
    if found.unfinished || found.newest.len() != goals.len() {
        return Ok(false);
    }
    Ok(goals
        .iter()
        .zip(&found.newest)
        .all(|((_, goal), newest)| match (goal, newest) {
            (None, None) => true,
            (Some(m), Some(row)) => {
                row.version == m.version().to_string()
                    && row.state == State::Applied.as_str()
                    && row.chain == m.chain().to_string()
            }
            _ => false,
        }))
}
