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
use crate::report::{over_floor, Measure, Row};
use crate::scenarios::Plan;

const NO_DRIFT_CHECK: &str = "no drift check";

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

/// The rows: PostgreSQL (sync and async drivers) and SQLite, `count` DDL-heavy migrations
/// (a table with a primary key and an index each).
pub fn drift(rt: &Runtime, plan: &Plan, count: u32) -> Vec<Row> {
    eprintln!("drift, {count} applied");
    let set = preflight_impl::migrations(&gen::migrations(Shape::DdlHeavy, count));
    let mut rows = postgres(rt, plan, &set, count);
    rows.push(sqlite(plan, &set, count));
    rows
}

fn postgres(rt: &Runtime, plan: &Plan, set: &Migrations, count: u32) -> Vec<Row> {
    let live = TestDatabase::empty();
    let mut client = live.connect();
    if let Err(e) = set.run(&mut client) {
        let mut row = Row::new(format!("drift, {count} applied (ddl)"));
        row.preflight = Measure::text(format!("setup failed: {e}"));
        return vec![row];
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
    floor.note("CREATE DATABASE + apply + DROP");
    let over = |m: &mut Measure| {
        if let Some(d) = over_floor(m, &floor) {
            m.note(format!("{d}: catalogs read and compared"));
        }
    };
    over(&mut sync);
    over(&mut asynchronous);
    let mut rows = Vec::new();
    for (label, measure) in [("sync `postgres`", sync), ("async", asynchronous)] {
        let mut row = Row::new(format!("drift, {count} applied (ddl, {label})"));
        row.floor = floor.clone();
        row.preflight = measure;
        row.refinery = Measure::text(NO_DRIFT_CHECK);
        row.sqlx = Measure::text(NO_DRIFT_CHECK);
        rows.push(row);
    }
    rows
}

fn sqlite(plan: &Plan, set: &Migrations, count: u32) -> Row {
    let mut row = Row::new(format!("drift, {count} applied (ddl, SQLite file)"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("live.db");
    let mut conn = rusqlite::Connection::open(&path).expect("open the SQLite file");
    let sql = |m: &preflight_runtime::Migration| m.up().script().unwrap_or_default().to_owned();
    // SQLite's SQL: `timestamptz` and `now()` do not exist there; the generated DDL keeps its
    // shape with SQLite's spelling.
    let sqlite_set = Migrations::from_specs(
        set.iter()
            .map(|m| {
                preflight_runtime::MigrationSpec::new(
                    m.version(),
                    m.name(),
                    &sql(m).replace(
                        "timestamptz NOT NULL DEFAULT now()",
                        "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP",
                    ),
                )
            })
            .collect(),
    )
    .expect("the same versions");
    if let Err(e) = sqlite_set.run(&mut conn) {
        row.preflight = Measure::text(format!("setup failed: {e}"));
        return row;
    }
    for round in 0..plan.rounds {
        for turn in 0..2 {
            if (round + turn) % 2 == 0 {
                record(
                    &mut row.floor,
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
                    &mut row.preflight,
                    timed(|| {
                        let drift = sqlite_set.drift(&mut conn).map_err(|e| e.to_string())?;
                        clean(drift.is_clean())
                    }),
                );
            }
        }
    }
    row.floor.note("apply to an in-memory database");
    row.refinery = Measure::text(NO_DRIFT_CHECK);
    row.sqlx = Measure::text(NO_DRIFT_CHECK);
    row
}

/// An untouched database must compare clean: a difference here is a bug, not a timing.
fn clean(is_clean: bool) -> Result<(), String> {
    if is_clean {
        Ok(())
    } else {
        Err("drift reported differences on an untouched database".into())
    }
}
