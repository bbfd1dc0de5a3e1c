static MIGRATIONS: preflight::Migrations =
    preflight::embed!("tests/fixtures/mysql_syntax", dialect = "mysql");

fn main() {}
