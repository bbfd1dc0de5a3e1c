//! The runner: the work of every operation Preflight performs on a database, written once over
//! the backend traits, whatever the database and driver. (The public methods that start an
//! operation, one per flavour, are in `operations.rs`; `connection.rs` hands each driver's
//! backend to [`run`].)
//!
//! * `mod.rs` — [`Runner`] (a set and its settings) and [`Work`], what a locked run does;
//! * `config.rs` — the settings and the builder methods;
//! * `run.rs` — the one loop (fast path, lock, read, decide, execute, unlock) and its dry run,
//!   which decides the same way and returns a [`Plan`](crate::Plan);
//! * `fast_path.rs` — the one-query check that the database is current;
//! * `lock.rs` — taking the migration lock with back-off, the guard that holds it, releasing it;
//! * `context.rs` — what the locked work of a run shares;
//! * `apply.rs` — applying migrations: transactions, pipelined windows, grouped mode, and
//!   statement-by-statement execution with recorded progress;
//! * `unit.rs` — one unit of a body run outside Preflight's transaction: a statement, or a
//!   script's whole `BEGIN; ... COMMIT;` block committed together with its progress;
//! * `retry.rs` — bounded retries of a migration blocked by a table lock, and the error naming
//!   the session that holds it;
//! * `revert.rs`, `repair.rs`, `adopt.rs`, `reset.rs` — the other operations' locked work;
//! * `wait.rs` — waiting, without the lock, for another process to migrate;
//! * `drift.rs` — comparing the live schema with what the migrations build.

mod adopt;
mod apply;
mod config;
mod context;
pub(crate) mod drift;
mod fast_path;
mod lock;
mod repair;
mod reset;
mod retry;
mod revert;
pub(crate) mod run;
mod unit;
mod upgrade;
pub(crate) mod wait;

pub(crate) use config::Config;
pub use config::{
    DEFAULT_LOCK_RETRIES, DEFAULT_LOCK_RETRY_DELAY, DEFAULT_SQL_LOCK_TIMEOUT, DEFAULT_TABLE,
    DEFAULT_WAIT_TIMEOUT,
};
pub use repair::Repair;

use std::borrow::Cow;

use crate::composition::Composition;
use crate::plan::Revert;
use crate::{Migrations, Version};

/// A configured run over a migration set: history table, lock, policies. Build it with
/// [`Migrations::runner`] and the builder methods, then call an operation.
///
/// Every operation has one name whatever the database and driver: the plain method takes a
/// blocking [`Connection`](crate::Connection) (`postgres::Client`, `rusqlite::Connection`, an r2d2 connection),
/// its `_async` twin an [`AsyncConnection`](crate::AsyncConnection) (`tokio_postgres::Client`, deadpool and bb8
/// connections). Pools are migrated before they are handed out with [`Runner::ready`] /
/// [`Runner::ready_async`].
///
/// | operation | what it does | dry run |
/// |---|---|---|
/// | [`run`](Runner::run) | applies pending migrations (one query when the database is current) | [`plan`](Runner::plan) |
/// | [`revert`](Runner::revert) | reverts applied migrations with their down bodies | [`plan_revert`](Runner::plan_revert) |
/// | [`repair`](Runner::repair) | mends the history after an operator checked the database ([`Repair`]) | — |
/// | [`adopt`](Runner::adopt) | takes another tool's history over (which tool: [`Runner::adoption`]) | [`plan_adopt`](Runner::plan_adopt) |
/// | [`reset`](Runner::reset) | development: reverts everything (or drops the schema's objects), then applies everything | [`plan_reset`](Runner::plan_reset) |
/// | [`history`](Runner::history) | reads the history table | — |
/// | [`wait`](Runner::wait) | waits, without migrating, until another process has migrated | — |
/// | [`drift`](Runner::drift) | compares the live schema with what the migrations build | — |
///
/// Every operation that writes takes the migration lock first (see [`crate::lock`]) and
/// releases it on every path; a dry run reads the same things and applies the same policies
/// without the lock and without writing.
///
/// A runner works on a composition of sets ([`Composition::runner`], see
/// [`crate::composition`]) the same way; [`Runner::set`] names the set that the versions it is
/// given (a target, a revert, a repair, an adoption) belong to.
///
/// # Durability of a run (PostgreSQL)
///
/// Each transactional migration is applied in its own transaction together with its history
/// row. Every such transaction except the last one of the run commits with
/// `SET LOCAL synchronous_commit = off`: the commit returns without waiting for the WAL flush
/// (one fsync per migration is what made applying many small migrations slow). The last one
/// commits synchronously, and since the WAL is sequential, its flush makes every earlier commit
/// of the run durable as well; the run returns only after it. A server crash before that loses
/// the most recent migrations *whole* (body and history row together), never part of one, and
/// the next boot applies them again. Grouped mode (one transaction), no-transaction migrations
/// and their progress rows, repairs and reverts commit synchronously; on CockroachDB nothing
/// changes. SQLite does the same in WAL mode (`synchronous = NORMAL` for all but the last
/// migration, whose synced commit syncs the WAL before it) when no other database is attached;
/// in rollback-journal mode every commit stays synced. [`Runner::synchronous_commits`] makes
/// every commit of a run synchronous, on both.
///
/// # Pipelining (`run_async`)
///
/// Under the advisory lock, the async driver sends consecutive transactional migrations in
/// windows of up to 64 (and 256 KiB of scripts), one round trip per window instead of one per
/// migration. Each keeps its own transaction and history row. Since a failed transaction's
/// `COMMIT` ends it as a `ROLLBACK` and lets the next `BEGIN` start afresh, every transaction
/// after the first of a window begins by checking that its predecessor's history row is
/// `applied` (a division by zero otherwise), so nothing after a failed migration commits and
/// the error reported is the failed migration's own. A window stops before a no-transaction
/// migration. The blocking drivers, the lease lock, `LockStrategy::None` and CockroachDB apply
/// one migration at a time.
///
/// ```no_run
/// # #[cfg(feature = "postgres")] {
/// use std::time::Duration;
/// use preflight_runtime::{LockStrategy, MigrationSpec, Migrations};
/// let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "init", "CREATE TABLE t (id int);")]).unwrap();
/// let mut client = postgres::Client::connect("postgres://app@localhost/app", postgres::NoTls)?;
/// let report = migrations
///     .runner()
///     .schema("ops")
///     .table("schema_history")
///     .lock(LockStrategy::Advisory)
///     .lock_timeout(Duration::from_secs(30))
///     .application("billing 4.2.0")
///     .run(&mut client)?;
/// println!("applied {:?}", report.applied_versions());
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Runner<'m> {
    pub(crate) comp: Cow<'m, Composition<'m>>,
    pub(crate) cfg: Config,
}

impl Migrations {
    /// A runner with the defaults: table `preflight_history` in the current schema, advisory
    /// lock with a 60 s timeout, one transaction per migration, and the default policies
    /// (see [`crate::plan`]).
    pub fn runner(&self) -> Runner<'_> {
        Runner {
            comp: Cow::Owned(Composition::single(self)),
            cfg: Config::default(),
        }
    }
}

impl<'m> Composition<'m> {
    /// A runner over the composition with the defaults (see [`Migrations::runner`]).
    pub fn runner(&self) -> Runner<'_> {
        Runner {
            comp: Cow::Borrowed(self),
            cfg: Config::default(),
        }
    }
}

/// What a locked run does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Work {
    Migrate,
    /// Adopt another tool's history (explicitly: finding nothing to adopt is an error), and
    /// apply nothing.
    Adopt,
    Revert(Revert),
    Repair(Repair),
    Reset,
}

impl<'m> Runner<'m> {
    /// A resumption is a run up to the version that continues unfinished migrations.
    pub(crate) fn resuming(&self, version: Version) -> Runner<'m> {
        let mut runner = self.clone();
        runner.cfg.policy.target = Some(version);
        runner.cfg.policy.resume_unfinished = true;
        runner
    }
}
