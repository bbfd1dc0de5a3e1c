//! The history table's layout under the lock: created when missing, upgraded in place from
//! layout 1 (see [`crate::history`]), whose rows get the set they belong to.

use crate::backend::{Backend, Layout};
use crate::composition::Composition;
use crate::error::Error;
use crate::history::{order_key, HistoryRow};
use crate::Version;

/// Makes the history table current: creates it, or upgrades a layout-1 table in place (one
/// transaction, under the migration lock the caller holds).
pub(super) async fn ensure<B: Backend>(b: &mut B, comp: &Composition<'_>) -> Result<(), Error> {
    let Layout::V1 { rows } = b.ensure_history().await? else {
        return Ok(());
    };
    let set = legacy_set(comp, rows.iter().map(|(v, c)| (v.as_str(), c.as_str())));
    let mut ords = Vec::with_capacity(rows.len());
    for (version, _) in &rows {
        let parsed = version.parse::<Version>().map_err(|e| {
            Error::History(format!(
                "cannot upgrade the history table: row with version `{version}`: {e}"
            ))
        })?;
        ords.push((version.clone(), order_key(parsed)));
    }
    b.upgrade_history(set, &ords).await?;
    tracing::warn!(
        set,
        rows = rows.len(),
        "history table upgraded in place to {}",
        crate::history::LAYOUT
    );
    Ok(())
}

/// Gives the rows of a layout-1 table read without upgrading it (a dry run, `status`) the set
/// an upgrade would give them.
pub(super) fn assign_legacy(comp: &Composition<'_>, rows: &mut [HistoryRow]) {
    if rows.iter().all(|r| !r.set.is_empty()) {
        return;
    }
    let versions: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r.set.is_empty())
        .map(|r| (r.version.to_string(), r.checksum.clone()))
        .collect();
    let set = legacy_set(comp, versions.iter().map(|(v, c)| (v.as_str(), c.as_str())));
    for row in rows.iter_mut().filter(|r| r.set.is_empty()) {
        row.set = set.to_owned();
    }
}

/// The set a layout-1 history belongs to: the composition's set in which most of its rows are
/// migrations with the same checksum (the only set, for a composition of one); the first
/// listed on a tie.
fn legacy_set<'m, 'r>(
    comp: &Composition<'m>,
    rows: impl Iterator<Item = (&'r str, &'r str)> + Clone,
) -> &'m str {
    let mut best: Option<(&'m str, usize)> = None;
    for set in comp.sets() {
        let matching = rows
            .clone()
            .filter(|(version, checksum)| {
                version
                    .parse::<Version>()
                    .ok()
                    .and_then(|v| set.get(v))
                    .is_some_and(|m| m.checksum().to_string() == *checksum)
            })
            .count();
        if best.is_none_or(|(_, n)| matching > n) {
            best = Some((set.set(), matching));
        }
    }
    best.map_or(crate::migration::DEFAULT_SET, |(set, _)| set)
}
