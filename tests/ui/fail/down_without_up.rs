static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/down_without_up");

fn main() {}
