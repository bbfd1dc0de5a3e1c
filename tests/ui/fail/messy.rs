static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/messy");

fn main() {}
