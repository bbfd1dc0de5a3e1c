//! The cost of `drift` (issue #20) on a database with N applied migrations: the runner builds
//! the applied migrations in a scratch database on the same server, reads both catalogs and
//! compares them, then drops the scratch database. The floor is the part no drift check can
//! avoid: create a database, apply the same migrations there with Preflight, drop it. Neither
//! refinery nor sqlx checks drift.
//!
//! SQLite: the scratch database is in memory; the floor applies the set to an in-memory
//! database.

use std::time::{Duration, Instant};

use preflight_runtime::testing::TestDatabase;
use preflight_runtime::{Migrations, Scratch};
use tokio::runtime::Runtime;

use crate::gen::{self, Shape};
use crate::preflight_impl;
use crate::report::{rounds, Measure, Table};
use crate::scenarios::Plan;

/// One measurement, or why it failed.
fn timed(what: impl FnOnce() -> Result<(), String>) -> Result<Duration, String> {
    let start = Instant::now();
    what()?;
    Ok(start.elapsed())
}

fn record(m: &mut Measure, result: Result<Duration, String>) {
    match result {
        Ok(d) => m.samples.push(d),
        Err(e) => m.note(format!("error: {e}")),
    }
}

/// The tables: PostgreSQL (sync and async drivers) and SQLite, `count` DDL-heavy migrations
/// (a table with a primary key and an index each).
pub fn drift(rt: &Runtime, plan: &Plan, count: u32) -> Vec<Table> {
    eprintln!("drift, {count} applied");
    let set = preflight_impl::migrations(&gen::migrations(Shape::DdlHeavy, count));
    vec![postgres(rt, plan, &set, count), sqlite(plan, &set, count)]
}

fn postgres(rt: &Runtime, plan: &Plan, set: &Migrations, count: u32) -> Table {
    let mut t = Table::new(format!(
        "Drift, {count} applied migrations (a table and an index each), PostgreSQL"
    ));
    t.say(format!(
        "`Runner::drift`: create a scratch database, apply the migrations there, read both \
         catalogs, compare, drop the scratch database; the database compared is untouched (no \
         difference). The floor is what no drift check can avoid: create a database, apply the \
         same migrations with Preflight, drop it. Neither refinery nor sqlx checks drift. {}, \
         alternating.",
        rounds(plan.rounds)
    ));
    let live = TestDatabase::empty();
    let mut client = live.connect();
    if let Err(e) = set.run(&mut client) {
        t.say(format!("error: setup failed: {e}"));
        return t;
    }
    let scratch = || {
        Scratch::postgres(
            live.url().parse().expect("a test URL"),
            tokio_postgres::NoTls,
        )
    };
    let (mut floor, mut sync, mut asynchronous) =
        (Measure::default(), Measure::default(), Measure::default());
    for round in 0..plan.rounds {
        // Alternating, the order rotating each round.
        for turn in 0..3 {
            match (round + turn) % 3 {
                0 => record(
                    &mut floor,
                    timed(|| {
                        let db = TestDatabase::empty();
                        set.run(&mut db.connect()).map_err(|e| e.to_string())?;
                        drop(db);
                        Ok(())
                    }),
                ),
                1 => record(
                    &mut sync,
                    timed(|| {
                        let drift = set
                            .runner()
                            .scratch(scratch())
                            .drift(&mut client)
                            .map_err(|e| e.to_string())?;
                        clean(drift.is_clean())
                    }),
                ),
                _ => record(
                    &mut asynchronous,
                    timed(|| {
                        rt.block_on(async {
                            let mut client = live.connect_async().await;
                            let drift = set
                                .runner()
                                .scratch(scratch())
                                .drift_async(&mut client)
                                .await
                                .map_err(|e| e.to_string())?;
                            clean(drift.is_clean())
                        })
                    }),
                ),
            }
        }
    }
    t.push("create + apply + drop a database", true, floor);
    t.push("Preflight `drift` (postgres)", false, sync);
    t.push(
        "Preflight `drift_async` (tokio-postgres)",
        false,
        asynchronous,
    );
    t
}

fn sqlite(plan: &Plan, set: &Migrations, count: u32) -> Table {
    let mut t = Table::new(format!(
        "Drift, {count} applied migrations (a table and an index each), SQLite file"
    ));
    t.say(format!(
        "`Runner::drift` on a `rusqlite` connection: the scratch database is in memory. The \
         floor applies the same migrations to an in-memory database. {}, alternating.",
        rounds(plan.rounds)
    ));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut conn =
        rusqlite::Connection::open(dir.path().join("live.db")).expect("open the SQLite file");
    // SQLite's spelling of the generated DDL (no `timestamptz`, no `now()`).
    let sqlite_set = Migrations::from_specs(
        set.iter()
            .map(|m| {
                preflight_runtime::MigrationSpec::new(
                    m.version(),
                    m.name(),
                    &m.up().script().unwrap_or_default().replace(
                        "timestamptz NOT NULL DEFAULT now()",
                        "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP",
                    ),
                )
            })
            .collect(),
    )
    .expect("the same versions");
    if let Err(e) = sqlite_set.run(&mut conn) {
        t.say(format!("error: setup failed: {e}"));
        return t;
    }
    let (mut floor, mut drift) = (Measure::default(), Measure::default());
    for round in 0..plan.rounds {
        for turn in 0..2 {
            if (round + turn) % 2 == 0 {
                record(
                    &mut floor,
                    timed(|| {
                        let mut memory =
                            rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?;
                        sqlite_set
                            .run(&mut memory)
                            .map_err(|e| e.to_string())
                            .map(drop)
                    }),
                );
            } else {
                record(
                    &mut drift,
                    timed(|| {
                        let d = sqlite_set.drift(&mut conn).map_err(|e| e.to_string())?;
                        clean(d.is_clean())
                    }),
                );
            }
        }
    }
    t.push("apply to an in-memory database", true, floor);
    t.push("Preflight `drift` (rusqlite)", false, drift);
    t
}

/// An untouched database must compare clean: a difference here is a bug, not a timing.
fn clean(is_clean: bool) -> Result<(), String> {
    if is_clean {
        Ok(())
    } else {
        Err("drift reported differences on an untouched database".into())
    }
}
