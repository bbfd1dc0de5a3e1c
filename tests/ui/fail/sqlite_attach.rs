static MIGRATIONS: preflight::Migrations =
    preflight::embed!("tests/fixtures/sqlite_attach", dialect = "sqlite");

fn main() {}
