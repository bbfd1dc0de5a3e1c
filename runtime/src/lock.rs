//! The migration lock: what keeps two booting replicas from applying the same migration twice.
//!
//! Two strategies, both polled with back-off and a timeout, never blocking:
//!
//! * [`LockStrategy::Advisory`] (default on PostgreSQL): a session-level
//!   `pg_try_advisory_lock(key)` on the migration connection. Never the blocking
//!   `pg_advisory_lock`, which deadlocks against a `CREATE INDEX CONCURRENTLY` run by the holder
//!   (the index build waits for every transaction, including the waiter's). The key is the
//!   first 8 bytes (big-endian, as a signed 64-bit integer) of
//!   `SHA-256("preflight\0" ‖ database ‖ "\0" ‖ schema ‖ "\0" ‖ table)` (tests can hold it with
//!   `testing::advisory_key`):
//!   two migration sets in one database with different history tables never contend. In
//!   `pg_locks` a bigint key shows as `classid` = high 32 bits, `objid` = low 32 bits,
//!   `objsubid` = 1. It is taken only on the server session the run's first query reached, and
//!   only if that session does not hold it already, and released only there: behind a pooler
//!   in transaction mode (PgBouncer), where a session lock excludes no one, the run fails with an
//!   error naming the pooler instead of migrating unprotected (use the lease there).
//! * [`LockStrategy::Lease`]: one row of the history table itself (set `''`, version `lease`:
//!   owner in `applied_by`, `applied_at`, `expires_at`; see [`crate::history`]), taken with a
//!   single atomic `INSERT ... ON CONFLICT DO UPDATE ... WHERE expires_at < now()`, renewed
//!   between migrations and between statements, deleted on release. (While the table is still
//!   of layout 1, the lease is taken in layout 1's `<table>_lease`, which binaries that know only
//!   layout 1 use too; the upgrade moves it into the table.) An expired lease (its holder died) is taken over. It works where session state
//!   does not: PgBouncer in transaction pooling and CockroachDB (whose advisory-lock functions
//!   always succeed). Renewal happens on the migration connection between steps, so the
//!   time-to-live must exceed the longest single statement.
//!
//! On SQLite, [`LockStrategy::Advisory`] is `BEGIN IMMEDIATE` held by a second connection on the
//! sidecar file `<database>-preflight-lock` (see the `sqlite` module, feature `sqlite`): one holder
//! across processes, polled the same way, released by the operating system when its process
//! dies; [`Holder::LockFile`] names the holding process on Linux.
//!
//! Whatever the outcome of the run, the runner releases the lock it took before it returns
//! (see `runner`): the release is not skipped by an early `?` as in other tools.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How the runner serialises concurrent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockStrategy {
    /// A session advisory lock, polled with `pg_try_advisory_lock` (the default); on SQLite,
    /// the lock file next to the database.
    #[default]
    Advisory,
    /// A lease row with an expiry, renewed while migrating; `ttl` is how long a lease survives
    /// its holder.
    Lease {
        /// The lease's time-to-live.
        ttl: Duration,
    },
    /// No lock: for a database only this process can reach (tests, a single-node tool).
    None,
}

impl LockStrategy {
    /// The lease strategy with a 60 s time-to-live.
    pub const fn lease() -> LockStrategy {
        LockStrategy::Lease {
            ttl: Duration::from_secs(60),
        }
    }
}

/// The advisory-lock key for a history table (see the module docs): two history tables never
/// share one.
pub(crate) fn advisory_key(database: &str, schema: &str, table: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(b"preflight\0");
    h.update(database.as_bytes());
    h.update(b"\0");
    h.update(schema.as_bytes());
    h.update(b"\0");
    h.update(table.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// How a bigint advisory key appears in `pg_locks`: `(classid, objid)`; `objsubid` is 1.
#[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
pub(crate) fn pg_locks_ids(key: i64) -> (u32, u32) {
    let k = key as u64;
    ((k >> 32) as u32, k as u32)
}

/// Who holds the migration lock, for the timeout error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Holder {
    /// The session holding the advisory lock, from `pg_locks` and `pg_stat_activity`.
    Session {
        /// Its backend process id.
        pid: i32,
        /// Its `application_name` (Preflight sets one naming the application and host).
        application_name: String,
        /// Its client address (`local` for a Unix socket).
        client: String,
        /// When it connected.
        connected_since: String,
        /// Its state and since when (`active since ...`).
        state: String,
    },
    /// SQLite: the connection holding `BEGIN IMMEDIATE` on the lock file next to the
    /// database (see the `sqlite` module).
    LockFile {
        /// The lock file.
        path: String,
        /// The process holding it, when the operating system tells (Linux: `/proc/locks`).
        pid: Option<i32>,
    },
    /// The lease row.
    Lease {
        /// The owner text (application, host, process).
        owner: String,
        /// When it was acquired.
        acquired_at: String,
        /// When it expires unless renewed.
        expires_at: String,
    },
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Session {
                pid,
                application_name,
                client,
                connected_since,
                state,
            } => write!(
                f,
                "backend pid {pid} (application_name `{application_name}`, client {client}, \
                 connected since {connected_since}, {state}); if that process is stuck, \
                 `SELECT pg_terminate_backend({pid})` releases the lock"
            ),
            Holder::LockFile { path, pid } => {
                match pid {
                    Some(pid) => write!(f, "process {pid}")?,
                    None => f.write_str("another connection")?,
                }
                write!(
                    f,
                    " (it holds the lock file `{path}` while migrating; the lock goes with that \
                     process when it exits)"
                )
            }
            Holder::Lease {
                owner,
                acquired_at,
                expires_at,
            } => write!(
                f,
                "lease owner `{owner}` (acquired at {acquired_at}, expires at {expires_at} \
                 unless renewed)"
            ),
        }
    }
}

/// Back-off between attempts, with jitter so that replicas started together do not retry in
/// lockstep: a base delay doubling up to a cap, plus up to 50% of it. For the migration lock
/// ([`Backoff::new`]) 10 ms doubling to 50 ms (10, 20, 40, 50, 50, ...): the cap is low because
/// a waiting run polls cheaply (the fast-path query, then a try-lock) and returns as soon as
/// the holder has brought the database up to date; a long sleep would only delay that. Also
/// between the attempts of a migration blocked by a table lock, and between the polls of
/// `wait`, with their own delays ([`Backoff::between`]).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    cap: Duration,
    seed: u64,
}

/// The longest base delay between two lock attempts (jitter adds up to half of it).
const MAX_DELAY: Duration = Duration::from_millis(50);

impl Backoff {
    /// The migration lock's back-off.
    pub fn new(seed: u64) -> Backoff {
        Backoff::between(Duration::from_millis(10), MAX_DELAY, seed)
    }

    /// A back-off starting at `first`, doubling up to `cap`.
    pub fn between(first: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            next: first.min(cap),
            cap,
            seed: seed | 1,
        }
    }

    /// A seed for the jitter that differs between processes and runs.
    pub fn seed() -> u64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        u64::from(std::process::id())
            ^ SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos().into())
    }

    /// The next delay, never more than `remaining`.
    pub fn delay(&mut self, remaining: Duration) -> Duration {
        // xorshift: cheap jitter without a random-number dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.next;
        let half = u64::try_from(base.as_micros() / 2).unwrap_or(u64::MAX);
        let jitter = Duration::from_micros(self.seed % (half + 1));
        self.next = (self.next * 2).min(self.cap);
        (base + jitter).min(remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_stable_and_documented() {
        // The algorithm is a contract (operators look the lock up in pg_locks): pin it.
        let digest = Sha256::digest(b"preflight\0db\0public\0preflight_history");
        let expected = i64::from_be_bytes(digest[..8].try_into().unwrap());
        assert_eq!(advisory_key("db", "public", "preflight_history"), expected);
        // Separators matter: ("ab","c") and ("a","bc") differ.
        assert_ne!(advisory_key("ab", "c", "t"), advisory_key("a", "bc", "t"));
    }

    #[test]
    fn pg_locks_split() {
        assert_eq!(pg_locks_ids(-1), (u32::MAX, u32::MAX));
        assert_eq!(pg_locks_ids(0x0000_0001_0000_0002), (1, 2));
    }

    #[test]
    fn backoff_grows_and_respects_the_deadline() {
        let mut b = Backoff::new(42);
        let first = b.delay(Duration::from_secs(10));
        assert!(first >= Duration::from_millis(10) && first <= Duration::from_millis(15));
        for _ in 0..20 {
            assert!(b.delay(Duration::from_secs(10)) <= Duration::from_millis(75));
        }
        assert_eq!(b.delay(Duration::from_millis(3)), Duration::from_millis(3));
        let mut slow = Backoff::between(Duration::from_secs(1), Duration::from_secs(4), 7);
        let delays: Vec<Duration> = (0..4).map(|_| slow.delay(Duration::MAX)).collect();
        for (d, base) in delays.iter().zip([1, 2, 4, 4]) {
            let base = Duration::from_secs(base);
            assert!(*d >= base && *d <= base + base / 2, "{delays:?}");
        }
    }
}
