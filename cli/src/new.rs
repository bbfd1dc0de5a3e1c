//! `preflight new NAME`: the next migration file, in the layout and numbering the directory
//! already uses.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use preflight_runtime::source::{self, Layout, SourceOptions};
use preflight_runtime::Version;

use crate::CliError;

/// How versions are numbered in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Numbering {
    /// `0001`, `0002`, ...: the next is the highest plus one, padded to the widest prefix.
    Sequential { width: usize },
    /// `20240131120000`: UTC time of creation (diesel writes it with dashes); pop's 20-digit
    /// versions append a 6-digit sequence (`20240131120000000000`).
    Timestamp { digits: usize },
}

/// A version with 14 or more digits is a `YYYYMMDDhhmmss` timestamp.
const TIMESTAMP_DIGITS: usize = 14;

/// Creates the files of a new migration in `dir` and returns their paths; `options` carries a
/// declared naming pattern, if the directory has one.
pub(crate) fn create(
    dir: &Path,
    name: &str,
    reversible: bool,
    now: SystemTime,
    options: &SourceOptions,
) -> Result<Vec<PathBuf>, CliError> {
    let name = clean_name(name)?;
    let (layout, versions, width) = if dir.exists() {
        let (source, errors) = source::scan_dir(dir, &dir.display().to_string(), options);
        if !errors.is_empty() {
            return Err(CliError::Diagnostics(errors));
        }
        let width = source
            .migrations
            .iter()
            .filter_map(|m| m.up.file.path.file_name()?.to_str().map(prefix_width))
            .max()
            .unwrap_or(4);
        let versions: Vec<Version> = source.migrations.iter().map(|m| m.version).collect();
        (source.layout, versions, width)
    } else {
        fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
        (None, Vec::new(), 4)
    };
    let pattern = options.declared_pattern();
    let layout = match (layout, pattern) {
        (Some(layout), _) => layout,
        (None, Some(_)) => Layout::Declared,
        (None, None) if reversible => Layout::UpDown,
        (None, None) => Layout::Simple,
    };
    let forward_only = match layout {
        Layout::Simple | Layout::Flyway => true,
        Layout::Declared => pattern.is_some_and(|p| !p.has_direction()),
        _ => false,
    };
    if reversible && forward_only {
        return Err(CliError::Usage(format!(
            "--reversible: this directory uses the forward-only layout {}, which has no down files",
            layout.describe()
        )));
    }
    let last = versions.iter().max().copied();
    let last_digits = last.map(|v| v.to_string());
    let numbering = match (layout, last_digits.as_deref()) {
        (Layout::Diesel, _) => Numbering::Timestamp {
            digits: TIMESTAMP_DIGITS,
        },
        (_, Some(v)) if !v.contains('.') && v.len() >= TIMESTAMP_DIGITS => {
            Numbering::Timestamp { digits: v.len() }
        }
        _ => Numbering::Sequential { width },
    };
    let version = match (numbering, layout) {
        (_, Layout::Flyway) => {
            // The next major version: `V1_2__` is followed by `V2__`.
            let major = last_digits
                .as_deref()
                .map(|v| v.split('.').next().unwrap_or("0"))
                .unwrap_or("0");
            increment(major)
        }
        (Numbering::Sequential { width }, _) => {
            let next = increment(last_digits.as_deref().unwrap_or("0"));
            format!("{next:0>width$}")
        }
        (Numbering::Timestamp { digits }, _) => {
            let mut stamp = timestamp(now);
            while stamp.len() < digits {
                stamp.push('0');
            }
            // A clock behind the newest file must not produce a version below it.
            match (last, stamp.parse::<Version>()) {
                (Some(l), Ok(s)) if l >= s => increment(&l.to_string()),
                _ => stamp,
            }
        }
    };
    let files: Vec<(PathBuf, String)> = match layout {
        Layout::Simple => vec![(dir.join(format!("{version}_{name}.sql")), header(&name))],
        Layout::Flyway => vec![(dir.join(format!("V{version}__{name}.sql")), header(&name))],
        Layout::Goose => vec![(
            dir.join(format!("{version}_{name}.sql")),
            "-- +goose Up\n\n-- +goose Down\n".to_owned(),
        )],
        Layout::SqlMigrate => vec![(
            dir.join(format!("{version}_{name}.sql")),
            "-- +migrate Up\n\n-- +migrate Down\n".to_owned(),
        )],
        Layout::Dbmate => vec![(
            dir.join(format!("{version}_{name}.sql")),
            "-- migrate:up\n\n-- migrate:down\n".to_owned(),
        )],
        Layout::UpDown | Layout::Pop => {
            let mut files = vec![(dir.join(format!("{version}_{name}.up.sql")), header(&name))];
            if reversible {
                files.push((
                    dir.join(format!("{version}_{name}.down.sql")),
                    revert(&name),
                ));
            }
            files
        }
        Layout::Declared => {
            let Some(pattern) = pattern else {
                return Err(CliError::Usage(
                    "this directory was read with a naming pattern: pass the same `--names`".into(),
                ));
            };
            let mut files = vec![(
                dir.join(pattern.render(&version, &name, true)),
                header(&name),
            )];
            if reversible {
                files.push((
                    dir.join(pattern.render(&version, &name, false)),
                    revert(&name),
                ));
            }
            files
        }
        Layout::Diesel => {
            let sub = dir.join(format!("{}_{name}", diesel_stamp(&version)));
            fs::create_dir_all(&sub).map_err(|e| CliError::io(&sub, e))?;
            vec![
                (sub.join("up.sql"), header(&name)),
                (sub.join("down.sql"), revert(&name)),
            ]
        }
    };
    let mut created = Vec::new();
    for (path, content) in files {
        write_new(&path, &content)?;
        created.push(path);
    }
    Ok(created)
}

/// A decimal number (of any length) plus one.
fn increment(digits: &str) -> String {
    let mut bytes: Vec<u8> = digits.trim_start_matches('0').bytes().collect();
    let mut i = bytes.len();
    loop {
        if i == 0 {
            bytes.insert(0, b'1');
            break;
        }
        i -= 1;
        if bytes[i] == b'9' {
            bytes[i] = b'0';
        } else {
            bytes[i] += 1;
            break;
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|_| "1".to_owned())
}

fn header(name: &str) -> String {
    format!("-- {name}\n")
}

fn revert(name: &str) -> String {
    format!("-- Revert {name}\n")
}

/// A name usable in a file name: spaces become `_`; path separators are refused.
fn clean_name(name: &str) -> Result<String, CliError> {
    let name = name.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(CliError::Usage(format!(
            "`{name}` is not a migration name: use letters, digits and `_`"
        )));
    }
    Ok(name.replace(char::is_whitespace, "_"))
}

/// How many digits the version of a file name has: its first run of digits (after a prefix
/// such as `V`).
fn prefix_width(file: &str) -> usize {
    file.bytes()
        .skip_while(|b| !b.is_ascii_digit())
        .take_while(u8::is_ascii_digit)
        .count()
}

/// `YYYYMMDDhhmmss` in UTC.
fn timestamp(now: SystemTime) -> String {
    // RFC 3339 is `YYYY-MM-DDThh:mm:ssZ`; keeping the digits gives the stamp.
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// diesel's directory prefix: `YYYY-MM-DD-hhmmss`.
fn diesel_stamp(version: &str) -> String {
    if version.len() == 14 {
        format!(
            "{}-{}-{}-{}",
            &version[..4],
            &version[4..6],
            &version[6..8],
            &version[8..]
        )
    } else {
        version.to_owned()
    }
}

fn write_new(path: &Path, content: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CliError::io(path, e))?;
    file.write_all(content.as_bytes())
        .map_err(|e| CliError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    // 2024-01-31T12:00:00Z
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_706_702_400)
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn empty_directory_starts_sequential() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("migrations");
        let made = create(&dir, "create users", true, now(), &SourceOptions::default()).unwrap();
        assert_eq!(
            names(&made),
            ["0001_create_users.up.sql", "0001_create_users.down.sql"]
        );
        let made = create(&dir, "add_email", false, now(), &SourceOptions::default()).unwrap();
        assert_eq!(names(&made), ["0002_add_email.up.sql"]);
    }

    #[test]
    fn follows_padding_and_timestamps() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("007_a.sql"), "").unwrap();
        assert_eq!(
            names(&create(d.path(), "b", false, now(), &SourceOptions::default()).unwrap()),
            ["008_b.sql"]
        );

        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("20230101000000_a.sql"), "").unwrap();
        assert_eq!(
            names(&create(d.path(), "b", false, now(), &SourceOptions::default()).unwrap()),
            ["20240131120000_b.sql"]
        );
    }

    #[test]
    fn clock_behind_the_newest_file_still_moves_forward() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("20990101000000_future.sql"), "").unwrap();
        assert_eq!(
            names(&create(d.path(), "b", false, now(), &SourceOptions::default()).unwrap()),
            ["20990101000001_b.sql"]
        );
    }

    #[test]
    fn other_layouts() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("V1_2__a.sql"), "").unwrap();
        assert_eq!(
            names(&create(d.path(), "b", false, now(), &SourceOptions::default()).unwrap()),
            ["V2__b.sql"]
        );
        assert!(matches!(
            create(d.path(), "c", true, now(), &SourceOptions::default()),
            Err(CliError::Usage(_))
        ));

        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("00001_a.sql"), "-- +goose Up\nselect 1;\n").unwrap();
        let made = create(d.path(), "b", false, now(), &SourceOptions::default()).unwrap();
        assert_eq!(names(&made), ["00002_b.sql"]);
        assert!(fs::read_to_string(&made[0])
            .unwrap()
            .starts_with("-- +goose Up"));

        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("2019-01-01-000000_a")).unwrap();
        fs::write(d.path().join("2019-01-01-000000_a/up.sql"), "").unwrap();
        let made = create(d.path(), "b", false, now(), &SourceOptions::default()).unwrap();
        assert!(made[0].ends_with("2024-01-31-120000_b/up.sql"), "{made:?}");
    }

    #[test]
    fn long_versions_and_declared_patterns() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("20260703000000000009_a.up.sql"), "").unwrap();
        fs::write(d.path().join("20260703000000000009_a.postgres.up.sql"), "").unwrap();
        let made = create(d.path(), "b", true, now(), &SourceOptions::default()).unwrap();
        // The clock (2024) is behind the newest pop version: one more than it.
        assert_eq!(
            names(&made),
            [
                "20260703000000000010_b.up.sql",
                "20260703000000000010_b.down.sql"
            ]
        );

        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("V0041.Initial.up.sql"), "").unwrap();
        let declared =
            SourceOptions::default().pattern("V{version}.{name}.{direction}.sql".parse().unwrap());
        let made = create(d.path(), "add users", true, now(), &declared).unwrap();
        assert_eq!(
            names(&made),
            ["V0042.add_users.up.sql", "V0042.add_users.down.sql"]
        );
        assert_eq!(increment("999"), "1000");
        assert_eq!(increment("0"), "1");
    }

    #[test]
    fn refuses_bad_names() {
        let d = tempfile::tempdir().unwrap();
        assert!(create(d.path(), "../x", false, now(), &SourceOptions::default()).is_err());
        assert!(create(d.path(), " ", false, now(), &SourceOptions::default()).is_err());
    }
}
