static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/syntax_error");

fn main() {}
