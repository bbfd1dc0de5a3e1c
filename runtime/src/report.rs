//! What a run did, for the caller to log or assert on.

use std::fmt;
use std::time::Duration;

use crate::error::in_set;
use crate::Version;

/// The outcome of an operation (run, revert, repair, adopt, reset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Migrations applied by this run, in order, with how long each body took.
    pub applied: Vec<Applied>,
    /// Migrations reverted by this run, in order.
    pub reverted: Vec<Applied>,
    /// Migrations recorded as applied without running them: a baseline, or a migration
    /// marked applied by hand ([`Repair`](crate::Repair)).
    pub marked: Vec<Version>,
    /// Pending migrations left alone because they come after the target: (set, version).
    pub skipped: Vec<(String, Version)>,
    /// Conditions that did not stop the run (also emitted as `tracing` warnings).
    pub warnings: Vec<Warning>,
    /// Whether the one-query fast path found the database current (no lock, nothing else):
    /// at boot, or while waiting for the lock another run held until it had migrated
    /// (then `lock_taken` is false and `lock_wait` tells how long it waited).
    pub fast_path: bool,
    /// Whether the migration lock was taken.
    pub lock_taken: bool,
    /// How long the run waited for the lock.
    pub lock_wait: Duration,
    /// How long [`Runner::wait`](crate::Runner::wait) waited for another process to migrate.
    pub waited: Duration,
    /// Another tool's history taken over by this run, if any (see [`crate::adopt::Adopt`]).
    pub adopted: Option<crate::adopt::Adopted>,
}

impl Report {
    /// The versions applied, in order.
    pub fn applied_versions(&self) -> Vec<Version> {
        self.applied.iter().map(|a| a.version).collect()
    }

    /// The versions reverted, in order.
    pub fn reverted_versions(&self) -> Vec<Version> {
        self.reverted.iter().map(|a| a.version).collect()
    }
}

/// One line for a log: what the run did (`database is current`, `applied 3 migrations: 1, 2,
/// 3`, ...), followed by its warnings.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // In a composition of several sets each version is shown with its set.
        let mut sets = self.applied.iter().chain(&self.reverted).map(|a| &a.set);
        let first = sets.next();
        let multi = sets.any(|s| Some(s) != first);
        let list = |items: &[Applied]| {
            items
                .iter()
                .map(|a| {
                    if multi {
                        format!("{} {}", a.set, a.version)
                    } else {
                        a.version.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.applied.is_empty() {
            parts.push(format!(
                "applied {} migration(s): {}",
                self.applied.len(),
                list(&self.applied)
            ));
        }
        if !self.reverted.is_empty() {
            parts.push(format!(
                "reverted {} migration(s): {}",
                self.reverted.len(),
                list(&self.reverted)
            ));
        }
        if !self.marked.is_empty() {
            parts.push(format!(
                "recorded {} migration(s) as applied without running them: {}",
                self.marked.len(),
                crate::error::list(&self.marked)
            ));
        }
        if parts.is_empty() {
            parts.push("database is current".to_owned());
        }
        f.write_str(&parts.join("; "))?;
        for w in &self.warnings {
            write!(f, "; warning: {w}")?;
        }
        Ok(())
    }
}

/// One migration applied or reverted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The migration's set.
    pub set: String,
    /// The version.
    pub version: Version,
    /// The name.
    pub name: String,
    /// How long it took, measured by the client (round trips included).
    pub duration: Duration,
}

/// A condition that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
///
/// Warnings about migrations carry their set when the run composes several (`None` otherwise).
pub enum Warning {
    /// The history has versions above the binary's newest (a newer release already migrated;
    /// this is an older replica in a rolling deploy).
    AheadOfBinary {
        /// The set, when the run composes several.
        set: Option<String>,
        /// The versions the binary does not know, ascending.
        versions: Vec<Version>,
    },
    /// Applied versions the binary does not have, allowed by `allow_missing`.
    Missing {
        /// The set, when the run composes several.
        set: Option<String>,
        /// The versions, ascending.
        versions: Vec<Version>,
    },
    /// Pending versions below the newest applied one, applied because `out_of_order` allows it.
    OutOfOrder {
        /// The set, when the run composes several.
        set: Option<String>,
        /// The versions, ascending.
        versions: Vec<Version>,
    },
    /// The database is already past the target version; migrate does not revert (use revert).
    BeyondTarget {
        /// The set, when the run composes several.
        set: Option<String>,
        /// The target.
        target: Version,
        /// Applied versions above it.
        versions: Vec<Version>,
    },
    /// An unfinished migration was resumed, as [`Repair::Resume`](crate::Repair::Resume) asked.
    Resumed {
        /// The set, when the run composes several.
        set: Option<String>,
        /// The version.
        version: Version,
        /// The unit (statement or block; 0-based) it resumed from.
        from_statement: u32,
    },
    /// An unfinished migration whose file was changed at or after the unit that stopped it
    /// (the units it completed are unchanged) was resumed there by a plain run.
    ResumedAfterFix {
        /// The set, when the run composes several.
        set: Option<String>,
        /// The version.
        version: Version,
        /// The unit (statement or block; 0-based) it resumed from.
        from_statement: u32,
    },
    /// The history holds migrations of a set this run does not compose (a set removed from
    /// the composition, or another application's): left as they are, never reverted
    /// implicitly.
    RemovedSet {
        /// The set.
        set: String,
        /// Its versions in the history, ascending.
        versions: Vec<Version>,
    },
    /// The database is CockroachDB: the lease lock was used and migrations were recorded
    /// `in_progress` then `applied`, since DDL there is not transactional.
    CockroachDb,
    /// The live schema differs from what the migrations build (a run with
    /// [`Runner::warn_on_drift`](crate::Runner::warn_on_drift)).
    Drift(Box<crate::drift::Drift>),
    /// [`Runner::warn_on_drift`](crate::Runner::warn_on_drift) could not compare (no scratch
    /// server configured, no privilege to create a database, ...): why.
    DriftUnchecked {
        /// The error.
        reason: String,
    },
    /// A migration could not take a table lock within its lock timeout at first, and
    /// succeeded when tried again (see [`Runner::lock_retries`](crate::Runner::lock_retries)).
    LockRetried {
        /// The set, when the run composes several.
        set: Option<String>,
        /// The version.
        version: Version,
        /// How many attempts it took (the last one succeeded).
        attempts: u32,
        /// From its first attempt to its success.
        waited: Duration,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[Version]| {
            v.iter()
                .map(Version::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Warning::AheadOfBinary { set, versions } => write!(
                f,
                "the database has migration(s) {}{} newer than this binary knows (a newer \
                 release migrated it); booting anyway",
                in_set(set),
                list(versions)
            ),
            Warning::Missing { set, versions } => write!(
                f,
                "applied migration(s) {}{} are not in this binary (allowed)",
                in_set(set),
                list(versions)
            ),
            Warning::OutOfOrder { set, versions } => write!(
                f,
                "migration(s) {}{} applied out of order (allowed)",
                in_set(set),
                list(versions)
            ),
            Warning::BeyondTarget {
                set,
                target,
                versions,
            } => write!(
                f,
                "the database is past the target {}{target}: {} applied; use revert to go back",
                in_set(set),
                list(versions)
            ),
            Warning::Resumed {
                set,
                version,
                from_statement,
            } => write!(
                f,
                "resumed unfinished migration {}{version} from statement {}",
                in_set(set),
                from_statement + 1
            ),
            Warning::ResumedAfterFix {
                set,
                version,
                from_statement,
            } => {
                let n = from_statement + 1;
                write!(
                    f,
                    "migration {}{version} had stopped at statement {n}; its file changed at or \
                     after that statement",
                    in_set(set)
                )?;
                if *from_statement > 0 {
                    write!(f, " and statements 1..{from_statement} are unchanged")?;
                }
                write!(f, ", so it resumed at statement {n}")
            }
            Warning::RemovedSet { set, versions } => write!(
                f,
                "the history holds migration(s) {} of set `{set}`, which this run does not \
                 compose: left as they are",
                list(versions)
            ),
            Warning::CockroachDb => f.write_str(
                "CockroachDB: lease lock, each migration recorded in_progress then applied \
                 (DDL is not transactional there)",
            ),
            Warning::Drift(d) => {
                write!(
                    f,
                    "the schema has drifted from the migrations: {} difference(s)",
                    d.differences.len()
                )?;
                for diff in d.differences.iter().take(5) {
                    write!(f, "; {} {} {}", diff.change.as_str(), diff.kind, diff.name)?;
                }
                if d.differences.len() > 5 {
                    f.write_str("; ... (`preflight drift` lists them all)")?;
                }
                Ok(())
            }
            Warning::DriftUnchecked { reason } => {
                write!(f, "could not check the schema for drift: {reason}")
            }
            Warning::LockRetried {
                set,
                version,
                attempts,
                waited,
            } => write!(
                f,
                "migration {}{version} was blocked by a lock another session held; it succeeded \
                 at attempt {attempts}, after {:.1} s",
                in_set(set),
                waited.as_secs_f64()
            ),
        }
    }
}

#[cfg(test)]
mod display_tests {
    use super::*;

    #[test]
    fn summarises_in_one_line() {
        assert_eq!(Report::default().to_string(), "database is current");
        let r = Report {
            applied: vec![Applied {
                set: "app".into(),
                version: Version::new(2),
                name: "b".into(),
                duration: Duration::from_millis(3),
            }],
            warnings: vec![Warning::AheadOfBinary {
                set: None,
                versions: vec![Version::new(9)],
            }],
            ..Report::default()
        };
        let text = r.to_string();
        assert!(
            text.starts_with("applied 1 migration(s): 2; warning: "),
            "{text}"
        );
    }
}
