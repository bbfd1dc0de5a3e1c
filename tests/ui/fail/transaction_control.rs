static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/transaction_control");

fn main() {}
