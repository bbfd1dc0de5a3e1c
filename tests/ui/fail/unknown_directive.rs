static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/unknown_directive");

fn main() {}
