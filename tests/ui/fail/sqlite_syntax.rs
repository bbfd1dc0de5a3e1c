static MIGRATIONS: preflight::Migrations =
    preflight::embed!("tests/fixtures/sqlite_syntax", dialect = "sqlite");

fn main() {}
