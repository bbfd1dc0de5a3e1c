// The classes of issue #14 through `embed!`: real directories' constructs compile unchanged.
use preflight::Kind;

static CASTS: preflight::Migrations = preflight::embed!("tests/fixtures/real_casts");
static BLOCKS: preflight::Migrations =
    preflight::embed!("tests/fixtures/own_blocks", allow = "runs-as-script");
static LOOSE: preflight::Migrations =
    preflight::embed!("tests/fixtures/diesel_loose", allow = "not-a-migration");
static DECLARED: preflight::Migrations = preflight::embed!(
    "tests/fixtures/declared",
    names = "V{version}.{name}.{direction}.sql"
);
static POP: preflight::Migrations = preflight::embed!("tests/fixtures/pop");
static POP_SQLITE: preflight::Migrations =
    preflight::embed!("tests/fixtures/pop", dialect = "sqlite");
static SQL_MIGRATE: preflight::Migrations = preflight::embed!("tests/fixtures/sections_sqlmigrate");
static DBMATE: preflight::Migrations = preflight::embed!("tests/fixtures/sections_dbmate");

fn main() {
    assert_eq!(CASTS.len(), 1);
    let blocks = BLOCKS.as_slice()[0].up();
    assert_eq!(blocks.kind(), Kind::Script);
    let (open, commit) = blocks.block(1).unwrap();
    assert!(open.starts_with("BEGIN;") && commit == "COMMIT;");
    assert_eq!(LOOSE.len(), 2);
    assert_eq!(DECLARED.as_slice()[1].name(), "Add_Sessions");
    let v = POP.last().unwrap().version();
    assert_eq!(v.to_string(), "20260703000000000002");
    assert!(POP.as_slice()[0].path().ends_with(".postgres.up.sql"));
    assert!(POP_SQLITE.as_slice()[0].path().ends_with(".sqlite3.up.sql"));
    assert_eq!(POP_SQLITE.as_slice()[2].up().kind(), Kind::Transactional);
    assert_eq!(POP_SQLITE.dialect(), "sqlite");
    assert_eq!(SQL_MIGRATE.as_slice()[0].up().kind(), Kind::NoTransaction);
    assert_eq!(DBMATE.len(), 2);
}
