//! Security (issue #7): hostile table and schema names are quoted, never interpolated; a
//! password in the database URL never appears in errors, logs (`-vv` tracing output), `--json`
//! or panic messages; TLS connections (`sslmode=require`, `verify-ca`, `verify-full` with
//! `sslrootcert`) against a private cluster started with `ssl=on` and a certificate authority
//! generated here with the openssl CLI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use preflight_runtime::testing::{with_database, PrivateCluster, TestDatabase};
use preflight_runtime::{LockStrategy, MigrationSpec, Migrations, Revert, State};

mod common;
use common::{Run, BIN};

const PASSWORD: &str = "Sekr1t-pw-4711";
const WRONG: &str = "Wr0ng-pw-0815";

fn cli(dir: &Path, url: &str, args: &[&str]) -> Run {
    Run::of(
        Command::new(BIN)
            .arg("--dir")
            .arg(dir)
            .arg("--database-url")
            .arg(url)
            .args(args)
            .env_remove("DATABASE_URL")
            .env("RUST_BACKTRACE", "1"),
    )
}

fn migrations_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("1_users.up.sql"), "CREATE TABLE users (id int);\n").unwrap();
    fs::write(dir.join("1_users.down.sql"), "DROP TABLE users;\n").unwrap();
    fs::write(dir.join("2_posts.up.sql"), "CREATE TABLE posts (id int);\n").unwrap();
    fs::write(dir.join("2_posts.down.sql"), "DROP TABLE posts;\n").unwrap();
}

// ---------------------------------------------------------------------------------------------
// Hostile identifiers.

const SCHEMA: &str = "sch\"ema; DROP TABLE x; -- ☃ é";
const TABLE: &str = "a\"; DROP TABLE x; --";

fn x_survives(c: &mut postgres::Client) {
    let n: i64 = c
        .query_one("SELECT count(*) FROM public.x", &[])
        .expect("table x survives")
        .get(0);
    assert_eq!(n, 1, "x keeps its row");
}

#[test]
fn hostile_table_and_schema_names_are_quoted_never_interpolated() {
    let db = TestDatabase::empty();
    let mut c = db.connect();
    c.batch_execute("CREATE TABLE x (id int); INSERT INTO x VALUES (1)")
        .unwrap();
    let set = |n: u64| {
        Migrations::from_specs(
            (1..=n)
                .map(|v| {
                    MigrationSpec::new(v, &format!("t{v}"), &format!("CREATE TABLE t{v} (id int);"))
                        .down(&format!("DROP TABLE t{v};"))
                })
                .collect(),
        )
        .unwrap()
    };
    let two = set(2);
    fn runner(m: &Migrations) -> preflight_runtime::Runner<'_> {
        m.runner()
            .schema(SCHEMA)
            .table(TABLE)
            .application("a'; DROP TABLE x; --")
    }
    assert_eq!(runner(&two).run(&mut c).unwrap().applied.len(), 2);
    assert!(runner(&two).run(&mut c).unwrap().fast_path);
    // The lease is a row of the history table.
    let three = set(3);
    let report = runner(&three)
        .lock(LockStrategy::Lease {
            ttl: Duration::from_secs(5),
        })
        .run(&mut c)
        .unwrap();
    assert_eq!(report.applied.len(), 1);
    runner(&three).revert(&mut c, Revert::Steps(1)).unwrap();
    let rows = runner(&three).history(&mut c).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.state == State::Applied));
    assert!(rows[0].applied_by.starts_with("a'; DROP TABLE x; --"));
    x_survives(&mut c);
    let tables: Vec<String> = c
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
            &[&SCHEMA],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        [TABLE.to_owned()],
        "exactly the quoted name, in the quoted schema, and nothing beside it"
    );
    // No function or trigger either (layout 1 had both, named after the table).
    let counted: (i64, i64) = c
        .query_one(
            "SELECT (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = $1 AND p.proname = $2), \
             (SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(format('%I.%I', $1::text, $3::text)))",
            &[&SCHEMA, &format!("{TABLE}_counter"), &TABLE],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(counted, (0, 0));
    // The CLI, with the same names given as a quoted `schema.table`.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    fs::create_dir_all(&dir).unwrap();
    for v in 1..=3 {
        fs::write(
            dir.join(format!("{v}_t{v}.up.sql")),
            format!("CREATE TABLE t{v} (id int);"),
        )
        .unwrap();
    }
    let quoted = format!(
        "\"{}\".\"{}\"",
        SCHEMA.replace('"', "\"\""),
        TABLE.replace('"', "\"\"")
    );
    // The same up files as the runner's sets: the CLI reads the history through the hostile
    // names, then applies the reverted third migration again.
    let r = cli(&dir, db.url(), &["--table", &quoted, "status"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("3        t3    pending"), "{}", r.all());
    let r = cli(&dir, db.url(), &["--table", &quoted, "up"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(runner(&three).history(&mut c).unwrap().len(), 3);
    x_survives(&mut c);
}

// ---------------------------------------------------------------------------------------------
// A TLS cluster with password authentication.

struct TlsCluster {
    cluster: PrivateCluster,
    dir: tempfile::TempDir,
}

impl TlsCluster {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self, user: &str, password: &str, host: &str, params: &str) -> String {
        format!(
            "postgres://{user}:{password}@{host}:{}/postgres{params}",
            self.cluster.port()
        )
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("the openssl CLI is needed for the TLS test (apt-get install -y openssl): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A CA, a server certificate for 127.0.0.1 (IP only: `localhost` does not match it), and a
/// second, unrelated CA.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other_ca"] {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        let key = format!("{ca}.key");
        let pem = format!("{ca}.pem");
        let subject = format!("/CN=preflight test {ca}");
        args.extend([
            "-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subject,
        ]);
        openssl(dir, &args);
    }
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &args);
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

fn tls_cluster() -> TlsCluster {
    let cluster = PrivateCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    // The server (the `postgres` OS user when the tests run as root) reads the key, which it
    // wants private to it.
    let status = Command::new("chmod")
        .args(["755"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let key = dir.path().join("server.key");
    let status = Command::new("chmod").arg("600").arg(&key).status().unwrap();
    assert!(status.success());
    if is_root() {
        let status = Command::new("chown")
            .arg("postgres:")
            .arg(&key)
            .arg(dir.path().join("server.crt"))
            .status()
            .unwrap();
        assert!(status.success(), "chown the server key to postgres");
    }
    let mut admin = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
    let hba: String = admin.query_one("SHOW hba_file", &[]).unwrap().get(0);
    // `app` may log in only over TLS, with its password; the test's superuser over anything.
    let lines = [
        "local all all trust",
        "hostssl all app 127.0.0.1/32 scram-sha-256",
        "host all app 0.0.0.0/0 reject",
        "host all app ::1/128 reject",
        "host all all 127.0.0.1/32 trust",
    ];
    let values: Vec<String> = lines.iter().map(|l| format!("('{l}')")).collect();
    admin
        .batch_execute(&format!(
            "COPY (SELECT line FROM (VALUES {}) AS v(line)) TO '{}'",
            values.join(", "),
            hba.replace('\'', "''")
        ))
        .unwrap();
    for sql in [
        format!("CREATE ROLE app LOGIN SUPERUSER PASSWORD '{PASSWORD}'"),
        format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            dir.path().join("server.crt").display()
        ),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
        "ALTER SYSTEM SET ssl = on".to_owned(),
        "SELECT pg_reload_conf()".to_owned(),
    ] {
        admin.batch_execute(&sql).unwrap();
    }
    // New sessions start from the reloaded configuration once the postmaster has read it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
        let ssl: String = c.query_one("SHOW ssl", &[]).unwrap().get(0);
        if ssl == "on" {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not turn ssl on");
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsCluster { cluster, dir }
}

fn assert_no_password(r: &Run, what: &str) {
    for secret in [PASSWORD, WRONG] {
        assert!(
            !r.all().contains(secret),
            "{what}: the password appears in the output:\n{}",
            r.all()
        );
    }
    assert!(
        !r.all().contains("panicked"),
        "{what}: a panic:\n{}",
        r.all()
    );
}

#[test]
fn tls_connections_and_passwords_never_printed() {
    let t = tls_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    migrations_dir(&dir);
    let ca = t.path("ca.pem");
    let other = t.path("other_ca.pem");
    let ca = ca.display();
    let other = other.display();

    // TLS without checking the certificate (libpq's `require`): `app` may only log in over TLS.
    let url = t.url("app", PASSWORD, "127.0.0.1", "?sslmode=require");
    let r = cli(&dir, &url, &["-vv", "up"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("2 migration(s) applied"), "{}", r.all());
    assert_no_password(&r, "up -vv over TLS");
    // The server saw a TLS session: ask it through the same kind of connection.
    let mut admin = postgres::Client::connect(&t.cluster.url(), postgres::NoTls).unwrap();
    let applied: i64 = admin
        .query_one("SELECT count(*) FROM preflight_history", &[])
        .unwrap()
        .get(0);
    assert_eq!(applied, 2);

    // verify-full with the right CA: chain and name (127.0.0.1) checked.
    let url = t.url(
        "app",
        PASSWORD,
        "127.0.0.1",
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
    );
    let r = cli(&dir, &url, &["--json", "status"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_no_password(&r, "status --json verify-full");

    // verify-full with another CA: refused, saying why.
    let url = t.url(
        "app",
        PASSWORD,
        "127.0.0.1",
        &format!("?sslmode=verify-full&sslrootcert={other}"),
    );
    let r = cli(&dir, &url, &["status"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.to_lowercase().contains("certificate"),
        "{}",
        r.all()
    );
    assert_no_password(&r, "unknown CA");
    println!("verify-full, unknown CA: {}", r.stderr.trim());

    // A name the certificate does not carry: verify-full refuses, verify-ca accepts.
    let wrong_name = t.url(
        "app",
        PASSWORD,
        "localhost",
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
    );
    let r = cli(&dir, &wrong_name, &["status"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.to_lowercase().contains("certificate"),
        "{}",
        r.all()
    );
    assert_no_password(&r, "name mismatch");
    println!("verify-full, name mismatch: {}", r.stderr.trim());
    let r = cli(
        &dir,
        &t.url(
            "app",
            PASSWORD,
            "localhost",
            &format!("?sslmode=verify-ca&sslrootcert={ca}"),
        ),
        &["status"],
    );
    assert_eq!(r.code, 0, "verify-ca ignores the name: {}", r.all());

    // Without TLS, `app` is refused (so the successes above were TLS sessions).
    let r = cli(
        &dir,
        &t.url("app", PASSWORD, "127.0.0.1", "?sslmode=disable"),
        &["status"],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("pg_hba.conf"), "{}", r.all());
    assert_no_password(&r, "no TLS");

    // Passwords in every failure path: wrong password (human and --json), key=value form,
    // an unreachable server, an unparsable URL, `-vv` logs of a successful run.
    let wrong = t.url("app", WRONG, "127.0.0.1", "?sslmode=require");
    for args in [
        &["status"][..],
        &["--json", "up"],
        &["-vv", "up"],
        &["down", "--steps", "1"],
    ] {
        let r = cli(&dir, &wrong, args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.all());
        assert!(
            r.all().contains("password authentication failed"),
            "{}",
            r.all()
        );
        assert_no_password(&r, &format!("wrong password, {args:?}"));
        if args.contains(&"--json") {
            let doc: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
            assert_eq!(doc["ok"], false);
        }
    }
    let key_value = format!(
        "host=127.0.0.1 port={} user=app password={WRONG} dbname=postgres sslmode=require",
        t.cluster.port()
    );
    let r = cli(&dir, &key_value, &["--json", "status"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_no_password(&r, "key=value");
    let unreachable = format!("postgres://app:{WRONG}@127.0.0.1:1/postgres?connect_timeout=5");
    let r = cli(&dir, &unreachable, &["status"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("app:***@127.0.0.1:1"), "{}", r.all());
    assert_no_password(&r, "unreachable");
    let unparsable = format!("postgres://app:{WRONG}@127.0.0.1:99999999/postgres");
    let r = cli(&dir, &unparsable, &["--json", "status"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_no_password(&r, "unparsable");
    let r = cli(
        &dir,
        &t.url("app", PASSWORD, "127.0.0.1", "?sslmode=require"),
        &["-vv", "--json", "down", "--steps", "1"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_no_password(&r, "down -vv --json");
    let _ = with_database; // (one cluster database is enough here)
}
