//! Preflight's runtime: the migration model shared by compile time (the `embed!` macro), the CLI
//! and boot time, and the boot-time runner.
//!
//! Most users depend on the `preflight` crate, which re-exports this one.

#![warn(missing_docs)]

pub mod build;
pub mod checksum;
mod migration;
pub mod source;
mod version;

pub use checksum::Checksum;
pub use migration::{Body, Kind, Migration, MigrationParts, MigrationSpec, Migrations, Span};
pub use version::{Version, VersionError};

// The boot-time runner (issue #3): plan and policies are backend-free; the PostgreSQL backend
// implements the private `backend::Backend` trait for the sync and async drivers.
// Without a driver feature nothing runs the loop yet (the model is still used by the macro).
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
mod backend;
pub mod error;
pub mod history;
pub mod lock;
pub mod plan;
#[cfg(feature = "pg-common")]
mod postgres;
mod report;
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
mod runner;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
mod unit;

#[cfg(any(feature = "deadpool", feature = "bb8", feature = "r2d2"))]
pub use crate::postgres::pool::{AsyncPool, BlockingPool};
pub use error::{redact_url, DbError, Error, MigrationError, Unfinished};
pub use history::{HistoryRow, State};
pub use lock::LockStrategy;
pub use plan::{Policy, Revert};
pub use report::{Applied, Report, Warning};
pub use runner::{Repair, Runner, DEFAULT_TABLE};

pub mod adopt;
pub use adopt::{Adopt, Tool};
#[cfg(feature = "testing")]
pub mod testing;
