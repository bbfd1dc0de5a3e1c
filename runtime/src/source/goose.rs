//! goose's annotated single files: `-- +goose Up`, `-- +goose Down`, `StatementBegin/End`,
//! `NO TRANSACTION`.

use std::ops::Range;

/// The sections of a goose file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GooseFile {
    pub up: Range<usize>,
    pub down: Option<Range<usize>>,
    pub no_transaction: bool,
}

/// Whether a line is a goose annotation (`-- +goose ...`), and which.
fn annotation(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("--")?.trim_start();
    let rest = rest.strip_prefix("+goose")?;
    Some(rest.trim().to_ascii_uppercase())
}

/// Whether a file uses goose annotations at all.
pub(crate) fn is_goose(text: &str) -> bool {
    text.lines()
        .any(|l| annotation(l).is_some_and(|a| a == "UP"))
}

/// Splits a goose file into its sections. Errors carry the byte range of the offending line.
pub(crate) fn parse(text: &str) -> Result<GooseFile, (Range<usize>, String)> {
    let mut up: Option<Range<usize>> = None;
    let mut down: Option<Range<usize>> = None;
    let mut no_transaction = false;
    let mut offset = 0;
    let mut in_block = false;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let at = start..start + line.trim_end().len();
        let Some(a) = annotation(line) else {
            if up.is_none() && !line.trim().is_empty() && !line.trim().starts_with("--") {
                let stripped = line.trim_start_matches('\u{feff}').trim();
                if !stripped.is_empty() && !stripped.starts_with("--") {
                    return Err((at, "SQL before `-- +goose Up`: goose files start with the `-- +goose Up` annotation".into()));
                }
            }
            continue;
        };
        match a.as_str() {
            "UP" => {
                if up.is_some() {
                    return Err((at, "a second `-- +goose Up`".into()));
                }
                up = Some(offset..text.len());
            }
            "DOWN" => {
                let Some(u) = up.as_mut() else {
                    return Err((at, "`-- +goose Down` before `-- +goose Up`".into()));
                };
                if down.is_some() {
                    return Err((at, "a second `-- +goose Down`".into()));
                }
                u.end = start;
                down = Some(offset..text.len());
            }
            "STATEMENTBEGIN" => {
                if in_block {
                    return Err((at, "`StatementBegin` inside another `StatementBegin` block".into()));
                }
                in_block = true;
            }
            "STATEMENTEND" => {
                if !in_block {
                    return Err((at, "`StatementEnd` without `StatementBegin`".into()));
                }
                in_block = false;
            }
            "NO TRANSACTION" => no_transaction = true,
            other => {
                return Err((
                    at,
                    format!("unsupported goose annotation `+goose {other}` (supported: Up, Down, StatementBegin, StatementEnd, NO TRANSACTION)"),
                ))
            }
        }
    }
    if in_block {
        return Err((
            0..0,
            "`-- +goose StatementBegin` is never closed by `StatementEnd`".into(),
        ));
    }
    let up = up.ok_or_else(|| (0..0, "no `-- +goose Up` annotation".to_owned()))?;
    Ok(GooseFile {
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
        let g = parse(text).unwrap();
        assert_eq!(&text[g.up.clone()], "CREATE TABLE t(id int);\n");
        assert_eq!(&text[g.down.clone().unwrap()], "DROP TABLE t;\n");
        assert!(!g.no_transaction);
    }

    #[test]
    fn no_transaction_any_case() {
        let g = parse("-- +goose no transaction\n-- +goose up\nselect 1;\n").unwrap();
        assert!(g.no_transaction);
    }

    #[test]
    fn errors() {
        assert!(parse("select 1;\n-- +goose Up\n").is_err());
        assert!(parse("-- +goose Up\n-- +goose StatementBegin\nselect 1;\n").is_err());
        assert!(parse("-- +goose Up\n-- +goose Envsub On\n").is_err());
        assert!(parse("-- +goose Down\n").is_err());
    }
}
