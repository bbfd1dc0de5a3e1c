// refinery / Flyway: `V1_2__` < `V1_11__`, compared part by part.
static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/flyway");

fn main() {
    let versions: Vec<String> = MIGRATIONS.iter().map(|m| m.version().to_string()).collect();
    assert_eq!(versions, ["1", "1.2", "1.11", "2"]);
    assert_eq!(MIGRATIONS.as_slice()[1].name(), "b");
}
