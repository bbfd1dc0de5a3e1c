//! Throwaway databases on PostgreSQL: drift's scratch database (and the test helpers' per-test
//! databases and templates, feature `testing`). Created with a unique name that carries its
//! creation time ([`crate::scratch`]), dropped with `WITH (FORCE)`; databases a crashed run
//! left behind are dropped by the next one once they are old enough.
//!
//! The connection to the scratch server comes from the runner's [`Scratch`](crate::Scratch):
//! [`Connect`] opens one with the driver of the operation (blocking `postgres` or
//! `tokio-postgres`).

use std::time::Duration;

use crate::backend::ScratchWork;
use crate::drift::Catalog;
use crate::error::{DbError, Error};
use crate::scratch::{is_leftover, unique_name, DRIFT_PREFIX};

use super::catalog::set_search_path;
use super::sql::quote_ident;
use super::wire::{get, Op, Param, PgConn};

/// Opens connections to the scratch server: to the configured database (`None`) or to another
/// database of the same server.
pub(crate) trait Connect: Send + Sync {
    /// The server and role, for messages (never the password).
    fn describe(&self) -> String;
    #[cfg(feature = "postgres")]
    fn blocking(&self, database: Option<&str>) -> Result<postgres::Client, DbError>;
    #[cfg(feature = "tokio-postgres")]
    fn connect(
        &self,
        database: Option<&str>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<tokio_postgres::Client, DbError>> + Send + '_>,
    >;
}

/// A [`Connect`] over a `tokio_postgres::Config` and a TLS connector.
pub(crate) struct Connector<T> {
    config: tokio_postgres::Config,
    tls: T,
}

impl<T> Connector<T> {
    pub fn new(mut config: tokio_postgres::Config, tls: T) -> Connector<T> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("preflight drift");
        Connector { config, tls }
    }

    #[cfg_attr(
        not(any(feature = "postgres", feature = "tokio-postgres")),
        allow(dead_code)
    )]
    fn config(&self, database: Option<&str>) -> tokio_postgres::Config {
        let mut config = self.config.clone();
        if let Some(db) = database {
            config.dbname(db);
        }
        config
    }
}

impl<T> Connect for Connector<T>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + Sync,
    T::TlsConnect: Send,
    <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
{
    fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!(
            "server {} as {}",
            if hosts.is_empty() {
                "localhost".to_owned()
            } else {
                hosts.join(",")
            },
            self.config.get_user().unwrap_or("the default user")
        )
    }

    #[cfg(feature = "postgres")]
    fn blocking(&self, database: Option<&str>) -> Result<postgres::Client, DbError> {
        postgres::Config::from(self.config(database))
            .connect(self.tls.clone())
            .map_err(|e| connect_error(&e))
    }

    #[cfg(feature = "tokio-postgres")]
    fn connect(
        &self,
        database: Option<&str>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<tokio_postgres::Client, DbError>> + Send + '_>,
    > {
        let config = self.config(database);
        let tls = self.tls.clone();
        Box::pin(async move {
            let (client, connection) = config.connect(tls).await.map_err(|e| connect_error(&e))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        })
    }
}

fn connect_error(e: &tokio_postgres::Error) -> DbError {
    let mut error = super::wire::db_error(e);
    if error.code.is_none() {
        error.message = crate::error::with_causes(e);
    }
    error
}

/// A scratch database, dropped by [`ScratchDatabase::drop_with`] on every path of its user
/// (a round trip, which `Drop` cannot make); one left undropped (a panic) is logged, and the
/// next drift drops it once it is old enough.
pub(crate) struct ScratchDatabase {
    name: String,
    dropped: bool,
}

impl ScratchDatabase {
    /// Creates a uniquely named scratch database through `admin`, first dropping the ones
    /// crashed runs left behind.
    pub async fn create<A: PgConn>(admin: &mut A) -> Result<ScratchDatabase, Error> {
        drop_leftovers(admin, DRIFT_PREFIX).await;
        let name = unique_name(DRIFT_PREFIX);
        create_database(admin, &name, None).await.map_err(|e| {
            Error::db(
                "creating drift's scratch database (the role needs the CREATEDB privilege; \
                 or give `Runner::scratch` a role that has it)",
                e,
            )
        })?;
        tracing::debug!(database = %name, "scratch database created");
        Ok(ScratchDatabase {
            name,
            dropped: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn drop_with<A: PgConn>(mut self, admin: &mut A) -> Result<(), Error> {
        drop_database(admin, &self.name)
            .await
            .map_err(|e| Error::db(format!("dropping the scratch database {}", self.name), e))?;
        self.dropped = true;
        tracing::debug!(database = %self.name, "scratch database dropped");
        Ok(())
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if !self.dropped {
            tracing::error!(
                database = %self.name,
                "scratch database left behind; a later drift drops it once it is 6 hours old"
            );
        }
    }
}

/// The outcome of work on a scratch database and of dropping it: the work's error first.
pub(crate) fn with_drop<T>(work: Result<T, Error>, dropped: Result<(), Error>) -> Result<T, Error> {
    match (work, dropped) {
        (Err(e), Err(drop_error)) => {
            tracing::warn!(error = %drop_error, "could not drop the scratch database");
            Err(e)
        }
        (work, dropped) => dropped.and(work),
    }
}

/// Runs `work` on the scratch database's connection, its `search_path` set first.
pub(crate) async fn run_work<S: PgConn, W: ScratchWork>(
    conn: S,
    work: W,
) -> Result<Catalog, Error> {
    let mut b = super::PgBackend::new(conn, work.config());
    if let Some(path) = work.search_path() {
        b.one(set_search_path(path))
            .await
            .map_err(|e| Error::db("setting the scratch database's search_path", e))?;
    }
    work.run(&mut b).await
}

/// `CREATE DATABASE name [TEMPLATE template]` (alone: it refuses a transaction block).
pub(crate) async fn create_database<A: PgConn>(
    admin: &mut A,
    name: &str,
    template: Option<&str>,
) -> Result<(), DbError> {
    let template = template.map_or(String::new(), |t| format!(" TEMPLATE {}", quote_ident(t)));
    let sql = format!("CREATE DATABASE {}{template}", quote_ident(name));
    one(admin, Op::Simple(&sql)).await.map(drop)
}

/// `DROP DATABASE IF EXISTS name WITH (FORCE)` (PostgreSQL 13+; before, without `FORCE`).
pub(crate) async fn drop_database<A: PgConn>(admin: &mut A, name: &str) -> Result<(), DbError> {
    let forced = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    match one(admin, Op::Simple(&forced)).await {
        Err(e) if e.is("42601") => {
            let plain = format!("DROP DATABASE IF EXISTS {}", quote_ident(name));
            one(admin, Op::Simple(&plain)).await.map(drop)
        }
        other => other.map(drop),
    }
}

/// The names of the databases starting with `prefix`, newest first (no `LIKE`: `_` is a
/// wildcard there); only templates when `only_templates`.
pub(crate) async fn databases<A: PgConn>(
    admin: &mut A,
    prefix: &str,
    only_templates: bool,
) -> Result<Vec<String>, DbError> {
    let rows = one(
        admin,
        Op::Query(
            "SELECT datname::text FROM pg_database \
             WHERE left(datname, length($1)) = $1 AND (datistemplate OR NOT $2) \
             ORDER BY oid DESC",
            vec![Param::Text(prefix.to_owned()), Param::Bool(only_templates)],
        ),
    )
    .await?;
    rows.iter()
        .map(|r| get::<String>(r, 0).map_err(|e| DbError::other(e.to_string())))
        .collect()
}

/// Drops the databases named `prefix...` that a crashed run left behind (best effort).
pub(crate) async fn drop_leftovers<A: PgConn>(admin: &mut A, prefix: &str) {
    let Ok(names) = databases(admin, prefix, false).await else {
        return;
    };
    for name in names.iter().filter(|n| is_leftover(n, prefix)) {
        if drop_database(admin, name).await.is_ok() {
            tracing::info!(database = %name, "dropped a leftover throwaway database");
        }
    }
}

async fn one<A: PgConn>(admin: &mut A, op: Op<'_>) -> Result<Vec<tokio_postgres::Row>, DbError> {
    admin
        .pipeline(std::slice::from_ref(&op))
        .await
        .pop()
        .unwrap_or_else(|| Err(DbError::other("no result from the driver")))
}
