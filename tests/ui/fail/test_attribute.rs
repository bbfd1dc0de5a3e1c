// `#[preflight::test]` misused: the database parameter has a type it cannot make.
// The database types are named in full: no import left unused by the errors.

static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/updown");

#[preflight::test]
fn wrong_parameter(db: String) {
    let _ = db;
}

#[preflight::test]
fn no_parameter() {}

#[preflight::test(migrations = MIGRATIONS)]
#[tokio::test]
async fn twice_a_test(db: preflight::testing::TestDatabase) {
    let _ = db;
}

fn main() {}
