// Lint findings are warnings (uses of a deprecated item carrying the finding); denying the
// `deprecated` lint makes them visible here.
#![deny(deprecated)]

static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/lints");

fn main() {}
