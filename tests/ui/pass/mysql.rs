// MySQL's dialect: table options and column attributes that sqlparser's grammar does not know
// (never a false refusal), a trigger body without DELIMITER and a procedure in a DELIMITER block
// (one statement each, split as the server runs them), DDL migrations run statement by
// statement and a DML-only one in one transaction without the file's own wrapper.
static MIGRATIONS: preflight::Migrations =
    preflight::embed!("tests/fixtures/mysql_ok", dialect = "mysql");

fn main() {
    let m = MIGRATIONS.as_slice();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0].up().kind(), preflight::Kind::NoTransaction);
    assert_eq!(m[0].up().statement_count(), 2);
    let touch: Vec<&str> = m[1].up().statements().collect();
    assert_eq!(touch.len(), 2);
    assert!(touch[0].starts_with("CREATE TRIGGER") && touch[0].ends_with("END"));
    assert!(touch[1].starts_with("CREATE PROCEDURE") && touch[1].ends_with("END IF;\nEND"));
    assert_eq!(m[2].up().kind(), preflight::Kind::Transactional);
    let seed: Vec<&str> = m[2].up().statements().collect();
    assert_eq!(
        seed,
        [
            "INSERT INTO users (email) VALUES ('admin@example.invalid'), ('it''s; fine')",
            "UPDATE users SET email = LOWER(email)",
        ]
    );
}
