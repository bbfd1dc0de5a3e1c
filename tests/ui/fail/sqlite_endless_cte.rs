static MIGRATIONS: preflight::Migrations =
    preflight::embed!("tests/fixtures/sqlite_endless_cte", dialect = "sqlite");

fn main() {}
