static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/unknown_allow");

fn main() {}
