//! The `mysql` dialect (feature `mysql`; MySQL and MariaDB): `embed!("migrations", dialect =
//! "mysql")` and `preflight check --dialect mysql`.
//!
//! For each body:
//! * **statements** are split as the server will run them, one by one ([`split`]): `DELIMITER`
//!   blocks, stored-program bodies, MySQL's quoting and comment rules; each statement's byte
//!   range is exact, without its delimiter, so the runtime sends exactly these texts;
//! * **transactions**: a body with a statement that commits implicitly (DDL, see
//!   `transaction.rs`) is [`Kind::NoTransaction`] — run statement by statement, progress recorded
//!   after each; a body of DML only is [`Kind::Transactional`] — one transaction with its history
//!   row. A file's own `START TRANSACTION;` ... `COMMIT;` around everything is dropped, as for
//!   PostgreSQL; other transaction control is an error (see [`crate::kind_rules`]);
//! * **syntax**: see [the policy](self#policy).
//!
//! # Policy
//!
//! A checker that refuses valid SQL is worse than none, and sqlparser's MySQL grammar, the Rust
//! ecosystem's MySQL parser, does not know all of MySQL: measured against MariaDB on 15 real
//! migration directories (`COMPATIBILITY.md`, section MySQL), it refuses 7 % of the statements
//! the server runs (stored programs, most table options of `ALTER TABLE`, `VISIBLE` indexes,
//! `PARTITION BY`, multi-table `UPDATE`, `SET @x := ...`, ...), and a false refusal would leave the
//! user no way to build. So the build fails only on what is certain:
//! * a statement whose first word starts no MySQL or MariaDB statement (`CRATE TABLE`);
//! * a string, quoted identifier or `/*` comment never closed, a `(` never closed or a `)`
//!   never opened, a `,` followed by `,` or `)` or ending the statement;
//! * `--` followed by text at the start of a statement (MySQL reads two minus signs, not a
//!   comment: found in real upgrade scripts);
//! * `DELIMITER` without a delimiter.
//!
//! Every statement also goes through sqlparser; what it refuses becomes a note ("not checked by
//! sqlparser's MySQL grammar: ..."), with sqlparser's message and position, and the server is
//! the judge when the migration runs.

mod grammar;
mod split;
mod transaction;

use std::ops::Range;

use preflight_runtime::source::{Diagnostic, Level, SourceBody};
use preflight_runtime::Kind;

use crate::sql::Statement;
use crate::CheckedBody;

/// The statements of `text` as a MySQL server runs them one by one: byte ranges from each
/// statement's first token to its last (comments around it, `DELIMITER` lines and the delimiter
/// excluded), in order.
///
/// ```
/// let sql = "DELIMITER $$\nCREATE PROCEDURE p() BEGIN SELECT 1; END$$\nDELIMITER ;\nCALL p();\n";
/// let statements: Vec<&str> = preflight_check::mysql::split(sql)
///     .into_iter()
///     .map(|r| &sql[r])
///     .collect();
/// assert_eq!(statements, ["CREATE PROCEDURE p() BEGIN SELECT 1; END", "CALL p()"]);
/// ```
pub fn split(text: &str) -> Vec<Range<usize>> {
    split::split(text, 0..text.len()).statements
}

/// Why sqlparser's MySQL grammar refuses `statement` (one statement, as [`split`] gives it), or
/// `None` when it parses. This is sqlparser's verdict alone, before [the policy](self#policy).
pub fn sqlparser_refusal(statement: &str) -> Option<String> {
    grammar::parse(statement).err().map(|r| r.message)
}

/// Checks one body in the MySQL dialect; errors go to `errors`, statements that could not be
/// checked to `notes`.
pub(crate) fn check_body(
    body: &SourceBody,
    errors: &mut Vec<Diagnostic>,
    notes: &mut Vec<Diagnostic>,
) -> Option<CheckedBody> {
    let file = &body.file;
    let mut start = body.range.start;
    if file.text[start..body.range.end].starts_with('\u{feff}') {
        start += '\u{feff}'.len_utf8();
    }
    let split = split::split(&file.text, start..body.range.end);
    let before = errors.len();
    let error_at = |offset: usize, message: String| {
        Diagnostic::error_at(file.display.clone(), &file.text, offset, message)
    };
    for p in split.problems {
        errors.push(error_at(p.offset, p.message));
    }
    let mut statements = Vec::with_capacity(split.statements.len());
    let mut commits = None;
    for range in split.statements {
        let text = &file.text[range.clone()];
        if let Some((at, word)) = unknown_first_word(text) {
            errors.push(error_at(
                range.start + at,
                format!(
                    "syntax error: `{word}` does not begin any MySQL or MariaDB statement: a typo?"
                ),
            ));
        } else if let Err(refusal) = grammar::parse(text) {
            notes.push(Diagnostic {
                level: Level::Note,
                ..error_at(
                    range.start + refusal.offset,
                    format!(
                        "not checked by sqlparser's MySQL grammar, which refuses it ({}) but does \
                         not cover all of MySQL: the server checks it when the migration runs",
                        refusal.message
                    ),
                )
            });
        }
        let effect = transaction::effect(text);
        commits = commits.or(effect.commits);
        statements.push(Statement {
            range,
            class: effect.class,
        });
    }
    if errors.len() != before {
        return None;
    }
    let decision = match crate::kind::decide(&file.text, statements, body.directives.no_transaction)
    {
        Ok(d) => d,
        Err(problems) => {
            errors.extend(problems.into_iter().map(|p| error_at(p.offset, p.message)));
            return None;
        }
    };
    let kind = match (decision.kind, commits) {
        (Kind::Transactional, Some(_)) => Kind::NoTransaction,
        (kind, _) => kind,
    };
    Some(CheckedBody {
        file: file.clone(),
        statements: decision.statements.iter().map(crate::span_of).collect(),
        kind,
        timeouts: body.directives.timeouts,
        problems: Vec::new(),
    })
}

/// The words that begin a MySQL or MariaDB statement, stored-program statements included (a
/// body split wrongly must not turn into a false refusal).
const FIRST_WORDS: &[&str] = &[
    "ALTER",
    "ANALYZE",
    "BACKUP",
    "BEGIN",
    "BINLOG",
    "CACHE",
    "CALL",
    "CASE",
    "CHANGE",
    "CHECK",
    "CHECKSUM",
    "CLONE",
    "CLOSE",
    "COMMIT",
    "CREATE",
    "DEALLOCATE",
    "DECLARE",
    "DELETE",
    "DESC",
    "DESCRIBE",
    "DO",
    "DROP",
    "EXECUTE",
    "EXPLAIN",
    "FETCH",
    "FLUSH",
    "FOR",
    "GET",
    "GRANT",
    "HANDLER",
    "HELP",
    "IF",
    "IMPORT",
    "INSERT",
    "INSTALL",
    "ITERATE",
    "KILL",
    "LEAVE",
    "LOAD",
    "LOCK",
    "LOOP",
    "OPEN",
    "OPTIMIZE",
    "PREPARE",
    "PURGE",
    "RELEASE",
    "RENAME",
    "REPAIR",
    "REPEAT",
    "REPLACE",
    "RESET",
    "RESIGNAL",
    "RESTART",
    "RETURN",
    "REVOKE",
    "ROLLBACK",
    "SAVEPOINT",
    "SELECT",
    "SET",
    "SHOW",
    "SHUTDOWN",
    "SIGNAL",
    "START",
    "STOP",
    "TABLE",
    "TRUNCATE",
    "UNINSTALL",
    "UNLOCK",
    "UPDATE",
    "USE",
    "VALUES",
    "WHILE",
    "WITH",
    "XA",
];

/// The first word of `statement` and its offset, when it begins no statement. A statement that
/// starts with an executable comment, a parenthesis (`(SELECT ...) UNION ...`) or a label
/// (`lbl: BEGIN NOT ATOMIC`) is left to the server.
fn unknown_first_word(statement: &str) -> Option<(usize, &str)> {
    let first = statement.as_bytes().first()?;
    if !(first.is_ascii_alphabetic() || *first == b'_') {
        return None;
    }
    let len = statement
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(statement.len());
    let word = &statement[..len];
    let is_label = statement[len..].trim_start().starts_with(':');
    let known = FIRST_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w));
    (!known && !is_label).then_some((0, word))
}

#[cfg(test)]
mod tests;
