// diesel: `{version}_{name}/up.sql`, the version's dashes removed, `run_in_transaction = false`.
static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/diesel", lints = "allow");

fn main() {
    let versions: Vec<String> = MIGRATIONS.iter().map(|m| m.version().to_string()).collect();
    assert_eq!(versions, ["0", "20190101120000", "20190102090000"]);
    let last = MIGRATIONS.last().unwrap();
    assert_eq!(last.name(), "index_posts");
    assert_eq!(last.up().kind(), preflight::Kind::NoTransaction);
    assert_eq!(last.up().statement_count(), 2);
}
