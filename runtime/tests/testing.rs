//! The test helpers across processes: many test processes (as `cargo nextest` starts them)
//! asking at once for a database of the same, never-seen migration set build its template once
//! and all get a migrated copy.

use std::process::Command;

use preflight_runtime::testing::{server_url, TestDatabase};
use preflight_runtime::{MigrationSpec, Migrations};

/// A set of its own: `token` goes into the first migration, so its template is new.
fn set(token: &str) -> Migrations {
    Migrations::from_specs(vec![
        MigrationSpec::new(
            1,
            "token",
            &format!("CREATE TABLE token AS SELECT '{token}' AS t"),
        ),
        MigrationSpec::new(2, "slow", "SELECT pg_sleep(0.3)"),
        MigrationSpec::new(
            3,
            "rows",
            "CREATE TABLE rows (id int); INSERT INTO rows VALUES (1)",
        ),
    ])
    .unwrap()
}

/// One test process: a copy of the set `PREFLIGHT_TOKEN` names (a fresh one when run alone).
#[test]
fn copy_of_a_shared_set() {
    let shared = std::env::var("PREFLIGHT_TOKEN").ok();
    let token = shared.clone().unwrap_or_else(|| {
        format!(
            "alone_{}_{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        )
    });
    let set = set(&token);
    {
        let db = TestDatabase::new(&set);
        let mut client = db.connect();
        let seen: String = client.query_one("SELECT t FROM token", &[]).unwrap().get(0);
        assert_eq!(seen, token);
        let rows: i64 = client
            .query_one("SELECT count(*) FROM rows", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 1);
    }
    if shared.is_none() {
        drop_template(&TestDatabase::template_name(&set));
    }
}

/// A template can be dropped once it is no longer marked as one.
fn drop_template(name: &str) {
    let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("ALTER DATABASE \"{name}\" IS_TEMPLATE false"))
        .unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE \"{name}\""))
        .unwrap();
}

#[test]
fn concurrent_processes_build_one_template() {
    let token = format!(
        "shared_{}_{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "copy_of_a_shared_set"])
                .env("PREFLIGHT_TOKEN", &token)
                // The children must share this process's server.
                .env("DATABASE_URL", server_url())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let template = TestDatabase::template_name(&set(&token));
    let mut admin = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
    let names: Vec<String> = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE left(datname, length($1)) = $1",
            &[&template],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The template, and no builder's scratch database left behind.
    assert_eq!(names, std::slice::from_ref(&template));
    drop_template(&template);
}
