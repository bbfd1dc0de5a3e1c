static MIGRATIONS: preflight::Migrations =
    preflight::embed!("tests/fixtures/sqlite_missing_table", dialect = "sqlite");

fn main() {}
