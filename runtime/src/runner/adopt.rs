//! Adoption inside a run: reading another tool's history, checking it against the files
//! (`crate::adopt` decides), and recording it in one transaction; or, for a dry run, only
//! what would be recorded.

use std::collections::HashSet;

use crate::adopt::{self, Adopt, AdoptError, Adopted, ForeignTable};
use crate::backend::{Backend, Session};
use crate::error::Error;
use crate::history::{HistoryRow, State};
use crate::{Migration, Migrations};

use super::repair::recorded_as_applied;
use super::{Config, Work};

/// The adoption `work` asks for: an explicit adoption adopts whichever tool is found unless
/// the runner names one; a migration adopts as the runner says (default: not at all).
pub(super) fn wanted(work: Work, configured: Adopt) -> Adopt {
    match (work, configured) {
        (Work::Adopt, Adopt::Off) => Adopt::Auto,
        (Work::Adopt | Work::Migrate, a) => a,
        _ => Adopt::Off,
    }
}

/// Reads the other tool's history chosen by `how`, checks it against the files of `set`, and
/// records its applied versions in one transaction (each row's `applied_by` names the tool and
/// its table). `Ok(None)`: there is no other tool's table (an error when `explicit`).
pub(super) async fn adopt<B: Backend>(
    b: &mut B,
    set: &Migrations,
    cfg: &Config,
    session: &Session,
    how: Adopt,
    explicit: bool,
) -> Result<Option<Adopted>, Error> {
    let found = b.foreign_tables().await?;
    let Some((adopted, list)) = preview(b, set, session, how, explicit, &found).await? else {
        return Ok(None);
    };
    let by = adopt::applied_by(adopted.tool, &adopted.table);
    let shown = crate::error::list(&adopted.versions);
    let note = format!(
        "adopted from {}'s table {} by {}",
        adopted.tool,
        adopted.qualified(),
        cfg.applied_by()
    );
    let items = recorded_as_applied(set, &HashSet::new(), &list, &by, Some(note));
    if !items.is_empty() {
        b.transaction(&items)
            .await
            .map_err(|f| f.bookkeeping("adopting"))?;
    }
    tracing::warn!(tool = %adopted.tool, table = %adopted.qualified(), versions = %shown, "adopted another tool's history");
    Ok(Some(adopted))
}

/// What adopting from `found` would record, and the migrations it covers, read without
/// writing. `Ok(None)`: there is no other tool's table (an error when `explicit`).
pub(super) async fn preview<'m, B: Backend>(
    b: &mut B,
    set: &'m Migrations,
    session: &Session,
    how: Adopt,
    explicit: bool,
    found: &[ForeignTable],
) -> Result<Option<(Adopted, Vec<&'m Migration>)>, Error> {
    let Some(table) = adopt::choose(found, how, Some(&session.schema))? else {
        if explicit {
            let tool = match how {
                Adopt::From(t) => Some(t),
                _ => None,
            };
            return Err(AdoptError::NotFound {
                tool,
                found: Vec::new(),
            }
            .into());
        }
        return Ok(None);
    };
    let history = b.read_foreign(table).await?;
    let list = adopt::adoptable(&history, set)?;
    let adopted = Adopted {
        tool: history.tool(),
        schema: table.schema.clone(),
        table: table.table.clone(),
        versions: list.iter().map(|m| m.version()).collect(),
    };
    Ok(Some((adopted, list)))
}

/// The history rows an adoption records, as a dry run plans on them.
pub(super) fn rows_of(set: &str, list: &[&Migration], adopted: &Adopted) -> Vec<HistoryRow> {
    let by = adopt::applied_by(adopted.tool, &adopted.table);
    list.iter()
        .map(|m| HistoryRow {
            set: set.to_owned(),
            version: m.version(),
            name: m.name().to_owned(),
            checksum: m.checksum().to_string(),
            chain: m.chain().to_string(),
            state: State::Applied,
            statements_done: u32::try_from(m.up().statement_count()).unwrap_or(u32::MAX),
            statements_total: u32::try_from(m.up().statement_count()).unwrap_or(u32::MAX),
            applied_at: String::new(),
            execution_ms: 0,
            completed: String::new(),
            applied_by: by.clone(),
            error: None,
            repaired: None,
        })
        .collect()
}
