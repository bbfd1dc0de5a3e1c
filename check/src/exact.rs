//! The `exact-grammar` feature: every statement squawk accepted is parsed again by libpg_query
//! (PostgreSQL's own parser, through the `pg_query` crate), which catches the few mistakes
//! squawk's grammar lets through (`DROP TABLE ;`, `IS NUL`, ...).

use crate::sql::{Problem, Statement};

/// Parses each statement with libpg_query; returns its errors, placed at the statement's start
/// (the safe `pg_query` API reports only a message, not a position) or, when the message names
/// the offending token (`at or near "X"`), at that token's first occurrence in the statement.
pub(crate) fn check(file_text: &str, statements: &[Statement]) -> Vec<Problem> {
    statements
        .iter()
        .filter_map(|s| {
            let sql = &file_text[s.range.clone()];
            let message = match pg_query::parse(sql, 0) {
                Ok(_) => return None,
                Err(pg_query::Error::Parse(message)) => message,
                Err(other) => other.to_string(),
            };
            let offset = near(&message)
                .and_then(|token| sql.find(token))
                .map_or(s.range.start, |at| s.range.start + at);
            Some(Problem {
                offset,
                message: format!("syntax error (PostgreSQL's parser): {message}"),
            })
        })
        .collect()
}

/// The token in `... at or near "X"`.
fn near(message: &str) -> Option<&str> {
    let rest = &message[message.find("at or near \"")? + "at or near \"".len()..];
    let token = &rest[..rest.rfind('"')?];
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::analyze;

    fn problems(text: &str) -> Vec<Problem> {
        let a = analyze(text, 0..text.len());
        check(text, &a.statements)
    }

    #[test]
    fn catches_what_squawk_lets_through() {
        let text = "select 1;\nDROP TABLE ;\n";
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].offset, 21, "at the `;`");
        assert!(p[0].message.contains("syntax error"), "{p:?}");
    }

    #[test]
    fn accepts_valid_statements() {
        assert!(
            problems("CREATE TABLE t (id bigint);\nCREATE INDEX CONCURRENTLY i ON t (id);\n")
                .is_empty()
        );
    }

    #[test]
    fn finds_the_token_named_in_the_message() {
        assert_eq!(near("syntax error at or near \"FROM\""), Some("FROM"));
        assert_eq!(near("syntax error at end of input"), None);
    }
}
