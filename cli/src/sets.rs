//! The migration sets a command works on: `--dir [SET=]DIR`, once or more, each a set named
//! as the history table's `set` column holds it.
//!
//! `embed!("migrations")` names its set after the embedding crate's package, so the CLI names a
//! plain `--dir DIR` the same way: after the package of the nearest `Cargo.toml` above the
//! directory. Without one (a directory shipped alone, in a container), a history that holds one
//! set gives its name; otherwise it is [`DEFAULT_SET`]. `--dir auth=DIR` names it explicitly.

use std::path::{Path, PathBuf};

use preflight_runtime::composition::check_set_name;
use preflight_runtime::{Migrations, DEFAULT_SET};

use crate::CliError;

/// One `--dir` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirSpec {
    /// The set's name when given (`auth=crates/auth/migrations`).
    pub name: Option<String>,
    pub path: PathBuf,
}

impl DirSpec {
    /// `SET=DIR` or `DIR`. A `DIR` that contains `=` is read as a path when what comes before
    /// it is not a valid set name.
    pub fn parse(arg: &str) -> DirSpec {
        match arg.split_once('=') {
            Some((name, path)) if check_set_name(name).is_ok() && !path.is_empty() => DirSpec {
                name: Some(name.to_owned()),
                path: PathBuf::from(path),
            },
            _ => DirSpec {
                name: None,
                path: PathBuf::from(arg),
            },
        }
    }

    /// The set's name: given, or the crate's the directory is in.
    pub fn set_name(&self) -> Option<String> {
        self.name.clone().or_else(|| crate_name(&self.path))
    }
}

/// Every `--dir`, parsed.
pub(crate) fn specs(dirs: &[String]) -> Vec<DirSpec> {
    dirs.iter().map(|d| DirSpec::parse(d)).collect()
}

/// The one directory a command on a single directory works on (`new`): the only `--dir`, or
/// the one `--set` names.
pub(crate) fn one<'s>(specs: &'s [DirSpec], set: Option<&str>) -> Result<&'s DirSpec, CliError> {
    match (specs, set) {
        ([only], None) => Ok(only),
        (_, Some(name)) => specs
            .iter()
            .find(|s| s.set_name().as_deref() == Some(name))
            .ok_or_else(|| CliError::Usage(format!("no --dir is set `{name}`"))),
        _ => Err(CliError::Usage(
            "several --dir are given: say which set with --set".into(),
        )),
    }
}

/// The package name of the nearest `Cargo.toml` with a `[package]` above `dir` (itself
/// included), as `embed!` would name a set embedded from there.
pub(crate) fn crate_name(dir: &Path) -> Option<String> {
    let start = std::fs::canonicalize(dir).ok()?;
    start.ancestors().find_map(|d| {
        let text = std::fs::read_to_string(d.join("Cargo.toml")).ok()?;
        let manifest: toml::Table = toml::from_str(&text).ok()?;
        manifest
            .get("package")?
            .get("name")?
            .as_str()
            .map(str::to_owned)
    })
}

/// A set read from a directory that nothing named: when the history (`names`, the set of each
/// of its rows) holds exactly one set, it is that one.
pub(crate) fn settle(set: Migrations, mut names: Vec<String>) -> Migrations {
    if set.set() != DEFAULT_SET {
        return set;
    }
    names.sort();
    names.dedup();
    match names.as_slice() {
        [only] => set.named(only.clone()),
        _ => set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_directory_after_its_crate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"billing\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        let migrations = dir.path().join("migrations");
        std::fs::create_dir(&migrations).unwrap();
        assert_eq!(crate_name(&migrations).as_deref(), Some("billing"));
        // A workspace manifest without [package] is skipped.
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
        let lone = ws.path().join("m");
        std::fs::create_dir(&lone).unwrap();
        assert_eq!(crate_name(&lone), None);
    }

    #[test]
    fn parses_named_and_plain_directories() {
        assert_eq!(
            DirSpec::parse("auth=crates/auth/migrations"),
            DirSpec {
                name: Some("auth".into()),
                path: "crates/auth/migrations".into()
            }
        );
        assert_eq!(DirSpec::parse("migrations").name, None);
        // Not a set name before the `=`: a path.
        assert_eq!(DirSpec::parse("./a b=c").path, PathBuf::from("./a b=c"));
        let specs = specs(&["app=m".into(), "auth=n".into()]);
        assert_eq!(one(&specs, Some("auth")).unwrap().path, PathBuf::from("n"));
        assert!(one(&specs, None).is_err());
    }
}
