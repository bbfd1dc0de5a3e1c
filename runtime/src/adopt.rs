//! Adopting a database that another tool migrated: recognising the other tool's history table
//! by its columns, and working out which of our migrations it already applied.
//!
//! Backend-free: a driver reads the foreign table into a `ForeignHistory`, and `adoptable`
//! decides, refusing when the other tool says a migration is dirty or failed, when an applied
//! version has no file, or when the files and the other history disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha384};

use crate::{Migration, Migrations, Version};

/// Whether, and from which tool, the runner takes another tool's history over (see
/// [`Runner::adoption`](crate::Runner::adoption) and [`Runner::adopt`](crate::Runner::adopt)).
///
/// Adoption happens under the migration lock, only while Preflight's history has no row of the
/// set it adopts into (the only set, or the one [`Runner::set`](crate::Runner::set) names): the
/// versions the other tool applied are recorded in one transaction (checksums and chain from
/// the migration files, `applied_by` = `adopted from TOOL (TABLE)`, and the tool's table noted
/// in each row's `repaired` column), and the other tool's table is left untouched. Once the set
/// has rows, adoption is never attempted again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Adopt {
    /// Never adopt (the default): other tools' tables are not looked at.
    #[default]
    Off,
    /// Adopt the history of whichever supported tool's table is found. A database with no
    /// other tool's table is migrated as usual; one with several, or with a table no supported
    /// tool uses, is refused.
    Auto,
    /// Adopt this tool's history. A database with no other tool's table at all is migrated as
    /// usual; one with only other tools' tables is refused.
    From(Tool),
}

/// Another tool's history table found in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignTable {
    /// Its schema (`main` on SQLite).
    pub schema: String,
    /// Its name.
    pub table: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// The tool it belongs to; `None` for a table with a tool's usual name but columns no
    /// supported tool uses (dbmate's or Rails' `schema_migrations(version)`, say).
    pub tool: Option<Tool>,
}

impl ForeignTable {
    /// Recognises a table: by its name *and* its columns when it has one of the tools' default
    /// names (golang-migrate, dbmate and Rails all call theirs `schema_migrations`), or by its
    /// columns alone (exactly one tool's set) for a table renamed with the tool's option.
    /// `None`: not another tool's history table.
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
    pub(crate) fn identify(schema: &str, table: &str, columns: &[&str]) -> Option<ForeignTable> {
        let by_name = Tool::ALL
            .into_iter()
            .find(|t| t.default_table() == table && t.matches(columns));
        let exact = || {
            Tool::ALL.into_iter().find(|t| {
                t.columns().len() == columns.len()
                    && t.columns()
                        .iter()
                        .all(|c| columns.iter().any(|x| x.eq_ignore_ascii_case(c)))
            })
        };
        let tool = by_name.or_else(exact);
        let known_name = Tool::ALL.iter().any(|t| t.default_table() == table);
        if tool.is_none() && !known_name {
            return None;
        }
        Some(ForeignTable {
            schema: schema.to_owned(),
            table: table.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            tool,
        })
    }

    /// `schema.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

impl fmt::Display for ForeignTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tool {
            Some(tool) => write!(f, "{tool}'s {}.{}", self.schema, self.table),
            None => write!(
                f,
                "{}.{} (columns {}: no supported tool's)",
                self.schema,
                self.table,
                self.columns.join(", ")
            ),
        }
    }
}

/// Which of the tables found to adopt, as `adopt` asks. `Ok(None)`: there is no other tool's
/// table at all. With several candidates, the one in `schema` (the history's schema) wins.
pub(crate) fn choose<'a>(
    found: &'a [ForeignTable],
    adopt: Adopt,
    schema: Option<&str>,
) -> Result<Option<&'a ForeignTable>, AdoptError> {
    if found.is_empty() || adopt == Adopt::Off {
        return Ok(None);
    }
    let wanted = match adopt {
        Adopt::From(tool) => Some(tool),
        _ => None,
    };
    let candidates: Vec<&ForeignTable> = found
        .iter()
        .filter(|f| f.tool.is_some() && (wanted.is_none() || f.tool == wanted))
        .collect();
    let list = |tables: &[&ForeignTable]| tables.iter().map(ToString::to_string).collect();
    match candidates.as_slice() {
        [] => {
            let all: Vec<&ForeignTable> = found.iter().collect();
            match (wanted, found.iter().find(|f| f.tool.is_none())) {
                (None, Some(unknown)) => Err(AdoptError::UnknownTool {
                    table: unknown.to_string(),
                }),
                _ => Err(AdoptError::NotFound {
                    tool: wanted,
                    found: list(&all),
                }),
            }
        }
        [one] => Ok(Some(one)),
        many => {
            let here: Vec<&ForeignTable> = many
                .iter()
                .copied()
                .filter(|f| Some(f.schema.as_str()) == schema)
                .collect();
            match here.as_slice() {
                [one] => Ok(Some(one)),
                _ => Err(AdoptError::Ambiguous { tables: list(many) }),
            }
        }
    }
}

/// What was (or would be) adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// The tool.
    pub tool: Tool,
    /// The schema of its table.
    pub schema: String,
    /// Its table (left untouched).
    pub table: String,
    /// The versions recorded as applied, ascending.
    pub versions: Vec<Version>,
}

impl Adopted {
    /// `schema.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// What the adopted rows record as `applied_by`: `adopted from goose (goose_db_version)`.
    pub fn applied_by(&self) -> String {
        applied_by(self.tool, &self.table)
    }
}

/// The `applied_by` of an adopted row: `adopted from goose (goose_db_version)`.
pub(crate) fn applied_by(tool: Tool, table: &str) -> String {
    format!("adopted from {tool} ({table})")
}

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
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
    pub(crate) fn columns(&self) -> &'static [&'static str] {
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
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
    pub(crate) fn matches(&self, columns: &[&str]) -> bool {
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
#[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
pub(crate) enum ForeignHistory {
    /// The single row of `schema_migrations`, if any.
    GolangMigrate(Option<(i64, bool)>),
    /// `(id, version_id, is_applied)` rows.
    Goose(Vec<(i64, i64, bool)>),
    /// `(version, description, success, checksum)` rows.
    Sqlx(Vec<(i64, String, bool, Vec<u8>)>),
    /// `(version, name, checksum)` rows; the checksum is the decimal text refinery stores.
    Refinery(Vec<(i64, String, Option<String>)>),
    /// `version` strings.
    Diesel(Vec<String>),
    /// `(installed_rank, version, description, type, checksum, success)` rows.
    Flyway(Vec<FlywayRow>),
}

/// A row of Flyway's history: `(installed_rank, version, description, type, checksum, success)`.
pub(crate) type FlywayRow = (i64, Option<String>, String, String, Option<i32>, bool);

impl ForeignHistory {
    /// The tool the history belongs to.
    pub(crate) fn tool(&self) -> Tool {
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
    /// No table of the tool asked for (or of any supported tool) was found.
    #[error("{}", not_found(*.tool, .found))]
    NotFound {
        /// The tool asked for, if any.
        tool: Option<Tool>,
        /// The other tables found.
        found: Vec<String>,
    },
    /// Several supported tools' tables were found.
    #[error("several migration tools' tables were found ({}): say which to adopt (`--from TOOL`, `Adopt::From`)", .tables.join(", "))]
    Ambiguous {
        /// The tables.
        tables: Vec<String>,
    },
    /// The only other table found belongs to no supported tool.
    #[error("the table {table} belongs to no supported tool, so its history cannot be read: record what the database already has with `preflight baseline VERSION` instead")]
    UnknownTool {
        /// The table.
        table: String,
    },
}

fn not_found(tool: Option<Tool>, found: &[String]) -> String {
    let what = match tool {
        Some(t) => format!(
            "no history table of {t} (`{}` or a renamed copy) was found",
            t.default_table()
        ),
        None => "no other migration tool's history table was found".to_owned(),
    };
    if found.is_empty() {
        format!("{what}: there is nothing to adopt")
    } else {
        format!("{what}; found: {}", found.join(", "))
    }
}

/// The migrations of `migrations` that `history` says are applied, in version order.
///
/// Parity with the other tool: after adoption, Preflight applies next exactly what the other
/// tool would have applied next, in version order. Per tool:
///
/// - **golang-migrate** keeps one row: every file up to its version counts as applied (its `up`
///   runs only the files after it, and skips lower ones forever); the version itself must have
///   a file (golang-migrate refuses to run without it); `dirty` is refused.
/// - **goose**: the newest row (highest `id`) per version decides, through `is_applied` (goose v3
///   deletes the row on down; older goose appended an `is_applied = false` row); version 0 is
///   goose's marker row.
/// - **sqlx**: every row; `success = false` is refused; the description (sqlx turns `_` into
///   spaces) and the SHA-384 checksum of the file must match.
/// - **refinery**: every row; the name and the checksum (SipHash-1-3 of name, version, SQL)
///   must match.
/// - **diesel**: every row; versions are directory names without dashes.
/// - **Flyway**, in `installed_rank` order: `SQL`/`JDBC` rows are applied, a `BASELINE` row
///   covers every version up to it, `DELETE` and `UNDO_*` rows cancel a version; rank ≤ 0,
///   `SCHEMA` and repeatable (versionless) rows are not migrations; `success = false` is
///   refused; the description and the CRC-32 checksum ([`flyway_checksum`]) must match.
///
/// Any applied version without a file is refused ([`AdoptError::NoFile`]). A file the other
/// tool did not apply that sorts below the newest applied version is left pending: the plan
/// refuses it as out-of-order unless allowed, as goose (without allow-missing), refinery and
/// Flyway do; sqlx and diesel would apply it silently.
pub(crate) fn adoptable<'a>(
    history: &ForeignHistory,
    migrations: &'a Migrations,
) -> Result<Vec<&'a Migration>, AdoptError> {
    let tool = history.tool();
    let mut applied: BTreeSet<Version> = BTreeSet::new();
    let mut up_to: Option<Version> = None;
    // Checks of a record against its file, done once the version is known to have a file.
    let mut names: BTreeMap<Version, String> = BTreeMap::new();
    let mut sqlx_checksums: BTreeMap<Version, Vec<u8>> = BTreeMap::new();
    let mut refinery_checksums: BTreeMap<Version, (i64, String, String)> = BTreeMap::new();
    let mut flyway_checksums: BTreeMap<Version, i32> = BTreeMap::new();
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
            for (version, name, checksum) in rows {
                let v = foreign_version(tool, *version)?;
                applied.insert(v);
                names.insert(v, name.clone());
                if let Some(sum) = checksum {
                    refinery_checksums.insert(v, (*version, name.clone(), sum.clone()));
                }
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
            for (rank, version, description, kind, checksum, success) in rows {
                // Repeatable migrations have no version; rank 0 and `SCHEMA` rows are Flyway's
                // own markers (schemas it created), not migrations.
                let Some(version) = version else { continue };
                if rank <= 0 || kind == "SCHEMA" {
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
                        match checksum {
                            Some(sum) => flyway_checksums.insert(v, sum),
                            None => flyway_checksums.remove(&v),
                        };
                    }
                }
            }
        }
    }
    if let Some(limit) = up_to {
        // golang-migrate's own version was inserted above, so it must have a file; a Flyway
        // baseline version need not (a baseline marks a database that predates the files).
        applied.extend(
            migrations
                .iter()
                .map(Migration::version)
                .filter(|v| *v <= limit),
        );
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
        if let Some((version, name, recorded)) = refinery_checksums.get(&version) {
            if !refinery_checksum_matches(*version, name, m.up().text(), recorded) {
                return Err(disagree(
                    tool,
                    m,
                    format!("refinery's checksum {recorded} differs from the file's: the file was edited after refinery applied it"),
                ));
            }
        }
        if let Some(recorded) = flyway_checksums.get(&version) {
            let file = flyway_checksum(m.up().text());
            if *recorded != file {
                return Err(disagree(
                    tool,
                    m,
                    format!("Flyway's checksum {recorded} differs from the file's ({file}): the file was edited after Flyway applied it"),
                ));
            }
        }
        out.push(m);
    }
    Ok(out)
}

/// refinery's checksum: SipHash-1-3 (zero keys) over `Hash` of the name, the version and the
/// SQL. The version is an `i32`, or an `i64` with refinery's `int8-versions` feature: either
/// width is accepted.
fn refinery_checksum_matches(version: i64, name: &str, sql: &str, recorded: &str) -> bool {
    let Ok(recorded) = recorded.trim().parse::<u64>() else {
        return false;
    };
    let sum = |hash_version: &dyn Fn(&mut siphasher::sip::SipHasher13)| {
        let mut h = siphasher::sip::SipHasher13::new();
        name.hash(&mut h);
        hash_version(&mut h);
        sql.hash(&mut h);
        h.finish()
    };
    let narrow = i32::try_from(version)
        .ok()
        .is_some_and(|v| sum(&|h| v.hash(h)) == recorded);
    narrow || sum(&|h| version.hash(h)) == recorded
}

/// Flyway's checksum: CRC-32 over the UTF-8 bytes of every line without its line break (a
/// leading BOM removed), as a signed 32-bit integer.
pub fn flyway_checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = !0u32;
    for &byte in text.as_bytes() {
        if byte == b'\n' || byte == b'\r' {
            continue;
        }
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    i32::from_ne_bytes((!crc).to_ne_bytes())
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
                None,
                true,
            ),
            (
                1,
                Some("2".into()),
                "baseline".into(),
                "BASELINE".into(),
                None,
                true,
            ),
            (2, Some("3".into()), "m 3".into(), "SQL".into(), None, true),
            (3, Some("4".into()), "m 4".into(), "SQL".into(), None, true),
            (
                4,
                Some("4".into()),
                "m 4".into(),
                "DELETE".into(),
                None,
                true,
            ),
        ];
        let got = adoptable(&ForeignHistory::Flyway(rows), &m).unwrap();
        assert_eq!(versions(&got), ["1", "2", "3"]);
        // A baseline version without a file of its own covers the files below it.
        let sparse = set(&[1, 3]);
        let baseline = vec![(
            1,
            Some("2".into()),
            "b".into(),
            "BASELINE".into(),
            None,
            true,
        )];
        let got = adoptable(&ForeignHistory::Flyway(baseline), &sparse).unwrap();
        assert_eq!(versions(&got), ["1"]);
        let failed = vec![(1, Some("1".into()), "m 1".into(), "SQL".into(), None, false)];
        assert!(adoptable(&ForeignHistory::Flyway(failed), &m).is_err());
    }

    #[test]
    fn flyway_checksums_are_crc32_of_the_lines() {
        // CRC-32 of "abc" (line breaks and a BOM do not count).
        assert_eq!(flyway_checksum("abc"), 0x3524_41C2);
        assert_eq!(flyway_checksum("\u{feff}a\r\nb\nc\n"), 0x3524_41C2);
        let m = set(&[1]);
        let sum = flyway_checksum("select 1;");
        let row = |c| {
            vec![(
                1,
                Some("1".into()),
                "m 1".into(),
                "SQL".into(),
                Some(c),
                true,
            )]
        };
        assert!(adoptable(&ForeignHistory::Flyway(row(sum)), &m).is_ok());
        assert!(matches!(
            adoptable(&ForeignHistory::Flyway(row(sum ^ 1)), &m),
            Err(AdoptError::Disagree { .. })
        ));
    }

    #[test]
    fn refinery_checksums_accept_both_version_widths() {
        let sum = |v: &dyn Fn(&mut siphasher::sip::SipHasher13)| {
            let mut h = siphasher::sip::SipHasher13::new();
            "m_1".hash(&mut h);
            v(&mut h);
            "select 1;".hash(&mut h);
            h.finish().to_string()
        };
        let m = set(&[1]);
        for recorded in [sum(&|h| 1i32.hash(h)), sum(&|h| 1i64.hash(h))] {
            let rows = vec![(1, "m_1".to_owned(), Some(recorded))];
            assert!(adoptable(&ForeignHistory::Refinery(rows), &m).is_ok());
        }
        let rows = vec![(1, "m_1".to_owned(), Some("12345".to_owned()))];
        assert!(matches!(
            adoptable(&ForeignHistory::Refinery(rows), &m),
            Err(AdoptError::Disagree { .. })
        ));
    }

    #[test]
    fn identifies_and_chooses_tables() {
        let t = |table: &str, cols: &[&str]| ForeignTable::identify("public", table, cols);
        assert_eq!(
            t("schema_migrations", &["version", "dirty"]).unwrap().tool,
            Some(Tool::GolangMigrate)
        );
        // dbmate / Rails: the name is known, the columns are no supported tool's.
        assert_eq!(t("schema_migrations", &["version"]).unwrap().tool, None);
        // Renamed with the tool's option: recognised by its exact columns.
        assert_eq!(
            t("db_versions", &["id", "version_id", "is_applied", "tstamp"])
                .unwrap()
                .tool,
            Some(Tool::Goose)
        );
        assert!(t("users", &["id", "version"]).is_none());
        let goose = t(
            "goose_db_version",
            &["id", "version_id", "is_applied", "tstamp"],
        )
        .unwrap();
        let other = ForeignTable {
            schema: "other".into(),
            ..goose.clone()
        };
        let found = [goose.clone(), other];
        assert!(matches!(
            choose(&found, Adopt::Auto, None),
            Err(AdoptError::Ambiguous { .. })
        ));
        assert_eq!(
            choose(&found, Adopt::Auto, Some("public")),
            Ok(Some(&goose))
        );
        assert!(matches!(
            choose(&found, Adopt::From(Tool::Sqlx), None),
            Err(AdoptError::NotFound { .. })
        ));
        assert_eq!(choose(&[], Adopt::Auto, None), Ok(None));
        let unknown = [t("schema_migrations", &["version"]).unwrap()];
        assert!(matches!(
            choose(&unknown, Adopt::Auto, None),
            Err(AdoptError::UnknownTool { .. })
        ));
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
