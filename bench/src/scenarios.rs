//! The PostgreSQL scenarios timed in this process: no-op boot, apply, deploy. Every run
//! alternates the contenders (rotating their order each round) and works in fresh databases,
//! dropped after. A `Route` maps a database's URL to the one the timed run connects to (the
//! same URL, or the latency scenario's delaying proxy); setup and checks always go direct.

use std::collections::HashMap;
use std::path::Path;

use preflight_runtime::testing::{self, TestDatabase};
use tokio::runtime::Runtime;

use crate::gen::{self, Shape};
use crate::report::{rounds as rounds_text, Measure, Table};
use crate::tools::{boot, Outcome, Prepared, Tool, APPLY, NOOP};

/// How much to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Rounds of the apply, deploy, storm and memory scenarios.
    pub rounds: usize,
    /// Set sizes of the no-op boot and apply curves.
    pub sizes: Vec<u32>,
    /// Migrations of the DDL-heavy apply; 0 skips it.
    pub ddl_count: u32,
    /// The deploy: `deploy_new` migrations on top of `deploy_base` applied.
    pub deploy_base: u32,
    pub deploy_new: u32,
    pub storm_processes: usize,
    pub storm_count: u32,
    /// Added round-trip time of the latency scenario.
    pub latency: std::time::Duration,
    /// Migrations of the SQLite apply.
    pub sqlite_apply: u32,
}

/// No-op boots last a few milliseconds, the order of the shared machine's noise: they take
/// this many times the plan's rounds (the same for the SQLite no-op rows).
pub const NOOP_ROUNDS_FACTOR: usize = 5;

/// Sets larger than this take fewer rounds in the apply scenario (each round of 10,000
/// migrations takes the ten contenders about half a minute).
pub const BIG_SET: u32 = 5000;

/// Rounds for the apply at `n` migrations (and the DDL-heavy apply).
pub fn apply_rounds(plan: &Plan, n: u32, shape: Shape) -> usize {
    if n > BIG_SET || shape == Shape::DdlHeavy {
        plan.rounds.min(3)
    } else {
        plan.rounds
    }
}

/// Maps a database URL to the URL a timed run connects to.
pub type Route<'a> = &'a dyn Fn(&str) -> String;

/// No detour.
pub fn direct(url: &str) -> String {
    url.to_owned()
}

/// `tools` rotated by `round`: ABC, BCA, CAB, ...
pub fn rotation<T: Clone>(tools: &[T], round: usize) -> Vec<T> {
    let mut v = tools.to_vec();
    if !v.is_empty() {
        let k = round % v.len();
        v.rotate_left(k);
    }
    v
}

/// Samples per contender.
#[derive(Default)]
pub struct Collected {
    by_tool: HashMap<Tool, Measure>,
}

impl Collected {
    pub fn record(&mut self, tool: Tool, result: Result<Outcome, String>, expect_fast: bool) {
        let m = self.by_tool.entry(tool).or_default();
        match result {
            Ok(o) => {
                m.samples.push(o.elapsed);
                if o.fast_path.is_some_and(|fast| fast != expect_fast) {
                    m.note(if expect_fast {
                        "did not take the fast path"
                    } else {
                        "took the fast path (unexpected)"
                    });
                }
            }
            Err(e) => m.note(format!("error: {}", shorten(&e))),
        }
    }

    /// The table of `tools`, in that order.
    pub fn table(mut self, heading: String, tools: &[Tool]) -> Table {
        let mut t = Table::new(heading);
        for &tool in tools {
            let m = self.by_tool.remove(&tool).unwrap_or_default();
            t.push(tool.label(), tool.is_floor(), m);
        }
        t
    }
}

/// A database copied from a template (`CREATE DATABASE ... TEMPLATE`), dropped on drop.
pub struct DbCopy {
    name: String,
    url: String,
}

impl DbCopy {
    pub fn of(template: &TestDatabase, tag: &str) -> Result<DbCopy, String> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "bench_copy_{}_{tag}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut admin = admin()?;
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote(&name),
                quote(template.name())
            ))
            .map_err(|e| format!("copying {}: {e}", template.name()))?;
        Ok(DbCopy {
            url: testing::with_database(testing::server_url(), &name),
            name,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for DbCopy {
    fn drop(&mut self) {
        if let Ok(mut admin) = admin() {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote(&self.name)
            ));
        }
    }
}

fn admin() -> Result<postgres::Client, String> {
    postgres::Client::connect(testing::server_url(), postgres::NoTls)
        .map_err(|e| format!("connect to the server: {e}"))
}

/// A database name the bench made (letters, digits, `_`), quoted.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// No-op boot at `n` applied: each tool on its own database, already migrated by it.
pub fn noop(rt: &Runtime, work: &Path, plan: &Plan, n: u32, route: Route<'_>, tag: &str) -> Table {
    eprintln!("no-op boot, {n} applied{tag}");
    let set = gen::write(work, Shape::Light, n);
    let prepared = Prepared::new(rt, &set);
    let dbs: HashMap<Tool, TestDatabase> = [Tool::Preflight, Tool::Refinery, Tool::Sqlx]
        .into_iter()
        .map(|t| (t, TestDatabase::empty()))
        .collect();
    let mut c = Collected::default();
    // Bring every database up to date (not timed), then one untimed warm-up round (the first
    // connection to a new database fills its caches).
    for (&tool, db) in &dbs {
        if let Err(e) = boot(rt, tool, db.url(), &prepared) {
            c.record(tool, Err(format!("setup: {e}")), true);
        }
    }
    for &tool in &NOOP {
        let _ = boot(rt, tool, &route(dbs[&tool.setup()].url()), &prepared);
    }
    let rounds = plan.rounds * NOOP_ROUNDS_FACTOR;
    for round in 0..rounds {
        for tool in rotation(&NOOP, round) {
            let r = boot(rt, tool, &route(dbs[&tool.setup()].url()), &prepared);
            c.record(tool, r, true);
        }
    }
    let mut t = c.table(format!("No-op boot, {n} applied{tag}"), &NOOP);
    t.say(format!(
        "{}. Each tool boots on a database it migrated itself (the floors on \
         Preflight's); one untimed warm-up round first. Preflight must take its one-query fast \
         path (a note says otherwise).",
        rounds_text(rounds)
    ));
    for who in [Tool::Preflight, Tool::PreflightBlocking] {
        let floor = if who == Tool::Preflight {
            Tool::ConnectSelect1
        } else {
            Tool::ConnectSelect1Blocking
        };
        let over = t
            .entry(who.label())
            .and_then(|e| e.measure.median())
            .zip(t.entry(floor.label()).and_then(|e| e.measure.median()))
            .map(|(a, b)| a - b);
        if let Some(d) = over {
            let note = format!(
                "{}{} over its own driver's floor",
                if d < 0.0 { "−" } else { "+" },
                crate::stats::fmt_ms(d.abs())
            );
            if let Some(e) = t.entries.iter_mut().find(|e| e.who == who.label()) {
                e.measure.note(note);
            }
        }
    }
    t
}

/// Apply `n` migrations of `shape` to an empty database.
pub fn apply(
    rt: &Runtime,
    work: &Path,
    plan: &Plan,
    shape: Shape,
    n: u32,
    route: Route<'_>,
    tag: &str,
) -> Table {
    eprintln!("apply {n} {} migrations{tag}", shape.label());
    let set = gen::write(work, shape, n);
    let prepared = Prepared::new(rt, &set);
    let rounds = apply_rounds(plan, n, shape);
    let mut c = Collected::default();
    for round in 0..rounds {
        for tool in rotation(&APPLY, round) {
            let db = TestDatabase::empty();
            let r = boot(rt, tool, &route(db.url()), &prepared)
                .and_then(|o| check_applied(db.url(), shape, n).map(|()| o));
            c.record(tool, r, false);
        }
    }
    let what = match shape {
        Shape::Light => "one cheap statement each",
        Shape::DdlHeavy => "CREATE TABLE + CREATE INDEX each",
    };
    let mut t = c.table(
        format!("Apply {n} migrations to an empty database, {what}{tag}"),
        &APPLY,
    );
    t.say(format!(
        "{}, a fresh database per run; every run's final schema is checked (a \
         skipped migration cannot pass for a fast one).",
        rounds_text(rounds)
    ));
    t
}

/// The deploy users do: `new` migrations on top of `base` applied, the first boot of the new
/// binary (everything before the first migration included: the missed fast path, the lock, the
/// history read, the plan).
pub fn deploy(rt: &Runtime, work: &Path, plan: &Plan, route: Route<'_>, tag: &str) -> Table {
    let (base, new) = (plan.deploy_base, plan.deploy_new);
    eprintln!("deploy: {new} new on top of {base} applied{tag}");
    let before = gen::write(work, Shape::Light, base);
    let after = gen::write(work, Shape::Light, base + new);
    let setup = Prepared::new(rt, &before);
    let prepared = Prepared::deploy(rt, &after, new as usize);
    let mut c = Collected::default();
    // One database per bookkeeping, at `base` applied: each run gets a copy of it.
    let mut templates: HashMap<Tool, TestDatabase> = HashMap::new();
    for tool in APPLY {
        let s = tool.setup();
        if templates.contains_key(&s) {
            continue;
        }
        let db = TestDatabase::empty();
        if let Err(e) = boot(rt, s, db.url(), &setup) {
            c.record(tool, Err(format!("setup: {e}")), false);
        }
        templates.insert(s, db);
    }
    for round in 0..plan.rounds {
        for tool in rotation(&APPLY, round) {
            let r = DbCopy::of(&templates[&tool.setup()], "deploy").and_then(|copy| {
                boot(rt, tool, &route(copy.url()), &prepared)
                    .and_then(|o| check_applied(copy.url(), Shape::Light, base + new).map(|()| o))
            });
            c.record(tool, r, false);
        }
    }
    let mut t = c.table(
        format!("Deploy: {new} new migrations on top of {base} applied, first boot after it{tag}"),
        &APPLY,
    );
    t.say(format!(
        "{}. Each run gets a fresh copy (`CREATE DATABASE ... TEMPLATE`) of a database \
         where the tool itself applied the first {base} (the floors: `batch_execute` for \
         `psql` and `batch_execute`, the probe for the probes), then the new binary boots: \
         connect, everything the tool does before the first migration, the {new} migrations. \
         The floors apply only the {new} new files. Final schema checked.",
        rounds_text(plan.rounds)
    ));
    t
}

/// Checks that a run left the expected schema, so that a silently skipped migration cannot
/// pass for a fast one.
pub fn check_applied(url: &str, shape: Shape, n: u32) -> Result<(), String> {
    let mut client =
        postgres::Client::connect(url, postgres::NoTls).map_err(|e| format!("check: {e}"))?;
    let (sql, expected) = match shape {
        Shape::Light => ("SELECT count(*) FROM bench_light", i64::from(n) - 1),
        Shape::DdlHeavy => (
            "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'bench_t%_a_idx'",
            i64::from(n),
        ),
    };
    let got: i64 = client
        .query_one(sql, &[])
        .map_err(|e| format!("checking the result: {e}"))?
        .get(0);
    if got == expected {
        Ok(())
    } else {
        Err(format!("wrong final state: {got} instead of {expected}"))
    }
}

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

pub fn shorten(s: &str) -> String {
    let s = s.replace('|', "/").replace('\n', " ");
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}
