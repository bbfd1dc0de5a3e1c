static MIGRATIONS: preflight::Migrations =
    preflight::embed!("tests/fixtures/sqlite_bad_down", dialect = "sqlite");

fn main() {}
