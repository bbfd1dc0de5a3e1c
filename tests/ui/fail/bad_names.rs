static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/bad_names");

fn main() {}
