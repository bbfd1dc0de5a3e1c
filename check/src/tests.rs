//! Whole-directory checks over the fixtures of the root package's `tests/fixtures`, one per trap
//! of real migration directories (notes/real-world-migrations.md) and per error class. The same
//! fixtures are embedded by the trybuild tests (`tests/compile.rs`).

use super::*;
use std::path::PathBuf;

use preflight_runtime::Checksum;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn check_with(name: &str, opts: &Options) -> Result<Checked, Vec<Diagnostic>> {
    check_dir(&fixture(name), &format!("fixtures/{name}"), opts)
}

fn ok(name: &str) -> Migrations {
    match check_with(name, &Options::default()) {
        Ok(c) => c.into_migrations(),
        Err(e) => panic!("{name}:\n{}", Report(&e)),
    }
}

fn errors(name: &str) -> Vec<String> {
    match check_with(name, &Options::default()) {
        Ok(_) => panic!("{name} passed"),
        Err(e) => e.iter().map(|d| d.to_string()).collect(),
    }
}

fn versions(set: &Migrations) -> Vec<String> {
    set.iter().map(|m| m.version().to_string()).collect()
}

#[test]
fn versions_order_numerically_in_every_layout() {
    assert_eq!(versions(&ok("simple")), ["1", "2", "10", "20240131120000"]);
    assert_eq!(versions(&ok("gaps")), ["1", "10", "20", "900"]);
    assert_eq!(versions(&ok("flyway")), ["1", "1.2", "1.11", "2"]);
    assert_eq!(
        versions(&ok("diesel")),
        ["0", "20190101120000", "20190102090000"]
    );
    assert_eq!(versions(&ok("updown")), ["1", "2"]);
    assert_eq!(versions(&ok("goose")), ["1", "2"]);
}

#[test]
fn no_transaction_markers_of_every_kind() {
    let kinds = |set: &Migrations| -> Vec<Kind> { set.iter().map(|m| m.up().kind()).collect() };
    // sqlx: `-- no-transaction` on the first line.
    assert_eq!(
        kinds(&ok("updown")),
        [Kind::Transactional, Kind::NoTransaction]
    );
    // goose: NO TRANSACTION applies to both sections.
    let goose = ok("goose");
    assert_eq!(kinds(&goose), [Kind::Transactional, Kind::NoTransaction]);
    assert_eq!(
        goose.as_slice()[1].down().map(Body::kind),
        Some(Kind::NoTransaction)
    );
    // diesel: metadata.toml, on a file that mixes statements.
    assert_eq!(
        kinds(&ok("diesel")),
        [
            Kind::Transactional,
            Kind::Transactional,
            Kind::NoTransaction
        ]
    );
    // preflight's own marker, and no marker at all on a lone CREATE INDEX CONCURRENTLY.
    let traps = ok("traps");
    assert_eq!(traps.as_slice()[3].up().kind(), Kind::NoTransaction);
    assert_eq!(
        traps.as_slice()[3].down().map(Body::kind),
        Some(Kind::NoTransaction)
    );
    assert_eq!(traps.as_slice()[5].up().kind(), Kind::NoTransaction);
    assert_eq!(traps.as_slice()[5].up().statement_count(), 2);
}

#[test]
fn goose_sections_split_with_dollar_quotes() {
    let goose = ok("goose");
    let users = &goose.as_slice()[0];
    let up: Vec<&str> = users.up().statements().collect();
    assert_eq!(up.len(), 2);
    assert!(up[1].starts_with("CREATE FUNCTION touch()"), "{up:?}");
    assert!(up[1].ends_with("$$ LANGUAGE plpgsql;"), "{up:?}");
    let down: Vec<&str> = users.down().unwrap().statements().collect();
    assert_eq!(down, ["DROP FUNCTION touch();", "DROP TABLE users;"]);
    // The checksum covers the whole file, both sections.
    let text = std::fs::read_to_string(fixture("goose/00001_users.sql")).unwrap();
    assert_eq!(users.checksum(), Checksum::of(&text));
}

#[test]
fn traps_of_real_directories() {
    let traps = ok("traps");
    let m = traps.as_slice();
    // Zero-byte and comment-only files are no-ops.
    assert_eq!(m[0].up().statement_count(), 0);
    assert_eq!(m[1].up().statement_count(), 0);
    assert_eq!(m[1].up().script(), None);
    // A file's own BEGIN/COMMIT is replaced by Preflight's transaction.
    let own: Vec<&str> = m[2].up().statements().collect();
    assert_eq!(own.len(), 3);
    assert!(own[0].starts_with("CREATE TABLE orders"));
    assert_eq!(m[2].up().kind(), Kind::Transactional);
    assert_eq!(
        m[2].down().unwrap().statements().collect::<Vec<_>>(),
        ["DROP TABLE orders;"]
    );
    // Function bodies in quotes and BEGIN ATOMIC keep their `;`; session SET is a statement.
    let bodies: Vec<&str> = m[4].up().statements().collect();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert_eq!(bodies[0], "SET timezone = 'UTC';");
    assert!(bodies[2].ends_with("END;"));
}

#[test]
fn crlf_and_bom_do_not_change_the_checksum() {
    let lf = ok("line_endings_lf");
    let crlf = ok("line_endings_crlf");
    assert_eq!(lf.as_slice()[0].checksum(), crlf.as_slice()[0].checksum());
    assert_eq!(lf.last().unwrap().chain(), crlf.last().unwrap().chain());
    // Statements exclude the BOM.
    assert!(crlf.as_slice()[0]
        .up()
        .statements()
        .next()
        .unwrap()
        .starts_with("CREATE"));
}

#[test]
fn embedded_and_run_time_sets_agree() {
    let set = ok("simple");
    let mut chain = Checksum::ZERO;
    for m in set.iter() {
        let text =
            std::fs::read_to_string(fixture("simple").join(m.path().rsplit('/').next().unwrap()))
                .unwrap();
        assert_eq!(m.checksum(), Checksum::of(&text));
        chain = chain.chain(m.version(), &m.checksum());
        assert_eq!(m.chain(), chain);
    }
    assert_eq!(set.as_slice()[0].path(), "fixtures/simple/1_a.sql");
}

#[test]
fn every_error_names_its_file_and_says_what_to_do() {
    let cases: &[(&str, &[&str])] = &[
        ("bad_names", &["fixtures/bad_names/1-foo.sql: error: not a migration name", "fixtures/bad_names/V1_foo.sql: error:"]),
        ("duplicate_version", &["duplicate version 1: `fixtures/duplicate_version/1_a.sql` and `fixtures/duplicate_version/1_b.sql`"]),
        ("mixed_layouts", &["fixtures/mixed_layouts: error: the directory mixes layouts"]),
        ("down_without_up", &["fixtures/down_without_up/2_b.down.sql: error: a down migration without an up migration"]),
        ("non_utf8", &["fixtures/non_utf8/2_latin1.sql:1:7: error: the file is not valid UTF-8"]),
        ("syntax_error", &["fixtures/syntax_error/2_email.sql:4:15: error: syntax error: expected name\n  |\n4 |     ADD COLUMN;\n  |               ^"]),
        ("down_syntax_error", &["fixtures/down_syntax_error/1_users_email.down.sql:1:15: error: syntax error"]),
        ("psql", &["1_setup.sql:1:1: error: psql meta-command `\\connect`", "1_setup.sql:3:8: error: psql variable `:'schema'`", "1_setup.sql:4:1: error: `COPY ... FROM stdin`"]),
        ("mixed_transaction", &["1_users.sql:2:1: error: `CREATE INDEX CONCURRENTLY` cannot run inside a transaction"]),
        ("transaction_control", &["1_half.sql:2:1: error: `COMMIT` in a file that manages its own transactions: there is no `BEGIN` before it", "2_marked.sql:2:1: error: `SAVEPOINT a` in a no-transaction migration"]),
        ("unknown_directive", &["1_a.sql:1:1: error: unknown directive `-- preflight:no-transacton`"]),
        ("unknown_allow", &["1_a.sql:1:20: error: unknown lint rule `ban-drop-tabel`"]),
        ("messy", &["20200101_create_b.sql: error: duplicate version 20200101", "20200102-create-d.sql: error: not a migration name", "20200103_alter_a.sql:1:25: error: syntax error"]),
    ];
    for (name, expected) in cases {
        let found = errors(name);
        assert_eq!(found.len(), expected.len(), "{name}: {found:#?}");
        for (f, e) in found.iter().zip(expected.iter()) {
            assert!(f.contains(e), "{name}: expected `{e}` in\n{f}");
        }
    }
}

#[test]
fn a_missing_directory_is_an_error() {
    let e = errors("does_not_exist");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].contains("the migration directory does not exist"),
        "{e:?}"
    );
}

#[test]
fn lints_warn_deny_allow_and_since() {
    let warn = check_with("lints", &Options::default()).unwrap();
    let rules: Vec<(&str, Option<&str>)> = warn
        .warnings()
        .iter()
        .map(|d| (d.path.as_str(), d.rule.as_deref()))
        .collect();
    // The CREATE INDEX on a table created in the same file is not a finding (squawk knows the
    // table is new), the one in 3_allowed.sql is allowed by its directive.
    assert_eq!(
        rules,
        [(
            "fixtures/lints/2_index.sql",
            Some("require-concurrent-index-creation")
        )]
    );

    let deny = check_with("lints", &Options::default().lints(LintLevel::Deny)).unwrap_err();
    assert_eq!(deny.len(), 1);
    assert_eq!(deny[0].level, Level::Error);

    let allow = check_with("lints", &Options::default().lints(LintLevel::Allow)).unwrap();
    assert!(allow.warnings().is_empty());

    let since = Options::default().lint_since(Version::new(2));
    assert!(check_with("lints", &since).unwrap().warnings().is_empty());
    let since = Options::default().lint_since(Version::new(1));
    assert_eq!(check_with("lints", &since).unwrap().warnings().len(), 1);
}

#[test]
fn down_bodies_are_not_linted() {
    // updown's down drops a table (ban-drop-table), traps' downs too: no warning from them.
    let c = check_with("traps", &Options::default()).unwrap();
    assert!(
        c.warnings().iter().all(|w| w.path.contains(".up.sql")),
        "{:?}",
        c.warnings()
    );
}

#[test]
fn the_example_migrations_are_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let c = check_dir(&dir, "migrations", &Options::default()).unwrap();
    assert_eq!(c.migrations().len(), 3);
    assert!(c.warnings().is_empty(), "{}", Report(c.warnings()));
}

#[test]
fn large_directories_are_checked_in_parallel_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=(PARALLEL_FROM as u64 * 2 + 3) {
        std::fs::write(
            dir.path().join(format!("{i}_t.sql")),
            format!("CREATE TABLE t{i} (id bigint);\n"),
        )
        .unwrap();
    }
    // Two errors far apart: both reported, in file order.
    std::fs::write(dir.path().join("7_t.sql"), "CREATE TABLE ;x\n").unwrap();
    std::fs::write(dir.path().join("120_t.sql"), "SELEC 1;\n").unwrap();
    let e = check_dir(dir.path(), "m", &Options::default()).unwrap_err();
    let paths: Vec<&str> = e.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["m/7_t.sql", "m/120_t.sql"]);
    std::fs::write(dir.path().join("7_t.sql"), "select 7;\n").unwrap();
    std::fs::write(dir.path().join("120_t.sql"), "select 120;\n").unwrap();
    let set = check_dir(dir.path(), "m", &Options::default())
        .unwrap()
        .into_migrations();
    let versions: Vec<u64> = set.iter().filter_map(|m| m.version().as_u64()).collect();
    assert_eq!(
        versions,
        (1..=PARALLEL_FROM as u64 * 2 + 3).collect::<Vec<_>>()
    );
    assert_eq!(
        set.get(Version::new(120)).unwrap().up().statements().next(),
        Some("select 120;")
    );
}

// Issue #14: one fixture per class of false refusal found in real directories, written in this
// project's own SQL; each was refused before the fix.

#[test]
fn class_1_casts_to_quoted_types_and_other_lexical_traps_pass() {
    let set = ok("real_casts");
    assert_eq!(set.as_slice()[0].up().kind(), Kind::Transactional);
    assert_eq!(set.as_slice()[0].up().statement_count(), 5);
}

#[test]
fn class_2_files_with_their_own_blocks_run_as_scripts() {
    let c = check_with("own_blocks", &Options::default()).unwrap();
    let m = &c.migrations()[0];
    assert_eq!(m.up().kind(), Kind::Script);
    let units: Vec<&str> = m
        .up()
        .statements()
        .iter()
        .map(|s| &m.up().file_text()[s.range()])
        .collect();
    assert_eq!(units.len(), 4, "{units:?}");
    assert!(units[1].starts_with("BEGIN;") && units[1].ends_with("COMMIT;"));
    assert!(units[2].starts_with("BEGIN ISOLATION LEVEL SERIALIZABLE;"));
    assert!(m.up().statements()[1].commit_at().is_some());
    assert_eq!(m.down().unwrap().kind(), Kind::Script);
    // One whole block keeps today's behaviour: Preflight's transaction replaces it.
    assert_eq!(c.migrations()[1].up().kind(), Kind::Transactional);
    // A compile-time note says how each script runs (the up and the down file).
    assert_eq!(c.notes().len(), 2, "{:?}", c.notes());
    assert!(
        c.notes()[0].to_string().contains("runs as a script"),
        "{}",
        c.notes()[0]
    );
    assert_eq!(c.notes()[0].rule.as_deref(), Some(RUNS_AS_SCRIPT));
    let quiet = Options::default().allow(RUNS_AS_SCRIPT).unwrap();
    assert!(check_with("own_blocks", &quiet).unwrap().notes().is_empty());
}

#[test]
fn class_3_files_that_are_not_migrations_are_named_not_refused() {
    let c = check_with("diesel_loose", &Options::default()).unwrap();
    assert_eq!(c.layout(), Some(Layout::Diesel));
    assert_eq!(c.migrations().len(), 2);
    let named: Vec<&str> = c.warnings().iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        named,
        [
            "fixtures/diesel_loose/schema.sql",
            "fixtures/diesel_loose/seed.sql"
        ]
    );
    let allowed = Options::default().allow("not-a-migration").unwrap();
    assert!(check_with("diesel_loose", &allowed)
        .unwrap()
        .warnings()
        .is_empty());
}

#[test]
fn class_4_a_declared_naming_pattern() {
    let names = Options::default().names("V{version}.{name}.{direction}.sql".parse().unwrap());
    let set = check_with("declared", &names).unwrap().into_migrations();
    assert_eq!(versions(&set), ["1", "2"]);
    assert_eq!(set.as_slice()[0].name(), "Initial_Schema");
    assert!(set.as_slice()[1].is_reversible());
    // Without the pattern the names do not parse: every file is an error.
    assert_eq!(errors("declared").len(), 4);
}

#[test]
fn class_5_and_6_pop_versions_and_dialect_files() {
    let set = ok("pop");
    assert_eq!(
        versions(&set),
        [
            "20260703000000000000",
            "20260703000000000001",
            "20260703000000000002"
        ]
    );
    let m = set.as_slice();
    assert!(
        m[0].path().ends_with("_networks.postgres.up.sql"),
        "{}",
        m[0].path()
    );
    assert!(m[0].is_reversible());
    assert!(m[1].path().ends_with("_identities.up.sql"));
    assert_eq!(m[2].up().kind(), Kind::NoTransaction);
    // An empty down file is a valid (no-op) migration body.
    assert_eq!(m[2].down().unwrap().statement_count(), 0);
    assert!(m[0].version() < m[1].version() && m[0].version().as_u64().is_none());
}

#[test]
fn sql_migrate_and_dbmate_sections() {
    let set = ok("sections_sqlmigrate");
    assert_eq!(set.as_slice()[0].up().kind(), Kind::NoTransaction);
    assert_eq!(set.as_slice()[0].up().statement_count(), 2);
    assert_eq!(set.as_slice()[0].down().unwrap().statement_count(), 2);
    assert_eq!(set.as_slice()[1].up().statement_count(), 1);
    let set = ok("sections_dbmate");
    assert_eq!(set.as_slice()[1].up().kind(), Kind::NoTransaction);
    assert_eq!(
        set.as_slice()[0]
            .down()
            .unwrap()
            .statements()
            .collect::<Vec<_>>(),
        ["DROP TABLE notes;"]
    );
}
