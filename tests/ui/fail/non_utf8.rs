static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/non_utf8");

fn main() {}
