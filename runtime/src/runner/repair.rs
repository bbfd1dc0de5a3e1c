//! Repairs of the history, as an operator asks for them after checking the database.

use std::collections::HashSet;

use crate::backend::{Backend, Record, TxItem};
use crate::composition::Composition;
use crate::error::Error;
use crate::history::{HistoryRow, Key, NewRow};
use crate::timeout::Timeouts;
use crate::{Checksum, Migration, Migrations, Version};

use super::context::Ctx;

/// A repair of the history, as an operator (or the CLI) asks for it after checking the
/// database. Every repair takes the lock; what it did is recorded in the rows it changed (their
/// `repaired` column; a forgotten row is deleted) and logged (`tracing`).
///
/// ```no_run
/// # use preflight_runtime::{Migrations, Repair, Version};
/// # fn f(migrations: &Migrations, client: &mut postgres::Client) -> Result<(), preflight_runtime::Error> {
/// // Statement 2 of no-transaction migration 7 failed; the operator fixed the database by hand.
/// migrations.repair(client, Repair::MarkApplied(Version::new(7)))?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// Record the migration as applied (finished by hand).
    MarkApplied(Version),
    /// Delete the migration's row so that it runs again (undone by hand).
    Forget(Version),
    /// Accept the binary's checksum for an applied migration whose file changed.
    AcceptChecksum(Version),
    /// Continue the unfinished (`in_progress` or `failed`) migrations up to this version after
    /// their last completed statement, and apply what is pending up to it: a run with the
    /// unfinished-migration policy lifted.
    Resume(Version),
    /// Record every migration up to this version that has no history row as applied without
    /// running it (a database that already has them), in one transaction: all or nothing.
    Baseline(Version),
}

pub(super) async fn repair<B: Backend>(
    b: &mut B,
    comp: &Composition<'_>,
    rows: &[HistoryRow],
    repair: Repair,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let set = ctx.cfg.policy.scoped(comp)?;
    let name = set.set();
    let rows: Vec<&HistoryRow> = rows.iter().filter(|r| r.set == name).collect();
    let find = |v: Version| rows.iter().copied().find(|r| r.version == v);
    let label = ctx.label(name);
    let compiled = |v: Version| {
        set.get(v).ok_or_else(|| {
            Error::UnknownVersion(format!(
                "migration {v} is not in {}",
                label
                    .as_ref()
                    .map_or_else(|| "this migration set".to_owned(), |s| format!("set `{s}`"))
            ))
        })
    };
    let mut applied: HashSet<Version> = rows
        .iter()
        .filter(|r| r.is_applied())
        .map(|r| r.version)
        .collect();
    let by = ctx.applied_by.clone();
    let items = match repair {
        Repair::MarkApplied(v) => {
            let m = compiled(v)?;
            let before = find(v).map_or("no row".to_owned(), |r| {
                format!("{} {}/{}", r.state, r.statements_done, r.statements_total)
            });
            ctx.report.marked.push(v);
            applied.insert(v);
            let mut row = NewRow::of(name, m, &by);
            row.chain = verified_chain(set, &applied, m);
            vec![TxItem {
                body: None,
                record: Record::Upsert(row),
                note: Some(format!("mark-applied (was: {before}) by {by}")),
                timeouts: Timeouts::NONE,
            }]
        }
        Repair::Forget(v) => {
            let Some(row) = find(v) else {
                return Err(Error::UnknownVersion(format!(
                    "migration {v} has no history row to forget"
                )));
            };
            tracing::warn!(
                set = name,
                version = %v,
                was = %format!("{} {}/{}, checksum {}", row.state, row.statements_done, row.statements_total, row.checksum),
                by = %by,
                "forget: history row deleted so that the migration runs again"
            );
            applied.remove(&v);
            let mut items = vec![TxItem {
                body: None,
                record: Record::Delete(Key::new(name, v)),
                note: None,
                timeouts: Timeouts::NONE,
            }];
            // Later rows' chains asserted that this one was applied: no longer.
            items.extend(rechained(set, &rows, &applied, v));
            items
        }
        Repair::AcceptChecksum(v) => {
            let m = compiled(v)?;
            let Some(row) = find(v).filter(|r| r.is_applied()) else {
                return Err(Error::UnknownVersion(format!(
                    "migration {v} is not applied; only an applied migration's checksum can be \
                     accepted"
                )));
            };
            let mut items = vec![TxItem {
                body: None,
                record: Record::SetChecksum {
                    key: Key::new(name, v),
                    checksum: m.checksum(),
                    chain: verified_chain(set, &applied, m),
                },
                note: Some(format!(
                    "accept-checksum: checksum {} replaced by {} by {by}",
                    row.checksum,
                    m.checksum()
                )),
                timeouts: Timeouts::NONE,
            }];
            // Later rows' chains covered the old checksum: bring them to the binary's values.
            items.extend(rechained(set, &rows, &applied, v));
            items
        }
        Repair::Baseline(v) => {
            compiled(v)?;
            let marked: Vec<&Migration> = set
                .iter()
                .take_while(|m| m.version() <= v)
                .filter(|m| find(m.version()).is_none())
                .collect();
            ctx.report.marked = marked.iter().map(|m| m.version()).collect();
            tracing::warn!(
                set = name,
                version = %v,
                count = marked.len(),
                by = %by,
                "baseline: migrations recorded as applied without running them"
            );
            recorded_as_applied(
                set,
                &applied,
                &marked,
                &by,
                Some(format!(
                    "baseline {v}: recorded as applied without running it by {by}"
                )),
            )
        }
        // A run (see `Runner::repair`), never a locked repair.
        Repair::Resume(_) => Vec::new(),
    };
    if items.is_empty() {
        return Ok(());
    }
    b.transaction(&items)
        .await
        .map_err(|f| f.bookkeeping("repair"))?;
    tracing::warn!(repair = ?repair, set = name, "history repaired");
    Ok(())
}

/// The chain to record for `m` once `applied` (the set's applied versions after the write)
/// holds: its compiled chain when every earlier migration of the set is applied, otherwise
/// none (see [`crate::history`]: a chain asserts everything before it).
fn verified_chain(set: &Migrations, applied: &HashSet<Version>, m: &Migration) -> Option<Checksum> {
    set.iter()
        .take_while(|e| e.version() < m.version())
        .all(|e| applied.contains(&e.version()))
        .then(|| m.chain())
}

/// The chain updates of the applied rows above `v` after a repair changed `v`.
fn rechained(
    set: &Migrations,
    rows: &[&HistoryRow],
    applied: &HashSet<Version>,
    v: Version,
) -> Vec<TxItem<'static>> {
    rows.iter()
        .filter(|r| r.version > v && r.is_applied())
        .map(|r| {
            let chain = set
                .get(r.version)
                .and_then(|m| verified_chain(set, applied, m));
            TxItem {
                body: None,
                record: Record::SetChain {
                    key: Key::new(set.set(), r.version),
                    chain,
                },
                note: None,
                timeouts: Timeouts::NONE,
            }
        })
        .collect()
}

/// One transaction's items that record `migrations` of `set` as applied without running them
/// (a baseline, an adoption), each with `note` in its `repaired` column; `applied` is what the
/// set had applied before. Empty for no migration.
pub(super) fn recorded_as_applied(
    set: &Migrations,
    applied: &HashSet<Version>,
    migrations: &[&Migration],
    by: &str,
    note: Option<String>,
) -> Vec<TxItem<'static>> {
    let mut after = applied.clone();
    after.extend(migrations.iter().map(|m| m.version()));
    migrations
        .iter()
        .map(|m| {
            let mut row = NewRow::of(set.set(), m, by);
            row.chain = verified_chain(set, &after, m);
            TxItem {
                body: None,
                record: Record::Insert(row),
                note: note.clone(),
                timeouts: Timeouts::NONE,
            }
        })
        .collect()
}
