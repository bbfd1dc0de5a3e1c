//! Adopting a database that another tool migrated: recognising the other tool's history table
//! by its columns, and working out which of our migrations it already applied.
//!
//! Backend-free: a driver reads the foreign table into [`ForeignHistory`], and [`adoptable`]
//! decides, refusing when the other tool says a migration is dirty or failed, when an applied
//! version has no file, or when the files and the other history disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest, Sha384};

use crate::{Migration, Migrations, Version};

/// A migration tool whose history Preflight can take over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// golang-migrate: `schema_migrations(version bigint, dirty boolean)`, one row.
    GolangMigrate,
    /// goose: `goose_db_version(id, version_id, is_applied, tstamp)`.
    Goose,
    /// sqlx: `_sqlx_migrations(version, description, installed_on, success, checksum, execution_time)`.
    Sqlx,
    /// refinery: `refinery_schema_history(version, name, applied_on, checksum)`.
    Refinery,
    /// diesel: `__diesel_schema_migrations(version varchar, run_on)`.
    Diesel,
    /// Flyway: `flyway_schema_history(installed_rank, version, description, type, script, ...)`.
    Flyway,
}

impl Tool {
    /// Every tool, in the order detection tries them.
    pub const ALL: [Tool; 6] = [
        Tool::GolangMigrate,
        Tool::Goose,
        Tool::Sqlx,
        Tool::Refinery,
        Tool::Diesel,
        Tool::Flyway,
    ];

    /// The table the tool creates by default.
    pub fn default_table(&self) -> &'static str {
        match self {
            Tool::GolangMigrate => "schema_migrations",
            Tool::Goose => "goose_db_version",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::Refinery => "refinery_schema_history",
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Flyway => "flyway_schema_history",
        }
    }

    /// The columns that identify the tool's table (a table may have more).
    pub fn columns(&self) -> &'static [&'static str] {
        match self {
            Tool::GolangMigrate => &["version", "dirty"],
            Tool::Goose => &["id", "version_id", "is_applied", "tstamp"],
            Tool::Sqlx => &[
                "version",
                "description",
                "installed_on",
                "success",
                "checksum",
                "execution_time",
            ],
            Tool::Refinery => &["version", "name", "applied_on", "checksum"],
            Tool::Diesel => &["version", "run_on"],
            Tool::Flyway => &[
                "installed_rank",
                "version",
                "description",
                "type",
                "script",
                "checksum",
                "installed_by",
                "installed_on",
                "execution_time",
                "success",
            ],
        }
    }

    /// The name used on the command line (`--from`).
    pub fn cli_name(&self) -> &'static str {
        match self {
            Tool::GolangMigrate => "golang-migrate",
            Tool::Goose => "goose",
            Tool::Sqlx => "sqlx",
            Tool::Refinery => "refinery",
            Tool::Diesel => "diesel",
            Tool::Flyway => "flyway",
        }
    }

    /// Parses a [`cli_name`](Tool::cli_name).
    pub fn from_cli_name(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.cli_name() == name)
    }

    /// Whether a table with these columns is this tool's. golang-migrate, dbmate and Rails all
    /// call their table `schema_migrations`; only the columns tell them apart, so the table name
    /// is not looked at.
    pub fn matches(&self, columns: &[&str]) -> bool {
        let has = |c: &str| columns.iter().any(|x| x.eq_ignore_ascii_case(c));
        let all = self.columns().iter().all(|c| has(c));
        match self {
            // dbmate's and Rails' `schema_migrations(version varchar)` have no `dirty` column.
            Tool::GolangMigrate => all && columns.len() == 2,
            // diesel's columns are a subset of nothing else's, but keep it exact.
            Tool::Diesel => all && columns.len() == 2,
            _ => all,
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cli_name())
    }
}

/// The other tool's history, as read from its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForeignHistory {
    /// The single row of `schema_migrations`, if any.
    GolangMigrate(Option<(i64, bool)>),
    /// `(id, version_id, is_applied)` rows.
    Goose(Vec<(i64, i64, bool)>),
    /// `(version, description, success, checksum)` rows.
    Sqlx(Vec<(i64, String, bool, Vec<u8>)>),
    /// `(version, name)` rows.
    Refinery(Vec<(i64, String)>),
    /// `version` strings.
    Diesel(Vec<String>),
    /// `(installed_rank, version, description, type, success)` rows.
    Flyway(Vec<(i64, Option<String>, String, String, bool)>),
}

impl ForeignHistory {
    /// The tool the history belongs to.
    pub fn tool(&self) -> Tool {
        match self {
            ForeignHistory::GolangMigrate(_) => Tool::GolangMigrate,
            ForeignHistory::Goose(_) => Tool::Goose,
            ForeignHistory::Sqlx(_) => Tool::Sqlx,
            ForeignHistory::Refinery(_) => Tool::Refinery,
            ForeignHistory::Diesel(_) => Tool::Diesel,
            ForeignHistory::Flyway(_) => Tool::Flyway,
        }
    }
}

/// Why a foreign history cannot be adopted; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdoptError {
    /// The other tool recorded an interrupted or failed migration.
    #[error("{tool} says migration {version} is {state}: finish or repair it with {tool} first, then adopt")]
    Unfinished {
        /// The tool.
        tool: Tool,
        /// The version.
        version: String,
        /// `dirty` or `failed`.
        state: &'static str,
    },
    /// An applied version has no migration file.
    #[error("{tool} applied version {version}, but no migration has that version: restore its file, then adopt")]
    NoFile {
        /// The tool.
        tool: Tool,
        /// The version.
        version: String,
    },
    /// The other tool's record of a migration does not match the file.
    #[error("{tool}'s record of version {version} does not match the file {path}: {detail}")]
    Disagree {
        /// The tool.
        tool: Tool,
        /// The version.
        version: Version,
        /// The file.
        path: String,
        /// What differs.
        detail: String,
    },
}

/// The migrations of `migrations` that `history` says are applied, in version order.
///
/// Parity with the other tool: after adoption, Preflight applies next exactly what the other
/// tool would have applied next. golang-migrate counts every version up to its one recorded
/// version as applied; Flyway counts every version up to a `BASELINE` row; the others list each
/// applied version.
pub fn adoptable<'a>(
    history: &ForeignHistory,
    migrations: &'a Migrations,
) -> Result<Vec<&'a Migration>, AdoptError> {
    let tool = history.tool();
    let mut applied: BTreeSet<Version> = BTreeSet::new();
    let mut up_to: Option<Version> = None;
    // Checks of a record against its file, done once the version is known to have a file.
    let mut names: BTreeMap<Version, String> = BTreeMap::new();
    let mut sqlx_checksums: BTreeMap<Version, Vec<u8>> = BTreeMap::new();
    match history {
        ForeignHistory::GolangMigrate(None) => {}
        ForeignHistory::GolangMigrate(Some((version, dirty))) => {
            if *dirty {
                return Err(unfinished(tool, version, "dirty"));
            }
            let v = foreign_version(tool, *version)?;
            applied.insert(v);
            up_to = Some(v);
        }
        ForeignHistory::Goose(rows) => {
            // The newest row (highest id) per version wins; version 0 is goose's own marker.
            let mut newest: BTreeMap<i64, (i64, bool)> = BTreeMap::new();
            for &(id, version, is_applied) in rows {
                if version == 0 {
                    continue;
                }
                let slot = newest.entry(version).or_insert((id, is_applied));
                if id >= slot.0 {
                    *slot = (id, is_applied);
                }
            }
            for (version, (_, is_applied)) in newest {
                if is_applied {
                    applied.insert(foreign_version(tool, version)?);
                }
            }
        }
        ForeignHistory::Sqlx(rows) => {
            for (version, description, success, checksum) in rows {
                if !success {
                    return Err(unfinished(tool, version, "failed"));
                }
                let v = foreign_version(tool, *version)?;
                applied.insert(v);
                names.insert(v, description.clone());
                sqlx_checksums.insert(v, checksum.clone());
            }
        }
        ForeignHistory::Refinery(rows) => {
            for (version, name) in rows {
                let v = foreign_version(tool, *version)?;
                applied.insert(v);
                names.insert(v, name.clone());
            }
        }
        ForeignHistory::Diesel(rows) => {
            for version in rows {
                let digits: String = version.chars().filter(|c| *c != '-').collect();
                let v = digits.parse::<Version>().map_err(|_| AdoptError::NoFile {
                    tool,
                    version: version.clone(),
                })?;
                applied.insert(v);
            }
        }
        ForeignHistory::Flyway(rows) => {
            let mut rows = rows.clone();
            rows.sort_by_key(|r| r.0);
            for (rank, version, description, kind, success) in rows {
                let Some(version) = version else { continue };
                if rank <= 0 {
                    continue;
                }
                let v = version.parse::<Version>().map_err(|_| AdoptError::NoFile {
                    tool,
                    version: version.clone(),
                })?;
                match kind.as_str() {
                    "DELETE" | "UNDO_SQL" | "UNDO_JDBC" | "UNDO_SCRIPT" => {
                        applied.remove(&v);
                    }
                    "BASELINE" => {
                        up_to = Some(up_to.map_or(v, |u| u.max(v)));
                    }
                    _ if !success => return Err(unfinished(tool, &version, "failed")),
                    _ => {
                        applied.insert(v);
                        names.insert(v, description);
                    }
                }
            }
        }
    }
    if let Some(limit) = up_to {
        applied.extend(
            migrations
                .iter()
                .map(Migration::version)
                .filter(|v| *v <= limit),
        );
        // A golang-migrate version or a Flyway baseline need not have a file of its own when
        // it is a baseline, but golang-migrate's recorded version is a migration it ran.
        if tool == Tool::Flyway {
            applied.retain(|v| *v != limit || migrations.get(limit).is_some());
        }
    }
    let mut out = Vec::new();
    for version in applied {
        let Some(m) = migrations.get(version) else {
            return Err(AdoptError::NoFile {
                tool,
                version: version.to_string(),
            });
        };
        if let Some(name) = names.get(&version) {
            if !same_name(name, m.name()) {
                return Err(disagree(
                    tool,
                    m,
                    format!("it is named `{name}` there, `{}` here", m.name()),
                ));
            }
        }
        if let Some(recorded) = sqlx_checksums.get(&version) {
            let file = Sha384::digest(m.up().text().as_bytes());
            if recorded.as_slice() != file.as_slice() {
                return Err(disagree(
                    tool,
                    m,
                    "sqlx's SHA-384 checksum differs from the file's: the file was edited after sqlx applied it".to_owned(),
                ));
            }
        }
        out.push(m);
    }
    Ok(out)
}

fn foreign_version(tool: Tool, version: i64) -> Result<Version, AdoptError> {
    u64::try_from(version)
        .map(Version::new)
        .map_err(|_| AdoptError::NoFile {
            tool,
            version: version.to_string(),
        })
}

fn unfinished(tool: Tool, version: impl fmt::Display, state: &'static str) -> AdoptError {
    AdoptError::Unfinished {
        tool,
        version: version.to_string(),
        state,
    }
}

fn disagree(tool: Tool, m: &Migration, detail: String) -> AdoptError {
    AdoptError::Disagree {
        tool,
        version: m.version(),
        path: m.path().to_owned(),
        detail,
    }
}

/// sqlx and Flyway store the name with `_` turned into spaces.
fn same_name(recorded: &str, file: &str) -> bool {
    let norm = |s: &str| s.replace('_', " ").trim().to_lowercase();
    norm(recorded) == norm(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MigrationSpec;

    fn set(versions: &[u64]) -> Migrations {
        Migrations::from_specs(
            versions
                .iter()
                .map(|&v| MigrationSpec::new(v, &format!("m_{v}"), &format!("select {v};")))
                .collect(),
        )
        .unwrap()
    }

    fn versions(list: &[&Migration]) -> Vec<String> {
        list.iter().map(|m| m.version().to_string()).collect()
    }

    #[test]
    fn recognises_tables_by_columns() {
        assert!(Tool::GolangMigrate.matches(&["version", "dirty"]));
        // dbmate / Rails use the same table name with other columns.
        assert!(!Tool::GolangMigrate.matches(&["version"]));
        assert!(Tool::Goose.matches(&["id", "version_id", "is_applied", "tstamp"]));
        assert!(Tool::Diesel.matches(&["version", "run_on"]));
        assert!(!Tool::Diesel.matches(&["version", "dirty"]));
        assert_eq!(Tool::from_cli_name("flyway"), Some(Tool::Flyway));
    }

    #[test]
    fn golang_migrate_counts_everything_up_to_its_version() {
        let m = set(&[1, 2, 5, 9]);
        let got = adoptable(&ForeignHistory::GolangMigrate(Some((5, false))), &m).unwrap();
        assert_eq!(versions(&got), ["1", "2", "5"]);
        assert!(matches!(
            adoptable(&ForeignHistory::GolangMigrate(Some((5, true))), &m),
            Err(AdoptError::Unfinished { state: "dirty", .. })
        ));
        assert!(matches!(
            adoptable(&ForeignHistory::GolangMigrate(Some((4, false))), &m),
            Err(AdoptError::NoFile { .. })
        ));
        assert!(adoptable(&ForeignHistory::GolangMigrate(None), &m)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn goose_newest_row_wins_and_zero_is_a_marker() {
        let m = set(&[1, 2, 3]);
        let rows = vec![
            (1, 0, true),
            (2, 1, true),
            (3, 2, true),
            (4, 2, false),
            (5, 3, true),
        ];
        let got = adoptable(&ForeignHistory::Goose(rows), &m).unwrap();
        assert_eq!(versions(&got), ["1", "3"]);
    }

    #[test]
    fn sqlx_checks_names_checksums_and_success() {
        let m = set(&[1]);
        let sum = Sha384::digest(b"select 1;").to_vec();
        let ok = ForeignHistory::Sqlx(vec![(1, "m 1".into(), true, sum.clone())]);
        assert_eq!(versions(&adoptable(&ok, &m).unwrap()), ["1"]);
        let edited = ForeignHistory::Sqlx(vec![(1, "m 1".into(), true, vec![0; 48])]);
        assert!(matches!(
            adoptable(&edited, &m),
            Err(AdoptError::Disagree { .. })
        ));
        let renamed = ForeignHistory::Sqlx(vec![(1, "other".into(), true, sum.clone())]);
        assert!(matches!(
            adoptable(&renamed, &m),
            Err(AdoptError::Disagree { .. })
        ));
        let failed = ForeignHistory::Sqlx(vec![(1, "m 1".into(), false, sum)]);
        assert!(matches!(
            adoptable(&failed, &m),
            Err(AdoptError::Unfinished { .. })
        ));
    }

    #[test]
    fn flyway_baseline_and_tombstones() {
        let m = set(&[1, 2, 3, 4]);
        let rows = vec![
            (
                0,
                None,
                "<< Flyway Schema Creation >>".into(),
                "SCHEMA".into(),
                true,
            ),
            (
                1,
                Some("2".into()),
                "baseline".into(),
                "BASELINE".into(),
                true,
            ),
            (2, Some("3".into()), "m 3".into(), "SQL".into(), true),
            (3, Some("4".into()), "m 4".into(), "SQL".into(), true),
            (4, Some("4".into()), "m 4".into(), "DELETE".into(), true),
        ];
        let got = adoptable(&ForeignHistory::Flyway(rows), &m).unwrap();
        assert_eq!(versions(&got), ["1", "2", "3"]);
        let failed = vec![(1, Some("1".into()), "m 1".into(), "SQL".into(), false)];
        assert!(adoptable(&ForeignHistory::Flyway(failed), &m).is_err());
    }

    #[test]
    fn diesel_versions_lose_their_dashes() {
        let m = set(&[20190101120000]);
        let got = adoptable(&ForeignHistory::Diesel(vec!["20190101120000".into()]), &m).unwrap();
        assert_eq!(versions(&got), ["20190101120000"]);
        let missing = ForeignHistory::Diesel(vec!["20200101000000".into()]);
        assert!(matches!(
            adoptable(&missing, &m),
            Err(AdoptError::NoFile { .. })
        ));
    }
}
