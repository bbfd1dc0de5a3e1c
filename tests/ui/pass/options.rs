// Every option, and the set usable from a `const` as well as a `static`.
const STRICT: preflight::Migrations =
    preflight::embed!("tests/fixtures/lints", dialect = "postgres", lints = "deny", lint_since = 2,);
static QUIET: preflight::Migrations = preflight::embed!("tests/fixtures/lints", lints = "allow");
static FLYWAY: preflight::Migrations = preflight::embed!("tests/fixtures/flyway", lint_since = "1.2");

fn main() {
    assert_eq!(STRICT.len(), 3);
    assert_eq!(QUIET.len(), 3);
    assert_eq!(FLYWAY.len(), 4);
}
