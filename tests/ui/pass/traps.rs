// The traps of real migration directories: empty and comment-only files, a file's own
// BEGIN/COMMIT, a lone CREATE INDEX CONCURRENTLY without a marker, function bodies holding `;`,
// session SET, CRLF + BOM line endings.
use preflight::Kind;

static TRAPS: preflight::Migrations = preflight::embed!("tests/fixtures/traps", lints = "allow");
static LF: preflight::Migrations = preflight::embed!("tests/fixtures/line_endings_lf");
static CRLF: preflight::Migrations = preflight::embed!("tests/fixtures/line_endings_crlf");

fn main() {
    let m = TRAPS.as_slice();
    assert_eq!(m.len(), 6);
    assert_eq!(m[0].up().script(), None);
    assert_eq!(m[1].up().statement_count(), 0);
    // Own BEGIN/COMMIT: dropped, the runner's transaction replaces them.
    let script = m[2].up().script().unwrap();
    assert!(script.starts_with("CREATE TABLE orders") && script.ends_with("now());"), "{script}");
    assert_eq!(m[2].up().kind(), Kind::Transactional);
    assert_eq!(m[3].up().kind(), Kind::NoTransaction);
    assert_eq!(m[4].up().statement_count(), 3);
    assert_eq!(m[5].up().kind(), Kind::NoTransaction);
    // A Windows checkout has the same checksum and chain.
    assert_eq!(LF.last().unwrap().chain(), CRLF.last().unwrap().chain());
}
