// `{version}_{name}.sql`: unpadded and timestamp versions order numerically; gaps are fine.
static SIMPLE: preflight::Migrations = preflight::embed!("tests/fixtures/simple");
static GAPS: preflight::Migrations = preflight::embed!("tests/fixtures/gaps");

fn versions(set: &preflight::Migrations) -> Vec<String> {
    set.iter().map(|m| m.version().to_string()).collect()
}

fn main() {
    assert_eq!(versions(&SIMPLE), ["1", "2", "10", "20240131120000"]);
    assert_eq!(versions(&GAPS), ["1", "10", "20", "900"]);
    assert!(SIMPLE.iter().all(|m| !m.is_reversible()));
}
