//! Preflight's benchmarks side by side with refinery, sqlx and psql (issue #8).
//!
//! ```text
//! cargo run --release -p preflight-bench -- --all            # everything, ~10 min on 2 cores
//! cargo run --release -p preflight-bench -- --all --quick    # fewer rounds, smaller sets
//! ```
//!
//! Against the server `DATABASE_URL` names (any database on it: each scenario creates and drops
//! its own), or, when it is unset, a private throwaway cluster (which runs with fsync=off, so
//! commits are cheaper there than on a real server). Prints a Markdown report (BENCHMARKS.md).

mod compile;
mod drift;
mod gen;
mod machine;
mod preflight_impl;
mod profile;
mod report;
mod scenarios;
mod sqlite;
mod stats;
mod testdb;
mod tools;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Noop,
    Apply,
    Storm,
    Compile,
    Sqlite,
    /// A test suite's per-test databases (issue #9).
    Testdb,
    /// `drift` on 200 applied migrations (issue #20).
    Drift,
}

/// Preflight's benchmarks, side by side with refinery, sqlx and psql.
#[derive(Debug, Parser)]
#[command(name = "preflight-bench")]
struct Args {
    /// Run every scenario (no-op boot, apply, storm, compile time, SQLite, test databases,
    /// drift).
    #[arg(long)]
    all: bool,
    /// Fewer rounds and smaller sets: a quick look, not numbers to publish.
    #[arg(long)]
    quick: bool,
    /// Scenarios to run (comma-separated), instead of --all.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// Rounds per measurement (default 5, or 3 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Migrations per apply measurement (default 1000, or 200 with --quick).
    #[arg(long)]
    apply_count: Option<u32>,
    /// Only the light apply (one cheap statement per migration), not the DDL-heavy one.
    #[arg(long)]
    light_only: bool,
    /// Processes in the storm.
    #[arg(long, default_value_t = 32)]
    storm_processes: usize,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Count each tool's round trips and list the statements it sends (through a counting
    /// proxy), instead of timing.
    #[arg(long)]
    profile: bool,
    #[arg(long, hide = true)]
    storm_child: Option<String>,
    #[arg(long, hide = true)]
    url: Option<String>,
    #[arg(long, hide = true)]
    dir: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    if let Some(tool) = &args.storm_child {
        let (Some(url), Some(dir)) = (&args.url, &args.dir) else {
            eprintln!("--storm-child needs --url and --dir");
            std::process::exit(2);
        };
        std::process::exit(scenarios::storm_child(tool, url, dir));
    }
    let mut selected = args.scenario.clone();
    if args.all {
        selected = vec![
            Scenario::Noop,
            Scenario::Apply,
            Scenario::Storm,
            Scenario::Compile,
            Scenario::Sqlite,
            Scenario::Testdb,
            Scenario::Drift,
        ];
    }
    if selected.is_empty() && !args.profile {
        eprintln!(
            "nothing to do: pass --all (or --scenario noop,apply,storm,compile,sqlite,testdb,drift, or --profile); see --help"
        );
        std::process::exit(2);
    }
    let rounds = args.rounds.unwrap_or(if args.quick { 3 } else { 5 }).max(1);
    let plan = scenarios::Plan {
        rounds,
        noop_sizes: vec![10, 100, 1000],
        apply_count: args
            .apply_count
            .unwrap_or(if args.quick { 200 } else { 1000 }),
        light_only: args.light_only,
        storm_processes: args.storm_processes.max(2),
        storm_count: 100,
    };
    let started = std::time::Instant::now();
    let server = machine::Server::start();
    let rt = scenarios::runtime();
    let work = tempfile::tempdir().expect("a temporary directory for the generated migrations");

    if args.profile {
        let text = profile::run(&rt, work.path());
        print!("{text}");
        return;
    }

    let mut rows = Vec::new();
    let mut sections = Vec::new();
    for s in &selected {
        match s {
            Scenario::Noop => rows.extend(scenarios::noop(&rt, work.path(), &plan)),
            Scenario::Apply => rows.extend(scenarios::apply(&rt, work.path(), &plan)),
            Scenario::Storm => rows.extend(scenarios::storm(work.path(), &plan)),
            Scenario::Compile => {
                let sizes: &[u32] = if args.quick {
                    &[10, 100]
                } else {
                    &[10, 100, 1000]
                };
                rows.extend(compile::compile(sizes, if args.quick { 1 } else { 3 }));
            }
            Scenario::Sqlite => rows.extend(sqlite::sqlite(&rt, work.path(), &plan)),
            Scenario::Drift => {
                rows.extend(drift::drift(&rt, &plan, if args.quick { 50 } else { 200 }))
            }
            Scenario::Testdb => sections.push(testdb::run(
                work.path(),
                &if args.quick {
                    testdb::Suite {
                        tests: 20,
                        migrations: 50,
                    }
                } else {
                    testdb::Suite {
                        tests: 100,
                        migrations: 200,
                    }
                },
            )),
        }
    }

    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let text = format!(
        "{machine}\nCommand: `cargo run --release -p preflight-bench -- {command}` \
         ({rounds} rounds, alternating; median (min–max); wall time {secs:.0} s)\n\n{table}",
        machine = server.describe(),
        table = report::table(&rows),
        secs = started.elapsed().as_secs_f64(),
    ) + &sections
        .iter()
        .map(|s| format!("\n{s}"))
        .collect::<String>();
    print!("{text}");
    if let Some(path) = &args.out {
        if let Err(e) = std::fs::write(path, &text) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
