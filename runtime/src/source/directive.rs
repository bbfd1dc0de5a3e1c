//! Directives: comment lines that change how a migration runs or is checked.
//!
//! Preflight's own, each on a line of its own: `-- preflight:no-transaction` anywhere in the
//! file; `-- preflight:allow rule, ...` allows lint rules for the statement it precedes (or
//! sits in); `-- preflight:allow-file rule, ...` (or `-- preflight:allow(rule, ...)`) for the
//! whole file; `-- preflight:lock-timeout 30s` and `-- preflight:statement-timeout off` give
//! the migration its own time limits (see [`Timeout`] for the values); `-- preflight:requires
//! <set> <version>` makes it run after that migration of another set (see
//! [`crate::composition`]). Foreign markers are honoured too: goose's `-- +goose NO TRANSACTION`
//! (any case), sqlx's `-- no-transaction` as the first line, diesel's `run_in_transaction =
//! false` in `metadata.toml`, and pop's `.autocommit.` in the file name.

use std::ops::Range;

use crate::timeout::{Timeout, Timeouts};
use crate::Version;

/// Where a no-transaction marker came from (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTransaction {
    /// `-- preflight:no-transaction`
    Preflight,
    /// `-- +goose NO TRANSACTION`
    Goose,
    /// `-- no-transaction` on the first line (sqlx)
    Sqlx,
    /// `run_in_transaction = false` in diesel's `metadata.toml`
    Diesel,
    /// `.autocommit.` in a pop file name
    Pop,
    /// `-- +migrate Up notransaction` (sql-migrate)
    SqlMigrate,
    /// `-- migrate:up transaction:false` (dbmate)
    Dbmate,
}

/// The directives of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// Set when the file (or its diesel metadata) asks to run outside a transaction.
    pub no_transaction: Option<NoTransaction>,
    /// Lint rules allowed in the whole file, by name.
    pub allow: Vec<String>,
    /// Lint rules allowed for one statement: the one that contains or follows the directive.
    pub allow_statement: Vec<StatementAllow>,
    /// The file's own `lock_timeout` / `statement_timeout`, replacing the runner's.
    pub timeouts: Timeouts,
    /// `-- preflight:requires <set> <version>` lines, in order.
    pub requires: Vec<Requires>,
}

/// A `-- preflight:allow rule, ...` line: the rules, and where the line starts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementAllow {
    /// Byte offset of the directive's line in the file's text.
    pub at: usize,
    /// The rule names, as written.
    pub rules: Vec<String>,
}

/// A `-- preflight:requires <set> <version>` line: the migration needs that migration of that
/// set applied first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requires {
    /// The set.
    pub set: String,
    /// The version in that set.
    pub version: Version,
    /// The byte range of the line in its file.
    pub at: Range<usize>,
}

/// A directive that does not parse, with the byte range of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirectiveError {
    pub at: Range<usize>,
    pub message: String,
}

/// Reads Preflight's and sqlx's directives from a file's text. With `comments` (the byte offsets
/// where the file's `--` comments start, as a SQL lexer finds them), a line is a directive only
/// when its `--` is one of them: text inside a string or a dollar-quoted body that looks like a
/// directive is not one.
pub(crate) fn parse(text: &str, comments: Option<&[usize]>) -> (Directives, Vec<DirectiveError>) {
    let mut d = Directives::default();
    let mut errors = Vec::new();
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    if body.lines().next().map(str::trim_end) == Some("-- no-transaction") {
        d.no_transaction = Some(NoTransaction::Sqlx);
    }
    let mut offset = text.len() - body.len();
    for line in body.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let Some(comment) = trimmed.strip_prefix("--") else {
            continue;
        };
        let dashes = start + (line.len() - line.trim_start().len());
        if comments.is_some_and(|c| c.binary_search(&dashes).is_err()) {
            continue;
        }
        let comment = comment.trim();
        let Some(directive) = comment.strip_prefix("preflight:") else {
            continue;
        };
        let directive = directive.trim();
        let rules = |list: &str| -> Vec<String> {
            list.split([',', ' ', '\t'])
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let at = start..start + line.trim_end().len();
        if directive == "no-transaction" {
            d.no_transaction = Some(NoTransaction::Preflight);
        } else if let Some(list) = directive
            .strip_prefix("allow(")
            .and_then(|r| r.strip_suffix(')'))
        {
            d.allow.extend(rules(list));
        } else if let Some(list) = directive.strip_prefix("allow-file ") {
            d.allow.extend(rules(list));
        } else if let Some(list) = directive.strip_prefix("allow ") {
            d.allow_statement.push(StatementAllow {
                at: start,
                rules: rules(list),
            });
        } else if let Some((name, value)) = timeout_directive(directive) {
            let slot = if name == "lock-timeout" {
                &mut d.timeouts.lock
            } else {
                &mut d.timeouts.statement
            };
            match value.parse::<Timeout>() {
                Ok(t) if slot.is_none() => *slot = Some(t),
                Ok(_) => errors.push(DirectiveError {
                    at,
                    message: format!("`-- preflight:{name}` is given twice in this file: keep one"),
                }),
                Err(e) => errors.push(DirectiveError {
                    at,
                    message: format!("`-- preflight:{name} {value}`: {e}"),
                }),
            }
        } else if let Some(args) = directive
            .strip_prefix("requires")
            .filter(|a| a.is_empty() || a.starts_with(char::is_whitespace))
        {
            match requires(args) {
                Ok((set, version)) => d.requires.push(Requires { set, version, at }),
                Err(message) => errors.push(DirectiveError { at, message }),
            }
        } else {
            errors.push(DirectiveError {
                at,
                message: format!(
                    "unknown directive `-- preflight:{directive}`: the directives are \
                     `-- preflight:no-transaction`, `-- preflight:allow rule-name` (the next \
                     statement), `-- preflight:allow-file rule-name` (the whole file), \
                     `-- preflight:lock-timeout 30s`, `-- preflight:statement-timeout off` and \
                     `-- preflight:requires <set> <version>`"
                ),
            });
        }
    }
    (d, errors)
}

/// The arguments of `-- preflight:requires`: a set's name and a version.
fn requires(args: &str) -> Result<(String, Version), String> {
    let usage =
        "write `-- preflight:requires <set> <version>`, e.g. `-- preflight:requires auth 3`";
    let parts: Vec<&str> = args.split_whitespace().collect();
    let [set, version] = parts.as_slice() else {
        return Err(format!("`-- preflight:requires{args}`: {usage}"));
    };
    crate::composition::check_set_name(set)
        .map_err(|e| format!("`-- preflight:requires{args}`: {e}"))?;
    let version = version
        .parse::<Version>()
        .map_err(|e| format!("`-- preflight:requires{args}`: {e}; {usage}"))?;
    Ok(((*set).to_owned(), version))
}

/// `lock-timeout VALUE` or `statement-timeout VALUE`: the directive's name and its value.
fn timeout_directive(directive: &str) -> Option<(&'static str, &str)> {
    ["lock-timeout", "statement-timeout"]
        .into_iter()
        .find_map(|name| {
            let rest = directive.strip_prefix(name)?;
            // `lock-timeout30s` is not the directive; a missing value is an error below.
            (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| (name, rest.trim()))
        })
}

/// Reads diesel's `metadata.toml`: only `run_in_transaction` matters to Preflight.
pub(crate) fn parse_diesel_metadata(text: &str) -> Result<bool, String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() == "run_in_transaction" {
            return match value.trim() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(format!(
                    "`run_in_transaction = {other}`: expected `true` or `false`"
                )),
            };
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_timeouts() {
        let (d, e) = parse(
            "-- preflight:lock-timeout 30s\n-- preflight:statement-timeout off\nALTER TABLE t ADD c int;\n",
            None,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            d.timeouts,
            Timeouts {
                lock: Some(Timeout::After(std::time::Duration::from_secs(30))),
                statement: Some(Timeout::Off),
            }
        );
    }

    #[test]
    fn refuses_malformed_timeouts_at_their_line() {
        let text = "select 1;\n-- preflight:lock-timeout 30\n-- preflight:statement-timeout\n\
                    -- preflight:lock-timeout 1s\n-- preflight:lock-timeout 2s\n";
        let (d, e) = parse(text, None);
        let lines: Vec<usize> = e
            .iter()
            .map(|e| text[..e.at.start].matches('\n').count() + 1)
            .collect();
        assert_eq!(lines, [2, 3, 5], "{e:?}");
        assert!(
            e[0].message.contains("`30` is not a time limit"),
            "{}",
            e[0].message
        );
        assert!(e[2].message.contains("twice"), "{}", e[2].message);
        assert_eq!(
            d.timeouts.lock,
            Some(Timeout::After(std::time::Duration::from_secs(1)))
        );
        assert_eq!(d.timeouts.statement, None);
    }

    #[test]
    fn reads_directives() {
        let text =
            "-- preflight:no-transaction\n--preflight:allow(a, b)\n-- preflight:allow-file c\n\
                    select 1;\n  -- preflight:allow d, e\nselect 2;\n";
        let (d, e) = parse(text, None);
        assert!(e.is_empty());
        assert_eq!(d.no_transaction, Some(NoTransaction::Preflight));
        assert_eq!(d.allow, ["a", "b", "c"]);
        assert_eq!(
            d.allow_statement,
            [StatementAllow {
                at: text.find("  -- preflight:allow d").unwrap(),
                rules: vec!["d".into(), "e".into()]
            }]
        );
    }

    #[test]
    fn sqlx_marker_only_on_first_line() {
        assert_eq!(
            parse("\u{feff}-- no-transaction\r\nselect 1;", None)
                .0
                .no_transaction,
            Some(NoTransaction::Sqlx)
        );
        assert_eq!(
            parse("select 1;\n-- no-transaction\n", None)
                .0
                .no_transaction,
            None
        );
    }

    #[test]
    fn reads_requirements() {
        let text = "-- preflight:requires auth 3\n--preflight:requires billing 1.2\nselect 1;\n";
        let (d, e) = parse(text, None);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(d.requires.len(), 2);
        assert_eq!(
            (d.requires[0].set.as_str(), d.requires[0].version),
            ("auth", Version::new(3))
        );
        assert_eq!(d.requires[0].at, 0..28);
        assert_eq!(d.requires[1].version, "1.2".parse().unwrap());
        for bad in [
            "-- preflight:requires auth\n",
            "-- preflight:requires auth x\n",
            "-- preflight:requires a=b 3\n",
            "-- preflight:requires auth 3 4\n",
        ] {
            let (_, e) = parse(bad, None);
            assert_eq!(e.len(), 1, "{bad}");
            assert!(
                e[0].message.contains("preflight:requires"),
                "{}",
                e[0].message
            );
        }
        // Another directive that starts with the same letters is unknown, not a requirement.
        assert!(parse("-- preflight:requiresx\n", None).1[0]
            .message
            .contains("unknown directive"));
    }

    #[test]
    fn refuses_unknown_directive() {
        let (_, e) = parse("select 1;\n-- preflight:no-transacton\n", None);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].at, 10..36);
    }

    #[test]
    fn only_real_comments_are_directives() {
        let text = "select $$\n-- preflight:nonsense\n$$;\n-- preflight:no-transaction\n";
        let real = [text.rfind("--").unwrap()];
        let (d, e) = parse(text, Some(&real));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(d.no_transaction, Some(NoTransaction::Preflight));
        assert_eq!(parse(text, None).1.len(), 1);
    }

    #[test]
    fn diesel_metadata() {
        assert_eq!(
            parse_diesel_metadata("run_in_transaction = false\n"),
            Ok(false)
        );
        assert_eq!(parse_diesel_metadata("# nothing\n"), Ok(true));
        assert!(parse_diesel_metadata("run_in_transaction = maybe").is_err());
    }
}
