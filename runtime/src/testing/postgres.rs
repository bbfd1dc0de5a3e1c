//! Test databases on PostgreSQL: created per test, copied from a template migrated once per set.
//!
//! The work is written once, async (tokio-postgres); the synchronous constructors and `Drop`
//! run it on a runtime of their own.

use tokio_postgres::{Client, NoTls};

use super::{on_own_runtime, server_url, unique_name, with_database};
use crate::error::{with_causes as causes, DbError};
use crate::postgres::scratch::{create_database, databases, drop_database, drop_leftovers};
use crate::postgres::{quote_ident as identifier, AsyncConn};
use crate::{Checksum, Migrations};

/// The name prefix of every test database; with the creation time in the name it lets a later
/// run recognise databases left behind by a crashed one.
pub const DATABASE_PREFIX: &str = "preflight_test_";

/// The name prefix of template databases: `preflight_tpl_<set>_<chain>`, where `<set>` comes
/// from the first migration's checksum (which a set keeps while it grows) and `<chain>` from
/// the chain hash of the whole set.
pub const TEMPLATE_PREFIX: &str = "preflight_tpl_";

/// How many templates of one set (same first migration) are kept: the newest ones, so that a
/// few branches with different migrations can run their tests side by side.
const TEMPLATES_KEPT: usize = 3;

/// A uniquely named test database on the test server ([`server_url`]), dropped on drop (also
/// when the test panics): already at the latest migration of a set ([`TestDatabase::new`], a
/// copy of the set's template database, see the [module docs](super)), or empty
/// ([`TestDatabase::empty`]).
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
}

impl TestDatabase {
    /// A fresh copy of the set's migrated template, which is created first if needed, once,
    /// safely when many test threads and processes start at once.
    ///
    /// # Panics
    /// When no server can be reached or started, or a migration fails on a fresh database.
    pub fn new(migrations: &Migrations) -> TestDatabase {
        on_own_runtime(|| TestDatabase::new_async(migrations))
    }

    /// [`TestDatabase::new`] for async code (needs a tokio runtime).
    pub async fn new_async(migrations: &Migrations) -> TestDatabase {
        let admin = Admin::connect().await;
        let mut retried = false;
        loop {
            let template = admin.template_for(migrations).await;
            match admin.create(Some(&template)).await {
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
            .unwrap_or_else(|e| panic!("cannot create a test database: {e}"))
    }

    /// The name of the template database a set's copies are made from (it exists once a
    /// `TestDatabase` of the set was created): to inspect it, or to drop it by hand.
    pub fn template_name(migrations: &Migrations) -> String {
        template_name(migrations)
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
        let (admin_url, name) = (&self.admin_url, &self.name);
        // Best effort and silent: a drop may run while a failing test unwinds, and a database
        // that could not be dropped is cleaned up by a later run (see the module docs).
        on_own_runtime(|| async move {
            if let Ok(admin) = connect_to(admin_url).await {
                let _ = drop_database(&mut AsyncConn::new(&admin), name).await;
            }
        });
    }
}

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
        Ok(TestDatabase {
            url: with_database(self.url, &name),
            admin_url: self.url.to_owned(),
            name,
        })
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
    }

    /// Makes sure the migrated template of `set` exists, and returns its name.
    async fn template_for(&self, set: &Migrations) -> String {
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
    async fn build_template(&self, name: &str, set: &Migrations) {
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
            }
        }
    }
}

/// `preflight_tpl_<set>_<chain>` (see [`TEMPLATE_PREFIX`]); 47 bytes, within PostgreSQL's 63
/// with room for the builder's suffix.
fn template_name(set: &Migrations) -> String {
    let hex = |c: Checksum| c.to_string();
    let chain = hex(set.last().map_or(Checksum::ZERO, |m| m.chain()));
    let family = hex(set.iter().next().map_or(Checksum::ZERO, |m| m.checksum()));
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
    use crate::MigrationSpec;

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
        let (n1, n2) = (template_name(&v1), template_name(&v2));
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
        assert_eq!(count(&mut admin, EXISTS, &template_name(&set)), 1);
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
            names.push(template_name(&set));
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
