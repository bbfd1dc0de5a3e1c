//! Reading a migration directory: layouts, file names, sections and directives. No SQL is
//! parsed here; the compile-time checker (crate `preflight-check`) does that on top.
//!
//! Rules, the same for `embed!` and the CLI:
//! * every `*.sql` file directly in the directory whose name starts like a migration (a digit,
//!   or `V` and a digit) must be a migration of the directory's one layout; a name that does not
//!   parse is an error, never skipped;
//! * a `.sql` file that does not start like a migration (`schema.sql`), a loose `.sql` file
//!   beside diesel's migration folders, and a backup of a `.sql` file (`1_a.sql~`,
//!   `1_a.sql.bak`) are not migrations to any tool: each is a warning naming it
//!   (rule `not-a-migration`), and is ignored;
//! * other files (README.md, .keep, goose's `*.go`, `metadata.toml`) and hidden entries are
//!   ignored;
//! * a sub-directory whose name starts with a digit is a diesel migration and must hold `up.sql`;
//! * under a declared naming pattern ([`NamePattern`]), every `.sql` file must match it;
//! * in pop's layout, the configured dialect's file wins over the generic one, other dialects'
//!   files are ignored ([`SourceOptions::dialect`]);
//! * every problem of the directory is reported at once.

mod diagnostic;
mod directive;
mod name;
mod pattern;
mod sections;

use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use diagnostic::{Diagnostic, Level, Position};
pub use directive::{Directives, NoTransaction, Requires, StatementAllow};
pub use name::Layout;
pub use pattern::{NamePattern, PatternMatch};

use crate::Version;
use name::{FileName, NameError};

/// The rule name of the warnings about files that are not migrations (allow it to silence them).
pub const NOT_A_MIGRATION: &str = "not-a-migration";

/// How to read a directory: an optional declared naming pattern, and the dialect whose files
/// win in pop's one-directory-for-every-dialect layout.
///
/// ```
/// use preflight_runtime::source::SourceOptions;
/// let options = SourceOptions::default()
///     .pattern("V{version}.{name}.{direction}.sql".parse().unwrap())
///     .dialect("sqlite");
/// assert_eq!(options.dialect_name(), "sqlite3");
/// ```
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pattern: Option<NamePattern>,
    dialect: &'static str,
    comments: Option<fn(&str) -> Vec<usize>>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            pattern: None,
            dialect: "postgres",
            comments: None,
        }
    }
}

impl SourceOptions {
    /// Reads file names with a declared pattern instead of the known layouts.
    pub fn pattern(mut self, pattern: NamePattern) -> Self {
        self.pattern = Some(pattern);
        self
    }

    /// The dialect whose files are taken in pop's layout (`postgres`, `sqlite`, `mysql`,
    /// `cockroach`, or one of pop's synonyms: `postgresql`, `sqlite3`, ...). Default `postgres`.
    /// An unknown name is kept as given (no pop file will have it, so generic files are taken).
    pub fn dialect(mut self, dialect: &'static str) -> Self {
        self.dialect = name::pop_dialect(dialect).unwrap_or(dialect);
        self
    }

    /// The dialect's canonical pop name.
    pub fn dialect_name(&self) -> &'static str {
        self.dialect
    }

    /// A SQL lexer's view of a file: the byte offsets where its `--` comments start, sorted.
    /// With it, `-- preflight:` lines inside strings or dollar-quoted bodies are not read as
    /// directives (this crate has no SQL lexer; the checker supplies one).
    pub fn comments(mut self, comment_starts: fn(&str) -> Vec<usize>) -> Self {
        self.comments = Some(comment_starts);
        self
    }

    /// The declared naming pattern, if any.
    pub fn declared_pattern(&self) -> Option<&NamePattern> {
        self.pattern.as_ref()
    }
}

/// The largest migration file read (16 MiB): a bigger one is refused with a clear error rather
/// than embedded into the binary and SQL-checked at compile time (a 50 MB file took minutes and
/// 800 MB of memory to check in a debug build).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A migration directory, read and validated (names, layout, sections), not yet SQL-checked.
#[derive(Debug, Clone)]
pub struct Source {
    /// The layout, `None` for a directory without migrations.
    pub layout: Option<Layout>,
    /// The migrations in version order.
    pub migrations: Vec<SourceMigration>,
    /// Files that are not migrations (rule [`NOT_A_MIGRATION`]), named, and ignored.
    pub warnings: Vec<Diagnostic>,
}

/// One migration as found on disk.
#[derive(Debug, Clone)]
pub struct SourceMigration {
    /// The version.
    pub version: Version,
    /// The name from the file name.
    pub name: String,
    /// The up body.
    pub up: SourceBody,
    /// The down body, when there is one.
    pub down: Option<SourceBody>,
}

/// A file as read: its path on disk, the path to show in messages, and its text.
#[derive(Debug)]
pub struct SourceFile {
    /// Where it is on disk.
    pub path: PathBuf,
    /// How messages name it (relative to what the user wrote).
    pub display: String,
    /// The raw text (a BOM and CRLFs included: byte offsets refer to this).
    pub text: String,
}

/// An up or down body: a range of a file (the whole file, or a goose section) and its directives.
#[derive(Debug, Clone)]
pub struct SourceBody {
    /// The file.
    pub file: Arc<SourceFile>,
    /// The body's byte range in the file.
    pub range: Range<usize>,
    /// The directives that apply to it.
    pub directives: Directives,
}

impl SourceBody {
    /// The body's text.
    pub fn sql(&self) -> &str {
        &self.file.text[self.range.clone()]
    }
}

/// Reads and validates the directory `dir`; `display` is how messages name it (usually the
/// path the user wrote, e.g. `migrations`).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("001_users.sql"), "CREATE TABLE users (id int);").unwrap();
/// std::fs::write(dir.path().join("README.md"), "ignored").unwrap();
/// let source = preflight_runtime::source::read_dir(dir.path(), "migrations").unwrap();
/// assert_eq!(source.migrations.len(), 1);
/// assert_eq!(source.migrations[0].up.file.display, "migrations/001_users.sql");
/// ```
pub fn read_dir(dir: &Path, display: &str) -> Result<Source, Vec<Diagnostic>> {
    let (source, errors) = scan_dir(dir, display, &SourceOptions::default());
    if errors.is_empty() {
        Ok(source)
    } else {
        Err(errors)
    }
}

/// Like [`read_dir`], but also returns what could be read when there are errors: the migrations
/// whose files were read and paired (for a duplicate version, the first file), so that a checker
/// can report the SQL errors of every file together with the directory's problems in one go.
/// The source is complete exactly when the error list is empty.
pub fn scan_dir(dir: &Path, display: &str, options: &SourceOptions) -> (Source, Vec<Diagnostic>) {
    let mut reader = Reader {
        display: display.trim_end_matches('/').to_owned(),
        options: options.clone(),
        errors: Vec::new(),
        warnings: Vec::new(),
        found: Vec::new(),
        go_migrations: Vec::new(),
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                "the migration directory does not exist: create it, or fix the path (it is relative to the crate's Cargo.toml for `embed!`, to the working directory for the CLI)".to_owned()
            } else {
                format!("cannot read the migration directory: {e}")
            };
            let empty = Source {
                layout: None,
                migrations: Vec::new(),
                warnings: Vec::new(),
            };
            return (empty, vec![Diagnostic::error(display, hint)]);
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.file_name()),
            Err(e) => reader.errors.push(Diagnostic::error(
                display,
                format!("cannot list the directory: {e}"),
            )),
        }
    }
    names.sort();
    for os_name in names {
        let path = dir.join(&os_name);
        let Some(file_name) = os_name.to_str() else {
            let shown = os_name.to_string_lossy();
            if shown.to_ascii_lowercase().ends_with(".sql") {
                reader.error(&shown, "the file name is not valid UTF-8: rename it");
            }
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        reader.entry(&path, file_name);
    }
    reader.finish()
}

/// A migration file (or diesel directory) found, before layout and pairing checks.
struct Found {
    layout: Layout,
    version: Version,
    name: String,
    direction: Direction,
    /// pop's dialect of the file (`None`: every dialect).
    dialect: Option<&'static str>,
    body: SourceBody,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    Up,
    Down,
}

struct Reader {
    display: String,
    options: SourceOptions,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    found: Vec<Found>,
    /// `{version}_{name}.go` files that register a migration with goose: goose's Go migrations,
    /// if the directory is goose's.
    go_migrations: Vec<String>,
}

impl Reader {
    fn shown(&self, file: &str) -> String {
        format!("{}/{file}", self.display)
    }

    fn error(&mut self, file: &str, message: impl Into<String>) {
        let path = self.shown(file);
        self.errors.push(Diagnostic::error(path, message));
    }

    fn directives(&self, text: &str) -> (Directives, Vec<directive::DirectiveError>) {
        let comments = self.options.comments.map(|lex| lex(text));
        directive::parse(text, comments.as_deref())
    }

    fn not_a_migration(&mut self, file: &str, why: &str) {
        let path = self.shown(file);
        self.warnings.push(Diagnostic::warning(
            path,
            format!("not a migration, ignored: {why}"),
            NOT_A_MIGRATION,
        ));
    }

    fn entry(&mut self, path: &Path, file_name: &str) {
        if path.is_dir() {
            if self.options.pattern.is_none() && name::looks_like_diesel_dir(file_name) {
                self.diesel(path, file_name);
            }
            return;
        }
        let lower = file_name.to_ascii_lowercase();
        if !lower.ends_with(".sql") {
            if lower.contains(".sql") {
                self.not_a_migration(
                    file_name,
                    "a copy or backup of a `.sql` file (only `*.sql` files are migrations); \
                     delete it, or rename it to `.sql` if it is one",
                );
            } else if lower.ends_with(".go")
                && lower.starts_with(|c: char| c.is_ascii_digit())
                && registers_a_goose_migration(path)
            {
                self.go_migrations.push(file_name.to_owned());
            } else if lower.ends_with(".fizz") && lower.starts_with(|c: char| c.is_ascii_digit()) {
                self.error(
                    file_name,
                    "a pop fizz migration: fizz is pop's own language, not SQL, and Preflight \
                     runs SQL only; write it as `.up.sql` / `.down.sql` files (`soda` prints \
                     the SQL a fizz file generates)",
                );
            }
            return;
        }
        let found =
            match &self.options.pattern {
                Some(pattern) => match pattern.matches(file_name) {
                    Some(m) => match m.up {
                        Some(true) => FileName::Up(m.version, m.name),
                        Some(false) => FileName::Down(m.version, m.name),
                        None => FileName::Plain(m.version, m.name),
                    },
                    None => {
                        let message = format!(
                        "does not match the declared naming pattern `{pattern}`: rename it, or \
                         move it out of the directory"
                    );
                        return self.error(file_name, message);
                    }
                },
                None => match name::parse_file_name(file_name) {
                    Ok(parsed) => parsed,
                    Err(NameError::NotAMigration) => return self.not_a_migration(
                        file_name,
                        "its name does not start with a version, so no migration tool runs it; \
                         to make it one, name it `{version}_{name}.sql` (or as the directory's \
                         other files)",
                    ),
                    Err(NameError::Misnamed(why)) => {
                        return self.error(file_name, format!("not a migration name: {why}"))
                    }
                },
            };
        let declared = self.options.pattern.is_some();
        let Some(file) = self.read(path, self.shown(file_name)) else {
            return;
        };
        let (mut directives, problems) = self.directives(&file.text);
        for p in problems {
            self.errors.push(Diagnostic::error_at(
                &file.display,
                &file.text,
                p.at.start,
                p.message,
            ));
        }
        let whole = 0..file.text.len();
        let mut dialect = None;
        let (layout, version, name, direction) = match found {
            FileName::Up(v, n) => (Layout::UpDown, v, n, Direction::Up),
            FileName::Down(v, n) => (Layout::UpDown, v, n, Direction::Down),
            FileName::Flyway(v, n) => (Layout::Flyway, v, n, Direction::Up),
            FileName::Plain(v, n) if sections::marker(&file.text).is_some() => {
                return self.sections(file, directives, declared, v, n);
            }
            FileName::Plain(v, n) => (Layout::Simple, v, n, Direction::Up),
            FileName::Pop(p) => {
                dialect = p.dialect;
                if p.autocommit {
                    directives.no_transaction = Some(NoTransaction::Pop);
                }
                let direction = if p.up { Direction::Up } else { Direction::Down };
                (Layout::Pop, p.version, p.name, direction)
            }
        };
        if direction == Direction::Down {
            self.no_requirements_in_down(&file, &directives);
        }
        self.found.push(Found {
            layout: if declared { Layout::Declared } else { layout },
            version,
            name,
            direction,
            dialect,
            body: SourceBody {
                file,
                range: whole,
                directives,
            },
        });
    }

    /// A requirement belongs to the up file: a down file's is an error, not ignored.
    fn no_requirements_in_down(&mut self, file: &SourceFile, directives: &Directives) {
        for r in &directives.requires {
            self.errors.push(Diagnostic::error_at(
                &file.display,
                &file.text,
                r.at.start,
                "`-- preflight:requires` belongs in the up migration (the order of down \
                 migrations follows it): move it to the up file",
            ));
        }
    }

    /// A file with up and down sections (goose, sql-migrate, dbmate).
    fn sections(
        &mut self,
        file: Arc<SourceFile>,
        mut directives: Directives,
        declared: bool,
        v: Version,
        n: String,
    ) {
        let Some(marker) = sections::marker(&file.text) else {
            return;
        };
        let layout = match marker {
            _ if declared => Layout::Declared,
            sections::Marker::Goose => Layout::Goose,
            sections::Marker::SqlMigrate => Layout::SqlMigrate,
            sections::Marker::Dbmate => Layout::Dbmate,
        };
        let sections = match sections::parse(&file.text, marker) {
            Ok(s) => s,
            Err((at, message)) => {
                self.errors.push(Diagnostic::error_at(
                    &file.display,
                    &file.text,
                    at.start,
                    message,
                ));
                return;
            }
        };
        if sections.no_transaction {
            directives.no_transaction = Some(match marker {
                sections::Marker::Goose => NoTransaction::Goose,
                sections::Marker::SqlMigrate => NoTransaction::SqlMigrate,
                sections::Marker::Dbmate => NoTransaction::Dbmate,
            });
        }
        if let Some(down) = sections.down {
            // One file: its requirements are the up section's.
            let down_directives = Directives {
                requires: Vec::new(),
                ..directives.clone()
            };
            self.found.push(Found {
                layout,
                version: v,
                name: n.clone(),
                direction: Direction::Down,
                dialect: None,
                body: SourceBody {
                    file: file.clone(),
                    range: down,
                    directives: down_directives,
                },
            });
        }
        self.found.push(Found {
            layout,
            version: v,
            name: n,
            direction: Direction::Up,
            dialect: None,
            body: SourceBody {
                file,
                range: sections.up,
                directives,
            },
        });
    }

    fn diesel(&mut self, dir: &Path, dir_name: &str) {
        let (version, name) = match name::parse_diesel_dir(dir_name) {
            Ok(parsed) => parsed,
            Err(NameError::Misnamed(why)) => {
                return self.error(dir_name, format!("not a diesel migration directory: {why}"))
            }
            Err(NameError::NotAMigration) => return,
        };
        let mut run_in_transaction = true;
        let metadata = dir.join("metadata.toml");
        if metadata.is_file() {
            let shown = self.shown(&format!("{dir_name}/metadata.toml"));
            if let Some(file) = self.read(&metadata, shown.clone()) {
                match directive::parse_diesel_metadata(&file.text) {
                    Ok(v) => run_in_transaction = v,
                    Err(e) => self.errors.push(Diagnostic::error(shown, e)),
                }
            }
        }
        let up = dir.join("up.sql");
        if !up.is_file() {
            return self.error(
                dir_name,
                "a diesel migration directory needs an `up.sql`: add it, or remove the directory",
            );
        }
        for (file_name, direction) in [("up.sql", Direction::Up), ("down.sql", Direction::Down)] {
            let path = dir.join(file_name);
            if !path.is_file() {
                continue;
            }
            let Some(file) = self.read(&path, self.shown(&format!("{dir_name}/{file_name}")))
            else {
                continue;
            };
            let (mut directives, problems) = self.directives(&file.text);
            for p in problems {
                self.errors.push(Diagnostic::error_at(
                    &file.display,
                    &file.text,
                    p.at.start,
                    p.message,
                ));
            }
            if !run_in_transaction {
                directives.no_transaction = Some(NoTransaction::Diesel);
            }
            if direction == Direction::Down {
                self.no_requirements_in_down(&file, &directives);
            }
            self.found.push(Found {
                layout: Layout::Diesel,
                version,
                name: name.clone(),
                direction,
                dialect: None,
                body: SourceBody {
                    range: 0..file.text.len(),
                    file,
                    directives,
                },
            });
        }
    }

    fn read(&mut self, path: &Path, display: String) -> Option<Arc<SourceFile>> {
        if let Ok(meta) = fs::metadata(path) {
            if meta.len() > MAX_FILE_BYTES {
                self.errors.push(Diagnostic::error(
                    display,
                    format!(
                        "the file is {:.1} MiB, above the {} MiB a migration may have (it is \
                         embedded into the binary and checked while compiling); split it, or load \
                         bulk data with COPY from the application",
                        meta.len() as f64 / (1024.0 * 1024.0),
                        MAX_FILE_BYTES / (1024 * 1024)
                    ),
                ));
                return None;
            }
        }
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                self.errors.push(Diagnostic::error(
                    display,
                    format!("cannot read the file: {e}"),
                ));
                return None;
            }
        };
        match String::from_utf8(bytes) {
            Ok(text) => Some(Arc::new(SourceFile {
                path: path.to_owned(),
                display,
                text,
            })),
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
                self.errors.push(Diagnostic::error_at(
                    display,
                    &prefix,
                    valid,
                    format!(
                        "the file is not valid UTF-8 (byte {valid} is 0x{:02x}): convert it to UTF-8",
                        bytes[valid]
                    ),
                ));
                None
            }
        }
    }

    fn finish(mut self) -> (Source, Vec<Diagnostic>) {
        self.set_aside_loose_files_beside_diesel();
        self.choose_pop_dialect();
        let layout = self.check_one_layout();
        if layout == Some(Layout::Goose) {
            for file in std::mem::take(&mut self.go_migrations) {
                self.error(
                    &file,
                    "a goose Go migration: goose runs it from the application's Go code, and \
                     Preflight runs SQL only, so applying this directory without it would build \
                     another schema; write it as a `.sql` migration, or keep this directory on \
                     goose",
                );
            }
        }
        let mut by_version: BTreeMap<Version, (Option<Found>, Option<Found>)> = BTreeMap::new();
        for f in std::mem::take(&mut self.found) {
            let slot = by_version.entry(f.version).or_default();
            let place = match f.direction {
                Direction::Up => &mut slot.0,
                Direction::Down => &mut slot.1,
            };
            if let Some(existing) = place {
                let message = format!(
                    "duplicate version {}: `{}` and `{}` both have it; give one of them a new version",
                    f.version, existing.body.file.display, f.body.file.display
                );
                self.errors
                    .push(Diagnostic::error(f.body.file.display.clone(), message));
                continue;
            }
            *place = Some(f);
        }
        let mut migrations = Vec::new();
        for (version, (up, down)) in by_version {
            match (up, down) {
                (Some(up), down) => {
                    if let Some(d) = &down {
                        if d.name != up.name {
                            self.errors.push(Diagnostic::error(
                                d.body.file.display.clone(),
                                format!(
                                    "the down file's name `{}` differs from its up file's `{}` (version {version}): rename one",
                                    d.name, up.name
                                ),
                            ));
                        }
                    }
                    migrations.push(SourceMigration {
                        version,
                        name: up.name,
                        up: up.body,
                        down: down.map(|d| d.body),
                    });
                }
                (None, Some(down)) => self.errors.push(Diagnostic::error(
                    down.body.file.display.clone(),
                    format!(
                        "a down migration without an up migration (version {version}): add the `.up.sql` file, or remove this one"
                    ),
                )),
                (None, None) => {}
            }
        }
        self.warnings.sort_by(|a, b| a.path.cmp(&b.path));
        let source = Source {
            layout,
            migrations,
            warnings: self.warnings,
        };
        (source, self.errors)
    }

    /// diesel reads only its migration folders: a `.sql` file beside them is not a migration
    /// to diesel (a schema dump, seed data), so it is named and ignored, not refused.
    fn set_aside_loose_files_beside_diesel(&mut self) {
        if !self.found.iter().any(|f| f.layout == Layout::Diesel) {
            return;
        }
        let (diesel, loose): (Vec<Found>, Vec<Found>) = std::mem::take(&mut self.found)
            .into_iter()
            .partition(|f| f.layout == Layout::Diesel);
        self.found = diesel;
        let mut shown: Vec<String> = loose.iter().map(|f| f.body.file.display.clone()).collect();
        shown.dedup();
        for path in shown {
            self.warnings.push(Diagnostic::warning(
                path,
                "not a migration, ignored: diesel reads only the migration folders \
                 (`{version}_{name}/up.sql`), not `.sql` files beside them; move it into a \
                 folder if it is one",
                NOT_A_MIGRATION,
            ));
        }
    }

    /// In pop's layout, each version and direction takes the configured dialect's file when
    /// there is one, and the generic file otherwise; other dialects' files are not for this
    /// database. (golang-migrate's `.up.sql` files are pop's generic ones.)
    fn choose_pop_dialect(&mut self) {
        if !self.found.iter().any(|f| f.layout == Layout::Pop) {
            return;
        }
        let target = self.options.dialect;
        let specific: std::collections::BTreeSet<(Version, Direction)> = self
            .found
            .iter()
            .filter(|f| f.dialect == Some(target))
            .map(|f| (f.version, f.direction))
            .collect();
        self.found.retain_mut(|f| {
            if f.layout == Layout::UpDown {
                f.layout = Layout::Pop;
            }
            if f.layout != Layout::Pop {
                return true;
            }
            match f.dialect {
                Some(d) => d == target,
                None => !specific.contains(&(f.version, f.direction)),
            }
        });
    }

    /// All files must share one layout; a directory of sectioned files (goose, sql-migrate,
    /// dbmate) must not have plain files.
    fn check_one_layout(&mut self) -> Option<Layout> {
        let mut layouts: BTreeMap<Layout, Vec<&str>> = BTreeMap::new();
        for f in &self.found {
            layouts
                .entry(f.layout)
                .or_default()
                .push(&f.body.file.display);
        }
        if layouts.len() <= 1 {
            return layouts.into_keys().next();
        }
        let sectioned = [
            (Layout::Goose, "goose", "-- +goose Up"),
            (Layout::SqlMigrate, "sql-migrate", "-- +migrate Up"),
            (Layout::Dbmate, "dbmate", "-- migrate:up"),
        ];
        for (layout, tool, up) in sectioned {
            if layouts.keys().eq([Layout::Simple, layout].iter()) {
                let plain: Vec<String> = layouts[&Layout::Simple]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                for p in plain {
                    self.errors.push(Diagnostic::error(
                        p,
                        format!(
                            "this {tool} directory's file has no `{up}` annotation: add it at \
                             the top (without it, {tool} would not run the file either)"
                        ),
                    ));
                }
                return Some(layout);
            }
        }
        let summary: Vec<String> = layouts
            .iter()
            .map(|(l, files)| {
                format!(
                    "{} ({} file(s), e.g. `{}`)",
                    l.describe(),
                    files.len(),
                    files[0]
                )
            })
            .collect();
        let message = format!(
            "the directory mixes layouts: {}; a directory uses one layout, rename the files to one of them",
            summary.join("; ")
        );
        self.errors
            .push(Diagnostic::error(self.display.clone(), message));
        None
    }
}

/// Whether a Go file registers a migration with goose (`goose.AddMigration...`,
/// `goose.AddNamedMigration...`): goose takes its version from the file's name. Other Go files
/// of a goose directory (an `embed.go`, a helper) are not migrations.
fn registers_a_goose_migration(path: &Path) -> bool {
    fs::read_to_string(path)
        .is_ok_and(|code| code.contains("AddMigration") || code.contains("AddNamedMigration"))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
