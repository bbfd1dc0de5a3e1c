static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/does_not_exist");

fn main() {}
