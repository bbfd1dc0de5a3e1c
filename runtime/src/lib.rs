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
pub use version::{Version, VersionError, MAX_PARTS};

#[cfg(feature = "testing")]
pub mod testing;
