//! The history table's row model: what a backend reads from the table and hands to the
//! [plan](crate::plan), whatever the database.
//!
//! # The table (a documented contract, layout version 1)
//!
//! | column | type (PostgreSQL) | meaning |
//! |---|---|---|
//! | `version` | `text` primary key | canonical version text (`42`, `1.2`); ordered in Rust by [`Version`], never as text |
//! | `name` | `text` | the migration's name |
//! | `checksum` | `text` | hex SHA-256 of the up file (see [`crate::checksum`]) |
//! | `chain` | `text` | hex chain value of the migration set that applied (or last verified) this row |
//! | `state` | `text` | `applied`, `in_progress` or `failed` |
//! | `statements_done` | `integer` | statements completed (no-transaction migrations record progress) |
//! | `statements_total` | `integer` | statements in the migration |
//! | `applied_at` | `timestamptz` | when the migration started (its transaction's start) |
//! | `execution_ms` | `bigint` | how long the body took |
//! | `applied_by` | `text` | application name/version, host and process that applied it |
//! | `error` | `text` | the error of a `failed` row |
//!
//! The table carries the comment `preflight-history v1`; a later layout changes the number and
//! the runner refuses a layout it does not know. On SQLite the columns are the same with SQLite's
//! types (`text`, `integer`; `applied_at` as UTC text), and the marker is a comment inside the
//! `CREATE TABLE` text kept in `sqlite_schema` (SQLite has no table comments). Next to it, `<table>_log` records repairs,
//! reverts and resumes (`at`, `action`, `version`, `detail`, `by`), and `<table>_lease` holds
//! the lease when the lease lock strategy is used.
//!
//! # The row count
//!
//! `<table>_count` holds one row (`id` 1): `total` rows in the history and how many of them are
//! `unfinished` (not `applied`), kept by triggers on the history table (PostgreSQL: a PL/pgSQL
//! function `<table>_counter` fired after each insert and delete, each update that changes
//! `state`, and `TRUNCATE`; SQLite: three `<table>_count_*` triggers). The fast path reads it
//! with the goal row in one query, by primary key, so a no-op boot costs the same with 10 or
//! 10,000 migrations; without it, the query would count the whole table on every boot.
//!
//! It is an addition to layout v1, not a new layout: a binary that does not know it still reads
//! and writes the history, and its writes fire the triggers too, so old and new binaries can run
//! side by side in a rolling deploy. The slow path installs it (under the lock, with the
//! history table locked against writers while the rows are first counted) when it is missing,
//! and recounts it when it has drifted (rows written with triggers disabled,
//! `session_replication_role = replica`); until it exists, a boot counts the rows and then
//! takes the slow path once to install it. Where no trigger can keep it (CockroachDB; a role
//! without the privilege to create one, which is warned about) it holds `-1`, and the fast
//! path's single query counts the rows itself.
//!
//! One row kept by every writer means that transactions writing the history serialise on it;
//! the runner writes the history only under its lock, where they are serialised anyway.

use std::fmt;

use crate::{Checksum, Version};

/// The comment that marks the history table's layout.
pub const LAYOUT: &str = "preflight-history v1";

/// The state of a history row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Applied completely.
    Applied,
    /// Started and not finished: the process stopped while applying a migration that is not
    /// atomic (no-transaction, or any migration on CockroachDB).
    InProgress,
    /// A statement of a non-atomic migration failed; `statements_done` tells how far it got.
    Failed,
}

impl State {
    /// The text stored in the `state` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Applied => "applied",
            State::InProgress => "in_progress",
            State::Failed => "failed",
        }
    }

    /// Parses the `state` column.
    pub fn parse(text: &str) -> Option<State> {
        match text {
            "applied" => Some(State::Applied),
            "in_progress" => Some(State::InProgress),
            "failed" => Some(State::Failed),
            _ => None,
        }
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
    /// The version.
    pub version: Version,
    /// The name recorded when it was applied.
    pub name: String,
    /// The recorded checksum, as text: kept as stored so that a malformed value is reported,
    /// not lost.
    pub checksum: String,
    /// The recorded chain value, as text.
    pub chain: String,
    /// The state.
    pub state: State,
    /// Statements completed.
    pub statements_done: u32,
    /// Statements in the migration.
    pub statements_total: u32,
    /// When it was applied, as the server's text.
    pub applied_at: String,
    /// How long the body took, in milliseconds.
    pub execution_ms: i64,
    /// Who applied it.
    pub applied_by: String,
    /// The error of a failed row.
    pub error: Option<String>,
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

/// A row to record: what the runner writes when it applies or starts a migration.
#[derive(Debug, Clone)]
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
pub(crate) struct NewRow {
    pub version: Version,
    pub name: String,
    pub checksum: Checksum,
    pub chain: Checksum,
    pub statements_total: u32,
    pub applied_by: String,
    /// Whether `start_row` resumes an unfinished row (the plan saw it) rather than starting the
    /// migration afresh, in which case no row may exist: the row is the run's claim on it.
    pub resume: bool,
}

impl NewRow {
    pub fn of(m: &crate::Migration, applied_by: &str) -> NewRow {
        NewRow {
            version: m.version(),
            name: m.name().to_owned(),
            checksum: m.checksum(),
            chain: m.chain(),
            statements_total: u32::try_from(m.up().statement_count()).unwrap_or(u32::MAX),
            applied_by: applied_by.to_owned(),
            resume: false,
        }
    }
}
