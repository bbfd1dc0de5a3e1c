static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/mixed_layouts");

fn main() {}
