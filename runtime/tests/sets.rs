//! Composed migration sets (a library crate's set beside the application's), against a real
//! PostgreSQL database and a real SQLite file, through the same operations: `sets::postgres::*`
//! and `sets::sqlite::*`. The storm re-executes this test binary with `PREFLIGHT_CHILD` set.

use std::process::{Command, Stdio};

use preflight_runtime::{
    compose, Composition, Connection, Error, HistoryRow, MigrationSpec, Migrations, Repair, Revert,
    Version, Warning,
};

/// A database under test, on one connection.
trait Db: Sized {
    fn fresh() -> Self;
    fn open(url: &str) -> Self;
    fn url(&self) -> String;
    fn conn(&mut self) -> &mut dyn Connection;
    fn count(&mut self, sql: &str) -> i64;
}

mod pg {
    use super::*;
    use preflight_runtime::testing::TestDatabase;

    pub struct Pg {
        _db: Option<TestDatabase>,
        url: String,
        client: ::postgres::Client,
    }

    impl Db for Pg {
        fn fresh() -> Self {
            let db = TestDatabase::empty();
            Pg {
                url: db.url().to_owned(),
                client: db.connect(),
                _db: Some(db),
            }
        }
        fn open(url: &str) -> Self {
            Pg {
                _db: None,
                url: url.to_owned(),
                client: ::postgres::Client::connect(url, ::postgres::NoTls).unwrap(),
            }
        }
        fn url(&self) -> String {
            self.url.clone()
        }
        fn conn(&mut self) -> &mut dyn Connection {
            &mut self.client
        }
        fn count(&mut self, sql: &str) -> i64 {
            self.client.query_one(sql, &[]).unwrap().get(0)
        }
    }
}

mod lite {
    use super::*;
    use std::path::PathBuf;

    pub struct Lite {
        _dir: Option<tempfile::TempDir>,
        path: PathBuf,
        conn: rusqlite::Connection,
    }

    impl Db for Lite {
        fn fresh() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut lite = Lite::open(dir.path().join("app.db").to_str().unwrap());
            lite._dir = Some(dir);
            lite
        }
        fn open(url: &str) -> Self {
            Lite {
                _dir: None,
                path: PathBuf::from(url),
                conn: rusqlite::Connection::open(url).unwrap(),
            }
        }
        fn url(&self) -> String {
            self.path.to_str().unwrap().to_owned()
        }
        fn conn(&mut self) -> &mut dyn Connection {
            &mut self.conn
        }
        fn count(&mut self, sql: &str) -> i64 {
            self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
        }
    }
}

fn v(n: u64) -> Version {
    Version::new(n)
}

fn named(name: &str, specs: Vec<MigrationSpec>) -> Migrations {
    Migrations::from_specs(specs)
        .unwrap()
        .named(name.to_owned())
}

/// `auth`: users, then sessions; each down drops what its up made.
fn auth() -> Migrations {
    named(
        "auth",
        vec![
            MigrationSpec::new(1, "users", "CREATE TABLE users (id int);")
                .down("DROP TABLE users;"),
            MigrationSpec::new(2, "user_names", "ALTER TABLE users ADD name text;")
                .down("ALTER TABLE users DROP COLUMN name;"),
            MigrationSpec::new(
                3,
                "sessions",
                "CREATE TABLE sessions (id int, user_id int);",
            )
            .down("DROP TABLE sessions;"),
        ],
    )
}

/// `app`: versions 1..3 like `auth`'s; its 2 writes into `auth`'s sessions table, so it needs
/// `auth` 3 first.
fn app() -> Migrations {
    named(
        "app",
        vec![
            MigrationSpec::new(1, "posts", "CREATE TABLE posts (id int);")
                .down("DROP TABLE posts;"),
            MigrationSpec::new(
                2,
                "system_session",
                "INSERT INTO sessions (id, user_id) VALUES (0, 0);",
            )
            .down("DELETE FROM sessions WHERE id = 0;")
            .requires("auth", 3u64),
            MigrationSpec::new(3, "comments", "CREATE TABLE comments (id int);")
                .down("DROP TABLE comments;"),
        ],
    )
}

/// `billing`: needs `auth`'s users.
fn billing() -> Migrations {
    named(
        "billing",
        vec![MigrationSpec::new(
            1,
            "invoices",
            "CREATE TABLE invoices (id int, user_id int);",
        )
        .down("DROP TABLE invoices;")
        .requires("auth", 1u64)],
    )
}

/// (set, version) of the history, in the history's order.
fn rows<D: Db>(db: &mut D, c: &Composition<'_>) -> Vec<(String, Version)> {
    let history: Vec<HistoryRow> = c.history(db.conn()).unwrap();
    history.into_iter().map(|r| (r.set, r.version)).collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, Version)> {
    list.iter().map(|&(s, n)| (s.to_owned(), v(n))).collect()
}

fn applied(report: &preflight_runtime::Report) -> Vec<(String, Version)> {
    report
        .applied
        .iter()
        .map(|a| (a.set.clone(), a.version))
        .collect()
}

fn two_sets_with_the_same_versions_and_a_requirement_listed_in_the_wrong_order<D: Db>() {
    let mut db = D::fresh();
    let (app, auth) = (app(), auth());
    // Listed app first: app 2 needs auth 3, so auth's first three come before it.
    let all = compose([&app, &auth]).unwrap();
    let plan = all.plan(db.conn()).unwrap();
    let planned: Vec<(String, Version)> = plan
        .apply
        .iter()
        .map(|s| (s.set().to_owned(), s.migration().version()))
        .collect();
    let order = pairs(&[
        ("app", 1),
        ("auth", 1),
        ("auth", 2),
        ("auth", 3),
        ("app", 2),
        ("app", 3),
    ]);
    assert_eq!(planned, order);
    let report = all.run(db.conn()).unwrap();
    assert_eq!(applied(&report), order);
    assert!(report.to_string().contains("app 1, auth 1"), "{report}");
    assert_eq!(db.count("SELECT count(*) FROM sessions"), 1);
    // One history table, keyed by (set, version): 3 and 3 are different migrations.
    assert_eq!(
        rows(&mut db, &all),
        pairs(&[
            ("app", 1),
            ("app", 2),
            ("app", 3),
            ("auth", 1),
            ("auth", 2),
            ("auth", 3)
        ])
    );
    // One query for the whole composition.
    assert!(all.run(db.conn()).unwrap().fast_path);
    // A set on its own sees its own rows, and the other set's as not composed.
    let alone = auth.runner().plan(db.conn()).unwrap();
    assert!(alone.apply.is_empty());
    let report = auth.runner().out_of_order(false).run(db.conn()).unwrap();
    assert!(report.fast_path, "{report:?}");
}

fn three_sets_per_set_operations_and_a_removed_set<D: Db>() {
    let mut db = D::fresh();
    let (app, auth, billing) = (app(), auth(), billing());
    let all = compose([&app, &auth, &billing]).unwrap();
    all.run(db.conn()).unwrap();
    assert_eq!(rows(&mut db, &all).len(), 7);

    // A version needs its set.
    let err = all.revert(db.conn(), Revert::To(v(1))).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    // Per set: auth's 3 is required by app 2, which stays applied: refused, untouched.
    let err = all
        .runner()
        .set("auth")
        .revert(db.conn(), Revert::Steps(1))
        .unwrap_err();
    assert!(matches!(err, Error::NoDown { .. }), "{err}");
    assert!(err.to_string().contains("`app` 2"), "{err}");
    assert_eq!(rows(&mut db, &all).len(), 7);
    // Per set, when nothing depends on it.
    let report = all
        .runner()
        .set("app")
        .revert(db.conn(), Revert::Steps(1))
        .unwrap();
    assert_eq!(report.reverted_versions(), [v(3)]);
    // To a point: everything after auth 1 in the composed order, in every set.
    let plan = all
        .runner()
        .set("auth")
        .plan_revert(db.conn(), Revert::Point(v(1)))
        .unwrap();
    let listed: Vec<(String, Version)> = plan
        .revert
        .iter()
        .map(|s| (s.set().to_owned(), s.migration().version()))
        .collect();
    assert_eq!(
        listed,
        pairs(&[("billing", 1), ("app", 2), ("auth", 3), ("auth", 2)])
    );
    all.runner()
        .set("auth")
        .revert(db.conn(), Revert::Point(v(1)))
        .unwrap();
    assert_eq!(rows(&mut db, &all), pairs(&[("app", 1), ("auth", 1)]));
    all.run(db.conn()).unwrap();

    // A repair names its set; a version of another set is not this one's.
    let err = all
        .runner()
        .set("billing")
        .repair(db.conn(), Repair::AcceptChecksum(v(3)))
        .unwrap_err();
    assert!(err.to_string().contains("not in set `billing`"), "{err}");

    // billing removed from the composition: its rows stay, reported, never reverted.
    let without = compose([&app, &auth]).unwrap();
    let report = without.run(db.conn()).unwrap();
    assert!(
        report.fast_path,
        "the composed sets are current: {report:?}"
    );
    let everything = without
        .revert(db.conn(), Revert::Steps(usize::MAX))
        .unwrap();
    assert_eq!(everything.reverted.len(), 6);
    let left = rows(&mut db, &without);
    assert_eq!(
        left,
        pairs(&[("billing", 1)]),
        "billing's row was left alone"
    );
    let plan = without.plan(db.conn()).unwrap();
    assert!(plan.warnings.contains(&Warning::RemovedSet {
        set: "billing".into(),
        versions: vec![v(1)]
    }));
}

fn a_history_of_other_sets_only_is_refused_not_applied_again<D: Db>() {
    let mut db = D::fresh();
    // A set whose requirements are not composed is refused before any I/O.
    let err = app().run(db.conn()).unwrap_err();
    assert!(matches!(err, Error::Compose(_)), "{err}");
    let (app, auth) = (app(), auth());
    compose([&app, &auth]).unwrap().run(db.conn()).unwrap();
    // The same files under another name (a renamed crate): refused, nothing applied twice.
    let renamed = auth.clone().named("accounts");
    let err = renamed.run(db.conn()).unwrap_err();
    assert!(
        matches!(&err, Error::OtherSets { history, run } if history == &["auth"] && run == &["accounts"]),
        "{err}"
    );
    assert!(err.to_string().contains("set = \"auth\""), "{err}");
    assert_eq!(db.count("SELECT count(*) FROM users"), 0);
    // Another application's history in the same table (nothing in common): its rows are
    // left alone, and this set is migrated beside them.
    let other = named(
        "other",
        vec![MigrationSpec::new(
            1,
            "things",
            "CREATE TABLE things (id int);",
        )],
    );
    let report = other.run(db.conn()).unwrap();
    assert_eq!(report.applied_versions(), [v(1)]);
    assert!(report
        .warnings
        .iter()
        .any(|w| matches!(w, Warning::RemovedSet { set, .. } if set == "app")));
}

fn a_single_set_history_gains_a_library_set<D: Db>() {
    let mut db = D::fresh();
    let (app, auth) = (app(), auth());
    // Before the library: the application's own set, without its migration 2 (which came
    // with the library).
    let before = named(
        "app",
        vec![
            MigrationSpec::new(1, "posts", "CREATE TABLE posts (id int);")
                .down("DROP TABLE posts;"),
        ],
    );
    before.run(db.conn()).unwrap();
    let all = compose([&app, &auth]).unwrap();
    let report = all.run(db.conn()).unwrap();
    assert_eq!(
        applied(&report),
        pairs(&[
            ("auth", 1),
            ("auth", 2),
            ("auth", 3),
            ("app", 2),
            ("app", 3)
        ])
    );
    assert!(all.run(db.conn()).unwrap().fast_path);
}

fn storm_set() -> (Migrations, Migrations) {
    let lib = named(
        "lib",
        (1..=4u64)
            .map(|n| {
                MigrationSpec::new(
                    n,
                    &format!("l{n}"),
                    &format!(
                        "CREATE TABLE l{n} (id int); INSERT INTO applied_log VALUES ('lib', {n});"
                    ),
                )
            })
            .collect(),
    );
    let mut specs = vec![MigrationSpec::new(
        1,
        "log",
        "CREATE TABLE applied_log (s text, v int);",
    )];
    specs.extend((2..=4u64).map(|n| {
        let spec = MigrationSpec::new(
            n,
            &format!("a{n}"),
            &format!("CREATE TABLE a{n} (id int); INSERT INTO applied_log VALUES ('app', {n});"),
        );
        if n == 3 {
            spec.requires("lib", 2u64)
        } else {
            spec
        }
    }));
    (named("app", specs), lib)
}

fn a_storm_of_processes_booting_the_same_composition<D: Db>(test: &str) {
    let (app, lib) = storm_set();
    let all = compose([&app, &lib]).unwrap();
    if let Ok(url) = std::env::var("PREFLIGHT_CHILD_URL") {
        let report = all.run(D::open(&url).conn()).unwrap();
        std::process::exit(i32::try_from(report.applied.len()).unwrap() + 10);
    }
    let mut db = D::fresh();
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env("PREFLIGHT_CHILD_URL", db.url())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = 0;
    for mut child in children {
        let code = child.wait().unwrap().code().expect("exited");
        assert!(
            (10..=18).contains(&code),
            "a booting process failed: {code}"
        );
        total += code - 10;
    }
    assert_eq!(
        total, 8,
        "every migration of the composition applied exactly once"
    );
    assert_eq!(db.count("SELECT count(*) FROM applied_log"), 7);
    assert_eq!(
        db.count("SELECT count(*) FROM (SELECT DISTINCT s, v FROM applied_log) AS d"),
        7
    );
    assert_eq!(rows(&mut db, &all).len(), 8);
    assert!(all.run(db.conn()).unwrap().fast_path);
}

macro_rules! set_tests {
    ($module:ident, $db:ty) => {
        mod $module {
            use super::*;

            #[test]
            fn two_sets_with_the_same_versions_and_a_requirement_listed_in_the_wrong_order() {
                super::two_sets_with_the_same_versions_and_a_requirement_listed_in_the_wrong_order::<$db>();
            }
            #[test]
            fn three_sets_per_set_operations_and_a_removed_set() {
                super::three_sets_per_set_operations_and_a_removed_set::<$db>();
            }
            #[test]
            fn a_history_of_other_sets_only_is_refused_not_applied_again() {
                super::a_history_of_other_sets_only_is_refused_not_applied_again::<$db>();
            }
            #[test]
            fn a_single_set_history_gains_a_library_set() {
                super::a_single_set_history_gains_a_library_set::<$db>();
            }
            #[test]
            fn a_storm_of_processes_booting_the_same_composition() {
                super::a_storm_of_processes_booting_the_same_composition::<$db>(concat!(
                    stringify!($module),
                    "::a_storm_of_processes_booting_the_same_composition"
                ));
            }
        }
    };
}

set_tests!(postgres, pg::Pg);
set_tests!(sqlite, lite::Lite);
