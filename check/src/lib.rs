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
//! * lints up bodies with `squawk-linter` (warnings by default).
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
mod lint;
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

use preflight_runtime::source::{self, Level, SourceBody, SourceFile, SourceMigration};
pub use preflight_runtime::source::{Diagnostic, Layout};
use preflight_runtime::{Body, Kind, MigrationParts, Migrations, Span, Timeouts, Version};

pub use expand::expand;
pub use test_attribute::expand_test;

/// The rules that decide whether a body runs inside a transaction, and how a file's own
/// `BEGIN;` ... `COMMIT;` is treated. (This item only carries the documentation.)
///
/// 1. **A file's own wrapper.** When the first statement is a plain `BEGIN` / `START
///    TRANSACTION` and the last a plain `COMMIT` / `END`, the two are dropped from the
///    statements: the runner sends the text from the first to the last remaining statement
///    inside its own transaction, together with the history row, so the file stays atomic as
///    its author meant, and its history row commits with it (which the file's own `COMMIT`
///    would break).
/// 2. **Any other transaction control is an error**: `COMMIT` or `ROLLBACK` in the middle,
///    several blocks, `BEGIN` with transaction modes, `COMMIT AND CHAIN`, two-phase commit. Each
///    would commit or undo part of the migration behind the runner's back. Savepoints are fine
///    in a transactional body.
/// 3. **A no-transaction marker** (`-- preflight:no-transaction`, goose's
///    `-- +goose NO TRANSACTION`, sqlx's `-- no-transaction` as the first line, diesel's
///    `run_in_transaction = false`) makes the body [`Kind::NoTransaction`]; it must then hold
///    no transaction control at all (wrapper and savepoints included).
/// 4. **Automatic no-transaction.** A body made only of statements that cannot run inside a
///    transaction block (`CREATE`/`DROP INDEX CONCURRENTLY`, `REINDEX ... CONCURRENTLY`,
///    `VACUUM`, `CREATE`/`DROP DATABASE`, `CREATE`/`DROP TABLESPACE`, `ALTER SYSTEM`,
///    `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY`, `CLUSTER` without a table) is
///    [`Kind::NoTransaction`] without a marker, as Flyway does: real projects write a lone
///    `CREATE INDEX CONCURRENTLY` file with no marker at all.
/// 5. **A mix** of such statements and ordinary ones without a marker is an error: move the
///    non-transactional statement to a migration of its own, or mark the file.
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

/// How to check a directory. `Options::default()` is PostgreSQL, lints as warnings, every
/// version linted.
#[derive(Debug, Clone, Default)]
pub struct Options {
    dialect: Dialect,
    lints: LintLevel,
    lint_since: Option<Version>,
}

impl Options {
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

/// A checked migration directory: what the runtime needs, plus the lint warnings.
#[derive(Debug)]
pub struct Checked {
    layout: Option<Layout>,
    migrations: Vec<CheckedMigration>,
    warnings: Vec<Diagnostic>,
}

/// One checked migration.
#[derive(Debug)]
pub struct CheckedMigration {
    version: Version,
    name: String,
    up: CheckedBody,
    down: Option<CheckedBody>,
}

/// One checked body: its file, its statements as byte ranges of the file's text, and its kind.
#[derive(Debug)]
pub struct CheckedBody {
    file: Arc<SourceFile>,
    statements: Vec<Span>,
    kind: Kind,
    timeouts: Timeouts,
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

    /// The lint findings, when lints are warnings.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
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
            })
            .collect();
        // Versions were checked unique when the directory was read.
        Migrations::from_parts(parts)
            .unwrap_or_else(|v| unreachable!("duplicate version {v} passed the directory check"))
    }
}

impl CheckedMigration {
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
    let (source, mut errors) = source::scan_dir(dir, display);
    let mut warnings = Vec::new();
    let mut migrations = Vec::new();
    for outcome in check_all(&source.migrations, opts) {
        errors.extend(outcome.errors);
        warnings.extend(outcome.warnings);
        migrations.extend(outcome.migration);
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
    if errors.is_empty() {
        Ok(Checked {
            layout: source.layout,
            migrations,
            warnings,
        })
    } else {
        sort(&mut errors);
        Err(errors)
    }
}

/// What checking one migration gave.
struct Outcome {
    migration: Option<CheckedMigration>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
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
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let lint =
        opts.lints != LintLevel::Allow && opts.lint_since.is_none_or(|since| m.version > since);
    let up = check_body(&m.up, opts.dialect, lint, &mut errors, &mut warnings);
    // Down bodies are checked but not linted: undoing a migration is destructive by nature
    // (`DROP TABLE` in nearly every down file), so every finding would be noise.
    let down = match &m.down {
        None => Some(None),
        Some(d) => check_body(d, opts.dialect, false, &mut errors, &mut warnings).map(Some),
    };
    let migration = match (up, down) {
        (Some(up), Some(down)) => Some(CheckedMigration {
            version: m.version,
            name: m.name.clone(),
            up,
            down,
        }),
        _ => None,
    };
    Outcome {
        migration,
        errors,
        warnings,
    }
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

/// Checks one body; problems go to `errors`, lint findings to `warnings`.
fn check_body(
    body: &SourceBody,
    dialect: Dialect,
    lint: bool,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<CheckedBody> {
    match dialect {
        Dialect::Postgres => {}
        #[cfg(feature = "sqlite")]
        Dialect::Sqlite => return sqlite::check_body(body, errors),
        // Refused when the options were parsed.
        #[cfg(not(feature = "sqlite"))]
        Dialect::Sqlite => return None,
        // Its "not checked" notes have no channel to the user yet: dropped.
        #[cfg(feature = "mysql")]
        Dialect::Mysql => return mysql::check_body(body, errors, &mut Vec::new()),
        #[cfg(not(feature = "mysql"))]
        Dialect::Mysql => return None,
    }
    let file = &body.file;
    let error_at = |offset: usize, message: String| {
        Diagnostic::error_at(file.display.clone(), &file.text, offset, message)
    };
    let before = errors.len();

    let (allowed, unknown) = lint::allowed_rules(&body.directives.allow);
    for name in unknown {
        let offset = allow_directive_offset(&file.text, &name);
        errors.push(error_at(
            offset,
            format!(
                "unknown lint rule `{name}` in `-- preflight:allow(...)`: use a squawk rule name \
                 such as `require-concurrent-index-creation` or `ban-drop-column` (see \
                 https://squawkhq.com/docs/rules)"
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
    let decision = if errors.len() == before {
        match kind::decide(
            &file.text,
            analysis.statements.clone(),
            body.directives.no_transaction,
        ) {
            Ok(d) => Some(d),
            Err(problems) => {
                errors.extend(problems.into_iter().map(|p| error_at(p.offset, p.message)));
                None
            }
        }
    } else {
        None
    };
    let decision = decision?;

    if lint {
        // A wrapped file shows squawk its own `BEGIN`, so squawk must not assume another one.
        let in_transaction = decision.kind == Kind::Transactional && !decision.wrapped;
        warnings.extend(lint::lint(
            &analysis,
            &file.text,
            &file.display,
            in_transaction,
            &allowed,
        ));
    }
    if errors.len() != before {
        return None;
    }
    let statements = decision
        .statements
        .iter()
        .map(|s| span(s.range.clone()))
        .collect();
    Some(CheckedBody {
        file: file.clone(),
        statements,
        kind: decision.kind,
        timeouts: body.directives.timeouts,
    })
}

fn span(range: std::ops::Range<usize>) -> Span {
    // Spans are u32 (they live in the binary): a 4 GiB migration file is not realistic, and
    // saturating makes a later slice fail loudly instead of silently pointing elsewhere.
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Span::new(to_u32(range.start), to_u32(range.end))
}

/// Where the `-- preflight:allow(...)` naming `rule` is, for the error's caret.
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
