//! For the user's `build.rs`: make cargo re-expand `embed!` when a migration file is added,
//! removed or edited.

/// Tells cargo to rerun the build script, and so recompile the crate that embeds the
/// migrations, whenever anything under `dir` (relative to the crate's `Cargo.toml`) changes.
///
/// `include_str!` alone notices edits to files already embedded, but not a newly added file;
/// watching the directory covers both. Call it from `build.rs`:
///
/// ```no_run
/// // build.rs
/// preflight_runtime::build::watch("migrations");
/// ```
///
/// It needs no database driver: depend on `preflight` with `default-features = false` in
/// `[build-dependencies]`.
pub fn watch(dir: &str) {
    println!("cargo:rerun-if-changed={dir}");
}
