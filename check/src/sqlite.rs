//! The `sqlite` dialect (feature `sqlite`): statements split exactly as SQLite splits them, and a
//! semantic check instead of a parser's — the whole chain is applied to an in-memory SQLite
//! database at compile time (every up in version order, then, for the reversible tail of the
//! set, the downs newest first), and the first statement SQLite rejects becomes the error, at
//! its `file:line:column`, with SQLite's own message (`no such table: users`). The chain stops
//! before the first migration that requires another set's (`-- preflight:requires`), whose
//! tables this directory does not create.
//!
//! Why not a parser: squawk parses PostgreSQL, and SQLite's grammar differs (`AUTOINCREMENT`,
//! `INSERT OR REPLACE`, `WITHOUT ROWID`, trigger bodies), while SQLite itself is compiled into
//! this crate anyway: running the migrations on it catches syntax errors and also the errors a
//! parser cannot (a column that does not exist, a down that drops the wrong table).
//!
//! The same transaction rules as PostgreSQL apply (see [`crate::kind_rules`]); in SQLite,
//! `VACUUM`, `PRAGMA foreign_keys` (a no-op inside a transaction) and `PRAGMA journal_mode` (cannot
//! switch to WAL inside one) are the statements that run outside a transaction. The PostgreSQL
//! lints do not apply to SQLite.
//!
//! The check runs inside the compiler, so the database it applies the chain to is fenced off
//! from the build machine ([`sandbox`]): no file is attached or written, no extension loaded,
//! and every statement has a step budget, so an endless recursive CTE is a compile error at its
//! `file:line:column` instead of a hung `cargo build`.

mod sandbox;

use std::ops::Range;

use preflight_runtime::source::{Diagnostic, SourceBody};

use crate::sqlite::sandbox::{Failure, Refusal, Sandbox};

use crate::sql::{Class, Statement};
use crate::{CheckedBody, CheckedMigration};

/// The statements of the body `range` of `file_text`, as SQLite splits them, classified for the
/// transaction rules.
pub(crate) fn statements(file_text: &str, range: Range<usize>) -> Vec<Statement> {
    let mut base = range.start;
    if file_text[base..range.end].starts_with('\u{feff}') {
        base += '\u{feff}'.len_utf8();
    }
    let text = &file_text[base..range.end];
    preflight_runtime::sqlite::statements(text)
        .into_iter()
        .map(|span| {
            let r = span.range();
            Statement {
                class: classify(&text[r.clone()]),
                range: base + r.start..base + r.end,
            }
        })
        .collect()
}

/// What a statement means for transactions, from its leading keywords (SQLite's grammar for
/// these statements is a handful of fixed keyword sequences).
fn classify(statement: &str) -> Class {
    let words: Vec<String> = statement
        .trim_end_matches(';')
        .split_whitespace()
        .take(4)
        .map(str::to_ascii_uppercase)
        .collect();
    let word = |i: usize| words.get(i).map_or("", String::as_str);
    match word(0) {
        "BEGIN" => Class::Begin {
            // BEGIN DEFERRED | IMMEDIATE | EXCLUSIVE sets a locking mode Preflight's own
            // `BEGIN IMMEDIATE` would not have.
            plain: matches!(word(1), "" | "TRANSACTION"),
        },
        "COMMIT" | "END" => Class::Commit { plain: true },
        "ROLLBACK" if words.iter().any(|w| w == "TO") => Class::Savepoint,
        "ROLLBACK" => Class::Rollback,
        "SAVEPOINT" | "RELEASE" => Class::Savepoint,
        "VACUUM" => Class::NoTransaction("VACUUM"),
        "PRAGMA" => pragma(statement),
        _ => Class::Ordinary,
    }
}

/// The pragmas that do nothing (`foreign_keys`) or fail (`journal_mode = WAL`) inside a
/// transaction, as SQLite documents: outside one, like `VACUUM`, rather than silently ignored.
fn pragma(statement: &str) -> Class {
    let rest = statement
        .trim_start()
        .get("PRAGMA".len()..)
        .unwrap_or_default()
        .trim_start()
        .to_ascii_lowercase();
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
        .collect();
    match name.rsplit('.').next().unwrap_or_default() {
        "foreign_keys" => Class::NoTransaction("PRAGMA foreign_keys"),
        "journal_mode" => Class::NoTransaction("PRAGMA journal_mode"),
        _ => Class::Ordinary,
    }
}

/// Checks one body in the SQLite dialect: split, then the transaction rules (PostgreSQL's
/// lints do not apply). The semantic check runs later, over the whole chain.
pub(crate) fn check_body(body: &SourceBody, errors: &mut Vec<Diagnostic>) -> Option<CheckedBody> {
    let file = &body.file;
    let statements = statements(&file.text, body.range.clone());
    match crate::kind::decide(&file.text, statements, body.directives.no_transaction) {
        Ok(decision) => Some(CheckedBody {
            file: file.clone(),
            statements: decision.statements.iter().map(crate::span_of).collect(),
            kind: decision.kind,
            timeouts: body.directives.timeouts,
            problems: Vec::new(),
        }),
        Err(problems) => {
            errors.extend(problems.into_iter().map(|p| {
                Diagnostic::error_at(file.display.clone(), &file.text, p.offset, p.message)
            }));
            None
        }
    }
}

/// Applies the chain to an in-memory SQLite database fenced off from the build machine
/// ([`sandbox`]); the first failing statement, if any.
pub(crate) fn apply_chain(migrations: &[CheckedMigration]) -> Vec<Diagnostic> {
    let sandbox = match Sandbox::open() {
        Ok(s) => s,
        Err(e) => {
            return vec![Diagnostic::error(
                "migrations".to_owned(),
                format!("cannot open an in-memory SQLite database for the semantic check: {e}"),
            )]
        }
    };
    // A migration that requires another set's migration may use that set's tables, which this
    // directory does not create: the chain is applied up to the migration before it, rather
    // than refusing valid SQL (SQLite cannot check a statement without the tables it names, so
    // that migration and the later ones are checked at boot, by the database).
    let applicable = migrations
        .iter()
        .position(|m| !m.requires().is_empty())
        .unwrap_or(migrations.len());
    let migrations = &migrations[..applicable];
    for (i, m) in migrations.iter().enumerate() {
        if let Some(d) = apply(&sandbox, m.up(), || {
            if i == 0 {
                "applying it to an empty in-memory SQLite database".to_owned()
            } else if i == 1 {
                format!(
                    "applying it to an in-memory SQLite database after migration {}",
                    migrations[0].version()
                )
            } else {
                format!(
                    "applying it to an in-memory SQLite database after migrations {}..{}",
                    migrations[0].version(),
                    migrations[i - 1].version()
                )
            }
        }) {
            return vec![d];
        }
    }
    // The downs, newest first, as far as reverting can go (it stops at a migration without one).
    for m in migrations.iter().rev() {
        let Some(down) = m.down() else { break };
        if let Some(d) = apply(&sandbox, down, || {
            format!(
                "reverting migration {} in an in-memory SQLite database after applying every up \
                 migration and reverting the newer ones",
                m.version()
            )
        }) {
            return vec![d];
        }
    }
    Vec::new()
}

/// Runs one body's statements; the first error as a diagnostic at its statement (and, when
/// SQLite tells, the token) in the file.
fn apply(
    sandbox: &Sandbox,
    body: &crate::CheckedBody,
    context: impl Fn() -> String,
) -> Option<Diagnostic> {
    let text = body.file_text();
    for span in body.statements() {
        let range = span.range();
        let statement = &text[range.clone()];
        let Err(failure) = sandbox.execute(statement) else {
            continue;
        };
        let (within, message) = match failure {
            Failure::Sqlite { message, offset } => (
                offset.unwrap_or(0),
                format!(
                    "SQLite: {message} ({}); fix the statement, or the migration that should \
                     have prepared what it needs",
                    context()
                ),
            ),
            Failure::Refused(refusal) => refused(statement, &refusal),
        };
        let offset = (range.start + within).min(range.end);
        return Some(Diagnostic::error_at(
            body.display().to_owned(),
            text,
            offset,
            message,
        ));
    }
    None
}

/// Where in `statement` and what to say when the sandbox stopped it.
fn refused(statement: &str, refusal: &Refusal) -> (usize, String) {
    match refusal {
        Refusal::Attach { filename } if first_word_is(statement, "VACUUM") => (
            0,
            format!(
                "`VACUUM INTO '{filename}'` is not run by the compile-time check: it would write \
                 a copy of the database to a file on the build machine. A backup belongs in the \
                 application or an operator's script, not in a migration: move it there"
            ),
        ),
        Refusal::Attach { filename } => (
            0,
            format!(
                "`ATTACH` of the file '{filename}' is not run by the compile-time check: it would \
                 create or open that file on the build machine (the check applies the migrations \
                 to an in-memory SQLite database and touches no file). Attach the database from \
                 the application's code, where its path is the deployment's, or attach \
                 ':memory:' for a scratch schema"
            ),
        ),
        Refusal::LoadExtension => (
            find_ascii_case_insensitive(statement, "load_extension").unwrap_or(0),
            "`load_extension()` is not run by the compile-time check: it would load a native \
             library into the compiler (SQLite also disables the function unless the \
             application enables it). Load the extension from the application's code, before \
             migrating"
                .to_owned(),
        ),
        Refusal::StepBudget => (
            0,
            format!(
                "SQLite: the statement did not finish within the compile-time check's budget of \
                 {} million steps (a migration on the check's empty database needs far fewer): a \
                 recursive CTE without a bound? Give `WITH RECURSIVE` a terminating `WHERE` or \
                 `LIMIT`; a deliberately huge data load belongs in the application, not in a \
                 migration",
                sandbox::STEP_BUDGET / 1_000_000
            ),
        ),
    }
}

fn first_word_is(statement: &str, keyword: &str) -> bool {
    statement
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .find(|w| !w.is_empty())
        .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
}

fn find_ascii_case_insensitive(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_transaction_control() {
        assert_eq!(classify("begin;"), Class::Begin { plain: true });
        assert_eq!(classify("BEGIN TRANSACTION;"), Class::Begin { plain: true });
        assert_eq!(classify("BEGIN IMMEDIATE;"), Class::Begin { plain: false });
        assert_eq!(classify("END TRANSACTION"), Class::Commit { plain: true });
        assert_eq!(classify("ROLLBACK TO SAVEPOINT a;"), Class::Savepoint);
        assert_eq!(classify("ROLLBACK;"), Class::Rollback);
        assert_eq!(classify("vacuum;"), Class::NoTransaction("VACUUM"));
        assert_eq!(
            classify("PRAGMA main.foreign_keys = OFF;"),
            Class::NoTransaction("PRAGMA foreign_keys")
        );
        assert_eq!(
            classify("pragma journal_mode=WAL"),
            Class::NoTransaction("PRAGMA journal_mode")
        );
        assert_eq!(classify("PRAGMA user_version = 3;"), Class::Ordinary);
        assert_eq!(
            classify("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT);"),
            Class::Ordinary
        );
    }

    /// A directory of `n` reversible migrations, three statements each.
    fn thousand(dir: &std::path::Path, n: usize) {
        for i in 1..=n {
            std::fs::write(
                dir.join(format!("{i}_t{i}.up.sql")),
                format!(
                    "CREATE TABLE t{i} (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);\n\
                     ALTER TABLE t{i} ADD COLUMN w INTEGER NOT NULL DEFAULT 0;\n\
                     CREATE INDEX t{i}_v ON t{i} (v);\n"
                ),
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{i}_t{i}.down.sql")),
                format!("DROP TABLE t{i};\n"),
            )
            .unwrap();
        }
    }

    #[test]
    fn a_thousand_migrations_are_checked_in_seconds() {
        let dir = tempfile::tempdir().unwrap();
        thousand(dir.path(), 1000);
        let opts = crate::Options::default().dialect(crate::Dialect::Sqlite);
        let started = std::time::Instant::now();
        let checked = crate::check_dir(dir.path(), "m", &opts).unwrap();
        let elapsed = started.elapsed();
        eprintln!("sqlite semantic check of 1,000 migrations: {elapsed:?}");
        assert_eq!(checked.migrations().len(), 1000);
        // Generous for an unoptimised build on a loaded machine; release takes well under.
        assert!(elapsed < std::time::Duration::from_secs(60), "{elapsed:?}");
        // The chain really ran: a typo in the last down is caught.
        std::fs::write(
            dir.path().join("1000_t1000.down.sql"),
            "DROP TABLE t999x;\n",
        )
        .unwrap();
        let errors = crate::check_dir(dir.path(), "m", &opts).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().contains("no such table: t999x"),
            "{}",
            errors[0]
        );
    }

    /// Checks a directory of the given `(file name, content)` migrations in the SQLite dialect.
    fn check(files: &[(&str, &str)]) -> Result<crate::Checked, Vec<Diagnostic>> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let opts = crate::Options::default().dialect(crate::Dialect::Sqlite);
        crate::check_dir(dir.path(), "m", &opts)
    }

    /// The one error of a directory that must fail, displayed.
    fn only_error(files: &[(&str, &str)]) -> String {
        let Err(errors) = check(files) else {
            panic!("the check must fail")
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors[0].to_string()
    }

    #[test]
    fn attach_of_a_file_is_refused_and_creates_nothing() {
        let scratch = tempfile::tempdir().unwrap();
        let target = scratch.path().join("attached.db");
        let up = format!(
            "CREATE TABLE t (x);\nATTACH DATABASE '{}' AS other;\nCREATE TABLE other.u (y);\n",
            target.display()
        );
        let error = only_error(&[("1_a.sql", &up)]);
        assert!(
            error.starts_with("m/1_a.sql:2:1: error: `ATTACH` of the file"),
            "{error}"
        );
        assert!(error.contains("build machine"), "{error}");
        assert!(!target.exists(), "the check created {}", target.display());
    }

    #[test]
    fn vacuum_into_is_refused_and_writes_nothing() {
        let scratch = tempfile::tempdir().unwrap();
        let target = scratch.path().join("copy.db");
        let up = format!("VACUUM INTO '{}';\n", target.display());
        let error = only_error(&[("1_t.sql", "CREATE TABLE t (x);\n"), ("2_backup.sql", &up)]);
        assert!(
            error.starts_with("m/2_backup.sql:1:1: error: `VACUUM INTO '"),
            "{error}"
        );
        assert!(!target.exists(), "the check wrote {}", target.display());
    }

    #[test]
    fn load_extension_is_refused_at_the_call() {
        let error = only_error(&[(
            "1_ext.sql",
            "CREATE TABLE t (x);\nSELECT 1, load_extension('/tmp/libevil.so');\n",
        )]);
        assert!(
            error.starts_with("m/1_ext.sql:2:11: error: `load_extension()` is not run"),
            "{error}"
        );
    }

    #[test]
    fn an_endless_recursive_cte_is_stopped_by_the_step_budget() {
        let error = only_error(&[(
            "1_loop.sql",
            "CREATE TABLE t (x);\n\
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)\n\
             SELECT count(*) FROM c;\n",
        )]);
        assert!(
            error.starts_with("m/1_loop.sql:2:1: error: SQLite: the statement did not finish"),
            "{error}"
        );
        assert!(error.contains("WITH RECURSIVE"), "{error}");
    }

    #[test]
    fn what_touches_no_file_still_runs() {
        // Plain VACUUM (which attaches SQLite's private temporary database), a scratch
        // in-memory schema and its DETACH, and a bounded recursive CTE of 100,000 rows.
        let checked = check(&[
            ("1_t.sql", "CREATE TABLE t (x);\n"),
            ("2_vacuum.sql", "VACUUM;\n"),
            (
                "3_scratch.sql",
                "ATTACH ':memory:' AS scratch;\nCREATE TABLE scratch.s (y);\n\
                 INSERT INTO t SELECT y FROM scratch.s;\nDETACH scratch;\n",
            ),
            (
                "4_seed.sql",
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)\n\
                 INSERT INTO t SELECT x FROM c;\n",
            ),
        ])
        .unwrap();
        assert_eq!(checked.migrations().len(), 4);
    }

    #[test]
    fn process_wide_pragmas_do_not_reach_the_compiler_process() {
        let dir = tempfile::tempdir().unwrap();
        let up = format!(
            "PRAGMA temp_store_directory = '{}';\nPRAGMA soft_heap_limit = 1;\n",
            dir.path().display()
        );
        check(&[("1_pragmas.sql", &up)]).unwrap();
        // Both settings are process-wide: another connection of this process would see them.
        let other = rusqlite::Connection::open_in_memory().unwrap();
        let temp_dir: Option<String> = other
            .query_row("PRAGMA temp_store_directory", [], |r| r.get(0))
            .unwrap_or(None);
        assert_eq!(temp_dir.unwrap_or_default(), "");
        let limit: i64 = other
            .query_row("PRAGMA soft_heap_limit", [], |r| r.get(0))
            .unwrap();
        assert_ne!(limit, 1);
    }

    #[test]
    fn splits_with_file_offsets() {
        let file = "\u{feff}-- a\nCREATE TABLE t (x);\nCREATE TRIGGER r AFTER INSERT ON t BEGIN SELECT 1; END;";
        let s = statements(file, 0..file.len());
        assert_eq!(s.len(), 2);
        assert_eq!(&file[s[0].range.clone()], "CREATE TABLE t (x);");
        assert!(file[s[1].range.clone()].ends_with("END;"));
    }
}
