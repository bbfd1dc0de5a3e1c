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

use std::collections::BTreeMap;

use crate::adopt::{Adopted, ForeignTable};
use crate::error::{Error, Unfinished};
use crate::history::{HistoryRow, State};
use crate::report::Warning;
use crate::{Migration, Migrations, Version};

/// The options that decide what a run may do (set through the runner's builder).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Apply pending migrations older than the newest applied one instead of refusing.
    pub out_of_order: bool,
    /// Boot although applied migrations below the binary's newest are missing from it.
    pub allow_missing: bool,
    /// Apply only up to this version (which must be in the binary).
    pub target: Option<Version>,
    /// Resume `in_progress` / `failed` migrations from the statement after the last completed
    /// one instead of refusing.
    pub resume_unfinished: bool,
}

/// One migration to apply.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// Apply a pending migration.
    Apply(&'a Migration),
    /// Continue an unfinished migration from statement `from` (0-based).
    Resume {
        /// The migration.
        migration: &'a Migration,
        /// The first statement to run.
        from: u32,
    },
}

impl<'a> Step<'a> {
    /// The migration of the step.
    pub fn migration(&self) -> &'a Migration {
        match self {
            Step::Apply(m) => m,
            Step::Resume { migration, .. } => migration,
        }
    }

    /// The first statement the step runs (0-based): 0, or where a resumption continues.
    pub fn from(&self) -> u32 {
        match self {
            Step::Apply(_) => 0,
            Step::Resume { from, .. } => *from,
        }
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
    /// The migrations to revert, newest first.
    pub revert: Vec<&'a Migration>,
    /// A reset that cannot revert: the objects it drops first.
    pub teardown: Option<Teardown>,
    /// Pending versions left alone because they are above the target version.
    pub skipped: Vec<Version>,
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

/// The migration the database must end at (the newest at or below the target) and how many
/// migrations of the binary are at or below it: what the fast path compares with.
pub(crate) fn goal(set: &Migrations, target: Option<Version>) -> Option<(&Migration, usize)> {
    let count = match target {
        Some(t) => set.iter().take_while(|m| m.version() <= t).count(),
        None => set.len(),
    };
    let last = set.as_slice().get(count.checked_sub(1)?)?;
    Some((last, count))
}

/// Plans an up run (`apply`, `skipped`, `warnings`), or says which policy refuses it.
pub(crate) fn plan_up<'a>(
    set: &'a Migrations,
    history: &[HistoryRow],
    policy: &Policy,
) -> Result<Plan<'a>, Error> {
    if let Some(t) = policy.target {
        if set.get(t).is_none() {
            return Err(Error::UnknownVersion(format!(
                "target version {t} is not a migration of this binary"
            )));
        }
    }
    let within_target = |v: Version| policy.target.is_none_or(|t| v <= t);
    let newest_compiled = set.last().map(Migration::version);
    let rows: BTreeMap<Version, &HistoryRow> = history.iter().map(|r| (r.version, r)).collect();

    let mut plan = Plan::default();
    let mut resumes = BTreeMap::new();
    let mut ahead = Vec::new();
    let mut missing = Vec::new();
    for (&version, row) in &rows {
        let Some(m) = set.get(version) else {
            if row.state != State::Applied {
                return Err(unfinished(None, row));
            }
            if newest_compiled.is_none_or(|newest| version > newest) {
                ahead.push(version);
            } else {
                missing.push(version);
            }
            continue;
        };
        if !row.checksum_is(&m.checksum()) {
            return Err(Error::ChecksumMismatch {
                version,
                path: m.path().to_owned(),
                recorded: row.checksum.clone(),
                compiled: m.checksum(),
            });
        }
        if row.state != State::Applied {
            if policy.resume_unfinished && within_target(version) {
                resumes.insert(version, (m, row.statements_done));
            } else {
                return Err(unfinished(Some(m), row));
            }
        }
    }
    if !missing.is_empty() {
        if !policy.allow_missing {
            return Err(Error::Missing { versions: missing });
        }
        plan.warnings.push(Warning::Missing { versions: missing });
    }
    if !ahead.is_empty() {
        plan.warnings
            .push(Warning::AheadOfBinary { versions: ahead });
    }

    let newest_recorded = rows.keys().next_back().copied();
    let mut out_of_order = Vec::new();
    for m in set.iter() {
        let v = m.version();
        if let Some(&(m, from)) = resumes.get(&v) {
            plan.apply.push(Step::Resume { migration: m, from });
            plan.warnings.push(Warning::Resumed {
                version: v,
                from_statement: from,
            });
            continue;
        }
        if rows.contains_key(&v) {
            continue;
        }
        if !within_target(v) {
            plan.skipped.push(v);
            continue;
        }
        if newest_recorded.is_some_and(|newest| v < newest) {
            out_of_order.push(v);
        }
        plan.apply.push(Step::Apply(m));
    }
    if !out_of_order.is_empty() {
        if !policy.out_of_order {
            return Err(Error::OutOfOrder {
                pending: out_of_order,
                newest_applied: newest_recorded.unwrap_or(Version::new(0)),
            });
        }
        plan.warnings.push(Warning::OutOfOrder {
            versions: out_of_order,
        });
    }
    if let Some(t) = policy.target {
        let beyond: Vec<Version> = rows.keys().copied().filter(|&v| v > t).collect();
        if !beyond.is_empty() {
            plan.warnings.push(Warning::BeyondTarget {
                target: t,
                versions: beyond,
            });
        }
    }
    Ok(plan)
}

/// How far to revert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revert {
    /// Revert every applied migration above this version (`Version::new(0)`: all of them).
    To(Version),
    /// Revert the newest `n` applied migrations.
    Steps(usize),
}

/// Plans a revert: the migrations to revert, newest first. Refuses, before anything is
/// touched, when one of them is not in the binary, has no down body, was changed since it was
/// applied, or when any row is unfinished.
pub(crate) fn plan_down<'a>(
    set: &'a Migrations,
    history: &[HistoryRow],
    revert: Revert,
) -> Result<Vec<&'a Migration>, Error> {
    let mut rows: Vec<&HistoryRow> = history.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.version));
    if let Some(row) = rows.iter().find(|r| r.state != State::Applied) {
        return Err(unfinished(set.get(row.version), row));
    }
    let selected: Vec<&HistoryRow> = match revert {
        Revert::To(v) => rows.into_iter().take_while(|r| r.version > v).collect(),
        Revert::Steps(n) => rows.into_iter().take(n).collect(),
    };
    let mut reasons = Vec::new();
    let mut out = Vec::new();
    for row in selected {
        match set.get(row.version) {
            None => reasons.push(format!(
                "migration {} is not in this binary, so its down body is unknown",
                row.version
            )),
            Some(m) if m.down().is_none() => reasons.push(format!(
                "migration {} ({}) has no down migration",
                m.version(),
                m.path()
            )),
            Some(m) if !row.checksum_is(&m.checksum()) => reasons.push(format!(
                "migration {} ({}) was changed after it was applied (recorded checksum {}, \
                 file {}); its down body may not match what was applied",
                m.version(),
                m.path(),
                row.checksum,
                m.checksum()
            )),
            Some(m) => out.push(m),
        }
    }
    if !reasons.is_empty() {
        return Err(Error::NoDown { reasons });
    }
    Ok(out)
}

pub(crate) fn unfinished(m: Option<&Migration>, row: &HistoryRow) -> Error {
    Error::Unfinished(Box::new(Unfinished {
        version: row.version,
        name: row.name.clone(),
        path: m.map(|m| m.path().to_owned()),
        state: row.state,
        statements_done: row.statements_done,
        statements_total: row.statements_total,
        next_line: m.and_then(|m| m.up().line_of(row.statements_done as usize)),
        error: row.error.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checksum, MigrationSpec};

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
            applied_by: String::new(),
            error: None,
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
        let plan = plan_up(&s, &[], &Policy::default()).unwrap();
        assert_eq!(versions(&plan), [1, 2, 3]);
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn current_history_plans_nothing() {
        let s = set(&[1, 2]);
        let h = [applied(&s, 1), applied(&s, 2)];
        let plan = plan_up(&s, &h, &Policy::default()).unwrap();
        assert!(plan.apply.is_empty() && plan.warnings.is_empty());
    }

    #[test]
    fn changed_checksum_refuses_naming_both() {
        let s = set(&[1, 2]);
        let mut row = applied(&s, 1);
        row.checksum = Checksum::of("other").to_string();
        let err = plan_up(&s, &[row], &Policy::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::ChecksumMismatch { version, .. } if version == Version::new(1))
        );
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
        let plan = plan_up(&s, &h, &Policy::default()).unwrap();
        assert!(plan.apply.is_empty());
        assert_eq!(
            plan.warnings,
            [Warning::AheadOfBinary {
                versions: vec![Version::new(3)]
            }]
        );
    }

    #[test]
    fn missing_refuses_unless_allowed() {
        let s = set(&[1, 3]);
        let h = [applied(&s, 1), applied(&s, 2), applied(&s, 3)];
        let err = plan_up(&s, &h, &Policy::default()).unwrap_err();
        assert!(matches!(err, Error::Missing { ref versions } if versions == &[Version::new(2)]));
        let policy = Policy {
            allow_missing: true,
            ..Policy::default()
        };
        let plan = plan_up(&s, &h, &policy).unwrap();
        assert!(plan.apply.is_empty());
        assert!(matches!(plan.warnings[0], Warning::Missing { .. }));
    }

    #[test]
    fn out_of_order_refuses_unless_allowed() {
        let s = set(&[1, 2, 3, 4]);
        let h = [applied(&s, 1), applied(&s, 3)];
        let err = plan_up(&s, &h, &Policy::default()).unwrap_err();
        match err {
            Error::OutOfOrder {
                pending,
                newest_applied,
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
        let plan = plan_up(&s, &h, &policy).unwrap();
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
        let err = plan_up(&s, &h, &Policy::default()).unwrap_err();
        assert!(matches!(err, Error::Unfinished(ref u) if u.version == Version::new(2)));
        let policy = Policy {
            resume_unfinished: true,
            ..Policy::default()
        };
        let plan = plan_up(&s, &h, &policy).unwrap();
        assert!(matches!(plan.apply[0], Step::Resume { from: 0, .. }));
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
        let err = plan_up(&s, &[applied(&s, 1), row], &policy).unwrap_err();
        assert!(matches!(err, Error::Unfinished(ref u) if u.path.is_none()));
    }

    #[test]
    fn target_stops_and_skips() {
        let s = set(&[1, 2, 3]);
        let policy = Policy {
            target: Some(Version::new(2)),
            ..Policy::default()
        };
        let plan = plan_up(&s, &[], &policy).unwrap();
        assert_eq!(versions(&plan), [1, 2]);
        assert_eq!(plan.skipped, [Version::new(3)]);
        let bad = Policy {
            target: Some(Version::new(7)),
            ..Policy::default()
        };
        assert!(matches!(
            plan_up(&s, &[], &bad),
            Err(Error::UnknownVersion(_))
        ));
        assert_eq!(goal(&s, Some(Version::new(2))).unwrap().1, 2);
        assert!(goal(&s, Some(Version::new(0))).is_none());
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
        let plan = plan_up(&s, &[row], &Policy::default()).unwrap();
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
        let one = plan_down(&s, &h, Revert::Steps(1)).unwrap();
        assert_eq!(one[0].version(), Version::new(3));
        let err = plan_down(&s, &h, Revert::To(Version::new(0))).unwrap_err();
        assert!(
            err.to_string()
                .contains("migration 2 (2_b.sql) has no down"),
            "{err}"
        );
        let h2 = [applied(&s, 1), applied(&s, 3)];
        let all = plan_down(&s, &h2, Revert::To(Version::new(0))).unwrap();
        assert_eq!(
            all.iter().map(|m| m.version()).collect::<Vec<_>>(),
            [Version::new(3), Version::new(1)]
        );
        let mut ghost = applied(&s, 9);
        ghost.name = "ghost".into();
        let err = plan_down(&s, &[applied(&s, 1), ghost], Revert::Steps(1)).unwrap_err();
        assert!(err.to_string().contains("not in this binary"), "{err}");
    }
}
