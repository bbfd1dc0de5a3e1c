//! Test helpers: a fresh PostgreSQL database per test, and private throwaway clusters.
//!
//! Tests use a real server, never a mock. The server is the one `DATABASE_URL` names (any
//! database on it: the helpers create and drop their own), or, when `DATABASE_URL` is not set, a
//! private cluster started once per test process (initdb into a temporary directory, its own
//! port) and stopped when the process exits. When no PostgreSQL binaries exist, the helpers panic
//! with the command that installs them.
//!
//! ```no_run
//! use preflight_runtime::testing::TestDb;
//!
//! let db = TestDb::new(); // CREATE DATABASE with a unique name
//! let mut client = db.connect();
//! client.batch_execute("CREATE TABLE t (id int)").unwrap();
//! // dropped (DROP DATABASE ... WITH (FORCE)) when `db` goes out of scope, also on panic
//! ```
//!
//! [`TestDatabase`] gives each test a database already at the latest migration, fast: the set is
//! migrated once into a template database named after its chain hash (a changed set gets a new
//! template; an unchanged one is reused across test binaries and runs), then every test gets a
//! `CREATE DATABASE ... TEMPLATE` copy.
//!
//! ```no_run
//! # use preflight_runtime::{Migrations, MigrationSpec};
//! # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id int);")]).unwrap();
//! use preflight_runtime::testing::TestDatabase;
//!
//! let db = TestDatabase::new(&migrations);
//! db.connect().execute("INSERT INTO t VALUES (1)", &[]).unwrap();
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Checksum, Migrations};

/// The name prefix of every database [`TestDb`] creates; with the creation time in the name it
/// lets a later run recognise databases left behind by a crashed one.
pub const DATABASE_PREFIX: &str = "preflight_test_";

/// A freshly created, uniquely named database, dropped on drop.
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDb {
    /// Creates a database on the test server.
    ///
    /// # Panics
    /// When no server can be reached or started; the message says what to do.
    pub fn new() -> TestDb {
        TestDb::create(None)
    }

    fn create(template: Option<&str>) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin_url = server_url().to_owned();
        clean_up_leftovers(&admin_url);
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!(
            "{DATABASE_PREFIX}{secs}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = connect(&admin_url);
        let template = template.map_or(String::new(), |t| {
            format!(" TEMPLATE {}", postgres_identifier(t))
        });
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {}{template}",
                postgres_identifier(&name)
            ))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create the test database {name}: {}",
                    crate::error::with_causes(&e)
                )
            });
        let url = with_database(&admin_url, &name);
        TestDb {
            name,
            url,
            admin_url,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection URL for the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new synchronous connection to the database.
    pub fn connect(&self) -> postgres::Client {
        connect(&self.url)
    }
}

impl Default for TestDb {
    fn default() -> Self {
        TestDb::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                postgres_identifier(&self.name)
            ));
        }
    }
}

fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
        panic!("cannot connect to the test server (DATABASE_URL or the private cluster): {e}")
    })
}

/// A test database already at the latest migration of a set: a copy of a template database
/// migrated once per set (see the module docs). Dropped on drop, also when the test panics.
pub struct TestDatabase {
    db: TestDb,
}

impl TestDatabase {
    /// A fresh copy of the set's migrated template (created first if needed, safely when many
    /// test threads and processes start at once).
    ///
    /// # Panics
    /// When no server can be reached or started, or a migration fails.
    pub fn new(migrations: &Migrations) -> TestDatabase {
        let template = template_for(migrations);
        TestDatabase {
            db: TestDb::create(Some(&template)),
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        self.db.name()
    }

    /// A connection URL for the database.
    pub fn url(&self) -> &str {
        self.db.url()
    }

    /// A new synchronous connection to the database.
    pub fn connect(&self) -> postgres::Client {
        self.db.connect()
    }
}

/// The name prefix of template databases.
pub const TEMPLATE_PREFIX: &str = "preflight_tpl_";

/// Makes sure the migrated template of `migrations` exists, and returns its name.
fn template_for(migrations: &Migrations) -> String {
    let chain = migrations
        .last()
        .map_or(Checksum::ZERO, |m| m.chain())
        .to_string();
    let name = format!("{TEMPLATE_PREFIX}{}", &chain[..32]);
    let admin_url = server_url();
    let mut admin = connect(admin_url);
    let exists = |admin: &mut postgres::Client| {
        admin
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate",
                &[&name],
            )
            .map(|r| r.is_some())
            .unwrap_or_else(|e| panic!("cannot look for the template {name}: {e}"))
    };
    if exists(&mut admin) {
        return name;
    }
    // One creator per template, across threads and processes; the others wait for it, then
    // find the template. A session lock on the admin connection dies with a crashed creator.
    let key = i64::from_be_bytes(
        Checksum::of(&name).as_bytes()[..8]
            .try_into()
            .unwrap_or([0; 8]),
    );
    let mut delay = Duration::from_millis(5);
    loop {
        let got: bool = admin
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .and_then(|r| r.try_get(0))
            .unwrap_or_else(|e| panic!("cannot lock the template {name}: {e}"));
        if got {
            break;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
    if !exists(&mut admin) {
        build_template(&mut admin, admin_url, &name, migrations);
    }
    let _ = admin.query_one("SELECT pg_advisory_unlock($1)", &[&key]);
    name
}

/// Migrates a scratch database, then renames it into place, so that no one ever sees a
/// half-migrated template.
fn build_template(admin: &mut postgres::Client, admin_url: &str, name: &str, set: &Migrations) {
    let scratch = format!("{name}_building_{}", std::process::id());
    let quoted = postgres_identifier(&scratch);
    // Separate calls: a multi-statement query is a transaction, and CREATE DATABASE refuses one.
    for sql in [
        format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"),
        format!("CREATE DATABASE {quoted}"),
    ] {
        admin.batch_execute(&sql).unwrap_or_else(|e| {
            panic!(
                "cannot create the template {scratch}: {}",
                crate::error::with_causes(&e)
            )
        });
    }
    {
        let mut client = connect(&with_database(admin_url, &scratch));
        if let Err(e) = set.run(&mut client) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"));
            panic!("the migrations fail on a fresh database: {e}");
        }
    }
    let target = postgres_identifier(name);
    for sql in [
        format!("ALTER DATABASE {quoted} RENAME TO {target}"),
        format!("ALTER DATABASE {target} IS_TEMPLATE true"),
    ] {
        admin.batch_execute(&sql).unwrap_or_else(|e| {
            panic!(
                "cannot install the template {name}: {}",
                crate::error::with_causes(&e)
            )
        });
    }
}

/// Test databases older than this were left by a crashed run.
const LEFTOVER_AGE: Duration = Duration::from_secs(6 * 3600);

/// Drops test databases that a crashed run left behind (recognised by prefix and the creation
/// time in their name), once per process.
fn clean_up_leftovers(admin_url: &str) {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(mut admin) = postgres::Client::connect(admin_url, postgres::NoTls) else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let pattern = format!("{DATABASE_PREFIX}%");
        let Ok(rows) = admin.query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&pattern],
        ) else {
            return;
        };
        for row in rows {
            let name: String = row.get(0);
            let created = name[DATABASE_PREFIX.len()..]
                .split('_')
                .next()
                .and_then(|s| s.parse::<u64>().ok());
            if created.is_some_and(|c| now.saturating_sub(c) > LEFTOVER_AGE.as_secs()) {
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    postgres_identifier(&name)
                ));
            }
        }
    });
}

/// The URL of the test server's maintenance database: `DATABASE_URL`, or a private cluster
/// started for this process.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let cluster = PrivateCluster::start()
                .unwrap_or_else(|e| panic!("DATABASE_URL is not set and {e}"));
            let url = cluster.url();
            // Lives as long as the process; a watcher stops it when the process exits.
            cluster.stop_when_process_exits();
            std::mem::forget(cluster);
            url
        }
    })
}

/// `url` with its database replaced by `database` (URL or key=value connection strings).
pub fn with_database(url: &str, database: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let (head, query) = match url.find('?') {
            Some(q) => (&url[..q], &url[q..]),
            None => (url, ""),
        };
        let authority_start = scheme_end + 3;
        let path_start = head[authority_start..]
            .find('/')
            .map_or(head.len(), |i| authority_start + i);
        format!("{}/{}{}", &head[..path_start], database, query)
    } else {
        format!("{url} dbname={database}")
    }
}

/// A PostgreSQL cluster of the test's own: initdb into a temporary directory, its own port on
/// 127.0.0.1, stopped and deleted on drop. For tests that stop or kill a server, which must
/// never touch the shared one.
pub struct PrivateCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Set when running as root: PostgreSQL refuses to, so commands run as this OS user.
    run_as: Option<String>,
}

impl PrivateCluster {
    /// Creates and starts a cluster.
    pub fn start() -> Result<PrivateCluster, String> {
        let bin = pg_bin_dir()?;
        let run_as = if is_root() {
            Some("postgres".to_owned())
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "preflight-pg-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
        if let Some(user) = &run_as {
            chown_to(&dir, user)?;
        }
        let cluster = PrivateCluster {
            dir,
            bin,
            port: free_port()?,
            run_as,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server again after a stop.
    pub fn start_server(&self) -> Result<(), String> {
        let log = self.dir.join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        )
    }

    /// Stops the server abruptly (`pg_ctl stop -m immediate`): a crash, as far as the database
    /// knows; the next start replays the WAL.
    pub fn stop_immediate(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        )
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Starts a watcher that stops the server and deletes its directory once this process has
    /// exited (for a cluster shared by a whole test binary, which has no teardown hook).
    fn stop_when_process_exits(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {run_as}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            run_as = self
                .run_as
                .as_ref()
                .map_or(String::new(), |u| format!("runuser -u {u} -- ")),
            pg_ctl = pg_ctl.display(),
            data = self.data_dir(),
            dir = self.dir.display(),
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.stop_immediate();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where `initdb` and `pg_ctl` are: `PREFLIGHT_PG_BIN`, `pg_config --bindir`, or the newest
/// `/usr/lib/postgresql/*/bin`.
fn pg_bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("PREFLIGHT_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = candidates.pop() {
        return Ok(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    Err(
        "no PostgreSQL server binaries (initdb, pg_ctl) were found: install them with \
         `apt-get install -y postgresql` (or set PREFLIGHT_PG_BIN to their directory), or set \
         DATABASE_URL to a server the tests may create databases on"
            .to_owned(),
    )
}

/// `"name"`, with embedded quotes doubled.
fn postgres_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn chown_to(dir: &Path, user: &str) -> Result<(), String> {
    let status = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run chown: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cannot give {dir:?} to the OS user `{user}` (PostgreSQL refuses to run as root)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_in_urls() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("host=h user=u", "x"),
            "host=h user=u dbname=x"
        );
    }

    #[test]
    fn test_databases_are_created_isolated_and_dropped() {
        let a = TestDb::new();
        let b = TestDb::new();
        assert_ne!(a.name(), b.name());
        a.connect()
            .batch_execute("CREATE TABLE only_in_a (id int)")
            .unwrap();
        let seen: i64 = b
            .connect()
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(seen, 0);
        let name = a.name().to_owned();
        drop(a);
        let mut admin = connect(server_url());
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .unwrap()
            .get(0);
        assert_eq!(left, 0);
    }

    #[test]
    fn migrated_copies_come_from_one_template_per_set() {
        use crate::MigrationSpec;
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
                        let rows: i64 = db
                            .connect()
                            .query_one("SELECT count(*) FROM t", &[])
                            .unwrap()
                            .get(0);
                        assert_eq!(rows, 1);
                        db.connect()
                            .execute("INSERT INTO t VALUES (2)", &[])
                            .unwrap();
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
        let mut admin = connect(server_url());
        let templates: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&template_for(&set)],
            )
            .unwrap()
            .get(0);
        assert_eq!(templates, 1);
    }

    #[test]
    fn private_cluster_survives_an_immediate_stop() {
        let cluster = PrivateCluster::start().unwrap();
        let mut c = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
        c.batch_execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")
            .unwrap();
        cluster.stop_immediate().unwrap();
        assert!(c.batch_execute("SELECT 1").is_err());
        cluster.start_server().unwrap();
        let mut c = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM kept", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    }
}
