//! Boot storms (issue #7): 32 processes booting at once on an empty database apply every
//! migration exactly once, and every one of them succeeds — with the advisory lock and with the
//! lease table, including a lease holder SIGKILLed mid-migration (its lease expires and is taken
//! over). Timings are printed, never asserted.
//!
//! The processes are this test binary re-executed; they connect and migrate when the parent
//! closes their stdin, all at once (a barrier, not a sleep). The server is a private cluster of
//! the test's own (max_connections 200), so that a storm neither disturbs nor is disturbed by
//! the shared server. `PREFLIGHT_STORM_ROUNDS` (default 20) and `PREFLIGHT_STORM_LEASE_ROUNDS`
//! (default 5) set the rounds.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use preflight_runtime::testing::{with_database, PrivateCluster};
use preflight_runtime::{LockStrategy, MigrationSpec, Migrations};

const PROCESSES: usize = 32;
/// A gate in migration 3: the test holds it to stop a lease holder there.
const GATE: i64 = 4242;
const LEASE_TTL: Duration = Duration::from_secs(2);

fn storm_set() -> Migrations {
    let mut specs = vec![MigrationSpec::new(
        1,
        "log",
        "CREATE TABLE applied_log (v int NOT NULL, by_pid int NOT NULL DEFAULT pg_backend_pid());",
    )];
    for n in 2..=6u64 {
        let gate = if n == 3 {
            format!("SELECT pg_advisory_xact_lock({GATE});\n")
        } else {
            String::new()
        };
        // Not idempotent: a second application fails, and the log counts applications.
        specs.push(MigrationSpec::new(
            n,
            &format!("t{n}"),
            &format!(
                "{gate}CREATE TABLE t{n} (id int);\nINSERT INTO applied_log (v) VALUES ({n});"
            ),
        ));
    }
    // A no-transaction migration: exactly-once must hold for those too.
    specs.push(MigrationSpec::new(7, "idx", "").no_transaction(&[
        "INSERT INTO applied_log (v) VALUES (7)",
        "CREATE INDEX CONCURRENTLY t2_id ON t2 (id)",
    ]));
    Migrations::from_specs(specs).unwrap()
}

fn strategy(name: &str) -> LockStrategy {
    match name {
        "lease" => LockStrategy::Lease { ttl: LEASE_TTL },
        _ => LockStrategy::Advisory,
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// A storm process: waits for the barrier (stdin closed), boots, prints one `STORM` line.
fn child_main(role: &str, url: &str) -> ! {
    let set = storm_set();
    if role != "victim" {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    }
    let lock = strategy(if role == "victim" { "lease" } else { role });
    let result = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| e.to_string())
        .and_then(|mut c| {
            set.runner()
                .lock(lock)
                .application(format!("storm-{role}"))
                .lock_timeout(Duration::from_secs(60))
                .run(&mut c)
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(report) => {
            println!(
                "STORM done_ms={} applied={} fast={} wait_ms={}",
                unix_ms(),
                report.applied.len(),
                report.fast_path,
                report.lock_wait.as_millis()
            );
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("storm process failed: {e}");
            std::process::exit(1)
        }
    }
}

fn spawn(role: &str, url: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["boot_storms", "--exact", "--nocapture", "--test-threads=1"])
        .env("PREFLIGHT_STORM_CHILD", role)
        .env("PREFLIGHT_STORM_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

struct Round {
    /// From the barrier's release to the last process's success.
    elapsed_ms: u128,
    /// Processes that applied something, and ones that found the database current (fast path).
    appliers: usize,
    fast: usize,
}

/// Checks exactly-once in the database.
fn assert_exactly_once(url: &str, what: &str) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let rows: Vec<(i32, i64)> = c
        .query(
            "SELECT v, count(*) FROM applied_log GROUP BY v ORDER BY v",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        (2..=7).map(|v| (v, 1)).collect::<Vec<_>>(),
        "{what}: every migration applied exactly once"
    );
    let history: Vec<(String, String)> = c
        .query(
            "SELECT version, state FROM preflight_history WHERE \"set\" <> '' \
             ORDER BY version::int",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        history,
        (1..=7)
            .map(|v| (v.to_string(), "applied".to_owned()))
            .collect::<Vec<_>>(),
        "{what}: history"
    );
    let held: i64 = c
        .query_one(
            "SELECT count(*) FROM preflight_history WHERE \"set\" = ''",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(held, 0, "{what}: the lease is released");
}

/// Starts `PROCESSES` processes, releases them at once, waits for all.
fn storm(url: &str, role: &str, what: &str) -> Round {
    let mut children: Vec<Child> = (0..PROCESSES).map(|_| spawn(role, url)).collect();
    let released = unix_ms();
    for c in &mut children {
        drop(c.stdin.take()); // the barrier
    }
    let mut last = released;
    let (mut appliers, mut fast) = (0, 0);
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what}: process {i} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            stdout
        );
        // The harness's own `test ... ` text may precede it on the line.
        let line = stdout
            .lines()
            .find_map(|l| l.find("STORM ").map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("{what}: process {i} reported nothing: {stdout}"));
        let field = |name: &str| -> String {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_default()
                .to_owned()
        };
        last = last.max(field("done_ms").parse().unwrap_or(0));
        if field("applied") != "0" {
            appliers += 1;
        }
        if field("fast") == "true" {
            fast += 1;
        }
    }
    assert_exactly_once(url, what);
    Round {
        elapsed_ms: last - released,
        appliers,
        fast,
    }
}

fn fresh_db(cluster: &PrivateCluster, name: &str) -> String {
    let mut admin = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name}"
        ))
        .or_else(|_| {
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
            admin.batch_execute(&format!("CREATE DATABASE {name}"))
        })
        .unwrap();
    with_database(&cluster.url(), name)
}

fn summary(label: &str, rounds: &[Round]) {
    let mut times: Vec<u128> = rounds.iter().map(|r| r.elapsed_ms).collect();
    times.sort_unstable();
    let appliers: Vec<usize> = rounds.iter().map(|r| r.appliers).collect();
    println!(
        "boot storm ({label}): {} rounds x {PROCESSES} processes, all succeeded, every migration \
         exactly once; first start to last success: min {} ms, median {} ms, max {} ms; \
         processes that applied something per round: {appliers:?}; fast-path boots: {}",
        rounds.len(),
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        rounds.iter().map(|r| r.fast).sum::<usize>()
    );
}

fn rounds(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

#[test]
fn boot_storms() {
    if let (Ok(role), Ok(url)) = (
        std::env::var("PREFLIGHT_STORM_CHILD"),
        std::env::var("PREFLIGHT_STORM_URL"),
    ) {
        child_main(&role, &url);
    }
    let cluster = PrivateCluster::start().unwrap_or_else(|e| panic!("{e}"));

    // 1. Advisory lock (the default).
    let n = rounds("PREFLIGHT_STORM_ROUNDS", 20);
    let advisory: Vec<Round> = (0..n)
        .map(|i| {
            let url = fresh_db(&cluster, "storm");
            storm(&url, "advisory", &format!("advisory round {i}"))
        })
        .collect();
    summary("advisory lock", &advisory);

    // 2. Lease table.
    let n = rounds("PREFLIGHT_STORM_LEASE_ROUNDS", 5);
    let lease: Vec<Round> = (0..n)
        .map(|i| {
            let url = fresh_db(&cluster, "storm");
            storm(&url, "lease", &format!("lease round {i}"))
        })
        .collect();
    summary("lease table", &lease);

    // 3. A lease holder SIGKILLed inside migration 3: its lease outlives it until it expires;
    // then one of the storm takes it over, and everything is still applied exactly once.
    let url = fresh_db(&cluster, "storm");
    let mut gate = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    gate.query_one("SELECT pg_advisory_lock($1)::text", &[&GATE])
        .unwrap();
    let mut victim = spawn("victim", &url);
    let mut watcher = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let victim_pid: i32 = loop {
        let row = watcher
            .query_opt(
                "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND NOT l.granted \
                 AND l.classid = 0 AND l.objid = $1::bigint::oid",
                &[&GATE],
            )
            .unwrap();
        if let Some(r) = row {
            break r.get(0);
        }
        assert!(
            victim.try_wait().unwrap().is_none(),
            "the lease holder exited early"
        );
        assert!(
            Instant::now() < deadline,
            "the lease holder never reached migration 3"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    gate.query_one("SELECT pg_advisory_unlock($1)", &[&GATE])
        .unwrap();
    while watcher
        .query_opt(
            "SELECT 1 FROM pg_stat_activity WHERE pid = $1",
            &[&victim_pid],
        )
        .unwrap()
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the killed holder's backend stays"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let owner: String = watcher
        .query_one(
            "SELECT applied_by FROM preflight_history WHERE \"set\" = '' AND version = 'lease'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(owner.starts_with("storm-victim"), "{owner}");
    let applied_before: i64 = watcher
        .query_one(
            "SELECT count(*) FROM preflight_history WHERE \"set\" <> ''",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(applied_before < 7, "the victim was stopped mid-run");
    let takeover = storm(&url, "lease", "lease takeover");
    assert!(takeover.appliers == 1, "one process took the lease over");
    println!(
        "boot storm (lease holder SIGKILLed in migration 3 with {applied_before} migrations \
         applied; lease ttl {} s): {PROCESSES} processes all succeeded, exactly once; first start \
         to last success {} ms (includes waiting for the dead holder's lease to expire)",
        LEASE_TTL.as_secs(),
        takeover.elapsed_ms
    );
}

/// Without any lock (`LockStrategy::None`, or a lock that failed to exclude: a lease that expired
/// while its holder was paused), two runs can plan the same no-transaction migration. Its history
/// row is the claim: the second run's start finds it and stops loudly before running anything,
/// so no statement runs twice.
#[test]
fn no_transaction_migration_is_claimed_once_even_without_a_lock() {
    let db = preflight_runtime::testing::TestDatabase::empty();
    db.connect()
        .batch_execute("CREATE TABLE applied_log (v int NOT NULL)")
        .unwrap();
    let set = Migrations::from_specs(vec![MigrationSpec::new(1, "nt", "").no_transaction(&[
        "INSERT INTO applied_log VALUES (1)",
        "SELECT pg_sleep(0.05)",
        "INSERT INTO applied_log VALUES (2)",
    ])])
    .unwrap();
    let mut double = 0;
    let mut outcomes = Vec::new();
    for round in 0..10 {
        db.connect()
            .batch_execute("TRUNCATE applied_log; DROP TABLE IF EXISTS preflight_history")
            .unwrap();
        let barrier = std::sync::Barrier::new(8);
        let results: Vec<Result<usize, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let mut c = db.connect();
                        barrier.wait();
                        set.runner()
                            .lock(LockStrategy::None)
                            .run(&mut c)
                            .map(|r| r.applied.len())
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let counts: Vec<(i32, i64)> = db
            .connect()
            .query(
                "SELECT v, count(*) FROM applied_log GROUP BY v ORDER BY v",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if counts.iter().any(|(_, n)| *n > 1) {
            double += 1;
        }
        for r in &results {
            if let Err(e) = r {
                assert!(
                    e.contains("already has a history row") || e.contains("unfinished"),
                    "round {round}: an unexplained failure: {e}"
                );
            }
        }
        assert_eq!(
            results.iter().filter(|r| matches!(r, Ok(1))).count(),
            1,
            "round {round}: exactly one run applies it: {results:?}"
        );
        outcomes.push(results.iter().filter(|r| r.is_err()).count());
    }
    assert_eq!(double, 0, "a no-transaction migration ran twice");
    println!(
        "no lock, 8 racing runs x 10 rounds: the no-transaction migration ran once every round; \
         runs stopped loudly per round: {outcomes:?}"
    );
}
