//! A file-naming pattern the user declares for a home-grown runner's directory, e.g.
//! `V{version}.{name}.{direction}.sql`, so that hundreds of files need no renaming.

use std::fmt;
use std::str::FromStr;

use crate::Version;

/// A declared naming pattern: literal text with the placeholders `{version}` (required: digits,
/// optionally in parts separated by `.` or `_`), `{name}` (any non-empty text) and `{direction}`
/// (`up` or `down`, in any case; without it every file is an up migration, or a goose file
/// with sections). It must end with `.sql`. Under a declared pattern every `.sql` file of the
/// directory must match it: a file that does not is an error, never skipped.
///
/// When a name can be read several ways, the version takes as many digit parts as it can.
///
/// ```
/// use preflight_runtime::source::NamePattern;
/// let p: NamePattern = "V{version}.{name}.{direction}.sql".parse().unwrap();
/// let m = p.matches("V0001.Initial_Schema.up.sql").unwrap();
/// assert_eq!(m.version.to_string(), "1");
/// assert_eq!(m.name, "Initial_Schema");
/// assert_eq!(m.up, Some(true));
/// assert!(p.matches("0001_initial.up.sql").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    text: String,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Version,
    Name,
    Direction,
}

/// What a file name matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternMatch {
    /// The version.
    pub version: Version,
    /// The name (empty when the pattern has no `{name}`).
    pub name: String,
    /// `Some(true)` for up, `Some(false)` for down, `None` when the pattern has no `{direction}`.
    pub up: Option<bool>,
}

impl FromStr for NamePattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(format!(
                    "naming pattern `{text}`: `{{` without `}}`; the placeholders are \
                     `{{version}}`, `{{name}}` and `{{direction}}`"
                ));
            };
            let piece = match &after[..close] {
                "version" => Piece::Version,
                "name" => Piece::Name,
                "direction" => Piece::Direction,
                other => {
                    return Err(format!(
                        "naming pattern `{text}`: unknown placeholder `{{{other}}}`; the \
                         placeholders are `{{version}}`, `{{name}}` and `{{direction}}`"
                    ))
                }
            };
            if pieces.contains(&piece) {
                return Err(format!(
                    "naming pattern `{text}`: `{{{}}}` appears twice",
                    &after[..close]
                ));
            }
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        if literal.contains('}') || text.contains(['/', '\\']) {
            return Err(format!(
                "naming pattern `{text}`: a file name pattern has no `/` and no `}}` outside a \
                 placeholder"
            ));
        }
        if !pieces.contains(&Piece::Version) {
            return Err(format!(
                "naming pattern `{text}` has no `{{version}}`: every migration needs one"
            ));
        }
        if !literal.to_ascii_lowercase().ends_with(".sql") {
            return Err(format!(
                "naming pattern `{text}` must end with `.sql` (migrations are SQL files)"
            ));
        }
        pieces.push(Piece::Literal(literal));
        Ok(NamePattern {
            text: text.to_owned(),
            pieces,
        })
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The captures of a match in progress.
#[derive(Default, Clone)]
struct Captures<'a> {
    version: Option<&'a str>,
    name: Option<&'a str>,
    up: Option<bool>,
}

impl NamePattern {
    /// What `file` (a file name, without directories) says under this pattern; `None` when it
    /// does not match.
    pub fn matches(&self, file: &str) -> Option<PatternMatch> {
        let captures = match_from(&self.pieces, file, Captures::default())?;
        let version = captures.version?.parse::<Version>().ok()?;
        Some(PatternMatch {
            version,
            name: captures.name.unwrap_or_default().to_owned(),
            up: captures.up,
        })
    }

    /// Whether the pattern has `{direction}` (up and down files).
    pub fn has_direction(&self) -> bool {
        self.pieces.contains(&Piece::Direction)
    }

    /// A file name for `version`, `name` and direction under this pattern (what `preflight new`
    /// creates).
    pub fn render(&self, version: &str, name: &str, up: bool) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(l) => l.as_str(),
                Piece::Version => version,
                Piece::Name => name,
                Piece::Direction if up => "up",
                Piece::Direction => "down",
            })
            .collect()
    }
}

/// Backtracking match of `pieces` against `text`, the version trying its longest reading first.
fn match_from<'a>(pieces: &[Piece], text: &'a str, captures: Captures<'a>) -> Option<Captures<'a>> {
    let Some((piece, rest_pieces)) = pieces.split_first() else {
        return text.is_empty().then_some(captures);
    };
    match piece {
        Piece::Literal(l) => {
            // File systems differ on case; `.SQL` and `.sql` both match.
            let head = text.get(..l.len())?;
            head.eq_ignore_ascii_case(l)
                .then(|| match_from(rest_pieces, &text[l.len()..], captures))
                .flatten()
        }
        Piece::Version => version_ends(text).into_iter().rev().find_map(|end| {
            let mut c = captures.clone();
            c.version = Some(&text[..end]);
            match_from(rest_pieces, &text[end..], c)
        }),
        Piece::Name => {
            let mut ends: Vec<usize> = text
                .char_indices()
                .map(|(i, ch)| i + ch.len_utf8())
                .collect();
            ends.reverse();
            ends.into_iter().find_map(|end| {
                let mut c = captures.clone();
                c.name = Some(&text[..end]);
                match_from(rest_pieces, &text[end..], c)
            })
        }
        Piece::Direction => [("down", false), ("up", true)]
            .into_iter()
            .find_map(|(word, up)| {
                let head = text.get(..word.len())?;
                if !head.eq_ignore_ascii_case(word) {
                    return None;
                }
                let mut c = captures.clone();
                c.up = Some(up);
                match_from(rest_pieces, &text[word.len()..], c)
            }),
    }
}

/// Where a version at the start of `text` may end: after each complete digit part.
fn version_ends(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut ends = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            break;
        }
        ends.push(i);
        if i < bytes.len() && matches!(bytes[i], b'.' | b'_') {
            i += 1;
        } else {
            break;
        }
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> NamePattern {
        text.parse().unwrap()
    }

    #[test]
    fn matches_home_grown_names() {
        let p = pattern("V{version}.{name}.{direction}.sql");
        let m = p.matches("V0042.Add.Users.down.SQL").unwrap();
        assert_eq!(
            (m.version, m.name.as_str(), m.up),
            (Version::new(42), "Add.Users", Some(false))
        );
        // The version takes what it can, and gives back what the rest needs.
        let m = p.matches("V1.2.x.up.sql").unwrap();
        assert_eq!(
            (m.version.to_string(), m.name.as_str()),
            ("1.2".into(), "x")
        );
        let m = p.matches("V0001.2fa_setup.up.sql").unwrap();
        assert_eq!((m.version, m.name.as_str()), (Version::new(1), "2fa_setup"));
        for bad in [
            "V0001.Initial_Schema.sql",
            "V.x.up.sql",
            "V1..up.sql",
            "0001.x.up.sql",
            "V1.x.sideways.sql",
            "V1.x.up.sql.bak",
        ] {
            assert!(p.matches(bad).is_none(), "{bad}");
        }
        let forward = pattern("{version}-{name}.sql");
        let m = forward
            .matches("20260703000000000000-seed users.sql")
            .unwrap();
        assert_eq!(m.version.to_string(), "20260703000000000000");
        assert_eq!(m.up, None);
        assert!(!forward.has_direction());
        assert_eq!(
            p.render("0007", "add_x", false),
            "V0007.add_x.down.sql".to_owned()
        );
    }

    #[test]
    fn refuses_bad_patterns() {
        for (bad, why) in [
            ("{name}.sql", "no `{version}`"),
            ("{version}_{name}.txt", "must end with `.sql`"),
            ("{version}_{nom}.sql", "unknown placeholder `{nom}`"),
            ("{version}_{version}.sql", "appears twice"),
            ("{version.sql", "without"),
            ("dir/{version}.sql", "no `/`"),
        ] {
            let e = bad.parse::<NamePattern>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
