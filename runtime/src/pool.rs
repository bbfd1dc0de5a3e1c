//! Pools: migrate on one of the pool's connections ([`Runner::ready`], [`Runner::ready_async`]),
//! and only then hand the pool to the application, with the report.
//!
//! A connection that failed while migrating (which may still hold the session advisory lock,
//! sit in an aborted transaction or carry Preflight's `application_name`) never goes back to
//! the pool: deadpool detaches it, bb8 migrates on a dedicated connection that is never pooled,
//! and r2d2 (which cannot detach) releases every advisory lock of the session and terminates it
//! when that fails, so that the pool discards it as broken. A panic while migrating is covered
//! the same way by a drop guard.

use std::future::Future;
use std::pin::Pin;

use crate::connection::sealed;
use crate::error::Error;
use crate::report::Report;
use crate::runner::Runner;

/// A blocking connection pool that [`Runner::ready`] migrates through before handing it out:
/// `r2d2::Pool<r2d2_postgres::PostgresConnectionManager<_>>` (feature `r2d2`). A connection
/// whose run failed (or panicked) never goes back to the pool: r2d2 cannot detach it, so it is
/// cleaned (advisory locks released, `application_name` reset) or terminated. Sealed.
pub trait Pool: sealed::Sealed + Sized {
    #[doc(hidden)]
    fn migrate(&self, runner: &Runner<'_>) -> Result<Report, Error>;
}

/// An async connection pool that [`Runner::ready_async`] migrates through before handing it
/// out: `deadpool_postgres::Pool` (feature `deadpool`) and
/// `bb8::Pool<bb8_postgres::PostgresConnectionManager<_>>` (`bb8`). A connection whose run
/// failed never goes back to the pool: deadpool detaches it, bb8 migrates on a dedicated
/// connection. Sealed.
pub trait AsyncPool: sealed::Sealed + Sized {
    #[doc(hidden)]
    fn migrate<'a>(&'a self, runner: &'a Runner<'_>) -> Migrating<'a>;
}

/// What an async pool's `migrate` returns.
#[doc(hidden)]
pub type Migrating<'a> = Pin<Box<dyn Future<Output = Result<Report, Error>> + Send + 'a>>;

impl Runner<'_> {
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

#[cfg(any(feature = "deadpool", feature = "bb8", feature = "r2d2"))]
fn pool_error(e: impl std::fmt::Display) -> Error {
    Error::Pool(crate::error::redact_url(&e.to_string()).into_owned())
}

#[cfg(feature = "deadpool")]
mod deadpool_impl {
    use super::*;
    use crate::connection::AsyncConnection;
    use crate::runner::Work;

    impl sealed::Sealed for deadpool_postgres::Pool {}

    /// Detaches the connection from the pool unless disarmed (success): a failed or panicked
    /// run's connection is closed instead of reused.
    struct Detach(Option<deadpool_postgres::Object>);

    impl Drop for Detach {
        fn drop(&mut self) {
            if let Some(object) = self.0.take() {
                tracing::warn!("migration connection detached from the pool and closed");
                drop(deadpool_postgres::Object::take(object));
            }
        }
    }

    impl AsyncPool for deadpool_postgres::Pool {
        fn migrate<'a>(&'a self, runner: &'a Runner<'_>) -> Migrating<'a> {
            Box::pin(async move {
                let object = self.get().await.map_err(pool_error)?;
                let mut guard = Detach(Some(object));
                let result = match guard.0.as_mut() {
                    Some(object) => object.driver().run(runner, Work::Migrate).await,
                    None => Err(Error::Pool("connection vanished".into())),
                };
                if result.is_ok() {
                    // Back to the pool as a clean connection.
                    drop(guard.0.take());
                }
                result
            })
        }
    }
}

#[cfg(feature = "bb8")]
mod bb8_impl {
    use super::*;
    use crate::connection::AsyncConnection;
    use crate::runner::Work;
    use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
    use tokio_postgres::Socket;

    type Manager<Tls> = bb8_postgres::PostgresConnectionManager<Tls>;

    impl<Tls> sealed::Sealed for bb8::Pool<Manager<Tls>>
    where
        Tls: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        <Tls as MakeTlsConnect<Socket>>::Stream: Send + Sync,
        <Tls as MakeTlsConnect<Socket>>::TlsConnect: Send,
        <<Tls as MakeTlsConnect<Socket>>::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
    }

    impl<Tls> AsyncPool for bb8::Pool<Manager<Tls>>
    where
        Tls: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        <Tls as MakeTlsConnect<Socket>>::Stream: Send + Sync,
        <Tls as MakeTlsConnect<Socket>>::TlsConnect: Send,
        <<Tls as MakeTlsConnect<Socket>>::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        fn migrate<'a>(&'a self, runner: &'a Runner<'_>) -> Migrating<'a> {
            Box::pin(async move {
                // bb8 cannot detach a pooled connection: migrate on a dedicated one, made by the
                // pool's manager with the pool's settings and closed when dropped, success or
                // not.
                let mut client = self.dedicated_connection().await.map_err(pool_error)?;
                client.driver().run(runner, Work::Migrate).await
            })
        }
    }
}

#[cfg(feature = "r2d2")]
mod r2d2_impl {
    use super::*;
    use crate::connection::Connection;
    use crate::runner::Work;
    use postgres::tls::{MakeTlsConnect, TlsConnect};
    use postgres::Socket;

    type Manager<Tls> = r2d2_postgres::PostgresConnectionManager<Tls>;

    impl<Tls> sealed::Sealed for r2d2::Pool<Manager<Tls>>
    where
        Tls: MakeTlsConnect<Socket> + Clone + 'static + Sync + Send,
        Tls::TlsConnect: Send,
        Tls::Stream: Send,
        <Tls::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
    }

    /// Cleans a connection whose run failed or panicked before r2d2 takes it back.
    struct Scrub<'c>(Option<&'c mut postgres::Client>);

    impl Drop for Scrub<'_> {
        fn drop(&mut self) {
            let Some(client) = self.0.take() else {
                return;
            };
            if client.is_closed() {
                return; // r2d2 discards closed connections
            }
            // ROLLBACK is harmless outside a transaction; unlocking all advisory locks of the
            // session releases ours whatever state the run stopped in.
            let clean = client
                .batch_execute("ROLLBACK; SELECT pg_advisory_unlock_all(); RESET application_name")
                .is_ok();
            if !clean {
                tracing::warn!("migration connection could not be cleaned: terminating it");
                let _ = client.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())");
            }
        }
    }

    impl<Tls> Pool for r2d2::Pool<Manager<Tls>>
    where
        Tls: MakeTlsConnect<Socket> + Clone + 'static + Sync + Send,
        Tls::TlsConnect: Send,
        Tls::Stream: Send,
        <Tls::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        fn migrate(&self, runner: &Runner<'_>) -> Result<Report, Error> {
            let mut connection = self.get().map_err(pool_error)?;
            let mut scrub = Scrub(Some(&mut connection));
            let result = match scrub.0.as_deref_mut() {
                Some(client) => client.driver().run(runner, Work::Migrate),
                None => Err(Error::Pool("connection vanished".into())),
            };
            if result.is_ok() {
                scrub.0 = None;
            }
            drop(scrub);
            result
        }
    }
}
