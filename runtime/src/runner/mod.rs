//! The runner: every operation Preflight performs on a database, each written once, whatever
//! the driver.
//!
//! * `mod.rs` — [`Runner`] and its public operations, each once per flavour (plain: a blocking
//!   [`Connection`]; `_async`: an [`AsyncConnection`]), and the same operations on a migration
//!   set with the default settings ([`set_operations!`]);
//! * `config.rs` — the settings and the builder methods;
//! * `run.rs` — the one loop (fast path, lock, read, decide, execute, unlock) and its dry run,
//!   which decides the same way and returns a [`Plan`];
//! * `lock.rs` — taking the migration lock with back-off, the guard that holds it, releasing it;
//! * `apply.rs` — applying migrations: transactions, pipelined windows, grouped mode, and
//!   statement-by-statement execution with recorded progress;
//! * `revert.rs`, `repair.rs`, `adopt.rs`, `reset.rs` — the other operations' locked work.

mod adopt;
mod apply;
mod config;
mod lock;
mod repair;
mod reset;
mod revert;
pub(crate) mod run;

pub(crate) use config::Config;
pub use config::DEFAULT_TABLE;
pub use repair::Repair;

use crate::connection::{AsyncConnection, AsyncPool, Connection, Pool};
use crate::error::Error;
use crate::history::HistoryRow;
use crate::plan::{Plan, Revert};
use crate::report::Report;
use crate::{Migrations, Version};

/// A configured run over a migration set: history table, lock, policies. Build it with
/// [`Migrations::runner`] and the builder methods, then call an operation.
///
/// Every operation has one name whatever the database and driver: the plain method takes a
/// blocking [`Connection`] (`postgres::Client`, `rusqlite::Connection`, an r2d2 connection),
/// its `_async` twin an [`AsyncConnection`] (`tokio_postgres::Client`, deadpool and bb8
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
///
/// Every operation that writes takes the migration lock first (see [`crate::lock`]) and
/// releases it on every path; a dry run reads the same things and applies the same policies
/// without the lock and without writing.
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
/// in rollback-journal mode every commit stays synced.
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
    pub(crate) set: &'m Migrations,
    pub(crate) cfg: Config,
}

impl Migrations {
    /// A runner with the defaults: table `preflight_history` in the current schema, advisory
    /// lock with a 60 s timeout, one transaction per migration, and the default policies
    /// (see [`crate::plan`]).
    pub fn runner(&self) -> Runner<'_> {
        Runner {
            set: self,
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

/// The operations. Each exists once per flavour and only hands its work to the connection's
/// driver (see `connection`), which runs it on its backend: the work itself is written once,
/// in `run.rs` and the modules it calls.
impl<'m> Runner<'m> {
    /// A resumption is a run up to the version that continues unfinished migrations.
    fn resuming(&self, version: Version) -> Runner<'m> {
        let mut runner = self.clone();
        runner.cfg.policy.target = Some(version);
        runner.cfg.policy.resume_unfinished = true;
        runner
    }

    /// Migrates: the fast path (one query) when the database is current, otherwise lock, read
    /// the history, plan, apply, record, unlock. Returns what was applied.
    ///
    /// ```no_run
    /// # use preflight_runtime::{MigrationSpec, Migrations};
    /// # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "init", "CREATE TABLE t (id int);")]).unwrap();
    /// let mut client = postgres::Client::connect("postgres://app@localhost/app", postgres::NoTls)?;
    /// let report = migrations.runner().run(&mut client)?;
    /// assert!(report.fast_path || report.lock_taken);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run<C: Connection + ?Sized>(&self, conn: &mut C) -> Result<Report, Error> {
        conn.driver().run(self, Work::Migrate)
    }

    /// [`Runner::run`] on an async connection. On tokio-postgres, consecutive transactional
    /// migrations are sent in windows of up to 64, one round trip each, every migration still
    /// in its own transaction (see "Pipelining" above).
    ///
    /// ```no_run
    /// # use preflight_runtime::Migrations;
    /// # async fn f(migrations: &Migrations) -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut client, connection) =
    ///     tokio_postgres::connect("postgres://app@localhost/app", tokio_postgres::NoTls).await?;
    /// tokio::spawn(connection);
    /// let report = migrations.runner().out_of_order(true).run_async(&mut client).await?;
    /// println!("{report}");
    /// # Ok(()) }
    /// ```
    pub async fn run_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
    ) -> Result<Report, Error> {
        conn.driver().run(self, Work::Migrate).await
    }

    /// What [`Runner::run`] would do, without the lock and without writing: the same fast
    /// path, history read, adoption check and policies. A refusal is the same error.
    pub fn plan<C: Connection + ?Sized>(&self, conn: &mut C) -> Result<Plan<'m>, Error> {
        conn.driver().plan(self, Work::Migrate)
    }

    /// [`Runner::plan`] on an async connection.
    pub async fn plan_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
    ) -> Result<Plan<'m>, Error> {
        conn.driver().plan(self, Work::Migrate).await
    }

    /// Reverts applied migrations, newest first, each with its down body and its history row
    /// removed in one transaction. Refuses before touching anything when one in the range has
    /// no down body, was changed since it was applied, or any migration is unfinished.
    pub fn revert<C: Connection + ?Sized>(
        &self,
        conn: &mut C,
        revert: Revert,
    ) -> Result<Report, Error> {
        conn.driver().run(self, Work::Revert(revert))
    }

    /// [`Runner::revert`] on an async connection.
    pub async fn revert_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
        revert: Revert,
    ) -> Result<Report, Error> {
        conn.driver().run(self, Work::Revert(revert)).await
    }

    /// What [`Runner::revert`] would revert ([`Plan::revert`]), without the lock and without
    /// writing.
    pub fn plan_revert<C: Connection + ?Sized>(
        &self,
        conn: &mut C,
        revert: Revert,
    ) -> Result<Plan<'m>, Error> {
        conn.driver().plan(self, Work::Revert(revert))
    }

    /// [`Runner::plan_revert`] on an async connection.
    pub async fn plan_revert_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
        revert: Revert,
    ) -> Result<Plan<'m>, Error> {
        conn.driver().plan(self, Work::Revert(revert)).await
    }

    /// Repairs the history under the lock, recorded in `<table>_log` (see [`Repair`]).
    pub fn repair<C: Connection + ?Sized>(
        &self,
        conn: &mut C,
        repair: Repair,
    ) -> Result<Report, Error> {
        match repair {
            Repair::Resume(v) => conn.driver().run(&self.resuming(v), Work::Migrate),
            _ => conn.driver().run(self, Work::Repair(repair)),
        }
    }

    /// [`Runner::repair`] on an async connection.
    pub async fn repair_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
        repair: Repair,
    ) -> Result<Report, Error> {
        match repair {
            Repair::Resume(v) => conn.driver().run(&self.resuming(v), Work::Migrate).await,
            _ => conn.driver().run(self, Work::Repair(repair)).await,
        }
    }

    /// Takes another tool's history over, explicitly, and applies nothing: under the lock,
    /// while Preflight's history is empty, records in one transaction the versions applied by
    /// the tool [`Runner::adoption`] names (default: whichever is found). Refuses, untouched,
    /// when there is nothing to adopt or it cannot be adopted ([`Error::Adopt`]). With a
    /// non-empty history nothing happens and [`Report::adopted`] is `None`.
    pub fn adopt<C: Connection + ?Sized>(&self, conn: &mut C) -> Result<Report, Error> {
        conn.driver().run(self, Work::Adopt)
    }

    /// [`Runner::adopt`] on an async connection.
    pub async fn adopt_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
    ) -> Result<Report, Error> {
        conn.driver().run(self, Work::Adopt).await
    }

    /// What [`Runner::adopt`] would record ([`Plan::adopted`]), without the lock and without
    /// writing; refused the same way (nothing to adopt, a dirty or disagreeing history).
    pub fn plan_adopt<C: Connection + ?Sized>(&self, conn: &mut C) -> Result<Plan<'m>, Error> {
        conn.driver().plan(self, Work::Adopt)
    }

    /// [`Runner::plan_adopt`] on an async connection.
    pub async fn plan_adopt_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
    ) -> Result<Plan<'m>, Error> {
        conn.driver().plan(self, Work::Adopt).await
    }

    /// For development: back to a freshly migrated database, under the lock. When every
    /// applied migration can be reverted (each has a down body, unchanged since it was
    /// applied, none unfinished) they are reverted, newest first; otherwise every object of
    /// the history table's schema is dropped, in one transaction (see [`Plan::teardown`]).
    /// Then every migration is applied. **It destroys data**: see [`Runner::plan_reset`] first.
    pub fn reset<C: Connection + ?Sized>(&self, conn: &mut C) -> Result<Report, Error> {
        conn.driver().run(self, Work::Reset)
    }

    /// [`Runner::reset`] on an async connection.
    pub async fn reset_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
    ) -> Result<Report, Error> {
        conn.driver().run(self, Work::Reset).await
    }

    /// What [`Runner::reset`] would revert or drop, then apply, without the lock and without
    /// writing.
    pub fn plan_reset<C: Connection + ?Sized>(&self, conn: &mut C) -> Result<Plan<'m>, Error> {
        conn.driver().plan(self, Work::Reset)
    }

    /// [`Runner::plan_reset`] on an async connection.
    pub async fn plan_reset_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
    ) -> Result<Plan<'m>, Error> {
        conn.driver().plan(self, Work::Reset).await
    }

    /// Reads the history, oldest first (no lock; empty when the table does not exist yet).
    pub fn history<C: Connection + ?Sized>(&self, conn: &mut C) -> Result<Vec<HistoryRow>, Error> {
        conn.driver().history(self)
    }

    /// [`Runner::history`] on an async connection.
    pub async fn history_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
    ) -> Result<Vec<HistoryRow>, Error> {
        conn.driver().history(self).await
    }

    /// Takes a connection from a blocking pool, migrates, and only then hands the pool back,
    /// with what was applied. A connection whose run failed never returns to the pool (see
    /// [`Pool`]).
    ///
    /// ```no_run
    /// # #[cfg(feature = "r2d2")]
    /// # fn f(migrations: &preflight_runtime::Migrations) -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = r2d2_postgres::PostgresConnectionManager::new(
    ///     "postgres://app@localhost/app".parse()?,
    ///     postgres::NoTls,
    /// );
    /// let (pool, report) = migrations.runner().ready(r2d2::Pool::new(manager)?)?;
    /// println!("{report}");
    /// # drop(pool); Ok(()) }
    /// ```
    pub fn ready<P: Pool>(&self, pool: P) -> Result<(P, Report), Error> {
        let report = pool.migrate(self)?;
        Ok((pool, report))
    }

    /// Takes a connection from an async pool, migrates, and only then hands the pool back,
    /// with what was applied. A connection whose run failed never returns to the pool (see
    /// [`AsyncPool`]).
    ///
    /// ```no_run
    /// # #[cfg(feature = "deadpool")]
    /// # async fn f(migrations: &preflight_runtime::Migrations) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut cfg = deadpool_postgres::Config::new();
    /// cfg.url = Some("postgres://app@localhost/app".into());
    /// let pool = cfg.create_pool(Some(deadpool_postgres::Runtime::Tokio1), tokio_postgres::NoTls)?;
    /// let (pool, report) = migrations.runner().application("api 1.0").ready_async(pool).await?;
    /// println!("{report}");
    /// # drop(pool); Ok(()) }
    /// ```
    pub async fn ready_async<P: AsyncPool>(&self, pool: P) -> Result<(P, Report), Error> {
        let report = pool.migrate(self).await?;
        Ok((pool, report))
    }
}

/// The runner's operations on a migration set, with the default settings: `set.op(conn, ..)`
/// is `set.runner().op(conn, ..)`. Written once here for every kind of set; the type needs a
/// `runner(&self) -> Runner<'_>`.
macro_rules! set_operations {
    ($set:ty) => {
        /// The operations with the default settings (see [`Runner`] for each, and
        /// [`runner`](Self::runner) to change a setting).
        impl $set {
            /// [`Runner::run`] with the default settings.
            ///
            /// ```no_run
            /// # use preflight_runtime::Migrations;
            /// # #[cfg(all(feature = "postgres", feature = "sqlite"))]
            /// # fn f(migrations: &Migrations) -> Result<(), Box<dyn std::error::Error>> {
            /// let mut client = postgres::Client::connect("postgres://app@localhost/app", postgres::NoTls)?;
            /// migrations.run(&mut client)?;
            /// let mut conn = rusqlite::Connection::open("app.db")?;
            /// migrations.run(&mut conn)?; // the same call on SQLite
            /// # Ok(()) }
            /// ```
            pub fn run<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().run(conn)
            }

            /// [`Runner::run_async`] with the default settings.
            pub async fn run_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().run_async(conn).await
            }

            /// [`Runner::plan`] with the default settings.
            pub fn plan<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Plan<'_>, $crate::Error> {
                self.runner().plan(conn)
            }

            /// [`Runner::plan_async`] with the default settings.
            pub async fn plan_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Plan<'_>, $crate::Error> {
                self.runner().plan_async(conn).await
            }

            /// [`Runner::revert`] with the default settings.
            pub fn revert<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
                revert: $crate::Revert,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().revert(conn, revert)
            }

            /// [`Runner::revert_async`] with the default settings.
            pub async fn revert_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
                revert: $crate::Revert,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().revert_async(conn, revert).await
            }

            /// [`Runner::plan_revert`] with the default settings.
            pub fn plan_revert<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
                revert: $crate::Revert,
            ) -> Result<$crate::Plan<'_>, $crate::Error> {
                self.runner().plan_revert(conn, revert)
            }

            /// [`Runner::plan_revert_async`] with the default settings.
            pub async fn plan_revert_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
                revert: $crate::Revert,
            ) -> Result<$crate::Plan<'_>, $crate::Error> {
                self.runner().plan_revert_async(conn, revert).await
            }

            /// [`Runner::repair`] with the default settings.
            pub fn repair<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
                repair: $crate::Repair,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().repair(conn, repair)
            }

            /// [`Runner::repair_async`] with the default settings.
            pub async fn repair_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
                repair: $crate::Repair,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().repair_async(conn, repair).await
            }

            /// [`Runner::adopt`] with the default settings (whichever tool is found).
            pub fn adopt<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().adopt(conn)
            }

            /// [`Runner::adopt_async`] with the default settings.
            pub async fn adopt_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().adopt_async(conn).await
            }

            /// [`Runner::plan_adopt`] with the default settings.
            pub fn plan_adopt<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Plan<'_>, $crate::Error> {
                self.runner().plan_adopt(conn)
            }

            /// [`Runner::plan_adopt_async`] with the default settings.
            pub async fn plan_adopt_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Plan<'_>, $crate::Error> {
                self.runner().plan_adopt_async(conn).await
            }

            /// [`Runner::reset`] with the default settings (development only: it destroys
            /// data).
            pub fn reset<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().reset(conn)
            }

            /// [`Runner::reset_async`] with the default settings.
            pub async fn reset_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().reset_async(conn).await
            }

            /// [`Runner::plan_reset`] with the default settings.
            pub fn plan_reset<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Plan<'_>, $crate::Error> {
                self.runner().plan_reset(conn)
            }

            /// [`Runner::plan_reset_async`] with the default settings.
            pub async fn plan_reset_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Plan<'_>, $crate::Error> {
                self.runner().plan_reset_async(conn).await
            }

            /// [`Runner::history`] with the default settings.
            pub fn history<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<Vec<$crate::HistoryRow>, $crate::Error> {
                self.runner().history(conn)
            }

            /// [`Runner::history_async`] with the default settings.
            pub async fn history_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<Vec<$crate::HistoryRow>, $crate::Error> {
                self.runner().history_async(conn).await
            }

            /// [`Runner::ready`] with the default settings.
            pub fn ready<P: $crate::Pool>(
                &self,
                pool: P,
            ) -> Result<(P, $crate::Report), $crate::Error> {
                self.runner().ready(pool)
            }

            /// [`Runner::ready_async`] with the default settings.
            ///
            /// ```no_run
            /// # #[cfg(feature = "bb8")]
            /// # async fn f(migrations: &preflight_runtime::Migrations) -> Result<(), Box<dyn std::error::Error>> {
            /// let manager = bb8_postgres::PostgresConnectionManager::new_from_stringlike(
            ///     "postgres://app@localhost/app",
            ///     tokio_postgres::NoTls,
            /// )?;
            /// let (pool, report) = migrations.ready_async(bb8::Pool::builder().build(manager).await?).await?;
            /// println!("{report}");
            /// # drop(pool); Ok(()) }
            /// ```
            pub async fn ready_async<P: $crate::AsyncPool>(
                &self,
                pool: P,
            ) -> Result<(P, $crate::Report), $crate::Error> {
                self.runner().ready_async(pool).await
            }
        }
    };
}

set_operations!(Migrations);
