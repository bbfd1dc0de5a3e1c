//! Test databases on PostgreSQL: created per test, copied from a template migrated once per set.
//!
//! The work is written once, async (tokio-postgres); the synchronous constructors and `Drop`
//! run it on a runtime of their own.

use tokio_postgres::{Client, NoTls};

use super::{on_own_runtime, server_url, unique_name, with_database};
use crate::error::{with_causes as causes, DbError};
use crate::postgres::scratch::{create_database, databases, drop_database, drop_leftovers};
use crate::postgres::{quote_ident as identifier, AsyncConn};
use crate::{Checksum, Composition};

/// The name prefix of every test database; with the creation time in the name it lets a later
/// run recognise databases left behind by a crashed one.
pub const DATABASE_PREFIX: &str = "preflight_test_";

/// The name prefix of template databases: `preflight_tpl_<set>_<chain>`, where `<set>` comes
/// from the first migration's checksum (which a set keeps while it grows) and `<chain>` from
/// the chain hash of the whole set, its name and the history table's layout.
pub const TEMPLATE_PREFIX: &str = "preflight_tpl_";

/// The name prefix of the idle databases [`TestDatabase::reused`] hands out:
/// `preflight_idle_<chain>_<unix seconds>_<pid>_<n>`, where `<chain>` is the start of their
/// template's.
pub const IDLE_PREFIX: &str = "preflight_idle_";

/// How many templates of one set (same first migration) are kept: the newest ones, so that a
/// few branches with different migrations can run their tests side by side.
const TEMPLATES_KEPT: usize = 3;

/// A uniquely named test database on the test server ([`server_url`]), dropped on drop (also
/// when the test panics): already at the latest migration of a set ([`TestDatabase::new`], a
/// copy of the set's template database, see the [module docs](super)), or empty
/// ([`TestDatabase::empty`]). One from [`TestDatabase::reused`] goes back to a pool, reset,
/// instead of being dropped.
///
/// ```no_run
/// # use preflight_runtime::{Migrations, MigrationSpec};
/// # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id int);")]).unwrap();
/// use preflight_runtime::testing::TestDatabase;
///
/// let db = TestDatabase::new(&migrations);
/// let mut client = db.connect();
/// client.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
/// println!("{}", db.url()); // for code under test that takes a URL
///
/// let empty = TestDatabase::empty(); // CREATE DATABASE with a unique name, nothing in it
/// empty.connect().batch_execute("CREATE TABLE t (id int)").unwrap();
/// ```
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    /// For [`TestDatabase::reused`]: the state to restore before the database goes back to
    /// the pool instead of being dropped.
    reuse: Option<Reuse>,
}

/// What a reused database is given back with.
struct Reuse {
    /// The database's state when the test got it (see [`RESET`]), as JSON.
    baseline: String,
    /// Where it goes back: `preflight_idle_<chain>_`.
    idle_prefix: String,
}

impl TestDatabase {
    /// A fresh copy of the set's migrated template, which is created first if needed, once,
    /// safely when many test threads and processes start at once.
    ///
    /// # Panics
    /// When no server can be reached or started, or a migration fails on a fresh database.
    ///
    /// `migrations` is a set (`&MIGRATIONS`) or a composition of sets (`&all`, see
    /// [`compose`](crate::compose)): the template is keyed by every set's name and chain.
    pub fn new<'m>(migrations: impl Into<Composition<'m>>) -> TestDatabase {
        let migrations = migrations.into();
        on_own_runtime(|| TestDatabase::new_async(&migrations))
    }

    /// [`TestDatabase::new`] for async code (needs a tokio runtime).
    pub async fn new_async<'m>(migrations: impl Into<Composition<'m>>) -> TestDatabase {
        let migrations: Composition<'m> = migrations.into();
        let migrations = &migrations;
        let admin = Admin::connect().await;
        admin.copy_of_template(migrations).await
    }

    /// Like [`TestDatabase::new`], but the database comes from a pool of databases that
    /// earlier tests gave back, and goes back to it when the test ends instead of being
    /// dropped: no copy and no `DROP DATABASE` per test, which is most of what a test
    /// database costs (each table brings several files to create and unlink). Opt-in, for
    /// suites whose tests change data, not the schema.
    ///
    /// Before the database goes back it is checked and reset, in one transaction: tables that
    /// were empty when the test got it and hold rows now are truncated, sequences are set
    /// back, and tables that had rows (the history, seed data) must hold the same rows. When
    /// the schema changed (an object created, dropped or altered), a table with rows changed,
    /// or a session of the test is still connected, the database is dropped as with
    /// [`TestDatabase::new`], and a later test gets a fresh copy: reuse never hands out a
    /// database that differs from the template in its schema or rows. Not reset: statistics,
    /// dead tuples, and anything outside the database (roles, other databases).
    ///
    /// The pool lives on the server, per template (`preflight_idle_<chain>_...` databases,
    /// claimed by renaming them), so it serves every test thread and process (`cargo test`,
    /// `nextest`) and later runs; it holds at most as many databases as tests ran at once,
    /// and a template's idle databases are dropped with the template.
    ///
    /// ```no_run
    /// # use preflight_runtime::{Migrations, MigrationSpec};
    /// # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id int);")]).unwrap();
    /// use preflight_runtime::testing::TestDatabase;
    ///
    /// let db = TestDatabase::reused(&migrations);
    /// let mut client = db.connect();
    /// client.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    /// drop(client); // its sessions end before the database goes back
    /// // `db` dropped: `t` truncated, the database back in the pool
    /// ```
    ///
    /// # Panics
    /// Like [`TestDatabase::new`].
    pub fn reused<'m>(migrations: impl Into<Composition<'m>>) -> TestDatabase {
        let migrations = migrations.into();
        on_own_runtime(|| TestDatabase::reused_async(&migrations))
    }

    /// [`TestDatabase::reused`] for async code (needs a tokio runtime).
    pub async fn reused_async<'m>(migrations: impl Into<Composition<'m>>) -> TestDatabase {
        let migrations: Composition<'m> = migrations.into();
        let migrations = &migrations;
        let admin = Admin::connect().await;
        let template = admin.template_for(migrations).await;
        let idle_prefix = idle_prefix(&template);
        let mut db = match admin.claim(&idle_prefix).await {
            Some(db) => db,
            None => admin.copy_of_template(migrations).await,
        };
        // The template's baseline is every copy's (a reset copy is the template again); one
        // built before reuse existed has none yet: take it from this copy, and keep it.
        let baseline = match admin.template_baseline(&template).await {
            Some(b) => Some(b),
            None => {
                let b = baseline(&db.url).await.ok();
                if let Some(b) = &b {
                    admin.keep_baseline(&template, b).await;
                }
                b
            }
        };
        // Without a baseline the database cannot be checked later: it is dropped at the end,
        // like a `new` one.
        db.reuse = baseline.map(|baseline| Reuse {
            baseline,
            idle_prefix,
        });
        db
    }

    /// An empty database.
    ///
    /// # Panics
    /// When no server can be reached or started; the message says what to do.
    pub fn empty() -> TestDatabase {
        on_own_runtime(TestDatabase::empty_async)
    }

    /// [`TestDatabase::empty`] for async code (needs a tokio runtime).
    pub async fn empty_async() -> TestDatabase {
        let admin = Admin::connect().await;
        admin
            .create(None)
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database: {}", causes(&e)))
    }

    /// The name of the template database a set's copies are made from (it exists once a
    /// `TestDatabase` of the set was created): to inspect it, or to drop it by hand.
    pub fn template_name<'m>(migrations: impl Into<Composition<'m>>) -> String {
        template_name(&migrations.into())
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection URL for the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new synchronous connection to the database. In async code (where the synchronous
    /// client cannot be used) see [`TestDatabase::connect_async`].
    ///
    /// # Panics
    /// When the connection fails.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap_or_else(|e| {
            panic!(
                "cannot connect to the test database {}: {}",
                self.name,
                causes(&e)
            )
        })
    }

    /// A new async connection to the database, its connection task spawned on the current
    /// tokio runtime.
    ///
    /// # Panics
    /// When the connection fails, or outside a tokio runtime.
    pub async fn connect_async(&self) -> tokio_postgres::Client {
        connect_to(&self.url).await.unwrap_or_else(|e| {
            panic!(
                "cannot connect to the test database {}: {}",
                self.name,
                causes(&e)
            )
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(reuse) = self.reuse.take() {
            // Best effort and silent too: whatever fails, the database is dropped below
            // rather than given back unchecked.
            if on_own_runtime(|| give_back(&self.admin_url, &self.name, &reuse)) {
                return;
            }
        }
        let (admin_url, name) = (&self.admin_url, &self.name);
        // Best effort and silent: a drop may run while a failing test unwinds, and a database
        // that could not be dropped is cleaned up by a later run (see the module docs).
        on_own_runtime(|| async move {
            if let Ok(admin) = connect_to(admin_url).await {
                let _ = admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        identifier(name)
                    ))
                    .await;
            }
        });
    }
}

/// Gives a reused database back to its pool: renamed first (which waits a few seconds for the
/// test's sessions to end, and fails if one stays), so that nothing connects to it by its old
/// name while it is reset; then checked and reset (see [`RESET`]); then renamed into the
/// pool, or dropped when the check failed. Returns whether the database is gone from its test
/// name; `false` leaves it to be dropped.
async fn give_back(admin_url: &str, name: &str, reuse: &Reuse) -> bool {
    let Ok(admin) = connect_to(admin_url).await else {
        return false;
    };
    let resetting = unique_name(DATABASE_PREFIX);
    if rename_when_free(&admin, name, &resetting).await.is_err() {
        return false;
    }
    let reset = async {
        let (client, connection) =
            tokio_postgres::connect(&with_database(admin_url, &resetting), NoTls).await?;
        let connection = tokio::spawn(connection);
        let outcome = async {
            client
                .execute(
                    "SELECT set_config('preflight.baseline', $1, false)",
                    &[&reuse.baseline],
                )
                .await?;
            client.batch_execute(RESET).await
        }
        .await;
        // Closed before the rename, which refuses a database someone is connected to.
        drop(client);
        let _ = connection.await;
        outcome
    };
    let given_back = match reset.await {
        Ok(()) => rename_when_free(&admin, &resetting, &unique_name(&reuse.idle_prefix))
            .await
            .is_ok(),
        Err(_) => false,
    };
    if !given_back {
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                identifier(&resetting)
            ))
            .await;
    }
    true
}

/// Renames a database once the sessions that just closed have ended. `ALTER DATABASE ...
/// RENAME` refuses a database with sessions, but first waits for them in steps of 100 ms,
/// and a client's session outlives its closed connection by a few milliseconds (the server
/// process is still exiting): waiting here in 1-ms steps (up to 5 s, then the rename's own
/// wait and refusal) saves most of those 100 ms per rename.
async fn rename_when_free(
    admin: &Client,
    from: &str,
    to: &str,
) -> Result<(), tokio_postgres::Error> {
    admin
        .execute(
            "SELECT set_config('preflight.database', $1, false)",
            &[&from],
        )
        .await?;
    admin.batch_execute(WAIT_FOR_SESSIONS).await?;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            identifier(from),
            identifier(to)
        ))
        .await
}

/// Waits until no client session is connected to the database `preflight.database` names,
/// for 5 s at most.
const WAIT_FOR_SESSIONS: &str = "DO $preflight$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '5 seconds';
BEGIN
    WHILE clock_timestamp() < deadline AND EXISTS (
        SELECT FROM pg_stat_activity
        WHERE datname = current_setting('preflight.database') AND backend_type = 'client backend'
    ) LOOP
        PERFORM pg_sleep(0.001);
        -- `pg_stat_activity` is read once per transaction unless told to look again.
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END
$preflight$";

/// Takes the baseline of a database as the template left it (see [`RESET`]).
async fn baseline(url: &str) -> Result<String, tokio_postgres::Error> {
    let client = connect_to(url).await?;
    take_baseline(&client).await
}

/// [`baseline`] on a connection to the database.
async fn take_baseline(client: &Client) -> Result<String, tokio_postgres::Error> {
    client
        .batch_execute("SELECT set_config('preflight.baseline', '', false)")
        .await?;
    client.batch_execute(RESET).await?;
    Ok(client
        .query_one("SELECT current_setting('preflight.baseline')", &[])
        .await?
        .get(0))
}

/// Keeps the baseline in `preflight.baseline` as the comment of the database
/// `preflight.database` names (a template's baseline is every copy's).
const COMMENT_BASELINE: &str = "DO $preflight$
BEGIN
    EXECUTE format('COMMENT ON DATABASE %I IS %L',
        current_setting('preflight.database'), current_setting('preflight.baseline'));
END
$preflight$";

/// The idle databases of a template: `preflight_idle_<16 hex digits of its chain>_`.
fn idle_prefix(template: &str) -> String {
    let chain = template.rsplit('_').next().unwrap_or("");
    format!("{IDLE_PREFIX}{}_", &chain[..chain.len().min(16)])
}

/// One PL/pgSQL block for both ends of a reused database's test, run in the database itself.
///
/// With `preflight.baseline` empty it takes the baseline into that setting, as JSON: a
/// fingerprint of the schema, each table's state (`null` when empty, else an md5 of its
/// rows; materialized views always by content) and each sequence's last value.
///
/// With a baseline it checks and resets, in one transaction: the schema's fingerprint must be
/// the same and every table that had rows must have the same rows; tables that were empty and
/// hold rows now are truncated (one `TRUNCATE` for all of them, so that foreign keys between
/// them do not get in the way) and every sequence that moved is set back. Anything else
/// raises, and the caller drops the database instead.
///
/// The fingerprint covers the database's own objects (oid ≥ 16384, the first one not built
/// in): every row of every per-database catalog with an oid (functions, types, constraints,
/// triggers, defaults, extensions, policies, rules, large objects, ...), the stable columns
/// of `pg_class` (not those `VACUUM` and `ANALYZE` update, nor the file node `TRUNCATE`
/// changes), `pg_attribute`, `pg_index`, comments, the database's settings, and its schemas
/// but the per-session temporary ones.
const RESET: &str = include_str!("reset.sql");

/// A connection to the test server's maintenance database.
struct Admin {
    client: Client,
    url: &'static str,
}

impl Admin {
    async fn connect() -> Admin {
        let url = server_url();
        let client = connect_to(url).await.unwrap_or_else(|e| {
            panic!(
                "cannot connect to the test server (DATABASE_URL or the private cluster): {}",
                causes(&e)
            )
        });
        let admin = Admin { client, url };
        admin.clean_up_leftovers().await;
        admin
    }

    async fn execute(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        // One statement per call: CREATE/DROP DATABASE refuse to run in the implicit
        // transaction of a multi-statement query.
        self.client.batch_execute(sql).await
    }

    async fn create(&self, template: Option<&str>) -> Result<TestDatabase, DbError> {
        let name = unique_name(DATABASE_PREFIX);
        create_database(&mut AsyncConn::new(&self.client), &name, template).await?;
        Ok(self.test_database(name))
    }

    fn test_database(&self, name: String) -> TestDatabase {
        TestDatabase {
            url: with_database(self.url, &name),
            admin_url: self.url.to_owned(),
            name,
            reuse: None,
        }
    }

    /// A fresh copy of the set's template (built first if needed).
    async fn copy_of_template(&self, migrations: &Composition<'_>) -> TestDatabase {
        let mut retried = false;
        loop {
            let template = self.template_for(migrations).await;
            match self.create(Some(&template)).await {
                Ok(db) => return db,
                // Another run pruned this template between our check and the copy (it keeps
                // the newest few per set): build it again, once.
                Err(e) if !retried && e.is("3D000") => {
                    retried = true;
                }
                Err(e) => panic!("cannot create a test database from the template {template}: {e}"),
            }
        }
    }

    /// The baseline kept as the template's comment (see [`COMMENT_BASELINE`]), if any.
    async fn template_baseline(&self, template: &str) -> Option<String> {
        let comment: Option<String> = self
            .client
            .query_opt(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
                &[&template],
            )
            .await
            .ok()??
            .get(0);
        comment.filter(|c| c.starts_with('{'))
    }

    /// Keeps `baseline` as the template's comment; best effort (a role that does not own the
    /// template takes the baseline from each copy instead).
    async fn keep_baseline(&self, template: &str, baseline: &str) {
        let set = self
            .client
            .execute(
                "SELECT set_config('preflight.database', $1, false), \
                 set_config('preflight.baseline', $2, false)",
                &[&template, &baseline],
            )
            .await;
        if set.is_ok() {
            let _ = self.client.batch_execute(COMMENT_BASELINE).await;
        }
    }

    /// An idle database of the pool `prefix` names, renamed to a test database's name, if
    /// one can be had: the rename succeeds for one claimer only.
    async fn claim(&self, prefix: &str) -> Option<TestDatabase> {
        let idle = self
            .client
            .query(
                "SELECT datname::text FROM pg_database WHERE left(datname, length($1)) = $1 \
                 ORDER BY random()",
                &[&prefix],
            )
            .await
            .ok()?;
        for row in idle {
            let candidate: String = row.get(0);
            let name = unique_name(DATABASE_PREFIX);
            let renamed = self
                .execute(&format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    identifier(&candidate),
                    identifier(&name)
                ))
                .await;
            if renamed.is_ok() {
                return Some(self.test_database(name));
            }
        }
        None
    }

    /// The names of the databases starting with `prefix`, newest first.
    async fn databases(&self, prefix: &str, only_templates: bool) -> Result<Vec<String>, DbError> {
        databases(&mut AsyncConn::new(&self.client), prefix, only_templates).await
    }

    async fn drop_database(&self, name: &str) -> Result<(), DbError> {
        drop_database(&mut AsyncConn::new(&self.client), name).await
    }

    /// Drops test databases that a crashed run left behind, once per process.
    async fn clean_up_leftovers(&self) {
        static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if DONE.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        drop_leftovers(&mut AsyncConn::new(&self.client), DATABASE_PREFIX).await;
        // Idle databases whose template is gone (dropped by hand, or by another run's prune).
        let (Ok(idle), Ok(templates)) = (
            self.databases(IDLE_PREFIX, false).await,
            self.databases(TEMPLATE_PREFIX, true).await,
        ) else {
            return;
        };
        let pools: Vec<String> = templates.iter().map(|t| idle_prefix(t)).collect();
        for name in idle
            .iter()
            .filter(|n| !pools.iter().any(|p| n.starts_with(p)))
        {
            let _ = self.drop_database(name).await;
        }
    }

    /// Makes sure the migrated template of `set` exists, and returns its name.
    async fn template_for(&self, set: &Composition<'_>) -> String {
        let name = template_name(set);
        if self.template_exists(&name).await {
            return name;
        }
        // One builder per template, across threads and processes: the others wait on the lock,
        // then find the template. It is a session lock of this connection, so a builder that
        // crashes releases it. (A blocking wait is safe here, unlike in the runner: the builder
        // migrates another database, which `CREATE INDEX CONCURRENTLY` does not wait on.)
        let key = i64::from_be_bytes(
            Checksum::of(&name).as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        self.client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await
            .unwrap_or_else(|e| panic!("cannot lock the template {name}: {}", causes(&e)));
        if !self.template_exists(&name).await {
            self.build_template(&name, set).await;
            self.prune_templates(&name).await;
        }
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&key])
            .await;
        name
    }

    async fn template_exists(&self, name: &str) -> bool {
        self.client
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate",
                &[&name],
            )
            .await
            .map(|r| r.is_some())
            .unwrap_or_else(|e| panic!("cannot look for the template {name}: {}", causes(&e)))
    }

    /// Migrates a scratch database, then renames it into place, so that no one ever copies a
    /// half-migrated template. Runs under the template's lock.
    async fn build_template(&self, name: &str, set: &Composition<'_>) {
        let fail =
            |what: &str, e: String| -> ! { panic!("cannot {what} the template {name}: {e}") };
        // Under the lock no one else is building this template: databases with its name are
        // what crashed builders left (a scratch copy, or one renamed but not yet marked).
        let scratch_prefix = format!("{name}_b");
        let stale = self
            .databases(&scratch_prefix, false)
            .await
            .unwrap_or_else(|e| fail("clean up", e.to_string()));
        for stale in stale.iter().map(String::as_str).chain([name]) {
            self.drop_database(stale)
                .await
                .unwrap_or_else(|e| fail("clean up", e.to_string()));
        }
        let scratch = format!("{scratch_prefix}{}", std::process::id());
        create_database(&mut AsyncConn::new(&self.client), &scratch, None)
            .await
            .unwrap_or_else(|e| fail("create", e.to_string()));
        let migrated = async {
            let (mut client, connection) =
                tokio_postgres::connect(&with_database(self.url, &scratch), NoTls).await?;
            let connection = tokio::spawn(connection);
            let outcome = set.run_async(&mut client).await;
            if outcome.is_ok() {
                // For `TestDatabase::reused` (best effort: without it, reuse takes the
                // baseline from a copy).
                if take_baseline(&client).await.is_ok() {
                    let _ = client
                        .batch_execute(
                            "SELECT set_config('preflight.database', current_database(), false)",
                        )
                        .await;
                    let _ = client.batch_execute(COMMENT_BASELINE).await;
                }
            }
            // Closed before the rename, which refuses a database someone is connected to.
            drop(client);
            let _ = connection.await;
            Ok::<_, tokio_postgres::Error>(outcome)
        };
        match migrated.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let _ = self.drop_database(&scratch).await;
                panic!("the migrations fail on a fresh database: {e}");
            }
            Err(e) => {
                let _ = self.drop_database(&scratch).await;
                fail("migrate", causes(&e));
            }
        }
        for sql in [
            format!(
                "ALTER DATABASE {} RENAME TO {}",
                identifier(&scratch),
                identifier(name)
            ),
            format!("ALTER DATABASE {} IS_TEMPLATE true", identifier(name)),
        ] {
            self.execute(&sql)
                .await
                .unwrap_or_else(|e| fail("install", causes(&e)));
        }
    }

    /// Drops the set's older templates beyond the newest [`TEMPLATES_KEPT`] (databases' oids
    /// grow with their creation): every edit of a migration makes a new template, and they
    /// would pile up on a developer's server.
    async fn prune_templates(&self, name: &str) {
        let Some(family) = name.rfind('_').map(|i| &name[..=i]) else {
            return;
        };
        let Ok(templates) = self.databases(family, true).await else {
            return;
        };
        for old in templates.iter().skip(TEMPLATES_KEPT) {
            // A template cannot be dropped; a failure here only leaves it for the next prune.
            if self
                .execute(&format!(
                    "ALTER DATABASE {} IS_TEMPLATE false",
                    identifier(old)
                ))
                .await
                .is_ok()
            {
                let _ = self.drop_database(old).await;
                if let Ok(idle) = self.databases(&idle_prefix(old), false).await {
                    for name in idle {
                        let _ = self.drop_database(&name).await;
                    }
                }
            }
        }
    }
}

/// `preflight_tpl_<set>_<chain>` (see [`TEMPLATE_PREFIX`]); 47 bytes, within PostgreSQL's 63
/// with room for the builder's suffix.
fn template_name(set: &Composition<'_>) -> String {
    let hex = |c: Checksum| c.to_string();
    let chain = hex(set.fingerprint());
    let family = hex(set
        .order()
        .next()
        .map_or(Checksum::ZERO, |(_, m)| m.checksum()));
    format!("{TEMPLATE_PREFIX}{}_{}", &family[..8], &chain[..24])
}

async fn connect_to(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MigrationSpec, Migrations};

    fn count(client: &mut postgres::Client, sql: &str, name: &str) -> i64 {
        client.query_one(sql, &[&name]).unwrap().get(0)
    }

    const EXISTS: &str = "SELECT count(*) FROM pg_database WHERE datname = $1";

    #[test]
    fn test_databases_are_created_isolated_and_dropped() {
        let a = TestDatabase::empty();
        let b = TestDatabase::empty();
        assert_ne!(a.name(), b.name());
        a.connect()
            .batch_execute("CREATE TABLE only_in_a (id int)")
            .unwrap();
        let seen = count(
            &mut b.connect(),
            "SELECT count(*) FROM pg_tables WHERE tablename = $1",
            "only_in_a",
        );
        assert_eq!(seen, 0);
        let name = a.name().to_owned();
        drop(a);
        let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
        assert_eq!(count(&mut admin, EXISTS, &name), 0);
    }

    #[test]
    fn template_names_follow_the_set_and_fit_postgres() {
        let v1 = Migrations::from_specs(vec![MigrationSpec::new(1, "a", "SELECT 1")]).unwrap();
        let v2 = Migrations::from_specs(vec![
            MigrationSpec::new(1, "a", "SELECT 1"),
            MigrationSpec::new(2, "b", "SELECT 2"),
        ])
        .unwrap();
        let (n1, n2) = (template_name(&(&v1).into()), template_name(&(&v2).into()));
        assert_ne!(n1, n2);
        // Same first migration: same family, which pruning keys on.
        assert_eq!(n1[..n1.rfind('_').unwrap()], n2[..n2.rfind('_').unwrap()]);
        assert!(n1.len() + 12 <= 63, "{n1}");
    }

    #[test]
    fn migrated_copies_come_from_one_template_per_set() {
        let set = Migrations::from_specs(vec![
            MigrationSpec::new(1, "t", "CREATE TABLE t (id int)"),
            MigrationSpec::new(2, "row", "INSERT INTO t VALUES (1)"),
        ])
        .unwrap();
        // Many threads at once: one builds the template, all get a migrated copy.
        let names: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        let db = TestDatabase::new(&set);
                        let mut client = db.connect();
                        let rows: i64 = client
                            .query_one("SELECT count(*) FROM t", &[])
                            .unwrap()
                            .get(0);
                        assert_eq!(rows, 1);
                        client.execute("INSERT INTO t VALUES (2)", &[]).unwrap();
                        db.name().to_owned()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        // A copy is current: the runner takes the fast path.
        let db = TestDatabase::new(&set);
        let report = set.run(&mut db.connect()).unwrap();
        assert!(report.fast_path);
        let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
        assert_eq!(count(&mut admin, EXISTS, &template_name(&(&set).into())), 1);
        for name in &names {
            assert_eq!(count(&mut admin, EXISTS, name), 0, "{name} was not dropped");
        }
    }

    #[test]
    fn a_changed_set_gets_a_new_template_and_old_ones_are_pruned() {
        // A family of its own (a unique first migration), grown five times.
        let first = format!("SELECT '{}'", unique_name("family_"));
        let mut specs = vec![MigrationSpec::new(1, "first", &first)];
        let mut names = Vec::new();
        for v in 2..=6u64 {
            specs.push(MigrationSpec::new(
                v,
                "t",
                &format!("CREATE TABLE t{v} (id int)"),
            ));
            let set = Migrations::from_specs(specs.clone()).unwrap();
            let db = TestDatabase::new(&set);
            let tables: i64 = db
                .connect()
                .query_one(
                    "SELECT count(*) FROM pg_tables WHERE tablename ~ '^t[0-9]$'",
                    &[],
                )
                .unwrap()
                .get(0);
            assert_eq!(tables, v as i64 - 1);
            names.push(template_name(&(&set).into()));
        }
        let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
        let left: Vec<i64> = names.iter().map(|n| count(&mut admin, EXISTS, n)).collect();
        assert_eq!(left, [0, 0, 1, 1, 1]);
        // A family of this run only: leave nothing on the server.
        for name in &names[2..] {
            admin
                .batch_execute(&format!(
                    "ALTER DATABASE {} IS_TEMPLATE false",
                    identifier(name)
                ))
                .unwrap();
            admin
                .batch_execute(&format!("DROP DATABASE {}", identifier(name)))
                .unwrap();
        }
    }

    /// A set of its own (a unique first migration): a table the tests fill, seed rows, an
    /// identity column and a free sequence.
    fn reuse_set() -> Migrations {
        let first = format!("SELECT '{}'", unique_name("reuse_"));
        Migrations::from_specs(vec![
            MigrationSpec::new(1, "first", &first),
            MigrationSpec::new(
                2,
                "seed",
                "CREATE TABLE kind (name text PRIMARY KEY);\n\
                 INSERT INTO kind VALUES ('a'), ('b');",
            ),
            MigrationSpec::new(
                3,
                "tables",
                "CREATE TABLE item (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 kind text NOT NULL REFERENCES kind (name));\n\
                 CREATE SEQUENCE ticket;",
            ),
        ])
        .unwrap()
    }

    /// The idle databases of `set`'s pool.
    fn idle_of(admin: &mut postgres::Client, set: &Migrations) -> Vec<String> {
        let prefix = idle_prefix(&template_name(&Composition::from(set)));
        admin
            .query(
                "SELECT datname::text FROM pg_database WHERE left(datname, length($1)) = $1",
                &[&prefix],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Drops `set`'s template and its idle databases.
    fn drop_pool(admin: &mut postgres::Client, set: &Migrations) {
        for name in idle_of(admin, set) {
            admin
                .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", identifier(&name)))
                .unwrap();
        }
        let template = template_name(&Composition::from(set));
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} IS_TEMPLATE false",
                identifier(&template)
            ))
            .unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE {}", identifier(&template)))
            .unwrap();
    }

    #[test]
    fn a_reused_database_goes_back_to_the_pool_reset_and_comes_back_from_it() {
        let set = reuse_set();
        let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
        let first = TestDatabase::reused(&set);
        let first_name = first.name().to_owned();
        {
            let mut c = first.connect();
            c.batch_execute(
                "INSERT INTO item (kind) VALUES ('a'), ('b'), ('a'); SELECT nextval('ticket');",
            )
            .unwrap();
        }
        assert!(idle_of(&mut admin, &set).is_empty());
        drop(first);
        // Given back, not dropped: gone under its test name, one idle database in the pool.
        assert_eq!(count(&mut admin, EXISTS, &first_name), 0);
        let idle = idle_of(&mut admin, &set);
        assert_eq!(idle.len(), 1, "{idle:?}");

        // The next test gets that database, as the template left it.
        let second = TestDatabase::reused(&set);
        assert!(
            idle_of(&mut admin, &set).is_empty(),
            "claimed from the pool"
        );
        let mut c = second.connect();
        let items: i64 = c
            .query_one("SELECT count(*) FROM item", &[])
            .unwrap()
            .get(0);
        assert_eq!(items, 0, "truncated");
        let kinds: i64 = c
            .query_one("SELECT count(*) FROM kind", &[])
            .unwrap()
            .get(0);
        assert_eq!(kinds, 2, "seed rows kept");
        let id: i64 = c
            .query_one("INSERT INTO item (kind) VALUES ('b') RETURNING id", &[])
            .unwrap()
            .get(0);
        assert_eq!(id, 1, "identity set back");
        let ticket: i64 = c.query_one("SELECT nextval('ticket')", &[]).unwrap().get(0);
        assert_eq!(ticket, 1, "sequence set back");
        assert!(set.run(&mut c).unwrap().fast_path, "current for the runner");
        drop(c);
        drop(second);
        assert_eq!(idle_of(&mut admin, &set).len(), 1);
        drop_pool(&mut admin, &set);
    }

    #[test]
    fn a_reused_database_that_changed_beyond_its_rows_is_dropped_not_given_back() {
        let set = reuse_set();
        let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
        let changes = [
            "CREATE TABLE extra (id int)",
            "ALTER TABLE item ADD COLUMN note text",
            "CREATE INDEX ON item (kind)",
            "COMMENT ON TABLE item IS 'changed'",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "UPDATE kind SET name = 'c' WHERE name = 'b'",
            "DELETE FROM kind WHERE name = 'b'",
            "INSERT INTO kind VALUES ('z')",
        ];
        for change in changes {
            let db = TestDatabase::reused(&set);
            let name = db.name().to_owned();
            db.connect().batch_execute(change).unwrap();
            drop(db);
            assert_eq!(count(&mut admin, EXISTS, &name), 0, "{change}: dropped");
            assert!(
                idle_of(&mut admin, &set).is_empty(),
                "{change}: not given back"
            );
        }
        // A test that only wrote rows to empty tables gives its database back, and the next
        // one starts from the template's state.
        let db = TestDatabase::reused(&set);
        db.connect()
            .batch_execute("INSERT INTO item (kind) VALUES ('a')")
            .unwrap();
        drop(db);
        assert_eq!(idle_of(&mut admin, &set).len(), 1);
        drop_pool(&mut admin, &set);
    }

    #[test]
    fn a_reused_database_with_a_session_still_open_is_dropped_not_given_back() {
        let set = reuse_set();
        let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
        let db = TestDatabase::reused(&set);
        let name = db.name().to_owned();
        let mut leaked = db.connect();
        leaked
            .batch_execute("INSERT INTO item (kind) VALUES ('a')")
            .unwrap();
        // The rename that starts the give-back waits for the session, then gives up: the
        // database is dropped (with FORCE) instead, and the session is gone with it.
        drop(db);
        assert_eq!(count(&mut admin, EXISTS, &name), 0);
        assert!(idle_of(&mut admin, &set).is_empty());
        assert!(leaked.batch_execute("SELECT 1").is_err());
        drop_pool(&mut admin, &set);
    }

    #[test]
    fn a_template_without_a_kept_baseline_gets_it_from_its_first_reused_copy() {
        let set = reuse_set();
        let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
        let comment = |admin: &mut postgres::Client| -> Option<String> {
            admin
                .query_one(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database \
                     WHERE datname = $1",
                    &[&template_name(&Composition::from(&set))],
                )
                .unwrap()
                .get(0)
        };
        drop(TestDatabase::new(&set));
        let kept = comment(&mut admin).expect("the template keeps its baseline");
        // A template built before reuse existed: no comment.
        admin
            .batch_execute(&format!(
                "COMMENT ON DATABASE {} IS NULL",
                identifier(&template_name(&Composition::from(&set)))
            ))
            .unwrap();
        let db = TestDatabase::reused(&set);
        db.connect()
            .batch_execute("INSERT INTO item (kind) VALUES ('a')")
            .unwrap();
        drop(db);
        assert_eq!(idle_of(&mut admin, &set).len(), 1, "given back");
        assert_eq!(
            comment(&mut admin),
            Some(kept),
            "the same baseline, kept again"
        );
        drop_pool(&mut admin, &set);
    }

    #[test]
    fn many_threads_get_distinct_reused_databases_and_the_pool_holds_as_many() {
        let set = reuse_set();
        let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
        let round = || {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            let set = &set;
                            let db = TestDatabase::reused(set);
                            let mut c = db.connect();
                            let items: i64 = c
                                .query_one("SELECT count(*) FROM item", &[])
                                .unwrap()
                                .get(0);
                            assert_eq!(items, 0);
                            c.execute("INSERT INTO item (kind) VALUES ($1)", &[&"a"])
                                .unwrap();
                            db.name().to_owned()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<String>>()
            })
        };
        for _ in 0..2 {
            let mut names = round();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), 4);
            let idle = idle_of(&mut admin, &set).len();
            assert!((1..=4).contains(&idle), "{idle} idle databases");
        }
        drop_pool(&mut admin, &set);
    }

    #[test]
    fn async_twin_works_inside_a_runtime_and_drops_from_it() {
        let set =
            Migrations::from_specs(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id int)")])
                .unwrap();
        let name = super::super::block_on(async {
            let db = TestDatabase::new_async(&set).await;
            let client = db.connect_async().await;
            client
                .execute("INSERT INTO t VALUES (1)", &[])
                .await
                .unwrap();
            // The synchronous constructor also works from inside a runtime.
            let other = TestDatabase::new(&set);
            assert_ne!(other.name(), db.name());
            db.name().to_owned()
            // both dropped here, inside the runtime
        });
        let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
        assert_eq!(count(&mut admin, EXISTS, &name), 0);
    }
}
