//! Taking the migration lock (polled with back-off, see [`crate::lock`]), the guard that holds
//! it while the run works, and its release.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::backend::{Backend, Product, Session};
use crate::error::Error;
use crate::lock::{advisory_key, Backoff, LockStrategy};
use crate::report::Report;

use super::fast_path::fast_path;
use super::{Runner, Work};

/// The lock a run holds. Released by [`LockGuard::release`], which every path of the run
/// calls (the release is a database round trip, which `Drop` cannot await); dropping it
/// unreleased (a panic) is logged, and the pool helpers never hand such a connection out.
pub(crate) struct LockGuard {
    kind: Held,
    released: bool,
}

enum Held {
    None,
    Advisory(i64),
    Lease {
        owner: String,
        ttl: Duration,
        renewed: Instant,
    },
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released && !matches!(self.kind, Held::None) {
            tracing::error!(
                "migration lock dropped without release (panic?): the connection may still hold \
                 it; close the connection"
            );
        }
    }
}

impl LockGuard {
    /// Whether the run holds the session's advisory lock (what makes pipelined windows safe,
    /// see `apply::window_limit`).
    pub fn is_advisory(&self) -> bool {
        matches!(self.kind, Held::Advisory(_))
    }

    /// Renews the lease when a third of its time-to-live has passed.
    pub async fn renew_if_due<B: Backend>(&mut self, b: &mut B) -> Result<(), Error> {
        if let Held::Lease {
            owner,
            ttl,
            renewed,
        } = &mut self.kind
        {
            if renewed.elapsed() >= *ttl / 3 {
                if !b.renew_lease(owner, *ttl).await? {
                    return Err(Error::LeaseLost {
                        owner: owner.clone(),
                    });
                }
                *renewed = Instant::now();
                tracing::debug!("lease renewed");
            }
        }
        Ok(())
    }

    pub async fn release<B: Backend>(mut self, b: &mut B) -> Result<(), Error> {
        let result = match &self.kind {
            Held::None => Ok(()),
            Held::Advisory(key) => b.advisory_unlock(*key).await,
            Held::Lease { owner, .. } => b.release_lease(owner).await,
        };
        if result.is_ok() {
            self.released = true;
            tracing::debug!("migration lock released");
        }
        result
    }
}

/// Takes the lock, polling with [`Backoff`]. A migrating run re-runs the fast-path query before
/// each new attempt: when the holder has meanwhile brought the database up to date, it returns
/// `None` without ever taking the lock (`fast_path`, not `lock_taken`), so that replicas booting
/// together do not each take the lock in turn only to find nothing to do.
pub(super) async fn acquire<B: Backend>(
    b: &mut B,
    runner: &Runner<'_>,
    session: &Session,
    work: Work,
    report: &mut Report,
) -> Result<Option<LockGuard>, Error> {
    let cfg = &runner.cfg;
    let strategy = match (session.product, cfg.lock) {
        // CockroachDB's advisory functions always succeed: they would exclude nobody.
        (Product::CockroachDb, LockStrategy::Advisory) => LockStrategy::lease(),
        (_, s) => s,
    };
    let started = Instant::now();
    let deadline = started + cfg.lock_timeout;
    let mut backoff = Backoff::new(Backoff::seed());
    let kind = match strategy {
        LockStrategy::None => Held::None,
        LockStrategy::Advisory => {
            let key = advisory_key(&session.database, &session.schema, &cfg.table);
            let mut first = true;
            loop {
                if !std::mem::take(&mut first) && became_current(b, runner, work).await? {
                    return Ok(waited_out(report, started));
                }
                if b.try_advisory_lock(key).await? {
                    break Held::Advisory(key);
                }
                let now = Instant::now();
                if now >= deadline {
                    let holder = b.advisory_holder(key).await?;
                    return Err(Error::LockTimeout {
                        waited: started.elapsed(),
                        holder: holder.map(Box::new),
                    });
                }
                tracing::debug!("migration lock busy, waiting");
                b.sleep(backoff.delay(deadline - now)).await;
            }
        }
        LockStrategy::Lease { ttl } => {
            let owner = format!(
                "{} #{}",
                cfg.applied_by(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            );
            let mut first = true;
            loop {
                if !std::mem::take(&mut first) && became_current(b, runner, work).await? {
                    return Ok(waited_out(report, started));
                }
                match b.try_lease(&owner, ttl).await? {
                    Ok(()) => {
                        break Held::Lease {
                            owner,
                            ttl,
                            renewed: Instant::now(),
                        }
                    }
                    Err(holder) => {
                        let now = Instant::now();
                        if now >= deadline {
                            return Err(Error::LockTimeout {
                                waited: started.elapsed(),
                                holder: holder.map(Box::new),
                            });
                        }
                        b.sleep(backoff.delay(deadline - now)).await;
                    }
                }
            }
        }
    };
    report.lock_taken = !matches!(kind, Held::None);
    report.lock_wait = started.elapsed();
    tracing::info!(
        waited_ms = report.lock_wait.as_millis() as u64,
        "migration lock taken"
    );
    Ok(Some(LockGuard {
        kind,
        released: false,
    }))
}

/// Whether a migrating run that waits for the lock can stop waiting: the fast path now finds
/// the database current (one query, no lock).
async fn became_current<B: Backend>(
    b: &mut B,
    runner: &Runner<'_>,
    work: Work,
) -> Result<bool, Error> {
    Ok(matches!(work, Work::Migrate) && fast_path(b, &runner.comp, &runner.cfg).await?)
}

/// The report of a run that found the database current while waiting for the lock.
fn waited_out(report: &mut Report, started: Instant) -> Option<LockGuard> {
    report.fast_path = true;
    report.lock_taken = false;
    report.lock_wait = started.elapsed();
    tracing::debug!(
        waited_ms = report.lock_wait.as_millis() as u64,
        "database became current while waiting for the lock (fast path)"
    );
    None
}
