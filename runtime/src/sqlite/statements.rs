//! Statement splitting, as SQLite itself splits (`sqlite3_complete`).

use std::ffi::CString;

use crate::Span;

/// Splits SQLite SQL into statements exactly as SQLite does: a statement ends at a `;` for which
/// `sqlite3_complete` says the text so far is complete (so semicolons inside strings, quoted
/// identifiers, comments and `CREATE TRIGGER ... BEGIN ... END` bodies do not split). Each span
/// starts at the statement's first token (leading whitespace and comments skipped, so that a
/// line number points at the statement) and ends after its `;`. Empty statements are dropped;
/// a last statement without `;` is kept.
///
/// ```
/// let sql = "-- users\nCREATE TABLE t (x text DEFAULT ';');\n\
///            CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;\n;\nSELECT 3";
/// let spans = preflight_runtime::sqlite::statements(sql);
/// let texts: Vec<&str> = spans.iter().map(|s| &sql[s.range()]).collect();
/// assert_eq!(texts, [
///     "CREATE TABLE t (x text DEFAULT ';');",
///     "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;",
///     "SELECT 3",
/// ]);
/// ```
pub fn statements(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b';' && i >= start && is_complete(&text[start..=i]) {
            push_span(text, start, i + 1, &mut spans);
            start = i + 1;
        }
    }
    if start < text.len() {
        let end = start + text[start..].trim_end().len();
        push_span(text, start, end, &mut spans);
    }
    spans
}

fn push_span(text: &str, start: usize, end: usize, spans: &mut Vec<Span>) {
    let first = start + skip_blank(&text[start..end]);
    // Nothing but blanks, or a lone `;`: an empty statement.
    if first >= end || text[first..end].trim() == ";" {
        return;
    }
    // Spans are u32, as everywhere in the model (a migration file over 4 GiB is not one).
    spans.push(Span::new(
        u32::try_from(first).unwrap_or(u32::MAX),
        u32::try_from(end).unwrap_or(u32::MAX),
    ));
}

/// The length of the leading whitespace and comments of `s`.
fn skip_blank(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            i = s[i..].find('\n').map_or(b.len(), |n| i + n + 1);
        } else if b[i..].starts_with(b"/*") {
            i = s[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
        } else {
            return i;
        }
    }
}

/// `sqlite3_complete`: whether the text ends with a complete statement (a `;` outside strings,
/// comments and trigger bodies). Text with a NUL byte is not SQL SQLite would run.
fn is_complete(text: &str) -> bool {
    let Ok(c) = CString::new(text) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; sqlite3_complete
    // only reads it and needs no connection.
    unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        statements(sql).iter().map(|s| &sql[s.range()]).collect()
    }

    #[test]
    fn splits_like_sqlite() {
        assert_eq!(texts(""), Vec::<&str>::new());
        assert_eq!(
            texts("  -- only a comment\n /* and another */ ;\n"),
            Vec::<&str>::new()
        );
        assert_eq!(
            texts("SELECT ';' /* ; */; -- ;\nSELECT \"a;b\" FROM [x;y];"),
            ["SELECT ';' /* ; */;", "SELECT \"a;b\" FROM [x;y];"]
        );
        let trigger = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE b SET n = n + 1;\n  DELETE FROM c;\nEND;";
        assert_eq!(texts(&format!("{trigger}\nVACUUM")), [trigger, "VACUUM"]);
    }
}
