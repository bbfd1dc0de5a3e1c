static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/bad_timeout");

fn main() {}
