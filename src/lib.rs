//! # Preflight
//!
//! Embed a directory of SQL migrations into your binary at compile time, check them while
//! compiling, and apply them safely and fast when the application boots, before its connection
//! pool is handed out.
//!
//! ```ignore
//! // build.rs: adding, removing or editing a migration file re-embeds
//! fn main() { preflight::build::watch("migrations"); }
//!
//! // main.rs
//! static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations");
//! ```
//!
//! This crate is a facade: the model and the runner live in `preflight-runtime`, the macro in
//! `preflight-macros` (a thin shim over `preflight-check`). See ARCHITECTURE.md.

// The code `embed!` generates names `::preflight::...`; this makes that path work inside this
// crate's own tests and doctests too.
extern crate self as preflight;

pub use preflight_runtime::*;
