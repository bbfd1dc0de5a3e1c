//! `preflight new NAME`: the next migration file, in the layout and numbering the directory
//! already uses.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use preflight_runtime::source::{self, Layout};
use preflight_runtime::Version;

use crate::CliError;

/// How versions are numbered in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Numbering {
    /// `0001`, `0002`, ...: the next is the highest plus one, padded to the widest prefix.
    Sequential { width: usize },
    /// `20240131120000`: UTC time of creation (diesel writes it with dashes).
    Timestamp,
}

/// A version with 14 or more digits is a `YYYYMMDDhhmmss` timestamp.
const TIMESTAMP_MIN: u64 = 10_000_000_000_000;

/// Creates the files of a new migration in `dir` and returns their paths.
pub(crate) fn create(
    dir: &Path,
    name: &str,
    reversible: bool,
    now: SystemTime,
) -> Result<Vec<PathBuf>, CliError> {
    let name = clean_name(name)?;
    let (layout, versions, width) = if dir.exists() {
        let source =
            source::read_dir(dir, &dir.display().to_string()).map_err(CliError::Diagnostics)?;
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
    let layout = layout.unwrap_or(if reversible {
        Layout::UpDown
    } else {
        Layout::Simple
    });
    if reversible && matches!(layout, Layout::Simple | Layout::Flyway) {
        return Err(CliError::Usage(format!(
            "--reversible: this directory uses the forward-only layout {}, which has no down files",
            layout.describe()
        )));
    }
    let last = versions.iter().max().copied();
    let numbering = match (layout, last.and_then(|v| v.as_u64())) {
        (Layout::Diesel, _) => Numbering::Timestamp,
        (_, Some(v)) if v >= TIMESTAMP_MIN => Numbering::Timestamp,
        _ => Numbering::Sequential { width },
    };
    let next = match (numbering, layout) {
        (_, Layout::Flyway) => last.map_or(1, |v| v.parts()[0] + 1),
        (Numbering::Sequential { .. }, _) => last.and_then(|v| v.as_u64()).map_or(1, |v| v + 1),
        (Numbering::Timestamp, _) => {
            let stamp = timestamp(now);
            // A clock behind the newest file must not produce a version below it.
            match last.and_then(|v| v.as_u64()) {
                Some(v) if v >= stamp => v + 1,
                _ => stamp,
            }
        }
    };
    let version = match numbering {
        Numbering::Sequential { width } => format!("{next:0width$}"),
        Numbering::Timestamp => next.to_string(),
    };
    let files: Vec<(PathBuf, String)> = match layout {
        Layout::Simple => vec![(dir.join(format!("{version}_{name}.sql")), header(&name))],
        Layout::Flyway => vec![(dir.join(format!("V{next}__{name}.sql")), header(&name))],
        Layout::Goose => vec![(
            dir.join(format!("{version}_{name}.sql")),
            "-- +goose Up\n\n-- +goose Down\n".to_owned(),
        )],
        Layout::UpDown => {
            let mut files = vec![(dir.join(format!("{version}_{name}.up.sql")), header(&name))];
            if reversible {
                files.push((
                    dir.join(format!("{version}_{name}.down.sql")),
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

/// How many digits the version prefix of a file name has.
fn prefix_width(file: &str) -> usize {
    file.bytes().take_while(u8::is_ascii_digit).count()
}

/// `YYYYMMDDhhmmss` in UTC.
fn timestamp(now: SystemTime) -> u64 {
    // RFC 3339 is `YYYY-MM-DDThh:mm:ssZ`; keeping the digits gives the stamp.
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
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
        let made = create(&dir, "create users", true, now()).unwrap();
        assert_eq!(
            names(&made),
            ["0001_create_users.up.sql", "0001_create_users.down.sql"]
        );
        let made = create(&dir, "add_email", false, now()).unwrap();
        assert_eq!(names(&made), ["0002_add_email.up.sql"]);
    }

    #[test]
    fn follows_padding_and_timestamps() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("007_a.sql"), "").unwrap();
        assert_eq!(
            names(&create(d.path(), "b", false, now()).unwrap()),
            ["008_b.sql"]
        );

        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("20230101000000_a.sql"), "").unwrap();
        assert_eq!(
            names(&create(d.path(), "b", false, now()).unwrap()),
            ["20240131120000_b.sql"]
        );
    }

    #[test]
    fn clock_behind_the_newest_file_still_moves_forward() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("20990101000000_future.sql"), "").unwrap();
        assert_eq!(
            names(&create(d.path(), "b", false, now()).unwrap()),
            ["20990101000001_b.sql"]
        );
    }

    #[test]
    fn other_layouts() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("V1_2__a.sql"), "").unwrap();
        assert_eq!(
            names(&create(d.path(), "b", false, now()).unwrap()),
            ["V2__b.sql"]
        );
        assert!(matches!(
            create(d.path(), "c", true, now()),
            Err(CliError::Usage(_))
        ));

        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("00001_a.sql"), "-- +goose Up\nselect 1;\n").unwrap();
        let made = create(d.path(), "b", false, now()).unwrap();
        assert_eq!(names(&made), ["00002_b.sql"]);
        assert!(fs::read_to_string(&made[0])
            .unwrap()
            .starts_with("-- +goose Up"));

        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("2019-01-01-000000_a")).unwrap();
        fs::write(d.path().join("2019-01-01-000000_a/up.sql"), "").unwrap();
        let made = create(d.path(), "b", false, now()).unwrap();
        assert!(made[0].ends_with("2024-01-31-120000_b/up.sql"), "{made:?}");
    }

    #[test]
    fn refuses_bad_names() {
        let d = tempfile::tempdir().unwrap();
        assert!(create(d.path(), "../x", false, now()).is_err());
        assert!(create(d.path(), " ", false, now()).is_err());
    }
}
