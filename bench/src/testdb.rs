//! Test databases (issues #9, #21): a suite of N tests over a set of M DDL-heavy migrations,
//! each test with its own database at the latest migration, on as many threads as `cargo test`
//! would use. Each test inserts a row into three tables and reads them back; getting the
//! database and giving it up (dropping, or handing it back) are part of the test's time.
//!
//! Variants:
//! - `sqlx::test`-style: what `#[sqlx::test]` does per test: `CREATE DATABASE`, connect,
//!   `Migrator::run` over the same directory, `DROP DATABASE` at the end;
//! - Preflight `TestDatabase::new`: a copy of the set's template (`CREATE DATABASE ...
//!   TEMPLATE`, PostgreSQL 15's default `STRATEGY WAL_LOG`), template already built, and cold
//!   (a set never seen: the first test builds it);
//! - the same copy with `STRATEGY FILE_COPY` (made here with the template Preflight built);
//! - copies made ahead: a background thread keeps one copy per test thread ready, each test
//!   takes one and drops it at the end (made here, with the template Preflight built);
//! - Preflight `TestDatabase::reused`: databases from the server-side pool, reset and given
//!   back at the end of each test (the pool starts empty: the suite's first tests copy).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use preflight_runtime::testing::{self, TestDatabase, IDLE_PREFIX, TEMPLATE_PREFIX};
use sqlx::Connection;

use crate::gen::{self, Generated, Shape};
use crate::scenarios::{quote, rotation};
use crate::stats::{fmt_ms, Samples};
use crate::tools::Prepared;

/// How big a suite.
pub struct Suite {
    pub tests: usize,
    pub migrations: u32,
}

/// What each test does in its database: writes to three tables, reads them back.
const BODY: &str = "INSERT INTO bench_t1 (id, a) VALUES (1, 1); \
                    INSERT INTO bench_t2 (id, a) VALUES (1, 2); \
                    INSERT INTO bench_t3 (id, a) VALUES (1, 3); \
                    SELECT (SELECT count(*) FROM bench_t1) + (SELECT count(*) FROM bench_t2) \
                    + (SELECT count(*) FROM bench_t3)";

fn body(client: &mut postgres::Client) {
    let rows = client
        .simple_query(BODY)
        .expect("the test body runs in its database");
    let total = rows.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(
        total.as_deref(),
        Some("3"),
        "a test database that was not fresh"
    );
}

/// One variant's results: the suites' wall time and each test's time.
#[derive(Default)]
struct Run {
    wall: Duration,
    per_test: Samples,
}

/// Runs `tests` tests on `threads` threads, each timed, and the whole.
///
/// The suite starts from a `CHECKPOINT` (not timed) and ends with one (timed): each variant
/// pays for the data it left for the server to write, instead of the next suite paying for it
/// (migrating 200 tables per test leaves far more than copying a template).
fn suite(
    admin: &mut postgres::Client,
    tests: usize,
    threads: usize,
    run: &mut Run,
    one: impl Fn(usize) + Sync,
) {
    admin
        .batch_execute("CHECKPOINT")
        .expect("CHECKPOINT (the bench needs a superuser)");
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let per_thread: Vec<Vec<Duration>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut times = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= tests {
                            return times;
                        }
                        let t = Instant::now();
                        one(i);
                        times.push(t.elapsed());
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a benchmark test panicked"))
            .collect()
    });
    admin.batch_execute("CHECKPOINT").expect("CHECKPOINT");
    run.wall += start.elapsed();
    for d in per_thread.into_iter().flatten() {
        run.per_test.push(d);
    }
}

fn sqlx_style_test(admin_url: &str, migrator: &sqlx::migrate::Migrator, i: usize) {
    let name = format!("bench_sqlx_test_{}_{i}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime per test, as #[sqlx::test] makes");
    rt.block_on(async {
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to the server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {}",
            quote(&name)
        )))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
        let url = testing::with_database(admin_url, &name);
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .expect("connect to the test database");
        migrator.run(&mut conn).await.expect("sqlx migrates");
        let _ = conn.close().await;
    });
    // The body through the same client as the other variants.
    let url = testing::with_database(admin_url, &name);
    body(&mut postgres::Client::connect(&url, postgres::NoTls).expect("connect"));
    rt.block_on(async {
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to the server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            quote(&name)
        )))
        .execute(&mut admin)
        .await
        .expect("DROP DATABASE");
    });
}

fn new_test(set: &preflight_runtime::Migrations) {
    let db = TestDatabase::new(set);
    body(&mut db.connect());
}

fn reused_test(set: &preflight_runtime::Migrations) {
    let db = TestDatabase::reused(set);
    body(&mut db.connect());
}

/// `CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY`, the body, `DROP DATABASE`.
fn file_copy_test(admin_url: &str, template: &str, i: usize) {
    let name = format!("bench_file_copy_{}_{i}", std::process::id());
    let mut admin = postgres::Client::connect(admin_url, postgres::NoTls).expect("connect");
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY",
            quote(&name),
            quote(template)
        ))
        .expect("CREATE DATABASE ... STRATEGY FILE_COPY");
    let url = testing::with_database(admin_url, &name);
    body(&mut postgres::Client::connect(&url, postgres::NoTls).expect("connect"));
    admin
        .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", quote(&name)))
        .expect("DROP DATABASE");
}

/// Copies of `template` made ahead by a background thread, `ahead` at most waiting; the
/// suite's tests take them, each drops its own. Returns the copies' names through `ready`.
struct Ahead {
    ready: std::sync::Mutex<mpsc::Receiver<String>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    maker: Option<std::thread::JoinHandle<()>>,
}

impl Ahead {
    fn start(admin_url: &'static str, template: String, ahead: usize) -> Ahead {
        let (tx, rx) = mpsc::sync_channel::<String>(ahead.saturating_sub(1));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let maker = std::thread::spawn(move || {
            let Ok(mut admin) = postgres::Client::connect(admin_url, postgres::NoTls) else {
                return;
            };
            let mut n = 0;
            while !stopped.load(Ordering::Relaxed) {
                n += 1;
                let name = format!("bench_ahead_{}_{n}", std::process::id());
                let made = admin.batch_execute(&format!(
                    "CREATE DATABASE {} TEMPLATE {}",
                    quote(&name),
                    quote(&template)
                ));
                if made.is_err() || tx.send(name.clone()).is_err() {
                    let _ =
                        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote(&name)));
                    return;
                }
            }
        });
        Ahead {
            ready: std::sync::Mutex::new(rx),
            stop,
            maker: Some(maker),
        }
    }

    fn test(&self, admin_url: &str) {
        let name = self
            .ready
            .lock()
            .expect("the queue of copies")
            .recv()
            .expect("a copy made ahead");
        let url = testing::with_database(admin_url, &name);
        body(&mut postgres::Client::connect(&url, postgres::NoTls).expect("connect"));
        let mut admin = postgres::Client::connect(admin_url, postgres::NoTls).expect("connect");
        admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", quote(&name)))
            .expect("DROP DATABASE");
    }

    /// Stops the maker and drops the copies nobody took (not timed).
    fn finish(mut self, admin: &mut postgres::Client) {
        self.stop.store(true, Ordering::Relaxed);
        let rx = self.ready.into_inner().expect("the queue of copies");
        // Taking what it made unblocks a maker waiting to hand a copy over; it then sees the
        // stop, ends, and drops its end of the channel, which ends this loop.
        let left: Vec<String> = rx.iter().collect();
        if let Some(maker) = self.maker.take() {
            let _ = maker.join();
        }
        for name in left {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote(&name)
            ));
        }
    }
}

/// The databases on the server whose name starts with `prefix`.
fn databases(admin: &mut postgres::Client, prefix: &str) -> Vec<String> {
    admin
        .query(
            "SELECT datname::text FROM pg_database WHERE left(datname, length($1)) = $1",
            &[&prefix],
        )
        .expect("list databases")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Drops what `TestDatabase::reused` left for `template` (not timed), so that the pool
/// starts empty.
fn empty_pool(admin: &mut postgres::Client, template: &str) {
    let chain = template.rsplit('_').next().unwrap_or("");
    let prefix = format!("{IDLE_PREFIX}{}", &chain[..chain.len().min(16)]);
    for name in databases(admin, &prefix) {
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote(&name)
        ));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    SqlxStyle,
    New,
    FileCopy,
    Ahead,
    Reused,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::SqlxStyle => "`sqlx::test`-style: CREATE DATABASE, `Migrator::run`, DROP",
            Variant::New => "Preflight `TestDatabase::new`: template copy (WAL_LOG), DROP",
            Variant::FileCopy => "template copy with `STRATEGY FILE_COPY`, DROP",
            Variant::Ahead => "template copies made ahead in the background, DROP",
            Variant::Reused => "Preflight `TestDatabase::reused`: pooled, reset and given back",
        }
    }
}

/// The Markdown section for BENCHMARKS.md.
pub fn run(work: &Path, suite_size: &Suite) -> String {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let admin_url = testing::server_url();
    let mut admin = postgres::Client::connect(admin_url, postgres::NoTls).expect("connect");
    let rt = crate::scenarios::runtime();
    let set = gen::write(work, Shape::DdlHeavy, suite_size.migrations.max(3));
    let prepared = Prepared::new(&rt, &set);
    let tests = suite_size.tests;
    let version: i32 = admin
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .map_or(0, |r| r.get(0));
    eprintln!(
        "test databases: {tests} tests over {} migrations",
        set.migrations.len()
    );

    // Cold: a set no run has seen (a unique comment in its first migration), so the first test
    // builds the template; the template is dropped afterwards.
    let before = databases(&mut admin, TEMPLATE_PREFIX);
    let mut unique: Vec<Generated> = set.migrations.clone();
    unique[0].sql = format!(
        "-- bench run {} {:?}\n{}",
        std::process::id(),
        Instant::now(),
        unique[0].sql
    );
    let cold_set = crate::preflight_impl::migrations(&unique);
    let mut cold = Run::default();
    suite(&mut admin, tests, threads, &mut cold, |_| {
        new_test(&cold_set)
    });
    for t in databases(&mut admin, TEMPLATE_PREFIX)
        .into_iter()
        .filter(|t| !before.contains(t))
    {
        let _ = admin.batch_execute(&format!("ALTER DATABASE {} IS_TEMPLATE false", quote(&t)));
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote(&t)
        ));
    }

    // The others alternate in halves, their order rotating.
    new_test(&prepared.preflight); // builds the warm template (not timed)
    let template = TestDatabase::template_name(&prepared.preflight);
    empty_pool(&mut admin, &template);
    let mut variants = vec![
        Variant::SqlxStyle,
        Variant::New,
        Variant::Ahead,
        Variant::Reused,
    ];
    if version >= 150_000 {
        variants.insert(2, Variant::FileCopy);
    }
    let mut runs: Vec<Run> = variants.iter().map(|_| Run::default()).collect();
    let halves = [tests / 2, tests - tests / 2];
    for (h, &n) in halves.iter().enumerate() {
        for v in rotation(&variants, h) {
            let i = variants.iter().position(|x| *x == v).unwrap_or(0);
            eprintln!("  {:?}, {n} tests", v);
            let run = &mut runs[i];
            match v {
                Variant::SqlxStyle => suite(&mut admin, n, threads, run, |i| {
                    sqlx_style_test(admin_url, &prepared.sqlx, i + h * tests)
                }),
                Variant::New => suite(&mut admin, n, threads, run, |_| {
                    new_test(&prepared.preflight)
                }),
                Variant::FileCopy => suite(&mut admin, n, threads, run, |i| {
                    file_copy_test(admin_url, &template, i + h * tests)
                }),
                Variant::Ahead => {
                    let ahead = Ahead::start(admin_url, template.clone(), threads);
                    suite(&mut admin, n, threads, run, |_| ahead.test(admin_url));
                    ahead.finish(&mut admin);
                }
                Variant::Reused => suite(&mut admin, n, threads, run, |_| {
                    reused_test(&prepared.preflight)
                }),
            }
        }
    }
    empty_pool(&mut admin, &template);

    let baseline = variants
        .iter()
        .position(|v| *v == Variant::SqlxStyle)
        .map(|i| &runs[i]);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
        _ => "—".to_owned(),
    };
    let mut text = format!(
        "### Test databases\n\n#### {tests} tests over {m} migrations (CREATE TABLE + CREATE \
         INDEX each), {threads} threads\n\n\
         One suite per variant, split in two halves; the halves of the variants alternate (the \
         cold suite runs first, alone). Each test gets its database, inserts a row into three \
         tables and reads them back, and gives the database up; all of it is the test's time. \
         Each half starts after a `CHECKPOINT` and its time includes the `CHECKPOINT` that ends \
         it (each variant pays for the writes it leaves behind). The copies made ahead and \
         the `FILE_COPY` copies are made by the bench from the template Preflight built; a copy \
         made ahead but not taken when a half ends is dropped untimed.\n\n\
         | variant | per test, median | p95 | min | max | suite wall time | sqlx-style ÷ this: median | p95 | wall |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        m = set.migrations.len()
    );
    let mut rows: Vec<(&str, &Run)> = variants
        .iter()
        .zip(runs.iter())
        .map(|(v, r)| (v.label(), r))
        .collect();
    rows.insert(
        2,
        (
            "Preflight `TestDatabase::new`, cold (the first test builds the template)",
            &cold,
        ),
    );
    for (label, r) in rows {
        let s = &r.per_test;
        let cell = |v: Option<f64>| v.map_or("—".to_owned(), fmt_ms);
        let b = baseline.map(|b| &b.per_test);
        text.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(s.median()),
            cell(s.p95()),
            cell(s.min()),
            cell(s.max()),
            fmt_ms(r.wall.as_secs_f64() * 1000.0),
            ratio(b.and_then(|b| b.median()), s.median()),
            ratio(b.and_then(|b| b.p95()), s.p95()),
            ratio(
                baseline.map(|b| b.wall.as_secs_f64()),
                Some(r.wall.as_secs_f64())
            ),
        ));
    }
    text.push('\n');
    text
}
