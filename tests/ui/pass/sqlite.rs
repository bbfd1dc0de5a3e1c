// SQLite's dialect: `AUTOINCREMENT`, `STRICT`, `WITHOUT ROWID`, `INSERT OR REPLACE`, a trigger
// whose body holds semicolons (one statement), and a lone VACUUM (run outside a transaction).
// The whole chain, ups then downs, was applied to an in-memory SQLite while compiling.
static MIGRATIONS: preflight::Migrations =
    preflight::embed!("tests/fixtures/sqlite_ok", dialect = "sqlite");

fn main() {
    let m = MIGRATIONS.as_slice();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0].up().statement_count(), 3);
    let trigger: Vec<&str> = m[1].up().statements().collect();
    assert_eq!(trigger.len(), 1);
    assert!(trigger[0].starts_with("CREATE TRIGGER") && trigger[0].ends_with("END;"));
    assert_eq!(m[2].up().kind(), preflight::Kind::NoTransaction);

    // And it runs.
    let mut conn = preflight::sqlite::connect("sqlite::memory:").unwrap();
    let report = MIGRATIONS.run(&mut conn).unwrap();
    assert_eq!(report.applied.len(), 3);
    conn.execute_batch("INSERT INTO users (email) VALUES ('a'), ('a'), ('b');")
        .unwrap();
    let n: i64 = conn
        .query_row("SELECT n FROM audit WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}
