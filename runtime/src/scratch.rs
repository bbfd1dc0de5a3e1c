//! Throwaway databases: where [`Runner::drift`](crate::Runner::drift) builds the migrations
//! (and, feature `testing`, the per-test databases and templates). Their names carry their
//! creation time, so that a later run recognises one a crashed process left behind and drops
//! it; [`Scratch`] says how to reach the server that holds them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Throwaway databases older than this were left by a crashed run.
pub(crate) const LEFTOVER_AGE: Duration = Duration::from_secs(6 * 3600);

/// The name prefix of drift's scratch databases.
#[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
pub(crate) const DRIFT_PREFIX: &str = "preflight_drift_";

pub(crate) fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `<prefix><unix seconds>_<pid>_<n>`: unique within the process, and carrying its creation
/// time so that a later run can tell a leftover's age from its name alone.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}_{}_{}",
        unix_seconds(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether a name made by [`unique_name`] is older than [`LEFTOVER_AGE`].
pub(crate) fn is_leftover(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|created| unix_seconds().saturating_sub(created) > LEFTOVER_AGE.as_secs())
}

/// The server on which [`Runner::drift`](crate::Runner::drift) creates its scratch database
/// (PostgreSQL; SQLite builds in memory and needs none): usually the live database's own
/// connection settings, whose role then needs the `CREATEDB` privilege. Drift connects with
/// them once to the configured database to create `preflight_drift_<time>_<pid>_<n>` (and to
/// drop it afterwards, and any a crashed run left behind), and once to the scratch database
/// itself (the same settings, another database name).
///
/// ```no_run
/// # #[cfg(feature = "postgres")] {
/// use preflight_runtime::Scratch;
/// # let migrations = preflight_runtime::Migrations::from_specs(vec![]).unwrap();
/// let url = "postgres://app@db.internal/app";
/// let mut client = postgres::Client::connect(url, postgres::NoTls)?;
/// let drift = migrations
///     .runner()
///     .scratch(Scratch::postgres(url.parse()?, postgres::NoTls))
///     .drift(&mut client)?;
/// print!("{drift}");
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Scratch {
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
    server: Server,
}

#[derive(Clone)]
enum Server {
    #[cfg(feature = "pg-common")]
    Postgres(std::sync::Arc<dyn crate::postgres::Connect>),
    /// Keeps the type inhabited-free without a PostgreSQL driver.
    #[allow(dead_code)]
    None(std::convert::Infallible),
}

impl Scratch {
    /// The PostgreSQL server (and role) of `config`, reached with `tls` (`NoTls`, or the
    /// application's own connector).
    #[cfg(feature = "pg-common")]
    pub fn postgres<T>(config: tokio_postgres::Config, tls: T) -> Scratch
    where
        T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>
            + Clone
            + Send
            + Sync
            + 'static,
        T::Stream: Send + Sync,
        T::TlsConnect: Send,
        <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
    {
        Scratch {
            server: Server::Postgres(std::sync::Arc::new(crate::postgres::Connector::new(
                config, tls,
            ))),
        }
    }

    /// How to connect to the PostgreSQL server.
    #[cfg(feature = "pg-common")]
    pub(crate) fn postgres_server(&self) -> &dyn crate::postgres::Connect {
        match &self.server {
            Server::Postgres(c) => c.as_ref(),
            Server::None(never) => match *never {},
        }
    }
}

/// Names the server, never the password.
impl std::fmt::Debug for Scratch {
    #[cfg_attr(not(feature = "pg-common"), allow(unused_variables))]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.server {
            #[cfg(feature = "pg-common")]
            Server::Postgres(c) => write!(f, "Scratch({})", c.describe()),
            Server::None(never) => match *never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_carry_their_age() {
        let a = unique_name("p_");
        let b = unique_name("p_");
        assert_ne!(a, b);
        assert!(!is_leftover(&a, "p_"));
        let old = format!("p_{}_1_0", unix_seconds() - LEFTOVER_AGE.as_secs() - 1);
        assert!(is_leftover(&old, "p_"));
        assert!(!is_leftover("p_notanumber_1_0", "p_"));
        assert!(!is_leftover(&old, "q_"));
    }
}
