//! Drift (issue #20) against real servers: a database migrated by a chain that creates every
//! kind of object drift compares is clean when untouched, and each hand change of each kind
//! is reported as what it is, and nothing else. The scratch database is gone afterwards, on
//! every path.

use std::sync::Mutex;

use preflight_runtime::drift::{Change, Drift};
use preflight_runtime::testing::TestDatabase;
use preflight_runtime::{
    Error, LockStrategy, MigrationSpec, Migrations, Scratch, Version, Warning,
};

/// Drift runs one at a time in this process, so that a test can tell that no scratch
/// database of this process is left.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn set(specs: Vec<MigrationSpec>) -> Migrations {
    Migrations::from_specs(specs).unwrap()
}

fn scratch(db: &TestDatabase) -> Scratch {
    Scratch::postgres(db.url().parse().unwrap(), tokio_postgres::NoTls)
}

/// A chain that creates every kind of object drift compares.
fn chain() -> Vec<MigrationSpec> {
    vec![
        MigrationSpec::new(
            1,
            "types_and_tables",
            r#"
CREATE EXTENSION IF NOT EXISTS citext;
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('happy', 'sad');
CREATE DOMAIN app.email AS citext CHECK (VALUE ~ '@');
CREATE SEQUENCE app.counter START 10;
CREATE TABLE app.accounts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email app.email NOT NULL UNIQUE,
  name text,
  nick text,
  mood app.mood DEFAULT 'happy',
  balance numeric(12,2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
  created timestamptz NOT NULL DEFAULT now(),
  label text GENERATED ALWAYS AS (upper(nick)) STORED,
  seq int DEFAULT nextval('app.counter')
);
CREATE TABLE app.orders (
  id bigint PRIMARY KEY,
  account bigint REFERENCES app.accounts (id),
  total numeric,
  placed date,
  note text,
  code text COLLATE "C"
);
CREATE INDEX orders_account ON app.orders (account);
CREATE UNIQUE INDEX orders_big ON app.orders (id) WHERE total > 100;
CREATE INDEX orders_placed ON app.orders (placed);
"#,
        ),
        MigrationSpec::new(
            2,
            "views_functions_security",
            r#"
CREATE VIEW app.rich AS SELECT id, email FROM app.accounts WHERE balance > 1000;
CREATE MATERIALIZED VIEW app.totals AS SELECT account, sum(total) AS total FROM app.orders GROUP BY account;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.created := now(); RETURN NEW; END $$;
CREATE PROCEDURE app.archive(before date) LANGUAGE sql AS $$ DELETE FROM app.orders WHERE placed < before $$;
CREATE AGGREGATE app.total_of(numeric) (SFUNC = numeric_add, STYPE = numeric);
CREATE TRIGGER accounts_touch BEFORE UPDATE ON app.accounts FOR EACH ROW EXECUTE FUNCTION app.touch();
ALTER TABLE app.accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON app.accounts FOR SELECT TO public USING (name = current_user);
CREATE TABLE app.events (id bigint, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE plain (id int);
"#,
        ),
        MigrationSpec::new(3, "concurrent_index", "")
            .no_transaction(&["CREATE INDEX CONCURRENTLY accounts_nick ON app.accounts (nick)"]),
    ]
}

/// This process's scratch databases still on the server.
fn leftovers(client: &mut postgres::Client) -> Vec<String> {
    let mine = format!("\\_{}\\_", std::process::id());
    client
        .query(
            "SELECT datname::text FROM pg_database \
             WHERE datname LIKE 'preflight\\_drift\\_%' AND datname LIKE '%' || $1 || '%'",
            &[&mine],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn summary(drift: &Drift) -> Vec<(String, String, String)> {
    drift
        .differences
        .iter()
        .map(|d| {
            (
                d.change.as_str().to_owned(),
                d.kind.to_string(),
                d.name.clone(),
            )
        })
        .collect()
}

#[test]
fn an_untouched_database_has_no_drift_on_either_driver() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let m = set(chain());
    // Migrated under the lease: `preflight_history_lease` exists here and not in the scratch
    // database; Preflight's own tables are never drift.
    m.runner()
        .lock(LockStrategy::lease())
        .run(&mut client)
        .unwrap();

    let drift = m.runner().scratch(scratch(&db)).drift(&mut client).unwrap();
    assert!(drift.is_clean(), "{drift}");
    assert_eq!(drift.compared.len(), 3);
    assert!(drift.pending.is_empty() && drift.unknown.is_empty());
    assert!(drift.to_string().starts_with("no drift:"), "{drift}");

    let asynchronous = preflight_runtime::testing::block_on(async {
        let mut client = db.connect_async().await;
        // The future is Send: it can be spawned on a multi-threaded runtime.
        fn assert_send<T: Send>(t: T) -> T {
            t
        }
        let runner = m.runner().scratch(scratch(&db));
        assert_send(runner.drift_async(&mut client)).await
    })
    .unwrap();
    assert_eq!(asynchronous, drift);
    assert_eq!(leftovers(&mut client), Vec::<String>::new());
}

#[test]
fn every_kind_of_hand_change_is_reported_and_nothing_else() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let m = set(chain());
    m.run(&mut client).unwrap();
    client
        .batch_execute(
            r#"
CREATE SCHEMA hotfix;
CREATE EXTENSION pg_trgm;
ALTER TYPE app.mood ADD VALUE 'meh';
ALTER DOMAIN app.email SET NOT NULL;
ALTER SEQUENCE app.counter INCREMENT BY 5;
ALTER TABLE app.accounts FORCE ROW LEVEL SECURITY;
ALTER TABLE app.orders ALTER COLUMN note TYPE varchar(50);
ALTER TABLE app.accounts ALTER COLUMN mood SET DEFAULT 'sad';
ALTER TABLE app.orders ALTER COLUMN placed SET NOT NULL;
ALTER TABLE app.accounts ALTER COLUMN id SET GENERATED BY DEFAULT;
ALTER TABLE app.orders ALTER COLUMN code TYPE text COLLATE "POSIX";
ALTER TABLE app.orders ADD COLUMN hotfix int;
CREATE INDEX hot_fix ON app.accounts (created);
DROP INDEX app.orders_account;
CREATE UNIQUE INDEX orders_account ON app.orders (account);
DROP INDEX app.orders_big;
CREATE UNIQUE INDEX orders_big ON app.orders (id) WHERE total > 500;
DROP INDEX app.orders_placed;
ALTER TABLE app.accounts DROP CONSTRAINT accounts_balance_check;
CREATE OR REPLACE VIEW app.rich AS SELECT id, email FROM app.accounts WHERE balance > 5000;
DROP MATERIALIZED VIEW app.totals;
CREATE OR REPLACE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.created := clock_timestamp(); RETURN NEW; END $$;
DROP PROCEDURE app.archive(date);
ALTER TABLE app.accounts DISABLE TRIGGER accounts_touch;
CREATE POLICY hot_policy ON app.accounts FOR UPDATE USING (true);
"#,
        )
        .unwrap();

    let drift = m.runner().scratch(scratch(&db)).drift(&mut client).unwrap();
    let expected: Vec<(&str, &str, &str)> = vec![
        ("added", "schema", "hotfix"),
        ("added", "extension", "pg_trgm"),
        ("changed", "enum", "app.mood"),
        ("changed", "domain", "app.email"),
        ("changed", "sequence", "app.counter"),
        ("changed", "table", "app.accounts"),
        ("changed", "column", "app.accounts.id"),
        ("changed", "column", "app.accounts.mood"),
        ("changed", "column", "app.orders.code"),
        ("added", "column", "app.orders.hotfix"),
        ("changed", "column", "app.orders.note"),
        ("changed", "column", "app.orders.placed"),
        (
            "removed",
            "constraint",
            "app.accounts.accounts_balance_check",
        ),
        ("added", "index", "app.hot_fix"),
        ("changed", "index", "app.orders_account"),
        ("changed", "index", "app.orders_big"),
        ("removed", "index", "app.orders_placed"),
        ("changed", "view", "app.rich"),
        ("removed", "materialized view", "app.totals"),
        ("changed", "function", "app.touch()"),
        ("removed", "procedure", "app.archive(IN before date)"),
        ("changed", "trigger", "app.accounts.accounts_touch"),
        ("added", "policy", "app.accounts.hot_policy"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .into_iter()
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
        .collect();
    assert_eq!(summary(&drift), expected, "{drift}");

    // What changed, attribute by attribute.
    let changed = |name: &str| -> Vec<(String, Option<String>, Option<String>)> {
        let d = drift.differences.iter().find(|d| d.name == name).unwrap();
        match &d.change {
            Change::Changed(attrs) => attrs
                .iter()
                .map(|a| (a.name.clone(), a.live.clone(), a.built.clone()))
                .collect(),
            other => panic!("{name}: {other:?}"),
        }
    };
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        changed("app.orders.note"),
        [("type".into(), s("character varying(50)"), s("text"))]
    );
    assert_eq!(
        changed("app.accounts.mood"),
        [(
            "default".into(),
            s("'sad'::app.mood"),
            s("'happy'::app.mood")
        )]
    );
    assert_eq!(
        changed("app.orders.placed"),
        [("not null".into(), s("yes"), None)]
    );
    assert_eq!(
        changed("app.accounts.id"),
        [("identity".into(), s("by default"), s("always"))]
    );
    assert_eq!(
        changed("app.orders.code"),
        [(
            "collation".into(),
            s("pg_catalog.\"POSIX\""),
            s("pg_catalog.\"C\"")
        )]
    );
    assert_eq!(
        changed("app.accounts"),
        [(
            "row level security".into(),
            s("enabled, forced"),
            s("enabled")
        )]
    );
    let unique = changed("app.orders_account");
    assert!(
        unique.contains(&("unique".into(), s("yes"), None)),
        "{unique:?}"
    );
    let predicate = changed("app.orders_big");
    assert!(
        predicate.contains(&(
            "predicate".into(),
            s("(total > (500)::numeric)"),
            s("(total > (100)::numeric)")
        )),
        "{predicate:?}"
    );
    assert_eq!(
        changed("app.accounts.accounts_touch"),
        [("enabled".into(), s("disabled"), None)]
    );
    assert_eq!(
        changed("app.mood"),
        [(
            "definition".into(),
            s("'happy', 'sad', 'meh'"),
            s("'happy', 'sad'")
        )]
    );

    // The readable table names each one.
    let text = drift.to_string();
    assert!(text.starts_with("drift: 23 difference(s)"), "{text}");
    assert!(
        text.contains("changed  column             app.orders.note"),
        "{text}"
    );
    assert_eq!(leftovers(&mut client), Vec::<String>::new());
}

#[test]
fn only_applied_migrations_are_built_and_unknown_ones_are_named() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let specs = vec![
        MigrationSpec::new(1, "a", "CREATE TABLE a (id int);"),
        MigrationSpec::new(2, "b", "CREATE TABLE b (id int);"),
        MigrationSpec::new(3, "c", "CREATE TABLE c (id int);"),
    ];
    set(specs.clone())
        .runner()
        .target(2u64)
        .run(&mut client)
        .unwrap();
    // Migration 3 is pending: not built, not drift.
    let drift = set(specs.clone())
        .runner()
        .scratch(scratch(&db))
        .drift(&mut client)
        .unwrap();
    assert!(drift.is_clean(), "{drift}");
    assert_eq!(drift.pending, [Version::new(3)]);

    // An older binary: 3 is applied but unknown to it, and its table shows as added.
    set(specs.clone()).run(&mut client).unwrap();
    let drift = set(specs[..2].to_vec())
        .runner()
        .scratch(scratch(&db))
        .drift(&mut client)
        .unwrap();
    assert_eq!(drift.unknown, [Version::new(3)]);
    assert_eq!(
        summary(&drift),
        [
            ("added".into(), "table".into(), "public.c".into()),
            ("added".into(), "column".into(), "public.c.id".into())
        ]
    );
    assert!(
        drift.to_string().contains("applied but not in this binary"),
        "{drift}"
    );
}

#[test]
fn a_chain_that_fails_on_a_fresh_database_is_an_error_and_leaves_nothing() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let db = TestDatabase::empty();
    let mut client = db.connect();
    // Applied in the live database after a table made by hand, which a fresh one lacks.
    client
        .batch_execute("CREATE TABLE by_hand (id int)")
        .unwrap();
    let m = set(vec![
        MigrationSpec::new(1, "t", "CREATE TABLE t (id int);"),
        MigrationSpec::new(2, "copy", "INSERT INTO t SELECT id FROM by_hand;"),
    ]);
    m.run(&mut client).unwrap();
    let err = m
        .runner()
        .scratch(scratch(&db))
        .drift(&mut client)
        .unwrap_err();
    match &err {
        Error::Scratch(inner) => assert!(
            matches!(**inner, Error::Migration(ref e) if e.version == Version::new(2)),
            "{inner:?}"
        ),
        other => panic!("expected Error::Scratch, got {other:?}"),
    }
    assert!(err.to_string().contains("scratch database"), "{err}");
    assert_eq!(leftovers(&mut client), Vec::<String>::new());

    // Without a scratch server, PostgreSQL cannot build: the error says what to set.
    let err = m.drift(&mut client).unwrap_err();
    assert!(err.to_string().contains("Runner::scratch"), "{err}");
}

#[test]
fn warn_on_drift_adds_a_warning_to_the_boot_and_never_fails_it() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let db = TestDatabase::empty();
    let mut client = db.connect();
    let m = set(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id int);")]);
    m.run(&mut client).unwrap();
    client
        .batch_execute("CREATE INDEX hot_fix ON t (id)")
        .unwrap();
    // Off by default: nothing is built.
    assert!(m.run(&mut client).unwrap().warnings.is_empty());
    let report = m
        .runner()
        .scratch(scratch(&db))
        .warn_on_drift(true)
        .run(&mut client)
        .unwrap();
    let drift = report
        .warnings
        .iter()
        .find_map(|w| match w {
            Warning::Drift(d) => Some(d),
            _ => None,
        })
        .expect("a drift warning");
    assert_eq!(
        summary(drift),
        [("added".into(), "index".into(), "public.hot_fix".into())]
    );
    // No scratch server: the boot goes on, saying why drift was not checked.
    let report = m.runner().warn_on_drift(true).run(&mut client).unwrap();
    assert!(
        matches!(report.warnings.as_slice(), [Warning::DriftUnchecked { reason }] if reason.contains("Runner::scratch")),
        "{report:?}"
    );
    assert_eq!(leftovers(&mut client), Vec::<String>::new());
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_drift_from_sqlite_schema_and_pragmas() {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    let m = set(vec![
        MigrationSpec::new(
            1,
            "t",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT DEFAULT 'x');\n\
             CREATE INDEX users_name ON users (name) WHERE name IS NOT NULL;\n\
             CREATE VIEW named AS SELECT id FROM users WHERE name IS NOT NULL;\n\
             CREATE TRIGGER users_touch AFTER INSERT ON users BEGIN SELECT 1; END;",
        ),
        MigrationSpec::new(2, "col", "ALTER TABLE users ADD COLUMN age INTEGER;"),
    ]);
    m.run(&mut conn).unwrap();
    let clean = m.drift(&mut conn).unwrap();
    assert!(clean.is_clean(), "{clean}");
    conn.execute_batch(
        "CREATE INDEX hot_fix ON users (age);\n\
         ALTER TABLE users ADD COLUMN nick TEXT;\n\
         DROP VIEW named; CREATE VIEW named AS SELECT id, email FROM users;\n\
         DROP TRIGGER users_touch;",
    )
    .unwrap();
    let drift = m.drift(&mut conn).unwrap();
    let expected: Vec<(String, String, String)> = [
        ("changed", "table", "users"),
        ("added", "column", "users.nick"),
        ("added", "index", "hot_fix"),
        ("changed", "view", "named"),
        ("removed", "trigger", "users_touch"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(summary(&drift), expected, "{drift}");
}
