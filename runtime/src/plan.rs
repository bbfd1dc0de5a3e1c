//! The plan and the policies, written once and backend-free: from the migrations in the binary,
//! the rows of the history table and the policy, what to apply or revert, or which policy
//! refuses. Every backend reads its history into [`HistoryRow`]s; the runner decides with these
//! functions and executes the result, and a dry run ([`Runner::plan`](crate::Runner::plan) and
//! its `plan_*` twins) returns the same decision as a [`Plan`] instead of executing it.
//!
//! The policies, defaults first:
//!
//! | condition | default | option |
//! |---|---|---|
//! | an applied migration's checksum differs from the file | refuse ([`Error::ChecksumMismatch`]) | [`Repair::AcceptChecksum`](crate::Repair::AcceptChecksum) |
//! | history has versions above the binary's newest | boot, [`Warning::AheadOfBinary`] | — |
//! | an applied version below the binary's newest is not in the binary | refuse ([`Error::Missing`]) | [`Runner::allow_missing`](crate::Runner::allow_missing) |
//! | a pending version is below the newest applied one | refuse ([`Error::OutOfOrder`]) | [`Runner::out_of_order`](crate::Runner::out_of_order) |
//! | a row is `in_progress` or `failed` | refuse with the recovery step ([`Error::Unfinished`]) | [`Repair::Resume`](crate::Repair::Resume) and the other repairs |
//! | a migration to revert has no down body (or is not in the binary) | refuse before reverting anything ([`Error::NoDown`]) | — |

use std::collections::{BTreeMap, HashMap};

use crate::adopt::{Adopted, ForeignTable};
use crate::composition::{Composition, Item};
use crate::error::{ChecksumMismatch, CompletedChanged, Error, Unfinished};
use crate::history::{first_changed_unit, HistoryRow, State};
use crate::report::Warning;
use crate::{Migration, Version};

/// The options that decide what a run may do (set through the runner's builder).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Apply pending migrations older than the newest applied one instead of refusing.
    pub out_of_order: bool,
    /// Boot although applied migrations below the binary's newest are missing from it.
    pub allow_missing: bool,
    /// Apply only up to this version (which must be in the binary) of the scoped set
    /// ([`Policy::scope`]; the only set of a composition of one).
    pub target: Option<Version>,
    /// Resume `in_progress` / `failed` migrations from the unit after the last completed one
    /// instead of refusing, whether or not the file changed since.
    pub resume_unfinished: bool,
    /// The set that versions given to the runner (target, repairs, reverts) belong to; `None`:
    /// the composition's only set.
    pub scope: Option<String>,
}

impl Policy {
    /// The set that versions given to the runner belong to.
    pub(crate) fn scoped<'m>(
        &self,
        comp: &Composition<'m>,
    ) -> Result<&'m crate::Migrations, Error> {
        match &self.scope {
            Some(name) => comp.set(name).ok_or_else(|| {
                Error::UnknownVersion(format!(
                    "set `{name}` is not part of this composition (its sets: {})",
                    comp.sets().map(|s| s.set()).collect::<Vec<_>>().join(", ")
                ))
            }),
            None => match comp.sets().collect::<Vec<_>>().as_slice() {
                [only] => Ok(only),
                _ => Err(Error::Config(
                    "this composition has several sets: name the set the version belongs to \
                     (`Runner::set`, the CLI's `--set`)"
                        .into(),
                )),
            },
        }
    }
}

/// One migration to apply or revert, with its set.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    set: &'a str,
    migration: &'a Migration,
    from: u32,
    resume: bool,
}

impl<'a> Step<'a> {
    pub(crate) fn fresh(item: Item<'a>) -> Step<'a> {
        Step {
            set: item.set,
            migration: item.migration,
            from: 0,
            resume: false,
        }
    }

    pub(crate) fn resume(item: Item<'a>, from: u32) -> Step<'a> {
        Step {
            set: item.set,
            migration: item.migration,
            from,
            resume: true,
        }
    }

    /// The migration's set.
    pub fn set(&self) -> &'a str {
        self.set
    }

    /// The migration.
    pub fn migration(&self) -> &'a Migration {
        self.migration
    }

    /// The first unit (statement or block) the step runs, 0-based: 0, or where a resumption
    /// continues.
    pub fn from(&self) -> u32 {
        self.from
    }

    /// Whether the step continues an unfinished migration (or revert) instead of starting it.
    pub fn is_resume(&self) -> bool {
        self.resume
    }
}

/// What an operation would do, as its dry run returns it ([`Runner::plan`](crate::Runner::plan),
/// [`Runner::plan_revert`](crate::Runner::plan_revert),
/// [`Runner::plan_adopt`](crate::Runner::plan_adopt),
/// [`Runner::plan_reset`](crate::Runner::plan_reset)): the same reads and the same decisions
/// as the operation itself, without the lock and without writing anything. A policy that would
/// refuse the operation makes the dry run fail with the same error.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// # use preflight_runtime::{MigrationSpec, Migrations};
/// let migrations = Migrations::from_specs(vec![
///     MigrationSpec::new(1, "users", "CREATE TABLE users (id INTEGER PRIMARY KEY);"),
/// ]).unwrap();
/// let mut conn = rusqlite::Connection::open_in_memory()?;
/// let plan = migrations.plan(&mut conn)?;
/// assert_eq!(plan.apply.len(), 1); // what `run` will apply
/// migrations.run(&mut conn)?;
/// assert!(migrations.plan(&mut conn)?.is_empty());
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Plan<'a> {
    /// The migrations to apply, in order (for a reset: after reverting or dropping).
    pub apply: Vec<Step<'a>>,
    /// The migrations to revert, in order (newest first).
    pub revert: Vec<Step<'a>>,
    /// A reset that cannot revert: the objects it drops first.
    pub teardown: Option<Teardown>,
    /// Pending migrations left alone because they come after the target.
    pub skipped: Vec<Step<'a>>,
    /// Conditions the policies allow, which the run reports as warnings.
    pub warnings: Vec<Warning>,
    /// Another tool's history that would be taken over: by [`Runner::adopt`](crate::Runner::adopt),
    /// or by a run with [`Runner::adoption`](crate::Runner::adoption) on (then `apply` is
    /// what comes after it).
    pub adopted: Option<Adopted>,
    /// Other tools' history tables found beside an empty Preflight history, which the run
    /// leaves alone ([`crate::Adopt::Off`]); applying everything on top of what such a tool
    /// migrated rarely works: adopt it first ([`Runner::adopt`](crate::Runner::adopt)).
    pub foreign: Vec<ForeignTable>,
}

impl Plan<'_> {
    /// Whether the operation would change nothing.
    pub fn is_empty(&self) -> bool {
        self.apply.is_empty()
            && self.revert.is_empty()
            && self.teardown.is_none()
            && self.adopted.as_ref().is_none_or(|a| a.versions.is_empty())
    }
}

/// What a reset drops when it cannot revert every migration: every object of the migrated
/// schema.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Teardown {
    /// The schema (`main` on SQLite).
    pub schema: String,
    /// Its objects, in the order they are dropped.
    pub objects: Vec<SchemaObject>,
    /// Why the migrations cannot be reverted instead (one reason per version); empty when
    /// the history is empty but the schema is not.
    pub not_reversible: Vec<String>,
}

/// An object of the migrated schema that a reset drops.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaObject {
    /// `table`, `view`, `function`, `type`, `extension`, ...
    pub kind: String,
    /// Its name, schema-qualified where the database has schemas.
    pub name: String,
    /// The `DROP` statement, written by the database with its own identifier quoting.
    pub(crate) drop: String,
}

impl SchemaObject {
    #[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
    pub(crate) fn new(kind: String, name: String, drop: String) -> SchemaObject {
        SchemaObject { kind, name, drop }
    }
}

/// How many migrations of the composition's order a run goes up to: all of them, or up to and
/// including the target.
pub(crate) fn limit(comp: &Composition<'_>, policy: &Policy) -> Result<usize, Error> {
    let Some(t) = policy.target else {
        return Ok(comp.len());
    };
    let set = policy.scoped(comp)?;
    comp.iter()
        .position(|i| i.set == set.set() && i.migration.version() == t)
        .map(|p| p + 1)
        .ok_or_else(|| {
            Error::UnknownVersion(format!(
                "target version {t} is not a migration of {}",
                match comp.label(set.set()) {
                    Some(s) => format!("set `{s}`"),
                    None => "this binary".to_owned(),
                }
            ))
        })
}

/// Each set's goal: its last migration within the run's [`limit`] (`None` when it has none
/// there): what the fast path compares each set's newest history row with.
pub(crate) fn goals<'m>(
    comp: &Composition<'m>,
    policy: &Policy,
) -> Result<Vec<(&'m str, Option<&'m Migration>)>, Error> {
    let limit = limit(comp, policy)?;
    let mut goals: Vec<(&'m str, Option<&'m Migration>)> =
        comp.sets().map(|s| (s.set(), None)).collect();
    for item in comp.iter().take(limit) {
        if let Some(goal) = goals.iter_mut().find(|(s, _)| *s == item.set) {
            goal.1 = Some(item.migration);
        }
    }
    Ok(goals)
}

/// Refuses a history that holds, instead of the composition's sets, another set with the same
/// migrations (a version with the same checksum as one of the composition's): a renamed set (or
/// a CLI reading a directory under another name) would otherwise apply every migration again on
/// top of them. Unrelated sets (another application's, in the same table) are left alone.
pub(crate) fn check_sets(comp: &Composition<'_>, history: &[HistoryRow]) -> Result<(), Error> {
    if history.iter().any(|r| comp.set(&r.set).is_some()) {
        return Ok(());
    }
    let same_files = |r: &&HistoryRow| {
        comp.sets().any(|s| {
            s.get(r.version)
                .is_some_and(|m| r.checksum_is(&m.checksum()))
        })
    };
    let mut others: Vec<String> = history
        .iter()
        .filter(same_files)
        .map(|r| r.set.clone())
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    others.sort();
    others.dedup();
    Err(Error::OtherSets {
        history: others,
        run: comp.sets().map(|s| s.set().to_owned()).collect(),
    })
}

/// The history rows of one set, by version.
fn rows_of<'h>(history: &'h [HistoryRow], set: &str) -> BTreeMap<Version, &'h HistoryRow> {
    history
        .iter()
        .filter(|r| r.set == set)
        .map(|r| (r.version, r))
        .collect()
}

/// Plans an up run (`apply`, `skipped`, `warnings`), or says which policy refuses it. Each
/// set's history is checked against that set alone (versions compare within a set); the steps
/// follow the composition's order. Rows of sets the composition does not have are left alone.
pub(crate) fn plan_up<'a>(
    comp: &Composition<'a>,
    history: &[HistoryRow],
    policy: &Policy,
) -> Result<Plan<'a>, Error> {
    let limit = limit(comp, policy)?;
    let position: HashMap<(&str, Version), usize> = comp
        .iter()
        .enumerate()
        .map(|(i, item)| ((item.set, item.migration.version()), i))
        .collect();
    let mut plan = Plan::default();
    let mut resumes: HashMap<(&str, Version), u32> = HashMap::new();
    let mut newest_recorded: HashMap<&str, Version> = HashMap::new();
    for set in comp.sets() {
        let label = comp.label(set.set());
        let rows = rows_of(history, set.set());
        let newest_compiled = set.last().map(Migration::version);
        let mut ahead = Vec::new();
        let mut missing = Vec::new();
        for (&version, row) in &rows {
            let Some(m) = set.get(version) else {
                if row.state != State::Applied {
                    return Err(unfinished(label, None, row));
                }
                if newest_compiled.is_none_or(|newest| version > newest) {
                    ahead.push(version);
                } else {
                    missing.push(version);
                }
                continue;
            };
            let within = position
                .get(&(set.set(), version))
                .is_some_and(|&p| p < limit);
            match row.state {
                State::Applied => {
                    if !row.checksum_is(&m.checksum()) {
                        return Err(Error::ChecksumMismatch(Box::new(ChecksumMismatch {
                            set: label,
                            version,
                            path: m.path().to_owned(),
                            recorded: row.checksum.clone(),
                            compiled: m.checksum(),
                        })));
                    }
                }
                State::Reverting | State::RevertFailed => {
                    return Err(unfinished(label, Some(m), row));
                }
                State::InProgress | State::Failed => {
                    let from = row.statements_done;
                    let file_changed = !row.checksum_is(&m.checksum());
                    let changed = if file_changed {
                        first_changed_unit(m.up().statements(), from, &row.completed)
                    } else {
                        None
                    };
                    match (file_changed, changed) {
                        // The file as it ran: resume only when asked.
                        (false, _) if policy.resume_unfinished && within => {
                            plan.warnings.push(Warning::Resumed {
                                set: label.clone(),
                                version,
                                from_statement: from,
                            });
                        }
                        (false, _) => return Err(unfinished(label, Some(m), row)),
                        // Fixed at or after the unit that stopped it: resume there.
                        (true, None) if within => {
                            plan.warnings.push(Warning::ResumedAfterFix {
                                set: label.clone(),
                                version,
                                from_statement: from,
                            });
                        }
                        (true, Some(_)) if policy.resume_unfinished && within => {
                            plan.warnings.push(Warning::Resumed {
                                set: label.clone(),
                                version,
                                from_statement: from,
                            });
                        }
                        (true, None) => return Err(unfinished(label, Some(m), row)),
                        (true, Some(statement)) => {
                            return Err(completed_changed(label, m, row, false, statement))
                        }
                    }
                    resumes.insert((set.set(), version), from);
                }
            }
        }
        if !missing.is_empty() {
            if !policy.allow_missing {
                return Err(Error::Missing {
                    set: label,
                    versions: missing,
                });
            }
            plan.warnings.push(Warning::Missing {
                set: label.clone(),
                versions: missing,
            });
        }
        if !ahead.is_empty() {
            plan.warnings.push(Warning::AheadOfBinary {
                set: label.clone(),
                versions: ahead,
            });
        }
        if let Some(&newest) = rows.keys().next_back() {
            newest_recorded.insert(set.set(), newest);
        }
    }

    let mut removed: BTreeMap<&str, Vec<Version>> = BTreeMap::new();
    for row in history.iter().filter(|r| comp.set(&r.set).is_none()) {
        removed.entry(&row.set).or_default().push(row.version);
    }
    for (set, mut versions) in removed {
        versions.sort();
        plan.warnings.push(Warning::RemovedSet {
            set: set.to_owned(),
            versions,
        });
    }

    let recorded: std::collections::HashSet<(&str, Version)> = history
        .iter()
        .map(|r| (r.set.as_str(), r.version))
        .collect();
    let mut out_of_order: BTreeMap<&str, Vec<Version>> = BTreeMap::new();
    for (i, item) in comp.iter().enumerate() {
        let v = item.migration.version();
        if let Some(&from) = resumes.get(&(item.set, v)) {
            plan.apply.push(Step::resume(item, from));
            continue;
        }
        if recorded.contains(&(item.set, v)) {
            continue;
        }
        if i >= limit {
            plan.skipped.push(Step::fresh(item));
            continue;
        }
        if newest_recorded
            .get(item.set)
            .is_some_and(|&newest| v < newest)
        {
            out_of_order.entry(item.set).or_default().push(v);
        }
        plan.apply.push(Step::fresh(item));
    }
    for (set, pending) in out_of_order {
        let label = comp.label(set);
        if !policy.out_of_order {
            return Err(Error::OutOfOrder {
                set: label,
                pending,
                newest_applied: newest_recorded.get(set).copied().unwrap_or(Version::new(0)),
            });
        }
        plan.warnings.push(Warning::OutOfOrder {
            set: label,
            versions: pending,
        });
    }
    if let Some(t) = policy.target {
        let set = policy.scoped(comp)?;
        let beyond: Vec<Version> = rows_of(history, set.set())
            .keys()
            .copied()
            .filter(|&v| v > t)
            .collect();
        if !beyond.is_empty() {
            plan.warnings.push(Warning::BeyondTarget {
                set: comp.label(set.set()),
                target: t,
                versions: beyond,
            });
        }
    }
    Ok(plan)
}

/// How far to revert. `To` and `Steps` count in the scoped set ([`Runner::set`](crate::Runner::set),
/// or the composition's only set); `Steps` without a set in a composition of several counts in
/// the composition's order; `Point` reverts every set back to a point of that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revert {
    /// Revert every applied migration of the set above this version; `Version::new(0)` reverts
    /// every applied migration of the set, version 0 included (diesel's `00000000000000` setup
    /// migration). Refused when a migration of another set that stays applied requires one of
    /// them (revert that set first, or use `Point`).
    To(Version),
    /// Revert the newest `n` applied migrations (of the set; of the composition, newest first in
    /// its order, when no set is named in a composition of several).
    Steps(usize),
    /// Revert, in every set, each applied migration that comes after migration `v` of the
    /// scoped set in the composition's order (newest first): the database as it was when that
    /// migration was the last one applied. In a composition of one set, the same as `To`.
    Point(Version),
}

/// Plans a revert: the migrations to revert, newest first. A revert that stopped half-way
/// (`reverting`, `revert_failed`) is continued from its next down unit when the units it
/// completed are unchanged in the file. Refuses, before anything is touched, when one of them
/// is not in the binary, has no down body, was changed since it was applied, when a completed
/// down unit changed, when another row is unfinished, or when a migration that stays applied
/// requires one of them.
pub(crate) fn plan_down<'a>(
    comp: &Composition<'a>,
    history: &[HistoryRow],
    revert: Revert,
    policy: &Policy,
) -> Result<Vec<Step<'a>>, Error> {
    let position: HashMap<(&str, Version), usize> = comp
        .iter()
        .enumerate()
        .map(|(i, item)| ((item.set, item.migration.version()), i))
        .collect();
    // The rows of the composition's sets, newest first: in version order within a set, in the
    // composition's order across sets (a row not in the binary right after its set's last
    // migration below it).
    let ours: Vec<&HistoryRow> = history
        .iter()
        .filter(|r| comp.set(&r.set).is_some())
        .collect();
    if let Some(row) = ours
        .iter()
        .find(|r| matches!(r.state, State::InProgress | State::Failed))
    {
        let set = comp.set(&row.set);
        return Err(unfinished(
            comp.label(&row.set),
            set.and_then(|s| s.get(row.version)),
            row,
        ));
    }
    let place = |r: &HistoryRow| -> (usize, bool, Version) {
        match position.get(&(r.set.as_str(), r.version)) {
            Some(&p) => (p, false, r.version),
            None => {
                let before = comp.set(&r.set).and_then(|s| {
                    s.iter()
                        .rev()
                        .find(|m| m.version() < r.version)
                        .and_then(|m| position.get(&(r.set.as_str(), m.version())).copied())
                });
                (before.unwrap_or(0), true, r.version)
            }
        }
    };
    let scoped = match revert {
        Revert::Steps(_) if policy.scope.is_none() && comp.is_multi() => None,
        _ => Some(policy.scoped(comp)?),
    };
    let mut rows: Vec<&HistoryRow> = match scoped {
        Some(set) if !matches!(revert, Revert::Point(_)) => ours
            .iter()
            .copied()
            .filter(|r| r.set == set.set())
            .collect(),
        _ => ours.clone(),
    };
    rows.sort_by_key(|r| std::cmp::Reverse(place(r)));
    let count = match (revert, scoped) {
        (Revert::To(v), _) if v == Version::new(0) => rows.len(),
        (Revert::To(v), _) => rows.iter().take_while(|r| r.version > v).count(),
        (Revert::Steps(n), _) => n.min(rows.len()),
        (Revert::Point(v), Some(set)) => {
            let Some(&point) = position.get(&(set.set(), v)) else {
                return Err(Error::UnknownVersion(format!(
                    "migration {v} is not in {}",
                    comp.label(set.set())
                        .map_or_else(|| "this binary".to_owned(), |s| format!("set `{s}`"))
                )));
            };
            rows.iter()
                .take_while(|r| place(r) > (point, false, v))
                .count()
        }
        (Revert::Point(_), None) => 0,
    };
    let (selected, kept) = rows.split_at(count);
    if let Some(row) = kept.iter().find(|r| r.state.is_revert()) {
        let set = comp.set(&row.set);
        return Err(unfinished(
            comp.label(&row.set),
            set.and_then(|s| s.get(row.version)),
            row,
        ));
    }
    let mut reasons = Vec::new();
    let mut out = Vec::new();
    for row in selected {
        let label = comp.label(&row.set);
        let shown = format!("{}{}", crate::error::in_set(&label), row.version);
        let Some(set) = comp.set(&row.set) else {
            continue;
        };
        match set.get(row.version) {
            None => reasons.push(format!(
                "migration {shown} is not in this binary, so its down body is unknown"
            )),
            Some(m) if m.down().is_none() => reasons.push(format!(
                "migration {shown} ({}) has no down migration",
                m.path()
            )),
            Some(m) if !row.checksum_is(&m.checksum()) => reasons.push(format!(
                "migration {shown} ({}) was changed after it was applied (recorded checksum {}, \
                 file {}); its down body may not match what was applied",
                m.path(),
                row.checksum,
                m.checksum()
            )),
            Some(m) => {
                let item = Item {
                    set: set.set(),
                    migration: m,
                };
                if row.state.is_revert() {
                    let units = m.down().into_iter().flat_map(|d| d.statements());
                    if let Some(statement) =
                        first_changed_unit(units, row.statements_done, &row.completed)
                    {
                        return Err(completed_changed(label, m, row, true, statement));
                    }
                    out.push(Step::resume(item, row.statements_done));
                } else {
                    out.push(Step::fresh(item));
                }
            }
        }
    }
    // A migration that stays applied, in any composed set, keeps what it requires.
    let stays = ours
        .iter()
        .filter(|r| r.is_applied() && !selected.iter().any(|s| std::ptr::eq(*s, **r)));
    for row in stays {
        let Some(m) = comp.set(&row.set).and_then(|s| s.get(row.version)) else {
            continue;
        };
        for r in m.requires() {
            if let Some(undone) = selected
                .iter()
                .find(|s| s.set == r.set() && s.version <= r.version())
            {
                reasons.push(format!(
                    "migration `{}` {} ({}) requires `{}` {}, which this revert would undo \
                     (`{}` {}): revert set `{}` first, or the whole composition back to a \
                     point (`Revert::Point`, `preflight down --point`)",
                    row.set,
                    row.version,
                    m.path(),
                    r.set(),
                    r.version(),
                    undone.set,
                    undone.version,
                    row.set
                ));
            }
        }
    }
    if !reasons.is_empty() {
        return Err(Error::NoDown { reasons });
    }
    Ok(out)
}

/// Plans reverting every applied migration of every set of the composition (a reset), newest
/// first in the composition's order, with [`plan_down`]'s checks; every reason not to is
/// reported at once.
pub(crate) fn plan_down_all<'a>(
    comp: &Composition<'a>,
    history: &[HistoryRow],
) -> Result<Vec<Step<'a>>, Error> {
    plan_down(comp, history, Revert::Steps(usize::MAX), &Policy::default())
}

pub(crate) fn unfinished(set: Option<String>, m: Option<&Migration>, row: &HistoryRow) -> Error {
    let body = m.and_then(|m| {
        if row.state.is_revert() {
            m.down()
        } else {
            Some(m.up())
        }
    });
    Error::Unfinished(Box::new(Unfinished {
        set,
        version: row.version,
        name: row.name.clone(),
        path: m.map(|m| m.path().to_owned()),
        state: row.state,
        statements_done: row.statements_done,
        statements_total: row.statements_total,
        next_line: body.and_then(|b| b.line_of(row.statements_done as usize)),
        error: row.error.clone(),
    }))
}

fn completed_changed(
    set: Option<String>,
    m: &Migration,
    row: &HistoryRow,
    down: bool,
    statement: Option<usize>,
) -> Error {
    let body = if down { m.down() } else { Some(m.up()) };
    Error::CompletedChanged(Box::new(CompletedChanged {
        set,
        version: m.version(),
        name: m.name().to_owned(),
        path: m.path().to_owned(),
        down,
        state: row.state,
        statements_done: row.statements_done,
        statement,
        line: statement.and_then(|i| body.and_then(|b| b.line_of(i))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checksum, MigrationSpec, Migrations};

    fn set(versions: &[u64]) -> Migrations {
        Migrations::from_specs(
            versions
                .iter()
                .map(|&v| MigrationSpec::new(v, &format!("m{v}"), &format!("select {v};")))
                .collect(),
        )
        .unwrap()
    }

    fn applied(set: &Migrations, v: u64) -> HistoryRow {
        let m = set.get(Version::new(v));
        HistoryRow {
            set: set.set().to_owned(),
            version: Version::new(v),
            name: format!("m{v}"),
            checksum: m.map_or_else(
                || Checksum::of(&format!("select {v};")).to_string(),
                |m| m.checksum().to_string(),
            ),
            chain: String::new(),
            state: State::Applied,
            statements_done: 1,
            statements_total: 1,
            applied_at: String::new(),
            execution_ms: 0,
            completed: String::new(),
            applied_by: String::new(),
            error: None,
            repaired: None,
        }
    }

    fn versions(plan: &Plan<'_>) -> Vec<u64> {
        plan.apply
            .iter()
            .map(|s| s.migration().version().as_u64().unwrap())
            .collect()
    }

    #[test]
    fn empty_history_applies_everything_in_order() {
        let s = set(&[3, 1, 2]);
        let plan = plan_up(&Composition::single(&s), &[], &Policy::default()).unwrap();
        assert_eq!(versions(&plan), [1, 2, 3]);
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn current_history_plans_nothing() {
        let s = set(&[1, 2]);
        let h = [applied(&s, 1), applied(&s, 2)];
        let plan = plan_up(&Composition::single(&s), &h, &Policy::default()).unwrap();
        assert!(plan.apply.is_empty() && plan.warnings.is_empty());
    }

    #[test]
    fn changed_checksum_refuses_naming_both() {
        let s = set(&[1, 2]);
        let mut row = applied(&s, 1);
        row.checksum = Checksum::of("other").to_string();
        let err = plan_up(&Composition::single(&s), &[row], &Policy::default()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::ChecksumMismatch(ref c) if c.version == Version::new(1)));
        assert!(text.contains(&Checksum::of("other").to_string()), "{text}");
        assert!(
            text.contains(&s.as_slice()[0].checksum().to_string()),
            "{text}"
        );
        assert!(text.contains("1_m1.sql"), "{text}");
    }

    #[test]
    fn ahead_of_binary_warns() {
        let s = set(&[1, 2]);
        let h = [applied(&s, 1), applied(&s, 2), applied(&s, 3)];
        let plan = plan_up(&Composition::single(&s), &h, &Policy::default()).unwrap();
        assert!(plan.apply.is_empty());
        assert_eq!(
            plan.warnings,
            [Warning::AheadOfBinary {
                set: None,
                versions: vec![Version::new(3)]
            }]
        );
    }

    #[test]
    fn missing_refuses_unless_allowed() {
        let s = set(&[1, 3]);
        let h = [applied(&s, 1), applied(&s, 2), applied(&s, 3)];
        let err = plan_up(&Composition::single(&s), &h, &Policy::default()).unwrap_err();
        assert!(
            matches!(err, Error::Missing { ref versions, .. } if versions == &[Version::new(2)])
        );
        let policy = Policy {
            allow_missing: true,
            ..Policy::default()
        };
        let plan = plan_up(&Composition::single(&s), &h, &policy).unwrap();
        assert!(plan.apply.is_empty());
        assert!(matches!(plan.warnings[0], Warning::Missing { .. }));
    }

    #[test]
    fn out_of_order_refuses_unless_allowed() {
        let s = set(&[1, 2, 3, 4]);
        let h = [applied(&s, 1), applied(&s, 3)];
        let err = plan_up(&Composition::single(&s), &h, &Policy::default()).unwrap_err();
        match err {
            Error::OutOfOrder {
                pending,
                newest_applied,
                ..
            } => {
                assert_eq!(pending, [Version::new(2)]);
                assert_eq!(newest_applied, Version::new(3));
            }
            other => panic!("{other}"),
        }
        let policy = Policy {
            out_of_order: true,
            ..Policy::default()
        };
        let plan = plan_up(&Composition::single(&s), &h, &policy).unwrap();
        assert_eq!(versions(&plan), [2, 4]);
        assert!(matches!(plan.warnings[0], Warning::OutOfOrder { .. }));
    }

    #[test]
    fn unfinished_refuses_or_resumes() {
        let s = set(&[1, 2, 3]);
        let mut row = applied(&s, 2);
        row.state = State::InProgress;
        row.statements_done = 0;
        let h = [applied(&s, 1), row];
        let err = plan_up(&Composition::single(&s), &h, &Policy::default()).unwrap_err();
        assert!(matches!(err, Error::Unfinished(ref u) if u.version == Version::new(2)));
        let policy = Policy {
            resume_unfinished: true,
            ..Policy::default()
        };
        let plan = plan_up(&Composition::single(&s), &h, &policy).unwrap();
        assert!(plan.apply[0].is_resume() && plan.apply[0].from() == 0);
        assert_eq!(versions(&plan), [2, 3]);
    }

    #[test]
    fn unfinished_row_not_in_binary_always_refuses() {
        let s = set(&[1]);
        let mut row = applied(&s, 5);
        row.state = State::Failed;
        let policy = Policy {
            resume_unfinished: true,
            ..Policy::default()
        };
        let err = plan_up(&Composition::single(&s), &[applied(&s, 1), row], &policy).unwrap_err();
        assert!(matches!(err, Error::Unfinished(ref u) if u.path.is_none()));
    }

    #[test]
    fn target_stops_and_skips() {
        let s = set(&[1, 2, 3]);
        let policy = Policy {
            target: Some(Version::new(2)),
            ..Policy::default()
        };
        let plan = plan_up(&Composition::single(&s), &[], &policy).unwrap();
        assert_eq!(versions(&plan), [1, 2]);
        assert_eq!(plan.skipped.len(), 1);
        assert_eq!(plan.skipped[0].migration().version(), Version::new(3));
        let bad = Policy {
            target: Some(Version::new(7)),
            ..Policy::default()
        };
        assert!(matches!(
            plan_up(&Composition::single(&s), &[], &bad),
            Err(Error::UnknownVersion(_))
        ));
        let goal = goals(&Composition::single(&s), &policy).unwrap();
        assert_eq!(goal[0].1.map(|m| m.version()), Some(Version::new(2)));
        assert!(goals(&Composition::single(&s), &bad).is_err());
    }

    #[test]
    fn multi_part_versions_order_numerically_not_as_text() {
        let s = Migrations::from_specs(vec![
            MigrationSpec::new("1.2".parse::<Version>().unwrap(), "a", "select 1;"),
            MigrationSpec::new("1.11".parse::<Version>().unwrap(), "b", "select 2;"),
        ])
        .unwrap();
        // "1.11" < "1.2" as text; applied 1.2 must not make 1.11 out of order.
        let row = HistoryRow {
            version: "1.2".parse().unwrap(),
            checksum: s.as_slice()[0].checksum().to_string(),
            ..applied(&s, 0)
        };
        let plan = plan_up(&Composition::single(&s), &[row], &Policy::default()).unwrap();
        assert_eq!(plan.apply.len(), 1);
        assert_eq!(plan.apply[0].migration().version().to_string(), "1.11");
    }

    #[test]
    fn down_refuses_before_touching_anything() {
        let s = Migrations::from_specs(vec![
            MigrationSpec::new(1, "a", "select 1;").down("select -1;"),
            MigrationSpec::new(2, "b", "select 2;"),
            MigrationSpec::new(3, "c", "select 3;").down("select -3;"),
        ])
        .unwrap();
        let h: Vec<_> = [1, 2, 3].iter().map(|&v| applied(&s, v)).collect();
        let one = plan_down(
            &Composition::single(&s),
            &h,
            Revert::Steps(1),
            &Policy::default(),
        )
        .unwrap();
        assert_eq!(one[0].migration().version(), Version::new(3));
        let err = plan_down(
            &Composition::single(&s),
            &h,
            Revert::To(Version::new(0)),
            &Policy::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("migration 2 (2_b.sql) has no down"),
            "{err}"
        );
        let h2 = [applied(&s, 1), applied(&s, 3)];
        let all = plan_down(
            &Composition::single(&s),
            &h2,
            Revert::To(Version::new(0)),
            &Policy::default(),
        )
        .unwrap();
        assert_eq!(
            all.iter()
                .map(|m| m.migration().version())
                .collect::<Vec<_>>(),
            [Version::new(3), Version::new(1)]
        );
        let mut ghost = applied(&s, 9);
        ghost.name = "ghost".into();
        let err = plan_down(
            &Composition::single(&s),
            &[applied(&s, 1), ghost],
            Revert::Steps(1),
            &Policy::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not in this binary"), "{err}");
    }

    #[test]
    fn down_to_zero_reverts_version_zero_too() {
        // diesel's `00000000000000_diesel_initial_setup` is version 0.
        let s = Migrations::from_specs(vec![
            MigrationSpec::new(0, "setup", "select 0;").down("select -0;"),
            MigrationSpec::new(1, "a", "select 1;").down("select -1;"),
        ])
        .unwrap();
        let h = [applied(&s, 0), applied(&s, 1)];
        let comp = Composition::single(&s);
        let all = plan_down(&comp, &h, Revert::To(Version::new(0)), &Policy::default()).unwrap();
        let versions: Vec<_> = all.iter().map(|m| m.migration().version()).collect();
        assert_eq!(versions, [Version::new(1), Version::new(0)]);
        assert_eq!(plan_down_all(&comp, &h).unwrap().len(), 2);
        let one = plan_down(&comp, &h, Revert::To(Version::new(1)), &Policy::default()).unwrap();
        assert!(one.is_empty());
    }

    /// A no-transaction migration 2 of three statements, as the history records it after
    /// its second statement failed.
    fn stopped(s: &Migrations, text: [&str; 3]) -> HistoryRow {
        let m = s.get(Version::new(2)).unwrap();
        let completed = crate::history::completed_of(text.iter().copied(), 1);
        HistoryRow {
            state: State::Failed,
            statements_done: 1,
            statements_total: 3,
            completed,
            checksum: m.checksum().to_string(),
            ..applied(s, 2)
        }
    }

    fn no_tx(statements: [&str; 3]) -> Migrations {
        Migrations::from_specs(vec![
            MigrationSpec::new(1, "a", "select 1;"),
            MigrationSpec::new(2, "idx", "").no_transaction(&statements),
        ])
        .unwrap()
    }

    #[test]
    fn a_failed_migration_fixed_after_its_completed_statements_resumes_there() {
        let ran = [
            "CREATE TABLE t (id int);",
            "CREATE INDEX CONCURRENTLY i ON t (idd);",
            "select 3;",
        ];
        let before = no_tx(ran);
        let row = stopped(&before, ran);
        let h = [applied(&before, 1), row];
        // Unchanged file: refused, naming the recovery.
        let err = plan_up(&Composition::single(&before), &h, &Policy::default()).unwrap_err();
        assert!(matches!(err, Error::Unfinished(_)), "{err}");
        assert!(
            err.to_string()
                .contains("fix the file at or after statement 2"),
            "{err}"
        );
        // Fixed at the failed statement: resumes at statement 2 (index 1) and says so.
        let fixed = no_tx([
            "CREATE TABLE t (id int);",
            "CREATE INDEX CONCURRENTLY i ON t (id);",
            "select 3;",
        ]);
        let plan = plan_up(&Composition::single(&fixed), &h, &Policy::default()).unwrap();
        assert!(plan.apply[0].is_resume() && plan.apply[0].from() == 1);
        assert!(matches!(
            plan.warnings[..],
            [Warning::ResumedAfterFix {
                from_statement: 1,
                ..
            }]
        ));
        // A completed statement changed: refused, naming it and the command.
        let edited = no_tx([
            "CREATE TABLE t (id bigint);",
            "CREATE INDEX CONCURRENTLY i ON t (id);",
            "select 3;",
        ]);
        let err = plan_up(&Composition::single(&edited), &h, &Policy::default()).unwrap_err();
        match &err {
            Error::CompletedChanged(c) => assert_eq!(c.statement, Some(0)),
            other => panic!("{other}"),
        }
        let text = err.to_string();
        assert!(text.contains("completed statement 1"), "{text}");
        assert!(text.contains("preflight repair --resume 2"), "{text}");
        // ... which the resume repair (a run with the unfinished policy lifted) overrides.
        let resume = Policy {
            resume_unfinished: true,
            ..Policy::default()
        };
        let plan = plan_up(&Composition::single(&edited), &h, &resume).unwrap();
        assert!(plan.apply[0].is_resume() && plan.apply[0].from() == 1);
    }

    #[test]
    fn a_half_reverted_migration_refuses_up_and_continues_down() {
        let s = Migrations::from_specs(vec![
            MigrationSpec::new(1, "a", "select 1;").down("select -1;"),
            MigrationSpec::new(2, "b", "select 2;").down("select -2;"),
        ])
        .unwrap();
        let down: Vec<&str> = s
            .get(Version::new(2))
            .unwrap()
            .down()
            .unwrap()
            .statements()
            .collect();
        let row = HistoryRow {
            state: State::RevertFailed,
            statements_done: 1,
            statements_total: 1,
            completed: crate::history::completed_of(down.iter().copied(), 1),
            ..applied(&s, 2)
        };
        let h = [applied(&s, 1), row.clone()];
        let err = plan_up(&Composition::single(&s), &h, &Policy::default()).unwrap_err();
        assert!(err.to_string().contains("was being reverted"), "{err}");
        let comp = Composition::single(&s);
        let steps = plan_down(&comp, &h, Revert::Steps(1), &Policy::default()).unwrap();
        assert!(steps[0].is_resume() && steps[0].from() == 1);
        // A revert to below it that leaves it out of range is refused.
        let unknown = HistoryRow {
            completed: String::new(),
            ..row
        };
        let err = plan_down(
            &comp,
            &[applied(&s, 1), unknown],
            Revert::Steps(1),
            &Policy::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::CompletedChanged(ref c) if c.down && c.statement.is_none()),
            "{err}"
        );
    }
}
