//! How a body runs: inside Preflight's transaction or statement by statement without one, and
//! what to do with a file's own `BEGIN;` ... `COMMIT;`. The rules are documented once, for users,
//! in [`crate::kind_rules`]; [`decide`] applies them in the same order.

use preflight_runtime::source::NoTransaction;
use preflight_runtime::Kind;

use crate::sql::{Class, Problem, Statement};

/// What the rules decided for one body.
#[derive(Debug)]
pub(crate) struct Decision {
    /// The statements to run (a wrapper removed).
    pub statements: Vec<Statement>,
    pub kind: Kind,
    /// Whether the file had its own `BEGIN;` ... `COMMIT;` (for the linter).
    pub wrapped: bool,
}

/// Applies the rules to a body's statements; `marker` is its no-transaction directive, if any.
pub(crate) fn decide(
    file_text: &str,
    mut statements: Vec<Statement>,
    marker: Option<NoTransaction>,
) -> Result<Decision, Vec<Problem>> {
    let mut problems = Vec::new();
    let problem = |s: &Statement, message: String| Problem {
        offset: s.range.start,
        message,
    };

    if let Some(marker) = marker {
        for s in &statements {
            if is_transaction_control(s.class) {
                problems.push(problem(
                    s,
                    format!(
                        "`{}` in a no-transaction migration (marked by {}): its statements run one \
                         by one outside any transaction and progress is recorded after each, so \
                         transaction control would leave the history wrong; remove it, or remove \
                         the marker to run the whole file in one transaction",
                        s.head(file_text),
                        describe(marker)
                    ),
                ));
            }
        }
        return if problems.is_empty() {
            Ok(Decision {
                statements,
                kind: Kind::NoTransaction,
                wrapped: false,
            })
        } else {
            Err(problems)
        };
    }

    let wrapped = matches!(
        (statements.first(), statements.last()),
        (Some(first), Some(last))
            if statements.len() >= 2
                && first.class == (Class::Begin { plain: true })
                && last.class == (Class::Commit { plain: true })
    );
    if wrapped {
        statements.pop();
        statements.remove(0);
    }

    for s in &statements {
        let why = match s.class {
            Class::Begin { plain: false }
                if !wrapped && s.range.start == first_start(&statements) =>
            {
                "sets transaction modes, which Preflight's own transaction would not have: remove \
                 the modes (a file may wrap its whole content in a plain `BEGIN;` ... `COMMIT;`)"
            }
            Class::Begin { .. } | Class::Commit { .. } => {
                "a migration runs in one transaction together with its history row, so it must \
                 not commit part of itself: remove it (a file may wrap its whole content in one \
                 plain `BEGIN;` ... `COMMIT;`, which Preflight replaces by its own transaction), \
                 or split the file into several migrations"
            }
            Class::Rollback => {
                "it would undo the migration while Preflight records it as applied: remove it"
            }
            Class::TwoPhase => "two-phase commit cannot be part of a migration: remove it",
            _ => continue,
        };
        problems.push(problem(
            s,
            format!("`{}` in a migration: {why}", s.head(file_text)),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let outside: Vec<&Statement> = statements
        .iter()
        .filter(|s| matches!(s.class, Class::NoTransaction(_)))
        .collect();
    let Some(first_outside) = outside.first() else {
        return Ok(Decision {
            statements,
            kind: Kind::Transactional,
            wrapped,
        });
    };
    let Class::NoTransaction(what) = first_outside.class else {
        unreachable!("filtered on NoTransaction above")
    };
    if wrapped {
        return Err(vec![problem(
            first_outside,
            format!(
                "`{what}` cannot run inside a transaction block, and this file wraps it in \
                 `BEGIN;` ... `COMMIT;`: remove the `BEGIN;` and `COMMIT;` (a migration made only of \
                 such statements runs outside a transaction automatically), or move it to a \
                 migration of its own"
            ),
        )]);
    }
    if outside.len() == statements.len() {
        return Ok(Decision {
            statements,
            kind: Kind::NoTransaction,
            wrapped: false,
        });
    }
    let ordinary = statements
        .iter()
        .find(|s| !matches!(s.class, Class::NoTransaction(_)))
        .map_or(String::new(), |s| {
            format!(" (such as `{}`)", s.head(file_text))
        });
    Err(vec![problem(
        first_outside,
        format!(
            "`{what}` cannot run inside a transaction, but this migration also has statements that \
             can{ordinary}: move `{what}` to a migration of its own (a migration made only of such \
             statements runs outside a transaction automatically), or add \
             `-- preflight:no-transaction` to run every statement of this file one by one without \
             a transaction"
        ),
    )])
}

fn first_start(statements: &[Statement]) -> usize {
    statements.first().map_or(0, |s| s.range.start)
}

fn is_transaction_control(class: Class) -> bool {
    matches!(
        class,
        Class::Begin { .. }
            | Class::Commit { .. }
            | Class::Rollback
            | Class::Savepoint
            | Class::TwoPhase
    )
}

/// How a no-transaction marker is written, for messages.
pub(crate) fn describe(marker: NoTransaction) -> &'static str {
    match marker {
        NoTransaction::Preflight => "`-- preflight:no-transaction`",
        NoTransaction::Goose => "`-- +goose NO TRANSACTION`",
        NoTransaction::Sqlx => "`-- no-transaction` on its first line",
        NoTransaction::Diesel => "`run_in_transaction = false` in metadata.toml",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::analyze;

    fn run(text: &str, marker: Option<NoTransaction>) -> Result<(Vec<&str>, Kind), Vec<String>> {
        let a = analyze(text, 0..text.len());
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        decide(text, a.statements, marker)
            .map(|d| {
                let spans = d
                    .statements
                    .iter()
                    .map(|s| &text[s.range.clone()])
                    .collect();
                (spans, d.kind)
            })
            .map_err(|p| p.into_iter().map(|p| p.message).collect())
    }

    #[test]
    fn ordinary_bodies_are_transactional() {
        let (s, k) = run("CREATE TABLE t (id int);\nSET timezone = 'UTC';\n", None).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(k, Kind::Transactional);
        assert_eq!(
            run("-- nothing\n", None).unwrap(),
            (vec![], Kind::Transactional)
        );
    }

    #[test]
    fn strips_a_whole_file_wrapper() {
        let text =
            "-- head\nBEGIN;\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\nCOMMIT;\n";
        let (s, k) = run(text, None).unwrap();
        assert_eq!(s, ["CREATE TABLE t (id int);", "INSERT INTO t VALUES (1);"]);
        assert_eq!(k, Kind::Transactional);
        let (s, _) = run("START TRANSACTION;\nselect 1;\nEND;", None).unwrap();
        assert_eq!(s, ["select 1;"]);
        assert_eq!(run("BEGIN;\nCOMMIT;\n", None).unwrap().0.len(), 0);
        // Savepoints inside are fine.
        assert!(run("BEGIN; SAVEPOINT a; select 1; RELEASE a; COMMIT;", None).is_ok());
    }

    #[test]
    fn refuses_other_transaction_control() {
        for text in [
            "BEGIN; select 1; COMMIT; BEGIN; select 2; COMMIT;",
            "select 1; COMMIT;",
            "BEGIN; select 1;",
            "BEGIN; select 1; ROLLBACK;",
            "select 1; ROLLBACK;",
            "BEGIN ISOLATION LEVEL SERIALIZABLE; select 1; COMMIT;",
            "BEGIN; select 1; COMMIT AND CHAIN;",
            "PREPARE TRANSACTION 'x';",
        ] {
            let e = run(text, None).expect_err(text);
            assert!(e[0].contains("in a migration"), "{text}: {e:?}");
        }
        let e = run(
            "BEGIN ISOLATION LEVEL SERIALIZABLE; select 1; COMMIT;",
            None,
        )
        .unwrap_err();
        assert!(e[0].contains("transaction modes"), "{e:?}");
    }

    #[test]
    fn lone_non_transactional_statements_run_outside_automatically() {
        let (s, k) = run("CREATE INDEX CONCURRENTLY i ON t (a);\n", None).unwrap();
        assert_eq!((s.len(), k), (1, Kind::NoTransaction));
        let (_, k) = run(
            "CREATE INDEX CONCURRENTLY i ON t (a);\nDROP INDEX CONCURRENTLY j;\nVACUUM t;",
            None,
        )
        .unwrap();
        assert_eq!(k, Kind::NoTransaction);
    }

    #[test]
    fn refuses_a_mix_without_a_marker() {
        let e = run(
            "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);\n",
            None,
        )
        .unwrap_err();
        assert!(
            e[0].contains("`CREATE INDEX CONCURRENTLY` cannot run inside a transaction"),
            "{e:?}"
        );
        assert!(e[0].contains("-- preflight:no-transaction"));
        assert!(e[0].contains("`CREATE TABLE t`"), "{e:?}");
        let e = run(
            "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;",
            None,
        )
        .unwrap_err();
        assert!(e[0].contains("remove the `BEGIN;` and `COMMIT;`"), "{e:?}");
    }

    #[test]
    fn a_marker_makes_any_body_no_transaction() {
        let text = "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);\n";
        for marker in [
            NoTransaction::Preflight,
            NoTransaction::Goose,
            NoTransaction::Sqlx,
            NoTransaction::Diesel,
        ] {
            assert_eq!(run(text, Some(marker)).unwrap().1, Kind::NoTransaction);
        }
        let e = run("BEGIN; select 1; COMMIT;", Some(NoTransaction::Sqlx)).unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(e[0].contains(
            "no-transaction migration (marked by `-- no-transaction` on its first line)"
        ));
        assert!(run("SAVEPOINT a;", Some(NoTransaction::Preflight)).is_err());
    }
}
