// goose: Up/Down sections of one file, StatementBegin/End around a dollar-quoted body,
// NO TRANSACTION, and a Go migration file next to the SQL ones (ignored).
static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/goose");

fn main() {
    let m = MIGRATIONS.as_slice();
    assert_eq!(m.len(), 2);
    let up: Vec<&str> = m[0].up().statements().collect();
    assert_eq!(up.len(), 2);
    assert!(up[1].contains("RETURN NEW;") && up[1].ends_with("LANGUAGE plpgsql;"));
    assert_eq!(m[0].down().unwrap().statement_count(), 2);
    assert_eq!(m[1].up().kind(), preflight::Kind::NoTransaction);
    assert_eq!(m[1].down().unwrap().kind(), preflight::Kind::NoTransaction);
}
