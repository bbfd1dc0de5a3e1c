//! What a MySQL statement means for the transaction it runs in, from its leading keywords.
//!
//! MySQL commits the open transaction before (and after) most DDL and a few other statements
//! ("Statements That Cause an Implicit Commit" in MySQL's manual, the same list in MariaDB's), so
//! a migration holding one cannot be atomic: the runtime runs it statement by statement and
//! records its progress after each. A migration of DML only runs in one transaction with its
//! history row. When a statement's effect cannot be known from its text (`CALL` of a procedure,
//! `EXECUTE` of a prepared statement, a compound block), it counts as committing: running a
//! harmless statement outside a transaction costs atomicity that was never guaranteed, while
//! running a committing one inside a transaction would break the promise silently.

use crate::sql::Class;

/// What one statement does to the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Effect {
    /// Its class for the shared transaction rules (`BEGIN`, `COMMIT`, savepoints, ...).
    pub class: Class,
    /// Set when it commits implicitly (or may): the statement's kind, for messages.
    pub commits: Option<&'static str>,
}

/// The effect of `statement` (one statement, without its delimiter).
pub(crate) fn effect(statement: &str) -> Effect {
    let words = leading_words(statement, 4);
    let word = |i: usize| words.get(i).map_or("", String::as_str);
    let of = |class: Class| Effect {
        class,
        commits: None,
    };
    let commits = |what: &'static str| Effect {
        class: Class::Ordinary,
        commits: Some(what),
    };
    match word(0) {
        "START" if word(1) == "TRANSACTION" => of(Class::Begin {
            plain: word(2).is_empty(),
        }),
        "BEGIN" if word(1) == "NOT" => commits("BEGIN NOT ATOMIC block"),
        "BEGIN" => of(Class::Begin {
            plain: matches!(word(1), "" | "WORK"),
        }),
        "COMMIT" => of(Class::Commit {
            plain: matches!(word(1), "" | "WORK"),
        }),
        "ROLLBACK" if words.iter().any(|w| w == "TO") => of(Class::Savepoint),
        "ROLLBACK" => of(Class::Rollback),
        "SAVEPOINT" | "RELEASE" => of(Class::Savepoint),
        "XA" => of(Class::TwoPhase),
        "CREATE" | "DROP" if word(1) == "TEMPORARY" => of(Class::Ordinary),
        "ALTER" => commits("ALTER"),
        "CREATE" => commits("CREATE"),
        "DROP" => commits("DROP"),
        "RENAME" => commits("RENAME"),
        "TRUNCATE" => commits("TRUNCATE"),
        "GRANT" | "REVOKE" => commits("GRANT / REVOKE"),
        "LOCK" | "UNLOCK" => commits("LOCK / UNLOCK TABLES"),
        "ANALYZE" | "OPTIMIZE" | "REPAIR" | "CHECK" | "CHECKSUM" | "FLUSH" | "RESET" | "CACHE"
        | "INSTALL" | "UNINSTALL" | "CHANGE" | "STOP" | "PURGE" => {
            commits("administrative statement")
        }
        "LOAD" if word(1) == "INDEX" => commits("LOAD INDEX INTO CACHE"),
        "SET" if word(1) == "AUTOCOMMIT" || word(1) == "PASSWORD" => commits("SET autocommit"),
        "CALL" => commits("CALL (the procedure may run DDL)"),
        "EXECUTE" => commits("EXECUTE (the prepared statement may be DDL)"),
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "SELECT" | "WITH" | "VALUES" | "TABLE"
        | "DO" | "SET" | "LOAD" | "HANDLER" | "PREPARE" | "DEALLOCATE" | "USE" | "SHOW"
        | "DESCRIBE" | "DESC" | "EXPLAIN" => of(Class::Ordinary),
        // An executable comment whose server version skips it, or a statement of unknown kind.
        _ => commits("statement of unknown effect"),
    }
}

/// The first `n` words of a statement, upper-cased, skipping comments and reading executable
/// comments (`/*!40101 ...`) as code.
fn leading_words(statement: &str, n: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = statement;
    while words.len() < n {
        rest = rest.trim_start();
        if let Some(after) = rest
            .strip_prefix("/*!")
            .or_else(|| rest.strip_prefix("/*M!"))
        {
            rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
            continue;
        }
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        let len = if c.is_alphanumeric() || c == '_' || c == '$' {
            rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(rest.len())
        } else {
            c.len_utf8()
        };
        let token = &rest[..len];
        if token.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
            words.push(token.to_ascii_uppercase());
        } else if token != "=" && token != "@" {
            // Punctuation other than `SET autocommit = 0`'s ends the head.
            if !words.is_empty() {
                break;
            }
        }
        rest = &rest[len..];
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_commits_and_dml_does_not() {
        for (sql, commits) in [
            ("CREATE TABLE t (id INT)", true),
            ("create temporary table t (id int)", false),
            ("ALTER TABLE t ADD COLUMN x INT", true),
            ("DROP TEMPORARY TABLE t", false),
            ("RENAME TABLE a TO b", true),
            ("TRUNCATE t", true),
            ("INSERT INTO t VALUES (1)", false),
            ("UPDATE t SET x = 1", false),
            ("SET FOREIGN_KEY_CHECKS = 0", false),
            ("SET autocommit = 1", true),
            ("/*!40101 SET NAMES utf8 */", false),
            (
                "/*!50003 CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1 */",
                true,
            ),
            ("CALL p()", true),
            ("PREPARE s FROM @sql", false),
            ("EXECUTE s", true),
            ("WITH x AS (SELECT 1) SELECT * FROM x", false),
        ] {
            assert_eq!(effect(sql).commits.is_some(), commits, "{sql}");
        }
    }

    #[test]
    fn transaction_control() {
        assert_eq!(
            effect("START TRANSACTION").class,
            Class::Begin { plain: true }
        );
        assert_eq!(
            effect("START TRANSACTION READ ONLY").class,
            Class::Begin { plain: false }
        );
        assert_eq!(effect("begin work").class, Class::Begin { plain: true });
        assert_eq!(effect("COMMIT").class, Class::Commit { plain: true });
        assert_eq!(
            effect("COMMIT AND CHAIN").class,
            Class::Commit { plain: false }
        );
        assert_eq!(effect("ROLLBACK TO SAVEPOINT a").class, Class::Savepoint);
        assert_eq!(effect("ROLLBACK").class, Class::Rollback);
        assert_eq!(effect("XA START 'x'").class, Class::TwoPhase);
        assert!(effect("BEGIN NOT ATOMIC SELECT 1; END").commits.is_some());
    }
}
