//! The token-level rules against the real PostgreSQL server (issue #14, class 1): every
//! construct a rule used to misread is valid SQL that the server runs, and Preflight checks
//! and applies it unchanged; the string boundaries Preflight's lexer assumed are the server's
//! (it returns the values); what Preflight refuses as psql-only the server refuses too.

use std::fs;

use preflight_check::{check_dir, Options};
use preflight_runtime::testing::TestDatabase;

/// Every construct of the class, in one migration, written as a project would.
const VALID: &str = r#"CREATE TYPE "MyEnum" AS ENUM ('a', 'b');
CREATE TABLE t (c text, a int[], j jsonb, n int);
INSERT INTO t VALUES ('a', ARRAY[1, 2, 3], '{"a": 1, "b": [1]}', 2);
-- A cast to a quoted type name after another cast (`::text::"MyEnum"`), not a psql variable.
ALTER TABLE t ALTER COLUMN c TYPE "MyEnum" USING c::text::"MyEnum";
/* a nested /* comment :'x' */ still a comment \connect */
CREATE FUNCTION f(x int) RETURNS int LANGUAGE plpgsql AS $body$
DECLARE y int;
BEGIN
  y := x; -- `:=` in PL/pgSQL
  RETURN y + $1;
END
$body$;
CREATE FUNCTION g(int) RETURNS int AS 'select $1 :: int' LANGUAGE sql;
CREATE VIEW v AS
SELECT a[1:2] AS s1, a[1:n] AS s2, (ARRAY[1, 2, 3])[1:'2'] AS s3, a[:"n"] AS s4,
       E'it\'s :''x''' AS e, 'a\' AS std, 1 AS U&"d\0061t", $tag$ :'x' \set $tag$ AS d,
       j ? 'a' AS has, j ?| ARRAY['a', 'z'] AS any_of, j ?& ARRAY['a', 'b'] AS all_of,
       j @> '{"a": 1}' AS contains, j #>> '{b,0}' AS path,
       E'e'
       '\' :"x"' AS continued
FROM t;
"#;

#[test]
fn every_construct_is_valid_sql_that_preflight_checks_and_applies() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("1_constructs.sql"), VALID).unwrap();
    let checked = check_dir(dir.path(), "m", &Options::default()).unwrap_or_else(|e| {
        panic!("{}", preflight_check::Report(&e));
    });
    let set = checked.into_migrations();
    let db = TestDatabase::empty();
    let mut client = db.connect();
    set.run(&mut client).unwrap();
    // The server saw the strings where Preflight's lexer did.
    let row = client
        .query_one(
            "SELECT e, std, d, continued, s1::text, s3::text, s4::text, has, path, f(1), g(5), dat \
             FROM v",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "it's :'x'");
    assert_eq!(row.get::<_, String>(1), "a\\");
    assert_eq!(row.get::<_, String>(2), " :'x' \\set ");
    assert_eq!(row.get::<_, String>(3), "e' :\"x\"");
    assert_eq!(row.get::<_, String>(4), "{1,2}");
    assert_eq!(row.get::<_, String>(5), "{1,2}");
    assert_eq!(row.get::<_, String>(6), "{1,2}");
    assert!(row.get::<_, bool>(7));
    assert_eq!(row.get::<_, String>(8), "1");
    assert_eq!(row.get::<_, i32>(9), 2);
    assert_eq!(row.get::<_, i32>(10), 5);
    assert_eq!(
        row.get::<_, i32>(11),
        1,
        "the column named with U&\"d\\0061t\""
    );
}

#[test]
fn what_preflight_refuses_as_psql_only_the_server_refuses_too() {
    let db = TestDatabase::empty();
    let mut client = db.connect();
    for (sql, says) in [
        ("SELECT :'name';", "psql variable `:'name'`"),
        ("SELECT * FROM :\"table\";", "psql variable `:\"table\"`"),
        (
            "\\connect other\nSELECT 1;",
            "psql meta-command `\\connect`",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("1_psql.sql"), sql).unwrap();
        let errors = check_dir(dir.path(), "m", &Options::default()).unwrap_err();
        assert!(
            errors.iter().any(|e| e.message.contains(says)),
            "{sql}: {errors:?}"
        );
        let server = client.batch_execute(sql).unwrap_err();
        assert_eq!(
            server.as_db_error().map(|e| e.code().code()),
            Some("42601"),
            "{sql}: the server runs it: {server}"
        );
    }
}
