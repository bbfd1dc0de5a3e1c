//! Test databases (issue #9): a suite of N tests over a set of M migrations, each test with its
//! own database at the latest migration, run on as many threads as `cargo test` would use.
//!
//! - **Preflight**: `preflight_runtime::testing::TestDatabase::new` per test (a copy of the set's
//!   template), timed once with the template already built (every later run of a suite) and
//!   once cold (a set never seen before: the first test builds the template);
//! - **`sqlx::test`-style**: what `#[sqlx::test]` does per test: `CREATE DATABASE`, connect,
//!   `Migrator::run` over the same directory, and `DROP DATABASE` at the end.
//!
//! Each test connects and runs `SELECT 1`; dropping the database is part of the test's time.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use preflight_runtime::testing::{self, TestDatabase, TEMPLATE_PREFIX};
use sqlx::Connection;

use crate::gen::{self, Generated, Shape};
use crate::stats::{fmt_ms, Samples};
use crate::tools::Prepared;

/// How big a suite.
pub struct Suite {
    pub tests: usize,
    pub migrations: u32,
}

/// One approach's results: the suite's wall time and each test's time.
struct Run {
    wall: Duration,
    per_test: Vec<Duration>,
}

impl Run {
    fn samples(&self) -> Samples {
        let mut s = Samples::default();
        for d in &self.per_test {
            s.push(*d);
        }
        s
    }
}

/// Runs `tests` tests on `threads` threads, each timed, and the whole.
///
/// The suite starts from a `CHECKPOINT` (not timed) and ends with one (timed): each approach
/// pays for the data it left for the server to write, instead of the next suite paying for it
/// (migrating 200 tables per test leaves far more than copying a template).
fn suite(
    admin: &mut postgres::Client,
    tests: usize,
    threads: usize,
    one: impl Fn(usize) + Sync,
) -> Run {
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
    Run {
        wall: start.elapsed(),
        per_test: per_thread.into_iter().flatten().collect(),
    }
}

fn preflight_test(set: &preflight_runtime::Migrations) {
    let db = TestDatabase::new(set);
    let mut client = db.connect();
    client
        .batch_execute("SELECT 1")
        .expect("SELECT 1 in the test database");
}

fn sqlx_style_test(admin_url: &str, migrator: &sqlx::migrate::Migrator, i: usize) {
    let name = format!("bench_sqlx_test_{}_{i}", std::process::id());
    let quoted = format!("\"{name}\"");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime per test, as #[sqlx::test] makes");
    rt.block_on(async {
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to the server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let url = testing::with_database(admin_url, &name);
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .expect("connect to the test database");
        migrator.run(&mut conn).await.expect("sqlx migrates");
        sqlx::raw_sql("SELECT 1")
            .execute(&mut conn)
            .await
            .expect("SELECT 1");
        let _ = conn.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {quoted} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .expect("DROP DATABASE");
    });
}

/// The templates on the server now.
fn templates(admin: &mut postgres::Client) -> Vec<String> {
    admin
        .query(
            "SELECT datname::text FROM pg_database WHERE left(datname, length($1)) = $1",
            &[&TEMPLATE_PREFIX],
        )
        .expect("list templates")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The Markdown section for BENCHMARKS.md.
pub fn run(work: &Path, suite_size: &Suite) -> String {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let admin_url = testing::server_url();
    let mut admin = postgres::Client::connect(admin_url, postgres::NoTls).expect("connect");
    let rt = crate::scenarios::runtime();
    let set = gen::write(work, Shape::DdlHeavy, suite_size.migrations);
    let prepared = Prepared::new(&rt, &set);
    let tests = suite_size.tests;

    // Cold: a set no run has seen (a unique comment in its first migration), so the first test
    // builds the template; the template is dropped afterwards.
    let before = templates(&mut admin);
    let mut unique: Vec<Generated> = set.migrations.clone();
    unique[0].sql = format!(
        "-- bench run {} {:?}\n{}",
        std::process::id(),
        Instant::now(),
        unique[0].sql
    );
    let cold_set = crate::preflight_impl::migrations(&unique);
    let cold = suite(&mut admin, tests, threads, |_| preflight_test(&cold_set));
    for t in templates(&mut admin)
        .into_iter()
        .filter(|t| !before.contains(t))
    {
        let _ = admin.batch_execute(&format!("ALTER DATABASE \"{t}\" IS_TEMPLATE false"));
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{t}\" WITH (FORCE)"));
    }

    // Warm and sqlx-style, alternating halves.
    preflight_test(&prepared.preflight); // builds the warm template (not timed)
    let half = tests / 2;
    let mut warm = Vec::new();
    let mut sqlx = Vec::new();
    for _ in 0..2 {
        sqlx.push(suite(&mut admin, half, threads, |i| {
            sqlx_style_test(admin_url, &prepared.sqlx, i)
        }));
        warm.push(suite(&mut admin, half, threads, |_| {
            preflight_test(&prepared.preflight)
        }));
    }
    let merge = |runs: Vec<Run>| {
        let mut merged = Run {
            wall: Duration::ZERO,
            per_test: Vec::new(),
        };
        for r in runs {
            merged.wall += r.wall;
            merged.per_test.extend(r.per_test);
        }
        merged
    };
    let (warm, sqlx) = (merge(warm), merge(sqlx));
    let ratio = |a: &Run, b: &Run| b.wall.as_secs_f64() / a.wall.as_secs_f64().max(1e-9);

    let mut text = format!(
        "### Test databases: {tests} tests over {m} migrations (CREATE TABLE + CREATE INDEX \
         each), {threads} threads\n\n\
         Command: `cargo run --release -p preflight-bench -- --scenario testdb` \
         (one suite per approach; the warm and sqlx-style suites alternate in halves; each suite \
         starts after a `CHECKPOINT` and its time includes the `CHECKPOINT` that ends it)\n\n\
         | approach | suite wall time | per test, median (min–max) | sqlx-style ÷ this |\n\
         |---|---|---|---|\n",
        m = suite_size.migrations
    );
    for (label, r) in [
        (
            "Preflight `TestDatabase::new`, template already built",
            &warm,
        ),
        (
            "Preflight `TestDatabase::new`, cold (first test builds the template)",
            &cold,
        ),
        (
            "`sqlx::test`-style: CREATE DATABASE, `Migrator::run`, DROP",
            &sqlx,
        ),
    ] {
        text.push_str(&format!(
            "| {label} | {} | {} | {:.1}× |\n",
            fmt_ms(r.wall.as_secs_f64() * 1000.0),
            r.samples().cell(),
            ratio(r, &sqlx)
        ));
    }
    text
}
