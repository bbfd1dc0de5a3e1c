static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/down_syntax_error");

fn main() {}
