static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/duplicate_version");

fn main() {}
