//! Directives: comment lines that change how a migration runs or is checked.
//!
//! Preflight's own: `-- preflight:no-transaction`, `-- preflight:allow(rule, ...)` and
//! `-- preflight:requires <set> <version>` (this migration runs after that migration of another
//! set, see [`crate::composition`]), each on a line of its own anywhere in the file. Foreign markers are honoured too: goose's
//! `-- +goose NO TRANSACTION` (any case), sqlx's `-- no-transaction` as the first line, and
//! diesel's `run_in_transaction = false` in `metadata.toml`.

use std::ops::Range;

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
}

/// The directives of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// Set when the file (or its diesel metadata) asks to run outside a transaction.
    pub no_transaction: Option<NoTransaction>,
    /// Lint rules allowed in this file, by name.
    pub allow: Vec<String>,
    /// `-- preflight:requires <set> <version>` lines, in order.
    pub requires: Vec<Requires>,
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

/// Reads Preflight's and sqlx's directives from a file's text.
pub(crate) fn parse(text: &str) -> (Directives, Vec<DirectiveError>) {
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
        let comment = comment.trim();
        let Some(directive) = comment.strip_prefix("preflight:") else {
            continue;
        };
        let directive = directive.trim();
        if directive == "no-transaction" {
            d.no_transaction = Some(NoTransaction::Preflight);
        } else if let Some(list) = directive
            .strip_prefix("allow(")
            .and_then(|r| r.strip_suffix(')'))
        {
            for rule in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                d.allow.push(rule.to_owned());
            }
        } else if let Some(args) = directive
            .strip_prefix("requires")
            .filter(|a| a.is_empty() || a.starts_with(char::is_whitespace))
        {
            let at = start..start + line.trim_end().len();
            match requires(args) {
                Ok((set, version)) => d.requires.push(Requires { set, version, at }),
                Err(message) => errors.push(DirectiveError { at, message }),
            }
        } else {
            errors.push(DirectiveError {
                at: start..start + line.trim_end().len(),
                message: format!(
                    "unknown directive `-- preflight:{directive}`: the directives are \
                     `-- preflight:no-transaction`, `-- preflight:allow(rule-name)` and \
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
    fn reads_directives() {
        let (d, e) = parse("-- preflight:no-transaction\n--preflight:allow(a, b)\nselect 1;\n");
        assert!(e.is_empty());
        assert_eq!(d.no_transaction, Some(NoTransaction::Preflight));
        assert_eq!(d.allow, ["a", "b"]);
    }

    #[test]
    fn sqlx_marker_only_on_first_line() {
        assert_eq!(
            parse("\u{feff}-- no-transaction\r\nselect 1;")
                .0
                .no_transaction,
            Some(NoTransaction::Sqlx)
        );
        assert_eq!(
            parse("select 1;\n-- no-transaction\n").0.no_transaction,
            None
        );
    }

    #[test]
    fn reads_requirements() {
        let text = "-- preflight:requires auth 3\n--preflight:requires billing 1.2\nselect 1;\n";
        let (d, e) = parse(text);
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
            let (_, e) = parse(bad);
            assert_eq!(e.len(), 1, "{bad}");
            assert!(
                e[0].message.contains("preflight:requires"),
                "{}",
                e[0].message
            );
        }
        // Another directive that starts with the same letters is unknown, not a requirement.
        assert!(parse("-- preflight:requiresx\n").1[0]
            .message
            .contains("unknown directive"));
    }

    #[test]
    fn refuses_unknown_directive() {
        let (_, e) = parse("select 1;\n-- preflight:no-transacton\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].at, 10..36);
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
