//! Lints for lock-heavy or destructive DDL, by `squawk-linter`.

use std::str::FromStr;

use preflight_runtime::source::{Diagnostic, Level, Position};
use squawk_linter::{Linter, Rule};

use crate::sql::Analysis;

/// The rules Preflight leaves out of squawk's default set: the two timeout rules fire on nearly
/// every DDL statement (see notes/sql-checking.md), which would drown the useful findings.
const LEFT_OUT: [Rule; 2] = [Rule::RequireLockTimeout, Rule::RequireStatementTimeout];

/// Lints one parsed body. `in_transaction` tells squawk that the statements run inside a
/// transaction it cannot see (Preflight's own), so that e.g. `CREATE INDEX CONCURRENTLY` in a
/// transactional body is a finding. `allow` holds the rules the file allows (already validated).
pub(crate) fn lint(
    analysis: &Analysis,
    file_text: &str,
    display: &str,
    in_transaction: bool,
    allow: &[Rule],
) -> Vec<Diagnostic> {
    // A Linter keeps its findings between calls: one per body.
    let mut linter = Linter::with_rules(&[], &LEFT_OUT);
    linter.settings.assume_in_transaction = in_transaction;
    let end = analysis.base + usize::from(analysis.parse.syntax_node().text_range().end());
    let text = &file_text[analysis.base..end];
    linter
        .lint(&analysis.parse, text)
        .into_iter()
        .filter(|v| !allow.contains(&v.code))
        .map(|v| {
            let offset = analysis.base + usize::from(v.text_range.start());
            let mut message = v.message.trim_end().to_owned();
            if let Some(help) = v.help {
                message.push_str(" Help: ");
                message.push_str(help.trim_end());
            }
            Diagnostic {
                level: Level::Warning,
                path: display.to_owned(),
                position: Some(Position::at(file_text, offset)),
                message,
                rule: Some(v.code.to_string()),
            }
        })
        .collect()
}

/// Parses the rule names of `-- preflight:allow(...)`; unknown names are returned as errors so a
/// typo does not silently allow nothing.
pub(crate) fn allowed_rules(names: &[String]) -> (Vec<Rule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::analyze;

    fn rules(text: &str, in_transaction: bool, allow: &[Rule]) -> Vec<String> {
        let a = analyze(text, 0..text.len());
        lint(&a, text, "m/1_x.sql", in_transaction, allow)
            .into_iter()
            .map(|d| d.rule.unwrap_or_default())
            .collect()
    }

    #[test]
    fn finds_lock_heavy_ddl_but_not_timeouts() {
        let text = "ALTER TABLE users ADD COLUMN email text NOT NULL;\n";
        let found = rules(text, true, &[]);
        assert!(
            found.contains(&"adding-required-field".to_owned())
                || found.contains(&"adding-not-nullable-field".to_owned()),
            "{found:?}"
        );
        assert!(!found.iter().any(|r| r.contains("timeout")), "{found:?}");
        let index = rules("CREATE INDEX i ON users (email);", true, &[]);
        assert_eq!(index, ["require-concurrent-index-creation"]);
    }

    #[test]
    fn concurrent_index_in_a_transaction_is_a_finding() {
        // squawk only reports it when the file has more than one statement.
        let text =
            "SET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (email);";
        assert!(rules(text, false, &[]).is_empty());
        assert!(rules(text, true, &[])
            .contains(&"ban-concurrent-index-creation-in-transaction".to_owned()));
    }

    #[test]
    fn allow_silences_a_rule() {
        let text = "CREATE INDEX i ON users (email);";
        assert!(rules(text, true, &[Rule::RequireConcurrentIndexCreation]).is_empty());
    }

    #[test]
    fn positions_point_into_the_file() {
        let text = "-- +goose Up\nselect 1;\nCREATE INDEX i ON t (a);\n";
        let a = analyze(text, 13..text.len());
        let d = lint(&a, text, "m/1_x.sql", true, &[]);
        assert_eq!(
            d[0].position.as_ref().map(|p| (p.line, p.column)),
            Some((3, 1))
        );
    }

    #[test]
    fn validates_rule_names() {
        let (rules, unknown) = allowed_rules(&["ban-drop-table".into(), "ban-drop-tabel".into()]);
        assert_eq!(rules, [Rule::BanDropTable]);
        assert_eq!(unknown, ["ban-drop-tabel"]);
    }
}
