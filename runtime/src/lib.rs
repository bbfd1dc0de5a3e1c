//! Preflight's runtime: the migration model shared by compile time (the `embed!` macro), the CLI
//! and boot time, and the boot-time runner.
//!
//! Most users depend on the `preflight` crate, which re-exports this one.

#![warn(missing_docs)]

pub mod blocked;
pub mod build;
pub mod checksum;
pub mod composition;
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
pub mod drift;
mod migration;
pub mod source;
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
mod timeout;
mod version;

pub use checksum::Checksum;
pub use composition::{compose, ComposeError, Composition};
pub use migration::{
    Body, Kind, Migration, MigrationParts, MigrationSpec, Migrations, Requirement, Span,
    DEFAULT_SET,
};
pub use timeout::{Timeout, TimeoutError, Timeouts};
pub use version::{Version, VersionError};

// The boot-time runner: every operation is written once in `runner` over the backend traits
// (`backend`); `connection` hands each driver's backend to it, `operations` and `pool` are the
// public methods that start one. Plan and policies are backend-free. Without a driver feature nothing runs the loop (the model is still used by the
// macro).
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
mod backend;
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
mod connection;
pub mod error;
pub mod history;
pub mod lock;
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
mod operations;
pub mod plan;
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
mod pool;
#[cfg(feature = "pg-common")]
mod postgres;
mod report;
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
mod runner;
// Its naming of throwaway databases serves PostgreSQL and the test helpers.
#[cfg_attr(not(any(feature = "pg-common", feature = "testing")), allow(dead_code))]
mod scratch;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use blocked::{Blocked, Blocker};
pub use connection::{AsyncConnection, Connection};
pub use drift::Drift;
pub use error::{
    redact_url, ChecksumMismatch, CompletedChanged, DbError, Error, MigrationError, Unfinished,
};
pub use history::{HistoryRow, State};
pub use lock::LockStrategy;
pub use plan::{Plan, Revert, Step};
pub use pool::{AsyncPool, Pool};
pub use report::{Applied, Report, Warning};
pub use runner::{
    Repair, Runner, DEFAULT_LOCK_RETRIES, DEFAULT_LOCK_RETRY_DELAY, DEFAULT_SQL_LOCK_TIMEOUT,
    DEFAULT_TABLE, DEFAULT_WAIT_TIMEOUT,
};
pub use scratch::Scratch;

pub mod adopt;
pub use adopt::{Adopt, Tool};
#[cfg(feature = "testing")]
pub mod testing;
