use std::process::{Command, Stdio};

use preflight_runtime::Kind;

use super::*;
use crate::{check_dir, Checked, Dialect, Options};

/// Checks a directory of `(file name, content)` migrations in the MySQL dialect.
fn check(files: &[(&str, &str)]) -> Result<Checked, Vec<Diagnostic>> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    check_dir(dir.path(), "m", &Options::default().dialect(Dialect::Mysql))
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    match check(files) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// The statements of each migration's up body, as texts.
fn statements(checked: &Checked) -> Vec<Vec<&str>> {
    checked
        .migrations()
        .iter()
        .map(|m| {
            let text = m.up().file_text();
            m.up()
                .statements()
                .iter()
                .map(|s| &text[s.range()])
                .collect()
        })
        .collect()
}

#[test]
fn ddl_runs_statement_by_statement_and_dml_in_one_transaction() {
    let checked = check(&[
        (
            "1_users.up.sql",
            "CREATE TABLE users (id BIGINT PRIMARY KEY AUTO_INCREMENT, email VARCHAR(255));\n\
             INSERT INTO users (email) VALUES ('a@b.c');\n",
        ),
        (
            "2_seed.up.sql",
            "START TRANSACTION;\nINSERT INTO users (email) VALUES ('d@e.f');\n\
             UPDATE users SET email = LOWER(email);\nCOMMIT;\n",
        ),
        (
            "3_temp.up.sql",
            "CREATE TEMPORARY TABLE scratch (id INT);\nDELETE FROM users;\n",
        ),
        ("4_call.up.sql", "CALL housekeeping();\n"),
    ])
    .unwrap();
    let kinds: Vec<Kind> = checked.migrations().iter().map(|m| m.up().kind()).collect();
    assert_eq!(
        kinds,
        [
            Kind::NoTransaction,
            Kind::Transactional,
            Kind::Transactional,
            // A procedure may run DDL: counted as committing.
            Kind::NoTransaction,
        ]
    );
    // The file's own wrapper is dropped: Preflight's transaction replaces it.
    assert_eq!(
        statements(&checked)[1],
        [
            "INSERT INTO users (email) VALUES ('d@e.f')",
            "UPDATE users SET email = LOWER(email)"
        ]
    );
}

#[test]
fn transaction_control_in_the_middle_is_refused() {
    let e = errors(&[(
        "1_x.up.sql",
        "INSERT INTO t VALUES (1);\nCOMMIT;\nINSERT INTO t VALUES (2);\n",
    )]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "m/1_x.up.sql:2:1: error: `COMMIT` in a file that manages its own \
                          transactions: there is no `BEGIN` before it"
        ),
        "{e:?}"
    );
}

#[test]
fn procedures_with_and_without_delimiter_are_one_statement_each() {
    let flyway = "DROP PROCEDURE IF EXISTS add_col;\n\
                  DELIMITER $$\n\
                  CREATE PROCEDURE add_col()\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM \
                  information_schema.columns WHERE table_name = 't' AND column_name = 'c') THEN\n    \
                  ALTER TABLE t ADD COLUMN c INT;\n  END IF;\nEND$$\n\
                  DELIMITER ;\n\
                  CALL add_col();\nDROP PROCEDURE add_col;\n";
    let golang_migrate = "CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW\nBEGIN\n  \
                          SET NEW.updated_at = NOW();\nEND;\n";
    let checked = check(&[
        ("1_flyway.up.sql", flyway),
        ("2_trigger.up.sql", golang_migrate),
    ])
    .unwrap();
    let s = statements(&checked);
    assert_eq!(s[0].len(), 4, "{:#?}", s[0]);
    assert!(s[0][1].starts_with("CREATE PROCEDURE add_col()"));
    assert!(s[0][1].ends_with("END IF;\nEND"));
    assert_eq!(s[0][2], "CALL add_col()");
    assert_eq!(s[1].len(), 1, "{:#?}", s[1]);
}

#[test]
fn certain_syntax_errors_fail_at_their_position() {
    let e = errors(&[
        (
            "1_a.up.sql",
            "CREATE TABLE a (\n  id INT,\n  name TEXT,,\n  x INT\n);\n",
        ),
        ("2_b.up.sql", "-- the typo\nCRATE TABLE b (id INT);\n"),
        ("3_c.up.sql", "INSERT INTO a (id) VALUES (1), (2),;\n"),
    ]);
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[0].starts_with("m/1_a.up.sql:3:13: error: syntax error: `,` right after"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("m/2_b.up.sql:2:1: error: syntax error: `CRATE` does not begin"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("m/3_c.up.sql:1:35: error: syntax error: the statement ends"),
        "{e:?}"
    );
}

#[test]
fn what_sqlparser_refuses_but_mysql_runs_is_a_note_not_an_error() {
    let text = "ALTER TABLE t ENGINE=InnoDB, CONVERT TO CHARACTER SET utf8mb4;\n\
                UPDATE t1, t2 SET t1.a = t2.a WHERE t1.id = t2.id;\n\
                CREATE TABLE v (id INT, KEY k (id) INVISIBLE);\n";
    assert_eq!(errors(&[("1_x.up.sql", text)]), Vec::<String>::new());
    // The notes reach the user through the notes channel, not as warnings (which
    // `lints = "deny"` would turn into errors).
    let checked = check(&[("1_x.up.sql", text)]).unwrap();
    assert_eq!(statements(&checked)[0].len(), 3);
    assert!(checked.warnings().is_empty(), "{:?}", checked.warnings());
    let notes = checked.notes();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes.iter().all(|n| n.level == Level::Note), "{notes:?}");
    assert!(
        notes[0]
            .to_string()
            .starts_with("m/1_x.up.sql:1:15: note: not checked by sqlparser"),
        "{}",
        notes[0]
    );
    let denied = Options::default()
        .dialect(Dialect::Mysql)
        .lints(crate::LintLevel::Deny);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("1_x.up.sql"), text).unwrap();
    assert!(check_dir(dir.path(), "m", &denied).is_ok());
}

#[test]
fn goose_sections_and_statement_blocks() {
    let text = "-- +goose Up\n-- +goose StatementBegin\nCREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\n\
                END;\n-- +goose StatementEnd\n\n-- +goose Down\nDROP PROCEDURE p;\n";
    let checked = check(&[("00001_p.sql", text)]).unwrap();
    let m = &checked.migrations()[0];
    let up = m.up();
    let spans: Vec<&str> = up
        .statements()
        .iter()
        .map(|s| &up.file_text()[s.range()])
        .collect();
    assert_eq!(spans, ["CREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\nEND"]);
    let down = m.down().unwrap();
    let spans: Vec<&str> = down
        .statements()
        .iter()
        .map(|s| &down.file_text()[s.range()])
        .collect();
    assert_eq!(spans, ["DROP PROCEDURE p"]);
}

/// The MariaDB (or MySQL) server of `MYSQL_URL`, through its command-line client.
struct Server {
    args: Vec<String>,
}

impl Server {
    fn new() -> Server {
        let url =
            std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let rest = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
            .expect("MYSQL_URL is mysql://user@host:port");
        let rest = rest.split('/').next().unwrap_or_default();
        let (user, host) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (host, port) = host.split_once(':').unwrap_or((host, "3306"));
        assert!(
            !user.contains(':'),
            "this test takes a user without a password"
        );
        Server {
            args: vec![
                "--protocol=tcp".into(),
                format!("--host={host}"),
                format!("--port={port}"),
                format!("--user={user}"),
                "--batch".into(),
                "--skip-column-names".into(),
                // Sent as written: without it the client strips what it takes for comments.
                "--comments".into(),
            ],
        }
    }

    /// Runs one statement in `database`; the client's error line, if any.
    fn run(&self, database: Option<&str>, statement: &str) -> Option<String> {
        let mut command = Command::new("mariadb");
        command.args(&self.args);
        if let Some(d) = database {
            command.arg(format!("--database={d}"));
        }
        // The client reads the statement whole: a delimiter no statement contains.
        let script = format!("DELIMITER $$pf$$\n{statement}$$pf$$\n");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "this test needs the `mariadb` client and a MariaDB or MySQL server on MYSQL_URL \
                 (default mysql://root@127.0.0.1:3306): apt-get install -y mariadb-server",
            );
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        (!out.status.success()).then_some(stderr)
    }
}

/// Ground truth: for each statement, the server's verdict on its syntax agrees with the check's
/// errors — a statement the server parses is never refused (whatever sqlparser says), and every
/// certain error is one the server reports as a syntax error.
#[test]
fn the_server_agrees_with_every_verdict() {
    let server = Server::new();
    let database = format!("preflight_check_{}", std::process::id());
    if let Some(e) = server.run(None, &format!("CREATE DATABASE `{database}`")) {
        panic!("cannot create a database on MYSQL_URL's server: {e}");
    }
    let valid = [
        "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(20) BINARY, b INT, KEY kb (b)) \
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE u (id INT, a VARCHAR(20))",
        "ALTER TABLE t ENGINE=InnoDB",
        "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        "ALTER TABLE t DROP KEY `kb`",
        "ALTER TABLE t MODIFY a VARCHAR(30) BINARY NOT NULL DEFAULT ''",
        "ALTER TABLE u RENAME u2",
        "UPDATE t, u2 SET t.b = 1 WHERE t.id = u2.id",
        "SET @x := (SELECT COUNT(*) FROM t)",
        "PREPARE s FROM 'SELECT 1'",
        "EXECUTE s",
        "DEALLOCATE PREPARE s",
        "CREATE PROCEDURE p() BEGIN DECLARE i INT DEFAULT 0; WHILE i < 2 DO SET i = i + 1; \
         END WHILE; SELECT CASE WHEN i > 1 THEN 'a' ELSE 'b' END; END",
        "CREATE FUNCTION f(x INT) RETURNS INT DETERMINISTIC RETURN x + 1",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.b = 1; END",
        "INSERT INTO t (id, a) VALUES (1, 'x'), (2, 'it''s'), (3, 'a\\'b')",
        "INSERT INTO t () VALUES ()",
        "SELECT 1 --1",
        "/*!40101 SET NAMES utf8mb4 */",
        "DELETE QUICK IGNORE FROM t WHERE id = 3 ORDER BY id LIMIT 1",
    ];
    let invalid = [
        "CREATE TABLE w (id INT,, x INT)",
        "CREATE TABLE w (id INT, x INT,)",
        "INSERT INTO t (id) VALUES (4),",
        "UPDATE t SET b = (1",
        "SELECT 1)",
        "CRATE TABLE w (id INT)",
        "--DROP TABLE t",
        "SELECT 'never closed",
    ];
    let mut disagreements = Vec::new();
    for (statement, expect_valid) in valid
        .iter()
        .map(|s| (s, true))
        .chain(invalid.iter().map(|s| (s, false)))
    {
        let file = format!("{statement};\n");
        let ours = errors(&[("1_x.up.sql", &file)]);
        let theirs = server.run(Some(&database), statement);
        let server_syntax_error = theirs
            .as_deref()
            .is_some_and(|e| e.contains("ERROR 1064") || e.contains("ERROR 1149"));
        if ours.is_empty() != expect_valid || server_syntax_error == expect_valid {
            disagreements.push(format!(
                "{statement}\n  ours: {ours:?}\n  server: {theirs:?}"
            ));
        }
    }
    server.run(None, &format!("DROP DATABASE `{database}`"));
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
