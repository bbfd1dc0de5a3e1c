//! The connections Preflight runs on, behind two sealed traits, so that every operation has
//! one name whatever the driver: plain methods take a blocking [`Connection`], `_async`
//! methods an [`AsyncConnection`] (pools: see `pool`).
//!
//! | trait | implemented for (feature) |
//! |---|---|
//! | [`Connection`] | `postgres::Client` (`postgres`), `rusqlite::Connection` (`sqlite`), `r2d2::PooledConnection<r2d2_postgres::PostgresConnectionManager<_>>` (`r2d2`) |
//! | [`AsyncConnection`] | `tokio_postgres::Client` (`tokio-postgres`), `deadpool_postgres::Object` (`deadpool`), `bb8::PooledConnection<'_, bb8_postgres::PostgresConnectionManager<_>>` (`bb8`) |
//!
//! A connection trait hands the runner a driver ([`Driver`] / [`AsyncDriver`]); the driver
//! builds the backend for that database and runs the operation on it. A new driver is a
//! variant here, its arm in `on_blocking_backend!` or `on_async_backend!`, and one `impl`
//! (never a new method on the runner).

use crate::drift::Drift;
use crate::error::Error;
use crate::history::HistoryRow;
use crate::plan::Plan;
use crate::report::Report;
use crate::runner::{Runner, Work};

pub(crate) mod sealed {
    /// Only Preflight implements its connection and pool traits.
    pub trait Sealed {}
}

/// A blocking database connection Preflight can migrate through: `postgres::Client`
/// (feature `postgres`), `rusqlite::Connection` (`sqlite`) and
/// `r2d2::PooledConnection<r2d2_postgres::PostgresConnectionManager<_>>` (`r2d2`). Every plain
/// (not `_async`) operation of [`Runner`] and [`Migrations`](crate::Migrations) takes one, or
/// a `&mut dyn Connection`. Sealed: Preflight implements it for each driver it supports.
///
/// ```
/// # use preflight_runtime::{MigrationSpec, Migrations};
/// // One function for every blocking driver.
/// fn boot(migrations: &Migrations, conn: &mut impl preflight_runtime::Connection) {
///     migrations.run(conn).expect("migrated");
/// }
/// # #[cfg(feature = "sqlite")] {
/// let set = Migrations::from_specs(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id int);")]).unwrap();
/// boot(&set, &mut rusqlite::Connection::open_in_memory().unwrap());
/// # }
/// ```
pub trait Connection: sealed::Sealed {
    #[doc(hidden)]
    fn driver(&mut self) -> Driver<'_>;
}

/// An async database connection Preflight can migrate through: `tokio_postgres::Client`
/// (feature `tokio-postgres`), `deadpool_postgres::Object` (`deadpool`) and
/// `bb8::PooledConnection<'_, bb8_postgres::PostgresConnectionManager<_>>` (`bb8`). Every
/// `_async` operation of [`Runner`] and [`Migrations`](crate::Migrations) takes one. Sealed.
pub trait AsyncConnection: sealed::Sealed + Send {
    #[doc(hidden)]
    fn driver(&mut self) -> AsyncDriver<'_>;
}

/// A blocking connection, as the runner drives it.
#[doc(hidden)]
pub struct Driver<'c>(Blocking<'c>);

enum Blocking<'c> {
    #[cfg(feature = "postgres")]
    Postgres(&'c mut postgres::Client),
    #[cfg(feature = "sqlite")]
    Sqlite(&'c mut rusqlite::Connection),
    /// Keeps the lifetime used when no blocking driver is compiled in.
    #[allow(dead_code)]
    None(std::convert::Infallible, std::marker::PhantomData<&'c ()>),
}

/// An async connection, as the runner drives it.
#[doc(hidden)]
pub struct AsyncDriver<'c>(Nonblocking<'c>);

enum Nonblocking<'c> {
    #[cfg(feature = "tokio-postgres")]
    Postgres(&'c tokio_postgres::Client),
    /// Keeps the lifetime used when no async driver is compiled in.
    #[allow(dead_code)]
    None(std::convert::Infallible, std::marker::PhantomData<&'c ()>),
}

/// Runs `$body` with `$b` bound to the backend of a blocking driver, to completion: the
/// blocking backends make blocking calls inside their `async fn`s, so each future completes
/// when first polled. One arm per driver.
macro_rules! on_blocking_backend {
    ($driver:expr, $cfg:expr, |$b:ident| $body:expr) => {
        match $driver.0 {
            #[cfg(feature = "postgres")]
            Blocking::Postgres(client) => {
                let $b =
                    &mut crate::postgres::PgBackend::new(crate::postgres::SyncConn(client), $cfg);
                futures_executor::block_on($body)
            }
            #[cfg(feature = "sqlite")]
            Blocking::Sqlite(conn) => {
                let $b = &mut crate::sqlite::SqliteBackend::new(conn, $cfg)?;
                futures_executor::block_on($body)
            }
            Blocking::None(never, _) => match never {},
        }
    };
}

/// Runs `$body` with `$b` bound to the backend of an async driver, awaiting it. One arm per
/// driver.
macro_rules! on_async_backend {
    ($driver:expr, $cfg:expr, |$b:ident| $body:expr) => {
        match $driver.0 {
            #[cfg(feature = "tokio-postgres")]
            Nonblocking::Postgres(client) => {
                let $b = &mut crate::postgres::PgBackend::new(
                    crate::postgres::AsyncConn::new(client),
                    $cfg,
                );
                $body.await
            }
            Nonblocking::None(never, _) => match never {},
        }
    };
}

// What a driver runs: the operation (under the lock), its dry run, or a history read. They
// are spelled out per job instead of going through a generic job trait, whose `async fn`
// would keep the async operations' futures from being provably `Send` (rust-lang/rust#100013).
#[cfg_attr(
    not(any(feature = "postgres", feature = "sqlite")),
    allow(unused_variables, unreachable_code)
)]
impl Driver<'_> {
    pub(crate) fn run(self, runner: &Runner<'_>, work: Work) -> Result<Report, Error> {
        on_blocking_backend!(self, &runner.cfg, |b| crate::runner::run::run(
            b, runner, work
        ))
    }

    pub(crate) fn plan<'m>(self, runner: &Runner<'m>, work: Work) -> Result<Plan<'m>, Error> {
        on_blocking_backend!(self, &runner.cfg, |b| crate::runner::run::dry_run(
            b, runner, work
        ))
    }

    pub(crate) fn history(self, runner: &Runner<'_>) -> Result<Vec<HistoryRow>, Error> {
        on_blocking_backend!(self, &runner.cfg, |b| crate::runner::run::history(
            b, runner
        ))
    }

    pub(crate) fn wait(self, runner: &Runner<'_>) -> Result<Report, Error> {
        on_blocking_backend!(self, &runner.cfg, |b| crate::runner::wait::wait(b, runner))
    }

    pub(crate) fn drift(self, runner: &Runner<'_>) -> Result<Drift, Error> {
        on_blocking_backend!(self, &runner.cfg, |b| crate::runner::drift::drift(
            b, runner
        ))
    }
}

#[cfg_attr(
    not(feature = "tokio-postgres"),
    allow(unused_variables, unreachable_code)
)]
impl AsyncDriver<'_> {
    pub(crate) async fn run(self, runner: &Runner<'_>, work: Work) -> Result<Report, Error> {
        on_async_backend!(self, &runner.cfg, |b| crate::runner::run::run(
            b, runner, work
        ))
    }

    pub(crate) async fn plan<'m>(self, runner: &Runner<'m>, work: Work) -> Result<Plan<'m>, Error> {
        on_async_backend!(self, &runner.cfg, |b| crate::runner::run::dry_run(
            b, runner, work
        ))
    }

    pub(crate) async fn history(self, runner: &Runner<'_>) -> Result<Vec<HistoryRow>, Error> {
        on_async_backend!(self, &runner.cfg, |b| crate::runner::run::history(
            b, runner
        ))
    }

    pub(crate) async fn wait(self, runner: &Runner<'_>) -> Result<Report, Error> {
        on_async_backend!(self, &runner.cfg, |b| crate::runner::wait::wait(b, runner))
    }

    pub(crate) async fn drift(self, runner: &Runner<'_>) -> Result<Drift, Error> {
        on_async_backend!(self, &runner.cfg, |b| crate::runner::drift::drift(
            b, runner
        ))
    }
}

#[cfg(feature = "postgres")]
impl sealed::Sealed for postgres::Client {}

#[cfg(feature = "postgres")]
impl Connection for postgres::Client {
    fn driver(&mut self) -> Driver<'_> {
        Driver(Blocking::Postgres(self))
    }
}

#[cfg(feature = "sqlite")]
impl sealed::Sealed for rusqlite::Connection {}

#[cfg(feature = "sqlite")]
impl Connection for rusqlite::Connection {
    fn driver(&mut self) -> Driver<'_> {
        Driver(Blocking::Sqlite(self))
    }
}

#[cfg(feature = "tokio-postgres")]
impl sealed::Sealed for tokio_postgres::Client {}

#[cfg(feature = "tokio-postgres")]
impl AsyncConnection for tokio_postgres::Client {
    fn driver(&mut self) -> AsyncDriver<'_> {
        AsyncDriver(Nonblocking::Postgres(self))
    }
}

#[cfg(feature = "deadpool")]
impl sealed::Sealed for deadpool_postgres::Object {}

#[cfg(feature = "deadpool")]
impl AsyncConnection for deadpool_postgres::Object {
    fn driver(&mut self) -> AsyncDriver<'_> {
        AsyncDriver(Nonblocking::Postgres(self))
    }
}

#[cfg(feature = "bb8")]
mod bb8_connection {
    use super::*;
    use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
    use tokio_postgres::Socket;

    type Pooled<'p, Tls> = bb8::PooledConnection<'p, bb8_postgres::PostgresConnectionManager<Tls>>;

    impl<Tls> sealed::Sealed for Pooled<'_, Tls>
    where
        Tls: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        <Tls as MakeTlsConnect<Socket>>::Stream: Send + Sync,
        <Tls as MakeTlsConnect<Socket>>::TlsConnect: Send,
        <<Tls as MakeTlsConnect<Socket>>::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
    }

    impl<Tls> AsyncConnection for Pooled<'_, Tls>
    where
        Tls: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        <Tls as MakeTlsConnect<Socket>>::Stream: Send + Sync,
        <Tls as MakeTlsConnect<Socket>>::TlsConnect: Send,
        <<Tls as MakeTlsConnect<Socket>>::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        fn driver(&mut self) -> AsyncDriver<'_> {
            AsyncDriver(Nonblocking::Postgres(self))
        }
    }
}

#[cfg(feature = "r2d2")]
mod r2d2_connection {
    use super::*;
    use postgres::tls::{MakeTlsConnect, TlsConnect};
    use postgres::Socket;

    type Pooled<Tls> = r2d2::PooledConnection<r2d2_postgres::PostgresConnectionManager<Tls>>;

    impl<Tls> sealed::Sealed for Pooled<Tls>
    where
        Tls: MakeTlsConnect<Socket> + Clone + 'static + Sync + Send,
        Tls::TlsConnect: Send,
        Tls::Stream: Send,
        <Tls::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
    }

    impl<Tls> Connection for Pooled<Tls>
    where
        Tls: MakeTlsConnect<Socket> + Clone + 'static + Sync + Send,
        Tls::TlsConnect: Send,
        Tls::Stream: Send,
        <Tls::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        fn driver(&mut self) -> Driver<'_> {
            Driver(Blocking::Postgres(self))
        }
    }
}
