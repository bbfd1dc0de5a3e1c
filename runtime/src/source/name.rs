//! The file-name grammar of every accepted layout.

use crate::version::VersionError;
use crate::Version;

/// The layout a migration directory uses. A directory uses exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layout {
    /// `{version}_{name}.up.sql` + `{version}_{name}.down.sql` (golang-migrate, sqlx reversible).
    UpDown,
    /// `{version}_{name}.sql`, forward only (sqlx simple, numbered seed files).
    Simple,
    /// `{version}_{name}.sql` with `-- +goose Up` / `-- +goose Down` sections.
    Goose,
    /// `{version}_{name}.sql` with `-- +migrate Up` / `-- +migrate Down` sections (sql-migrate).
    SqlMigrate,
    /// `{version}_{name}.sql` with `-- migrate:up` / `-- migrate:down` sections (dbmate).
    Dbmate,
    /// `V{version}__{name}.sql` (refinery, Flyway; versions may have parts: `V1_2__x`, `V1.2__x`).
    Flyway,
    /// `{version}_{name}/up.sql` + `down.sql` (+ `metadata.toml`), diesel.
    Diesel,
    /// gobuffalo/pop (and Ory's popx): `{version}_{name}[.{dialect}][.autocommit].{up|down}.sql`,
    /// one directory for every dialect; the dialect's own file wins over the generic one.
    Pop,
    /// A naming pattern the user declared (`names = "V{version}.{name}.{direction}.sql"`).
    Declared,
}

impl Layout {
    /// A short human name.
    pub fn describe(&self) -> &'static str {
        match self {
            Layout::UpDown => "`{version}_{name}.up.sql` / `.down.sql` (golang-migrate, sqlx)",
            Layout::Simple => "`{version}_{name}.sql` (forward-only)",
            Layout::Goose => "goose `{version}_{name}.sql` with `-- +goose Up`",
            Layout::SqlMigrate => "sql-migrate `{version}_{name}.sql` with `-- +migrate Up`",
            Layout::Dbmate => "dbmate `{version}_{name}.sql` with `-- migrate:up`",
            Layout::Flyway => "`V{version}__{name}.sql` (refinery, Flyway)",
            Layout::Diesel => "diesel `{version}_{name}/up.sql`",
            Layout::Pop => "pop `{version}_{name}.{dialect}.up.sql`",
            Layout::Declared => "the declared naming pattern",
        }
    }
}

/// What a `.sql` file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileName {
    /// `{version}_{name}.up.sql`
    Up(Version, String),
    /// `{version}_{name}.down.sql`
    Down(Version, String),
    /// `{version}_{name}.sql` (simple or goose, decided by the content)
    Plain(Version, String),
    /// `V{version}__{name}.sql`
    Flyway(Version, String),
    /// pop's `{version}_{name}[.{dialect}][.autocommit].{up|down}.sql` with a dialect or the
    /// autocommit flag (without either it is [`FileName::Up`] / [`FileName::Down`]).
    Pop(PopName),
}

/// A pop file name with its dialect (canonical, `None` for every dialect) and flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PopName {
    pub version: Version,
    pub name: String,
    pub dialect: Option<&'static str>,
    pub autocommit: bool,
    pub up: bool,
}

/// Why a `.sql` file name is not a migration's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameError {
    /// It does not start like a migration (no version): not meant to be one, and every tool
    /// skips it. The reader warns and ignores it.
    NotAMigration,
    /// It starts like a migration but does not parse; the text says how to fix it.
    Misnamed(String),
}

/// The dialect names pop accepts in a file name, with their canonical name.
const POP_DIALECTS: [(&str, &str); 11] = [
    ("postgres", "postgres"),
    ("postgresql", "postgres"),
    ("pg", "postgres"),
    ("pgx", "postgres"),
    ("cockroach", "cockroach"),
    ("cockroachdb", "cockroach"),
    ("crdb", "cockroach"),
    ("mysql", "mysql"),
    ("sqlite", "sqlite3"),
    ("sqlite3", "sqlite3"),
    ("mssql", "mssql"),
];

/// The canonical pop name of a dialect (`postgresql` → `postgres`, `sqlite` → `sqlite3`).
pub(crate) fn pop_dialect(tag: &str) -> Option<&'static str> {
    POP_DIALECTS
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(tag))
        .map(|&(_, canonical)| canonical)
}

/// Parses the name of a `.sql` file (the caller has checked the extension, in any case).
pub(crate) fn parse_file_name(file: &str) -> Result<FileName, NameError> {
    let stem = &file[..file.len() - ".sql".len()];
    let lower = stem.to_ascii_lowercase();
    if let Some(rest) = stem.strip_prefix('V').or_else(|| stem.strip_prefix('v')) {
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            return parse_flyway(rest).map(|(v, n)| FileName::Flyway(v, n));
        }
    }
    // Flyway's repeatable `R__x` and undo `U1__x` migrations (an undo needs its `__`: `u0.sql`
    // is no Flyway name).
    let undo = stem.starts_with('U')
        && stem[1..].starts_with(|c: char| c.is_ascii_digit())
        && stem.contains("__");
    if stem.starts_with("R__") || undo {
        return Err(NameError::Misnamed(
            "Flyway repeatable (`R__`) and undo (`U`) migrations are not supported: Flyway would \
             run it, Preflight cannot; give it a version (`V{version}__{name}.sql`), or move it \
             out of the directory"
                .into(),
        ));
    }
    if !stem.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(NameError::NotAMigration);
    }
    let (stem, direction) = if lower.ends_with(".up") {
        (&stem[..stem.len() - 3], Some(true))
    } else if lower.ends_with(".down") {
        (&stem[..stem.len() - 5], Some(false))
    } else {
        (stem, None)
    };
    let (version, name) = split_version(stem)?;
    Ok(match direction {
        Some(up) => match pop_parts(&name) {
            Some((name, dialect, autocommit)) => FileName::Pop(PopName {
                version,
                name,
                dialect,
                autocommit,
                up,
            }),
            None if up => FileName::Up(version, name),
            None => FileName::Down(version, name),
        },
        None => FileName::Plain(version, name),
    })
}

/// `name[.dialect][.autocommit]` with a known dialect or the flag: pop's name, dialect, flag.
/// A name without either is golang-migrate's (whose names may hold dots: `1_v1.2.up.sql`).
fn pop_parts(name: &str) -> Option<(String, Option<&'static str>, bool)> {
    let (rest, autocommit) = match name.strip_suffix(".autocommit") {
        Some(rest) => (rest, true),
        None => (name, false),
    };
    let (base, dialect) = match rest.rsplit_once('.') {
        Some((base, tag)) => match pop_dialect(tag) {
            Some(d) => (base, Some(d)),
            None => (rest, None),
        },
        None => (rest, None),
    };
    if (dialect.is_none() && !autocommit) || base.is_empty() || base.contains('.') {
        return None;
    }
    Some((base.to_owned(), dialect, autocommit))
}

/// `{digits}_{name}`, or only `{digits}` (sql-migrate and home-grown runners name files by
/// their version alone, `1677078479.sql`): then the name is empty.
fn split_version(stem: &str) -> Result<(Version, String), NameError> {
    let digits = stem.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &stem[digits..];
    if rest.is_empty() {
        let version = Version::parse_with(stem, &[]).map_err(version_error)?;
        return Ok((version, String::new()));
    }
    let Some(name) = rest.strip_prefix('_') else {
        return Err(NameError::Misnamed(format!(
            "expected `_` after the version `{}`: name it `{}_{}.sql`",
            &stem[..digits],
            &stem[..digits],
            rest.trim_start_matches(|c: char| !c.is_alphanumeric())
        )));
    };
    if name.is_empty() {
        return Err(NameError::Misnamed(
            "the name after the version is empty: name it `{version}_{name}.sql`".into(),
        ));
    }
    let version = Version::parse_with(&stem[..digits], &[]).map_err(version_error)?;
    Ok((version, name.to_owned()))
}

fn parse_flyway(rest: &str) -> Result<(Version, String), NameError> {
    let Some((version, name)) = rest.split_once("__") else {
        return Err(NameError::Misnamed(
            "a Flyway/refinery migration needs two underscores between version and name: \
             `V{version}__{name}.sql`"
                .into(),
        ));
    };
    if name.is_empty() {
        return Err(NameError::Misnamed(
            "the name after `__` is empty: name it `V{version}__{name}.sql`".into(),
        ));
    }
    let version = Version::parse_with(version, &['.', '_']).map_err(version_error)?;
    Ok((version, name.to_owned()))
}

/// A diesel migration directory name: `{version}_{name}`, the version's dashes removed
/// (`2019-01-01-120000_create_users` has version 20190101120000).
pub(crate) fn parse_diesel_dir(dir: &str) -> Result<(Version, String), NameError> {
    let Some((prefix, name)) = dir.split_once('_') else {
        return Err(NameError::Misnamed(
            "a diesel migration directory is named `{version}_{name}`".into(),
        ));
    };
    if name.is_empty() {
        return Err(NameError::Misnamed(
            "the name after the version is empty".into(),
        ));
    }
    let digits: String = prefix.chars().filter(|&c| c != '-').collect();
    let version = Version::parse_with(&digits, &[]).map_err(version_error)?;
    Ok((version, name.to_owned()))
}

/// Whether a directory name looks like a diesel migration (starts with a digit).
pub(crate) fn looks_like_diesel_dir(dir: &str) -> bool {
    dir.starts_with(|c: char| c.is_ascii_digit())
}

fn version_error(e: VersionError) -> NameError {
    NameError::Misnamed(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str) -> FileName {
        parse_file_name(name).unwrap_or_else(|e| panic!("{name}: {e:?}"))
    }

    #[test]
    fn parses_every_layout() {
        assert_eq!(
            ok("001_users.up.sql"),
            FileName::Up(Version::new(1), "users".into())
        );
        assert_eq!(
            ok("1_users.down.sql"),
            FileName::Down(Version::new(1), "users".into())
        );
        assert_eq!(
            ok("20240101120000_add_x.sql"),
            FileName::Plain(Version::new(20240101120000), "add_x".into())
        );
        assert_eq!(
            ok("V1_2__x.sql"),
            FileName::Flyway("1.2".parse().unwrap(), "x".into())
        );
        assert_eq!(
            ok("V1.2__x_y.sql"),
            FileName::Flyway("1.2".parse().unwrap(), "x_y".into())
        );
        assert_eq!(
            ok("V3__init.sql"),
            FileName::Flyway(Version::new(3), "init".into())
        );
        assert_eq!(
            ok("7_name with spaces.sql"),
            FileName::Plain(Version::new(7), "name with spaces".into())
        );
    }

    #[test]
    fn refuses_migration_like_names() {
        for bad in [
            "1-foo.sql",
            "V1_foo.sql",
            "V1__.sql",
            "1_.sql",
            "schema.sql",
            "R__view.sql",
            "U2__undo.sql",
        ] {
            assert!(parse_file_name(bad).is_err(), "{bad} accepted");
        }
        for not_one in ["schema.sql", "seed-data.sql", "_x.sql"] {
            assert_eq!(parse_file_name(not_one), Err(NameError::NotAMigration));
        }
        assert!(matches!(
            parse_file_name("1-foo.sql"),
            Err(NameError::Misnamed(_))
        ));
        assert_eq!(
            ok("99999999999999999999_x.sql"),
            FileName::Plain("99999999999999999999".parse().unwrap(), "x".into())
        );
    }

    #[test]
    fn a_version_alone_is_a_name() {
        assert_eq!(
            ok("1677078479.sql"),
            FileName::Plain(Version::new(1677078479), String::new())
        );
        assert_eq!(ok("7.up.sql"), FileName::Up(Version::new(7), String::new()));
    }

    #[test]
    fn pop_names() {
        let pop = |name: &str| match ok(name) {
            FileName::Pop(p) => (p.name, p.dialect, p.autocommit, p.up),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(
            pop("20260703000000000000_a.postgres.up.sql"),
            ("a".into(), Some("postgres"), false, true)
        );
        assert_eq!(
            pop("1_a.sqlite.autocommit.down.sql"),
            ("a".into(), Some("sqlite3"), true, false)
        );
        assert_eq!(pop("1_a.autocommit.up.sql"), ("a".into(), None, true, true));
        assert_eq!(
            ok("1_a.b.up.sql"),
            FileName::Up(Version::new(1), "a.b".into())
        );
        assert_eq!(
            ok("1_x.y.postgres.up.sql"),
            FileName::Up(Version::new(1), "x.y.postgres".into())
        );
    }

    #[test]
    fn diesel_dirs() {
        assert_eq!(
            parse_diesel_dir("2019-01-01-120000_create_users").unwrap(),
            (Version::new(20190101120000), "create_users".into())
        );
        assert_eq!(
            parse_diesel_dir("00000000000000_diesel_initial_setup")
                .unwrap()
                .0,
            Version::new(0)
        );
        assert!(parse_diesel_dir("2019-01-01").is_err());
    }
}
