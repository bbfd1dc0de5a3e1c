//! Preflight's compile-time analysis, as an ordinary library: the `embed!` proc macro is a thin
//! shim over [`expand`], and the CLI calls [`check_dir`] at run time, so both see a migration
//! directory exactly alike.
//!
//! For each migration directory it:
//! * reads the directory through the runtime crate's [`preflight_runtime::source`]
//!   module (layouts, names, directives);
//! * parses every up and down body with `squawk-syntax` (PostgreSQL's grammar), reports syntax
//!   errors at `path:line:column`, and refuses what only psql can run (meta-commands such as
//!   `\connect`, variables such as `:'name'`, `COPY ... FROM stdin` with inline rows);
//! * splits the statements with exact byte ranges of the file;
//! * decides whether each body runs in a transaction (see [the rules](kind_rules));
//! * lints up bodies with `squawk-linter`: lock and safety risks on tables that existed before
//!   the migration, as warnings by default; style rules are opt-in (see [`lint::CATALOGUE`]).
//!
//! Every problem of the directory is reported at once.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("1_users.up.sql"), "CREATE TABLE users (id bigint);").unwrap();
//! std::fs::write(dir.path().join("1_users.down.sql"), "DROP TABLE users;").unwrap();
//! let checked = preflight_check::check_dir(dir.path(), "migrations", &Default::default()).unwrap();
//! let set = checked.into_migrations();
//! assert_eq!(set.len(), 1);
//! assert_eq!(set.as_slice()[0].up().statements().collect::<Vec<_>>(), ["CREATE TABLE users (id bigint);"]);
//! ```

#![warn(missing_docs)]

#[cfg(feature = "exact-grammar")]
mod exact;
mod expand;
mod kind;
pub mod lint;
#[cfg(feature = "mysql")]
pub mod mysql;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod test_attribute;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use preflight_runtime::source::{
    self, Level, NamePattern, Requires, SourceBody, SourceFile, SourceMigration, SourceOptions,
};
pub use preflight_runtime::source::{Diagnostic, Layout};
use preflight_runtime::{
    Body, Kind, MigrationParts, Migrations, Requirement, Span, Timeouts, Version,
};

pub use expand::expand;
pub use test_attribute::expand_test;

/// The rules that decide whether a body runs inside a transaction, and how a file's own
/// `BEGIN;` ... `COMMIT;` is treated. (This item only carries the documentation.)
///
/// 1. **A file's own wrapper.** When the first statement is a plain `BEGIN` / `START
///    TRANSACTION`, the last a plain `COMMIT` / `END`, and there is no other, the two are dropped
///    from the statements: the runner sends the text from the first to the last remaining
///    statement inside its own transaction, together with the history row, so the file stays
///    atomic as its author meant, and its history row commits with it (which the file's own
///    `COMMIT` would break).
/// 2. **A file that manages its own transactions** — several `BEGIN; ... COMMIT;` blocks,
///    a block beside other statements, a block with transaction modes
///    (`BEGIN ISOLATION LEVEL SERIALIZABLE`), or blocks in a no-transaction file — runs as
///    written, as golang-migrate and dbmate run it: [`Kind::Script`], each block atomic, the
///    statements between blocks one by one, outside Preflight's transaction, progress recorded
///    after each (inside the block, for a block), so a failure resumes exactly like a
///    no-transaction migration. A compile-time note (rule `runs-as-script`) says so. Refused,
///    each with why, is only what cannot run safely that way: a `BEGIN` without `COMMIT` (the
///    block would stay open), a `COMMIT` or `ROLLBACK` outside a block, a block ending in
///    `ROLLBACK` (recorded as done, having done nothing), `COMMIT AND CHAIN`, a nested `BEGIN`,
///    a savepoint outside a block, a statement that cannot run in a transaction inside a
///    block, two-phase commit.
/// 3. **A no-transaction marker** (`-- preflight:no-transaction`, goose's
///    `-- +goose NO TRANSACTION`, sqlx's `-- no-transaction` as the first line, diesel's
///    `run_in_transaction = false`, pop's `.autocommit.`) makes a body without blocks
///    [`Kind::NoTransaction`]; a savepoint or a stray `COMMIT` there is an error.
/// 4. **Automatic no-transaction.** A body made only of statements that cannot run inside a
///    transaction block (`CREATE`/`DROP INDEX CONCURRENTLY`, `REINDEX ... CONCURRENTLY`,
///    `VACUUM`, `CREATE`/`DROP DATABASE`, `CREATE`/`DROP TABLESPACE`, `ALTER SYSTEM`,
///    `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY`, `CLUSTER` without a table) is
///    [`Kind::NoTransaction`] without a marker, as Flyway does: real projects write a lone
///    `CREATE INDEX CONCURRENTLY` file with no marker at all.
/// 5. **A mix** of such statements and ordinary ones without a marker or blocks is an error:
///    move the non-transactional statement to a migration of its own, or mark the file. A
///    `ROLLBACK` or two-phase commit in a transactional body is an error (it would undo or
///    commit the migration behind the runner's back); savepoints are fine.
///
/// An empty or comment-only body is a valid no-op with zero statements.
pub mod kind_rules {}

/// The SQL dialect the migrations are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL, checked with `squawk-syntax`'s grammar.
    #[default]
    Postgres,
    /// SQLite (feature `sqlite`): split as SQLite splits, and checked by applying the whole
    /// chain to an in-memory SQLite database.
    Sqlite,
    /// MySQL and MariaDB (feature `mysql`): split as the server runs statements (`DELIMITER`
    /// blocks, stored-program bodies), DDL and DML-only migrations told apart, syntax checked
    /// with sqlparser's MySQL grammar (see the `mysql` module).
    Mysql,
}

impl FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            #[cfg(feature = "sqlite")]
            "sqlite" => Ok(Dialect::Sqlite),
            #[cfg(not(feature = "sqlite"))]
            "sqlite" => Err(
                "the `sqlite` dialect needs the `sqlite` feature of `preflight` (it compiles \
                 SQLite into the macro to check the migrations)"
                    .to_owned(),
            ),
            #[cfg(feature = "mysql")]
            "mysql" | "mariadb" => Ok(Dialect::Mysql),
            #[cfg(not(feature = "mysql"))]
            "mysql" | "mariadb" => Err(format!(
                "the `{s}` dialect needs the `mysql` feature of `preflight` (it compiles the MySQL \
                 statement splitter and grammar into the macro)"
            )),
            _ => Err(format!(
                "unknown dialect `{s}`: the supported dialects are `postgres`, `sqlite` and `mysql`"
            )),
        }
    }
}

/// What to do with lint findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LintLevel {
    /// Do not lint.
    Allow,
    /// Report findings as warnings (the default).
    #[default]
    Warn,
    /// Report findings as errors.
    Deny,
}

impl FromStr for LintLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(LintLevel::Allow),
            "warn" => Ok(LintLevel::Warn),
            "deny" => Ok(LintLevel::Deny),
            _ => Err(format!(
                "unknown lint level `{s}`: expected `\"allow\"`, `\"warn\"` or `\"deny\"`"
            )),
        }
    }
}

/// The rule of the note that a file runs as a script of its own transaction blocks.
pub const RUNS_AS_SCRIPT: &str = "runs-as-script";

impl Dialect {
    /// The dialect's name in pop's file names (`postgres`, `sqlite3`, `mysql`).
    fn pop_name(&self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite3",
            Dialect::Mysql => "mysql",
        }
    }

    /// The dialect's name (`postgres`, `sqlite`, `mysql`), as `embed!(.., dialect = ..)` takes
    /// it.
    pub fn name(&self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
            Dialect::Mysql => "mysql",
        }
    }
}

/// How to check a directory. `Options::default()` is PostgreSQL, the known layouts, the
/// default lints (lock and safety risks) as warnings, every version linted.
///
/// ```
/// use preflight_check::Options;
/// let options = Options::default()
///     .names("V{version}.{name}.{direction}.sql".parse().unwrap())
///     .enable("style").unwrap()
///     .allow("require-concurrent-index-deletion, not-a-migration").unwrap();
/// # let _ = options;
/// assert!(Options::default().allow("no-such-rule").is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Options {
    dialect: Dialect,
    lints: LintLevel,
    lint_since: Option<Version>,
    names: Option<NamePattern>,
    selection: lint::Selection,
}

impl Options {
    /// Reads file names with a declared pattern (home-grown runners), e.g.
    /// `V{version}.{name}.{direction}.sql`; see [`NamePattern`].
    pub fn names(mut self, pattern: NamePattern) -> Options {
        self.names = Some(pattern);
        self
    }

    /// Turns on opt-in rules (by name, or a group: `style`, `compatibility`), comma-separated;
    /// any squawk rule name works too. An unknown name is an error.
    pub fn enable(mut self, rules: &str) -> Result<Options, String> {
        self.selection.enable(rules)?;
        Ok(self)
    }

    /// Turns rules off for the whole project (by name, or a group: `lock`, `safety`, ...),
    /// comma-separated, including Preflight's own `not-a-migration` and `runs-as-script`. An
    /// unknown name is an error.
    pub fn allow(mut self, rules: &str) -> Result<Options, String> {
        self.selection.allow(rules)?;
        Ok(self)
    }

    /// Sets the dialect.
    pub fn dialect(mut self, dialect: Dialect) -> Options {
        self.dialect = dialect;
        self
    }

    /// Sets what lint findings are.
    pub fn lints(mut self, lints: LintLevel) -> Options {
        self.lints = lints;
        self
    }

    /// Lints only migrations whose version is above `version` (older ones are already applied
    /// everywhere; rewriting them is not an option).
    pub fn lint_since(mut self, version: Version) -> Options {
        self.lint_since = Some(version);
        self
    }
}

/// A checked migration directory: what the runtime needs, plus the lint warnings and notes.
#[derive(Debug)]
pub struct Checked {
    layout: Option<Layout>,
    dialect: Dialect,
    migrations: Vec<CheckedMigration>,
    warnings: Vec<Diagnostic>,
    notes: Vec<Diagnostic>,
}

/// One checked migration.
#[derive(Debug)]
pub struct CheckedMigration {
    version: Version,
    name: String,
    up: CheckedBody,
    down: Option<CheckedBody>,
    requires: Vec<Requires>,
}

/// One checked body: its file, its statements as byte ranges of the file's text, and its kind.
#[derive(Debug)]
pub struct CheckedBody {
    file: Arc<SourceFile>,
    statements: Vec<Span>,
    kind: Kind,
    timeouts: Timeouts,
    /// Why the body did not pass the checks (only in [`check_dir_partial`]'s result): it is
    /// then kept whole, as one transactional statement, so that versions and checksums can be
    /// shown.
    problems: Vec<Diagnostic>,
}

impl Checked {
    /// The directory's layout (`None` when it holds no migration).
    pub fn layout(&self) -> Option<Layout> {
        self.layout
    }

    /// The migrations in version order.
    pub fn migrations(&self) -> &[CheckedMigration] {
        &self.migrations
    }

    /// The lint findings (and files that are not migrations), when lints are warnings.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Notes: how some files run (e.g. as a script of their own transaction blocks).
    pub fn notes(&self) -> &[Diagnostic] {
        &self.notes
    }

    /// The dialect the directory was checked in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The migration set, owning its texts (what the CLI runs). The checksum of each migration
    /// covers the whole text of its up file, the chain follows version order; both are computed
    /// by the runtime crate's code, as for `embed!`.
    pub fn into_migrations(self) -> Migrations {
        let parts = self
            .migrations
            .into_iter()
            .map(|m| MigrationParts {
                version: m.version,
                path: m.up.file.display.clone(),
                checksum_text: m.up.file.text.clone(),
                up: m.up.to_body(),
                down: m.down.map(|d| d.to_body()),
                name: m.name,
                requires: m
                    .requires
                    .iter()
                    .map(|r| Requirement::new(r.set.clone(), r.version))
                    .collect(),
            })
            .collect();
        // Versions were checked unique when the directory was read (a partial check keeps
        // only the first file of a duplicate version).
        let set = Migrations::from_parts(parts)
            .unwrap_or_else(|v| unreachable!("duplicate version {v} passed the directory check"));
        set.with_checks(
            self.dialect.name(),
            self.warnings.iter().map(ToString::to_string).collect(),
        )
    }
}

impl Checked {
    /// The requirements (`-- preflight:requires`) that the directory itself can refute, once
    /// it is known as set `set`: a requirement of the set's own migration must name one of its
    /// migrations that comes before. (Other sets' are checked by `compose`.)
    pub fn requirement_errors(&self, set: &str) -> Vec<Diagnostic> {
        let mut errors = Vec::new();
        for m in &self.migrations {
            for r in m.requires.iter().filter(|r| r.set == set) {
                let exists = self.migrations.iter().any(|o| o.version == r.version);
                let problem = if r.version >= m.version {
                    format!(
                        "migration {} requires migration {} of its own set `{set}`, which does \
                         not come before it: migrations of one set run in version order, so \
                         remove the line",
                        m.version, r.version
                    )
                } else if !exists {
                    format!(
                        "migration {} requires migration {} of its own set `{set}`, which does \
                         not exist: fix the version, or remove the line",
                        m.version, r.version
                    )
                } else {
                    continue;
                };
                errors.push(Diagnostic::error_at(
                    m.up.file.display.clone(),
                    &m.up.file.text,
                    r.at.start,
                    problem,
                ));
            }
        }
        errors
    }
}

impl CheckedMigration {
    /// The migrations of other sets it requires, as the directives said them.
    pub fn requires(&self) -> &[Requires] {
        &self.requires
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The up body.
    pub fn up(&self) -> &CheckedBody {
        &self.up
    }
    /// The down body, if any.
    pub fn down(&self) -> Option<&CheckedBody> {
        self.down.as_ref()
    }
}

impl CheckedBody {
    /// Where the file is on disk.
    pub fn path(&self) -> &Path {
        &self.file.path
    }
    /// How messages name the file (e.g. `migrations/1_users.up.sql`).
    pub fn display(&self) -> &str {
        &self.file.display
    }
    /// The whole text of the file (a goose file holds both bodies).
    pub fn file_text(&self) -> &str {
        &self.file.text
    }
    /// The statements, as byte ranges of [`file_text`](Self::file_text).
    pub fn statements(&self) -> &[Span] {
        &self.statements
    }
    /// Whether it runs inside a transaction.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// Whether the body failed the checks (only in [`check_dir_partial`]'s result).
    pub fn failed(&self) -> bool {
        !self.problems.is_empty()
    }
    /// Why the body failed the checks (empty when it passed).
    pub fn problems(&self) -> &[Diagnostic] {
        &self.problems
    }

    /// Its own time limits (`-- preflight:lock-timeout`, `-- preflight:statement-timeout`).
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn to_body(&self) -> Body {
        Body::owned(self.file.text.clone(), self.statements.clone(), self.kind)
            .with_timeouts(self.timeouts)
    }
}

/// Reads and checks the migration directory `dir`; `display` is how messages name it (what the
/// user wrote, e.g. `migrations`). On failure, returns every error of the directory (names,
/// layout, SQL of every file, and lint findings when lints are denied), sorted by file and line.
pub fn check_dir(dir: &Path, display: &str, opts: &Options) -> Result<Checked, Vec<Diagnostic>> {
    let (checked, errors) = check_dir_partial(dir, display, opts);
    if errors.is_empty() {
        Ok(checked)
    } else {
        Err(errors)
    }
}

/// Like [`check_dir`], but returns what could be read together with every error, for commands
/// that only look (`preflight status` on a directory with a broken down file shows the status
/// and lists the problems). A body that failed its checks is kept whole, as one transactional
/// statement, and marked [`CheckedBody::failed`]: it must not be run as if it had passed (the
/// CLI refuses to run one). For a duplicate version, the first file is kept. The result is
/// complete exactly when the error list is empty.
pub fn check_dir_partial(dir: &Path, display: &str, opts: &Options) -> (Checked, Vec<Diagnostic>) {
    let mut source_options = SourceOptions::default().dialect(opts.dialect.pop_name());
    if opts.dialect == Dialect::Postgres {
        source_options = source_options.comments(sql::line_comment_starts);
    }
    if let Some(pattern) = &opts.names {
        source_options = source_options.pattern(pattern.clone());
    }
    let (source, mut errors) = source::scan_dir(dir, display, &source_options);
    let mut warnings: Vec<Diagnostic> = source
        .warnings
        .into_iter()
        .filter(|w| {
            !w.rule
                .as_deref()
                .is_some_and(|r| opts.selection.allows_own(r))
        })
        .collect();
    let mut notes = Vec::new();
    let mut migrations = Vec::new();
    for outcome in check_all(&source.migrations, opts) {
        errors.extend(outcome.errors);
        warnings.extend(outcome.warnings);
        notes.extend(outcome.notes);
        migrations.push(outcome.migration);
    }
    if opts.lints == LintLevel::Deny {
        for mut w in warnings.drain(..) {
            w.level = Level::Error;
            errors.push(w);
        }
    }
    #[cfg(feature = "sqlite")]
    if errors.is_empty() && opts.dialect == Dialect::Sqlite {
        errors.extend(sqlite::apply_chain(&migrations));
    }
    sort(&mut errors);
    sort(&mut warnings);
    let checked = Checked {
        layout: source.layout,
        dialect: opts.dialect,
        migrations,
        warnings,
        notes,
    };
    (checked, errors)
}

/// What checking one migration gave.
struct Outcome {
    migration: CheckedMigration,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    notes: Vec<Diagnostic>,
}

/// Below this many migrations, threads cost more than they save.
const PARALLEL_FROM: usize = 64;

/// Checks every migration, in order; large directories are spread over the machine's cores
/// (parsing is the bulk of a proc macro's time with a thousand migrations, see
/// bench/compile-time.sh).
fn check_all(migrations: &[SourceMigration], opts: &Options) -> Vec<Outcome> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || migrations.len() < PARALLEL_FROM {
        return migrations
            .iter()
            .map(|m| check_migration(m, opts))
            .collect();
    }
    let chunk = migrations.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = migrations
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|m| check_migration(m, opts))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn check_migration(m: &SourceMigration, opts: &Options) -> Outcome {
    let mut report = BodyReport::default();
    let lint = (opts.lints != LintLevel::Allow
        && opts.lint_since.is_none_or(|since| m.version > since))
    .then_some(&opts.selection);
    let up = check_body(&m.up, opts, lint, &mut report);
    // Down bodies are checked but not linted: undoing a migration is destructive by nature
    // (`DROP TABLE` in nearly every down file), so every finding would be noise.
    let down = m
        .down
        .as_ref()
        .map(|d| check_body(d, opts, None, &mut report));
    Outcome {
        migration: CheckedMigration {
            version: m.version,
            name: m.name.clone(),
            up,
            down,
            requires: m.up.directives.requires.clone(),
        },
        errors: report.errors,
        warnings: report.warnings,
        notes: report.notes,
    }
}

/// What checking bodies found.
#[derive(Default)]
struct BodyReport {
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    notes: Vec<Diagnostic>,
}

/// Sorts by file, then line and column (directory-level problems first, as their path is the
/// directory's). Paths compare with their digit runs as numbers, so `2_b.sql` comes before
/// `10_c.sql`, as versions do.
fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        let at = |d: &Diagnostic| d.position.as_ref().map(|p| (p.line, p.column));
        natural_key(&a.path)
            .cmp(&natural_key(&b.path))
            .then(at(a).cmp(&at(b)))
    });
}

/// A path as alternating text and numeric runs (leading zeros kept apart so `01` and `1` differ).
fn natural_key(path: &str) -> Vec<(String, u128, usize)> {
    let mut key = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        let text_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (text, tail) = rest.split_at(text_len);
        let digits_len = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (digits, tail) = tail.split_at(digits_len);
        // Digit runs too long for u128 compare by length then text, through the third field.
        let number = digits.parse::<u128>().unwrap_or(u128::MAX);
        key.push((text.to_owned(), number, digits.len()));
        rest = tail;
    }
    key
}

/// Checks one body; problems, findings and notes go to `report`. A body that fails is returned
/// whole and marked failed (see [`check_dir_partial`]).
fn check_body(
    body: &SourceBody,
    opts: &Options,
    lint: Option<&lint::Selection>,
    report: &mut BodyReport,
) -> CheckedBody {
    let before = report.errors.len();
    let checked = match opts.dialect {
        Dialect::Postgres => check_postgres_body(body, lint, report),
        #[cfg(feature = "sqlite")]
        Dialect::Sqlite => sqlite::check_body(body, &mut report.errors),
        // Refused when the options were parsed.
        #[cfg(not(feature = "sqlite"))]
        Dialect::Sqlite => None,
        #[cfg(feature = "mysql")]
        Dialect::Mysql => mysql::check_body(body, &mut report.errors, &mut report.notes),
        #[cfg(not(feature = "mysql"))]
        Dialect::Mysql => None,
    };
    match checked {
        Some(checked) if report.errors.len() == before => {
            if checked.kind == Kind::Script {
                let allowed = body.directives.allow.iter().any(|a| a == RUNS_AS_SCRIPT)
                    || opts.selection.allows_own(RUNS_AS_SCRIPT);
                if !allowed {
                    report.notes.push(script_note(&checked));
                }
            }
            checked
        }
        _ => unchecked(body, report.errors[before..].to_vec()),
    }
}

/// The note for a body that runs as a script of its own transaction blocks.
fn script_note(body: &CheckedBody) -> Diagnostic {
    let blocks = body
        .statements
        .iter()
        .filter(|s| s.commit_at().is_some())
        .count();
    let others = body.statements.len() - blocks;
    let offset = body.statements.first().map_or(0, |s| s.range().start);
    Diagnostic {
        level: Level::Note,
        rule: Some(RUNS_AS_SCRIPT.to_owned()),
        ..Diagnostic::error_at(
            body.file.display.clone(),
            &body.file.text,
            offset,
            format!(
                "the file manages its own transactions, so it runs as a script, as written: \
                 {blocks} `BEGIN; ... COMMIT;` block(s), each atomic, and {others} statement(s) \
                 between them, each on its own, outside Preflight's transaction; progress is \
                 recorded after each, so a failure resumes at the block or statement that failed"
            ),
        )
    }
}

/// A body that failed its checks, kept whole so that its version and checksum stay known.
fn unchecked(body: &SourceBody, problems: Vec<Diagnostic>) -> CheckedBody {
    let text = &body.file.text[body.range.clone()];
    let start = body.range.start + (text.len() - text.trim_start().len());
    let end = body.range.start + text.trim_end().len();
    let statements = if start < end {
        vec![span_of(&sql::Statement {
            range: start..end,
            class: sql::Class::Ordinary,
        })]
    } else {
        Vec::new()
    };
    CheckedBody {
        file: body.file.clone(),
        statements,
        kind: Kind::Transactional,
        timeouts: body.directives.timeouts,
        problems,
    }
}

/// Checks one body in PostgreSQL's dialect.
fn check_postgres_body(
    body: &SourceBody,
    lint: Option<&lint::Selection>,
    report: &mut BodyReport,
) -> Option<CheckedBody> {
    let file = &body.file;
    let error_at = |offset: usize, message: String| {
        Diagnostic::error_at(file.display.clone(), &file.text, offset, message)
    };
    let errors = &mut report.errors;
    let before = errors.len();

    let mut all_allowed: Vec<String> = body.directives.allow.clone();
    all_allowed.extend(
        body.directives
            .allow_statement
            .iter()
            .flat_map(|a| a.rules.iter().cloned()),
    );
    let (allowed, _) = lint::allowed_rules(&body.directives.allow);
    for name in lint::allowed_rules(&all_allowed).1 {
        let offset = allow_directive_offset(&file.text, &name);
        errors.push(error_at(
            offset,
            format!(
                "unknown lint rule `{name}` in `-- preflight:allow`: use a rule name from \
                 LINTS.md such as `require-concurrent-index-creation`, a group (`lock`, `brief-lock`, \
                 `safety`, `compatibility`, `style`), or a squawk rule name \
                 (https://squawkhq.com/docs/rules)"
            ),
        ));
    }

    let analysis = sql::analyze(&file.text, body.range.clone());
    for p in &analysis.problems {
        errors.push(error_at(p.offset, p.message.clone()));
    }
    #[cfg(feature = "exact-grammar")]
    if analysis.problems.is_empty() {
        for p in exact::check(&file.text, &analysis.statements) {
            errors.push(error_at(p.offset, p.message));
        }
    }
    // Transaction rules only make sense on a body that parsed.
    if errors.len() != before {
        return None;
    }
    let decision = match kind::decide(
        &file.text,
        analysis.statements.clone(),
        body.directives.no_transaction,
    ) {
        Ok(d) => d,
        Err(problems) => {
            errors.extend(problems.into_iter().map(|p| error_at(p.offset, p.message)));
            return None;
        }
    };

    if let Some(selection) = lint {
        let cx = lint::Context {
            file_text: &file.text,
            display: &file.display,
            kind: decision.kind,
            wrapped: decision.wrapped,
            file_allow: &allowed,
            statement_allow: &body.directives.allow_statement,
        };
        report
            .warnings
            .extend(lint::lint(&analysis, &cx, selection));
    }
    let statements = decision.statements.iter().map(span_of).collect();
    Some(CheckedBody {
        file: file.clone(),
        statements,
        kind: decision.kind,
        timeouts: body.directives.timeouts,
        problems: Vec::new(),
    })
}

/// The runtime's span of a statement or block.
fn span_of(statement: &sql::Statement) -> Span {
    // Spans are u32 (they live in the binary): a 4 GiB migration file is not realistic, and
    // saturating makes a later slice fail loudly instead of silently pointing elsewhere.
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let range = &statement.range;
    match statement.class {
        sql::Class::Block { commit } => {
            Span::block(to_u32(range.start), to_u32(commit), to_u32(range.end))
        }
        _ => Span::new(to_u32(range.start), to_u32(range.end)),
    }
}

/// Where the `-- preflight:allow ...` naming `rule` is, for the error's caret.
fn allow_directive_offset(text: &str, rule: &str) -> usize {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.contains("preflight:allow") {
            if let Some(at) = line.find(rule) {
                return offset + at;
            }
        }
        offset += line.len();
    }
    0
}

/// A list of diagnostics, displayed one after the other separated by blank lines.
pub struct Report<'a>(pub &'a [Diagnostic]);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
