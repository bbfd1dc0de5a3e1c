//! Behind PgBouncer in transaction pooling mode (issue #7). The test starts its own PgBouncer
//! (Debian package `pgbouncer`; `apt-get install -y pgbouncer`) on its own port, in front of a
//! private cluster, with its configuration in a temporary directory; as the `postgres` OS user
//! when the tests run as root (PgBouncer refuses root). When PgBouncer is missing the test
//! fails with the install command: it never passes without having run.
//!
//! * the lease-table strategy: a storm of 16 processes through PgBouncer applies every
//!   migration exactly once, every process succeeds;
//! * the session advisory lock cannot work there (a session lock and the statements after it
//!   land on whatever server connection is free, and two clients can share one server session,
//!   whose lock is re-entrant): Preflight takes the lock only on the server session its run
//!   started on and only if that session does not hold it already, and fails loudly, naming the
//!   pooler, otherwise. Proved deterministically (a pool of one server connection whose session
//!   already holds the lock) and by a storm of 16 processes: whatever each process's outcome,
//!   every migration is applied exactly once, and every failure says why.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use preflight_runtime::testing::advisory_key;
use preflight_runtime::testing::{with_database, PrivateCluster};
use preflight_runtime::{LockStrategy, MigrationSpec, Migrations};

const PROCESSES: usize = 16;
const INSTALL: &str = "PgBouncer is needed for this test: install it with \
                       `apt-get install -y pgbouncer` (or set PREFLIGHT_PGBOUNCER to its path)";

fn pooled_set() -> Migrations {
    let mut specs = vec![MigrationSpec::new(
        1,
        "log",
        "CREATE TABLE applied_log (v int NOT NULL);",
    )];
    for n in 2..=6u64 {
        specs.push(MigrationSpec::new(
            n,
            &format!("t{n}"),
            &format!("CREATE TABLE t{n} (id int);\nINSERT INTO applied_log VALUES ({n});"),
        ));
    }
    // No-transaction: only the lock keeps two processes from running it twice.
    specs.push(MigrationSpec::new(7, "idx", "").no_transaction(&[
        "INSERT INTO applied_log VALUES (7)",
        "INSERT INTO applied_log VALUES (70)",
        "CREATE INDEX CONCURRENTLY t2_id ON t2 (id)",
    ]));
    Migrations::from_specs(specs).unwrap()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PgBouncer of the test's own, stopped on drop.
struct Bouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        // As root the child is `runuser`, which relays SIGTERM to pgbouncer (an immediate
        // shutdown there) but cannot relay SIGKILL: killing it would leave pgbouncer running.
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Bouncer {
    fn start(server_port: u16) -> Bouncer {
        let binary = std::env::var("PREFLIGHT_PGBOUNCER").unwrap_or_else(|_| {
            [
                "/usr/sbin/pgbouncer",
                "/usr/bin/pgbouncer",
                "/usr/local/bin/pgbouncer",
            ]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("{INSTALL}"))
            .to_owned()
        });
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 ; one server connection: every client shares the same server session\n\
                 solo = host=127.0.0.1 port={server_port} dbname=solo user=postgres pool_size=1\n\
                 * = host=127.0.0.1 port={server_port} user=postgres\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = any\n\
                 pool_mode = transaction\n\
                 default_pool_size = 3\n\
                 max_client_conn = 200\n\
                 ignore_startup_parameters = extra_float_digits,options\n\
                 logfile = {log}\n",
                log = dir.path().join("pgbouncer.log").display()
            ),
        )
        .unwrap();
        let mut command = if is_root() {
            for path in [dir.path(), ini.as_path()] {
                let ok = Command::new("chown")
                    .arg("postgres:")
                    .arg(path)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "cannot give {path:?} to the postgres OS user");
            }
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &binary]);
            c
        } else {
            Command::new(&binary)
        };
        let mut child = command
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}. {INSTALL}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let log =
                    std::fs::read_to_string(dir.path().join("pgbouncer.log")).unwrap_or_default();
                panic!("PgBouncer exited ({status}): {err}{log}");
            }
            assert!(
                Instant::now() < deadline,
                "PgBouncer did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Bouncer {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

fn create_db(cluster: &PrivateCluster, name: &str) {
    let mut admin = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
}

fn child_main(strategy: &str, url: &str) -> ! {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink); // the barrier
    let lock = match strategy {
        "lease" => LockStrategy::Lease {
            ttl: Duration::from_secs(30),
        },
        _ => LockStrategy::Advisory,
    };
    let set = pooled_set();
    let result = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| e.to_string())
        .and_then(|mut c| {
            set.runner()
                .lock(lock)
                .lock_timeout(Duration::from_secs(10))
                .run(&mut c)
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(r) => println!("PGB ok applied={}", r.applied.len()),
        Err(e) => println!("PGB err {}", e.replace('\n', " ")),
    }
    std::process::exit(0)
}

/// Outcomes of a storm through the pooler: (successes, errors).
fn storm(url: &str, strategy: &str) -> (usize, Vec<String>) {
    let mut children: Vec<Child> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "behind_pgbouncer",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("PREFLIGHT_PGB_CHILD", strategy)
                .env("PREFLIGHT_PGB_URL", url)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        drop(c.stdin.take());
    }
    let mut ok = 0;
    let mut errors = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.find("PGB ").map(|at| l[at..].to_owned()))
            .unwrap_or_else(|| panic!("no outcome: {stdout}"));
        if line.starts_with("PGB ok") {
            ok += 1;
        } else {
            errors.push(line);
        }
    }
    (ok, errors)
}

/// Every migration exactly once (read on the server directly, not through the pooler).
fn applications(cluster: &PrivateCluster, db: &str) -> Vec<(i32, i64)> {
    let mut c =
        postgres::Client::connect(&with_database(&cluster.url(), db), postgres::NoTls).unwrap();
    c.query(
        "SELECT v, count(*) FROM applied_log GROUP BY v ORDER BY v",
        &[],
    )
    .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    .unwrap_or_default()
}

fn once() -> Vec<(i32, i64)> {
    vec![(2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1), (70, 1)]
}

#[test]
fn behind_pgbouncer() {
    if let (Ok(strategy), Ok(url)) = (
        std::env::var("PREFLIGHT_PGB_CHILD"),
        std::env::var("PREFLIGHT_PGB_URL"),
    ) {
        child_main(&strategy, &url);
    }
    let cluster = PrivateCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let bouncer = Bouncer::start(cluster.port());

    // 1. The lease table: exactly once, everyone succeeds.
    for round in 0..3 {
        let db = format!("pgb_lease_{round}");
        create_db(&cluster, &db);
        let started = Instant::now();
        let (ok, errors) = storm(&bouncer.url(&db), "lease");
        assert!(errors.is_empty(), "lease through PgBouncer: {errors:#?}");
        assert_eq!(ok, PROCESSES);
        assert_eq!(applications(&cluster, &db), once(), "lease round {round}");
        println!(
            "PgBouncer (transaction pooling), lease table, round {round}: {PROCESSES} processes \
             all succeeded, every migration exactly once, {} ms",
            started.elapsed().as_millis()
        );
    }

    // 2. Deterministic: one server connection, whose session already holds the migration lock
    // (as another client's run through the same pooler would leave it). The session lock is
    // re-entrant: a bare `pg_try_advisory_lock` would succeed and two runs would migrate at
    // once. Preflight refuses, naming the pooler.
    create_db(&cluster, "solo");
    let mut other = postgres::Client::connect(&bouncer.url("solo"), postgres::NoTls).unwrap();
    let key = advisory_key("solo", "public", "preflight_history");
    other
        .simple_query(&format!("SELECT pg_advisory_lock({key})"))
        .unwrap();
    let reentrant = other
        .simple_query(&format!("SELECT pg_try_advisory_lock({key})::text"))
        .unwrap();
    let got = reentrant.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(
        got.as_deref(),
        Some("true"),
        "the hazard: the shared session's lock is re-entrant"
    );
    let mut client = postgres::Client::connect(&bouncer.url("solo"), postgres::NoTls).unwrap();
    let err = pooled_set()
        .runner()
        .lock_timeout(Duration::from_secs(5))
        .run(&mut client)
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("pooler"), "{text}");
    assert!(text.contains("LockStrategy::Lease"), "{text}");
    assert!(
        applications(&cluster, "solo").is_empty(),
        "nothing applied under a lock that was not ours"
    );
    println!("PgBouncer, advisory lock on a shared server session: refused: {text}");
    // The lease strategy works on that same single shared connection.
    other
        .simple_query("SELECT pg_advisory_unlock_all()")
        .unwrap();
    let report = pooled_set()
        .runner()
        .lock(LockStrategy::lease())
        .run(&mut client)
        .unwrap();
    assert_eq!(report.applied.len(), 7);
    assert_eq!(applications(&cluster, "solo"), once());

    // 3. A storm with the advisory lock: whatever happens to each process, never a double
    // application, and every failure is loud and says why.
    let mut outcomes = (0, 0);
    for round in 0..3 {
        let db = format!("pgb_advisory_{round}");
        create_db(&cluster, &db);
        let (ok, errors) = storm(&bouncer.url(&db), "advisory");
        for e in &errors {
            assert!(
                e.contains("pooler") || e.contains("could not take the migration lock"),
                "an unexplained failure behind PgBouncer: {e}"
            );
        }
        let applied = applications(&cluster, &db);
        // Everything that was applied, was applied once.
        assert!(
            applied.iter().all(|(_, n)| *n == 1),
            "advisory round {round}: double application behind PgBouncer: {applied:?}"
        );
        println!(
            "PgBouncer (transaction pooling), advisory lock, round {round}: {ok} succeeded, {} \
             refused loudly ({:?}), applications {applied:?}",
            errors.len(),
            errors.first()
        );
        outcomes.0 += ok;
        outcomes.1 += errors.len();
    }
    println!(
        "PgBouncer advisory storms: {} processes succeeded, {} refused loudly, no double \
         application",
        outcomes.0, outcomes.1
    );
}
