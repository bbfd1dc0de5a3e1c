static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/lints", lints = "deny");

fn main() {}
