//! Repairs of the history, as an operator asks for them after checking the database.

use crate::backend::{Backend, LogEntry, Record, TxItem};
use crate::error::Error;
use crate::history::{HistoryRow, NewRow};
use crate::timeout::Timeouts;
use crate::{Migration, Migrations, Version};

use super::context::Ctx;

/// A repair of the history, as an operator (or the CLI) asks for it after checking the
/// database. Every repair takes the lock and is recorded in `<table>_log`.
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
    set: &Migrations,
    rows: &[HistoryRow],
    repair: Repair,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    let find = |v: Version| rows.iter().find(|r| r.version == v);
    let compiled = |v: Version| {
        set.get(v).ok_or_else(|| {
            Error::UnknownVersion(format!("migration {v} is not in this migration set"))
        })
    };
    let by = ctx.applied_by.clone();
    let log = |action, version, detail| {
        Some(LogEntry {
            action,
            version: Some(version),
            detail,
            by: by.clone(),
        })
    };
    let items = match repair {
        Repair::MarkApplied(v) => {
            let m = compiled(v)?;
            let before = find(v).map_or("no row".to_owned(), |r| {
                format!("{} {}/{}", r.state, r.statements_done, r.statements_total)
            });
            ctx.report.marked.push(v);
            vec![TxItem {
                body: None,
                record: Record::Upsert(NewRow::of(m, &by)),
                log: log(
                    "mark-applied",
                    v,
                    format!("marked applied by hand (was: {before})"),
                ),
                timeouts: Timeouts::NONE,
            }]
        }
        Repair::Forget(v) => {
            let Some(row) = find(v) else {
                return Err(Error::UnknownVersion(format!(
                    "migration {v} has no history row to forget"
                )));
            };
            vec![TxItem {
                body: None,
                record: Record::Delete(v),
                log: log(
                    "forget",
                    v,
                    format!(
                        "row deleted so that it runs again (was: {} {}/{}, checksum {})",
                        row.state, row.statements_done, row.statements_total, row.checksum
                    ),
                ),
                timeouts: Timeouts::NONE,
            }]
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
                    version: v,
                    checksum: m.checksum(),
                    chain: m.chain(),
                },
                log: log(
                    "accept-checksum",
                    v,
                    format!("checksum {} replaced by {}", row.checksum, m.checksum()),
                ),
                timeouts: Timeouts::NONE,
            }];
            // Later rows' chains covered the old checksum: bring them to the binary's values.
            for later in set.iter().filter(|l| l.version() > v) {
                if find(later.version()).is_some_and(HistoryRow::is_applied) {
                    items.push(TxItem {
                        body: None,
                        record: Record::SetChain {
                            version: later.version(),
                            chain: later.chain(),
                        },
                        log: None,
                        timeouts: Timeouts::NONE,
                    });
                }
            }
            items
        }
        Repair::Baseline(v) => {
            compiled(v)?;
            let marked: Vec<_> = set
                .iter()
                .take_while(|m| m.version() <= v)
                .filter(|m| find(m.version()).is_none())
                .collect();
            ctx.report.marked = marked.iter().map(|m| m.version()).collect();
            let detail = format!(
                "baseline {v}: {} migration(s) recorded as applied without running them",
                marked.len()
            );
            recorded_as_applied(&marked, &by, log("baseline", v, detail))
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
    tracing::warn!(repair = ?repair, "history repaired");
    Ok(())
}

/// One transaction's items that record `migrations` as applied without running them, with
/// one `<table>_log` entry (on the first): a baseline, an adoption. Empty for no migration.
pub(super) fn recorded_as_applied(
    migrations: &[&Migration],
    by: &str,
    log: Option<LogEntry>,
) -> Vec<TxItem<'static>> {
    let mut items: Vec<TxItem<'static>> = migrations
        .iter()
        .map(|m| TxItem {
            body: None,
            record: Record::Insert(NewRow::of(m, by)),
            log: None,
            timeouts: Timeouts::NONE,
        })
        .collect();
    if let Some(first) = items.first_mut() {
        first.log = log;
    }
    items
}
