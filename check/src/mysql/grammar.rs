//! One statement through sqlparser's MySQL grammar, the Rust ecosystem's MySQL parser, with its
//! error placed in the statement.

use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::{Parser, ParserError};

/// sqlparser's refusal of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Byte offset in the statement of the token sqlparser stopped at (0 when it does not say).
    pub offset: usize,
    /// Its message, without the position (which the diagnostic gives as `file:line:column`).
    pub message: String,
}

/// Parses `statement` (one statement, without its delimiter).
pub(crate) fn parse(statement: &str) -> Result<(), Refusal> {
    let parsed = Parser::new(&MySqlDialect {})
        .try_with_sql(statement)
        .and_then(|mut p| p.parse_statements());
    let message = match parsed {
        Ok(_) => return Ok(()),
        Err(ParserError::ParserError(m) | ParserError::TokenizerError(m)) => m,
        Err(ParserError::RecursionLimitExceeded) => {
            "the statement nests deeper than sqlparser's recursion limit".to_owned()
        }
    };
    let (message, offset) = match message.rsplit_once(" at Line: ") {
        Some((text, at)) => (text.to_owned(), position(statement, at).unwrap_or(0)),
        None => (message, 0),
    };
    Err(Refusal { offset, message })
}

/// The byte offset of sqlparser's `3, Column: 7` (1-based line, and column in characters).
fn position(statement: &str, at: &str) -> Option<usize> {
    let (line, column) = at.split_once(", Column: ")?;
    let line: usize = line.trim().parse().ok()?;
    let column: usize = column
        .trim()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    let line_start = if line <= 1 {
        0
    } else {
        statement
            .match_indices('\n')
            .nth(line - 2)
            .map(|(i, _)| i + 1)?
    };
    let rest = &statement[line_start..];
    let within = rest
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(rest.len(), |(i, _)| i);
    Some(line_start + within)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_mysql() {
        for sql in [
            "CREATE TABLE `users` (`id` bigint unsigned NOT NULL AUTO_INCREMENT, `email` \
             varchar(255) NOT NULL, PRIMARY KEY (`id`), UNIQUE KEY `email` (`email`)) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
            "ALTER TABLE users ADD COLUMN name VARCHAR(64) NULL AFTER email",
            "INSERT INTO users (email) VALUES ('a@b.c') ON DUPLICATE KEY UPDATE email = VALUES(email)",
        ] {
            assert_eq!(parse(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn places_the_error_at_the_token() {
        let sql = "CREATE TABLE t (\n  id INT,\n  name VARCHAR(10) NOT NULL,,\n  x INT\n)";
        let refusal = parse(sql).unwrap_err();
        assert_eq!(&sql[refusal.offset..refusal.offset + 1], ",", "{refusal:?}");
        assert!(!refusal.message.contains("Line:"), "{refusal:?}");
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(
            position("é = 1\nab", "2, Column: 2"),
            Some("é = 1\na".len())
        );
        assert_eq!(position("abc", "1, Column: 3"), Some(2));
        assert_eq!(position("abc", "9, Column: 1"), None);
    }
}
