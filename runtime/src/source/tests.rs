use super::*;
use std::fs;

fn dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let path = d.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    d
}

fn read(files: &[(&str, &[u8])]) -> Result<Source, Vec<Diagnostic>> {
    let d = dir(files);
    read_dir(d.path(), "m")
}

fn versions(s: &Source) -> Vec<String> {
    s.migrations.iter().map(|m| m.version.to_string()).collect()
}

fn messages(e: Vec<Diagnostic>) -> String {
    e.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn up_down_pairs_in_numeric_order() {
    let s = read(&[
        ("10_c.up.sql", b"select 10;"),
        ("2_b.up.sql", b"select 2;"),
        ("2_b.down.sql", b"select -2;"),
        ("1_a.up.sql", b"select 1;"),
        ("README.md", b"# not a migration"),
        (".keep", b""),
    ])
    .unwrap();
    assert_eq!(s.layout, Some(Layout::UpDown));
    assert_eq!(versions(&s), ["1", "2", "10"]);
    assert!(s.migrations[1].down.is_some());
    assert!(s.migrations[0].down.is_none());
}

#[test]
fn flyway_versions_compare_part_by_part() {
    let s = read(&[
        ("V1_11__c.sql", b""),
        ("V1_2__b.sql", b""),
        ("V1__a.sql", b""),
    ])
    .unwrap();
    assert_eq!(s.layout, Some(Layout::Flyway));
    assert_eq!(versions(&s), ["1", "1.2", "1.11"]);
}

#[test]
fn goose_sections_and_go_files() {
    let s = read(&[
        (
            "00001_init.sql",
            b"-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n-- +goose StatementEnd\n-- +goose Down\nDROP FUNCTION f();\n",
        ),
        ("00002_idx.sql", b"-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY i ON t(x);\n"),
        ("00003_code.go", b"package migrations"),
    ])
    .unwrap();
    assert_eq!(s.layout, Some(Layout::Goose));
    let m = &s.migrations[0];
    assert!(m.up.sql().contains("CREATE FUNCTION"));
    assert!(!m.up.sql().contains("DROP"));
    assert_eq!(m.down.as_ref().unwrap().sql(), "DROP FUNCTION f();\n");
    assert_eq!(
        s.migrations[1].up.directives.no_transaction,
        Some(NoTransaction::Goose)
    );
}

#[test]
fn diesel_directories_with_metadata() {
    let s = read(&[
        ("2019-01-02-120000_b/up.sql", b"select 2;"),
        ("2019-01-02-120000_b/down.sql", b"select -2;"),
        (
            "2019-01-02-120000_b/metadata.toml",
            b"run_in_transaction = false\n",
        ),
        ("00000000000000_diesel_initial_setup/up.sql", b"select 0;"),
        (
            "00000000000000_diesel_initial_setup/down.sql",
            b"select -0;",
        ),
    ])
    .unwrap();
    assert_eq!(s.layout, Some(Layout::Diesel));
    assert_eq!(versions(&s), ["0", "20190102120000"]);
    assert_eq!(
        s.migrations[1].up.directives.no_transaction,
        Some(NoTransaction::Diesel)
    );
    assert_eq!(
        s.migrations[1]
            .down
            .as_ref()
            .unwrap()
            .directives
            .no_transaction,
        Some(NoTransaction::Diesel)
    );
}

#[test]
fn empty_and_comment_only_files_are_migrations() {
    let s = read(&[
        ("001_empty.sql", b""),
        ("002_comment.sql", b"-- nothing yet\n"),
    ])
    .unwrap();
    assert_eq!(versions(&s), ["1", "2"]);
}

#[test]
fn empty_directory_is_an_empty_set() {
    let s = read(&[]).unwrap();
    assert_eq!(s.layout, None);
    assert!(s.migrations.is_empty());
}

#[test]
fn reports_every_problem_at_once() {
    let e = read(&[
        ("1-foo.sql", b""),
        ("2_a.sql", b""),
        ("002_b.sql", b""),
        ("schema.sql", b""),
        ("3_bad.sql", b"select '\xff';"),
    ])
    .unwrap_err();
    let text = messages(e);
    assert!(
        text.contains("m/1-foo.sql: error: not a migration name: expected `_`"),
        "{text}"
    );
    assert!(
        text.contains("duplicate version 2: `m/002_b.sql` and `m/2_a.sql`"),
        "{text}"
    );
    assert!(
        text.contains("m/schema.sql: error: not a migration name"),
        "{text}"
    );
    assert!(
        text.contains("m/3_bad.sql:1:9: error: the file is not valid UTF-8"),
        "{text}"
    );
}

#[test]
fn mixed_layouts_are_refused() {
    let e = read(&[("1_a.up.sql", b""), ("V2__b.sql", b"")]).unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(e[0].message.contains("mixes layouts"), "{}", e[0]);
}

#[test]
fn down_without_up() {
    let e = read(&[("1_a.down.sql", b"")]).unwrap_err();
    assert!(e[0]
        .to_string()
        .contains("m/1_a.down.sql: error: a down migration without an up migration"));
}

#[test]
fn missing_directory() {
    let e = read_dir(Path::new("/nonexistent/preflight"), "nope").unwrap_err();
    assert!(e[0]
        .to_string()
        .starts_with("nope: error: the migration directory does not exist"));
}

#[test]
fn goose_file_without_annotation_in_goose_dir() {
    let e = read(&[
        ("1_a.sql", b"-- +goose Up\nselect 1;"),
        ("2_b.sql", b"select 2;"),
    ])
    .unwrap_err();
    assert!(e[0]
        .to_string()
        .contains("m/2_b.sql: error: this goose directory's file has no `-- +goose Up`"));
}

#[test]
fn unicode_and_spaces_in_names_are_kept() {
    let s = read(&[
        ("1_créer les utilisateurs.sql", b"select 1;"),
        ("2_日本.sql", b""),
    ])
    .unwrap();
    assert_eq!(s.migrations[0].name, "créer les utilisateurs");
    assert_eq!(s.migrations[1].name, "日本");
}

#[test]
fn symlink_loop_is_an_error_naming_the_file() {
    let d = dir(&[("1_a.sql", b"select 1;")]);
    std::os::unix::fs::symlink("2_loop.sql", d.path().join("2_loop.sql")).unwrap();
    let e = read_dir(d.path(), "m").unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].to_string()
            .starts_with("m/2_loop.sql: error: cannot read the file"),
        "{}",
        e[0]
    );
}

#[test]
fn symlinked_directory_is_read_once_not_followed_forever() {
    let d = dir(&[("2019-01-01-000000_a/up.sql", b"select 1;")]);
    std::os::unix::fs::symlink(".", d.path().join("2019-01-01-000000_a/self")).unwrap();
    let s = read_dir(d.path(), "m").unwrap();
    assert_eq!(s.migrations.len(), 1);
}

#[test]
fn messy_directory_lists_every_problem() {
    // Duplicate date prefixes and unprefixed files, as found in the wild.
    let e = read(&[
        ("20200101_a.sql", b""),
        ("20200101_b.sql", b""),
        ("fix_prod.sql", b""),
        ("20200102_c.sql", b""),
        ("cleanup.sql", b""),
    ])
    .unwrap_err();
    let text = messages(e);
    assert!(text.contains("duplicate version 20200101"), "{text}");
    assert!(
        text.contains("m/fix_prod.sql: error: not a migration name"),
        "{text}"
    );
    assert!(
        text.contains("m/cleanup.sql: error: not a migration name"),
        "{text}"
    );
}
