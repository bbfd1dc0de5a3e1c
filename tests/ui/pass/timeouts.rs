// Per-migration time limits: `-- preflight:lock-timeout` / `-- preflight:statement-timeout`
// are read at compile time and travel with the migration into the binary.
use std::time::Duration;

use preflight::{Kind, Timeout, Timeouts};

static MIGRATIONS: preflight::Migrations = preflight::embed!("tests/fixtures/timeouts");

fn main() {
    let m = MIGRATIONS.as_slice();
    assert_eq!(
        m[0].up().timeouts(),
        Timeouts { lock: Some(Timeout::After(Duration::from_secs(30))), statement: Some(Timeout::Off) }
    );
    assert_eq!(m[1].up().timeouts(), Timeouts::NONE);
    assert_eq!(m[2].up().kind(), Kind::NoTransaction);
    assert_eq!(m[2].up().timeouts().lock, Some(Timeout::After(Duration::from_millis(250))));
    assert_eq!(m[2].up().timeouts().statement, None);
}
