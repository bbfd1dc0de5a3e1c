//! Preflight's benchmarks side by side with refinery, sqlx and the floors (issues #8, #21).
//!
//! ```text
//! cargo run --release -p preflight-bench -- --all --update BENCHMARKS.md   # the whole document
//! cargo run --release -p preflight-bench -- --all --quick                  # a quick look
//! cargo run --release -p preflight-bench -- --scenario deploy,latency --rounds 1
//! ```
//!
//! Against the server `DATABASE_URL` names (any database on it: each scenario creates and drops
//! its own), or, when it is unset, a private throwaway cluster (which runs with fsync=off, so
//! commits are cheaper there than on a real server). Prints the generated part of BENCHMARKS.md.

mod compile;
mod drift;
mod gen;
mod latency;
mod machine;
mod preflight_impl;
mod probe;
mod profile;
mod proxy;
mod report;
mod scenarios;
mod sqlite;
mod stats;
mod storm;
mod testdb;
mod tools;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::gen::Shape;
use crate::report::curve;
use crate::scenarios::{direct, Plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// No-op boot at every size.
    Noop,
    /// Apply to an empty database at every size, and the DDL-heavy apply.
    Apply,
    /// A few new migrations on top of many applied: the first boot after a deploy.
    Deploy,
    /// No-op boot, deploy and apply again with an added round-trip time.
    Latency,
    /// Many processes booting at once.
    Storm,
    /// Peak memory of a no-op boot.
    Memory,
    /// Compile time of the embedding macros, and the binary size they add.
    Compile,
    /// The SQLite rows.
    Sqlite,
    /// A test suite's per-test databases.
    Testdb,
    /// Round trips and statements per tool, through a counting proxy.
    Profile,
    /// `drift` on 200 applied migrations.
    Drift,
}

const ALL: [Scenario; 11] = [
    Scenario::Noop,
    Scenario::Apply,
    Scenario::Deploy,
    Scenario::Latency,
    Scenario::Storm,
    Scenario::Memory,
    Scenario::Compile,
    Scenario::Sqlite,
    Scenario::Testdb,
    Scenario::Profile,
    Scenario::Drift,
];

/// Preflight's benchmarks, side by side with refinery, sqlx and the floors.
#[derive(Debug, Parser)]
#[command(name = "preflight-bench")]
struct Args {
    /// Run every scenario.
    #[arg(long)]
    all: bool,
    /// Fewer rounds and smaller sets: a quick look, not numbers to publish.
    #[arg(long)]
    quick: bool,
    /// Scenarios to run (comma-separated), instead of --all.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// Rounds per measurement (default 5, or 1 with --quick); the no-op boots take 5 times as
    /// many, the 10,000-migration and DDL-heavy applies at most 3.
    #[arg(long)]
    rounds: Option<usize>,
    /// Set sizes of the no-op boot and apply curves (default 10,100,1000,10000).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<u32>,
    /// Migrations of the DDL-heavy apply (default 1000; 0 skips it).
    #[arg(long)]
    ddl_count: Option<u32>,
    /// Migrations already applied in the deploy (default 1000).
    #[arg(long)]
    deploy_base: Option<u32>,
    /// Processes in the storm.
    #[arg(long, default_value_t = 32)]
    storm_processes: usize,
    /// Added round-trip time of the latency scenario, in milliseconds.
    #[arg(long, default_value_t = 1.0)]
    latency_ms: f64,
    /// Tests in the test-database suite (default 100).
    #[arg(long)]
    testdb_tests: Option<usize>,
    /// Migrations of the test-database suite (default 200).
    #[arg(long)]
    testdb_migrations: Option<u32>,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the generated part of this file (between the `preflight-bench` markers) with
    /// the report.
    #[arg(long)]
    update: Option<PathBuf>,
    /// Child role (storm, memory): boot once with this tool and report.
    #[arg(long, hide = true)]
    child: Option<String>,
    #[arg(long, hide = true)]
    url: Option<String>,
    #[arg(long, hide = true)]
    dir: Option<PathBuf>,
}

/// The markers around the generated part of BENCHMARKS.md.
const BEGIN: &str = "<!-- preflight-bench: generated, begin -->";
const END: &str = "<!-- preflight-bench: generated, end -->";

fn main() {
    let args = Args::parse();
    if let Some(tool) = &args.child {
        let (Some(url), Some(dir)) = (&args.url, &args.dir) else {
            eprintln!("--child needs --url and --dir");
            std::process::exit(2);
        };
        std::process::exit(storm::child(tool, url, dir));
    }
    let selected: Vec<Scenario> = if args.all {
        ALL.to_vec()
    } else {
        args.scenario.clone()
    };
    if selected.is_empty() {
        eprintln!("nothing to do: pass --all or --scenario (see --help)");
        std::process::exit(2);
    }
    let quick = args.quick;
    let rounds = args.rounds.unwrap_or(if quick { 1 } else { 5 }).max(1);
    let sizes = if !args.sizes.is_empty() {
        args.sizes.clone()
    } else if quick {
        vec![10, 100]
    } else {
        vec![10, 100, 1000, 10000]
    };
    let plan = Plan {
        rounds,
        sizes,
        ddl_count: args.ddl_count.unwrap_or(if quick { 50 } else { 1000 }),
        deploy_base: args.deploy_base.unwrap_or(if quick { 100 } else { 1000 }),
        deploy_new: 3,
        storm_processes: args.storm_processes.max(2),
        storm_count: 100,
        latency: Duration::from_secs_f64(args.latency_ms.max(0.0) / 1000.0),
        sqlite_apply: if quick { 100 } else { 1000 },
    };
    let started = std::time::Instant::now();
    let server = machine::Server::start();
    let rt = scenarios::runtime();
    let work = tempfile::tempdir().expect("a temporary directory for the generated migrations");

    let mut parts: Vec<String> = Vec::new();
    let mut pg_contenders = false;
    for s in &selected {
        let needs_contenders = matches!(
            s,
            Scenario::Noop
                | Scenario::Apply
                | Scenario::Deploy
                | Scenario::Latency
                | Scenario::Storm
                | Scenario::Memory
        );
        if needs_contenders && !pg_contenders {
            pg_contenders = true;
            parts.push(format!(
                "### PostgreSQL contenders\n\nEvery timing is \"connect, then do the thing\" \
                 with each tool's own client; loading the set (what the macros compile in) is \
                 not timed, closing the connection is not timed. Contenders alternate, their \
                 order rotating each round. Preflight's default commits every migration of a \
                 run but the last asynchronously (see the method); its row with every commit \
                 synchronous shows what that buys.\n\n{}\n",
                tools::contenders_table(&tools::ALL)
            ));
        }
        match s {
            Scenario::Noop => {
                let tables: Vec<_> = plan
                    .sizes
                    .iter()
                    .map(|&n| scenarios::noop(&rt, work.path(), &plan, n, &direct, ""))
                    .collect();
                parts.push("### No-op boot\n".to_owned());
                let pairs: Vec<_> = plan.sizes.iter().copied().zip(tables.iter()).collect();
                parts.push(curve("No-op boot by number of applied migrations", &pairs));
                parts.extend(tables.iter().map(|t| t.markdown()));
            }
            Scenario::Apply => {
                let tables: Vec<_> = plan
                    .sizes
                    .iter()
                    .map(|&n| {
                        scenarios::apply(&rt, work.path(), &plan, Shape::Light, n, &direct, "")
                    })
                    .collect();
                parts.push("### Apply to an empty database\n".to_owned());
                let pairs: Vec<_> = plan.sizes.iter().copied().zip(tables.iter()).collect();
                parts.push(curve(
                    "Apply by number of migrations (one cheap statement each)",
                    &pairs,
                ));
                parts.extend(tables.iter().map(|t| t.markdown()));
                if plan.ddl_count > 0 {
                    let t = scenarios::apply(
                        &rt,
                        work.path(),
                        &plan,
                        Shape::DdlHeavy,
                        plan.ddl_count,
                        &direct,
                        "",
                    );
                    parts.push(t.markdown());
                }
            }
            Scenario::Deploy => {
                parts.push("### Deploy\n".to_owned());
                parts.push(scenarios::deploy(&rt, work.path(), &plan, &direct, "").markdown());
            }
            Scenario::Latency => {
                parts.push("### Latency\n".to_owned());
                parts.extend(
                    latency::latency(&rt, work.path(), &plan)
                        .iter()
                        .map(|t| t.markdown()),
                );
            }
            Scenario::Storm => {
                parts.push("### Storm\n".to_owned());
                parts.extend(
                    storm::storm(work.path(), &plan)
                        .iter()
                        .map(|t| t.markdown()),
                );
            }
            Scenario::Memory => {
                parts.push("### Peak memory\n".to_owned());
                parts.push(storm::memory(work.path(), &plan, plan.deploy_base).markdown());
            }
            Scenario::Compile => {
                let (sizes, peers): (&[u32], _) = if quick {
                    (&[10, 100], Some(100))
                } else {
                    (&[10, 100, 1000], Some(1000))
                };
                parts.push("### Compile time and binary size\n".to_owned());
                parts.extend(compile::compile(sizes, if quick { 1 } else { 3 }, peers));
            }
            Scenario::Sqlite => {
                parts.push("### SQLite\n".to_owned());
                parts.extend(sqlite::sqlite(&rt, work.path(), &plan));
            }
            Scenario::Testdb => {
                parts.push(testdb::run(
                    work.path(),
                    &testdb::Suite {
                        tests: args.testdb_tests.unwrap_or(if quick { 20 } else { 100 }),
                        migrations: args
                            .testdb_migrations
                            .unwrap_or(if quick { 50 } else { 200 }),
                    },
                ));
            }
            Scenario::Profile => parts.push(profile::run(&rt, work.path())),
            Scenario::Drift => {
                parts.push("### Drift\n".to_owned());
                parts.extend(
                    drift::drift(&rt, &plan, if quick { 50 } else { 200 })
                        .iter()
                        .map(|t| t.markdown()),
                );
            }
        }
    }

    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let text = format!(
        "{BEGIN}\n\n{machine}\nCommand: `cargo run --release -p preflight-bench -- {command}` \
         (wall time {secs:.0} s; rounds per scenario are stated under each table; medians, \
         min, max)\n\n{body}{END}\n",
        machine = server.describe(),
        secs = started.elapsed().as_secs_f64(),
        body = parts.join("\n"),
    );
    print!("{text}");
    if let Some(path) = &args.out {
        if let Err(e) = std::fs::write(path, &text) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    if let Some(path) = &args.update {
        if let Err(e) = update(path, &text) {
            eprintln!("cannot update {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}

/// Replaces the text between the markers (both included) in `path` with `text`.
fn update(path: &std::path::Path, text: &str) -> Result<(), String> {
    let doc = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        return Err(format!("no `{BEGIN}` … `{END}` markers in it"));
    };
    if e < b {
        return Err("the end marker comes before the begin marker".to_owned());
    }
    let tail = &doc[e + END.len()..];
    let tail = tail.strip_prefix('\n').unwrap_or(tail);
    let new = format!("{}{text}{tail}", &doc[..b]);
    std::fs::write(path, new).map_err(|e| e.to_string())
}
