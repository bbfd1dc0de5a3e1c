//! The one loop every operation that writes goes through — fast path, session, lock, read the
//! history, decide, execute, unlock — and its dry run, which reads and decides the same way
//! ([`decide`] is shared) and returns the decision instead of executing it.

use tracing::Instrument;

use crate::adopt::Adopt;
use crate::backend::{Backend, Product, Session};
use crate::composition::Composition;
use crate::error::Error;
use crate::history::HistoryRow;
use crate::plan::{self, Plan};
use crate::report::{Report, Warning};

use super::context::Ctx;
use super::fast_path::fast_path;
use super::lock::{self, LockGuard};
use super::{adopt, apply, repair, reset, revert, upgrade, Config, Runner, Work};

/// The whole operation: fast path, then the slow path under the lock; then, for a migrating
/// run with `warn_on_drift`, the drift check.
pub(crate) async fn run<B: Backend>(
    b: &mut B,
    runner: &Runner<'_>,
    work: Work,
) -> Result<Report, Error> {
    let mut report = run_only(b, runner, work).await?;
    if runner.cfg.warn_on_drift && matches!(work, Work::Migrate) {
        super::drift::warn_on_drift(b, runner, &mut report).await;
    }
    Ok(report)
}

/// [`run`] without the drift check (what drift itself runs on its scratch database).
pub(super) async fn run_only<B: Backend>(
    b: &mut B,
    runner: &Runner<'_>,
    work: Work,
) -> Result<Report, Error> {
    let span = tracing::info_span!("preflight", table = %runner.cfg.table, work = ?work);
    run_inner(b, runner, work).instrument(span).await
}

async fn run_inner<B: Backend>(
    b: &mut B,
    runner: &Runner<'_>,
    work: Work,
) -> Result<Report, Error> {
    let (comp, cfg) = (&*runner.comp, &runner.cfg);
    check(comp, cfg)?;
    let mut report = Report::default();
    if let Work::Migrate = work {
        if fast_path(b, comp, cfg).await? {
            tracing::debug!("database is current (fast path)");
            report.fast_path = true;
            return Ok(report);
        }
    }
    let session = open_session(b, cfg).await?;
    let result = locked(b, runner, &session, work, &mut report).await;
    close_session(b, &session).await;
    result.map(|()| report)
}

/// What `run` would do with `work`: the same fast path, session, history read, adoption check
/// and [`decide`], without the lock and without writing (the history table is not created).
pub(crate) async fn dry_run<'m, B: Backend>(
    b: &mut B,
    runner: &Runner<'m>,
    work: Work,
) -> Result<Plan<'m>, Error> {
    let (comp, cfg) = (&*runner.comp, &runner.cfg);
    check(comp, cfg)?;
    if let Work::Migrate = work {
        if fast_path(b, comp, cfg).await? {
            return Ok(Plan::default());
        }
    }
    let session = open_session(b, cfg).await?;
    let result = dry_run_inner(b, runner, &session, work).await;
    close_session(b, &session).await;
    result
}

async fn dry_run_inner<'m, B: Backend>(
    b: &mut B,
    runner: &Runner<'m>,
    session: &Session,
    work: Work,
) -> Result<Plan<'m>, Error> {
    let (comp, cfg) = (&*runner.comp, &runner.cfg);
    let mut rows = read_if_any(b, comp).await?;
    let mut foreign = Vec::new();
    let mut adopted = None;
    let how = adopt::wanted(work, cfg.adopt);
    if rows.is_empty() && matches!(work, Work::Migrate | Work::Adopt) {
        foreign = b.foreign_tables().await?;
    }
    if how != Adopt::Off {
        // Adoption fills one set's history: while that set has no rows.
        let set = cfg.policy.scoped(comp)?;
        if rows.iter().all(|r| r.set != set.set()) {
            if foreign.is_empty() {
                foreign = b.foreign_tables().await?;
            }
            if let Some((found, list)) =
                adopt::preview(b, set, session, how, matches!(work, Work::Adopt), &foreign).await?
            {
                rows.extend(adopt::rows_of(set.set(), &list, &found));
                adopted = Some(found);
                foreign.clear();
            }
        }
    }
    let mut plan = decide(b, comp, cfg, session, &rows, work).await?;
    plan.adopted = adopted;
    plan.foreign = foreign;
    Ok(plan)
}

/// Reads the history (no lock; empty when the table does not exist yet).
pub(crate) async fn history<B: Backend>(
    b: &mut B,
    runner: &Runner<'_>,
) -> Result<Vec<HistoryRow>, Error> {
    runner.cfg.validate()?;
    read_if_any(b, &runner.comp).await
}

/// Reads the history without creating anything; the rows of a layout-1 table get the set an
/// upgrade would give them. Oldest first within each set.
async fn read_if_any<B: Backend>(
    b: &mut B,
    comp: &Composition<'_>,
) -> Result<Vec<HistoryRow>, Error> {
    let mut rows = b.read_history_if_any().await?;
    upgrade::assign_legacy(comp, &mut rows);
    sort(&mut rows);
    Ok(rows)
}

/// The history in a stable order: by set, then version.
fn sort(rows: &mut [HistoryRow]) {
    rows.sort_by(|a, b| a.set.cmp(&b.set).then(a.version.cmp(&b.version)));
}

/// Refuses a configuration that cannot work, before any query.
pub(super) fn check(comp: &Composition<'_>, cfg: &Config) -> Result<(), Error> {
    cfg.validate()?;
    for set in comp.sets() {
        crate::composition::check_set_name(set.set()).map_err(Error::Config)?;
    }
    crate::composition::check_requirements(comp)?;
    // The target is checked before the fast path, which would otherwise compare with the
    // newest migration below an unknown target.
    plan::limit(comp, &cfg.policy)?;
    if let Some(scope) = &cfg.policy.scope {
        cfg.policy
            .scoped(comp)
            .map(drop)
            .map_err(|_| Error::Config(format!("set `{scope}` is not part of this composition")))?;
    }
    Ok(())
}

async fn open_session<B: Backend>(b: &mut B, cfg: &Config) -> Result<Session, Error> {
    let app_name = truncate(&format!("preflight: {}", cfg.application), 63);
    let session = b.session(&app_name).await?;
    tracing::debug!(
        database = %session.database,
        schema = %session.schema,
        backend_pid = session.backend_pid,
        product = ?session.product,
        "slow path"
    );
    Ok(session)
}

async fn close_session<B: Backend>(b: &mut B, session: &Session) {
    if let Err(e) = b.restore_session(session).await {
        tracing::warn!(error = %e, "could not restore application_name");
    }
}

async fn locked<B: Backend>(
    b: &mut B,
    runner: &Runner<'_>,
    session: &Session,
    work: Work,
    report: &mut Report,
) -> Result<(), Error> {
    let Some(mut guard) = lock::acquire(b, runner, session, work, report).await? else {
        // Another run brought the database up to date while this one waited: nothing to do.
        return Ok(());
    };
    // No `?` between acquire and release: every outcome releases the lock.
    let result = locked_work(b, runner, session, &mut guard, work, report).await;
    let released = guard.release(b).await;
    match (result, released) {
        (Err(e), Err(release_error)) => {
            tracing::warn!(error = %release_error, "could not release the migration lock");
            Err(e)
        }
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Err(release_error)) => Err(release_error),
        (Ok(()), Ok(())) => Ok(()),
    }
}

async fn locked_work<B: Backend>(
    b: &mut B,
    runner: &Runner<'_>,
    session: &Session,
    guard: &mut LockGuard,
    work: Work,
    report: &mut Report,
) -> Result<(), Error> {
    let (comp, cfg) = (&*runner.comp, &runner.cfg);
    upgrade::ensure(b, comp).await?;
    // Read after taking the lock: another replica may have finished meanwhile.
    let mut rows = read(b).await?;
    let how = adopt::wanted(work, cfg.adopt);
    if how != Adopt::Off {
        // Adoption fills one set's history: while that set has no rows.
        let set = cfg.policy.scoped(comp)?;
        if rows.iter().all(|r| r.set != set.set()) {
            let explicit = matches!(work, Work::Adopt);
            let adopted = adopt::adopt(b, set, cfg, session, how, explicit).await?;
            if adopted.as_ref().is_some_and(|a| !a.versions.is_empty()) {
                rows = read(b).await?;
            }
            report.adopted = adopted;
        } else {
            tracing::debug!(
                set = set.set(),
                rows = rows.len(),
                "the set's history is not empty: nothing to adopt"
            );
        }
    }
    let mut ctx = Ctx {
        cfg,
        applied_by: cfg.applied_by(),
        cockroach: session.product == Product::CockroachDb,
        multi: comp.is_multi(),
        guard,
        report,
    };
    if ctx.cockroach {
        ctx.warn(Warning::CockroachDb);
    }
    match work {
        Work::Adopt => Ok(()),
        Work::Repair(r) => {
            plan::check_sets(comp, &rows)?;
            repair::repair(b, comp, &rows, r, &mut ctx).await
        }
        Work::Migrate => {
            let plan = decide(b, comp, cfg, session, &rows, work).await?;
            apply::migrate(b, comp, &rows, plan, &mut ctx).await
        }
        Work::Revert(_) => {
            let plan = decide(b, comp, cfg, session, &rows, work).await?;
            revert::revert(b, &plan.revert, &mut ctx).await
        }
        Work::Reset => {
            let plan = decide(b, comp, cfg, session, &rows, work).await?;
            reset::reset(b, comp, plan, &mut ctx).await
        }
    }
}

/// Reads the history under the lock (the table exists and is current).
pub(super) async fn read<B: Backend>(b: &mut B) -> Result<Vec<HistoryRow>, Error> {
    let mut rows = b.read_history().await?;
    sort(&mut rows);
    Ok(rows)
}

/// What an operation does, decided from the history it read: the one function both the
/// operation (under the lock) and its dry run call, so that they cannot disagree. A policy
/// that refuses is the error of both.
async fn decide<'m, B: Backend>(
    b: &mut B,
    comp: &Composition<'m>,
    cfg: &Config,
    session: &Session,
    rows: &[HistoryRow],
    work: Work,
) -> Result<Plan<'m>, Error> {
    plan::check_sets(comp, rows)?;
    match work {
        Work::Migrate => plan::plan_up(comp, rows, &cfg.policy),
        Work::Revert(r) => Ok(Plan {
            revert: plan::plan_down(comp, rows, r, &cfg.policy)?,
            ..Plan::default()
        }),
        Work::Reset => reset::decide(b, comp, cfg, session, rows).await,
        // Adoption was decided before; a repair checks its own preconditions.
        Work::Adopt | Work::Repair(_) => Ok(Plan::default()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        let ok = Config::default();
        assert!(ok.validate().is_ok());
        let long = Config {
            table: "x".repeat(58),
            ..Config::default()
        };
        assert!(matches!(long.validate(), Err(Error::Config(_))));
        let nul = Config {
            schema: Some("a\0b".into()),
            ..Config::default()
        };
        assert!(matches!(nul.validate(), Err(Error::Config(_))));
        assert_eq!(truncate("héllo", 2), "h");
    }
}
