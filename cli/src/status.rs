//! `preflight status`: every migration of the sets and of the history, with its state, grouped
//! by set when there are several (a set the history holds but the command does not compose is
//! shown apart, left as it is), and the verdict a booting application would reach (computed by
//! the shared plan, not re-implemented).

use std::collections::BTreeMap;

use preflight_runtime::{Composition, Error, HistoryRow, Migrations, Plan, State, Version};
use serde_json::{json, Value};

use crate::table::Table;

/// The state of one version, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    Applied,
    Changed,
    Pending,
    /// Pending, below the newest applied version.
    OutOfOrder,
    /// Applied, not in this set, below its newest version (a file was deleted or renamed).
    Missing,
    /// Applied by a newer release: above this set's newest version.
    Ahead,
    /// Applied, of a set the command does not compose (removed from the composition, or
    /// another application's): left as it is.
    NotComposed,
    Failed {
        done: u32,
        total: u32,
    },
    InProgress {
        done: u32,
        total: u32,
    },
    /// A down body failed half-way (counts are of the down body).
    RevertFailed {
        done: u32,
        total: u32,
    },
    /// A down body's process stopped half-way.
    Reverting {
        done: u32,
        total: u32,
    },
}

impl Line {
    fn label(&self) -> String {
        match self {
            Line::Applied => "applied".into(),
            Line::Changed => "changed".into(),
            Line::Pending => "pending".into(),
            Line::OutOfOrder => "pending (out of order)".into(),
            Line::Missing => "missing".into(),
            Line::Ahead => "applied (newer release)".into(),
            Line::NotComposed => "applied (set not composed)".into(),
            Line::Failed { done, total } => format!("failed at statement {}/{total}", done + 1),
            Line::InProgress { done, total } => format!("in progress ({done}/{total} done)"),
            Line::RevertFailed { done, total } => {
                format!("revert failed at down statement {}/{total}", done + 1)
            }
            Line::Reverting { done, total } => {
                format!("being reverted ({done}/{total} down statements done)")
            }
        }
    }
}

pub(crate) struct Status<'a> {
    groups: Vec<Group<'a>>,
    verdict: Result<String, String>,
}

/// The lines of one set.
struct Group<'a> {
    set: String,
    /// The history holds this set but the command does not compose it.
    composed: bool,
    rows: Vec<(Version, String, Line, Option<&'a HistoryRow>)>,
}

/// The tables of `comp`'s sets and `history`, with the verdict of the runner's dry run
/// (`plan`): what a booting application would do, or the refusal it would meet.
pub(crate) fn compute<'a>(
    comp: &Composition<'_>,
    history: &'a [HistoryRow],
    planned: Result<&Plan<'_>, &Error>,
) -> Status<'a> {
    let mut groups: Vec<Group<'a>> = comp.sets().map(|set| group(set, history)).collect();
    let mut others: Vec<&str> = history
        .iter()
        .map(|r| r.set.as_str())
        .filter(|s| comp.set(s).is_none())
        .collect();
    others.sort_unstable();
    others.dedup();
    for set in others {
        let rows = history
            .iter()
            .filter(|r| r.set == set)
            .map(|r| {
                let line = match r.state {
                    State::Applied => Line::NotComposed,
                    _ => state_line(r, None),
                };
                (r.version, r.name.clone(), line, Some(r))
            })
            .collect();
        groups.push(Group {
            set: set.to_owned(),
            composed: false,
            rows,
        });
    }
    let verdict = match planned {
        Ok(p) if p.apply.is_empty() => Ok(match p.warnings.first() {
            Some(w) => format!("database is current ({w})"),
            None => "database is current".to_owned(),
        }),
        Ok(p) => Ok(format!(
            "{} migration(s) pending: `preflight up` applies them",
            p.apply.len()
        )),
        Err(e) => Err(format!("a booting application would refuse: {e}")),
    };
    Status { groups, verdict }
}

/// One set's lines: its migrations, and the rows of its history that it does not have.
fn group<'a>(set: &Migrations, history: &'a [HistoryRow]) -> Group<'a> {
    let history: Vec<&HistoryRow> = history.iter().filter(|r| r.set == set.set()).collect();
    let by_version: BTreeMap<Version, &HistoryRow> =
        history.iter().map(|r| (r.version, *r)).collect();
    let newest_applied = history.iter().map(|r| r.version).max();
    let newest_compiled = set.last().map(|m| m.version());
    let mut rows = Vec::new();
    for m in set {
        let row = by_version.get(&m.version()).copied();
        let line = match row {
            None if newest_applied.is_some_and(|n| n > m.version()) => Line::OutOfOrder,
            None => Line::Pending,
            Some(r) => state_line(r, Some(r.checksum_is(&m.checksum()))),
        };
        rows.push((m.version(), m.name().to_owned(), line, row));
    }
    for r in history
        .iter()
        .copied()
        .filter(|r| set.get(r.version).is_none())
    {
        let line = match r.state {
            State::Applied if newest_compiled.is_none_or(|n| r.version > n) => Line::Ahead,
            State::Applied => Line::Missing,
            _ => state_line(r, None),
        };
        rows.push((r.version, r.name.clone(), line, Some(r)));
    }
    rows.sort_by_key(|r| r.0);
    Group {
        set: set.set().to_owned(),
        composed: true,
        rows,
    }
}

fn state_line(r: &HistoryRow, checksum_ok: Option<bool>) -> Line {
    match r.state {
        State::Applied if checksum_ok == Some(false) => Line::Changed,
        State::Applied => Line::Applied,
        State::Failed => Line::Failed {
            done: r.statements_done,
            total: r.statements_total,
        },
        State::InProgress => Line::InProgress {
            done: r.statements_done,
            total: r.statements_total,
        },
        State::RevertFailed => Line::RevertFailed {
            done: r.statements_done,
            total: r.statements_total,
        },
        State::Reverting => Line::Reverting {
            done: r.statements_done,
            total: r.statements_total,
        },
    }
}

impl Status<'_> {
    /// Whether a boot would refuse (the command then exits 1).
    pub(crate) fn refuses(&self) -> bool {
        self.verdict.is_err()
    }

    pub(crate) fn render(&self) -> String {
        let grouped = self.groups.len() > 1;
        let mut out = String::new();
        for g in &self.groups {
            if grouped {
                if !out.is_empty() {
                    out.push('\n');
                }
                if g.composed {
                    out.push_str(&format!("set {}:\n", g.set));
                } else {
                    out.push_str(&format!(
                        "set {} (in the history, not composed here: left as it is):\n",
                        g.set
                    ));
                }
            }
            let mut t = Table::new(&["VERSION", "NAME", "STATE", "APPLIED AT", "DURATION"]);
            for (version, name, line, row) in &g.rows {
                t.row(vec![
                    version.to_string(),
                    name.clone(),
                    line.label(),
                    // To the second: enough for a person, and the same width on every row.
                    row.map_or(String::new(), |r| r.applied_at.chars().take(19).collect()),
                    row.filter(|r| r.state == State::Applied)
                        .map_or(String::new(), |r| format!("{} ms", r.execution_ms)),
                ]);
            }
            out.push_str(&t.render());
        }
        let verdict = match &self.verdict {
            Ok(v) | Err(v) => v,
        };
        format!("{out}\n{verdict}\n")
    }

    pub(crate) fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .groups
            .iter()
            .flat_map(|g| {
                g.rows.iter().map(move |(version, name, line, row)| {
                    json!({
                        "set": g.set,
                        "version": version.to_string(),
                        "name": name,
                        "state": line.label(),
                        "applied_at": row.map(|r| r.applied_at.clone()),
                        "execution_ms": row.map(|r| r.execution_ms),
                        "error": row.and_then(|r| r.error.clone()),
                    })
                })
            })
            .collect();
        let sets: Vec<Value> = self
            .groups
            .iter()
            .map(|g| json!({ "set": g.set, "composed": g.composed }))
            .collect();
        let (ok, verdict) = match &self.verdict {
            Ok(v) => (true, v),
            Err(v) => (false, v),
        };
        json!({ "migrations": rows, "sets": sets, "ok": ok, "verdict": verdict })
    }
}
