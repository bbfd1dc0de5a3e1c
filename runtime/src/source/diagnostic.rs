//! Problems found in a migration directory, with the place they were found.

use std::fmt;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Information about how a file runs (e.g. as a script of its own transaction blocks).
    Note,
    /// A lint: reported, the build goes on (unless lints are denied).
    Warning,
    /// The directory cannot be used as it is.
    Error,
}

/// A 1-based line and column (in characters) in a file, with the line's text for a caret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// The text of that line, without its line ending.
    pub line_text: String,
}

impl Position {
    /// The position of byte `offset` of `text` (clamped to the text).
    pub fn at(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        let line_text = text[line_start..line_end].trim_end_matches('\r');
        Position {
            line: text[..offset].matches('\n').count() + 1,
            column: text[line_start..offset].chars().count() + 1,
            line_text: line_text
                .strip_prefix('\u{feff}')
                .unwrap_or(line_text)
                .to_owned(),
        }
    }
}

/// One problem: where (file, and line and column when there is one), what, and how to fix it.
///
/// Displays as `path:line:column: message` followed by the line and a caret, the way compilers
/// print errors, so that a terminal or an editor can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub level: Level,
    /// The file (or directory), as given relative to the crate or working directory.
    pub path: String,
    /// Where in the file, when the problem has a place.
    pub position: Option<Position>,
    /// What is wrong and what to do.
    pub message: String,
    /// The lint rule, for warnings (`-- preflight:allow(rule)` silences it).
    pub rule: Option<String>,
}

impl Diagnostic {
    /// An error about a whole file or directory.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level: Level::Error,
            path: path.into(),
            position: None,
            message: message.into(),
            rule: None,
        }
    }

    /// A warning about a whole file, under a rule that can be allowed.
    pub fn warning(path: impl Into<String>, message: impl Into<String>, rule: &str) -> Diagnostic {
        Diagnostic {
            level: Level::Warning,
            rule: Some(rule.to_owned()),
            ..Diagnostic::error(path, message)
        }
    }

    /// An error at byte `offset` of `text`, the content of `path`.
    pub fn error_at(
        path: impl Into<String>,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            position: Some(Position::at(text, offset)),
            ..Diagnostic::error(path, message)
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Note => "note",
        };
        match &self.position {
            Some(p) => write!(
                f,
                "{}:{}:{}: {level}: {}",
                self.path, p.line, p.column, self.message
            )?,
            None => write!(f, "{}: {level}: {}", self.path, self.message)?,
        }
        if let Some(rule) = &self.rule {
            write!(f, " [{rule}]")?;
        }
        if let Some(p) = &self.position {
            let gutter = p.line.to_string().len();
            let caret_pad: String = p
                .line_text
                .chars()
                .take(p.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {caret_pad}^",
                "", p.line, p.line_text, ""
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_in_characters() {
        let text = "select 1;\nselect 'é', x;\n";
        let p = Position::at(text, text.find('x').unwrap());
        assert_eq!((p.line, p.column), (2, 13));
        assert_eq!(p.line_text, "select 'é', x;");
    }

    #[test]
    fn displays_with_caret() {
        let d = Diagnostic::error_at("m/1_a.sql", "selec 1;\n", 0, "syntax error");
        assert_eq!(
            d.to_string(),
            "m/1_a.sql:1:1: error: syntax error\n  |\n1 | selec 1;\n  | ^"
        );
    }
}
