//! Drift (see [`crate::drift`]): the live catalog against the catalog of a scratch database
//! where the migrations the live history records as applied were built. No lock, nothing
//! written to the live database.

use std::collections::BTreeSet;

use crate::backend::{Backend, ScratchWork};
use crate::composition::Composition;
use crate::drift::{compare, Catalog, Drift};
use crate::error::Error;
use crate::lock::LockStrategy;
use crate::plan::Policy;
use crate::report::{Report, Warning};
use crate::{Migrations, Version};

use super::run::check;
use super::{Config, Runner, Work};

/// Compares the live schema with what its applied migrations build.
pub(crate) async fn drift<B: Backend>(b: &mut B, runner: &Runner<'_>) -> Result<Drift, Error> {
    let (comp, cfg) = (&*runner.comp, &runner.cfg);
    check(comp, cfg)?;
    let mut rows = b.read_history_if_any().await?;
    super::upgrade::assign_legacy(comp, &mut rows);
    let applied: BTreeSet<(String, Version)> = rows
        .iter()
        .filter(|r| r.is_applied())
        .map(|r| (r.set.clone(), r.version))
        .collect();
    let is_applied = |set: &str, v: Version| applied.contains(&(set.to_owned(), v));
    let subsets: Vec<Migrations> = comp
        .sets()
        .map(|s| s.subset(|m| is_applied(s.set(), m.version())))
        .collect();
    let built_set = comp.restricted(&subsets);
    let surroundings = b.surroundings(&cfg.table).await?;
    let live = b.catalog(&surroundings).await?;
    let scratch_cfg = Config {
        // The scratch database is this run's alone.
        lock: LockStrategy::None,
        policy: Policy::default(),
        grouped: false,
        sql_lock_timeout: None,
        adopt: crate::adopt::Adopt::Off,
        warn_on_drift: false,
        schema: Some(surroundings.schema.clone()),
        ..cfg.clone()
    };
    let built = b
        .on_scratch(Build {
            set: &built_set,
            cfg: scratch_cfg,
            surroundings: &surroundings,
        })
        .await?;
    tracing::debug!(live = live.len(), built = built.len(), "catalogs read");
    Ok(Drift {
        differences: compare(&live, &built),
        compared: built_set.order().map(|(_, m)| m.version()).collect(),
        pending: comp
            .order()
            .filter(|(set, m)| !is_applied(set, m.version()))
            .map(|(_, m)| m.version())
            .collect(),
        unknown: applied
            .iter()
            .filter(|(set, v)| comp.set(set).is_none_or(|s| s.get(*v).is_none()))
            .map(|(_, v)| *v)
            .collect(),
    })
}

/// What a run with `warn_on_drift` adds to its report: the drift as a warning, or why it
/// could not be checked (a boot never fails because of drift).
pub(crate) async fn warn_on_drift<B: Backend>(b: &mut B, runner: &Runner<'_>, report: &mut Report) {
    let warning = match drift(b, runner).await {
        Ok(d) if d.is_clean() => return,
        Ok(d) => Warning::Drift(Box::new(d)),
        Err(e) => Warning::DriftUnchecked {
            reason: e.to_string(),
        },
    };
    tracing::warn!("{warning}");
    report.warnings.push(warning);
}

/// Building the migrations in the scratch database, then reading its catalog.
struct Build<'a> {
    set: &'a Composition<'a>,
    cfg: Config,
    surroundings: &'a crate::backend::Surroundings,
}

impl ScratchWork for Build<'_> {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn search_path(&self) -> Option<&str> {
        self.surroundings.search_path.as_deref()
    }

    async fn run<B: Backend>(self, scratch: &mut B) -> Result<Catalog, Error> {
        let runner = Runner {
            comp: std::borrow::Cow::Borrowed(self.set),
            cfg: self.cfg,
        };
        super::run::run_only(scratch, &runner, Work::Migrate)
            .await
            .map_err(|e| Error::Scratch(Box::new(e)))?;
        scratch.catalog(self.surroundings).await
    }
}
