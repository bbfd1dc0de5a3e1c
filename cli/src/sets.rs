//! Which migration set a directory is: its name, as the history table's `set` column holds it.
//!
//! `embed!("migrations")` names its set after the embedding crate's package, so the CLI names a
//! plain `--dir PATH` the same way: after the package of the nearest `Cargo.toml` above the
//! directory. Without one (a directory shipped alone, in a container), a history that holds one
//! set gives its name; an empty history, [`DEFAULT_SET`].

use std::path::Path;

use preflight_runtime::{Connection, Migrations, DEFAULT_SET};

use crate::CliError;

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

/// A set read from a directory that no `Cargo.toml` named: when the history (`names`, the set
/// of each of its rows) holds exactly one set, it is that one.
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

/// The set names a history holds.
pub(crate) fn in_history(
    r: &preflight_runtime::Runner<'_>,
    db: &mut dyn Connection,
) -> Result<Vec<String>, CliError> {
    Ok(r.history(db)?.into_iter().map(|row| row.set).collect())
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
}
