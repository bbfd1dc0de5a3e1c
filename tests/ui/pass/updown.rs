// golang-migrate / sqlx reversible layout, sqlx's first-line `-- no-transaction`, stray files.
static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/updown");

fn main() {
    let m = MIGRATIONS.as_slice();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].name(), "accounts");
    assert_eq!(m[0].path(), "tests/fixtures/updown/000001_accounts.up.sql");
    assert_eq!(m[0].up().statements().collect::<Vec<_>>(), ["CREATE TABLE accounts (id bigint PRIMARY KEY);"]);
    assert_eq!(m[0].down().unwrap().statements().collect::<Vec<_>>(), ["DROP TABLE accounts;"]);
    assert_eq!(m[1].up().kind(), preflight::Kind::NoTransaction);
    assert_eq!(m[1].down().unwrap().kind(), preflight::Kind::Transactional);
    assert_eq!(m[0].checksum(), preflight::Checksum::of(include_str!("../../fixtures/updown/000001_accounts.up.sql")));
}
