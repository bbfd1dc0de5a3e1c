static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/mixed_transaction");

fn main() {}
