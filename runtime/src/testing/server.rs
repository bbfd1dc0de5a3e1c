//! The test server: `DATABASE_URL`, or a private throwaway cluster started for the process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The URL of the test server: `DATABASE_URL`, or a private cluster started for this process.
///
/// With `DATABASE_URL` set (and not empty), that server is used; the database it names is only
/// where the helpers connect to create and drop their own databases, so `postgres` works. When
/// it is unset, the first call starts a private throwaway cluster (`initdb` into a temporary
/// directory, its own port on 127.0.0.1, `fsync=off`) that every test of the process shares and
/// that is stopped and deleted once the process exits. This is what Preflight's own tests use.
///
/// ```no_run
/// let url = preflight_runtime::testing::server_url();
/// let mut admin = postgres::Client::connect(url, postgres::NoTls)?;
/// admin.batch_execute("SELECT 1")?;
/// # Ok::<(), postgres::Error>(())
/// ```
///
/// # Panics
/// When `DATABASE_URL` is unset and no cluster can be started (no PostgreSQL server binaries:
/// the message says how to install them).
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
