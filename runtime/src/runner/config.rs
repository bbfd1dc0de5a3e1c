//! The runner's settings and the builder methods that set them.

use std::time::Duration;

use crate::adopt::Adopt;
use crate::error::Error;
use crate::lock::LockStrategy;
use crate::plan::Policy;
use crate::scratch::Scratch;
use crate::timeout::{Timeout, Timeouts};
use crate::Version;

use super::Runner;

/// The default history table.
pub const DEFAULT_TABLE: &str = "preflight_history";

/// The default `lock_timeout` of every migration (see [`Runner::sql_lock_timeout`]): the
/// longest a migration waiting for a table lock makes the table's other queries queue behind
/// it, per attempt.
pub const DEFAULT_SQL_LOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times a migration blocked by a lock is tried again by default (see
/// [`Runner::lock_retries`]).
pub const DEFAULT_LOCK_RETRIES: u32 = 5;

/// How long [`Runner::wait`] waits by default for another process to migrate.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(300);

/// The default delay before the first retry of a blocked migration; it doubles (up to 30 s)
/// with up to 50% jitter (see [`Runner::lock_retries`]).
pub const DEFAULT_LOCK_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The runner's settings, shared with the backends.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub schema: Option<String>,
    pub table: String,
    pub lock: LockStrategy,
    pub lock_timeout: Duration,
    pub grouped: bool,
    /// Every migration's commit waits for durability (default: all but the run's last don't).
    pub synchronous_commits: bool,
    pub policy: Policy,
    pub application: String,
    /// `None`: the server's own setting.
    pub sql_lock_timeout: Option<Timeout>,
    pub sql_statement_timeout: Option<Timeout>,
    pub lock_retries: u32,
    pub lock_retry_delay: Duration,
    pub wait_timeout: Duration,
    pub adopt: Adopt,
    /// Where drift builds the migrations (PostgreSQL).
    pub scratch: Option<Scratch>,
    pub warn_on_drift: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            schema: None,
            table: DEFAULT_TABLE.to_owned(),
            lock: LockStrategy::Advisory,
            lock_timeout: Duration::from_secs(60),
            grouped: false,
            synchronous_commits: false,
            policy: Policy::default(),
            application: format!("preflight {}", env!("CARGO_PKG_VERSION")),
            sql_lock_timeout: Some(Timeout::After(DEFAULT_SQL_LOCK_TIMEOUT)),
            sql_statement_timeout: None,
            lock_retries: DEFAULT_LOCK_RETRIES,
            lock_retry_delay: DEFAULT_LOCK_RETRY_DELAY,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            adopt: Adopt::Off,
            scratch: None,
            warn_on_drift: false,
        }
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        // PostgreSQL truncates identifiers to 63 bytes; the indexes append up to five bytes
        // (`_open`), and the tables of layout 1 that an upgrade drops up to six (`_count`), and
        // two truncated names must not collide.
        if self.table.is_empty() || self.table.len() > 57 || self.table.contains('\0') {
            return Err(Error::Config(format!(
                "history table name `{}` must be 1 to 57 bytes without NUL",
                self.table
            )));
        }
        if let Some(s) = &self.schema {
            if s.is_empty() || s.len() > 63 || s.contains('\0') {
                return Err(Error::Config(format!(
                    "schema name `{s}` must be 1 to 63 bytes without NUL"
                )));
            }
        }
        if let LockStrategy::Lease { ttl } = self.lock {
            if ttl < Duration::from_secs(1) {
                return Err(Error::Config("lease time-to-live below 1 s".into()));
            }
        }
        Ok(())
    }

    /// The limits a migration body runs under: its directives, else the runner's settings.
    pub(crate) fn limits(&self, body: Option<&crate::Body>) -> Timeouts {
        let own = body.map_or(Timeouts::NONE, crate::Body::timeouts);
        Timeouts {
            lock: own.lock.or(self.sql_lock_timeout),
            statement: own.statement.or(self.sql_statement_timeout),
        }
    }

    /// `application (host, pid N)`: recorded in `applied_by` and the lease owner.
    pub(crate) fn applied_by(&self) -> String {
        format!(
            "{} on {} (pid {})",
            self.application,
            host(),
            std::process::id()
        )
    }
}

fn host() -> String {
    #[cfg(any(feature = "pg-common", feature = "sqlite"))]
    {
        hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".to_owned())
    }
    #[cfg(not(any(feature = "pg-common", feature = "sqlite")))]
    {
        "unknown-host".to_owned()
    }
}

/// The builder: every setter returns the runner, so settings chain before the operation.
impl<'m> Runner<'m> {
    /// The history table's name (default `preflight_history`); any characters, quoted.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.cfg.table = name.into();
        self
    }

    /// The history table's schema (default: the connection's current schema; on SQLite, the
    /// attached database, `main` by default); created if missing.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.cfg.schema = Some(schema.into());
        self
    }

    /// The lock strategy (default [`LockStrategy::Advisory`]).
    pub fn lock(mut self, strategy: LockStrategy) -> Self {
        self.cfg.lock = strategy;
        self
    }

    /// How long to wait for the migration lock before failing with the holder named
    /// (default 60 s). On SQLite it is also the busy timeout while migrating.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.lock_timeout = timeout;
        self
    }

    /// The set that the versions given to the runner belong to (a target, a revert, a repair,
    /// an adoption) in a composition of several sets; a composition of one set needs none.
    ///
    /// ```no_run
    /// # use preflight_runtime::{Composition, Repair, Revert, Version};
    /// # fn f(all: &Composition<'_>, client: &mut postgres::Client) -> Result<(), preflight_runtime::Error> {
    /// all.runner().set("auth").revert(client, Revert::Steps(1))?;
    /// all.runner().set("auth").repair(client, Repair::Forget(Version::new(4)))?;
    /// # Ok(()) }
    /// ```
    pub fn set(mut self, name: impl Into<String>) -> Self {
        self.cfg.policy.scope = Some(name.into());
        self
    }

    /// Migrate up to this version only (it must be in the binary; in a composition of several
    /// sets, a version of the set [`Runner::set`] names: the run goes up to it in the
    /// composition's order).
    pub fn target(mut self, version: impl Into<Version>) -> Self {
        self.cfg.policy.target = Some(version.into());
        self
    }

    /// Apply pending migrations older than the newest applied one (default: refuse).
    pub fn out_of_order(mut self, allow: bool) -> Self {
        self.cfg.policy.out_of_order = allow;
        self
    }

    /// Boot although applied migrations are missing from the binary (default: refuse).
    pub fn allow_missing(mut self, allow: bool) -> Self {
        self.cfg.policy.allow_missing = allow;
        self
    }

    /// Apply all pending migrations in one transaction (default: one transaction each).
    /// Refused when a pending migration is no-transaction.
    pub fn grouped(mut self, grouped: bool) -> Self {
        self.cfg.grouped = grouped;
        self
    }

    /// Make every migration's commit wait for durability (default `false`: every migration of
    /// a run but the last commits asynchronously, and the last one's synchronous commit makes
    /// the run durable before it returns; see "Durability of a run" on [`Runner`]). With `true`
    /// a crash can lose no committed migration at any point of the run, at the price of one WAL
    /// flush per migration (PostgreSQL; on SQLite in WAL mode one sync per migration). The
    /// benchmarks measure both.
    ///
    /// ```no_run
    /// # #[cfg(feature = "postgres")] {
    /// # use preflight_runtime::{MigrationSpec, Migrations};
    /// # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "init", "CREATE TABLE t (id int);")]).unwrap();
    /// let mut client = postgres::Client::connect("postgres://app@localhost/app", postgres::NoTls)?;
    /// migrations.runner().synchronous_commits(true).run(&mut client)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn synchronous_commits(mut self, every: bool) -> Self {
        self.cfg.synchronous_commits = every;
        self
    }

    /// The application's name and version, recorded in `applied_by`, in the lease owner and
    /// in the connection's `application_name` while migrating (default `preflight <version>`).
    pub fn application(mut self, name: impl Into<String>) -> Self {
        self.cfg.application = name.into();
        self
    }

    /// The `lock_timeout` of every migration (default 1 s, [`DEFAULT_SQL_LOCK_TIMEOUT`]): a
    /// statement that waits longer for a table lock fails with SQLSTATE 55P03 instead of
    /// making every query on that table queue behind it, and the migration is tried again
    /// (see [`Runner::lock_retries`]). [`Timeout::Off`] waits without limit. A migration's
    /// `-- preflight:lock-timeout 30s` directive replaces it for that migration. Set inside
    /// each migration transaction (`SET LOCAL`), or for the session while a no-transaction
    /// migration runs (restored afterwards; not under the lease lock, where a session setting
    /// could reach another client's server connection through a pooler). On SQLite it is the
    /// busy timeout of each migration transaction (`Off`: wait without limit).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use preflight_runtime::{Migrations, MigrationSpec, Timeout};
    /// # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "t", "SELECT 1")]).unwrap();
    /// let patient = migrations.runner().sql_lock_timeout(Duration::from_secs(5)).lock_retries(10);
    /// let unlimited = migrations.runner().sql_lock_timeout(Timeout::Off);
    /// # let _ = (patient, unlimited);
    /// ```
    pub fn sql_lock_timeout(mut self, timeout: impl Into<Timeout>) -> Self {
        self.cfg.sql_lock_timeout = Some(timeout.into());
        self
    }

    /// The `statement_timeout` of every migration (default: the server's own setting). A
    /// migration's `-- preflight:statement-timeout off` directive replaces it for that
    /// migration (e.g. a long index build under a role with a short `statement_timeout`). On
    /// SQLite a statement running longer is interrupted (`SQLITE_INTERRUPT`).
    pub fn sql_statement_timeout(mut self, timeout: impl Into<Timeout>) -> Self {
        self.cfg.sql_statement_timeout = Some(timeout.into());
        self
    }

    /// How many times a migration that could not take a lock within its lock timeout
    /// (SQLSTATE 55P03, `SQLITE_BUSY` on SQLite) is tried again (default 5), waiting `delay`
    /// before the first retry, twice as long before each next one (at most 30 s), plus up to
    /// 50% jitter so that blocked replicas do not retry in lockstep. Only that migration is
    /// retried: a transactional one whole (its transaction rolled back), a no-transaction one
    /// from the statement that was blocked. When the retries run out, the error
    /// ([`Error::Blocked`]) names the table and the session holding it.
    pub fn lock_retries(mut self, retries: u32) -> Self {
        self.cfg.lock_retries = retries;
        self
    }

    /// The delay before the first retry of a blocked migration (default 1 s; see
    /// [`Runner::lock_retries`]).
    pub fn lock_retry_delay(mut self, delay: Duration) -> Self {
        self.cfg.lock_retry_delay = delay;
        self
    }

    /// How long [`Runner::wait`] waits for another process to bring the database up to date
    /// before failing with what is still pending (default 5 minutes).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.wait_timeout = timeout;
        self
    }

    /// The server on which [`Runner::drift`] creates its scratch database (PostgreSQL; not
    /// needed on SQLite, which builds in memory). See [`Scratch`].
    pub fn scratch(mut self, scratch: Scratch) -> Self {
        self.cfg.scratch = Some(scratch);
        self
    }

    /// Whether `run` (and `ready`) also checks the schema for drift after migrating (default
    /// off: it builds the migrations in a scratch database at every boot, which costs as much
    /// as migrating an empty database). Drift, or the reason it could not be checked, becomes
    /// a warning of the report ([`Warning::Drift`](crate::Warning::Drift)); it never stops the
    /// boot. On PostgreSQL it needs [`Runner::scratch`].
    pub fn warn_on_drift(mut self, warn: bool) -> Self {
        self.cfg.warn_on_drift = warn;
        self
    }

    /// Whether `run` takes another migration tool's history over (default [`Adopt::Off`]:
    /// other tools' tables are not looked at), and which tool [`Runner::adopt`] adopts
    /// (default: whichever is found).
    ///
    /// With [`Adopt::Auto`] or [`Adopt::From`], a run that finds Preflight's history empty
    /// looks for another tool's history table and, under the lock and in one transaction,
    /// records the versions that tool applied (checked against the files first), then
    /// migrates as usual: it applies what the other tool would have applied next. A database
    /// without another tool's table is migrated as usual; one whose other history cannot be
    /// adopted (dirty, failed, a version without a file, a changed file) is refused with
    /// [`Error::Adopt`], untouched.
    ///
    /// ```no_run
    /// # use preflight_runtime::{Adopt, Tool, Migrations};
    /// # fn f(migrations: &Migrations, client: &mut postgres::Client) -> Result<(), preflight_runtime::Error> {
    /// migrations.runner().adoption(Adopt::From(Tool::Goose)).run(client)?;
    /// # Ok(()) }
    /// ```
    pub fn adoption(mut self, adopt: Adopt) -> Self {
        self.cfg.adopt = adopt;
        self
    }
}
