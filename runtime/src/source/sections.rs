//! Single files with up and down sections, in the three annotation styles real directories use:
//! goose (`-- +goose Up`, `-- +goose Down`, `StatementBegin/End`, `-- +goose NO TRANSACTION`),
//! sql-migrate (`-- +migrate Up [notransaction]`, `-- +migrate Down`, `StatementBegin/End`) and
//! dbmate (`-- migrate:up [transaction:false]`, `-- migrate:down`). Each tool reads these as
//! lines, and so do we.

use std::ops::Range;

/// Which tool's annotations a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Goose,
    SqlMigrate,
    Dbmate,
}

impl Marker {
    /// How the up annotation is written, for messages.
    pub(crate) fn up(&self) -> &'static str {
        match self {
            Marker::Goose => "-- +goose Up",
            Marker::SqlMigrate => "-- +migrate Up",
            Marker::Dbmate => "-- migrate:up",
        }
    }

    fn down(&self) -> &'static str {
        match self {
            Marker::Goose => "-- +goose Down",
            Marker::SqlMigrate => "-- +migrate Down",
            Marker::Dbmate => "-- migrate:down",
        }
    }
}

/// The sections of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sections {
    pub up: Range<usize>,
    pub down: Option<Range<usize>>,
    pub no_transaction: bool,
}

/// What an annotation line says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Annotation {
    Up { no_transaction: bool },
    Down,
    StatementBegin,
    StatementEnd,
    NoTransaction,
    Unknown,
}

/// Whether a line is an annotation of `marker`'s style, and which. Like the tools, only a line
/// that starts with `--` (no indentation; a file's BOM aside) is one: goose refuses an indented
/// annotation, dbmate's expression is anchored at the line start, so an indented
/// `-- migrate:down` is a plain comment to dbmate (and the SQL after it part of the up section).
fn annotation(line: &str, marker: Marker) -> Option<Annotation> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    let rest = line.trim_end().strip_prefix("--")?;
    // dbmate's `--\s*migrate:` and goose's `--+goose` / `-- +goose` alike.
    let rest = rest.trim_start();
    let words: Vec<String> = match marker {
        Marker::Goose => rest.strip_prefix("+goose")?,
        Marker::SqlMigrate => rest.strip_prefix("+migrate")?,
        Marker::Dbmate => rest.strip_prefix("migrate:")?,
    }
    .split_whitespace()
    .map(str::to_ascii_lowercase)
    .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Some(match (marker, words.as_slice()) {
        (Marker::Goose, ["up"]) => Annotation::Up {
            no_transaction: false,
        },
        (Marker::Goose, ["no", "transaction"]) => Annotation::NoTransaction,
        (Marker::SqlMigrate, ["up"]) => Annotation::Up {
            no_transaction: false,
        },
        (Marker::SqlMigrate, ["up", "notransaction"]) => Annotation::Up {
            no_transaction: true,
        },
        (Marker::Dbmate, ["up", options @ ..]) => {
            let mut no_transaction = false;
            for option in options {
                match *option {
                    "transaction:false" => no_transaction = true,
                    "transaction:true" => {}
                    _ => return Some(Annotation::Unknown),
                }
            }
            Annotation::Up { no_transaction }
        }
        (Marker::Dbmate, ["down", ..]) => Annotation::Down,
        (Marker::Goose | Marker::SqlMigrate, ["down"] | ["down", "notransaction"]) => {
            Annotation::Down
        }
        (Marker::Goose | Marker::SqlMigrate, ["statementbegin"]) => Annotation::StatementBegin,
        (Marker::Goose | Marker::SqlMigrate, ["statementend"]) => Annotation::StatementEnd,
        _ => Annotation::Unknown,
    })
}

/// Which annotation style a file uses: the one with an up annotation.
pub(crate) fn marker(text: &str) -> Option<Marker> {
    [Marker::Goose, Marker::SqlMigrate, Marker::Dbmate]
        .into_iter()
        .find(|&m| {
            text.lines()
                .any(|l| matches!(annotation(l, m), Some(Annotation::Up { .. })))
        })
}

/// Splits a file into its sections. Errors carry the byte range of the offending line.
pub(crate) fn parse(text: &str, marker: Marker) -> Result<Sections, (Range<usize>, String)> {
    let mut up: Option<Range<usize>> = None;
    let mut down: Option<Range<usize>> = None;
    let mut no_transaction = false;
    let mut offset = 0;
    let mut in_block = false;
    let (up_mark, down_mark) = (marker.up(), marker.down());
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let at = start..start + line.trim_end().len();
        let Some(a) = annotation(line, marker) else {
            if up.is_none() && !line.trim().is_empty() && !line.trim().starts_with("--") {
                let stripped = line.trim_start_matches('\u{feff}').trim();
                if !stripped.is_empty() && !stripped.starts_with("--") {
                    return Err((
                        at,
                        format!("SQL before `{up_mark}`: the file starts with the `{up_mark}` annotation"),
                    ));
                }
            }
            continue;
        };
        match a {
            Annotation::Up { no_transaction: nt } => {
                // sql-migrate reads every `-- +migrate Up` section of a file as one up body
                // (one of them saying `notransaction` makes all of it so): consecutive ones are
                // one range here, the annotation lines are comments in it.
                let continues = marker == Marker::SqlMigrate && up.is_some() && down.is_none();
                if up.is_some() && !continues {
                    let why = if down.is_some() && marker == Marker::SqlMigrate {
                        format!(
                            "`{up_mark}` after `{down_mark}`: Preflight reads each direction as one \
                             part of the file; move this section above the first `{down_mark}`"
                        )
                    } else {
                        format!("a second `{up_mark}`")
                    };
                    return Err((at, why));
                }
                no_transaction |= nt;
                if !continues {
                    up = Some(offset..text.len());
                }
            }
            Annotation::Down => {
                let Some(u) = up.as_mut() else {
                    return Err((at, format!("`{down_mark}` before `{up_mark}`")));
                };
                if down.is_some() {
                    if marker == Marker::SqlMigrate {
                        continue;
                    }
                    return Err((at, format!("a second `{down_mark}`")));
                }
                u.end = start;
                down = Some(offset..text.len());
            }
            Annotation::StatementBegin => {
                if in_block {
                    return Err((
                        at,
                        "`StatementBegin` inside another `StatementBegin` block".into(),
                    ));
                }
                in_block = true;
            }
            Annotation::StatementEnd => {
                if !in_block {
                    return Err((at, "`StatementEnd` without `StatementBegin`".into()));
                }
                in_block = false;
            }
            Annotation::NoTransaction => no_transaction = true,
            Annotation::Unknown => {
                let supported = match marker {
                    Marker::Goose => "Up, Down, StatementBegin, StatementEnd, NO TRANSACTION",
                    Marker::SqlMigrate => {
                        "Up, Up notransaction, Down, StatementBegin, StatementEnd"
                    }
                    Marker::Dbmate => "up, up transaction:false, down",
                };
                return Err((
                    at,
                    format!(
                        "unsupported annotation `{}` (supported: {supported})",
                        line.trim()
                    ),
                ));
            }
        }
    }
    if in_block {
        return Err((
            0..0,
            "`StatementBegin` is never closed by `StatementEnd`".into(),
        ));
    }
    let up = up.ok_or_else(|| (0..0, format!("no `{up_mark}` annotation")))?;
    // goose reverts a file without a Down section by running nothing (and removing its
    // record): the same here, an empty down body at the end of the file.
    let down = match (down, marker) {
        (None, Marker::Goose) => Some(text.len()..text.len()),
        (down, _) => down,
    };
    Ok(Sections {
        up,
        down,
        no_transaction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sections() {
        let text =
            "-- comment\n-- +goose Up\nCREATE TABLE t(id int);\n-- +goose Down\nDROP TABLE t;\n";
        let g = parse(text, Marker::Goose).unwrap();
        assert_eq!(&text[g.up.clone()], "CREATE TABLE t(id int);\n");
        assert_eq!(&text[g.down.clone().unwrap()], "DROP TABLE t;\n");
        assert!(!g.no_transaction);
    }

    #[test]
    fn no_transaction_any_case() {
        let text = "-- +goose no transaction\n-- +goose up\nselect 1;\n";
        let g = parse(text, Marker::Goose).unwrap();
        assert!(g.no_transaction);
        // Without a Down section goose reverts by running nothing.
        assert_eq!(g.down, Some(text.len()..text.len()));
    }

    #[test]
    fn errors() {
        let goose = |text| parse(text, Marker::Goose);
        assert!(goose("select 1;\n-- +goose Up\n").is_err());
        assert!(goose("-- +goose Up\n-- +goose StatementBegin\nselect 1;\n").is_err());
        assert!(goose("-- +goose Up\n-- +goose Envsub On\n").is_err());
        assert!(goose("-- +goose Down\n").is_err());
        assert!(parse("-- migrate:up transaction:maybe\n", Marker::Dbmate).is_err());
    }

    #[test]
    fn sql_migrate_and_dbmate_sections() {
        let text = "-- +migrate Up notransaction\nCREATE INDEX CONCURRENTLY i ON t (a);\n\
                    -- +migrate Down\nDROP INDEX i;\n";
        assert_eq!(marker(text), Some(Marker::SqlMigrate));
        let s = parse(text, Marker::SqlMigrate).unwrap();
        assert!(s.no_transaction);
        assert_eq!(&text[s.down.unwrap()], "DROP INDEX i;\n");
        // sql-migrate joins consecutive sections of one direction.
        let text = "-- +migrate Up\nCREATE TABLE t (a int);\n-- +migrate Up notransaction\n\
                    CREATE INDEX CONCURRENTLY i ON t (a);\n-- +migrate Down\nDROP INDEX i;\n\
                    -- +migrate Down\nDROP TABLE t;\n";
        let s = parse(text, Marker::SqlMigrate).unwrap();
        assert!(s.no_transaction);
        assert!(text[s.up.clone()].contains("CREATE TABLE") && text[s.up].contains("CONCURRENTLY"));
        assert!(text[s.down.unwrap()].ends_with("DROP TABLE t;\n"));
        let e = parse(
            "-- +migrate Up\n-- +migrate Down\n-- +migrate Up\n",
            Marker::SqlMigrate,
        )
        .unwrap_err();
        assert!(e.1.contains("after `-- +migrate Down`"), "{e:?}");
        let text = "-- migrate:up\nCREATE TABLE t (a int);\n\n-- migrate:down\nDROP TABLE t;\n";
        assert_eq!(marker(text), Some(Marker::Dbmate));
        let s = parse(text, Marker::Dbmate).unwrap();
        assert_eq!(&text[s.up.clone()], "CREATE TABLE t (a int);\n\n");
        assert!(!s.no_transaction);
        let s = parse("-- migrate:up transaction:false\nVACUUM;\n", Marker::Dbmate).unwrap();
        assert!(s.no_transaction);
        // A word that merely starts like one is no annotation.
        assert_eq!(marker("-- migrate:upgrade notes\nselect 1;\n"), None);
        // Indented, it is a comment (dbmate's expression is anchored at the line start): the
        // SQL after it belongs to the up section.
        let text =
            "-- migrate:up\nALTER TABLE t\n    ADD c int\n    -- migrate:down\n    DROP c;\n";
        let s = parse(text, Marker::Dbmate).unwrap();
        assert_eq!(s.down, None);
        assert!(text[s.up].contains("DROP c"));
        assert_eq!(marker("select 1;\n"), None);
    }
}
