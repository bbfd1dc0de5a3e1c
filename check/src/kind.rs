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
    let problem = |s: &Statement, message: String| Problem {
        offset: s.range.start,
        message,
    };
    let controls = statements
        .iter()
        .filter(|s| matches!(s.class, Class::Begin { .. } | Class::Commit { .. }))
        .count();

    // A whole file wrapped in one plain `BEGIN; ... COMMIT;` (and no marker): Preflight's own
    // transaction replaces the wrapper, so the history row commits with the file's content.
    let wrapped = marker.is_none()
        && controls == 2
        && matches!(
            (statements.first(), statements.last()),
            (Some(first), Some(last))
                if statements.len() >= 2
                    && first.class == (Class::Begin { plain: true })
                    && last.class == (Class::Commit { plain: true })
        );
    if wrapped {
        statements.pop();
        statements.remove(0);
        return transactional(file_text, statements, true);
    }
    if controls > 0 {
        // With or without a no-transaction marker: the file runs as written either way.
        return script(file_text, statements);
    }

    if let Some(marker) = marker {
        let problems: Vec<Problem> = statements
            .iter()
            .filter(|s| is_transaction_control(s.class))
            .map(|s| {
                problem(
                    s,
                    format!(
                        "`{}` in a no-transaction migration (marked by {}): its statements run \
                         one by one outside any transaction, where PostgreSQL refuses it; \
                         remove it, or remove the marker to run the whole file in one transaction",
                        s.head(file_text),
                        describe(marker)
                    ),
                )
            })
            .collect();
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
    transactional(file_text, statements, false)
}

/// A body without transaction blocks of its own (or whose wrapper was removed): one
/// transaction, unless it is made only of statements that cannot run in one.
fn transactional(
    file_text: &str,
    statements: Vec<Statement>,
    wrapped: bool,
) -> Result<Decision, Vec<Problem>> {
    let mut problems = Vec::new();
    for s in &statements {
        let why = match s.class {
            Class::Rollback => {
                "it would undo the migration while Preflight records it as applied: remove it"
            }
            Class::TwoPhase => "two-phase commit cannot be part of a migration: remove it",
            _ => continue,
        };
        problems.push(Problem {
            offset: s.range.start,
            message: format!("`{}` in a migration: {why}", s.head(file_text)),
        });
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
    let at = first_outside.range.start;
    if wrapped {
        return Err(vec![Problem {
            offset: at,
            message: format!(
                "`{what}` cannot run inside a transaction block, and this file wraps it in \
                 `BEGIN;` ... `COMMIT;`: remove the `BEGIN;` and `COMMIT;` (a migration made only of \
                 such statements runs outside a transaction automatically), or move it to a \
                 migration of its own"
            ),
        }]);
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
    Err(vec![Problem {
        offset: at,
        message: format!(
            "`{what}` cannot run inside a transaction, but this migration also has statements that \
             can{ordinary}: move `{what}` to a migration of its own (a migration made only of such \
             statements runs outside a transaction automatically), or add \
             `-- preflight:no-transaction` to run every statement of this file one by one without \
             a transaction"
        ),
    }])
}

/// A file that manages its own transactions (several blocks, a block beside other statements,
/// or blocks in a no-transaction file): it runs as written, one unit at a time, each block a
/// unit of its own (from its `BEGIN` to its `COMMIT`), each statement between blocks another.
/// Refused only what cannot run safely that way, each with why.
fn script(file_text: &str, statements: Vec<Statement>) -> Result<Decision, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut units = Vec::new();
    let mut open: Option<&Statement> = None;
    let mut refuse = |s: &Statement, why: &str| {
        problems.push(Problem {
            offset: s.range.start,
            message: format!(
                "`{}` in a file that manages its own transactions: {why}",
                s.head(file_text)
            ),
        })
    };
    for s in &statements {
        match (open, s.class) {
            (None, Class::Begin { .. }) => open = Some(s),
            (None, Class::Commit { .. }) => refuse(
                s,
                "there is no `BEGIN` before it, so it commits nothing of this file; remove it",
            ),
            (None, Class::Rollback) => refuse(
                s,
                "there is no `BEGIN` before it, so it undoes nothing of this file; remove it",
            ),
            (None, Class::Savepoint) => refuse(
                s,
                "savepoints exist only inside a transaction block, and this statement is \
                 outside the file's `BEGIN;` ... `COMMIT;` blocks; move it into one",
            ),
            (_, Class::TwoPhase) => refuse(s, "two-phase commit cannot be part of a migration"),
            (None, _) => units.push(s.clone()),
            (Some(_), Class::Begin { .. }) => refuse(
                s,
                "a `BEGIN` inside an open block (PostgreSQL ignores it with a warning, so the \
                 block would not be the one the file shows); close the block with `COMMIT;` first",
            ),
            (Some(_), Class::Commit { plain: false }) => refuse(
                s,
                "`AND CHAIN` opens the next transaction at once, so the statements after it would \
                 be neither in a block nor run one by one; end the block with a plain `COMMIT;` \
                 and start the next with `BEGIN;`",
            ),
            (Some(_), Class::Rollback) => refuse(
                s,
                "a block that ends by undoing itself would be recorded as done; remove the block, \
                 or end it with `COMMIT;`",
            ),
            (Some(_), Class::NoTransaction(what)) => refuse(
                s,
                &format!(
                    "`{what}` cannot run inside a transaction block; move it after the block's \
                     `COMMIT;` (between blocks, statements run one by one outside a transaction)"
                ),
            ),
            (Some(begin), Class::Commit { plain: true }) => {
                units.push(Statement {
                    range: begin.range.start..s.range.end,
                    class: Class::Block {
                        commit: s.range.start,
                    },
                });
                open = None;
            }
            (Some(_), _) => {}
        }
    }
    if let Some(begin) = open {
        refuse(
            begin,
            "the block has no `COMMIT;`, so it would stay open and Preflight's progress record \
             would be lost with it; end it with `COMMIT;`",
        );
    }
    if problems.is_empty() {
        Ok(Decision {
            statements: units,
            kind: Kind::Script,
            wrapped: false,
        })
    } else {
        Err(problems)
    }
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
        NoTransaction::Pop => "`.autocommit.` in its file name",
        NoTransaction::SqlMigrate => "`-- +migrate Up notransaction`",
        NoTransaction::Dbmate => "`-- migrate:up transaction:false`",
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

    fn units(text: &str, marker: Option<NoTransaction>) -> Vec<&str> {
        match run(text, marker) {
            Ok((units, Kind::Script)) => units,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn files_with_their_own_blocks_run_as_scripts() {
        let text = "CREATE EXTENSION IF NOT EXISTS pgcrypto;\nBEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n\
                    BEGIN ISOLATION LEVEL SERIALIZABLE;\nSAVEPOINT s;\nINSERT INTO a VALUES (1);\nEND;\n\
                    CREATE INDEX CONCURRENTLY i ON a (id);\n";
        assert_eq!(
            units(text, None),
            [
                "CREATE EXTENSION IF NOT EXISTS pgcrypto;",
                "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;",
                "BEGIN ISOLATION LEVEL SERIALIZABLE;\nSAVEPOINT s;\nINSERT INTO a VALUES (1);\nEND;",
                "CREATE INDEX CONCURRENTLY i ON a (id);",
            ]
        );
        assert_eq!(
            units("BEGIN; select 1; COMMIT; BEGIN; select 2; COMMIT;", None),
            ["BEGIN; select 1; COMMIT;", "BEGIN; select 2; COMMIT;"]
        );
        // One block with transaction modes: it runs as written, as a one-unit script.
        assert_eq!(
            units(
                "BEGIN ISOLATION LEVEL SERIALIZABLE; select 1; COMMIT;",
                None
            )
            .len(),
            1
        );
        // With a no-transaction marker, blocks are units too (goose runs them that way).
        assert_eq!(
            units(
                "BEGIN; select 1; COMMIT;\nselect 2;",
                Some(NoTransaction::Goose)
            )
            .len(),
            2
        );
        let a = analyze(text, 0..text.len());
        let d = decide(text, a.statements, None).unwrap();
        let Class::Block { commit } = d.statements[1].class else {
            panic!("{:?}", d.statements[1])
        };
        assert_eq!(&text[commit..commit + 7], "COMMIT;");
    }

    #[test]
    fn refuses_what_a_script_cannot_run_safely() {
        for (text, why) in [
            ("select 1; COMMIT;", "no `BEGIN` before it"),
            ("BEGIN; select 1;", "has no `COMMIT;`"),
            ("BEGIN; select 1; ROLLBACK; select 2;", "undoing itself"),
            ("select 1; ROLLBACK; BEGIN; COMMIT;", "undoes nothing"),
            ("BEGIN; BEGIN; select 1; COMMIT;", "inside an open block"),
            (
                "BEGIN; select 1; COMMIT AND CHAIN; select 2; COMMIT;",
                "`AND CHAIN`",
            ),
            ("SAVEPOINT a; BEGIN; COMMIT;", "savepoints exist only"),
            (
                "BEGIN; CREATE INDEX CONCURRENTLY i ON t (a); COMMIT; BEGIN; COMMIT;",
                "move it after the block",
            ),
            (
                "BEGIN; PREPARE TRANSACTION 'x'; COMMIT; select 1;",
                "two-phase",
            ),
        ] {
            let e = run(text, None).expect_err(text);
            assert!(e[0].contains(why), "{text}: {e:?}");
            assert!(
                e[0].contains("manages its own transactions"),
                "{text}: {e:?}"
            );
        }
        for text in ["select 1; ROLLBACK;", "PREPARE TRANSACTION 'x';"] {
            let e = run(text, None).expect_err(text);
            assert!(e[0].contains("in a migration"), "{text}: {e:?}");
        }
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
        let e = run("SAVEPOINT a; select 1;", Some(NoTransaction::Sqlx)).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].contains(
            "no-transaction migration (marked by `-- no-transaction` on its first line)"
        ));
        assert!(run("SAVEPOINT a;", Some(NoTransaction::Preflight)).is_err());
    }
}
