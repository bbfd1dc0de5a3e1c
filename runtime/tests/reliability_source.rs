//! Hostile input for the directory reader (issue #7): random directories (the layout detector
//! never panics, never accepts a directory that mixes layouts or holds a misnamed `.sql` file,
//! and accepts every well-formed one), names with spaces and unicode, an empty directory, and a
//! 50 MB migration (refused quickly with a clear error, never read into memory whole).
//!
//! `cargo fuzz` needs a nightly toolchain and cargo-fuzz, which CI does not have: these are
//! proptest properties run by `cargo test` on stable.

use std::fs;
use std::path::Path;
use std::time::Instant;

use preflight_runtime::source::{read_dir, Layout, MAX_FILE_BYTES};
use proptest::prelude::*;

/// One entry of a generated directory.
#[derive(Debug, Clone)]
enum Entry {
    UpDown {
        name: String,
        down: bool,
    },
    Simple {
        name: String,
    },
    Goose {
        name: String,
    },
    Flyway {
        name: String,
    },
    /// A `.sql` file whose name starts like a migration's but does not parse: refused.
    Misnamed(String),
    /// A `.sql` file that does not start like a migration (no tool runs it): named in a
    /// warning, ignored.
    NotAMigration(String),
    /// Not a migration: ignored.
    Ignored(String),
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,8}".prop_filter("no trailing underscore", |n| !n.ends_with('_'))
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (name(), any::<bool>()).prop_map(|(name, down)| Entry::UpDown { name, down }),
        name().prop_map(|name| Entry::Simple { name }),
        name().prop_map(|name| Entry::Goose { name }),
        name().prop_map(|name| Entry::Flyway { name }),
        prop_oneof![
            (1u32..999, name()).prop_map(|(v, n)| format!("{v}-{n}.sql")),
            name().prop_map(|n| format!("R__{n}.sql")),
            (1u32..999, name()).prop_map(|(v, n)| format!("V{v}_{n}.sql")),
        ]
        .prop_map(Entry::Misnamed),
        prop_oneof![
            // `v1.sql` starts like a Flyway name: that one is misnamed, not "not a migration".
            name()
                .prop_filter("starts like a Flyway name", |n| !n.starts_with('v')
                    || !n[1..].starts_with(|c: char| c.is_ascii_digit()))
                .prop_map(|n| format!("{n}.sql")),
            (1u32..999, name()).prop_map(|(v, n)| format!("x{v}_{n}.sql")),
        ]
        .prop_map(Entry::NotAMigration),
        prop_oneof![
            Just("README.md".to_owned()),
            Just(".keep".to_owned()),
            Just(".hidden.sql".to_owned()),
            name().prop_map(|n| format!("{n}.go")),
            name().prop_map(|n| format!("{n}.sql.bak")),
        ]
        .prop_map(Entry::Ignored),
    ]
}

/// Writes the directory; versions are the entries' positions, so they never collide.
fn write(dir: &Path, entries: &[Entry]) {
    for (i, e) in entries.iter().enumerate() {
        let v = i + 1;
        let file = |name: String, text: &str| fs::write(dir.join(name), text).unwrap();
        match e {
            Entry::UpDown { name, down } => {
                file(format!("{v}_{name}.up.sql"), "SELECT 1;\n");
                if *down {
                    file(format!("{v}_{name}.down.sql"), "SELECT 2;\n");
                }
            }
            Entry::Simple { name } => file(format!("{v:03}_{name}.sql"), "SELECT 1;\n"),
            Entry::Goose { name } => file(
                format!("{v:05}_{name}.sql"),
                "-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 2;\n",
            ),
            Entry::Flyway { name } => file(format!("V{v}__{name}.sql"), "SELECT 1;\n"),
            Entry::Misnamed(n) | Entry::NotAMigration(n) | Entry::Ignored(n) => {
                file(n.clone(), "SELECT 1;\n")
            }
        }
    }
}

fn layout_of(e: &Entry) -> Option<Layout> {
    match e {
        Entry::UpDown { .. } => Some(Layout::UpDown),
        Entry::Simple { .. } => Some(Layout::Simple),
        Entry::Goose { .. } => Some(Layout::Goose),
        Entry::Flyway { .. } => Some(Layout::Flyway),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn layout_detector_on_random_directories(entries in proptest::collection::vec(entry(), 0..7)) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &entries);
        let result = read_dir(dir.path(), "m");
        let misnamed: Vec<&String> = entries
            .iter()
            .filter_map(|e| match e { Entry::Misnamed(n) => Some(n), _ => None })
            .collect();
        let not_migrations: Vec<&String> = entries
            .iter()
            .filter_map(|e| match e { Entry::NotAMigration(n) => Some(n), _ => None })
            .collect();
        let mut layouts: Vec<Layout> = entries.iter().filter_map(layout_of).collect();
        layouts.sort();
        layouts.dedup();
        let migrations = entries.iter().filter(|e| layout_of(e).is_some()).count();
        match result {
            Ok(source) => {
                prop_assert!(misnamed.is_empty(), "accepted misnamed files {misnamed:?}");
                for n in &not_migrations {
                    prop_assert!(
                        source.warnings.iter().any(|w| w.path.ends_with(n.as_str())),
                        "{n} not named in {:?}", source.warnings
                    );
                }
                prop_assert!(layouts.len() <= 1, "accepted a mix of {layouts:?}");
                prop_assert_eq!(source.layout, layouts.first().copied());
                prop_assert_eq!(source.migrations.len(), migrations);
                let versions: Vec<String> =
                    source.migrations.iter().map(|m| m.version.to_string()).collect();
                let mut sorted = source.migrations.iter().map(|m| m.version).collect::<Vec<_>>();
                sorted.sort();
                prop_assert_eq!(
                    sorted,
                    source.migrations.iter().map(|m| m.version).collect::<Vec<_>>(),
                    "version order: {:?}", versions
                );
            }
            Err(diagnostics) => {
                prop_assert!(!diagnostics.is_empty());
                let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
                let text = text.join("\n");
                prop_assert!(
                    !misnamed.is_empty() || layouts.len() > 1,
                    "refused a well-formed directory ({layouts:?}): {text}"
                );
                for m in &misnamed {
                    prop_assert!(text.contains(m.as_str()), "{m} not named in: {text}");
                }
                if layouts.len() > 1 && misnamed.is_empty() {
                    prop_assert!(
                        text.contains("mixes layouts") || text.contains("goose"),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn any_file_name_never_panics(names in proptest::collection::vec("\\PC{1,24}", 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        for (i, n) in names.iter().enumerate() {
            if n.contains('/') || n.contains('\0') || n == "." || n == ".." {
                continue;
            }
            // Half as migrations-looking `.sql` files, half as they come.
            let file = if i % 2 == 0 { format!("{n}.sql") } else { n.clone() };
            let _ = fs::write(dir.path().join(file), "SELECT 1;");
        }
        match read_dir(dir.path(), "m") {
            Ok(source) => {
                for m in &source.migrations {
                    // Only a version alone (`7.sql`) has an empty name.
                    let file = m.up.file.display.rsplit('/').next().unwrap_or_default();
                    let stem = file.split('.').next().unwrap_or_default();
                    prop_assert!(!m.name.is_empty() || stem.bytes().all(|b| b.is_ascii_digit()), "{file}");
                }
            }
            Err(d) => prop_assert!(!d.is_empty()),
        }
    }
}

#[test]
fn names_with_spaces_and_unicode() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("1_crée la table ☃.up.sql"), "SELECT 1;").unwrap();
    fs::write(dir.path().join("1_crée la table ☃.down.sql"), "SELECT 2;").unwrap();
    fs::write(dir.path().join("2_日本語.up.sql"), "SELECT 3;").unwrap();
    match read_dir(dir.path(), "m") {
        Ok(source) => {
            // Accepted (what the reader does today): the names are kept exactly, and paths
            // are shown as written.
            println!("names with spaces and unicode: accepted");
            assert_eq!(source.migrations.len(), 2);
            assert_eq!(source.migrations[0].name, "crée la table ☃");
            assert_eq!(source.migrations[1].name, "日本語");
            assert!(source.migrations[0].down.is_some());
            assert_eq!(
                source.migrations[0].up.file.display,
                "m/1_crée la table ☃.up.sql"
            );
        }
        Err(d) => {
            // Refused: each file named in a diagnostic.
            let text: Vec<String> = d.iter().map(ToString::to_string).collect();
            let text = text.join("\n");
            assert!(text.contains("1_crée la table ☃.up.sql"), "{text}");
        }
    }
    // A file name that is not UTF-8 and ends in `.sql` is refused, never skipped.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("1_ok.sql"), "SELECT 1;").unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"2_caf\xe9.sql");
        fs::write(dir.path().join(bad), "SELECT 2;").unwrap();
        let d = read_dir(dir.path(), "m").unwrap_err();
        assert!(d[0].to_string().contains("not valid UTF-8"), "{}", d[0]);
    }
}

#[test]
fn empty_directory_is_an_empty_set() {
    let dir = tempfile::tempdir().unwrap();
    let source = read_dir(dir.path(), "m").unwrap();
    assert!(source.migrations.is_empty());
    assert_eq!(source.layout, None);
    // Only ignored files: the same.
    fs::write(dir.path().join("README.md"), "# migrations").unwrap();
    fs::write(dir.path().join(".keep"), "").unwrap();
    assert!(read_dir(dir.path(), "m").unwrap().migrations.is_empty());
}

#[test]
fn a_50_mb_migration_is_refused_quickly_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let line = "INSERT INTO big VALUES (1, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx');\n";
    let mut text = String::from("CREATE TABLE big (id int, payload text);\n");
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(line);
    }
    fs::write(dir.path().join("1_big.sql"), &text).unwrap();
    fs::write(dir.path().join("2_small.sql"), "SELECT 1;").unwrap();
    drop(text);
    let started = Instant::now();
    let d = read_dir(dir.path(), "m").unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(d.len(), 1, "{d:?}");
    let message = d[0].to_string();
    assert!(message.contains("m/1_big.sql"), "{message}");
    assert!(message.contains("50.0 MiB"), "{message}");
    assert!(
        message.contains(&format!("{} MiB", MAX_FILE_BYTES / (1024 * 1024))),
        "{message}"
    );
    println!("50 MB migration refused in {elapsed:?}: {message}");
    // Just below the limit is read.
    let dir = tempfile::tempdir().unwrap();
    let size = usize::try_from(MAX_FILE_BYTES).unwrap();
    let mut text = String::with_capacity(size);
    while text.len() + line.len() <= size {
        text.push_str(line);
    }
    fs::write(dir.path().join("1_big.sql"), &text).unwrap();
    let source = read_dir(dir.path(), "m").unwrap();
    assert_eq!(source.migrations[0].up.sql().len(), text.len());
}
