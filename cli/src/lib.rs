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
mod sets;
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
    Adopt, Composition, Connection, Error, Migrations, Repair, Report, Revert, Runner, State, Step,
    Tool, Version,
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
    let composition = migrations.map(Composition::from);
    run_composed(composition.as_ref(), args)
}

/// [`run_from`] over embedded sets composed together (see `preflight::compose`): every
/// command works on the composition, `--set` names the set a version belongs to.
///
/// ```no_run
/// # fn app(all: &preflight_runtime::Composition<'_>) -> std::process::ExitCode {
/// preflight_cli::run_composed(Some(all), std::env::args_os().skip(1))
/// # }
/// ```
pub fn run_composed<I, T>(migrations: Option<&Composition<'_>>, args: I) -> ExitCode
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

fn execute(cli: &Cli, embedded: Option<&Composition<'_>>) -> Result<Outcome, CliError> {
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
            let specs = sets::specs(&g.dirs);
            let files = new::create(
                &sets::one(&specs, g.set.as_deref())?.path,
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
            let (loaded, mut db) = open(g, embedded)?;
            let comp = loaded.composition()?;
            let r = runner(&comp, g)?;
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
            let status = status::compute(&comp, &history, planned.as_ref());
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
            let (loaded, mut db) = open_if(g, embedded, Loaded::refuse_ambiguous)?;
            let comp = loaded.composition()?;
            let mut r = runner(&comp, g)?
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
            loaded.refuse_running(&keys(&planned.apply), Direction::Up)?;
            if *dry_run {
                return Ok(dry_run_up(&planned.apply, comp.sets().len() > 1));
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
            let (loaded, mut db) = open_if(g, embedded, Loaded::refuse_ambiguous)?;
            let comp = loaded.composition()?;
            let report = runner(&comp, g)?
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
            // Drift runs the applied migrations in its scratch database: refused before
            // connecting when one of them is broken.
            let (loaded, mut db) = open_if(g, embedded, |loaded| {
                let all: Vec<(String, Version)> = loaded
                    .sets
                    .iter()
                    .flat_map(|set| set.iter().map(|m| (set.set().to_owned(), m.version())))
                    .collect();
                loaded.refuse_running(&all, Direction::Up)
            })?;
            let comp = loaded.composition()?;
            let url = database_url(g)?;
            let mut r = runner(&comp, g)?;
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
        Command::Down {
            to,
            steps,
            point,
            dry_run,
        } => {
            let (loaded, mut db) = open_if(g, embedded, Loaded::refuse_ambiguous)?;
            let comp = loaded.composition()?;
            let revert = match (to, steps, point) {
                (Some(v), ..) => Revert::To(parse_version(v)?),
                (None, Some(n), _) => Revert::Steps(*n),
                (None, None, Some(v)) => Revert::Point(parse_version(v)?),
                (None, None, None) => {
                    return Err(CliError::Usage(
                        "give --to V, --steps N or --point V".into(),
                    ))
                }
            };
            let r = runner(&comp, g)?;
            let planned = r.plan_revert(&mut *db, revert)?;
            loaded.refuse_running(&keys(&planned.revert), Direction::Down)?;
            if *dry_run {
                return Ok(dry_run_down(&planned.revert, comp.sets().len() > 1));
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
            let (loaded, mut db) = open_if(g, embedded, Loaded::refuse_ambiguous)?;
            let comp = loaded.composition()?;
            if scoped(&comp, g)?.get(v).is_none() {
                return Err(CliError::Usage(format!(
                    "{v} is not a migration version of this set"
                )));
            }
            // One step under the lock: every row is recorded, or none.
            let report = runner(&comp, g)?.repair(&mut *db, Repair::Baseline(v))?;
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
            // Reset runs every file: the directories must be clean.
            let (loaded, mut db) = open_if(g, embedded, |loaded| {
                if loaded.problems.is_empty() {
                    Ok(())
                } else {
                    Err(CliError::Diagnostics(loaded.problems.clone()))
                }
            })?;
            let comp = loaded.composition()?;
            let r = runner(&comp, g)?;
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
            let (loaded, mut db) = open_if(g, embedded, Loaded::refuse_ambiguous)?;
            let comp = loaded.composition()?;
            let r = runner(&comp, g)?;
            if let Some(v) = resume {
                // Resuming runs the unfinished migrations up to it and what is pending.
                let v = parse_version(v)?;
                let set = scoped(&comp, g)?;
                let history = r.history(&mut *db)?;
                let pending: Vec<(String, Version)> = set
                    .iter()
                    .map(preflight_runtime::Migration::version)
                    .filter(|&m| m <= v)
                    .filter(|m| {
                        !history.iter().any(|h| {
                            h.set == set.set() && h.version == *m && h.state == State::Applied
                        })
                    })
                    .map(|m| (set.set().to_owned(), m))
                    .collect();
                loaded.refuse_running(&pending, Direction::Up)?;
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
            out.human = format!("{what} (recorded in its history row)\n{}", out.human);
            out.json["repair"] = json!(what);
            Ok(out)
        }
    }
}

/// `adopt [--from TOOL] [--dry-run]`: takes another tool's history over, through the runner
/// (lock, one transaction, each row noting the tool's table), and says what `up` will apply
/// next.
fn adopt(
    g: &Global,
    embedded: Option<&Composition<'_>>,
    from: Option<&str>,
    dry_run: bool,
) -> Result<Outcome, CliError> {
    let (loaded, mut db) = open_if(g, embedded, Loaded::refuse_ambiguous)?;
    let comp = loaded.composition()?;
    let set = scoped(&comp, g)?;
    let tool = match from {
        Some(name) => Some(
            Tool::from_cli_name(name)
                .ok_or_else(|| CliError::Usage(format!("--from {name}: not a supported tool")))?,
        ),
        None => None,
    };
    let how = tool.map_or(Adopt::Auto, Adopt::From);
    let r = runner(&comp, g)?.adoption(how);
    let history: Vec<_> = r
        .history(&mut *db)?
        .into_iter()
        .filter(|h| h.set == set.set())
        .collect();
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
    embedded: Option<&Composition<'_>>,
    deny: bool,
    allow: &[String],
    enable: &[String],
) -> Result<Outcome, CliError> {
    // Each set: (how it is shown, migrations, dialect, warnings, notes).
    type Checked = (String, usize, String, Vec<String>, Vec<String>);
    let mut checked_sets: Vec<Checked> = Vec::new();
    match embedded {
        // An embedded set was checked when the binary was compiled, with the options of its
        // `embed!`: report that check's warnings (and honour --deny-warnings on them).
        Some(comp) => {
            if !allow.is_empty() || !enable.is_empty() {
                return Err(CliError::Usage(
                    "--allow and --enable apply to a directory; an embedded set was linted when \
                     it was compiled: give `allow`/`enable` to its `embed!`"
                        .into(),
                ));
            }
            for set in comp.sets() {
                let warnings: Vec<String> = set.warnings().iter().map(|w| w.to_string()).collect();
                let shown = if comp.sets().len() > 1 {
                    format!(
                        "embedded set `{}` (checked when the binary was compiled)",
                        set.set()
                    )
                } else {
                    "embedded migrations (checked when the binary was compiled)".to_owned()
                };
                checked_sets.push((
                    shown,
                    set.len(),
                    set.dialect().to_owned(),
                    warnings,
                    Vec::new(),
                ));
            }
        }
        None => {
            let mut options = options(g, LintLevel::Warn, false)?;
            for rules in allow {
                options = options.allow(rules).map_err(CliError::Usage)?;
            }
            for rules in enable {
                options = options.enable(rules).map_err(CliError::Usage)?;
            }
            for spec in sets::specs(&g.dirs) {
                let display = spec.path.display().to_string();
                let checked =
                    check_dir(&spec.path, &display, &options).map_err(CliError::Diagnostics)?;
                if let Some(name) = spec.set_name() {
                    let errors = checked.requirement_errors(&name);
                    if !errors.is_empty() {
                        return Err(CliError::Diagnostics(errors));
                    }
                }
                checked_sets.push((
                    display,
                    checked.migrations().len(),
                    checked.dialect().name().to_owned(),
                    checked.warnings().iter().map(ToString::to_string).collect(),
                    checked.notes().iter().map(ToString::to_string).collect(),
                ));
            }
        }
    }
    let mut human = String::new();
    let (mut count, mut warnings, mut notes) = (0, Vec::new(), Vec::new());
    let mut dialect = String::new();
    for (shown, n, d, w, found) in checked_sets {
        human.extend(found.iter().chain(&w).map(|w| format!("{w}\n\n")));
        human.push_str(&format!(
            "{shown}: {n} migration(s) checked ({d}), {} warning(s), {} note(s)\n",
            w.len(),
            found.len()
        ));
        count += n;
        dialect = d;
        warnings.extend(w);
        notes.extend(found);
    }
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

/// The migration sets a command works on (one per `--dir`, or the embedded ones), with the
/// problems of their directories: read-only commands show what they can and list the
/// problems; a command refuses only when it would run a broken file (or when a directory is
/// ambiguous: a duplicate version, mixed layouts, a requirement its own set refutes).
struct Loaded {
    sets: Vec<Migrations>,
    /// Every problem of the directories.
    problems: Vec<Diagnostic>,
    /// Problems that belong to no single body (names, duplicates, layouts, SQLite's chain).
    ambiguous: Vec<Diagnostic>,
    /// (set, version) whose up / down body failed its checks, with their problems.
    failed_up: Vec<(String, Version, Vec<Diagnostic>)>,
    failed_down: Vec<(String, Version, Vec<Diagnostic>)>,
}

impl Loaded {
    fn refuse_ambiguous(&self) -> Result<(), CliError> {
        if self.ambiguous.is_empty() {
            Ok(())
        } else {
            Err(CliError::Diagnostics(self.problems.clone()))
        }
    }

    /// Refuses when one of `migrations` (set, version) would run a body that failed its checks.
    fn refuse_running(
        &self,
        migrations: &[(String, Version)],
        direction: Direction,
    ) -> Result<(), CliError> {
        self.refuse_ambiguous()?;
        let failed = match direction {
            Direction::Up => &self.failed_up,
            Direction::Down => &self.failed_down,
        };
        let broken: Vec<Diagnostic> = failed
            .iter()
            .filter(|(s, v, _)| migrations.iter().any(|(ms, mv)| ms == s && mv == v))
            .flat_map(|(_, _, problems)| problems.iter().cloned())
            .collect();
        if broken.is_empty() {
            Ok(())
        } else {
            Err(CliError::Diagnostics(broken))
        }
    }

    /// The sets composed, refused before any I/O when they cannot be (see
    /// `preflight::compose`).
    fn composition(&self) -> Result<Composition<'_>, CliError> {
        Ok(preflight_runtime::compose(&self.sets).map_err(Error::from)?)
    }
}

/// The (set, version) of each step.
fn keys(steps: &[Step<'_>]) -> Vec<(String, Version)> {
    steps
        .iter()
        .map(|s| (s.set().to_owned(), s.migration().version()))
        .collect()
}

/// The migration sets: embedded, or read from every `--dir` with every compile-time check
/// (lints aside: they cannot change what is applied), each named as `embed!` would name it
/// (see `sets`).
fn load(g: &Global, embedded: Option<&Composition<'_>>) -> Result<Loaded, CliError> {
    if let Some(comp) = embedded {
        return Ok(Loaded {
            sets: comp.sets().cloned().collect(),
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
    let options = options(g, LintLevel::Allow, true)?;
    let mut loaded = Loaded {
        sets: Vec::new(),
        problems: Vec::new(),
        ambiguous: Vec::new(),
        failed_up: Vec::new(),
        failed_down: Vec::new(),
    };
    for spec in sets::specs(&g.dirs) {
        let display = spec.path.display().to_string();
        let (checked, mut problems) = check_dir_partial(&spec.path, &display, &options);
        let name = spec.set_name();
        let refuted = name
            .as_deref()
            .map_or_else(Vec::new, |n| checked.requirement_errors(n));
        problems.extend(refuted.iter().cloned());
        let set_name = name
            .clone()
            .unwrap_or_else(|| preflight_runtime::DEFAULT_SET.to_owned());
        let mut of_bodies = Vec::new();
        for m in checked.migrations() {
            if m.up().failed() {
                let found = m.up().problems().to_vec();
                of_bodies.extend_from_slice(&found);
                loaded
                    .failed_up
                    .push((set_name.clone(), m.version(), found));
            }
            if let Some(d) = m.down().filter(|d| d.failed()) {
                of_bodies.extend_from_slice(d.problems());
                loaded
                    .failed_down
                    .push((set_name.clone(), m.version(), d.problems().to_vec()));
            }
        }
        loaded
            .ambiguous
            .extend(problems.iter().filter(|p| !of_bodies.contains(p)).cloned());
        loaded.problems.extend(problems);
        let set = checked.into_migrations();
        loaded.sets.push(match name {
            Some(name) => set.named(name),
            None => set,
        });
    }
    Ok(loaded)
}

/// [`load`], then the database: every directory is checked before anything connects, and a
/// lone directory that nothing named takes the name of the one set its history holds.
fn open(
    g: &Global,
    embedded: Option<&Composition<'_>>,
) -> Result<(Loaded, Box<dyn Connection>), CliError> {
    open_if(g, embedded, |_| Ok(()))
}

/// [`open`], after `gate` accepted the directories: a command that refuses them refuses before
/// connecting (and before creating a SQLite file).
fn open_if(
    g: &Global,
    embedded: Option<&Composition<'_>>,
    gate: impl FnOnce(&Loaded) -> Result<(), CliError>,
) -> Result<(Loaded, Box<dyn Connection>), CliError> {
    let mut loaded = load(g, embedded)?;
    gate(&loaded)?;
    let mut db = connect_db(g)?;
    if embedded.is_none() {
        if let [set] = loaded.sets.as_mut_slice() {
            if set.set() == preflight_runtime::DEFAULT_SET {
                let comp = Composition::from(&*set);
                let names: Vec<String> = runner(&comp, g)?
                    .history(&mut *db)?
                    .into_iter()
                    .map(|row| row.set)
                    .collect();
                *set = sets::settle(set.clone(), names);
                let name = set.set().to_owned();
                for failed in loaded.failed_up.iter_mut().chain(&mut loaded.failed_down) {
                    failed.0.clone_from(&name);
                }
            }
        }
    }
    Ok((loaded, db))
}

/// The set `--set` names, or the only one.
fn scoped<'m>(comp: &Composition<'m>, g: &Global) -> Result<&'m Migrations, CliError> {
    match &g.set {
        Some(name) => comp
            .set(name)
            .ok_or_else(|| CliError::Usage(format!("--set {name}: no such set here"))),
        None => match comp.sets().collect::<Vec<_>>().as_slice() {
            [only] => Ok(only),
            _ => Err(CliError::Usage(
                "several sets: say which one with --set".into(),
            )),
        },
    }
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

fn runner<'m>(comp: &'m Composition<'_>, g: &Global) -> Result<Runner<'m>, CliError> {
    let (schema, table) = split_table(&g.table)?;
    let mut r = comp
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
    if let Some(set) = &g.set {
        r = r.set(set);
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

fn dry_run_up(steps: &[Step<'_>], multi: bool) -> Outcome {
    let mut human = format!("would apply {} migration(s):\n", steps.len());
    let mut list = Vec::new();
    for step in steps {
        let m = step.migration();
        let from = step.from() as usize;
        let body = m.up();
        human.push_str(&format!(
            "\n-- {}{} {} ({}, {}, {} statement(s){})\n",
            in_set(step, multi),
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
        list.push(json!({ "set": step.set(), "version": m.version().to_string(), "name": m.name(), "sql": sql }));
    }
    Outcome::ok(human, json!({ "ok": true, "dry_run": true, "apply": list }))
}

/// `auth `: a step's set in a listing of several sets' migrations.
fn in_set(step: &Step<'_>, multi: bool) -> String {
    if multi {
        format!("{} ", step.set())
    } else {
        String::new()
    }
}

fn dry_run_down(planned: &[Step<'_>], multi: bool) -> Outcome {
    let mut human = format!("would revert {} migration(s):\n", planned.len());
    let mut list = Vec::new();
    for step in planned {
        let m = step.migration();
        let sql: Vec<&str> = m
            .down()
            .map(|d| d.statements().collect())
            .unwrap_or_default();
        human.push_str(&format!(
            "\n-- {}{} {} (down)\n",
            in_set(step, multi),
            m.version(),
            m.name()
        ));
        for s in &sql {
            human.push_str(s);
            human.push('\n');
        }
        list.push(json!({ "set": step.set(), "version": m.version().to_string(), "name": m.name(), "sql": sql }));
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
