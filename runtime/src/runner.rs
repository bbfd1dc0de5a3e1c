//! The runner: its builder ([`Runner`]) and the one loop (fast check, lock, plan, apply,
//! record, unlock) that every driver runs through the private backend trait.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::Instrument;

use crate::adopt::{self, Adopt, AdoptError, Adopted};
use crate::backend::{
    Backend, Fast, LogEntry, Product, Record, Session, TxFailure, TxItem, WindowTx,
};
use crate::error::{DbError, Error, MigrationError};
use crate::history::{HistoryRow, NewRow, State};
use crate::lock::{advisory_key, Backoff, LockStrategy};
use crate::plan::{self, Policy, Revert, Step};
use crate::report::{Applied, Report, Warning};
use crate::unit;
use crate::{Body, Kind, Migration, Migrations, Version};

/// The default history table.
pub const DEFAULT_TABLE: &str = "preflight_history";

/// A configured run over a migration set: history table, lock, policies. Build it with
/// [`Migrations::runner`], then call `run` (sync `postgres`), `run_async` (`tokio-postgres`),
/// `ready` (pools), `revert*` or the repairs.
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
/// migration. The sync driver, the lease lock, `LockStrategy::None` and CockroachDB apply one
/// migration at a time.
///
/// ```no_run
/// # #[cfg(feature = "postgres")] {
/// use std::time::Duration;
/// use preflight_runtime::{lock::LockStrategy, MigrationSpec, Migrations};
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

/// The runner's settings, shared with the backends.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub schema: Option<String>,
    pub table: String,
    pub lock: LockStrategy,
    pub lock_timeout: Duration,
    pub grouped: bool,
    pub policy: Policy,
    pub application: String,
    pub sql_lock_timeout: Option<Duration>,
    pub sql_statement_timeout: Option<Duration>,
    pub adopt: Adopt,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            schema: None,
            table: DEFAULT_TABLE.to_owned(),
            lock: LockStrategy::Advisory,
            lock_timeout: Duration::from_secs(60),
            grouped: false,
            policy: Policy::default(),
            application: format!("preflight {}", env!("CARGO_PKG_VERSION")),
            sql_lock_timeout: None,
            sql_statement_timeout: None,
            adopt: Adopt::Off,
        }
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        // PostgreSQL truncates identifiers to 63 bytes; the lease and log tables append up to
        // six bytes, and two truncated names must not collide.
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

impl<'m> Runner<'m> {
    /// The history table's name (default `preflight_history`); any characters, quoted.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.cfg.table = name.into();
        self
    }

    /// The history table's schema (default: the connection's current schema); created if
    /// missing.
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
    /// (default 60 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.lock_timeout = timeout;
        self
    }

    /// Apply all pending migrations in one transaction (default: one transaction each).
    /// Refused when a pending migration is no-transaction.
    pub fn grouped(mut self, grouped: bool) -> Self {
        self.cfg.grouped = grouped;
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

    /// Migrate up to this version only (it must be in the binary).
    pub fn target(mut self, version: impl Into<Version>) -> Self {
        self.cfg.policy.target = Some(version.into());
        self
    }

    /// Resume `in_progress` / `failed` migrations from the statement after the last completed
    /// one (default: refuse with the recovery step). Only for an operator who checked the
    /// database.
    pub fn resume_unfinished(mut self, resume: bool) -> Self {
        self.cfg.policy.resume_unfinished = resume;
        self
    }

    /// The application's name and version, recorded in `applied_by`, in the lease owner and
    /// in the connection's `application_name` while migrating (default `preflight <version>`).
    pub fn application(mut self, name: impl Into<String>) -> Self {
        self.cfg.application = name.into();
        self
    }

    /// The server's `lock_timeout` inside each migration transaction, so that DDL waiting
    /// behind application traffic fails instead of queueing everyone behind it.
    pub fn sql_lock_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.sql_lock_timeout = Some(timeout);
        self
    }

    /// The server's `statement_timeout` inside each migration transaction.
    pub fn sql_statement_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.sql_statement_timeout = Some(timeout);
        self
    }

    /// Take over another migration tool's history at boot (default [`Adopt::Off`]).
    ///
    /// With [`Adopt::Auto`] or [`Adopt::From`], a run that finds Preflight's history empty
    /// looks for another tool's history table and, under the lock and in one transaction,
    /// records the versions that tool applied (checked against the files first, see
    /// [`crate::adopt::adoptable`]), then migrates as usual: it applies what the other tool would
    /// have applied next. A database without another tool's table is migrated as usual; one
    /// whose other history cannot be adopted (dirty, failed, a version without a file, a
    /// changed file) is refused with [`Error::Adopt`], untouched.
    pub fn adopt(mut self, adopt: Adopt) -> Self {
        self.cfg.adopt = adopt;
        self
    }
}

/// A repair of the history, as an operator (or the CLI) asks for it after checking the
/// database. Every repair takes the lock and is recorded in `<table>_log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// Record the migration as applied (finished by hand).
    MarkApplied(Version),
    /// Delete the migration's row so that it runs again (undone by hand).
    Forget(Version),
    /// Accept the binary's checksum for an applied migration whose file changed.
    AcceptChecksum(Version),
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
}

/// The whole run: fast path, then the slow path under the lock.
pub(crate) async fn run<B: Backend>(
    b: &mut B,
    set: &Migrations,
    cfg: &Config,
    work: Work,
) -> Result<Report, Error> {
    let span = tracing::info_span!("preflight", table = %cfg.table, work = ?work);
    run_inner(b, set, cfg, work).instrument(span).await
}

async fn run_inner<B: Backend>(
    b: &mut B,
    set: &Migrations,
    cfg: &Config,
    work: Work,
) -> Result<Report, Error> {
    cfg.validate()?;
    if let Some(t) = cfg.policy.target {
        // Checked before the fast path, which would otherwise compare with the newest
        // migration below the unknown target.
        if set.get(t).is_none() {
            return Err(Error::UnknownVersion(format!(
                "target version {t} is not a migration of this binary"
            )));
        }
    }
    let mut report = Report::default();
    if let Work::Migrate = work {
        if fast_path(b, set, cfg).await? {
            tracing::debug!("database is current (fast path)");
            report.fast_path = true;
            return Ok(report);
        }
    }
    let app_name = truncate(&format!("preflight: {}", cfg.application), 63);
    let session = b.session(&app_name).await?;
    tracing::debug!(
        database = %session.database,
        schema = %session.schema,
        backend_pid = session.backend_pid,
        product = ?session.product,
        "slow path"
    );
    let result = locked(b, set, cfg, &session, work, &mut report).await;
    if let Err(e) = b.restore_session(&session).await {
        tracing::warn!(error = %e, "could not restore application_name");
    }
    result.map(|()| report)
}

/// The fast path: one query; current iff the goal row is applied with the compiled chain, the
/// table holds exactly as many rows as the binary has migrations up to the goal, and none is
/// unfinished. Anything else, including a missing table, goes to the slow path.
async fn fast_path<B: Backend>(b: &mut B, set: &Migrations, cfg: &Config) -> Result<bool, Error> {
    let Some((goal, count)) = plan::goal(set, cfg.policy.target) else {
        return Ok(false);
    };
    match b.fast_check(goal.version()).await? {
        Fast::NoTable => Ok(false),
        Fast::Found {
            chain,
            state,
            total,
            unfinished,
            counted,
        } => Ok(counted
            && state.as_deref() == Some(State::Applied.as_str())
            && chain.is_some_and(|c| c == goal.chain().to_string())
            && usize::try_from(total).is_ok_and(|t| t == count)
            && unfinished == 0),
    }
}

/// The lock this run holds. Released explicitly by [`release`]; dropping it unreleased (a
/// panic) is logged, and the pool helpers never return such a connection.
struct LockToken {
    kind: TokenKind,
    released: bool,
}

enum TokenKind {
    None,
    Advisory(i64),
    Lease {
        owner: String,
        ttl: Duration,
        renewed: Instant,
    },
}

impl Drop for LockToken {
    fn drop(&mut self) {
        if !self.released && !matches!(self.kind, TokenKind::None) {
            tracing::error!(
                "migration lock dropped without release (panic?): the connection may still hold \
                 it; close the connection"
            );
        }
    }
}

impl LockToken {
    /// Renews the lease when a third of its time-to-live has passed.
    async fn renew_if_due<B: Backend>(&mut self, b: &mut B) -> Result<(), Error> {
        if let TokenKind::Lease {
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
}

async fn locked<B: Backend>(
    b: &mut B,
    set: &Migrations,
    cfg: &Config,
    session: &Session,
    work: Work,
    report: &mut Report,
) -> Result<(), Error> {
    let Some(mut token) = acquire(b, set, cfg, session, work, report).await? else {
        // Another run brought the database up to date while this one waited: nothing to do.
        return Ok(());
    };
    // No `?` between acquire and release: every outcome releases the lock.
    let result = locked_work(b, set, cfg, session, &mut token, work, report).await;
    let released = release(b, &mut token).await;
    match (result, released) {
        (Err(e), Err(release_error)) => {
            tracing::warn!(error = %release_error, "could not release the migration lock");
            Err(e)
        }
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Err(release_error)) => Err(release_error),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// Takes the lock, polling with [`Backoff`]. A migrating run re-runs the fast-path query before
/// each new attempt: when the holder has meanwhile brought the database up to date, it returns
/// `None` without ever taking the lock (`fast_path`, not `lock_taken`), so that replicas booting
/// together do not each take the lock in turn only to find nothing to do.
async fn acquire<B: Backend>(
    b: &mut B,
    set: &Migrations,
    cfg: &Config,
    session: &Session,
    work: Work,
    report: &mut Report,
) -> Result<Option<LockToken>, Error> {
    let strategy = match (session.product, cfg.lock) {
        // CockroachDB's advisory functions always succeed: they would exclude nobody.
        (Product::CockroachDb, LockStrategy::Advisory) => LockStrategy::lease(),
        (_, s) => s,
    };
    let started = Instant::now();
    let deadline = started + cfg.lock_timeout;
    let seed = u64::from(std::process::id())
        ^ SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into());
    let mut backoff = Backoff::new(seed);
    let kind = match strategy {
        LockStrategy::None => TokenKind::None,
        LockStrategy::Advisory => {
            let key = advisory_key(&session.database, &session.schema, &cfg.table);
            let mut first = true;
            loop {
                if !std::mem::take(&mut first) && became_current(b, set, cfg, work).await? {
                    return Ok(waited_out(report, started));
                }
                if b.try_advisory_lock(key).await? {
                    break TokenKind::Advisory(key);
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
                if !std::mem::take(&mut first) && became_current(b, set, cfg, work).await? {
                    return Ok(waited_out(report, started));
                }
                match b.try_lease(&owner, ttl).await? {
                    Ok(()) => {
                        break TokenKind::Lease {
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
    report.lock_taken = !matches!(kind, TokenKind::None);
    report.lock_wait = started.elapsed();
    tracing::info!(
        waited_ms = report.lock_wait.as_millis() as u64,
        "migration lock taken"
    );
    Ok(Some(LockToken {
        kind,
        released: false,
    }))
}

/// Whether a migrating run that waits for the lock can stop waiting: the fast path now finds
/// the database current (one query, no lock).
async fn became_current<B: Backend>(
    b: &mut B,
    set: &Migrations,
    cfg: &Config,
    work: Work,
) -> Result<bool, Error> {
    Ok(matches!(work, Work::Migrate) && fast_path(b, set, cfg).await?)
}

/// The report of a run that found the database current while waiting for the lock.
fn waited_out(report: &mut Report, started: Instant) -> Option<LockToken> {
    report.fast_path = true;
    report.lock_taken = false;
    report.lock_wait = started.elapsed();
    tracing::debug!(
        waited_ms = report.lock_wait.as_millis() as u64,
        "database became current while waiting for the lock (fast path)"
    );
    None
}

async fn release<B: Backend>(b: &mut B, token: &mut LockToken) -> Result<(), Error> {
    let result = match &token.kind {
        TokenKind::None => Ok(()),
        TokenKind::Advisory(key) => b.advisory_unlock(*key).await,
        TokenKind::Lease { owner, .. } => b.release_lease(owner).await,
    };
    if result.is_ok() {
        token.released = true;
        tracing::debug!("migration lock released");
    }
    result
}

async fn locked_work<B: Backend>(
    b: &mut B,
    set: &Migrations,
    cfg: &Config,
    session: &Session,
    token: &mut LockToken,
    work: Work,
    report: &mut Report,
) -> Result<(), Error> {
    b.ensure_history().await?;
    // Read after taking the lock: another replica may have finished meanwhile.
    let mut rows = b.read_history().await?;
    let adopt = match (work, cfg.adopt) {
        (Work::Adopt, Adopt::Off) => Adopt::Auto,
        (Work::Adopt | Work::Migrate, a) => a,
        _ => Adopt::Off,
    };
    if adopt != Adopt::Off {
        if rows.is_empty() {
            let explicit = matches!(work, Work::Adopt);
            let adopted = adopt_foreign(b, set, cfg, session, adopt, explicit).await?;
            if adopted.as_ref().is_some_and(|a| !a.versions.is_empty()) {
                rows = b.read_history().await?;
            }
            report.adopted = adopted;
        } else {
            tracing::debug!(
                rows = rows.len(),
                "Preflight's history is not empty: nothing to adopt"
            );
        }
    }
    let mut ctx = Ctx {
        cfg,
        applied_by: cfg.applied_by(),
        cockroach: session.product == Product::CockroachDb,
        token,
        report,
    };
    if ctx.cockroach {
        ctx.warn(Warning::CockroachDb);
    }
    match work {
        Work::Adopt => Ok(()),
        Work::Migrate => migrate(b, set, &rows, &mut ctx).await,
        Work::Revert(r) => revert(b, set, &rows, r, &mut ctx).await,
        Work::Repair(r) => repair(b, set, &rows, r, &mut ctx).await,
    }
}

/// Reads the other tool's history chosen by `adopt`, checks it against the files, and records
/// its applied versions in one transaction (with a `<table>_log` entry). `Ok(None)`: there is no
/// other tool's table (an error when `explicit`).
async fn adopt_foreign<B: Backend>(
    b: &mut B,
    set: &Migrations,
    cfg: &Config,
    session: &Session,
    adopt: Adopt,
    explicit: bool,
) -> Result<Option<Adopted>, Error> {
    let found = b.foreign_tables().await?;
    let Some(table) = adopt::choose(&found, adopt, Some(&session.schema))? else {
        if explicit {
            let tool = match adopt {
                Adopt::From(t) => Some(t),
                _ => None,
            };
            return Err(AdoptError::NotFound {
                tool,
                found: Vec::new(),
            }
            .into());
        }
        return Ok(None);
    };
    let history = b.read_foreign(table).await?;
    let tool = history.tool();
    let list = adopt::adoptable(&history, set)?;
    let by = adopt::applied_by(tool, &table.table);
    let versions: Vec<Version> = list.iter().map(|m| m.version()).collect();
    let shown = versions
        .iter()
        .map(Version::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut items: Vec<TxItem<'_>> = list
        .iter()
        .map(|m| TxItem {
            body: None,
            record: Record::Insert(NewRow::of(m, &by)),
            log: None,
        })
        .collect();
    if let Some(first) = items.first_mut() {
        first.log = Some(LogEntry {
            action: "adopt",
            version: versions.last().copied(),
            detail: format!(
                "adopted {} migration(s) from {tool}'s table {} ({shown}); that table was left untouched",
                versions.len(),
                table.qualified()
            ),
            by: cfg.applied_by(),
        });
        b.transaction(&items).await.map_err(|f| match f {
            TxFailure::Body { error, .. } => Error::db("adopting", error),
            TxFailure::Other(e) => e,
        })?;
    }
    tracing::warn!(%tool, table = %table.qualified(), versions = %shown, "adopted another tool's history");
    Ok(Some(Adopted {
        tool,
        schema: table.schema.clone(),
        table: table.table.clone(),
        versions,
    }))
}

/// What adoption would record, read without the lock and without writing: for dry runs.
pub(crate) async fn preview_adoption<B: Backend>(
    b: &mut B,
    set: &Migrations,
    cfg: &Config,
    adopt: Adopt,
) -> Result<Adopted, Error> {
    cfg.validate()?;
    let adopt = if adopt == Adopt::Off {
        Adopt::Auto
    } else {
        adopt
    };
    let found = b.foreign_tables().await?;
    let tool = match adopt {
        Adopt::From(t) => Some(t),
        _ => None,
    };
    let table =
        adopt::choose(&found, adopt, cfg.schema.as_deref())?.ok_or(AdoptError::NotFound {
            tool,
            found: Vec::new(),
        })?;
    let history = b.read_foreign(table).await?;
    let versions = adopt::adoptable(&history, set)?
        .iter()
        .map(|m| m.version())
        .collect();
    Ok(Adopted {
        tool: history.tool(),
        schema: table.schema.clone(),
        table: table.table.clone(),
        versions,
    })
}

struct Ctx<'a> {
    cfg: &'a Config,
    applied_by: String,
    cockroach: bool,
    token: &'a mut LockToken,
    report: &'a mut Report,
}

impl Ctx<'_> {
    fn warn(&mut self, w: Warning) {
        tracing::warn!("{w}");
        self.report.warnings.push(w);
    }
}

async fn migrate<B: Backend>(
    b: &mut B,
    set: &Migrations,
    rows: &[HistoryRow],
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let plan = plan::plan_up(set, rows, &ctx.cfg.policy)?;
    for w in plan.warnings {
        ctx.warn(w);
    }
    ctx.report.skipped = plan.skipped;
    if ctx.cfg.grouped && !ctx.cockroach && !plan.steps.is_empty() {
        apply_grouped(b, &plan.steps, ctx).await?;
    } else {
        // Durability: every migration transaction but the run's last commits asynchronously
        // (`synchronous_commit = off`: the commit returns before its WAL record is flushed);
        // the last one commits synchronously. The WAL is one sequential log and a flush
        // covers everything before it, so the last commit, once acknowledged, has made every
        // earlier commit of the run durable too (and, with synchronous replication, has waited
        // for the standby to have them as well). A server crash before that point loses a
        // suffix of the run's commits: whole migrations, each body with its history row
        // (they share a transaction), never half of one, and the next boot applies them again.
        // A run that stops on a failed migration leaves its earlier commits to the WAL writer
        // (flushed within a few `wal_writer_delay`s); a crash in that window loses them the
        // same way. No-transaction migrations, their progress rows and the history bookkeeping
        // keep synchronous commits (a lost progress row would make a resume re-run a statement
        // that took effect), and each of them flushes the asynchronous commits before it.
        //
        // Consecutive transactional migrations are sent in windows (one round trip each, on a
        // driver that pipelines; see `window`), each transaction still committing on its own.
        let last = plan.steps.len().saturating_sub(1);
        let limit = window_limit(b, ctx);
        let mut i = 0;
        while let Some(step) = plan.steps.get(i) {
            ctx.token.renew_if_due(b).await?;
            match *step {
                Step::Apply(m) if atomic(m, ctx) => {
                    let window = window(&plan.steps[i..], limit, ctx);
                    if let [one] = window.as_slice() {
                        apply_transactional(b, one, i < last, ctx).await?;
                    } else {
                        apply_window(b, &window, i + window.len() - 1 == last, ctx).await?;
                    }
                    i += window.len();
                }
                Step::Apply(m) => {
                    apply_recorded(b, m, None, ctx).await?;
                    i += 1;
                }
                Step::Resume { migration, from } => {
                    apply_recorded(b, migration, Some(from), ctx).await?;
                    i += 1;
                }
            }
        }
    }
    // A slow path that verified the whole set refreshes the goal row's chain, so that the next
    // boot takes the fast path (the chain differs when another binary applied the row, e.g.
    // after an out-of-order application).
    if let Some((goal, _)) = plan::goal(set, ctx.cfg.policy.target) {
        let stale = rows
            .iter()
            .find(|r| r.version == goal.version())
            .is_some_and(|r| r.is_applied() && r.chain != goal.chain().to_string());
        if stale {
            let item = TxItem {
                body: None,
                record: Record::SetChain {
                    version: goal.version(),
                    chain: goal.chain(),
                },
                log: None,
            };
            b.transaction(&[item])
                .await
                .map_err(|f| tx_error(f, &[goal], false))?;
        }
    }
    Ok(())
}

/// The most bytes of migration scripts sent in one window: pipelining saves a round trip per
/// migration, which matters for small ones; a large script costs more than a round trip to
/// send and run, and a window of them would only hold more in memory.
const WINDOW_BYTES: usize = 256 * 1024;

/// Whether a migration is applied in a transaction with its history row.
fn atomic(m: &Migration, ctx: &Ctx<'_>) -> bool {
    m.up().kind() == Kind::Transactional && !ctx.cockroach
}

/// How many migration transactions one window may hold: the backend's limit, and 1 unless the
/// run holds the advisory lock. The lease must be renewed between migrations, and a window of
/// slow migrations could outlast it; without a lock (`LockStrategy::None`) another run may
/// record a migration this run failed, which would satisfy the next one's guard.
fn window_limit<B: Backend>(b: &B, ctx: &Ctx<'_>) -> usize {
    if matches!(ctx.token.kind, TokenKind::Advisory(_)) {
        b.window_limit().max(1)
    } else {
        1
    }
}

/// The migrations of the next window: the transactional `Apply` steps at the start of `steps`,
/// at most `limit` of them and [`WINDOW_BYTES`] of scripts (but at least one). It stops before
/// anything else (a no-transaction migration, a resumption), which runs on its own.
fn window<'m>(steps: &[Step<'m>], limit: usize, ctx: &Ctx<'_>) -> Vec<&'m Migration> {
    let mut window = Vec::new();
    let mut bytes = 0;
    for step in steps.iter().take(limit) {
        let Step::Apply(m) = *step else { break };
        let size = m.up().script().map_or(0, str::len);
        if !atomic(m, ctx) || (!window.is_empty() && bytes + size > WINDOW_BYTES) {
            break;
        }
        bytes += size;
        window.push(m);
    }
    window
}

/// Several transactional migrations sent together (see [`Backend::transaction_window`]): each
/// in its own transaction with its history row, each after the first guarded by its
/// predecessor's row, so that nothing after a failed one commits. `ends_run`: the window's last
/// migration is the run's, and commits synchronously (see [`migrate`]).
async fn apply_window<B: Backend>(
    b: &mut B,
    migrations: &[&Migration],
    ends_run: bool,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let last = migrations.len().saturating_sub(1);
    let txs: Vec<WindowTx<'_>> = migrations
        .iter()
        .enumerate()
        .map(|(j, m)| WindowTx {
            item: TxItem {
                body: m.up().script(),
                record: Record::Insert(NewRow::of(m, &ctx.applied_by)),
                log: None,
            },
            async_commit: !(ends_run && j == last),
            after: j
                .checked_sub(1)
                .and_then(|p| migrations.get(p))
                .map(|p| p.version()),
        })
        .collect();
    let outcome = b.transaction_window(&txs).await;
    // Sent together, the migrations are not timed one by one: each is reported with an equal
    // share of the window's time (the history's `execution_ms` is measured by the server).
    let share = started.elapsed() / u32::try_from(migrations.len()).unwrap_or(u32::MAX).max(1);
    let committed = match &outcome {
        Ok(()) => migrations.len(),
        Err(f) => f.index,
    };
    for m in migrations.iter().take(committed) {
        applied(ctx, m, share);
    }
    outcome.map_err(|f| match migrations.get(f.index) {
        Some(m) => tx_error(f.failure, &[m], false),
        None => tx_error(f.failure, &[], false),
    })
}

/// One transactional migration with its history row; `async_commit` for all but the run's
/// last (see [`migrate`]).
async fn apply_transactional<B: Backend>(
    b: &mut B,
    m: &Migration,
    async_commit: bool,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let item = TxItem {
        body: m.up().script(),
        record: Record::Insert(NewRow::of(m, &ctx.applied_by)),
        log: None,
    };
    let items = [item];
    let outcome = if async_commit {
        b.transaction_async_commit(&items).await
    } else {
        b.transaction(&items).await
    };
    outcome.map_err(|f| tx_error(f, &[m], false))?;
    applied(ctx, m, started.elapsed());
    Ok(())
}

fn applied(ctx: &mut Ctx<'_>, m: &Migration, duration: Duration) {
    tracing::info!(
        version = %m.version(),
        name = m.name(),
        ms = duration.as_millis() as u64,
        "migration applied"
    );
    ctx.report.applied.push(Applied {
        version: m.version(),
        name: m.name().to_owned(),
        duration,
    });
}

async fn apply_grouped<B: Backend>(
    b: &mut B,
    steps: &[Step<'_>],
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let mut migrations = Vec::with_capacity(steps.len());
    for step in steps {
        match *step {
            Step::Apply(m) if m.up().kind() == Kind::Transactional => migrations.push(m),
            other => {
                let m = other.migration();
                return Err(Error::Config(format!(
                    "grouped mode applies everything in one transaction, but migration {} ({}) \
                     is no-transaction or unfinished; migrate without grouped mode",
                    m.version(),
                    m.path()
                )));
            }
        }
    }
    let items: Vec<TxItem<'_>> = migrations
        .iter()
        .map(|m| TxItem {
            body: m.up().script(),
            record: Record::Insert(NewRow::of(m, &ctx.applied_by)),
            log: None,
        })
        .collect();
    let started = Instant::now();
    b.transaction(&items)
        .await
        .map_err(|f| tx_error(f, &migrations, false))?;
    // One transaction: each migration is reported with the group's duration.
    let elapsed = started.elapsed();
    for m in migrations {
        applied(ctx, m, elapsed);
    }
    Ok(())
}

/// A non-atomic migration (no-transaction, or any on CockroachDB): recorded `in_progress`,
/// then statement by statement with progress, then `applied` (or `failed` with the statement).
async fn apply_recorded<B: Backend>(
    b: &mut B,
    m: &Migration,
    resume_from: Option<u32>,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut row = NewRow::of(m, &ctx.applied_by);
    // A fresh start claims the migration: its row must not exist yet (see `Backend::start_row`).
    row.resume = resume_from.is_some();
    let from = resume_from.unwrap_or(0);
    let total = row.statements_total;
    b.start_row(&row, from).await?;
    if from > 0 || total > 0 {
        tracing::info!(version = %m.version(), from = from + 1, total, "running statements one by one");
    }
    for i in from as usize..m.up().statement_count() {
        ctx.token.renew_if_due(b).await?;
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        // A statement, or a whole block of a script (see `unit`), with its progress.
        let outcome = unit::run(b, m.up(), i, Some(m.version())).await;
        if let Err(unit::UnitFailure::Record(e)) = outcome {
            return Err(e);
        }
        if let Err(unit::UnitFailure::Sql(source)) = outcome {
            let error = MigrationError {
                version: m.version(),
                name: m.name().to_owned(),
                path: m.path().to_owned(),
                down: false,
                statement: Some(i),
                line: m.up().line_of(i),
                source,
            };
            let ms = millis(started.elapsed());
            if let Err(record_error) = b
                .finish_row(
                    m.version(),
                    State::Failed,
                    index,
                    ms,
                    Some(&error.to_string()),
                )
                .await
            {
                tracing::error!(error = %record_error, "could not record the failure");
            }
            tracing::error!("{error}");
            return Err(Error::Migration(Box::new(error)));
        }
    }
    b.finish_row(
        m.version(),
        State::Applied,
        total,
        millis(started.elapsed()),
        None,
    )
    .await?;
    applied(ctx, m, started.elapsed());
    Ok(())
}

async fn revert<B: Backend>(
    b: &mut B,
    set: &Migrations,
    rows: &[HistoryRow],
    revert: Revert,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    // Refuses before anything is touched when one of them cannot be reverted.
    let list = plan::plan_down(set, rows, revert)?;
    for m in list {
        ctx.token.renew_if_due(b).await?;
        let Some(down) = m.down() else {
            continue; // plan_down guarantees a down body
        };
        let started = Instant::now();
        let log = Some(LogEntry {
            action: "revert",
            version: Some(m.version()),
            detail: format!("reverted {} ({})", m.name(), m.path()),
            by: ctx.applied_by.clone(),
        });
        let record = Record::Delete(m.version());
        if down.kind() == Kind::Transactional && !ctx.cockroach {
            let item = TxItem {
                body: down.script(),
                record,
                log,
            };
            b.transaction(&[item])
                .await
                .map_err(|f| tx_error(f, &[m], true))?;
        } else {
            for i in 0..down.statement_count() {
                if let Err(failure) = unit::run(b, down, i, None).await {
                    let source = match failure {
                        unit::UnitFailure::Sql(source) => source,
                        unit::UnitFailure::Record(e) => return Err(e),
                    };
                    return Err(Error::Migration(Box::new(MigrationError {
                        version: m.version(),
                        name: m.name().to_owned(),
                        path: m.path().to_owned(),
                        down: true,
                        statement: Some(i),
                        line: down.line_of(i),
                        source,
                    })));
                }
            }
            let item = TxItem {
                body: None,
                record,
                log,
            };
            b.transaction(&[item])
                .await
                .map_err(|f| tx_error(f, &[m], true))?;
        }
        let duration = started.elapsed();
        tracing::info!(version = %m.version(), ms = duration.as_millis() as u64, "migration reverted");
        ctx.report.reverted.push(Applied {
            version: m.version(),
            name: m.name().to_owned(),
            duration,
        });
    }
    Ok(())
}

async fn repair<B: Backend>(
    b: &mut B,
    set: &Migrations,
    rows: &[HistoryRow],
    repair: Repair,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let find = |v: Version| rows.iter().find(|r| r.version == v);
    let compiled = |v: Version| {
        set.get(v).ok_or_else(|| {
            Error::UnknownVersion(format!("migration {v} is not in this migration set"))
        })
    };
    let by = ctx.applied_by.clone();
    let (items, version) = match repair {
        Repair::MarkApplied(v) => {
            let m = compiled(v)?;
            let before = find(v).map_or("no row".to_owned(), |r| {
                format!("{} {}/{}", r.state, r.statements_done, r.statements_total)
            });
            let row = NewRow::of(m, &by);
            let item = TxItem {
                body: None,
                record: Record::Upsert(row),
                log: Some(LogEntry {
                    action: "mark-applied",
                    version: Some(v),
                    detail: format!("marked applied by hand (was: {before})"),
                    by,
                }),
            };
            (vec![item], v)
        }
        Repair::Forget(v) => {
            let Some(row) = find(v) else {
                return Err(Error::UnknownVersion(format!(
                    "migration {v} has no history row to forget"
                )));
            };
            let item = TxItem {
                body: None,
                record: Record::Delete(v),
                log: Some(LogEntry {
                    action: "forget",
                    version: Some(v),
                    detail: format!(
                        "row deleted so that it runs again (was: {} {}/{}, checksum {})",
                        row.state, row.statements_done, row.statements_total, row.checksum
                    ),
                    by,
                }),
            };
            (vec![item], v)
        }
        Repair::AcceptChecksum(v) => {
            let m = compiled(v)?;
            let Some(row) = find(v).filter(|r| r.is_applied()) else {
                return Err(Error::UnknownVersion(format!(
                    "migration {v} is not applied; only an applied migration's checksum can be \
                     accepted"
                )));
            };
            let mut items = vec![TxItem {
                body: None,
                record: Record::SetChecksum {
                    version: v,
                    checksum: m.checksum(),
                    chain: m.chain(),
                },
                log: Some(LogEntry {
                    action: "accept-checksum",
                    version: Some(v),
                    detail: format!("checksum {} replaced by {}", row.checksum, m.checksum()),
                    by,
                }),
            }];
            // Later rows' chains covered the old checksum: bring them to the binary's values.
            for later in set.iter().filter(|l| l.version() > v) {
                if find(later.version()).is_some_and(HistoryRow::is_applied) {
                    items.push(TxItem {
                        body: None,
                        record: Record::SetChain {
                            version: later.version(),
                            chain: later.chain(),
                        },
                        log: None,
                    });
                }
            }
            (items, v)
        }
    };
    b.transaction(&items).await.map_err(|f| match f {
        TxFailure::Body { error, .. } => Error::db("repair", error),
        TxFailure::Other(e) => e,
    })?;
    tracing::warn!(version = %version, repair = ?repair, "history repaired");
    Ok(())
}

/// Turns a failed transaction into the error naming the migration, statement and line.
fn tx_error(failure: TxFailure, migrations: &[&Migration], down: bool) -> Error {
    match failure {
        TxFailure::Other(e) => e,
        TxFailure::Body { index, error } => {
            let Some(m) = migrations.get(index) else {
                return Error::db("migration transaction", error);
            };
            let body = if down { m.down() } else { Some(m.up()) };
            let statement = body.and_then(|b| statement_at_position(b, &error));
            tracing::error!(version = %m.version(), error = %error, "migration failed, rolled back");
            Error::Migration(Box::new(MigrationError {
                version: m.version(),
                name: m.name().to_owned(),
                path: m.path().to_owned(),
                down,
                statement,
                line: statement.and_then(|i| body.and_then(|b| b.line_of(i))),
                source: error,
            }))
        }
    }
}

/// The statement a server error position (1-based, in characters of the script sent) falls
/// in. Errors without a position (most run-time errors) leave the statement unknown.
pub(crate) fn statement_at_position(body: &Body, error: &DbError) -> Option<usize> {
    let position = usize::try_from(error.position?).ok()?;
    let script = body.script()?;
    let byte = script
        .char_indices()
        .nth(position.checked_sub(1)?)
        .map(|(i, _)| i)?;
    let base = script.as_ptr() as usize;
    let mut found = None;
    for (i, s) in body.statements().enumerate() {
        // Statements are slices of the same text as the script: their offset is the distance.
        let start = (s.as_ptr() as usize).checked_sub(base)?;
        if start <= byte {
            found = Some(i);
        }
    }
    found
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MigrationParts, Span};

    #[test]
    fn maps_server_positions_to_statements() {
        let text = "-- head\nCREATE TABLE a (id int);\n\nCREATE TABLE b (id intt);\n";
        let spans = vec![Span::new(8, 32), Span::new(34, 59)];
        let body = Body::owned(text.to_owned(), spans, Kind::Transactional);
        let script = body.script().unwrap();
        let pos = script.find("intt").unwrap() + 1;
        let err = DbError {
            position: Some(pos as u32),
            ..DbError::default()
        };
        assert_eq!(statement_at_position(&body, &err), Some(1));
        assert_eq!(body.line_of(1), Some(4));
        let first = DbError {
            position: Some(1),
            ..DbError::default()
        };
        assert_eq!(statement_at_position(&body, &first), Some(0));
        assert_eq!(statement_at_position(&body, &DbError::default()), None);
        let _ = MigrationParts {
            version: Version::new(1),
            name: String::new(),
            path: String::new(),
            checksum_text: String::new(),
            up: body,
            down: None,
        };
    }

    #[test]
    fn validates_names() {
        let ok = Config::default();
        assert!(ok.validate().is_ok());
        let long = Config {
            table: "x".repeat(58),
            ..Config::default()
        };
        assert!(matches!(long.validate(), Err(Error::Config(_))));
        let nul = Config {
            schema: Some("a\0b".into()),
            ..Config::default()
        };
        assert!(matches!(nul.validate(), Err(Error::Config(_))));
        assert_eq!(truncate("héllo", 2), "h");
    }
}
