//! The migration set as the runtime sees it: what `embed!` puts in a `static`, and what the CLI
//! builds from a directory at run time through the same code.

use std::borrow::Cow;
use std::fmt;

use crate::timeout::Timeouts;
use crate::{Checksum, Version};

/// A byte range of one unit of a [`Body`]'s text, ending after its `;`: one SQL statement, or,
/// in a [`Kind::Script`] body, a whole explicit `BEGIN; ... COMMIT;` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
    /// Where a block's closing `COMMIT` starts (0: the span is one statement).
    commit: u32,
}

impl Span {
    /// A span; `start <= end`, both byte offsets on character boundaries of the body's text.
    pub const fn new(start: u32, end: u32) -> Span {
        Span {
            start,
            end,
            commit: 0,
        }
    }

    /// An explicit transaction block from its `BEGIN` (at `start`) to the end of its closing
    /// `COMMIT` (`end`), which starts at `commit`; `start < commit < end`.
    pub const fn block(start: u32, commit: u32, end: u32) -> Span {
        Span { start, end, commit }
    }

    /// The byte range.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// For a block, where its closing `COMMIT` starts.
    pub fn commit_at(&self) -> Option<usize> {
        (self.commit > self.start).then_some(self.commit as usize)
    }
}

/// Whether a migration body runs inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The default: the body and its history row commit together, or not at all.
    Transactional,
    /// Statements run one by one outside a transaction, progress recorded after each: marked
    /// with a directive, or made only of statements that cannot run in a transaction (such as
    /// `CREATE INDEX CONCURRENTLY`).
    NoTransaction,
    /// A file that manages its own transactions (several `BEGIN; ... COMMIT;` blocks, as
    /// golang-migrate and dbmate run a file as a script): it runs as written, outside Preflight's
    /// transaction, unit by unit, where a unit is a whole block (atomic, sent as one script,
    /// with the progress row updated inside it, before its `COMMIT`) or a statement between
    /// blocks. A failure rolls the open block back and records the units done, so a resumption
    /// starts at the failed unit, like a no-transaction migration.
    Script,
}

/// One direction (up or down) of a migration: the file's text and its statements, split at
/// compile time by a real SQL lexer so that the runtime never parses SQL.
#[derive(Debug, Clone)]
pub struct Body {
    text: Cow<'static, str>,
    statements: Cow<'static, [Span]>,
    kind: Kind,
    timeouts: Timeouts,
}

impl Body {
    /// A body over `text` (usually a whole file) with its statements.
    pub const fn new(text: &'static str, statements: &'static [Span], kind: Kind) -> Body {
        Body {
            text: Cow::Borrowed(text),
            statements: Cow::Borrowed(statements),
            kind,
            timeouts: Timeouts::NONE,
        }
    }

    /// A body built at run time (the CLI reads the directory when it starts).
    pub fn owned(text: String, statements: Vec<Span>, kind: Kind) -> Body {
        Body {
            text: Cow::Owned(text),
            statements: Cow::Owned(statements),
            kind,
            timeouts: Timeouts::NONE,
        }
    }

    /// The body with its own time limits (from `-- preflight:lock-timeout` /
    /// `-- preflight:statement-timeout`), which replace the runner's for this migration.
    pub const fn with_timeouts(mut self, timeouts: Timeouts) -> Body {
        self.timeouts = timeouts;
        self
    }

    /// The text of the file the body is in (for a goose file, the whole file, both sections).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the body runs inside a transaction.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The body's own time limits (its directives); `None` parts follow the runner.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The statements, each with its trailing `;` (if it had one), in order. In a
    /// [`Kind::Script`] body, a block is one item, from its `BEGIN` to its `COMMIT`.
    pub fn statements(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.statements.iter().map(|s| &self.text[s.range()])
    }

    /// Number of statements (zero for an empty or comment-only file: a no-op); blocks count
    /// as one.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// When item `index` is an explicit block: its text up to its closing `COMMIT` (the
    /// `BEGIN` and the statements), and the `COMMIT` itself.
    pub fn block(&self, index: usize) -> Option<(&str, &str)> {
        let span = self.statements.get(index)?;
        let commit = span.commit_at()?;
        Some((
            &self.text[span.start as usize..commit],
            &self.text[commit..span.end as usize],
        ))
    }

    /// All statements as one string (from the first statement's start to the last one's end,
    /// comments in between included), ready to be sent in one simple-query round trip; `None`
    /// for an empty body.
    pub fn script(&self) -> Option<&str> {
        let first = self.statements.first()?;
        let last = self.statements.last()?;
        Some(&self.text[first.start as usize..last.end as usize])
    }

    /// The 1-based line on which statement `index` starts, for error messages.
    pub fn line_of(&self, index: usize) -> Option<usize> {
        let span = self.statements.get(index)?;
        Some(self.text[..span.start as usize].matches('\n').count() + 1)
    }
}

/// One migration: version, name, the file it came from, up and optional down body, checksum,
/// the chain value after it, and the migrations of other sets it requires.
#[derive(Debug, Clone)]
pub struct Migration {
    version: Version,
    name: Cow<'static, str>,
    path: Cow<'static, str>,
    up: Body,
    down: Option<Body>,
    checksum: Checksum,
    chain: Checksum,
    requires: Cow<'static, [Requirement]>,
}

/// A migration of another set that a migration requires (`-- preflight:requires auth 3`):
/// [`compose`](crate::compose) orders it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    set: Cow<'static, str>,
    version: Version,
}

impl Requirement {
    /// Migration `version` of set `set`.
    pub fn new(set: impl Into<Cow<'static, str>>, version: impl Into<Version>) -> Requirement {
        Requirement {
            set: set.into(),
            version: version.into(),
        }
    }

    /// Used by the code `embed!` generates.
    #[doc(hidden)]
    pub const fn __embedded(set: &'static str, version: Version) -> Requirement {
        Requirement {
            set: Cow::Borrowed(set),
            version,
        }
    }

    /// The set.
    pub fn set(&self) -> &str {
        &self.set
    }

    /// The version in that set.
    pub fn version(&self) -> Version {
        self.version
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.set, self.version)
    }
}

impl Migration {
    /// Used by the code `embed!` generates; the checksum and chain are computed by the macro
    /// with this crate's [`Checksum`] code.
    #[doc(hidden)]
    pub const fn __embedded(
        version: Version,
        name: &'static str,
        path: &'static str,
        up: Body,
        down: Option<Body>,
        checksum: Checksum,
        chain: Checksum,
    ) -> Migration {
        Migration::__embedded_requiring(version, name, path, up, down, checksum, chain, &[])
    }

    /// [`Migration::__embedded`] with the migrations of other sets it requires.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn __embedded_requiring(
        version: Version,
        name: &'static str,
        path: &'static str,
        up: Body,
        down: Option<Body>,
        checksum: Checksum,
        chain: Checksum,
        requires: &'static [Requirement],
    ) -> Migration {
        Migration {
            version,
            name: Cow::Borrowed(name),
            path: Cow::Borrowed(path),
            up,
            down,
            checksum,
            chain,
            requires: Cow::Borrowed(requires),
        }
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The name (the part of the file name after the version).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The path of the up file, relative to the migration directory's parent as given to
    /// `embed!` (or to the CLI's `--dir`), for messages.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The up body.
    pub fn up(&self) -> &Body {
        &self.up
    }
    /// The down body, if the migration is reversible.
    pub fn down(&self) -> Option<&Body> {
        self.down.as_ref()
    }
    /// Whether the migration has a down body.
    pub fn is_reversible(&self) -> bool {
        self.down.is_some()
    }
    /// The checksum of the up file (see [`crate::checksum`]).
    pub fn checksum(&self) -> Checksum {
        self.checksum
    }
    /// The chain value after this migration (see [`crate::checksum`]).
    pub fn chain(&self) -> Checksum {
        self.chain
    }
    /// The migrations of other sets it requires (`-- preflight:requires`).
    pub fn requires(&self) -> &[Requirement] {
        &self.requires
    }
}

/// A migration set, ordered by version: what `preflight::embed!` produces.
///
/// ```
/// # use preflight_runtime::{Migrations, MigrationSpec, Kind};
/// let set = Migrations::from_specs(vec![
///     MigrationSpec::new(1, "create_users", "CREATE TABLE users (id int);"),
///     MigrationSpec::new(2, "add_email", "ALTER TABLE users ADD email text;"),
/// ])
/// .unwrap();
/// for m in set.iter() {
///     println!("{} {} {}", m.version(), m.name(), m.checksum());
/// }
/// assert_eq!(set.last().unwrap().version().to_string(), "2");
/// ```
#[derive(Debug, Clone)]
pub struct Migrations {
    list: Cow<'static, [Migration]>,
    set: Cow<'static, str>,
    dialect: &'static str,
    warnings: Warnings,
}

/// The lint warnings found when the set was checked: in the binary for an embedded set.
#[derive(Debug, Clone)]
enum Warnings {
    Embedded(&'static [&'static str]),
    Owned(Vec<String>),
}

/// The name of a set built at run time without one ([`Migrations::from_parts`],
/// [`Migrations::from_specs`]); `embed!` names its set after the embedding crate.
pub const DEFAULT_SET: &str = "default";

impl Migrations {
    /// Used by the code `embed!` generates; the list is sorted and chained by the macro.
    #[doc(hidden)]
    pub const fn __embedded(list: &'static [Migration]) -> Migrations {
        Migrations::__embedded_named(list, DEFAULT_SET, "postgres", &[])
    }

    /// Used by the code `embed!` generates: the list, the dialect it was checked in, and the
    /// lint warnings of that check (so that `preflight check` on the embedded set reports them).
    #[doc(hidden)]
    pub const fn __embedded_checked(
        list: &'static [Migration],
        dialect: &'static str,
        warnings: &'static [&'static str],
    ) -> Migrations {
        Migrations::__embedded_named(list, DEFAULT_SET, dialect, warnings)
    }

    /// Used by the code `embed!` generates: the list, the set's name (`set = "..."`, or the
    /// embedding crate's package name), the dialect it was checked in and the lint warnings of
    /// that check.
    #[doc(hidden)]
    pub const fn __embedded_named(
        list: &'static [Migration],
        set: &'static str,
        dialect: &'static str,
        warnings: &'static [&'static str],
    ) -> Migrations {
        Migrations {
            list: Cow::Borrowed(list),
            set: Cow::Borrowed(set),
            dialect,
            warnings: Warnings::Embedded(warnings),
        }
    }

    /// The same set, recording the dialect it was checked in and the check's lint warnings.
    pub fn with_checks(mut self, dialect: &'static str, warnings: Vec<String>) -> Migrations {
        self.dialect = dialect;
        self.warnings = Warnings::Owned(warnings);
        self
    }

    /// The SQL dialect the set was checked in when it was built (`postgres`, `sqlite`).
    pub fn dialect(&self) -> &str {
        self.dialect
    }

    /// The lint warnings found when the set was checked (by `embed!` while compiling, or by the
    /// CLI when it read the directory), each as displayed (`file:line:column: warning: ...`).
    pub fn warnings(&self) -> Vec<&str> {
        match &self.warnings {
            Warnings::Embedded(list) => list.to_vec(),
            Warnings::Owned(list) => list.iter().map(String::as_str).collect(),
        }
    }

    /// The set's name: what the history table's `set` column holds for its migrations.
    /// `embed!("migrations")` names it after the embedding crate's package
    /// (`CARGO_PKG_NAME`), `embed!("migrations", set = "auth")` explicitly; a set built at run
    /// time is [`DEFAULT_SET`] until [`Migrations::named`]. Versions compare within a set: `auth`
    /// 3 and `app` 3 are different migrations.
    pub fn set(&self) -> &str {
        &self.set
    }

    /// The same migrations as set `name`.
    ///
    /// ```
    /// # use preflight_runtime::{Migrations, MigrationSpec};
    /// let auth = Migrations::from_specs(vec![MigrationSpec::new(1, "users", "CREATE TABLE users (id int);")])
    ///     .unwrap()
    ///     .named("auth");
    /// assert_eq!(auth.set(), "auth");
    /// ```
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Migrations {
        self.set = name.into();
        self
    }

    /// Builds a set at run time from migrations whose statements are already split; sorts by
    /// version and computes the chain. Fails on a duplicate version.
    pub fn from_parts(mut parts: Vec<MigrationParts>) -> Result<Migrations, Version> {
        parts.sort_by_key(|p| p.version);
        if let Some(w) = parts.windows(2).find(|w| w[0].version == w[1].version) {
            return Err(w[0].version);
        }
        let mut chain = Checksum::ZERO;
        let list = parts
            .into_iter()
            .map(|p| {
                let checksum = Checksum::of(&p.checksum_text);
                chain = chain.chain(p.version, &checksum);
                Migration {
                    version: p.version,
                    name: Cow::Owned(p.name),
                    path: Cow::Owned(p.path),
                    up: p.up,
                    down: p.down,
                    checksum,
                    chain,
                    requires: Cow::Owned(p.requires),
                }
            })
            .collect::<Vec<_>>();
        Ok(Migrations {
            list: Cow::Owned(list),
            set: Cow::Borrowed(DEFAULT_SET),
            dialect: "postgres",
            warnings: Warnings::Owned(Vec::new()),
        })
    }

    /// A set of simple transactional migrations, one statement list per body split on nothing:
    /// each body is sent whole. Meant for tests and examples; real sets come from `embed!` or
    /// the CLI, whose statements are split by a SQL lexer.
    pub fn from_specs(specs: Vec<MigrationSpec>) -> Result<Migrations, Version> {
        Migrations::from_parts(specs.into_iter().map(MigrationSpec::into_parts).collect())
    }

    /// The migrations in version order.
    pub fn iter(&self) -> std::slice::Iter<'_, Migration> {
        self.list.iter()
    }

    /// The migrations as a slice, in version order.
    pub fn as_slice(&self) -> &[Migration] {
        &self.list
    }

    /// Number of migrations.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The migration with the highest version.
    pub fn last(&self) -> Option<&Migration> {
        self.list.last()
    }

    /// The migrations `keep` keeps, as a set of their own (their chain values unchanged).
    pub(crate) fn subset(&self, keep: impl Fn(&Migration) -> bool) -> Migrations {
        Migrations {
            list: Cow::Owned(self.list.iter().filter(|m| keep(m)).cloned().collect()),
            set: self.set.clone(),
            dialect: self.dialect,
            warnings: self.warnings.clone(),
        }
    }

    /// The migration with this version.
    pub fn get(&self, version: Version) -> Option<&Migration> {
        self.list
            .binary_search_by_key(&version, |m| m.version)
            .ok()
            .map(|i| &self.list[i])
    }
}

impl<'a> IntoIterator for &'a Migrations {
    type Item = &'a Migration;
    type IntoIter = std::slice::Iter<'a, Migration>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Everything needed to build a [`Migration`] at run time.
#[derive(Debug, Clone)]
pub struct MigrationParts {
    /// The version.
    pub version: Version,
    /// The name.
    pub name: String,
    /// The up file's path, for messages.
    pub path: String,
    /// The raw text of the up file, whose normalised form the checksum covers.
    pub checksum_text: String,
    /// The up body.
    pub up: Body,
    /// The down body.
    pub down: Option<Body>,
    /// The migrations of other sets it requires (`-- preflight:requires`).
    pub requires: Vec<Requirement>,
}

/// A transactional migration given as plain SQL sent whole (no statement splitting): for tests,
/// examples and programmatic sets. See [`Migrations::from_specs`].
#[derive(Debug, Clone)]
pub struct MigrationSpec {
    parts: MigrationParts,
}

impl MigrationSpec {
    /// A forward-only transactional migration.
    pub fn new(version: impl Into<Version>, name: &str, up: &str) -> MigrationSpec {
        let version = version.into();
        MigrationSpec {
            parts: MigrationParts {
                version,
                name: name.to_owned(),
                path: format!("{version}_{name}.sql"),
                checksum_text: up.to_owned(),
                up: whole_body(up, Kind::Transactional),
                down: None,
                requires: Vec::new(),
            },
        }
    }

    /// Requires migration `version` of set `set` (as `-- preflight:requires` does in a file).
    pub fn requires(mut self, set: &str, version: impl Into<Version>) -> MigrationSpec {
        self.parts
            .requires
            .push(Requirement::new(set.to_owned(), version));
        self
    }

    /// Adds a down body.
    pub fn down(mut self, down: &str) -> MigrationSpec {
        self.parts.down = Some(whole_body(down, Kind::Transactional));
        self
    }

    /// Makes the up body a no-transaction one whose statements are the given strings, run one
    /// by one.
    pub fn no_transaction(mut self, statements: &[&str]) -> MigrationSpec {
        let mut text = String::new();
        let mut spans = Vec::new();
        for s in statements {
            let start = text.len() as u32;
            text.push_str(s);
            spans.push(Span::new(start, text.len() as u32));
            text.push('\n');
        }
        self.parts.checksum_text = text.clone();
        self.parts.up = Body::owned(text, spans, Kind::NoTransaction);
        self
    }

    /// Gives the up body its own time limits, as the directives `-- preflight:lock-timeout`
    /// and `-- preflight:statement-timeout` do in a file.
    pub fn timeouts(mut self, timeouts: Timeouts) -> MigrationSpec {
        self.parts.up = self.parts.up.with_timeouts(timeouts);
        self
    }

    fn into_parts(self) -> MigrationParts {
        self.parts
    }
}

fn whole_body(sql: &str, kind: Kind) -> Body {
    let trimmed = sql.trim_end();
    let spans = if trimmed.trim().is_empty() {
        Vec::new()
    } else {
        vec![Span::new(0, trimmed.len() as u32)]
    };
    Body::owned(sql.to_owned(), spans, kind)
}

impl fmt::Display for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.version, self.name, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_chains() {
        let set = Migrations::from_specs(vec![
            MigrationSpec::new(10, "b", "select 2;"),
            MigrationSpec::new(2, "a", "select 1;"),
        ])
        .unwrap();
        let versions: Vec<_> = set.iter().map(|m| m.version().to_string()).collect();
        assert_eq!(versions, ["2", "10"]);
        let first = set.as_slice()[0].chain();
        assert_eq!(
            first,
            Checksum::ZERO.chain(Version::new(2), &Checksum::of("select 1;"))
        );
        assert_eq!(
            set.last().unwrap().chain(),
            first.chain(Version::new(10), &Checksum::of("select 2;"))
        );
        assert!(set.get(Version::new(10)).is_some());
        assert!(set.get(Version::new(3)).is_none());
    }

    #[test]
    fn refuses_duplicates() {
        let dup = Migrations::from_specs(vec![
            MigrationSpec::new(1, "a", "select 1;"),
            MigrationSpec::new(1, "b", "select 2;"),
        ]);
        assert_eq!(dup.unwrap_err(), Version::new(1));
    }

    #[test]
    fn blocks_split_at_their_commit() {
        let text = "BEGIN;\nselect 1;\nCOMMIT;\nselect 2;\n";
        static SPANS: [Span; 2] = [Span::block(0, 17, 24), Span::new(25, 34)];
        let body = Body::new(text, &SPANS, Kind::Script);
        assert_eq!(body.block(0), Some(("BEGIN;\nselect 1;\n", "COMMIT;")));
        assert_eq!(body.block(1), None);
        assert_eq!(body.statements().nth(1), Some("select 2;"));
        assert_eq!(Span::new(3, 4).commit_at(), None);
    }

    #[test]
    fn script_covers_first_to_last_statement() {
        static SPANS: [Span; 2] = [Span::new(15, 24), Span::new(25, 34)];
        let body = Body::new(
            "-- head\nBEGIN;\nselect 1;\nselect 2;\nCOMMIT;\n",
            &SPANS,
            Kind::Transactional,
        );
        assert_eq!(body.script(), Some("select 1;\nselect 2;"));
        assert_eq!(body.line_of(1), Some(4));
        assert_eq!(
            body.statements().collect::<Vec<_>>(),
            ["select 1;", "select 2;"]
        );
    }
}
