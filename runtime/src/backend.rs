//! What a database backend provides, so that the runner (fast check, lock, plan, apply,
//! record, unlock) is written once for sync and async drivers and for every database: six
//! small traits, one per concern, that [`Backend`] gathers. A backend implements each in a file
//! of its own (`postgres/lock.rs`, `sqlite/lock.rs`, ...). Methods are `async`: the async
//! PostgreSQL driver awaits; the blocking drivers make blocking calls inside them and are driven
//! by `futures_executor::block_on` (see `connection`).

use std::time::Duration;

use crate::adopt::{ForeignHistory, ForeignTable};
use crate::blocked::Blocker;
use crate::drift::Catalog;
use crate::error::{DbError, Error};
use crate::history::{HistoryRow, Key, NewRow, State};
use crate::lock::Holder;
use crate::plan::SchemaObject;
use crate::timeout::Timeouts;
use crate::Checksum;

/// What the fast-path query found: the newest row of each set asked about (by `ord`, see
/// [`crate::history`]), in the order asked, and whether any row of those sets is unfinished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fast {
    pub newest: Vec<Option<Newest>>,
    pub unfinished: bool,
}

/// The newest history row of a set, as the fast path reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Newest {
    pub version: String,
    pub chain: String,
    pub state: String,
}

/// The history table's layout, as the slow path finds it under the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Layout 2 (created now if it was missing).
    Current,
    /// Layout 1, to upgrade: its rows' versions and checksums, from which the runner chooses
    /// the set they belong to.
    V1 { rows: Vec<(String, String)> },
}

/// Which server the connection reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Product {
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
    Postgres,
    CockroachDb,
    #[cfg(feature = "sqlite")]
    Sqlite,
}

/// What the slow path learns about the connection first.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub database: String,
    /// The history table's schema: the configured one, or the current schema.
    pub schema: String,
    pub product: Product,
    /// The `application_name` before the runner set its own, to restore.
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
    pub previous_application_name: String,
    pub backend_pid: i64,
}

/// What a transaction records next to a body.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    /// Insert an `applied` row (the migration was applied in this transaction).
    Insert(NewRow),
    /// Insert or overwrite the row as `applied` (repair: mark applied).
    Upsert(NewRow),
    /// Delete the row (revert, repair: forget).
    Delete(Key),
    /// Set the checksum and chain of an applied row (repair: accept a new checksum).
    SetChecksum {
        key: Key,
        checksum: Checksum,
        chain: Option<Checksum>,
    },
    /// Set only the chain (after a slow path verified the whole set; `None`: no longer
    /// verified, see [`crate::history`]).
    SetChain { key: Key, chain: Option<Checksum> },
}

impl Record {
    /// The row the record writes.
    pub fn key(&self) -> &Key {
        match self {
            Record::Insert(row) | Record::Upsert(row) => &row.key,
            Record::Delete(key)
            | Record::SetChecksum { key, .. }
            | Record::SetChain { key, .. } => key,
        }
    }
}

/// One migration (or repair) inside a transaction.
#[derive(Debug, Clone)]
pub(crate) struct TxItem<'a> {
    /// The script to run (all statements in one string), if any.
    pub body: Option<&'a str>,
    pub record: Record,
    /// A line appended to the row's `repaired` column (after the record; `by ... at <now>` is
    /// added by the backend's clock): what a repair did.
    pub note: Option<String>,
    /// The limits its body runs under (`None` parts: the server's own settings).
    pub timeouts: Timeouts,
}

/// Why a transaction did not commit.
#[derive(Debug)]
pub(crate) enum TxFailure {
    /// Item `index`'s body failed; the transaction was rolled back.
    Body { index: usize, error: DbError },
    /// Something else failed (the record, the commit, the connection); rolled back.
    Other(Error),
}

impl TxFailure {
    /// The error of a transaction without a migration body (a repair, an adoption), whose
    /// failure names no migration.
    pub fn bookkeeping(self, context: &'static str) -> Error {
        match self {
            TxFailure::Body { error, .. } => Error::db(context, error),
            TxFailure::Other(e) => e,
        }
    }
}

/// One migration transaction of a pipelined window (see [`Apply::transaction_window`]).
#[derive(Debug, Clone)]
pub(crate) struct WindowTx<'a> {
    pub item: TxItem<'a>,
    /// Commit without waiting for the WAL flush (see [`Apply::transaction_async_commit`]).
    pub async_commit: bool,
    /// The migration whose `applied` history row must exist when this transaction starts: the
    /// one sent before it in the window. `None` for the window's first, whose predecessor's
    /// outcome was read before the window was sent.
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
    pub after: Option<Key>,
}

/// Why a window did not commit entirely: transaction `index` of the window failed (the first
/// that did). Transactions before it committed; none after it did.
#[derive(Debug)]
pub(crate) struct WindowFailure {
    pub index: usize,
    pub failure: TxFailure,
}

/// A backend: the connection's session, plus the five concerns below.
pub(crate) trait Backend:
    HistoryTable + Locking + Apply + ForeignHistories + SchemaObjects + Catalogs
{
    /// Reads what the slow path needs and sets the connection's `application_name`.
    async fn session(&mut self, application_name: &str) -> Result<Session, Error>;
    /// Restores what `session` changed.
    async fn restore_session(&mut self, session: &Session) -> Result<(), Error>;
    /// Waits, the driver's way (a blocking driver blocks).
    async fn sleep(&mut self, duration: Duration);
}

/// Preflight's history table (its layout: [`crate::history`]): the fast-path query, creation
/// and upgrade, reads, and the rows of migrations that run outside a transaction (their
/// progress).
pub(crate) trait HistoryTable {
    /// The single fast-path query: the newest row of each of `sets` and whether any of their
    /// rows is unfinished, one round trip. `None`: no history table, or one the query cannot
    /// read (layout 1): the slow path creates or upgrades it.
    async fn fast_check(&mut self, sets: &[&str]) -> Result<Option<Fast>, Error>;
    /// Creates the history table (layout 2, with its indexes) if missing, drops what an older
    /// layout left beside it (`<table>_count`, its function and triggers, `<table>_log`,
    /// `<table>_lease`), and says whether the table is current or of layout 1; refuses a layout
    /// it does not know. Under the migration lock.
    async fn ensure_history(&mut self) -> Result<Layout, Error>;
    /// Upgrades a layout-1 table in place, in one transaction (see [`crate::history`]): its
    /// rows become set `set`, `ords` gives each row's `ord` (version text, sort key). Under
    /// the migration lock.
    async fn upgrade_history(&mut self, set: &str, ords: &[(String, String)]) -> Result<(), Error>;
    /// Reads the history; the table must exist (see [`HistoryTable::ensure_history`]).
    async fn read_history(&mut self) -> Result<Vec<HistoryRow>, Error>;
    /// Reads the history without creating anything: an absent table is an empty history; a
    /// layout-1 table is read with an empty `set` (the runner assigns the set an upgrade
    /// would).
    async fn read_history_if_any(&mut self) -> Result<Vec<HistoryRow>, Error>;
    /// Records the start (or the resumption) of a non-atomic migration: `in_progress`, with
    /// `done` units completed and `completed` their digests (see [`crate::history`]).
    /// A fresh start (`row.resume` false) should fail when the row exists: another run started
    /// the migration although this one holds the lock (no lock, an expired lease, a pooler),
    /// and running it here too would apply its statements twice. (PostgreSQL does; SQLite's
    /// `BEGIN IMMEDIATE` lock cannot be bypassed that way.)
    async fn start_row(&mut self, row: &NewRow, done: u32, completed: &str) -> Result<(), Error>;
    /// Records the start (or the resumption) of a non-atomic down body of an applied (or
    /// half-reverted) migration: `reverting`, `done` of `total` down units completed.
    async fn start_revert(
        &mut self,
        key: &Key,
        total: u32,
        done: u32,
        completed: &str,
    ) -> Result<(), Error>;
    /// Records that `done` units completed, whose digests are `completed`.
    async fn progress(&mut self, key: &Key, done: u32, completed: &str) -> Result<(), Error>;
    /// Records the end of a non-atomic body: `applied`, `failed` or `revert_failed`.
    async fn finish_row(
        &mut self,
        key: &Key,
        state: State,
        done: u32,
        execution_ms: i64,
        error: Option<&str>,
    ) -> Result<(), Error>;
}

/// The migration lock (see [`crate::lock`]): an advisory try-lock and a lease row.
pub(crate) trait Locking {
    async fn try_advisory_lock(&mut self, key: i64) -> Result<bool, Error>;
    async fn advisory_unlock(&mut self, key: i64) -> Result<(), Error>;
    async fn advisory_holder(&mut self, key: i64) -> Result<Option<Holder>, Error>;

    /// Takes the lease if free or expired; `Err(holder)` when someone else holds it.
    async fn try_lease(
        &mut self,
        owner: &str,
        ttl: Duration,
    ) -> Result<Result<(), Option<Holder>>, Error>;
    /// Extends the lease; `false` when it is no longer ours.
    async fn renew_lease(&mut self, owner: &str, ttl: Duration) -> Result<bool, Error>;
    async fn release_lease(&mut self, owner: &str) -> Result<(), Error>;

    /// The sessions that may have blocked a migration whose last attempt started `since` ago:
    /// those whose open transaction began before it, holding locks on tables or views (see
    /// [`crate::blocked`]). A backend that cannot tell finds none.
    async fn lock_blockers(&mut self, _since: Duration) -> Result<Vec<Blocker>, Error> {
        Ok(Vec::new())
    }
}

/// Running migration bodies: in transactions with their history records, or one statement at
/// a time.
pub(crate) trait Apply {
    /// Runs the items in one transaction (bodies and records), committing only if all
    /// succeeded.
    async fn transaction(&mut self, items: &[TxItem<'_>]) -> Result<(), TxFailure>;
    /// [`Apply::transaction`] whose commit need not wait for durability (PostgreSQL:
    /// `SET LOCAL synchronous_commit = off`). The runner uses it for every migration of a run
    /// but the last, whose synchronous commit makes the earlier ones durable (see
    /// `runner::apply`). A backend without the notion commits as usual.
    async fn transaction_async_commit(&mut self, items: &[TxItem<'_>]) -> Result<(), TxFailure> {
        self.transaction(items).await
    }
    /// How many migration transactions [`Apply::transaction_window`] sends together at most;
    /// 1 when the driver cannot pipeline (each then costs its own round trips anyway).
    fn window_limit(&self) -> usize {
        1
    }
    /// Runs several migration transactions in order, each committing on its own, sent together
    /// when the driver pipelines (one round trip for the whole window). Every transaction with
    /// `after` must first check that that migration's `applied` row exists and abort when it
    /// does not: sent together, a failed transaction's `COMMIT` acts as `ROLLBACK` and ends it,
    /// so the next one's `BEGIN` would open a fresh transaction and commit after its
    /// predecessor failed. With the check, nothing after the first failure commits. The
    /// default runs them one by one and stops at the first failure.
    async fn transaction_window(&mut self, txs: &[WindowTx<'_>]) -> Result<(), WindowFailure> {
        for (index, tx) in txs.iter().enumerate() {
            let items = std::slice::from_ref(&tx.item);
            let outcome = if tx.async_commit {
                self.transaction_async_commit(items).await
            } else {
                self.transaction(items).await
            };
            outcome.map_err(|failure| WindowFailure { index, failure })?;
        }
        Ok(())
    }
    /// Runs one statement outside a transaction (no-transaction migrations), or a script that
    /// opens a transaction and leaves it open (the start of a block, see `unit`).
    async fn execute(&mut self, sql: &str) -> Result<(), DbError>;
    /// Sets the limits of the statements [`Apply::execute`] runs next (a no-transaction
    /// migration's), for the session; returns what [`Apply::restore_timeouts`] puts back.
    async fn set_timeouts(&mut self, timeouts: Timeouts) -> Result<PreviousTimeouts, Error>;
    /// Puts back what [`Apply::set_timeouts`] changed.
    async fn restore_timeouts(&mut self, previous: PreviousTimeouts) -> Result<(), Error>;
    /// Rolls back the transaction a failed block left open; nothing when none is open
    /// (PostgreSQL answers `ROLLBACK` outside a transaction with a warning only).
    async fn rollback_open(&mut self) -> Result<(), Error> {
        self.execute("ROLLBACK")
            .await
            .map_err(|e| Error::db("rolling back a failed block", e))
    }
}

/// The session's settings before [`Apply::set_timeouts`] changed them: `(name, value)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PreviousTimeouts(
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))] pub Vec<(&'static str, String)>,
);

/// Other migration tools' history tables, for adoption (see [`crate::adopt`]).
pub(crate) trait ForeignHistories {
    /// Other migration tools' history tables in the database, recognised by name and columns
    /// ([`ForeignTable::identify`]). A backend that cannot look finds none.
    async fn foreign_tables(&mut self) -> Result<Vec<ForeignTable>, Error> {
        Ok(Vec::new())
    }

    /// Reads a table found by [`ForeignHistories::foreign_tables`] (never written to).
    async fn read_foreign(&mut self, table: &ForeignTable) -> Result<ForeignHistory, Error> {
        Err(Error::Config(format!(
            "this database backend cannot read {table} to adopt it"
        )))
    }
}

/// The objects of the migrated schema, for a development reset (see `runner::reset`).
pub(crate) trait SchemaObjects {
    /// Every object of `schema` (tables, views, sequences, functions, types, extensions), in an
    /// order that drops owners before what depends on them; the `DROP` statements are written
    /// by the database itself, with its own identifier quoting.
    async fn schema_objects(&mut self, schema: &str) -> Result<Vec<SchemaObject>, Error>;
    /// Drops the objects in one transaction: on failure nothing is dropped.
    async fn drop_objects(&mut self, objects: &[SchemaObject]) -> Result<(), Error>;
}

/// Where the live session keeps Preflight's objects, and how it resolves unqualified names:
/// what drift excludes from the comparison and reproduces in the scratch database.
#[derive(Debug, Clone)]
pub(crate) struct Surroundings {
    /// The history table's schema (the configured one, or the current schema); on SQLite the
    /// attached database.
    pub schema: String,
    /// The history table: it and everything named `<table>_...` in its schema are
    /// Preflight's own objects, never drift.
    pub table: String,
    /// The session's `search_path`, set on the scratch connection before the migrations run
    /// there (so that unqualified names land where they landed in the live database).
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
    pub search_path: Option<String>,
}

/// Work done on a scratch database: drift builds the migrations there and reads its
/// catalog (see `runner::drift`). Given to [`Catalogs::on_scratch`], which makes the database
/// and drops it afterwards.
pub(crate) trait ScratchWork {
    /// The runner settings the scratch backend is made with.
    fn config(&self) -> &crate::runner::Config;
    /// The `search_path` to set on the scratch connection first.
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
    fn search_path(&self) -> Option<&str>;
    /// The work, on the scratch database's backend.
    async fn run<B: Backend>(self, scratch: &mut B) -> Result<Catalog, Error>;
}

/// The database's schema as drift compares it (see [`crate::drift`]), and the scratch database
/// it compares with.
pub(crate) trait Catalogs {
    /// Where Preflight's objects are and the session's `search_path`.
    async fn surroundings(&mut self, table: &str) -> Result<Surroundings, Error>;
    /// The schema's objects, without Preflight's own.
    async fn catalog(&mut self, own: &Surroundings) -> Result<Catalog, Error>;
    /// Creates a scratch database of the same kind (PostgreSQL: on the server of the runner's
    /// [`Scratch`](crate::Scratch); SQLite: in memory), runs `work` on it and drops it, on
    /// every path.
    async fn on_scratch<W: ScratchWork>(&mut self, work: W) -> Result<Catalog, Error>;
}
