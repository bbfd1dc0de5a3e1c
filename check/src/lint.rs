//! Lints: `squawk-linter`'s findings, narrowed to what a team keeps on.
//!
//! By default only lock and safety risks are reported, and only on tables that existed before
//! the migration: a table created earlier in the same migration is empty and unused, so an
//! index built on it without `CONCURRENTLY`, or a constraint added without `NOT VALID`, locks
//! nothing anyone waits for. Style preferences and compatibility rules are opt-in. Every rule
//! Preflight names is documented in [`CATALOGUE`] (and LINTS.md) with what it protects against
//! and how to do it safely.

use std::collections::HashSet;
use std::str::FromStr;

use preflight_runtime::source::{Diagnostic, Level, Position, StatementAllow, NOT_A_MIGRATION};
use preflight_runtime::Kind;
use squawk_linter::{Linter, Rule};
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::SyntaxNode;

use crate::sql::Analysis;

/// Why a rule exists, which decides whether it is on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Takes a lock that blocks reads or writes of a table that has data and traffic, for as
    /// long as a scan or a rewrite lasts. On by default; never reported on a table created
    /// earlier in the same migration.
    Lock,
    /// Takes an `ACCESS EXCLUSIVE` lock only for an instant (no scan, no rewrite): the risk is
    /// waiting for it behind a long transaction while everyone queues behind the wait, which
    /// every DDL statement shares (`ADD COLUMN` too, which no rule reports) and which
    /// `Runner::sql_lock_timeout` guards against. Opt-in.
    BriefLock,
    /// Loses data or fails on real data. On by default.
    Safety,
    /// Breaks the application version still running during a rolling deploy (a dropped or
    /// renamed column or table). Opt-in: such changes are deliberate and usually staged.
    Compatibility,
    /// A preference of style (types, names, idempotence). Opt-in.
    Style,
}

impl Group {
    /// The name used in `allow`/`enable` options.
    pub fn name(&self) -> &'static str {
        match self {
            Group::Lock => "lock",
            Group::BriefLock => "brief-lock",
            Group::Safety => "safety",
            Group::Compatibility => "compatibility",
            Group::Style => "style",
        }
    }

    fn on_by_default(&self) -> bool {
        matches!(self, Group::Lock | Group::Safety)
    }
}

/// A rule Preflight documents: its name, group, what it protects against, how to do it safely.
#[derive(Debug, Clone, Copy)]
pub struct RuleDoc {
    /// The name, as in `-- preflight:allow <name>`.
    pub name: &'static str,
    /// Its group.
    pub group: Group,
    /// What it protects against.
    pub protects: &'static str,
    /// How to make the change safely.
    pub safely: &'static str,
}

const GROUPS: [Group; 5] = [
    Group::Lock,
    Group::BriefLock,
    Group::Safety,
    Group::Compatibility,
    Group::Style,
];

/// Rules about the directory rather than SQL (Preflight's own, not squawk's).
const OWN_RULES: [&str; 2] = [NOT_A_MIGRATION, crate::RUNS_AS_SCRIPT];

/// Every rule Preflight names, with its documentation. Other squawk rule names are accepted by
/// `enable` (see <https://squawkhq.com/docs/rules>), but are off by default.
pub const CATALOGUE: &[RuleDoc] = &[
    RuleDoc {
        name: "require-concurrent-index-creation",
        group: Group::Lock,
        protects: "`CREATE INDEX` without `CONCURRENTLY` blocks every write to the table until the index is built, minutes on a large table.",
        safely: "`CREATE INDEX CONCURRENTLY` in a migration of its own (it cannot run in a transaction; Preflight runs such a file outside one automatically).",
    },
    RuleDoc {
        name: "require-concurrent-index-deletion",
        group: Group::BriefLock,
        protects: "`DROP INDEX` without `CONCURRENTLY` takes an `ACCESS EXCLUSIVE` lock on the table for an instant, but waits for it behind every running query while blocking all new ones.",
        safely: "`DROP INDEX CONCURRENTLY` in a migration of its own, or a `lock_timeout` (`Runner::sql_lock_timeout`) so that the wait fails instead of queueing traffic.",
    },
    RuleDoc {
        name: "require-concurrent-reindex",
        group: Group::Lock,
        protects: "`REINDEX` without `CONCURRENTLY` blocks writes (and reads that use the index) while it rebuilds.",
        safely: "`REINDEX ... CONCURRENTLY` in a migration of its own.",
    },
    RuleDoc {
        name: "require-concurrent-partition-detach",
        group: Group::Lock,
        protects: "`DETACH PARTITION` without `CONCURRENTLY` takes an `ACCESS EXCLUSIVE` lock on the parent table.",
        safely: "`ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY` in a migration of its own.",
    },
    RuleDoc {
        name: "constraint-missing-not-valid",
        group: Group::Lock,
        protects: "Adding a `CHECK` or foreign key constraint scans the whole table under a lock that blocks writes.",
        safely: "Add it `NOT VALID` (instant), then `ALTER TABLE ... VALIDATE CONSTRAINT` in a later migration (scans without blocking writes).",
    },
    RuleDoc {
        name: "adding-foreign-key-constraint",
        group: Group::Lock,
        protects: "A foreign key takes a `SHARE ROW EXCLUSIVE` lock on both tables and scans the referencing one, blocking writes to both.",
        safely: "Add the constraint `NOT VALID`, then `VALIDATE CONSTRAINT` in a later migration.",
    },
    RuleDoc {
        name: "disallowed-unique-constraint",
        group: Group::Lock,
        protects: "`ADD CONSTRAINT ... UNIQUE` builds its index under an `ACCESS EXCLUSIVE` lock.",
        safely: "`CREATE UNIQUE INDEX CONCURRENTLY`, then `ADD CONSTRAINT ... UNIQUE USING INDEX` (instant).",
    },
    RuleDoc {
        name: "adding-serial-primary-key-field",
        group: Group::Lock,
        protects: "`ADD PRIMARY KEY` builds its index under an `ACCESS EXCLUSIVE` lock.",
        safely: "`CREATE UNIQUE INDEX CONCURRENTLY`, then `ADD CONSTRAINT ... PRIMARY KEY USING INDEX`.",
    },
    RuleDoc {
        name: "changing-column-type",
        group: Group::Lock,
        protects: "Changing a column's type rewrites the table and its indexes under an `ACCESS EXCLUSIVE` lock (except a few binary-compatible changes).",
        safely: "Add a new column, backfill it in batches, switch the application, drop the old column.",
    },
    RuleDoc {
        name: "adding-not-nullable-field",
        group: Group::Lock,
        protects: "`SET NOT NULL` scans the whole table under an `ACCESS EXCLUSIVE` lock.",
        safely: "Add `CHECK (col IS NOT NULL) NOT VALID`, `VALIDATE CONSTRAINT` it, then `SET NOT NULL` (PostgreSQL 12+ uses the validated check and skips the scan).",
    },
    RuleDoc {
        name: "adding-field-with-default",
        group: Group::Lock,
        protects: "A column added with a volatile default (`random()`, `gen_random_uuid()`, `clock_timestamp()`) rewrites the table under an `ACCESS EXCLUSIVE` lock.",
        safely: "Add the column without a default (or with a constant one), set the default, backfill existing rows in batches.",
    },
    RuleDoc {
        name: "prefer-repack",
        group: Group::Lock,
        protects: "`VACUUM FULL` and `CLUSTER` rewrite the table under an `ACCESS EXCLUSIVE` lock.",
        safely: "`pg_repack` (or plain `VACUUM`), outside migrations.",
    },
    RuleDoc {
        name: "adding-required-field",
        group: Group::Safety,
        protects: "A `NOT NULL` column without a default fails on a table that has rows: the migration works on an empty development database and fails in production.",
        safely: "Give it a default, or add it nullable, backfill, then set it `NOT NULL`.",
    },
    RuleDoc {
        name: "ban-truncate-cascade",
        group: Group::Safety,
        protects: "`TRUNCATE ... CASCADE` also empties every table that references this one, recursively.",
        safely: "Truncate the tables you mean, by name, without `CASCADE`.",
    },
    RuleDoc {
        name: "ban-drop-database",
        group: Group::Safety,
        protects: "Dropping a database from a migration destroys every table in it.",
        safely: "Do it by hand, with a backup, never from a migration.",
    },
    RuleDoc {
        name: "ban-concurrent-index-creation-in-transaction",
        group: Group::Safety,
        protects: "`CREATE INDEX CONCURRENTLY` fails inside a transaction block.",
        safely: "Put it outside the file's `BEGIN; ... COMMIT;` blocks, or in a migration of its own.",
    },
    RuleDoc {
        name: "identifier-too-long",
        group: Group::Safety,
        protects: "PostgreSQL silently truncates names longer than 63 bytes, so a later migration that uses the full name fails, or two names collide.",
        safely: "Keep names at most 63 bytes.",
    },
    RuleDoc {
        name: "ban-duplicate-column-assignments",
        group: Group::Safety,
        protects: "Assigning one column twice in an `UPDATE` or `INSERT` is an error.",
        safely: "Assign each column once.",
    },
    RuleDoc {
        name: "ban-drop-table",
        group: Group::Compatibility,
        protects: "The running application version may still use the table, and its data is gone.",
        safely: "Stop using it in one release, drop it in a later one (with a backup).",
    },
    RuleDoc {
        name: "ban-drop-column",
        group: Group::Compatibility,
        protects: "The running application version may still read or write the column.",
        safely: "Stop using it in one release, drop it in a later one.",
    },
    RuleDoc {
        name: "ban-drop-not-null",
        group: Group::Compatibility,
        protects: "Code that assumes the column is never null starts seeing nulls.",
        safely: "Change the code first.",
    },
    RuleDoc {
        name: "renaming-column",
        group: Group::Compatibility,
        protects: "The running application version still uses the old name.",
        safely: "Add the new column, write both, backfill, switch reads, drop the old one.",
    },
    RuleDoc {
        name: "renaming-table",
        group: Group::Compatibility,
        protects: "The running application version still uses the old name.",
        safely: "Create the new table (or a view with the old name), migrate, drop the old one.",
    },
    RuleDoc {
        name: "prefer-bigint-over-int",
        group: Group::Style,
        protects: "A 32-bit key runs out at 2^31 rows, and widening it later rewrites the table.",
        safely: "`bigint` for keys that may grow.",
    },
    RuleDoc {
        name: "prefer-bigint-over-smallint",
        group: Group::Style,
        protects: "A 16-bit column overflows at 32,767.",
        safely: "`bigint`, or `integer` when the range is known.",
    },
    RuleDoc {
        name: "prefer-identity",
        group: Group::Style,
        protects: "`serial` creates a sequence with its own ownership and permission quirks.",
        safely: "`GENERATED ... AS IDENTITY`.",
    },
    RuleDoc {
        name: "prefer-text-field",
        group: Group::Style,
        protects: "Changing a `varchar(n)` limit later takes an `ACCESS EXCLUSIVE` lock.",
        safely: "`text` with a `CHECK (length(col) <= n)` constraint.",
    },
    RuleDoc {
        name: "prefer-timestamp-tz",
        group: Group::Style,
        protects: "`timestamp` without time zone loses the offset and misorders events across zones.",
        safely: "`timestamptz`.",
    },
    RuleDoc {
        name: "ban-char-field",
        group: Group::Style,
        protects: "`char(n)` pads with spaces and compares surprisingly.",
        safely: "`text` (or `varchar`).",
    },
    RuleDoc {
        name: "prefer-robust-stmts",
        group: Group::Style,
        protects: "A statement without `IF [NOT] EXISTS` fails when re-run by hand after a partial failure.",
        safely: "`IF NOT EXISTS` / `IF EXISTS` where the statement allows it.",
    },
];

/// The squawk rules that are about locks, which a table created earlier in the same migration
/// never triggers (squawk itself skips only some, and only inside a transaction it can see).
fn is_lock_rule(rule: Rule) -> bool {
    lookup(&rule.to_string()).is_some_and(|d| matches!(d.group, Group::Lock | Group::BriefLock))
        || rule == Rule::AddingRequiredField
}

fn lookup(name: &str) -> Option<&'static RuleDoc> {
    CATALOGUE.iter().find(|d| d.name == name)
}

/// Which rules a project lints: the defaults, plus what it enables, minus what it allows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    enable: Vec<String>,
    allow: Vec<String>,
}

impl Selection {
    /// Enables rules or groups (opt-in ones, or any squawk rule); an unknown name is an error.
    pub(crate) fn enable(&mut self, names: &str) -> Result<(), String> {
        for name in split(names) {
            validate(name)?;
            self.enable.push(name.to_owned());
        }
        Ok(())
    }

    /// Allows (turns off) rules or groups for the whole project; an unknown name is an error.
    pub(crate) fn allow(&mut self, names: &str) -> Result<(), String> {
        for name in split(names) {
            validate(name)?;
            self.allow.push(name.to_owned());
        }
        Ok(())
    }

    /// Whether a rule of Preflight's own (about the directory) is allowed project-wide.
    pub(crate) fn allows_own(&self, rule: &str) -> bool {
        self.allow.iter().any(|a| a == rule)
    }

    /// The squawk rules to run.
    fn rules(&self) -> Vec<Rule> {
        let named = |list: &[String], rule: Rule| {
            let name = rule.to_string();
            let group = lookup(&name).map(|d| d.group.name());
            list.iter().any(|n| {
                *n == name || Some(n.as_str()) == group || Rule::from_str(n).ok() == Some(rule)
            })
        };
        let mut rules: Vec<Rule> = CATALOGUE
            .iter()
            .filter(|d| d.group.on_by_default())
            .filter_map(|d| Rule::from_str(d.name).ok())
            .collect();
        for rule in CATALOGUE.iter().filter_map(|d| Rule::from_str(d.name).ok()) {
            if named(&self.enable, rule) && !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        for name in &self.enable {
            if let Ok(rule) = Rule::from_str(name) {
                for r in std::iter::once(rule).chain(rule.expands_to().iter().copied()) {
                    if !rules.contains(&r) {
                        rules.push(r);
                    }
                }
            }
        }
        rules.retain(|&r| !named(&self.allow, r));
        rules
    }
}

fn split(names: &str) -> impl Iterator<Item = &str> {
    names
        .split([',', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

/// Checks a rule or group name: Preflight's, or any squawk rule.
fn validate(name: &str) -> Result<(), String> {
    let group = GROUPS.iter().any(|g| g.name() == name);
    if group || lookup(name).is_some() || OWN_RULES.contains(&name) || Rule::from_str(name).is_ok()
    {
        return Ok(());
    }
    Err(format!(
        "unknown lint rule `{name}`: the rules are listed in LINTS.md (groups `lock`, `safety`, \
         `compatibility`, `style`); any squawk rule name (https://squawkhq.com/docs/rules) \
         works too"
    ))
}

/// Parses rule names from a file's `-- preflight:allow` directives; unknown names come back
/// as errors so a typo does not silently allow nothing. Preflight's own rules and group names
/// are accepted (and match nothing squawk reports).
pub(crate) fn allowed_rules(names: &[String]) -> (Vec<Rule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        if let Some(group) = GROUPS.iter().find(|g| g.name() == name) {
            rules.extend(
                CATALOGUE
                    .iter()
                    .filter(|d| d.group == *group)
                    .filter_map(|d| Rule::from_str(d.name).ok()),
            );
            continue;
        }
        if OWN_RULES.contains(&name.as_str()) {
            continue;
        }
        match Rule::from_str(name) {
            Ok(rule) => {
                rules.push(rule);
                rules.extend(rule.expands_to());
            }
            Err(_) => unknown.push(name.clone()),
        }
    }
    (rules, unknown)
}

/// What the linter needs to know about a body besides its parse.
pub(crate) struct Context<'a> {
    pub file_text: &'a str,
    pub display: &'a str,
    pub kind: Kind,
    /// Whether the file had its own `BEGIN;` ... `COMMIT;` wrapper (squawk sees it).
    pub wrapped: bool,
    /// Rules the file allows.
    pub file_allow: &'a [Rule],
    /// Rules allowed for single statements.
    pub statement_allow: &'a [StatementAllow],
}

/// Lints one parsed body.
pub(crate) fn lint(
    analysis: &Analysis,
    cx: &Context<'_>,
    selection: &Selection,
) -> Vec<Diagnostic> {
    let rules = selection.rules();
    if rules.is_empty() {
        return Vec::new();
    }
    // A Linter keeps its findings between calls: one per body.
    let mut linter = Linter::from(rules);
    // squawk must know whether the statements run in a transaction it cannot see (Preflight's
    // own), so that e.g. `CREATE INDEX CONCURRENTLY` in a transactional body is a finding.
    linter.settings.assume_in_transaction = cx.kind == Kind::Transactional && !cx.wrapped;
    let end = analysis.base + usize::from(analysis.parse.syntax_node().text_range().end());
    let text = &cx.file_text[analysis.base..end];
    let statements: Vec<SyntaxNode> = analysis
        .parse
        .syntax_node()
        .children()
        .filter(|n| crate::sql::is_statement(n.kind()))
        .collect();
    let created = created_before(&statements);
    // The statement a directive sits in, or the next one.
    let statement_at = |at: usize| {
        statements
            .iter()
            .position(|s| analysis.base + usize::from(s.text_range().end()) > at)
    };
    let mut allowed_at: Vec<(usize, Vec<Rule>)> = cx
        .statement_allow
        .iter()
        .filter_map(|a| Some((statement_at(a.at)?, allowed_rules(&a.rules).0)))
        .collect();
    // Atlas's own suppression (`-- atlas:nolint MF103`), written when a team accepted a risk
    // its linter reported: the same decision, kept.
    for (at, rules) in atlas_nolint(text) {
        if let Some(i) = statement_at(analysis.base + at) {
            allowed_at.push((i, rules));
        }
    }

    let utc_from = utc_session_from(&statements, cx.file_text, analysis.base);
    // The findings kept, in order: (statement, rule, offset in the file, message).
    let mut kept: Vec<(Option<usize>, Rule, usize, String)> = Vec::new();
    for v in linter.lint(&analysis.parse, text) {
        if cx.file_allow.contains(&v.code) {
            continue;
        }
        let at = v.text_range.start();
        let index = statements
            .iter()
            .position(|s| s.text_range().contains_inclusive(at));
        if let Some(i) = index {
            if allowed_at
                .iter()
                .any(|(j, rules)| *j == i && rules.contains(&v.code))
            {
                continue;
            }
            if is_lock_rule(v.code)
                && target(&statements[i]).is_some_and(|t| created[i].contains(&t))
            {
                continue;
            }
            if v.code == Rule::ChangingColumnType
                && utc_from.is_some_and(|from| i > from)
                && to_timestamptz_only(&statements[i])
            {
                // PostgreSQL 12+: timestamp -> timestamptz is binary compatible, no rewrite,
                // when the session time zone is UTC (the release notes of 12 say so).
                continue;
            }
        }
        let mut message = v.message.trim_end().to_owned();
        if let Some(help) = v.help {
            message.push_str(" Help: ");
            message.push_str(help.trim_end());
        }
        kept.push((index, v.code, analysis.base + usize::from(at), message));
    }
    // A foreign key added without `NOT VALID` is one risk, which squawk reports under two rules;
    // `NOT VALID` does not apply to a `UNIQUE` or `PRIMARY KEY` constraint at all, whose own
    // rule says what to do instead.
    let specific_at: HashSet<Option<usize>> = kept
        .iter()
        .filter(|k| {
            matches!(
                k.1,
                Rule::AddingForeignKeyConstraint
                    | Rule::DisallowedUniqueConstraint
                    | Rule::AddingSerialPrimaryKeyField
            )
        })
        .map(|k| k.0)
        .collect();
    kept.retain(|k| {
        !(k.1 == Rule::ConstraintMissingNotValid && k.0.is_some() && specific_at.contains(&k.0))
    });

    // One warning per rule and body, at its first statement, naming the others: a migration
    // that builds forty indexes has one risk to decide about, not forty.
    let mut found: Vec<Diagnostic> = Vec::new();
    let mut by_rule: Vec<(Rule, usize, String, Vec<usize>)> = Vec::new();
    for (_, rule, offset, message) in kept {
        match by_rule.iter_mut().find(|r| r.0 == rule) {
            Some(r) => {
                let line = Position::at(cx.file_text, offset).line;
                if !r.3.contains(&line) && Position::at(cx.file_text, r.1).line != line {
                    r.3.push(line);
                }
            }
            None => by_rule.push((rule, offset, message, Vec::new())),
        }
    }
    for (rule, offset, mut message, more) in by_rule {
        if !more.is_empty() {
            let lines: Vec<String> = more.iter().map(ToString::to_string).collect();
            message.push_str(&format!(
                " ({} more statement(s) of this file do the same, at line(s) {})",
                more.len(),
                lines.join(", ")
            ));
        }
        found.push(Diagnostic {
            level: Level::Warning,
            path: cx.display.to_owned(),
            position: Some(Position::at(cx.file_text, offset)),
            message,
            rule: Some(rule.to_string()),
        });
    }
    found
}

/// Atlas's `-- atlas:nolint [CODE ...]` comments of a body (offsets relative to it) and the
/// rules they stand for: the codes whose risk a Preflight rule reports (MF103 a `NOT NULL`
/// column without default, MF104 `SET NOT NULL`, DS102 / DS103 dropping a table / column);
/// without codes, every rule.
fn atlas_nolint(text: &str) -> Vec<(usize, Vec<Rule>)> {
    crate::sql::lex(text)
        .into_iter()
        .filter(|(kind, _)| *kind == squawk_lexer::TokenKind::LineComment)
        .filter_map(|(_, range)| {
            let comment = text[range.clone()].trim_start_matches('-').trim();
            let codes = comment.strip_prefix("atlas:nolint")?;
            if !(codes.is_empty() || codes.starts_with(char::is_whitespace)) {
                return None;
            }
            let codes: Vec<&str> = codes.split_whitespace().collect();
            let rules: Vec<Rule> = if codes.is_empty() {
                CATALOGUE
                    .iter()
                    .filter_map(|d| Rule::from_str(d.name).ok())
                    .collect()
            } else {
                codes
                    .iter()
                    .filter_map(|code| match *code {
                        "MF103" => Some(Rule::AddingRequiredField),
                        "MF104" => Some(Rule::AddingNotNullableField),
                        "DS102" => Some(Rule::BanDropTable),
                        "DS103" => Some(Rule::BanDropColumn),
                        _ => None,
                    })
                    .collect()
            };
            Some((range.start, rules))
        })
        .collect()
}

/// The index of the statement that sets the session time zone to UTC (`SET timezone = 'UTC'`,
/// `SET TIME ZONE 'UTC'`), if one does.
fn utc_session_from(statements: &[SyntaxNode], file_text: &str, base: usize) -> Option<usize> {
    statements.iter().position(|s| {
        let r = s.text_range();
        let text = &file_text[base + usize::from(r.start())..base + usize::from(r.end())];
        let words: String = text
            .to_ascii_lowercase()
            .split(|c: char| c.is_whitespace() || c == '=' || c == ';')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        matches!(
            words.as_str(),
            "set timezone 'utc'"
                | "set timezone to 'utc'"
                | "set time zone 'utc'"
                | "set local timezone 'utc'"
                | "set local time zone 'utc'"
                | "set timezone 'etc/utc'"
        )
    })
}

/// Whether every type change of an `ALTER TABLE` is to `timestamptz`.
fn to_timestamptz_only(node: &SyntaxNode) -> bool {
    let Some(ast::Stmt::AlterTable(alter)) = ast::Stmt::cast(node.clone()) else {
        return false;
    };
    let mut any = false;
    for action in alter.actions() {
        let text = action.syntax().text().to_string().to_ascii_lowercase();
        let compact: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if compact.contains(" type ")
            || compact.starts_with("type ")
            || compact.contains("set data type")
        {
            any = true;
            if !(compact.contains("timestamptz") || compact.contains("timestamp with time zone")) {
                return false;
            }
        }
    }
    any
}

/// For each statement, the tables and indexes created by the statements before it.
fn created_before(statements: &[SyntaxNode]) -> Vec<HashSet<String>> {
    let mut created = HashSet::new();
    statements
        .iter()
        .map(|node| {
            let before = created.clone();
            match ast::Stmt::cast(node.clone()) {
                Some(ast::Stmt::CreateTable(t)) => {
                    if let Some(name) = t.table_name().and_then(|n| n.path()) {
                        created.insert(segment(name.segment().map(|s| s.text())));
                    }
                }
                Some(ast::Stmt::CreateTableAs(t)) => {
                    if let Some(name) = t.table_name().and_then(|n| n.path()) {
                        created.insert(segment(name.segment().map(|s| s.text())));
                    }
                }
                Some(ast::Stmt::CreateIndex(i)) => {
                    if let Some(name) = i.index().and_then(|n| n.path()) {
                        created.insert(segment(name.segment().map(|s| s.text())));
                    }
                }
                _ => {}
            }
            before
        })
        .collect()
}

fn segment(name: Option<String>) -> String {
    name.unwrap_or_default()
}

/// The table (or, for `DROP INDEX`, the index) a statement changes, unqualified and
/// normalised as PostgreSQL folds it.
fn target(node: &SyntaxNode) -> Option<String> {
    let table_ref = |r: Option<ast::TableRelationName>| {
        r.and_then(|r| r.table_name_ref())
            .and_then(|t| t.path_ref())
            .and_then(|p| p.segment())
            .map(|s| s.text())
    };
    match ast::Stmt::cast(node.clone())? {
        ast::Stmt::AlterTable(a) => table_ref(a.table_relation_name()),
        ast::Stmt::CreateIndex(c) => table_ref(c.table_relation_name()),
        ast::Stmt::DropIndex(d) => {
            let names: Vec<String> = d
                .index_refs()
                .filter_map(|r| r.path_ref()?.segment().map(|s| s.text()))
                .collect();
            // Several indexes at once: only when all are new does the statement lock nothing.
            match names.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::analyze;

    fn rules_with(text: &str, kind: Kind, selection: &Selection, allow: &[Rule]) -> Vec<String> {
        let a = analyze(text, 0..text.len());
        let cx = Context {
            file_text: text,
            display: "m/1_x.sql",
            kind,
            wrapped: false,
            file_allow: allow,
            statement_allow: &[],
        };
        lint(&a, &cx, selection)
            .into_iter()
            .map(|d| d.rule.unwrap_or_default())
            .collect()
    }

    fn rules(text: &str) -> Vec<String> {
        rules_with(text, Kind::Transactional, &Selection::default(), &[])
    }

    #[test]
    fn finds_lock_and_safety_risks_on_existing_tables() {
        assert_eq!(
            rules("ALTER TABLE users ADD COLUMN email text NOT NULL;"),
            ["adding-required-field"]
        );
        assert_eq!(
            rules("CREATE INDEX i ON users (email);"),
            ["require-concurrent-index-creation"]
        );
        assert_eq!(
            rules("ALTER TABLE users ALTER COLUMN id TYPE bigint;"),
            ["changing-column-type"]
        );
        assert!(rules("TRUNCATE users CASCADE;").contains(&"ban-truncate-cascade".to_owned()));
    }

    #[test]
    fn style_and_compatibility_rules_are_opt_in() {
        let text = "CREATE TABLE t (id serial PRIMARY KEY, name varchar(10), at timestamp);\n\
                    ALTER TABLE users DROP COLUMN legacy;\nDROP TABLE old;";
        assert!(rules(text).is_empty(), "{:?}", rules(text));
        let mut style = Selection::default();
        style.enable("style").unwrap();
        let found = rules_with(text, Kind::Transactional, &style, &[]);
        for rule in [
            "prefer-identity",
            "prefer-text-field",
            "prefer-timestamp-tz",
        ] {
            assert!(found.contains(&rule.to_owned()), "{rule}: {found:?}");
        }
        assert!(!found.contains(&"ban-drop-column".to_owned()));
        let mut compat = Selection::default();
        compat.enable("ban-drop-column").unwrap();
        assert_eq!(
            rules_with(text, Kind::Transactional, &compat, &[]),
            ["ban-drop-column"]
        );
    }

    #[test]
    fn a_table_created_earlier_in_the_migration_never_triggers_a_lock_lint() {
        let text = "CREATE TABLE t (id bigint, email text);\n\
                    CREATE INDEX t_email ON t (email);\n\
                    ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY (id);\n\
                    ALTER TABLE t ADD COLUMN name text NOT NULL;\n\
                    ALTER TABLE t ALTER COLUMN email TYPE varchar(100);\n\
                    ALTER TABLE t ADD CONSTRAINT c CHECK (id > 0);\n\
                    DROP INDEX t_email;\n";
        for kind in [Kind::Transactional, Kind::NoTransaction, Kind::Script] {
            let found = rules_with(text, kind, &Selection::default(), &[]);
            assert!(found.is_empty(), "{kind:?}: {found:?}");
        }
        // The same statements on a table that existed before warn.
        let existing = text.replacen("CREATE TABLE t", "CREATE TABLE other", 1);
        assert!(rules(&existing).len() >= 5, "{:?}", rules(&existing));
    }

    #[test]
    fn one_warning_per_rule_and_file_naming_every_statement() {
        let text = "CREATE INDEX a ON users (x);\nCREATE INDEX b ON users (y);\n\
                    CREATE INDEX c ON posts (z);\n";
        let a = analyze(text, 0..text.len());
        let cx = Context {
            file_text: text,
            display: "m/1_x.sql",
            kind: Kind::Transactional,
            wrapped: false,
            file_allow: &[],
            statement_allow: &[],
        };
        let found = lint(&a, &cx, &Selection::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .message
                .ends_with("(2 more statement(s) of this file do the same, at line(s) 2, 3)"),
            "{}",
            found[0].message
        );
        // A foreign key without NOT VALID is one finding, not two.
        assert_eq!(
            rules("ALTER TABLE posts ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id);"),
            ["adding-foreign-key-constraint"]
        );
    }

    #[test]
    fn atlas_nolint_keeps_a_teams_decision() {
        let text = "-- atlas:nolint MF103\nALTER TABLE users ADD COLUMN a text NOT NULL;\n\
                    ALTER TABLE posts ADD COLUMN b text NOT NULL;\n";
        let found = rules(text);
        assert_eq!(found, ["adding-required-field"]);
        let a = analyze(text, 0..text.len());
        let cx = Context {
            file_text: text,
            display: "m/1_x.sql",
            kind: Kind::Transactional,
            wrapped: false,
            file_allow: &[],
            statement_allow: &[],
        };
        assert_eq!(
            lint(&a, &cx, &Selection::default())[0]
                .position
                .as_ref()
                .map(|p| p.line),
            Some(3)
        );
        assert!(rules("-- atlas:nolint\nCREATE INDEX i ON users (a);").is_empty());
        assert!(rules(
            "-- squawk-ignore require-concurrent-index-creation\nCREATE INDEX i ON users (a);"
        )
        .is_empty());
        // Another code leaves the rule on; a unique constraint is one finding.
        assert_eq!(
            rules("-- atlas:nolint DS103\nCREATE INDEX i ON users (a);"),
            ["require-concurrent-index-creation"]
        );
        assert_eq!(
            rules("ALTER TABLE users ADD CONSTRAINT u UNIQUE (email);"),
            ["disallowed-unique-constraint"]
        );
    }

    #[test]
    fn timestamptz_under_a_utc_session_is_no_rewrite() {
        let utc =
            "SET timezone = 'UTC';\nALTER TABLE users ALTER COLUMN at TYPE timestamptz USING at;\n";
        assert!(rules(utc).is_empty(), "{:?}", rules(utc));
        let local = "ALTER TABLE users ALTER COLUMN at TYPE timestamptz USING at;\n";
        assert_eq!(rules(local), ["changing-column-type"]);
        let other = "SET TIME ZONE 'UTC';\nALTER TABLE users ALTER COLUMN n TYPE bigint;\n";
        assert_eq!(rules(other), ["changing-column-type"]);
    }

    #[test]
    fn allow_silences_a_rule_per_file_group_and_project() {
        let text = "CREATE INDEX i ON users (email);";
        let file = rules_with(
            text,
            Kind::Transactional,
            &Selection::default(),
            &[Rule::RequireConcurrentIndexCreation],
        );
        assert!(file.is_empty());
        let mut project = Selection::default();
        project.allow("require-concurrent-index-creation").unwrap();
        assert!(rules_with(text, Kind::Transactional, &project, &[]).is_empty());
        let mut group = Selection::default();
        group.allow("lock").unwrap();
        assert!(rules_with(text, Kind::Transactional, &group, &[]).is_empty());
        assert!(Selection::default().allow("no-such-rule").is_err());
        assert!(Selection::default()
            .enable("style, prefer-identity")
            .is_ok());
    }

    #[test]
    fn allow_silences_a_rule_for_one_statement() {
        let text = "CREATE INDEX a ON users (x);\n\
                    -- preflight:allow require-concurrent-index-creation\n\
                    CREATE INDEX b ON users (y);\n";
        let (directives, _) = directives(text);
        let a = analyze(text, 0..text.len());
        let cx = Context {
            file_text: text,
            display: "m/1_x.sql",
            kind: Kind::Transactional,
            wrapped: false,
            file_allow: &[],
            statement_allow: &directives,
        };
        let found = lint(&a, &cx, &Selection::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].position.as_ref().map(|p| p.line), Some(1));
    }

    fn directives(text: &str) -> (Vec<StatementAllow>, ()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1_x.sql"), text).unwrap();
        let s = preflight_runtime::source::read_dir(dir.path(), "m").unwrap();
        (s.migrations[0].up.directives.allow_statement.clone(), ())
    }

    #[test]
    fn positions_point_into_the_file() {
        let text = "-- +goose Up\nselect 1;\nCREATE INDEX i ON t (a);\n";
        let a = analyze(text, 13..text.len());
        let cx = Context {
            file_text: text,
            display: "m/1_x.sql",
            kind: Kind::Transactional,
            wrapped: false,
            file_allow: &[],
            statement_allow: &[],
        };
        let d = lint(&a, &cx, &Selection::default());
        assert_eq!(
            d[0].position.as_ref().map(|p| (p.line, p.column)),
            Some((3, 1))
        );
    }

    #[test]
    fn validates_rule_names() {
        let (rules, unknown) = allowed_rules(&[
            "ban-drop-table".into(),
            "ban-drop-tabel".into(),
            "not-a-migration".into(),
        ]);
        assert_eq!(rules, [Rule::BanDropTable]);
        assert_eq!(unknown, ["ban-drop-tabel"]);
    }

    #[test]
    fn every_rule_is_documented_in_lints_md() {
        let doc = include_str!("../../LINTS.md");
        for rule in CATALOGUE {
            assert!(
                Rule::from_str(rule.name).is_ok(),
                "{} is not a squawk rule",
                rule.name
            );
            assert!(doc.contains(&format!("`{}`", rule.name)), "{}", rule.name);
        }
        for own in OWN_RULES {
            assert!(doc.contains(&format!("`{own}`")), "{own}");
        }
    }
}
