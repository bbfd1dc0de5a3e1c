//! Reading a migration directory: layouts, file names, sections and directives. No SQL is
//! parsed here; the compile-time checker (crate `preflight-check`) does that on top.
//!
//! Rules, the same for `embed!` and the CLI:
//! * every `*.sql` file directly in the directory must be a migration of the directory's one
//!   layout; a file that does not parse is an error, never skipped;
//! * files that are not `.sql` (README.md, .keep, goose's `*.go`) and hidden entries are ignored;
//! * a sub-directory whose name starts with a digit is a diesel migration and must hold `up.sql`;
//! * every problem of the directory is reported at once.

mod diagnostic;
mod directive;
mod goose;
mod name;

use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use diagnostic::{Diagnostic, Level, Position};
pub use directive::{Directives, NoTransaction, Requires};
pub use name::Layout;

use crate::Version;
use name::FileName;

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
    let (source, errors) = scan_dir(dir, display);
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
pub fn scan_dir(dir: &Path, display: &str) -> (Source, Vec<Diagnostic>) {
    let mut reader = Reader {
        display: display.trim_end_matches('/').to_owned(),
        errors: Vec::new(),
        found: Vec::new(),
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
    body: SourceBody,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

struct Reader {
    display: String,
    errors: Vec<Diagnostic>,
    found: Vec<Found>,
}

impl Reader {
    fn shown(&self, file: &str) -> String {
        format!("{}/{file}", self.display)
    }

    fn error(&mut self, file: &str, message: impl Into<String>) {
        let path = self.shown(file);
        self.errors.push(Diagnostic::error(path, message));
    }

    fn entry(&mut self, path: &Path, file_name: &str) {
        if path.is_dir() {
            if name::looks_like_diesel_dir(file_name) {
                self.diesel(path, file_name);
            }
            return;
        }
        let lower = file_name.to_ascii_lowercase();
        if !lower.ends_with(".sql") {
            return;
        }
        let parsed = match name::parse_file_name(file_name) {
            Ok(parsed) => parsed,
            Err(e) => return self.error(file_name, format!("not a migration name: {}", e.0)),
        };
        let Some(file) = self.read(path, self.shown(file_name)) else {
            return;
        };
        let (directives, problems) = directive::parse(&file.text);
        for p in problems {
            self.errors.push(Diagnostic::error_at(
                &file.display,
                &file.text,
                p.at.start,
                p.message,
            ));
        }
        let whole = 0..file.text.len();
        let (layout, version, name, direction) = match parsed {
            FileName::Up(v, n) => (Layout::UpDown, v, n, Direction::Up),
            FileName::Down(v, n) => (Layout::UpDown, v, n, Direction::Down),
            FileName::Flyway(v, n) => (Layout::Flyway, v, n, Direction::Up),
            FileName::Plain(v, n) if goose::is_goose(&file.text) => {
                return self.goose(file, directives, v, n);
            }
            FileName::Plain(v, n) => (Layout::Simple, v, n, Direction::Up),
        };
        if direction == Direction::Down {
            self.no_requirements_in_down(&file, &directives);
        }
        self.found.push(Found {
            layout,
            version,
            name,
            direction,
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

    fn goose(&mut self, file: Arc<SourceFile>, mut directives: Directives, v: Version, n: String) {
        let sections = match goose::parse(&file.text) {
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
            directives.no_transaction = Some(NoTransaction::Goose);
        }
        if let Some(down) = sections.down {
            // One file: its requirements are the up section's.
            let down_directives = Directives {
                requires: Vec::new(),
                ..directives.clone()
            };
            self.found.push(Found {
                layout: Layout::Goose,
                version: v,
                name: n.clone(),
                direction: Direction::Down,
                body: SourceBody {
                    file: file.clone(),
                    range: down,
                    directives: down_directives,
                },
            });
        }
        self.found.push(Found {
            layout: Layout::Goose,
            version: v,
            name: n,
            direction: Direction::Up,
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
            Err(e) => {
                return self.error(
                    dir_name,
                    format!("not a diesel migration directory: {}", e.0),
                )
            }
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
            let (mut directives, problems) = directive::parse(&file.text);
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
        let layout = self.check_one_layout();
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
        (Source { layout, migrations }, self.errors)
    }

    /// All files must share one layout; a goose directory must not have plain files.
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
        if layouts.keys().eq([Layout::Simple, Layout::Goose].iter()) {
            let plain: Vec<String> = layouts[&Layout::Simple]
                .iter()
                .map(|s| s.to_string())
                .collect();
            for p in plain {
                self.errors.push(Diagnostic::error(
                    p,
                    "this goose directory's file has no `-- +goose Up` annotation: add it at the top",
                ));
            }
            return Some(Layout::Goose);
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
