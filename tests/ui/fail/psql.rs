static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/psql");

fn main() {}
