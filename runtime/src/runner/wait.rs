//! Waiting, without migrating, for another process to bring the database up to date: what a
//! replica does where one job migrates. Never takes the lock, never writes; each poll is the
//! one fast-path query. What is still missing is decided the way `run` decides (its dry run),
//! once when the fast path first says no and then every [`DECIDE_EVERY`], so that a database
//! that is *ahead* of the binary (a newer release migrated it) is accepted as `run` accepts
//! it, and a refusal (a changed file, a failed migration) fails at once instead of waiting.

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::error::Error;
use crate::history::State;
use crate::lock::Backoff;
use crate::report::Report;
use crate::Version;

use super::fast_path::fast_path;
use super::run::{check, dry_run};
use super::{Runner, Work};

/// How often a waiting replica reads the history to learn what it is waiting for (between
/// these, a poll is the fast-path query alone).
const DECIDE_EVERY: Duration = Duration::from_secs(5);

/// The first pause between polls; it doubles up to [`MAX_POLL_DELAY`], plus jitter, so that
/// many replicas do not poll in lockstep.
const FIRST_POLL_DELAY: Duration = Duration::from_millis(20);
const MAX_POLL_DELAY: Duration = Duration::from_secs(1);

/// What the database still lacks for this binary, as last decided.
#[derive(Debug)]
struct Missing {
    pending: Vec<Version>,
    in_progress: Option<Version>,
}

/// Polls until the database is current for this binary (see the module docs), or fails
/// after the runner's wait timeout naming what is pending.
pub(crate) async fn wait<B: Backend>(b: &mut B, runner: &Runner<'_>) -> Result<Report, Error> {
    let (comp, cfg) = (&*runner.comp, &runner.cfg);
    check(comp, cfg)?;
    let started = Instant::now();
    let deadline = started + cfg.wait_timeout;
    let mut backoff = Backoff::between(FIRST_POLL_DELAY, MAX_POLL_DELAY, Backoff::seed());
    let mut decide_at = started;
    let mut report = Report::default();
    loop {
        if fast_path(b, comp, cfg).await? {
            report.fast_path = true;
            break;
        }
        let now = Instant::now();
        if now >= decide_at || now >= deadline {
            let missing = match dry_run(b, runner, Work::Migrate).await {
                // Nothing to apply, though not current by the fast path: ahead of the binary,
                // or rows another binary wrote. `run` would boot (with its warnings): so does
                // a waiting replica.
                Ok(plan) if plan.apply.is_empty() => {
                    report.warnings = plan.warnings;
                    break;
                }
                Ok(plan) => Missing {
                    pending: plan.apply.iter().map(|s| s.migration().version()).collect(),
                    in_progress: None,
                },
                // A no-transaction migration running: its process is migrating.
                Err(Error::Unfinished(u)) if u.state == State::InProgress => Missing {
                    // The unfinished migration's set (named when there are several), from it on.
                    pending: comp
                        .order()
                        .filter(|(set, m)| {
                            u.set.as_deref().is_none_or(|s| s == *set) && m.version() >= u.version
                        })
                        .map(|(_, m)| m.version())
                        .collect(),
                    in_progress: Some(u.version),
                },
                Err(refusal) => return Err(refusal),
            };
            if now >= deadline {
                return Err(Error::WaitTimeout {
                    waited: started.elapsed(),
                    pending: missing.pending,
                    in_progress: missing.in_progress,
                });
            }
            tracing::info!(
                pending = %crate::error::list(&missing.pending),
                "waiting for another process to migrate the database"
            );
            decide_at = now + DECIDE_EVERY;
        }
        b.sleep(backoff.delay(deadline.saturating_duration_since(now)))
            .await;
    }
    report.waited = started.elapsed();
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    tracing::debug!(
        waited_ms = report.waited.as_millis() as u64,
        "database is current for this binary"
    );
    Ok(report)
}
