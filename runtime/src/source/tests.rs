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

fn read_with(files: &[(&str, &[u8])], options: &SourceOptions) -> Result<Source, Vec<Diagnostic>> {
    let d = dir(files);
    let (source, errors) = scan_dir(d.path(), "m", options);
    if errors.is_empty() {
        Ok(source)
    } else {
        Err(errors)
    }
}

fn names(s: &Source) -> Vec<String> {
    s.migrations
        .iter()
        .map(|m| {
            let down = m
                .down
                .as_ref()
                .map_or(String::new(), |d| format!(" / {}", d.file.display));
            format!("{} {}{down}", m.version, m.up.file.display)
        })
        .collect()
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
        ("migrations.go", b"package migrations"),
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
        text.contains("m/3_bad.sql:1:9: error: the file is not valid UTF-8"),
        "{text}"
    );
    // `schema.sql` does not start like a migration: no tool runs it, so it is named, not refused.
    assert!(!text.contains("schema.sql"), "{text}");
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
    assert_eq!(text.matches("error").count(), 1, "{text}");
    let d = dir(&[
        ("20200101_a.sql", b""),
        ("fix_prod.sql", b""),
        ("cleanup.sql", b""),
    ]);
    let (s, errors) = scan_dir(d.path(), "m", &SourceOptions::default());
    assert!(errors.is_empty());
    let warned: Vec<String> = s.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(warned[0].starts_with("m/cleanup.sql: warning: not a migration, ignored: its name does not start with a version"), "{warned:?}");
    assert!(warned[1].ends_with("[not-a-migration]"), "{warned:?}");
}

#[test]
fn loose_sql_beside_diesel_folders_is_named_not_refused() {
    let s = read(&[
        ("2019-01-01-000000_a/up.sql", b"select 1;"),
        ("2019-01-01-000000_a/down.sql", b"select -1;"),
        ("2019-01-01-000000_a/README.md", b"notes"),
        ("001_seed.sql", b"insert into a values (1);"),
        ("schema.sql", b"create table a (id int);"),
        (
            "20190101_dump.sql",
            b"-- +goose Up\nselect 1;\n-- +goose Down\nselect 2;\n",
        ),
        ("README.md", b"# migrations"),
        (".keep", b""),
    ])
    .unwrap();
    assert_eq!(s.layout, Some(Layout::Diesel));
    assert_eq!(versions(&s), ["20190101000000"]);
    let warned: Vec<&str> = s.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        warned,
        ["m/001_seed.sql", "m/20190101_dump.sql", "m/schema.sql"]
    );
    assert!(s.warnings[0]
        .message
        .contains("diesel reads only the migration folders"));
}

#[test]
fn backups_are_named_and_fizz_is_refused() {
    let d = dir(&[
        ("1_a.up.sql", b"select 1;"),
        ("1_a.up.sql~", b"select 0;"),
        ("1_a.up.sql.bak", b"select 0;"),
        ("2_b.up.fizz", b"create_table(\"b\")"),
    ]);
    let (s, errors) = scan_dir(d.path(), "m", &SourceOptions::default());
    assert_eq!(s.warnings.len(), 2);
    assert!(
        s.warnings[0].message.contains("backup"),
        "{}",
        s.warnings[0]
    );
    assert_eq!(errors.len(), 1);
    assert!(errors[0]
        .to_string()
        .starts_with("m/2_b.up.fizz: error: a pop fizz migration"));
}

#[test]
fn versions_longer_than_64_bits() {
    let s = read(&[
        ("20260703000000000001_b.up.sql", b"select 2;"),
        ("20260703000000000000_a.up.sql", b"select 1;"),
        ("20260703000000000000_a.down.sql", b"select -1;"),
        ("9_small.up.sql", b"select 0;"),
    ])
    .unwrap();
    assert_eq!(
        versions(&s),
        ["9", "20260703000000000000", "20260703000000000001"]
    );
}

#[test]
fn pop_takes_the_dialects_file_and_the_generic_one_otherwise() {
    let files: &[(&str, &[u8])] = &[
        ("20260703000000000000_a.up.sql", b"select 'generic';"),
        ("20260703000000000000_a.postgres.up.sql", b"select 'pg';"),
        ("20260703000000000000_a.sqlite3.up.sql", b"select 'lite';"),
        ("20260703000000000000_a.mysql.up.sql", b"select 'my';"),
        ("20260703000000000000_a.cockroach.up.sql", b""),
        ("20260703000000000000_a.down.sql", b""),
        ("20260703000000000001_b.up.sql", b"select 'generic b';"),
        (
            "20260703000000000002_c.mysql.up.sql",
            b"select 'only mysql';",
        ),
        (
            "20260703000000000003_d.postgres.autocommit.up.sql",
            b"CREATE INDEX CONCURRENTLY i ON t (a);",
        ),
        ("20260703000000000003_d.sqlite.up.sql", b""),
        ("20260703000000000004_e.autocommit.up.sql", b"select 1;"),
    ];
    let pg = read_with(files, &SourceOptions::default()).unwrap();
    assert_eq!(pg.layout, Some(Layout::Pop));
    assert_eq!(
        names(&pg),
        [
            "20260703000000000000 m/20260703000000000000_a.postgres.up.sql / m/20260703000000000000_a.down.sql",
            "20260703000000000001 m/20260703000000000001_b.up.sql",
            "20260703000000000003 m/20260703000000000003_d.postgres.autocommit.up.sql",
            "20260703000000000004 m/20260703000000000004_e.autocommit.up.sql",
        ]
    );
    assert_eq!(
        pg.migrations[2].up.directives.no_transaction,
        Some(NoTransaction::Pop)
    );
    assert_eq!(pg.migrations[0].name, "a");
    let lite = read_with(files, &SourceOptions::default().dialect("sqlite")).unwrap();
    assert_eq!(
        names(&lite)[..3],
        [
            "20260703000000000000 m/20260703000000000000_a.sqlite3.up.sql / m/20260703000000000000_a.down.sql",
            "20260703000000000001 m/20260703000000000001_b.up.sql",
            "20260703000000000003 m/20260703000000000003_d.sqlite.up.sql",
        ]
    );
    // Two files of one dialect for one version are a duplicate, as ever.
    let e = read_with(
        &[("1_a.postgres.up.sql", b""), ("1_b.postgresql.up.sql", b"")],
        &SourceOptions::default(),
    )
    .unwrap_err();
    assert!(messages(e).contains("duplicate version 1"));
    // golang-migrate names may hold dots that are not dialects.
    let s = read(&[("1_v1.2.up.sql", b""), ("1_v1.2.down.sql", b"")]).unwrap();
    assert_eq!(
        (s.layout, s.migrations[0].name.as_str()),
        (Some(Layout::UpDown), "v1.2")
    );
}

#[test]
fn a_declared_pattern_reads_home_grown_names() {
    let options =
        SourceOptions::default().pattern("V{version}.{name}.{direction}.sql".parse().unwrap());
    let s = read_with(
        &[
            ("V0001.Initial_Schema.up.sql", b"select 1;"),
            ("V0001.Initial_Schema.down.sql", b"select -1;"),
            ("V0002.Add_Users.up.sql", b"select 2;"),
            ("README.md", b""),
        ],
        &options,
    )
    .unwrap();
    assert_eq!(s.layout, Some(Layout::Declared));
    assert_eq!(versions(&s), ["1", "2"]);
    assert_eq!(s.migrations[0].name, "Initial_Schema");
    assert!(s.migrations[0].down.is_some());
    // Under a declared pattern, a `.sql` file that does not match is an error.
    let e = read_with(
        &[
            ("V0001.Initial_Schema.up.sql", b"select 1;"),
            ("V0002_Add_Users.up.sql", b"select 2;"),
            ("schema.sql", b""),
        ],
        &options,
    )
    .unwrap_err();
    let text = messages(e);
    assert!(text.contains("m/V0002_Add_Users.up.sql: error: does not match the declared naming pattern `V{version}.{name}.{direction}.sql`"), "{text}");
    assert!(
        text.contains("m/schema.sql: error: does not match"),
        "{text}"
    );
    // Without the pattern, the same names are refused as misnamed Flyway files.
    let e = read(&[("V0001.Initial_Schema.up.sql", b"select 1;")]).unwrap_err();
    assert!(messages(e).contains("two underscores"));
}

#[test]
fn sql_migrate_and_dbmate_sections() {
    let s = read(&[
        (
            "1_a.sql",
            b"-- +migrate Up\nCREATE TABLE a (id int);\n-- +migrate Down\nDROP TABLE a;\n",
        ),
        (
            "2_b.sql",
            b"-- +migrate Up notransaction\nCREATE INDEX CONCURRENTLY i ON a (id);\n",
        ),
    ])
    .unwrap();
    assert_eq!(s.layout, Some(Layout::SqlMigrate));
    assert_eq!(s.migrations[0].up.sql(), "CREATE TABLE a (id int);\n");
    assert_eq!(
        s.migrations[1].up.directives.no_transaction,
        Some(NoTransaction::SqlMigrate)
    );
    let s = read(&[
        (
            "20200101000000_a.sql",
            b"-- migrate:up\nCREATE TABLE a (id int);\n\n-- migrate:down\nDROP TABLE a;\n",
        ),
        (
            "20200102000000_b.sql",
            b"-- migrate:up transaction:false\nVACUUM a;\n-- migrate:down\n",
        ),
    ])
    .unwrap();
    assert_eq!(s.layout, Some(Layout::Dbmate));
    assert_eq!(
        s.migrations[0].down.as_ref().unwrap().sql(),
        "DROP TABLE a;\n"
    );
    assert_eq!(
        s.migrations[1].up.directives.no_transaction,
        Some(NoTransaction::Dbmate)
    );
    // A plain file in a dbmate directory would run nowhere: an error naming it.
    let e = read(&[
        ("1_a.sql", b"-- migrate:up\nselect 1;\n"),
        ("2_b.sql", b"select 2;\n"),
    ])
    .unwrap_err();
    assert!(messages(e)
        .contains("m/2_b.sql: error: this dbmate directory's file has no `-- migrate:up`"));
}

#[test]
fn goose_go_migrations_are_refused_not_skipped() {
    let e = read(&[
        ("00001_init.sql", b"-- +goose Up\nselect 1;\n"),
        (
            "00002_backfill.go",
            b"package migrations\nfunc init() { goose.AddMigrationNoTxContext(up, down) }",
        ),
        ("00003_helpers.go", b"package migrations\nfunc helper() {}"),
        ("embed.go", b"package migrations"),
    ])
    .unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(e[0]
        .to_string()
        .starts_with("m/00002_backfill.go: error: a goose Go migration"));
    // Beside golang-migrate's files a `.go` file is not a migration to anyone.
    assert!(read(&[("1_a.up.sql", b"select 1;"), ("2_b.go", b"package m")]).is_ok());
}
