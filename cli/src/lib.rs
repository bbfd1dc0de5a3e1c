//! The `preflight` command line: create, check, inspect, apply, revert and repair migrations.
//!
//! The binary reads a migration directory at run time through the same code as the `embed!`
//! macro (so its checksums equal the compiled ones), and drives the database through the same
//! runner as a booting application (so it locks, plans and records exactly the same way).
//! An application can offer the same commands over its embedded migrations:
//!
//! ```no_run
//! # fn app() -> std::process::ExitCode {
//! # let migrations = preflight_runtime::Migrations::from_specs(vec![]).unwrap();
//! // `myapp migrate status`, `myapp migrate up`, ...
//! let args = std::env::args_os().skip(1); // drop "myapp"; "migrate" becomes the program name
//! preflight_cli::run_from(Some(&migrations), args)
//! # }
//! ```
//!
//! Exit codes: 0 success, 1 failure (including a database a boot would refuse, a `wait` that
//! timed out and a schema `drift` found different), 2 usage.

mod args;
mod db;
mod foreign;
mod new;
mod progress;
mod reset;
mod status;
mod table;
mod tls;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;
use preflight_check::{check_dir, check_dir_partial, Diagnostic, Dialect, LintLevel, Options};
use preflight_runtime::adopt::AdoptError;
use preflight_runtime::drift::{Change, Drift};
use preflight_runtime::source::SourceOptions;
use preflight_runtime::{
    Adopt, Connection, Error, Migrations, Repair, Report, Revert, Runner, State, Step, Tool,
    Version,
};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt;

use args::{Cli, Command, Global};
use foreign::Foreign;

/// Runs the `preflight` binary: the migrations come from `--dir`.
pub fn main() -> ExitCode {
    run_from(None, std::env::args_os())
}

/// Runs the commands over embedded migrations, with the process's arguments (the first one is
/// the program name, as usual).
pub fn run(migrations: &Migrations) -> ExitCode {
    run_from(Some(migrations), std::env::args_os())
}

/// Runs the commands with the given arguments (the first one is the program name). With
/// `Some(migrations)` they are used instead of reading `--dir`.
pub fn run_from<I, T>(migrations: Option<&Migrations>, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let json = cli.global.json;
    match execute(&cli, migrations) {
        Ok(Outcome {
            human,
            json: doc,
            ok,
        }) => {
            if json {
                println!("{doc}");
            } else if !cli.global.quiet || !ok {
                print!("{human}");
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            let code = if matches!(e, CliError::Usage(_)) {
                2
            } else {
                1
            };
            if json {
                println!("{}", json!({ "ok": false, "error": e.to_string() }));
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(code)
        }
    }
}

/// What a command prints, both ways, and whether it succeeded.
struct Outcome {
    human: String,
    json: Value,
    ok: bool,
}

impl Outcome {
    fn ok(human: String, json: Value) -> Outcome {
        Outcome {
            human,
            json,
            ok: true,
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Wrong use of the command (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The migration directory has problems.
    #[error("{}", diagnostics(.0))]
    Diagnostics(Vec<Diagnostic>),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// No connection to the database.
    #[error("{0}")]
    Connect(String),
    /// The database is not in a state the command may act on.
    #[error("{0}")]
    Refused(String),
    /// The runner refused or failed.
    #[error("{0}")]
    Runtime(#[from] Error),
}

impl CliError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> CliError {
        CliError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

fn diagnostics(list: &[Diagnostic]) -> String {
    let errors = list
        .iter()
        .filter(|d| d.level == preflight_runtime::source::Level::Error)
        .count();
    let mut text: Vec<String> = list.iter().map(ToString::to_string).collect();
    text.push(format!("{errors} error(s) in the migration directory"));
    text.join("\n\n")
}

fn execute(cli: &Cli, embedded: Option<&Migrations>) -> Result<Outcome, CliError> {
    init_tracing(&cli.global);
    let g = &cli.global;
    match &cli.command {
        Command::New { name, reversible } => {
            if embedded.is_some() {
                return Err(CliError::Usage(
                    "`new` works on a migration directory: use the `preflight` binary with --dir"
                        .into(),
                ));
            }
            let files = new::create(
                &g.dir,
                name,
                *reversible,
                SystemTime::now(),
                &source_options(g)?,
            )?;
            let shown: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            Ok(Outcome::ok(
                shown.iter().map(|f| format!("created {f}\n")).collect(),
                json!({ "ok": true, "created": shown }),
            ))
        }
        Command::Check {
            deny_warnings,
            allow,
            enable,
        } => check(g, embedded, *deny_warnings, allow, enable),
        Command::Status => {
            let loaded = load(g, embedded)?;
            let set = &loaded.set;
            let mut db = connect_db(g)?;
            let r = runner(set, g)?;
            let history = r.history(&mut *db)?;
            // The verdict is the runner's dry run: what a booting application would do.
            let planned = match r.plan(&mut *db) {
                Err(e) if !e.is_refusal() => return Err(e.into()),
                planned => planned,
            };
            let foreign: Vec<Foreign> = match &planned {
                Ok(p) => p.foreign.iter().cloned().map(Foreign).collect(),
                Err(_) => Vec::new(),
            };
            let status = status::compute(set, &history, planned.as_ref());
            let mut human = status.render();
            for f in &foreign {
                human.push_str(&format!("note: {f}: {}\n", f.advice()));
            }
            // A read-only command shows the status of a directory with problems, and lists them.
            if !loaded.problems.is_empty() {
                human.push_str(&format!(
                    "\n{}\n\n{} problem(s) in the migration directory: commands that would run a \
                     broken file refuse until it is fixed\n",
                    preflight_check::Report(&loaded.problems),
                    loaded.problems.len()
                ));
            }
            let mut doc = status.json();
            doc["foreign"] = json!(foreign.iter().map(ToString::to_string).collect::<Vec<_>>());
            doc["problems"] = json!(loaded
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>());
            Ok(Outcome {
                human,
                json: doc,
                ok: !status.refuses() && loaded.problems.is_empty(),
            })
        }
        Command::Up {
            to,
            dry_run,
            grouped,
            allow_out_of_order,
        } => {
            let loaded = load(g, embedded)?;
            loaded.refuse_ambiguous()?;
            let set = &loaded.set;
            let mut db = connect_db(g)?;
            let mut r = runner(set, g)?
                .grouped(*grouped)
                .out_of_order(*allow_out_of_order);
            if let Some(t) = to.as_deref().map(parse_version).transpose()? {
                r = r.target(t);
            }
            // The run's own decisions, read first: what `--dry-run` prints, and how many
            // migrations the progress bar counts.
            let planned = r.plan(&mut *db)?;
            if let Some(f) = planned.foreign.first() {
                // Unless the other tool applied nothing (goose's marker row alone, an empty
                // golang-migrate table): then applying everything is what it would do.
                let applied_nothing = r
                    .clone()
                    .adoption(Adopt::Auto)
                    .plan(&mut *db)
                    .is_ok_and(|p| p.adopted.is_some_and(|a| a.versions.is_empty()));
                if !applied_nothing {
                    let f = Foreign(f.clone());
                    return Err(CliError::Refused(format!(
                        "{f}; applying every migration on top of it would fail or do harm: {}",
                        f.advice()
                    )));
                }
            }
            let versions: Vec<Version> = planned
                .apply
                .iter()
                .map(|s| s.migration().version())
                .collect();
            loaded.refuse_running(&versions, Direction::Up)?;
            if *dry_run {
                return Ok(dry_run_up(&planned.apply));
            }
            let progress = progress::Progress::new(planned.apply.len());
            let bar = progress.bar();
            let report = with_progress(progress, || r.run(&mut *db));
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            Ok(report_outcome(&report?, "applied"))
        }
        Command::Wait { timeout } => {
            let loaded = load(g, embedded)?;
            loaded.refuse_ambiguous()?;
            let mut db = connect_db(g)?;
            let report = runner(&loaded.set, g)?
                .wait_timeout((*timeout).into())
                .wait(&mut *db)?;
            let mut human = String::new();
            for w in &report.warnings {
                human.push_str(&format!("warning: {w}\n"));
            }
            human.push_str(&format!(
                "database is current for these migrations (waited {:.1} s)\n",
                report.waited.as_secs_f64()
            ));
            Ok(Outcome::ok(
                human,
                json!({
                    "ok": true,
                    "waited_ms": report.waited.as_millis() as u64,
                    "warnings": report.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            ))
        }
        Command::Drift { scratch_url } => {
            let loaded = load(g, embedded)?;
            // Drift runs the applied migrations in its scratch database.
            let versions: Vec<Version> = loaded.set.iter().map(|m| m.version()).collect();
            loaded.refuse_running(&versions, Direction::Up)?;
            let url = database_url(g)?;
            let mut db = connect_db(g)?;
            let mut r = runner(&loaded.set, g)?;
            if preflight_runtime::sqlite::parse_url(url).is_none() {
                r = r.scratch(db::scratch(scratch_url.as_deref().unwrap_or(url))?);
            }
            let drift = r.drift(&mut *db)?;
            Ok(Outcome {
                human: drift.to_string(),
                json: drift_json(&drift),
                ok: drift.is_clean(),
            })
        }
        Command::Down { to, steps, dry_run } => {
            let loaded = load(g, embedded)?;
            loaded.refuse_ambiguous()?;
            let set = &loaded.set;
            let mut db = connect_db(g)?;
            let revert = match (to, steps) {
                (Some(v), _) => Revert::To(parse_version(v)?),
                (None, Some(n)) => Revert::Steps(*n),
                (None, None) => return Err(CliError::Usage("give --to V or --steps N".into())),
            };
            let r = runner(set, g)?;
            let planned = r.plan_revert(&mut *db, revert)?;
            let versions: Vec<Version> = planned.revert.iter().map(|m| m.version()).collect();
            loaded.refuse_running(&versions, Direction::Down)?;
            if *dry_run {
                return Ok(dry_run_down(&planned.revert));
            }
            let progress = progress::Progress::new(planned.revert.len());
            let bar = progress.bar();
            let report = with_progress(progress, || r.revert(&mut *db, revert));
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            Ok(report_outcome(&report?, "reverted"))
        }
        Command::Baseline { upto } => {
            let v = parse_version(upto)?;
            let loaded = load(g, embedded)?;
            loaded.refuse_ambiguous()?;
            let set = loaded.set;
            if set.get(v).is_none() {
                return Err(CliError::Usage(format!(
                    "{v} is not a migration version of this set"
                )));
            }
            let mut db = connect_db(g)?;
            // One step under the lock: every row is recorded, or none.
            let report = runner(&set, g)?.repair(&mut *db, Repair::Baseline(v))?;
            let marked: Vec<String> = report.marked.iter().map(ToString::to_string).collect();
            Ok(Outcome::ok(
                format!(
                    "baseline {v}: {} migration(s) recorded as applied without running them\n",
                    marked.len()
                ),
                json!({ "ok": true, "baseline": v.to_string(), "marked": marked }),
            ))
        }
        Command::Reset { yes, allow_remote } => {
            // Before connecting: a refusal must not depend on the server answering.
            reset::check_local(database_url(g)?, *allow_remote)?;
            // Reset runs every file: the directory must be clean.
            let loaded = load(g, embedded)?;
            if !loaded.problems.is_empty() {
                return Err(CliError::Diagnostics(loaded.problems));
            }
            let set = loaded.set;
            let mut db = connect_db(g)?;
            let r = runner(&set, g)?;
            let announce = !g.json && !g.quiet;
            let (human, json, ok) = reset::reset(&mut *db, &r, *yes, announce)?;
            Ok(Outcome { human, json, ok })
        }
        Command::Adopt { from, dry_run } => adopt(g, embedded, from.as_deref(), *dry_run),
        Command::Repair {
            forget,
            mark_applied,
            accept_checksum,
            resume,
        } => {
            let loaded = load(g, embedded)?;
            loaded.refuse_ambiguous()?;
            let set = &loaded.set;
            let mut db = connect_db(g)?;
            let r = runner(set, g)?;
            if let Some(v) = resume {
                // Resuming runs the unfinished migrations up to it and what is pending.
                let v = parse_version(v)?;
                let history = r.history(&mut *db)?;
                let versions: Vec<Version> = set
                    .iter()
                    .map(preflight_runtime::Migration::version)
                    .filter(|&m| m <= v)
                    .filter(|m| {
                        !history
                            .iter()
                            .any(|h| h.version == *m && h.state == State::Applied)
                    })
                    .collect();
                loaded.refuse_running(&versions, Direction::Up)?;
            }
            let (what, repair) = match (forget, mark_applied, accept_checksum, resume) {
                (Some(v), ..) => ("forgot", Repair::Forget(parse_version(v)?)),
                (_, Some(v), ..) => ("marked applied", Repair::MarkApplied(parse_version(v)?)),
                (_, _, Some(v), _) => (
                    "accepted the new checksum of",
                    Repair::AcceptChecksum(parse_version(v)?),
                ),
                (.., Some(v)) => ("resumed", Repair::Resume(parse_version(v)?)),
                _ => return Err(CliError::Usage("say what to repair".into())),
            };
            let version = match repair {
                Repair::Forget(v)
                | Repair::MarkApplied(v)
                | Repair::AcceptChecksum(v)
                | Repair::Resume(v)
                | Repair::Baseline(v) => v,
                _ => Version::new(0),
            };
            let report = r.repair(&mut *db, repair)?;
            let what = format!("{what} {version}");
            let mut out = report_outcome(&report, "applied");
            out.human = format!("{what} (recorded in the history log)\n{}", out.human);
            out.json["repair"] = json!(what);
            Ok(out)
        }
    }
}

/// `adopt [--from TOOL] [--dry-run]`: takes another tool's history over, through the runner
/// (lock, one transaction, `<table>_log`), and says what `up` will apply next.
fn adopt(
    g: &Global,
    embedded: Option<&Migrations>,
    from: Option<&str>,
    dry_run: bool,
) -> Result<Outcome, CliError> {
    let loaded = load(g, embedded)?;
    loaded.refuse_ambiguous()?;
    let set = loaded.set;
    let mut db = connect_db(g)?;
    let tool = match from {
        Some(name) => Some(
            Tool::from_cli_name(name)
                .ok_or_else(|| CliError::Usage(format!("--from {name}: not a supported tool")))?,
        ),
        None => None,
    };
    let how = tool.map_or(Adopt::Auto, Adopt::From);
    let r = runner(&set, g)?.adoption(how);
    let history = r.history(&mut *db)?;
    if !history.is_empty() {
        let adopted = history
            .iter()
            .filter(|h| h.applied_by.starts_with("adopted from "))
            .count();
        let why = if adopted > 0 {
            format!("{adopted} of its rows were adopted already")
        } else {
            "adoption only fills an empty history".to_owned()
        };
        return Ok(Outcome::ok(
            format!(
                "Preflight's history already has {} row(s) ({why}): nothing adopted\n",
                history.len()
            ),
            json!({ "ok": true, "adopted": Value::Null, "history_rows": history.len() }),
        ));
    }
    let adopted = if dry_run {
        // The adoption's own dry run: the same reads and checks, nothing written.
        r.plan_adopt(&mut *db)?.adopted.ok_or_else(|| {
            Error::from(AdoptError::NotFound {
                tool,
                found: Vec::new(),
            })
        })?
    } else {
        match r.adopt(&mut *db)?.adopted {
            Some(a) => a,
            // Another process filled the history between our read and the lock.
            None => {
                return Ok(Outcome::ok(
                    "Preflight's history was filled meanwhile: nothing adopted\n".to_owned(),
                    json!({ "ok": true, "adopted": Value::Null }),
                ))
            }
        }
    };
    let done: std::collections::BTreeSet<Version> = adopted.versions.iter().copied().collect();
    let next: Vec<String> = set
        .iter()
        .map(|m| m.version())
        .filter(|v| !done.contains(v))
        .map(|v| v.to_string())
        .collect();
    let versions: Vec<String> = adopted.versions.iter().map(ToString::to_string).collect();
    let verb = if dry_run { "would adopt" } else { "adopted" };
    let mut human = format!(
        "{verb} {} migration(s) from {} ({}): {}\n",
        versions.len(),
        adopted.tool,
        adopted.qualified(),
        if versions.is_empty() {
            "none applied there".to_owned()
        } else {
            versions.join(", ")
        }
    );
    if !dry_run {
        human.push_str(&format!(
            "recorded in {} as `{}`; {} was left untouched\n",
            g.table,
            adopted.applied_by(),
            adopted.qualified()
        ));
    }
    human.push_str(&if next.is_empty() {
        "`preflight up` has nothing to apply next\n".to_owned()
    } else {
        format!("pending for `preflight up`: {}\n", next.join(", "))
    });
    Ok(Outcome::ok(
        human,
        json!({
            "ok": true,
            "dry_run": dry_run,
            "adopted": { "tool": adopted.tool.cli_name(), "table": adopted.qualified(), "versions": versions },
            "pending": next,
        }),
    ))
}

fn check(
    g: &Global,
    embedded: Option<&Migrations>,
    deny: bool,
    allow: &[String],
    enable: &[String],
) -> Result<Outcome, CliError> {
    let (count, dialect, warnings, notes, shown) = match embedded {
        // An embedded set was checked when the binary was compiled, with the options of its
        // `embed!`: report that check's warnings (and honour --deny-warnings on them).
        Some(set) => {
            if !allow.is_empty() || !enable.is_empty() {
                return Err(CliError::Usage(
                    "--allow and --enable apply to a directory; an embedded set was linted when \
                     it was compiled: give `allow`/`enable` to its `embed!`"
                        .into(),
                ));
            }
            let warnings: Vec<String> = set.warnings().iter().map(|w| w.to_string()).collect();
            let shown = "embedded migrations (checked when the binary was compiled)".to_owned();
            (
                set.len(),
                set.dialect().to_owned(),
                warnings,
                Vec::new(),
                shown,
            )
        }
        None => {
            let mut options = options(g, LintLevel::Warn, false)?;
            for rules in allow {
                options = options.allow(rules).map_err(CliError::Usage)?;
            }
            for rules in enable {
                options = options.enable(rules).map_err(CliError::Usage)?;
            }
            let display = g.dir.display().to_string();
            let checked = check_dir(&g.dir, &display, &options).map_err(CliError::Diagnostics)?;
            let warnings: Vec<String> =
                checked.warnings().iter().map(ToString::to_string).collect();
            let notes: Vec<String> = checked.notes().iter().map(ToString::to_string).collect();
            (
                checked.migrations().len(),
                checked.dialect().name().to_owned(),
                warnings,
                notes,
                display,
            )
        }
    };
    let mut human: String = notes
        .iter()
        .chain(&warnings)
        .map(|w| format!("{w}\n\n"))
        .collect();
    human.push_str(&format!(
        "{shown}: {count} migration(s) checked ({dialect}), {} warning(s), {} note(s)\n",
        warnings.len(),
        notes.len()
    ));
    let ok = !deny || warnings.is_empty();
    Ok(Outcome {
        human,
        json: json!({
            "ok": ok,
            "migrations": count,
            "dialect": dialect,
            "warnings": warnings,
            "notes": notes,
        }),
        ok,
    })
}

/// Which way a command runs migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// The migration set a command works on, with the problems of its directory: read-only
/// commands show what they can and list the problems; a command refuses only when it would run
/// a broken file (or when the directory is ambiguous: a duplicate version, mixed layouts).
struct Loaded {
    set: Migrations,
    /// Every problem of the directory.
    problems: Vec<Diagnostic>,
    /// Problems that belong to no single body (names, duplicates, layouts, SQLite's chain).
    ambiguous: Vec<Diagnostic>,
    /// Versions whose up / down body failed its checks, with their problems.
    failed_up: Vec<(Version, Vec<Diagnostic>)>,
    failed_down: Vec<(Version, Vec<Diagnostic>)>,
}

impl Loaded {
    fn refuse_ambiguous(&self) -> Result<(), CliError> {
        if self.ambiguous.is_empty() {
            Ok(())
        } else {
            Err(CliError::Diagnostics(self.problems.clone()))
        }
    }

    /// Refuses when one of `versions` would run a body that failed its checks.
    fn refuse_running(&self, versions: &[Version], direction: Direction) -> Result<(), CliError> {
        self.refuse_ambiguous()?;
        let failed = match direction {
            Direction::Up => &self.failed_up,
            Direction::Down => &self.failed_down,
        };
        let broken: Vec<Diagnostic> = failed
            .iter()
            .filter(|(v, _)| versions.contains(v))
            .flat_map(|(_, problems)| problems.iter().cloned())
            .collect();
        if broken.is_empty() {
            Ok(())
        } else {
            Err(CliError::Diagnostics(broken))
        }
    }
}

/// The migration set: embedded, or read from `--dir` with every compile-time check (lints
/// aside: they cannot change what is applied).
fn load(g: &Global, embedded: Option<&Migrations>) -> Result<Loaded, CliError> {
    if let Some(set) = embedded {
        return Ok(Loaded {
            set: set.clone(),
            problems: Vec::new(),
            ambiguous: Vec::new(),
            failed_up: Vec::new(),
            failed_down: Vec::new(),
        });
    }
    if dialect(g, true)? == Dialect::Mysql {
        // Preflight has no MySQL driver yet: MySQL's statements must not reach another database.
        return Err(CliError::Usage(
            "`--dialect mysql` works with `check` and `new`: Preflight cannot run migrations on \
             MySQL or MariaDB yet"
                .into(),
        ));
    }
    let display = g.dir.display().to_string();
    let (checked, problems) =
        check_dir_partial(&g.dir, &display, &options(g, LintLevel::Allow, true)?);
    let mut failed_up = Vec::new();
    let mut failed_down = Vec::new();
    let mut of_bodies = Vec::new();
    for m in checked.migrations() {
        if m.up().failed() {
            failed_up.push((m.version(), m.up().problems().to_vec()));
            of_bodies.extend_from_slice(m.up().problems());
        }
        if let Some(d) = m.down().filter(|d| d.failed()) {
            failed_down.push((m.version(), d.problems().to_vec()));
            of_bodies.extend_from_slice(d.problems());
        }
    }
    let ambiguous = problems
        .iter()
        .filter(|p| !of_bodies.contains(p))
        .cloned()
        .collect();
    Ok(Loaded {
        set: checked.into_migrations(),
        problems,
        ambiguous,
        failed_up,
        failed_down,
    })
}

/// How to read the directory: `--names`, and pop's dialect.
fn source_options(g: &Global) -> Result<SourceOptions, CliError> {
    let mut options = SourceOptions::default().dialect(dialect(g, true)?.name());
    if let Some(pattern) = &g.names {
        options = options.pattern(pattern.parse().map_err(CliError::Usage)?);
    }
    Ok(options)
}

/// The dialect: `--dialect`, or (`from_database`) the kind of `--database-url`.
fn dialect(g: &Global, from_database: bool) -> Result<Dialect, CliError> {
    if let Some(d) = &g.dialect {
        return d.parse().map_err(CliError::Usage);
    }
    // A SQLite database's migrations are in SQLite's dialect: split as SQLite splits, and
    // checked by applying the chain to an in-memory SQLite, as `embed!(.., dialect = "sqlite")`.
    let sqlite = from_database
        && g.database_url
            .as_deref()
            .is_some_and(|u| preflight_runtime::sqlite::parse_url(u).is_some());
    Ok(if sqlite {
        Dialect::Sqlite
    } else {
        Dialect::Postgres
    })
}

/// The check options for `--dir`: `check` has no database, so its dialect is `--dialect`'s
/// alone (`from_database` false); other commands default to their database's.
fn options(g: &Global, lints: LintLevel, from_database: bool) -> Result<Options, CliError> {
    let mut options = Options::default()
        .lints(lints)
        .dialect(dialect(g, from_database)?);
    if let Some(pattern) = &g.names {
        options = options.names(pattern.parse().map_err(CliError::Usage)?);
    }
    Ok(options)
}

fn database_url(g: &Global) -> Result<&str, CliError> {
    g.database_url.as_deref().ok_or_else(|| {
        CliError::Usage("no database: pass --database-url or set DATABASE_URL".into())
    })
}

/// The database of `--database-url`: PostgreSQL, or SQLite for a `sqlite:` URL.
fn connect_db(g: &Global) -> Result<Box<dyn Connection>, CliError> {
    db::connect(database_url(g)?)
}

fn runner<'m>(set: &'m Migrations, g: &Global) -> Result<Runner<'m>, CliError> {
    let (schema, table) = split_table(&g.table)?;
    let mut r = set
        .runner()
        .table(table)
        .application("preflight-cli")
        .lock_timeout(g.lock_timeout.into());
    if let Some(t) = g.sql_lock_timeout {
        r = r.sql_lock_timeout(t);
    }
    if let Some(t) = g.sql_statement_timeout {
        r = r.sql_statement_timeout(t);
    }
    if let Some(n) = g.lock_retries {
        r = r.lock_retries(n);
    }
    if let Some(schema) = schema {
        r = r.schema(schema);
    }
    Ok(r)
}

/// `schema.table`, either part optionally in double quotes (which may contain dots).
fn split_table(text: &str) -> Result<(Option<String>, String), CliError> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    let bad = || {
        CliError::Usage(format!(
            "--table {text}: expected `table` or `schema.table`"
        ))
    };
    if quoted || parts.iter().any(String::is_empty) {
        return Err(bad());
    }
    match parts.len() {
        1 => Ok((None, parts.remove(0))),
        2 => {
            let table = parts.remove(1);
            Ok((Some(parts.remove(0)), table))
        }
        _ => Err(bad()),
    }
}

fn parse_version(text: &str) -> Result<Version, CliError> {
    text.parse()
        .map_err(|e: preflight_runtime::VersionError| CliError::Usage(e.to_string()))
}

fn init_tracing(g: &Global) {
    let level = match (g.quiet, g.verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .finish();
    // An application embedding the CLI may have its own subscriber already: keep it.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Runs `f` with the progress display listening to the runner's events on this thread.
fn with_progress<R>(progress: progress::Progress, f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry().with(progress);
    tracing::subscriber::with_default(subscriber, f)
}

fn report_outcome(report: &Report, verb: &str) -> Outcome {
    let done = if verb == "reverted" {
        &report.reverted
    } else {
        &report.applied
    };
    let mut human = String::new();
    for w in &report.warnings {
        human.push_str(&format!("warning: {w}\n"));
    }
    human.push_str(&if report.fast_path {
        "database is current: nothing to do\n".to_owned()
    } else {
        format!("{} migration(s) {verb}\n", done.len())
    });
    let list: Vec<Value> = done
        .iter()
        .map(|a| json!({ "version": a.version.to_string(), "name": a.name, "ms": a.duration.as_millis() as u64 }))
        .collect();
    Outcome::ok(
        human,
        json!({
            "ok": true,
            verb: list,
            "warnings": report.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "fast_path": report.fast_path,
            "lock_taken": report.lock_taken,
        }),
    )
}

/// `drift --json`: every difference whole (the table truncates long definitions).
fn drift_json(drift: &Drift) -> Value {
    let versions = |v: &[Version]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    let differences: Vec<Value> = drift
        .differences
        .iter()
        .map(|d| {
            let mut entry = json!({
                "change": d.change.as_str(),
                "kind": d.kind.as_str(),
                "name": d.name,
            });
            match &d.change {
                Change::Added(attrs) | Change::Removed(attrs) => {
                    entry["attributes"] = attrs
                        .iter()
                        .map(|a| (a.name.clone(), Value::from(a.value.clone())))
                        .collect::<serde_json::Map<_, _>>()
                        .into();
                }
                Change::Changed(changes) => {
                    entry["changes"] = changes
                        .iter()
                        .map(|c| json!({ "attribute": c.name, "live": c.live, "migrations": c.built }))
                        .collect::<Vec<_>>()
                        .into();
                }
                _ => {}
            }
            entry
        })
        .collect();
    json!({
        "ok": drift.is_clean(),
        "clean": drift.is_clean(),
        "differences": differences,
        "compared": versions(&drift.compared),
        "pending": versions(&drift.pending),
        "unknown": versions(&drift.unknown),
    })
}

fn dry_run_up(steps: &[Step<'_>]) -> Outcome {
    let mut human = format!("would apply {} migration(s):\n", steps.len());
    let mut list = Vec::new();
    for step in steps {
        let m = step.migration();
        let from = match step {
            Step::Resume { from, .. } => *from as usize,
            _ => 0,
        };
        let body = m.up();
        human.push_str(&format!(
            "\n-- {} {} ({}, {}, {} statement(s){})\n",
            m.version(),
            m.name(),
            m.path(),
            match body.kind() {
                preflight_runtime::Kind::Transactional => "in a transaction",
                preflight_runtime::Kind::NoTransaction => "outside a transaction",
                preflight_runtime::Kind::Script => "as a script: each block atomic",
            },
            body.statement_count(),
            if from > 0 {
                format!(", resuming at {}", from + 1)
            } else {
                String::new()
            }
        ));
        let sql: Vec<&str> = body.statements().skip(from).collect();
        for s in &sql {
            human.push_str(s);
            human.push('\n');
        }
        list.push(json!({ "version": m.version().to_string(), "name": m.name(), "sql": sql }));
    }
    Outcome::ok(human, json!({ "ok": true, "dry_run": true, "apply": list }))
}

fn dry_run_down(planned: &[&preflight_runtime::Migration]) -> Outcome {
    let mut human = format!("would revert {} migration(s):\n", planned.len());
    let mut list = Vec::new();
    for m in planned {
        let sql: Vec<&str> = m
            .down()
            .map(|d| d.statements().collect())
            .unwrap_or_default();
        human.push_str(&format!("\n-- {} {} (down)\n", m.version(), m.name()));
        for s in &sql {
            human.push_str(s);
            human.push('\n');
        }
        list.push(json!({ "version": m.version().to_string(), "name": m.name(), "sql": sql }));
    }
    Outcome::ok(
        human,
        json!({ "ok": true, "dry_run": true, "revert": list }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn splits_schema_qualified_tables() {
        assert_eq!(split_table("t").unwrap(), (None, "t".into()));
        assert_eq!(split_table("s.t").unwrap(), (Some("s".into()), "t".into()));
        assert_eq!(
            split_table("\"my.schema\".\"t\"\"x\"").unwrap(),
            (Some("my.schema".into()), "t\"x".into())
        );
        assert!(split_table("a.b.c").is_err());
        assert!(split_table("s.").is_err());
        assert!(split_table("\"open").is_err());
    }
}
