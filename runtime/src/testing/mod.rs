//! Test helpers (feature `testing`): a fresh database per test, already at the latest
//! migration, and private throwaway PostgreSQL clusters.
//!
//! Tests use a real server, never a mock. The server is the one `DATABASE_URL` names, or a
//! private cluster started once per test process ([`server_url`]).
//!
//! [`TestDatabase`] gives each test a uniquely named database already at the latest migration,
//! fast: the set is migrated once into a *template* database named after its chain hash (a
//! changed set gets a new template; an unchanged one is reused across test binaries and runs),
//! then every test gets a `CREATE DATABASE ... TEMPLATE` copy, which costs the same whether the
//! set has 2 migrations or 2,000. Dropping it drops the database, also when the test panics.
//!
//! ```no_run
//! # use preflight_runtime::{Migrations, MigrationSpec};
//! # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id int);")]).unwrap();
//! use preflight_runtime::testing::TestDatabase;
//!
//! let db = TestDatabase::new(&migrations);
//! db.connect().execute("INSERT INTO t VALUES (1)", &[]).unwrap();
//! // dropped (DROP DATABASE ... WITH (FORCE)) when `db` goes out of scope, also on panic
//! ```
//!
//! In async tests, [`TestDatabase::new_async`] and [`TestDatabase::connect_async`] (tokio):
//!
//! ```no_run
//! # use preflight_runtime::{Migrations, MigrationSpec};
//! # async fn f(migrations: &Migrations) {
//! use preflight_runtime::testing::TestDatabase;
//!
//! let db = TestDatabase::new_async(migrations).await;
//! let client = db.connect_async().await;
//! client.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
//! # }
//! ```
//!
//! `TestDatabase::empty()` is an empty database instead. For suites whose tests change data
//! but not the schema, [`TestDatabase::reused`] is faster still: the database comes from a pool
//! on the server and goes back to it reset (truncated, sequences set back) instead of being
//! dropped, or is dropped when the test changed more.
//!
//! `#[preflight::test]` (in the `preflight` crate) writes that first line for you. SQLite has
//! `SqliteTestDatabase` (with the `sqlite` feature): a copy of a migrated template file, or an
//! in-memory database restored from it.
//!
//! Names: test databases are `preflight_test_<unix seconds>_<pid>_<n>`; one left behind by a
//! crashed run is dropped by the first helper of a later run once it is 6 hours old. Templates are
//! `preflight_tpl_<set>_<chain>`; when a set's template is rebuilt (a migration changed), its
//! older templates beyond the three newest are dropped, with their idle databases
//! (`preflight_idle_<chain>_...`, see [`TestDatabase::reused`]).

mod postgres;
mod server;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::future::Future;

pub use self::postgres::{TestDatabase, DATABASE_PREFIX, IDLE_PREFIX, TEMPLATE_PREFIX};
pub use self::server::{server_url, with_database, PrivateCluster};
#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteTestDatabase;

/// The key of the migration lock's advisory lock for a history table (see [`crate::lock`]), so
/// that a test can hold the lock from another session, as a migrating process would.
///
/// ```no_run
/// use preflight_runtime::testing::{advisory_key, TestDatabase};
///
/// let db = TestDatabase::empty();
/// let key = advisory_key(db.name(), "public", "preflight_history");
/// db.connect().query_one("SELECT pg_advisory_lock($1)", &[&key]).unwrap();
/// ```
pub fn advisory_key(database: &str, schema: &str, table: &str) -> i64 {
    crate::lock::advisory_key(database, schema, table)
}

// Test databases and templates are throwaway databases: their names and the age that makes
// one a leftover are those of `crate::scratch`.
use crate::scratch::{is_leftover, unique_name};

/// Runs an async test body on a new current-thread tokio runtime (what `#[tokio::test]` does);
/// used by the code `#[preflight::test]` generates for `async fn` tests.
#[doc(hidden)]
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime for the test: {e}"))
        .block_on(future)
}

/// Runs the future `make` returns to completion on a runtime of its own, from synchronous
/// code. A thread cannot start a runtime while it is inside one (a synchronous helper called
/// from an async test, or a `Drop`), so then it runs on a scoped thread of its own.
fn on_own_runtime<T, Fut>(make: impl FnOnce() -> Fut + Send) -> T
where
    T: Send,
    Fut: Future<Output = T>,
{
    let run = move || block_on(make());
    if tokio::runtime::Handle::try_current().is_err() {
        return run();
    }
    std::thread::scope(|s| match s.spawn(run).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_runtime_works_inside_a_runtime_too() {
        let outside = on_own_runtime(|| async { 1 });
        let inside = block_on(async { on_own_runtime(|| async { 2 }) });
        assert_eq!((outside, inside), (1, 2));
    }
}
