static A: preflight::Migrations = preflight::embed!("tests/fixtures/updown", colour = "red");
static B: preflight::Migrations = preflight::embed!("tests/fixtures/updown", dialect = "mssql");
static C: preflight::Migrations = preflight::embed!("tests/fixtures/updown", lints = "loud");
static D: preflight::Migrations = preflight::embed!("tests/fixtures/updown", lint_since = "x");
static E: preflight::Migrations = preflight::embed!("tests/fixtures/updown", lints = "warn", lints = "deny");
static F: preflight::Migrations = preflight::embed!(migrations);
static G: preflight::Migrations = preflight::embed!();

fn main() {}
