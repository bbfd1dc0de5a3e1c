//! A development reset, under the lock: revert everything when every applied migration can be
//! reverted, otherwise drop every object of the history table's schema in one transaction;
//! then apply everything.

use crate::backend::{Backend, Session};
use crate::composition::Composition;
use crate::error::Error;
use crate::history::HistoryRow;
use crate::plan::{self, Plan, Teardown};

use super::context::Ctx;
use super::{apply, revert, run, upgrade, Config};

/// Reverting when possible, dropping otherwise, then applying what a fresh database gets.
pub(super) async fn decide<'m, B: Backend>(
    b: &mut B,
    comp: &Composition<'m>,
    cfg: &Config,
    session: &Session,
    rows: &[HistoryRow],
) -> Result<Plan<'m>, Error> {
    let mut plan = plan::plan_up(comp, &[], &cfg.policy)?;
    let not_reversible = match plan::plan_down_all(comp, rows) {
        // An empty history reverts nothing, and would leave whatever else is there in the way.
        Ok(list) if !rows.is_empty() => {
            plan.revert = list;
            return Ok(plan);
        }
        Ok(_) => Vec::new(),
        Err(Error::NoDown { reasons }) => reasons,
        Err(e) => vec![e.to_string()],
    };
    let objects = b.schema_objects(&session.schema).await?;
    if !rows.is_empty() || !objects.is_empty() {
        plan.teardown = Some(Teardown {
            schema: session.schema.clone(),
            objects,
            not_reversible,
        });
    }
    Ok(plan)
}

pub(super) async fn reset<B: Backend>(
    b: &mut B,
    comp: &Composition<'_>,
    plan: Plan<'_>,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    revert::revert(b, &plan.revert, ctx).await?;
    if let Some(teardown) = &plan.teardown {
        b.drop_objects(&teardown.objects).await?;
        tracing::warn!(
            schema = %teardown.schema,
            objects = teardown.objects.len(),
            "reset: dropped every object of the schema"
        );
        // The history table went with the schema's objects.
        upgrade::ensure(b, comp).await?;
    }
    let rows = run::read(b).await?;
    let again = plan::plan_up(comp, &rows, &ctx.cfg.policy)?;
    apply::migrate(b, comp, &rows, again, ctx).await
}
