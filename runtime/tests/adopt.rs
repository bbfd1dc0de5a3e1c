//! Adopting databases that other tools migrated, against a real PostgreSQL server: each test
//! builds the other tool's history table (the real tool where it is a Rust crate: sqlx and
//! refinery; the others' documented DDL and rows, written the way the tool writes them), adopts
//! it, and checks that the next `up` applies exactly what that tool would have applied next.
//!
//! diesel's table is written by hand too: `diesel_migrations` with PostgreSQL links libpq (a
//! system library every test build would then need) and is a heavy compile; its DDL and what it
//! records (the directory name's version, dashes removed) are as in diesel_migrations' source.

use std::fs;
use std::path::Path;

use preflight_runtime::adopt::{flyway_checksum, AdoptError};
use preflight_runtime::testing::TestDatabase;
use preflight_runtime::{Adopt, Error, MigrationSpec, Migrations, Tool, Version};

/// Five migrations; the other tool applied some of them first.
const FIVE: [(u64, &str, &str); 5] = [
    (1, "users", "CREATE TABLE users (id int PRIMARY KEY);\n"),
    (2, "email", "ALTER TABLE users ADD email text;\n"),
    (3, "posts", "CREATE TABLE posts (id int);\n"),
    (4, "tags", "CREATE TABLE tags (id int);\n"),
    (5, "likes", "CREATE TABLE likes (id int);\n"),
];

fn set_of(list: &[(u64, &str, &str)]) -> Migrations {
    Migrations::from_specs(
        list.iter()
            .map(|(v, name, sql)| MigrationSpec::new(*v, name, sql))
            .collect(),
    )
    .unwrap()
}

fn five() -> Migrations {
    set_of(&FIVE)
}

fn vs(list: &[u64]) -> Vec<Version> {
    list.iter().map(|&n| Version::new(n)).collect()
}

/// Runs the SQL of these migrations, as the other tool did.
fn apply_sql(client: &mut postgres::Client, versions: &[u64]) {
    for (v, _, sql) in FIVE {
        if versions.contains(&v) {
            client.batch_execute(sql).unwrap();
        }
    }
}

fn count(client: &mut postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0)
}

/// (version, applied_by) of Preflight's history, in version order.
fn history(client: &mut postgres::Client) -> Vec<(Version, String)> {
    let mut rows: Vec<(Version, String)> = client
        .query("SELECT version, applied_by FROM preflight_history", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0).parse().unwrap(), r.get(1)))
        .collect();
    rows.sort();
    rows
}

/// (version, repaired) of the history rows whose `repaired` column records something.
fn notes(client: &mut postgres::Client) -> Vec<(Version, String)> {
    let mut rows: Vec<(Version, String)> = client
        .query(
            "SELECT version, repaired FROM preflight_history WHERE repaired IS NOT NULL",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0).parse().unwrap(), r.get(1)))
        .collect();
    rows.sort();
    rows
}

/// Boots with adoption on, and checks: the versions adopted, the ones applied next (and in
/// which order), how the adopted rows are marked, the log entry, the other table untouched, and
/// that the following boot takes the fast path (checksums and chain recorded right).
fn boot_adopts(
    db: &TestDatabase,
    set: &Migrations,
    adopt: Adopt,
    tool: Tool,
    table: &str,
    adopted: &[u64],
    next: &[u64],
) {
    let mut client = db.connect();
    let before = count(&mut client, &format!("\"{table}\""));
    let report = set.runner().adoption(adopt).run(&mut client).unwrap();
    let got = report.adopted.as_ref().expect("an adoption");
    assert_eq!(got.tool, tool);
    assert_eq!((got.schema.as_str(), got.table.as_str()), ("public", table));
    assert_eq!(got.versions, vs(adopted));
    assert_eq!(report.applied_versions(), vs(next));

    let marked = format!("adopted from {tool} ({table})");
    let rows = history(&mut client);
    assert_eq!(rows.len(), adopted.len() + next.len());
    for (version, by) in &rows {
        if adopted.iter().any(|&a| Version::new(a) == *version) {
            assert_eq!(by, &marked, "row {version}");
        } else {
            assert!(!by.starts_with("adopted"), "row {version}: {by}");
        }
    }
    // Each adopted row records where it came from.
    let entries = notes(&mut client);
    assert_eq!(
        entries.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        vs(adopted),
        "{entries:?}"
    );
    for (_, note) in &entries {
        assert!(
            note.starts_with(&format!("adopted from {tool}'s table public.{table} by ")),
            "{note}"
        );
    }
    assert_eq!(count(&mut client, &format!("\"{table}\"")), before);

    let again = set.runner().adoption(adopt).run(&mut client).unwrap();
    assert!(again.fast_path, "{again:?}");
    assert!(again.adopted.is_none());
}

/// A refusal writes nothing: no history row, no log entry.
fn refused(db: &TestDatabase, set: &Migrations, adopt: Adopt) -> AdoptError {
    let mut client = db.connect();
    let err = set.runner().adoption(adopt).run(&mut client).unwrap_err();
    assert_eq!(count(&mut client, "preflight_history"), 0);
    match err {
        Error::Adopt(e) => {
            assert!(err_text(&e).contains("adopt"), "{e}");
            e
        }
        other => panic!("expected an adoption refusal, got {other}"),
    }
}

fn err_text(e: &AdoptError) -> String {
    Error::Adopt(e.clone()).to_string()
}

// ---- golang-migrate ----

/// golang-migrate's table and its one row, as its PostgreSQL driver writes them.
fn golang_migrate(client: &mut postgres::Client, version: i64, dirty: bool) {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS \"schema_migrations\" \
             (version bigint not null primary key, dirty boolean not null)",
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO \"schema_migrations\" (version, dirty) VALUES ($1, $2)",
            &[&version, &dirty],
        )
        .unwrap();
}

#[test]
fn golang_migrate_counts_every_file_up_to_its_version() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2, 3]);
    golang_migrate(&mut client, 3, false);
    // golang-migrate's `up` would run the files after 3: 4, then 5.
    boot_adopts(
        &db,
        &five(),
        Adopt::Auto,
        Tool::GolangMigrate,
        "schema_migrations",
        &[1, 2, 3],
        &[4, 5],
    );
}

#[test]
fn golang_migrate_dirty_is_refused() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2]);
    golang_migrate(&mut client, 3, true);
    let e = refused(&db, &five(), Adopt::From(Tool::GolangMigrate));
    assert!(
        matches!(&e, AdoptError::Unfinished { state: "dirty", version, .. } if version == "3"),
        "{e}"
    );
    assert!(err_text(&e).contains("golang-migrate says migration 3 is dirty"));
}

#[test]
fn golang_migrate_version_without_a_file_is_refused() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2, 3]);
    golang_migrate(&mut client, 7, false);
    let e = refused(&db, &five(), Adopt::Auto);
    assert!(
        matches!(&e, AdoptError::NoFile { version, .. } if version == "7"),
        "{e}"
    );
}

#[test]
fn dbmate_or_rails_schema_migrations_is_not_golang_migrate() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY);
             INSERT INTO schema_migrations VALUES ('20240101000000');",
        )
        .unwrap();
    let found = five().plan(&mut client).unwrap().foreign;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tool, None);
    let e = refused(&db, &five(), Adopt::Auto);
    assert!(matches!(e, AdoptError::UnknownTool { .. }), "{e}");
    assert!(err_text(&e).contains("preflight baseline"), "{e}");
}

// ---- goose ----

/// goose v3's PostgreSQL table, its version-0 marker row, then one row per version.
fn goose(client: &mut postgres::Client, table: &str, rows: &[(i64, bool)]) {
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{table}\" (id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, \
             version_id bigint NOT NULL, is_applied boolean NOT NULL, \
             tstamp timestamp NOT NULL DEFAULT now());
             INSERT INTO \"{table}\" (version_id, is_applied) VALUES (0, true);"
        ))
        .unwrap();
    for (version, applied) in rows {
        client
            .execute(
                &format!("INSERT INTO \"{table}\" (version_id, is_applied) VALUES ($1, $2)"),
                &[version, applied],
            )
            .unwrap();
    }
}

#[test]
fn goose_applied_versions_are_adopted() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2, 3]);
    goose(
        &mut client,
        "goose_db_version",
        &[(1, true), (2, true), (3, true)],
    );
    boot_adopts(
        &db,
        &five(),
        Adopt::From(Tool::Goose),
        Tool::Goose,
        "goose_db_version",
        &[1, 2, 3],
        &[4, 5],
    );
}

#[test]
fn goose_newest_row_per_version_wins() {
    // Older goose recorded a rollback as a new row with is_applied = false: 3 was rolled back,
    // so goose's next `up` runs 3 again, then 4 and 5.
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2]);
    goose(
        &mut client,
        "goose_db_version",
        &[(1, true), (2, true), (3, true), (3, false)],
    );
    boot_adopts(
        &db,
        &five(),
        Adopt::Auto,
        Tool::Goose,
        "goose_db_version",
        &[1, 2],
        &[3, 4, 5],
    );
}

#[test]
fn goose_missing_version_is_refused_then_allowed_like_goose() {
    // 1 and 3 applied, 2 never: goose's `up` refuses ("found 1 missing migrations"), and with
    // allow-missing applies 2 first, then 4 and 5. So does Preflight, as out-of-order.
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 3]);
    goose(&mut client, "goose_db_version", &[(1, true), (3, true)]);
    let set = five();
    let err = set
        .runner()
        .adoption(Adopt::Auto)
        .run(&mut client)
        .unwrap_err();
    assert!(
        matches!(&err, Error::OutOfOrder { pending, .. } if *pending == vs(&[2])),
        "{err}"
    );
    // The adoption itself was committed (it is correct); the plan refused before applying.
    assert_eq!(
        history(&mut client).iter().map(|r| r.0).collect::<Vec<_>>(),
        vs(&[1, 3])
    );
    let report = set
        .runner()
        .adoption(Adopt::Auto)
        .out_of_order(true)
        .run(&mut client)
        .unwrap();
    assert!(report.adopted.is_none());
    assert_eq!(report.applied_versions(), vs(&[2, 4, 5]));
}

#[test]
fn goose_table_under_another_name_is_recognised_by_its_columns() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1]);
    goose(&mut client, "app_db_version", &[(1, true)]);
    let found = five().plan(&mut client).unwrap().foreign;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tool, Some(Tool::Goose));
    boot_adopts(
        &db,
        &five(),
        Adopt::Auto,
        Tool::Goose,
        "app_db_version",
        &[1],
        &[2, 3, 4, 5],
    );
}

#[test]
fn goose_version_without_a_file_is_refused() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    goose(&mut client, "goose_db_version", &[(1, true), (9, true)]);
    let e = refused(&db, &five(), Adopt::Auto);
    assert!(
        matches!(&e, AdoptError::NoFile { version, .. } if version == "9"),
        "{e}"
    );
    assert!(err_text(&e).contains("restore its file"), "{e}");
}

#[test]
fn goose_with_only_its_marker_applies_everything() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    goose(&mut client, "goose_db_version", &[]);
    boot_adopts(
        &db,
        &five(),
        Adopt::Auto,
        Tool::Goose,
        "goose_db_version",
        &[],
        &[1, 2, 3, 4, 5],
    );
}

// ---- sqlx (the real crate) ----

fn write_files(dir: &Path, list: &[(u64, &str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (v, name, sql) in list {
        fs::write(dir.join(format!("{v}_{name}.sql")), sql).unwrap();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// sqlx migrates the database with the files in `dir`.
fn sqlx_migrate(url: &str, dir: &Path) {
    runtime().block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .unwrap();
        let migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
        migrator.run(&pool).await.unwrap();
        pool.close().await;
    });
}

#[test]
fn sqlx_history_is_adopted() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    write_files(tmp.path(), &FIVE[..3]);
    sqlx_migrate(db.url(), tmp.path());
    let mut client = db.connect();
    assert_eq!(count(&mut client, "_sqlx_migrations"), 3);
    boot_adopts(
        &db,
        &five(),
        Adopt::From(Tool::Sqlx),
        Tool::Sqlx,
        "_sqlx_migrations",
        &[1, 2, 3],
        &[4, 5],
    );
}

#[test]
fn sqlx_refusals_edited_file_failed_migration_missing_file() {
    let db = TestDatabase::empty();
    let tmp = tempfile::tempdir().unwrap();
    write_files(tmp.path(), &FIVE[..3]);
    sqlx_migrate(db.url(), tmp.path());

    let mut edited = FIVE;
    edited[1].2 = "ALTER TABLE users ADD email text NOT NULL DEFAULT '';\n";
    let e = refused(&db, &set_of(&edited), Adopt::Auto);
    assert!(
        matches!(&e, AdoptError::Disagree { version, .. } if *version == Version::new(2)),
        "{e}"
    );
    assert!(err_text(&e).contains("SHA-384"), "{e}");

    let mut renamed = FIVE;
    renamed[2].1 = "articles";
    let e = refused(&db, &set_of(&renamed), Adopt::Auto);
    assert!(err_text(&e).contains("named `posts` there"), "{e}");

    let without_two: Vec<_> = FIVE.iter().copied().filter(|m| m.0 != 2).collect();
    let e = refused(&db, &set_of(&without_two), Adopt::Auto);
    assert!(
        matches!(&e, AdoptError::NoFile { version, .. } if version == "2"),
        "{e}"
    );

    db.connect()
        .batch_execute("UPDATE _sqlx_migrations SET success = false WHERE version = 3")
        .unwrap();
    let e = refused(&db, &five(), Adopt::Auto);
    assert!(
        matches!(&e, AdoptError::Unfinished { state: "failed", version, .. } if version == "3"),
        "{e}"
    );
}

// ---- refinery (the real crate) ----

fn refinery_migrate(url: &str, list: &[(u64, &str, &str)]) {
    runtime().block_on(async {
        let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(connection);
        let migrations: Vec<refinery::Migration> = list
            .iter()
            .map(|(v, name, sql)| refinery::Migration::unapplied(&format!("V{v}__{name}"), sql))
            .collect::<Result<_, _>>()
            .unwrap();
        refinery::Runner::new(&migrations)
            .run_async(&mut client)
            .await
            .unwrap();
        drop(client);
        task.await.unwrap().unwrap();
    });
}

#[test]
fn refinery_history_is_adopted() {
    let db = TestDatabase::empty();
    refinery_migrate(db.url(), &FIVE[..3]);
    boot_adopts(
        &db,
        &five(),
        Adopt::From(Tool::Refinery),
        Tool::Refinery,
        "refinery_schema_history",
        &[1, 2, 3],
        &[4, 5],
    );
}

#[test]
fn refinery_edited_or_renamed_file_is_refused() {
    let db = TestDatabase::empty();
    refinery_migrate(db.url(), &FIVE[..3]);
    let mut edited = FIVE;
    edited[2].2 = "CREATE TABLE posts (id bigint);\n";
    let e = refused(&db, &set_of(&edited), Adopt::Auto);
    assert!(
        matches!(&e, AdoptError::Disagree { version, .. } if *version == Version::new(3)),
        "{e}"
    );
    assert!(err_text(&e).contains("refinery's checksum"), "{e}");
    let mut renamed = FIVE;
    renamed[0].1 = "accounts";
    let e = refused(&db, &set_of(&renamed), Adopt::Auto);
    assert!(err_text(&e).contains("named `users` there"), "{e}");
}

// ---- diesel (its table written by hand, see the module comment) ----

#[test]
fn diesel_versions_are_directory_names_without_dashes() {
    // diesel's directories `2024-01-01-000001_users`, ...: it records `20240101000001`.
    // `00000000000000_diesel_initial_setup` is what `diesel setup` creates.
    let dated: Vec<(u64, &str, &str)> = std::iter::once((
        0u64,
        "diesel_initial_setup",
        "CREATE FUNCTION diesel_noop() RETURNS void AS 'SELECT 1' LANGUAGE sql;\n",
    ))
    .chain(
        FIVE.iter()
            .map(|(v, name, sql)| (20240101000000 + v, *name, *sql)),
    )
    .collect();
    let set = set_of(&dated);
    let db = TestDatabase::empty();
    let mut client = db.connect();
    client.batch_execute(dated[0].2).unwrap();
    apply_sql(&mut client, &[1, 2]);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
               version VARCHAR(50) PRIMARY KEY NOT NULL,
               run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
             );
             INSERT INTO __diesel_schema_migrations (version) VALUES
               ('00000000000000'), ('20240101000001'), ('20240101000002');",
        )
        .unwrap();
    boot_adopts(
        &db,
        &set,
        Adopt::From(Tool::Diesel),
        Tool::Diesel,
        "__diesel_schema_migrations",
        &[0, 20240101000001, 20240101000002],
        &[20240101000003, 20240101000004, 20240101000005],
    );
}

// ---- Flyway (its documented PostgreSQL table and rows) ----

fn flyway_table(client: &mut postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE \"flyway_schema_history\" (
               \"installed_rank\" INT NOT NULL,
               \"version\" VARCHAR(50),
               \"description\" VARCHAR(200) NOT NULL,
               \"type\" VARCHAR(20) NOT NULL,
               \"script\" VARCHAR(1000) NOT NULL,
               \"checksum\" INTEGER,
               \"installed_by\" VARCHAR(100) NOT NULL,
               \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),
               \"execution_time\" INTEGER NOT NULL,
               \"success\" BOOLEAN NOT NULL
             );
             ALTER TABLE \"flyway_schema_history\" ADD CONSTRAINT \"flyway_schema_history_pk\"
               PRIMARY KEY (\"installed_rank\");",
        )
        .unwrap();
}

/// One row: (rank, version, description, type, script, checksum, success).
fn flyway_row(
    client: &mut postgres::Client,
    row: (i32, Option<&str>, &str, &str, &str, Option<i32>, bool),
) {
    let (rank, version, description, kind, script, checksum, success) = row;
    client
        .execute(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, \
             script, checksum, installed_by, execution_time, success) \
             VALUES ($1, $2, $3, $4, $5, $6, 'postgres', 7, $7)",
            &[
                &rank,
                &version,
                &description,
                &kind,
                &script,
                &checksum,
                &success,
            ],
        )
        .unwrap();
}

fn crc(v: u64) -> Option<i32> {
    FIVE.iter().find(|m| m.0 == v).map(|m| flyway_checksum(m.2))
}

#[test]
fn flyway_baseline_and_applied_versions_are_adopted() {
    // Baselined at 2 (1 and 2 existed before Flyway), then V3 applied; a repeatable migration
    // (no version) is not a versioned one. Flyway's next `migrate` runs V4 and V5.
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2, 3]);
    flyway_table(&mut client);
    flyway_row(
        &mut client,
        (
            1,
            Some("2"),
            "<< Flyway Baseline >>",
            "BASELINE",
            "<< Flyway Baseline >>",
            None,
            true,
        ),
    );
    flyway_row(
        &mut client,
        (2, Some("3"), "posts", "SQL", "V3__posts.sql", crc(3), true),
    );
    flyway_row(
        &mut client,
        (3, None, "views", "SQL", "R__views.sql", Some(42), true),
    );
    boot_adopts(
        &db,
        &five(),
        Adopt::From(Tool::Flyway),
        Tool::Flyway,
        "flyway_schema_history",
        &[1, 2, 3],
        &[4, 5],
    );
}

#[test]
fn flyway_refusals_failed_and_changed_checksum() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2]);
    flyway_table(&mut client);
    flyway_row(
        &mut client,
        (1, Some("1"), "users", "SQL", "V1__users.sql", crc(1), true),
    );
    flyway_row(
        &mut client,
        (
            2,
            Some("2"),
            "email",
            "SQL",
            "V2__email.sql",
            crc(2).map(|c| c ^ 1),
            true,
        ),
    );
    let e = refused(&db, &five(), Adopt::Auto);
    assert!(
        matches!(&e, AdoptError::Disagree { version, .. } if *version == Version::new(2)),
        "{e}"
    );
    assert!(err_text(&e).contains("Flyway's checksum"), "{e}");

    client
        .batch_execute("UPDATE flyway_schema_history SET checksum = NULL WHERE installed_rank = 2")
        .unwrap();
    flyway_row(
        &mut client,
        (3, Some("3"), "posts", "SQL", "V3__posts.sql", crc(3), false),
    );
    let e = refused(&db, &five(), Adopt::Auto);
    assert!(
        matches!(&e, AdoptError::Unfinished { state: "failed", version, .. } if version == "3"),
        "{e}"
    );
}

// ---- choosing, explicit adoption, the defaults ----

#[test]
fn several_tools_need_from_and_from_picks_one() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2]);
    goose(&mut client, "goose_db_version", &[(1, true), (2, true)]);
    golang_migrate(&mut client, 1, false);
    let e = refused(&db, &five(), Adopt::Auto);
    assert!(matches!(e, AdoptError::Ambiguous { .. }), "{e}");
    let e = refused(&db, &five(), Adopt::From(Tool::Flyway));
    assert!(matches!(e, AdoptError::NotFound { .. }), "{e}");
    assert!(err_text(&e).contains("found:"), "{e}");
    boot_adopts(
        &db,
        &five(),
        Adopt::From(Tool::Goose),
        Tool::Goose,
        "goose_db_version",
        &[1, 2],
        &[3, 4, 5],
    );
}

#[test]
fn explicit_adoption_applies_nothing_and_preview_writes_nothing() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2, 3]);
    goose(
        &mut client,
        "goose_db_version",
        &[(1, true), (2, true), (3, true)],
    );
    let set = five();

    let preview = set.plan_adopt(&mut client).unwrap().adopted.unwrap();
    assert_eq!(preview.versions, vs(&[1, 2, 3]));
    assert_eq!(preview.tool, Tool::Goose);
    assert!(set.runner().history(&mut client).unwrap().is_empty());

    let report = set.runner().adopt(&mut client).unwrap();
    assert_eq!(report.adopted.unwrap().versions, vs(&[1, 2, 3]));
    assert!(report.applied.is_empty());
    assert_eq!(count(&mut client, "preflight_history"), 3);

    // Once the history has rows, adoption is not attempted again.
    let again = set.runner().adopt(&mut client).unwrap();
    assert!(again.adopted.is_none());
    assert_eq!(notes(&mut client).len(), 3);

    // The default runner (adoption off) now simply continues.
    let report = set.runner().run(&mut client).unwrap();
    assert_eq!(report.applied_versions(), vs(&[4, 5]));
}

#[test]
fn explicit_adoption_without_a_foreign_table_is_refused() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let err = five().runner().adopt(&mut client).unwrap_err();
    assert!(
        matches!(err, Error::Adopt(AdoptError::NotFound { tool: None, .. })),
        "{err}"
    );
    assert_eq!(count(&mut client, "preflight_history"), 0);
}

#[test]
fn boot_adoption_on_a_fresh_database_migrates_as_usual() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let report = five()
        .runner()
        .adoption(Adopt::From(Tool::Goose))
        .run(&mut client)
        .unwrap();
    assert!(report.adopted.is_none());
    assert_eq!(report.applied_versions(), vs(&[1, 2, 3, 4, 5]));
}

#[test]
fn adoption_is_off_by_default() {
    // The other table is not looked at: everything is applied (here the other tool's table
    // was created but none of its migrations ran, so this succeeds).
    let db = TestDatabase::empty();
    let mut client = db.connect();
    goose(&mut client, "goose_db_version", &[(1, true)]);
    let report = five().runner().run(&mut client).unwrap();
    assert!(report.adopted.is_none());
    assert_eq!(report.applied_versions(), vs(&[1, 2, 3, 4, 5]));
}

#[test]
fn async_boot_adopts_too() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2]);
    golang_migrate(&mut client, 2, false);
    let set = five();
    let report = runtime().block_on(async {
        let (mut client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(connection);
        let found = set.plan_async(&mut client).await.unwrap().foreign;
        assert_eq!(found.len(), 1);
        let preview = set
            .plan_adopt_async(&mut client)
            .await
            .unwrap()
            .adopted
            .unwrap();
        assert_eq!(preview.versions, vs(&[1, 2]));
        let report = set
            .runner()
            .adoption(Adopt::Auto)
            .run_async(&mut client)
            .await
            .unwrap();
        drop(client);
        task.await.unwrap().unwrap();
        report
    });
    assert_eq!(report.adopted.as_ref().unwrap().versions, vs(&[1, 2]));
    assert_eq!(report.applied_versions(), vs(&[3, 4, 5]));
}

#[test]
fn replicas_booting_together_adopt_once() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    apply_sql(&mut client, &[1, 2, 3]);
    goose(
        &mut client,
        "goose_db_version",
        &[(1, true), (2, true), (3, true)],
    );
    let set = five();
    let start = std::sync::Barrier::new(4);
    let reports: Vec<preflight_runtime::Report> = std::thread::scope(|s| {
        let replicas: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut c = db.connect();
                    start.wait();
                    set.runner().adoption(Adopt::Auto).run(&mut c).unwrap()
                })
            })
            .collect();
        replicas.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let adoptions: Vec<_> = reports.iter().filter_map(|r| r.adopted.as_ref()).collect();
    assert_eq!(adoptions.len(), 1, "{reports:?}");
    assert_eq!(adoptions[0].versions, vs(&[1, 2, 3]));
    let mut applied: Vec<Version> = reports.iter().flat_map(|r| r.applied_versions()).collect();
    applied.sort();
    assert_eq!(applied, vs(&[4, 5]));
    assert_eq!(count(&mut client, "preflight_history"), 5);
    assert_eq!(notes(&mut client).len(), 3, "adopted once");
}

#[test]
fn adoption_fills_one_set_of_a_composition() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    // goose migrated the application's 1..3; the library's set is new.
    apply_sql(&mut client, &[1, 2, 3]);
    goose(
        &mut client,
        "goose_db_version",
        &[(1, true), (2, true), (3, true)],
    );
    let app = five().named("app");
    let library = Migrations::from_specs(vec![preflight_runtime::MigrationSpec::new(
        1,
        "library",
        "CREATE TABLE library_things (id int);",
    )])
    .unwrap()
    .named("library");
    let all = preflight_runtime::compose([&app, &library]).unwrap();
    // A composition of several sets: the set to adopt into is named.
    let err = all
        .runner()
        .adoption(Adopt::From(Tool::Goose))
        .adopt(&mut client)
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    let report = all
        .runner()
        .set("app")
        .adoption(Adopt::From(Tool::Goose))
        .adopt(&mut client)
        .unwrap();
    assert_eq!(report.adopted.unwrap().versions, vs(&[1, 2, 3]));
    let rows = all.history(&mut client).unwrap();
    assert!(rows.iter().all(|r| r.set == "app"), "{rows:?}");
    // Then the composition migrates as usual: the rest of app, and the library's set.
    let report = all.run(&mut client).unwrap();
    let applied: Vec<(String, Version)> = report
        .applied
        .iter()
        .map(|a| (a.set.clone(), a.version))
        .collect();
    assert_eq!(
        applied,
        [
            ("app".to_owned(), Version::new(4)),
            ("app".to_owned(), Version::new(5)),
            ("library".to_owned(), Version::new(1))
        ]
    );
    // Once the set has rows, adoption is not attempted again for it.
    let again = all
        .runner()
        .set("app")
        .adoption(Adopt::From(Tool::Goose))
        .adopt(&mut client)
        .unwrap();
    assert!(again.adopted.is_none());
}
