//! The public operations, each once per flavour: the plain method takes a blocking
//! [`Connection`], its `_async` twin an [`AsyncConnection`]; each only hands its work to the
//! connection's driver (see `connection`), which runs it on its backend through the runner.
//! [`set_operations!`] puts the same operations, with the default settings, on a migration
//! set.

use crate::connection::{AsyncConnection, Connection};
use crate::drift::Drift;
use crate::error::Error;
use crate::history::HistoryRow;
use crate::plan::{Plan, Revert};
use crate::report::Report;
use crate::runner::{Repair, Runner, Work};
use crate::Migrations;

/// The operations. Each exists once per flavour and only hands its work to the connection's
/// driver (see `connection`), which runs it on its backend: the work itself is written once,
/// in `run.rs` and the modules it calls.
impl<'m> Runner<'m> {
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

    /// Repairs the history under the lock, recorded in the rows it changes (see [`Repair`]).
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

    /// Waits, without migrating, until another process has brought the database up to date
    /// for this binary: where one job migrates (a Kubernetes init job, a deploy step) and the
    /// replicas must neither migrate nor serve an old schema. Never takes the lock and never
    /// writes; each poll is the one fast-path query (about every second at most, with
    /// jitter). Returns as soon as the database is current, or *ahead* of the binary as
    /// `run` accepts it (with the same warnings; [`Report::waited`] tells how long it
    /// waited). Fails at once when `run` would refuse (a changed file, a failed migration),
    /// and after [`Runner::wait_timeout`] (default 5 minutes) with [`Error::WaitTimeout`]
    /// naming what is still pending.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use preflight_runtime::{MigrationSpec, Migrations};
    /// # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id int);")]).unwrap();
    /// let mut client = postgres::Client::connect("postgres://app@localhost/app", postgres::NoTls)?;
    /// let report = migrations.runner().wait_timeout(Duration::from_secs(120)).wait(&mut client)?;
    /// println!("schema ready after {:?}", report.waited);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait<C: Connection + ?Sized>(&self, conn: &mut C) -> Result<Report, Error> {
        conn.driver().wait(self)
    }

    /// [`Runner::wait`] on an async connection.
    pub async fn wait_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
    ) -> Result<Report, Error> {
        conn.driver().wait(self).await
    }

    /// Compares the live schema with what the migrations build (see [`crate::drift`]): the
    /// migrations the history records as applied are built in a scratch database (PostgreSQL:
    /// created on the server of [`Runner::scratch`], which needs the `CREATEDB` privilege,
    /// and dropped afterwards on every path; SQLite: in memory), and both catalogs are
    /// compared. No lock is taken and nothing is written to the live database. Preflight's own
    /// tables are not drift.
    ///
    /// ```no_run
    /// # use preflight_runtime::{MigrationSpec, Migrations, Scratch};
    /// # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id int);")]).unwrap();
    /// let url = "postgres://app@localhost/app";
    /// let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    /// let drift = migrations
    ///     .runner()
    ///     .scratch(Scratch::postgres(url.parse()?, postgres::NoTls))
    ///     .drift(&mut client)?;
    /// if !drift.is_clean() {
    ///     eprint!("{drift}"); // CHANGE KIND NAME DETAIL, one line per difference
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drift<C: Connection + ?Sized>(&self, conn: &mut C) -> Result<Drift, Error> {
        conn.driver().drift(self)
    }

    /// [`Runner::drift`] on an async connection (needs a tokio runtime: the scratch
    /// database's connections run on it).
    pub async fn drift_async<C: AsyncConnection + ?Sized>(
        &self,
        conn: &mut C,
    ) -> Result<Drift, Error> {
        conn.driver().drift(self).await
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

            /// [`Runner::wait`] with the default settings (at most 5 minutes).
            pub fn wait<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().wait(conn)
            }

            /// [`Runner::wait_async`] with the default settings.
            pub async fn wait_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Report, $crate::Error> {
                self.runner().wait_async(conn).await
            }

            /// [`Runner::drift`] with the default settings (on PostgreSQL, set
            /// [`Runner::scratch`] first: `set.runner().scratch(..).drift(conn)`).
            ///
            /// ```
            /// # use preflight_runtime::{MigrationSpec, Migrations};
            /// # #[cfg(feature = "sqlite")] {
            /// let set = Migrations::from_specs(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id INTEGER);")]).unwrap();
            /// let mut conn = rusqlite::Connection::open_in_memory().unwrap();
            /// set.run(&mut conn).unwrap();
            /// conn.execute_batch("CREATE INDEX hot_fix ON t (id)").unwrap();
            /// let drift = set.drift(&mut conn).unwrap();
            /// assert_eq!(drift.differences[0].name, "hot_fix");
            /// # }
            /// ```
            pub fn drift<C: $crate::Connection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Drift, $crate::Error> {
                self.runner().drift(conn)
            }

            /// [`Runner::drift_async`] with the default settings.
            pub async fn drift_async<C: $crate::AsyncConnection + ?Sized>(
                &self,
                conn: &mut C,
            ) -> Result<$crate::Drift, $crate::Error> {
                self.runner().drift_async(conn).await
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
set_operations!(crate::Composition<'_>);
