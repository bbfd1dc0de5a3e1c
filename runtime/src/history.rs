//! The history table: its layout (a documented contract, which every backend implements the
//! same way) and its row model, what a backend reads from the table and hands to the
//! [plan](crate::plan), whatever the database.
//!
//! # The table (layout version 2)
//!
//! One table, `preflight_history` by default, and its indexes: nothing else in the user's schema
//! (no function, trigger, sequence or side table), so that `pg_dump`, migra or Atlas show one
//! Preflight object. A row is a migration of a *set* (see [`Migrations::set`](crate::Migrations::set));
//! a few rows are Preflight's own (set `''`).
//!
//! | column | type (PostgreSQL) | meaning |
//! |---|---|---|
//! | `set` | `text` | the migration set; `''` for Preflight's own rows (below) |
//! | `version` | `text` | canonical version text (`42`, `1.2`), ordered in Rust by [`Version`], never as text; for Preflight's own rows, what the row is (`lease`) |
//! | `ord` | `text` | the version as a sort key ([`order_key`]): text order is version order; `''` for Preflight's own rows |
//! | `name` | `text` | the migration's name |
//! | `checksum` | `text` | hex SHA-256 of the up file (see [`crate::checksum`]) |
//! | `chain` | `text` | hex chain value of the set at this migration, written only when every earlier migration of the set was recorded applied at that moment (by the run that applied it, or a slow path that verified the set); `''` otherwise |
//! | `state` | `text` | `applied`, `in_progress`, `failed`, `reverting`, `revert_failed`; `lease` for the lease row |
//! | `statements_done` | `integer` | units completed of the body being run (the up body; the down body while reverting) |
//! | `statements_total` | `integer` | units in that body |
//! | `completed` | `text` | what the completed units were: [`unit_digest`] of each, in order (16 hex digits per unit) |
//! | `applied_at` | `timestamptz` | when the migration started (its transaction's start); the lease row: when it was taken |
//! | `execution_ms` | `bigint` | how long the body took |
//! | `applied_by` | `text` | application name/version, host and process that applied it; the lease row: its owner |
//! | `error` | `text` | the error of a `failed` or `revert_failed` row |
//! | `repaired` | `text` | what repairs did to the row, one line each (`mark-applied by ... at ...: ...`) |
//! | `expires_at` | `timestamptz` | the lease row only: when the lease expires |
//!
//! Primary key (`set`, `version`); index `<table>_ord` on (`set`, `ord`), which gives the newest
//! row of a set in one index probe; partial index `<table>_open` on (`set`) over the unfinished
//! rows (`state NOT IN ('applied', 'lease')`), which tells in one probe that there are none.
//! The table carries the comment `preflight-history v2`; the runner refuses a layout it does not
//! know. On SQLite the columns are the same with SQLite's types (`text`, `integer`; timestamps as
//! UTC text) and the marker is a comment inside the `CREATE TABLE` text kept in `sqlite_schema`.
//! Every statement quotes `set`, a keyword in SQL. A database without partial indexes (MySQL)
//! indexes (`set`, `state`) instead of `<table>_open`: `state NOT IN ('applied', 'lease')` is
//! then a range scan over the unfinished rows alone, as flat; key columns that must be bounded
//! there take a length (`varchar`).
//!
//! **A unit** is what a body that runs outside a transaction runs at a time: a statement, or a
//! whole explicit `BEGIN ... COMMIT` block of a file that manages its own transactions. After
//! each unit, `statements_done` and `completed` are written together (inside the block, for a
//! block), so that after a failure the runner knows which statements ran and what their text
//! was; a file fixed at or after the failed statement then resumes there.
//!
//! **Preflight's own rows** (set `''`): the lease of [`LockStrategy::Lease`](crate::LockStrategy)
//! (`version` `lease`, `state` `lease`, owner in `applied_by`, `expires_at`), present while a run
//! holds it. Readers skip set `''`.
//!
//! **The fast path** reads, in one query, the newest row of each set of the run (by `ord`) and
//! whether any of their rows is unfinished: current iff each set's newest row is its goal
//! migration, `applied`, with the compiled chain, and none is unfinished. That costs the same
//! with 10 or 10,000 migrations. A row deleted by hand below the newest is not seen there; the
//! slow path (`preflight status`, a run with a pending migration) and `repair` deal with it.
//!
//! **Repairs** are recorded in the rows they change (`repaired`); a revert or a forget deletes its
//! row and is reported by the operation (its [`Report`](crate::Report), the CLI's output, a
//! `tracing` warning).
//!
//! # Upgrading layout 1
//!
//! Layout 1 (`preflight-history v1`) had no `set`, `ord`, `completed`, `repaired` and
//! `expires_at` columns, its primary key was `version`, and it came with `<table>_count` (and,
//! on PostgreSQL, the function `<table>_counter` and three triggers; on SQLite three
//! `<table>_count_*` triggers), `<table>_log` and `<table>_lease`. The first slow path of a
//! binary that knows layout 2 upgrades it in place, under the migration lock, in one
//! transaction: the rows get the name of the set whose migrations they match best (the run's
//! only set, usually), the newest `<table>_log` entry of each remaining row goes into its
//! `repaired` column, and the side objects are dropped (on PostgreSQL the table is altered, so
//! grants and ownership stay; SQLite rebuilds it). A binary that knows only layout 1 refuses a
//! layout-2 table (see the README's upgrade notes).

use std::fmt;

use sha2::{Digest, Sha256};

use crate::{Checksum, Version};

/// The comment that marks the history table's layout.
pub const LAYOUT: &str = "preflight-history v2";

/// The comment of the previous layout, which the runner upgrades in place.
pub const LAYOUT_V1: &str = "preflight-history v1";

/// The `version` of the lease row.
#[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
pub(crate) const LEASE_ROW: &str = "lease";

/// The sort key stored in `ord`: text whose byte order (and any collation's order, since it is
/// made of digits only) is the order of [`Version`]. Each part of the canonical text is written
/// as its length in three digits followed by its digits (`1.12` is `0011` then `00212`:
/// `001100212`); a part longer than 999 digits is cut there (such versions still compare
/// exactly in Rust; only the fast path's "newest row" would not see them as newest).
///
/// ```
/// use preflight_runtime::history::order_key;
/// use preflight_runtime::Version;
/// let v = |s: &str| s.parse::<Version>().unwrap();
/// assert_eq!(order_key(v("42")), "00242");
/// assert!(order_key(v("1.2")) < order_key(v("1.11")));
/// assert!(order_key(v("9")) < order_key(v("10")));
/// assert!(order_key(v("1")) < order_key(v("1.0.1")));
/// ```
pub fn order_key(version: Version) -> String {
    let text = version.to_string();
    let mut key = String::with_capacity(text.len() + 8);
    for part in text.split('.') {
        let digits = &part[..part.len().min(999)];
        key.push_str(&format!("{:03}", digits.len()));
        key.push_str(digits);
    }
    key
}

/// What the `completed` column holds for one completed unit: the first 8 bytes of the SHA-256
/// of its text (normalised as checksums are, see [`crate::checksum::normalise`]), as 16 lowercase
/// hex digits. Enough to tell whether a statement changed; not a checksum of the file.
pub fn unit_digest(text: &str) -> String {
    let digest = Sha256::digest(crate::checksum::normalise(text).as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The `completed` text of the first `done` units of `units`.
pub(crate) fn completed_of<'a>(units: impl Iterator<Item = &'a str>, done: usize) -> String {
    units.take(done).map(unit_digest).collect()
}

/// The first of the `done` completed units whose text differs from what `completed` recorded
/// (0-based), or `None` when they are all as recorded. `Some(None)`: the row does not say what
/// its completed units were (written by a Preflight before layout 2).
pub(crate) fn first_changed_unit<'a>(
    units: impl Iterator<Item = &'a str>,
    done: u32,
    completed: &str,
) -> Option<Option<usize>> {
    let done = done as usize;
    if completed.len() != done * 16 {
        return Some(None);
    }
    let mut units = units;
    for i in 0..done {
        let recorded = completed.get(i * 16..(i + 1) * 16);
        match units.next() {
            Some(text) if recorded == Some(unit_digest(text).as_str()) => {}
            // Changed, or the file now has fewer units than were completed.
            _ => return Some(Some(i)),
        }
    }
    None
}

/// The state of a history row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Applied completely.
    Applied,
    /// Started and not finished: the process stopped while applying a migration that is not
    /// atomic (no-transaction, a file that manages its own transactions, or any migration on
    /// CockroachDB).
    InProgress,
    /// A unit of a non-atomic migration failed; `statements_done` tells how far it got.
    Failed,
    /// A non-atomic down body was being run and its process stopped: `statements_done` counts
    /// the down body's units.
    Reverting,
    /// A unit of a non-atomic down body failed; `statements_done` counts the down body's units
    /// completed.
    RevertFailed,
}

impl State {
    /// The text stored in the `state` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Applied => "applied",
            State::InProgress => "in_progress",
            State::Failed => "failed",
            State::Reverting => "reverting",
            State::RevertFailed => "revert_failed",
        }
    }

    /// Parses the `state` column.
    pub fn parse(text: &str) -> Option<State> {
        match text {
            "applied" => Some(State::Applied),
            "in_progress" => Some(State::InProgress),
            "failed" => Some(State::Failed),
            "reverting" => Some(State::Reverting),
            "revert_failed" => Some(State::RevertFailed),
            _ => None,
        }
    }

    /// Whether the row is a revert that did not finish.
    pub fn is_revert(&self) -> bool {
        matches!(self, State::Reverting | State::RevertFailed)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the history table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The migration set.
    pub set: String,
    /// The version.
    pub version: Version,
    /// The name recorded when it was applied.
    pub name: String,
    /// The recorded checksum, as text: kept as stored so that a malformed value is reported,
    /// not lost.
    pub checksum: String,
    /// The recorded chain value, as text (empty when not verified, see the table's contract).
    pub chain: String,
    /// The state.
    pub state: State,
    /// Units completed (of the down body while reverting).
    pub statements_done: u32,
    /// Units in the body being run.
    pub statements_total: u32,
    /// What the completed units were ([`unit_digest`] of each).
    pub completed: String,
    /// When it was applied, as the server's text.
    pub applied_at: String,
    /// How long the body took, in milliseconds.
    pub execution_ms: i64,
    /// Who applied it.
    pub applied_by: String,
    /// The error of a failed row.
    pub error: Option<String>,
    /// What repairs did to the row, one line each.
    pub repaired: Option<String>,
}

impl HistoryRow {
    /// Whether the recorded checksum equals `checksum`.
    pub fn checksum_is(&self, checksum: &Checksum) -> bool {
        self.checksum
            .parse::<Checksum>()
            .is_ok_and(|c| c == *checksum)
    }

    /// Whether the row is fully applied.
    pub fn is_applied(&self) -> bool {
        self.state == State::Applied
    }
}

/// A migration's key in the history table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
pub(crate) struct Key {
    pub set: String,
    pub version: Version,
}

impl Key {
    #[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
    pub fn new(set: &str, version: Version) -> Key {
        Key {
            set: set.to_owned(),
            version,
        }
    }
}

/// A row to record: what the runner writes when it applies or starts a migration.
#[derive(Debug, Clone)]
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
pub(crate) struct NewRow {
    pub key: Key,
    pub name: String,
    pub checksum: Checksum,
    /// `None`: recorded without every earlier migration of the set (`chain` is then `''`).
    pub chain: Option<Checksum>,
    pub statements_total: u32,
    pub applied_by: String,
    /// Whether `start_row` resumes an unfinished row (the plan saw it) rather than starting the
    /// migration afresh, in which case no row may exist: the row is the run's claim on it.
    pub resume: bool,
}

#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
impl NewRow {
    pub fn of(set: &str, m: &crate::Migration, applied_by: &str) -> NewRow {
        NewRow {
            key: Key::new(set, m.version()),
            name: m.name().to_owned(),
            checksum: m.checksum(),
            chain: Some(m.chain()),
            statements_total: u32::try_from(m.up().statement_count()).unwrap_or(u32::MAX),
            applied_by: applied_by.to_owned(),
            resume: false,
        }
    }

    /// The `chain` column's text.
    pub fn chain_text(&self) -> String {
        self.chain.map(|c| c.to_string()).unwrap_or_default()
    }

    /// The `ord` column's text.
    pub fn ord(&self) -> String {
        order_key(self.key.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_as_versions() {
        let mut versions: Vec<Version> = ["10", "9", "1.11", "1.2", "1", "1.0.1", "0", "100"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut by_key = versions.clone();
        versions.sort();
        by_key.sort_by_key(|v| order_key(*v));
        assert_eq!(versions, by_key);
        assert!(order_key(Version::new(0))
            .bytes()
            .all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn finds_the_first_changed_unit() {
        let old = [
            "CREATE TABLE a (id int);",
            "CREATE TABLE b (id int);",
            "oops;",
        ];
        let completed = completed_of(old.iter().copied(), 2);
        assert_eq!(completed.len(), 32);
        // The failed third statement fixed: the completed two are intact.
        let fixed = [
            "CREATE TABLE a (id int);",
            "CREATE TABLE b (id int);",
            "fixed;",
        ];
        assert_eq!(
            first_changed_unit(fixed.iter().copied(), 2, &completed),
            None
        );
        // CRLF does not count as a change.
        let crlf = ["CREATE TABLE a (id int);\r\n", "CREATE TABLE b (id int);"];
        assert_eq!(
            first_changed_unit(
                ["CREATE TABLE a (id int);\n"].iter().copied(),
                1,
                &completed_of(crlf.iter().copied(), 1)
            ),
            None
        );
        let edited = [
            "CREATE TABLE a (id int);",
            "CREATE TABLE bb (id int);",
            "x;",
        ];
        assert_eq!(
            first_changed_unit(edited.iter().copied(), 2, &completed),
            Some(Some(1))
        );
        let shorter = ["CREATE TABLE a (id int);"];
        assert_eq!(
            first_changed_unit(shorter.iter().copied(), 2, &completed),
            Some(Some(1))
        );
        assert_eq!(first_changed_unit(fixed.iter().copied(), 2, ""), Some(None));
        assert_eq!(first_changed_unit(fixed.iter().copied(), 0, ""), None);
    }
}
