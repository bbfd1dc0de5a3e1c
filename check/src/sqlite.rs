//! The `sqlite` dialect (feature `sqlite`): statements split exactly as SQLite splits them, and a
//! semantic check instead of a parser's — the whole chain is applied to an in-memory SQLite
//! database at compile time (every up in version order, then, for the reversible tail of the
//! set, the downs newest first), and the first statement SQLite rejects becomes the error, at
//! its `file:line:column`, with SQLite's own message (`no such table: users`).
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

use std::ops::Range;

use preflight_runtime::source::{Diagnostic, SourceBody};
use rusqlite::Connection;

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

/// Applies the chain to an in-memory SQLite database; the first failing statement, if any.
pub(crate) fn apply_chain(migrations: &[CheckedMigration]) -> Vec<Diagnostic> {
    let conn = match Connection::open_in_memory() {
        Ok(c) => c,
        Err(e) => {
            return vec![Diagnostic::error(
                "migrations".to_owned(),
                format!("cannot open an in-memory SQLite database for the semantic check: {e}"),
            )]
        }
    };
    for (i, m) in migrations.iter().enumerate() {
        if let Some(d) = apply(&conn, m.up(), || {
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
        if let Some(d) = apply(&conn, down, || {
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
    conn: &Connection,
    body: &crate::CheckedBody,
    context: impl Fn() -> String,
) -> Option<Diagnostic> {
    let text = body.file_text();
    for span in body.statements() {
        let range = span.range();
        if let Err(e) = conn.execute_batch(&text[range.clone()]) {
            let (message, within) = match &e {
                rusqlite::Error::SqlInputError { msg, offset, .. } => {
                    (msg.clone(), usize::try_from(*offset).unwrap_or(0))
                }
                rusqlite::Error::SqliteFailure(f, msg) => {
                    (msg.clone().unwrap_or_else(|| f.to_string()), 0)
                }
                other => (other.to_string(), 0),
            };
            let offset = (range.start + within).min(range.end);
            return Some(Diagnostic::error_at(
                body.display().to_owned(),
                text,
                offset,
                format!(
                    "SQLite: {message} ({}); fix the statement, or the migration that should \
                     have prepared what it needs",
                    context()
                ),
            ));
        }
    }
    None
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

    #[test]
    fn splits_with_file_offsets() {
        let file = "\u{feff}-- a\nCREATE TABLE t (x);\nCREATE TRIGGER r AFTER INSERT ON t BEGIN SELECT 1; END;";
        let s = statements(file, 0..file.len());
        assert_eq!(s.len(), 2);
        assert_eq!(&file[s[0].range.clone()], "CREATE TABLE t (x);");
        assert!(file[s[1].range.clone()].ends_with("END;"));
    }
}
