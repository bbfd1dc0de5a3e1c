//! Compile-time behaviour of `embed!`, through real compilations (trybuild): every layout and
//! trap compiles and runs (`tests/ui/pass`), every error class fails with the expected message
//! (`tests/ui/fail`, with its `.stderr`).
//!
//! trybuild compiles each test in its own generated crate under
//! `<target dir>/tests/trybuild/preflight/`, which is then the `CARGO_MANIFEST_DIR` that
//! `embed!` resolves paths against. A `tests/fixtures` symlink there (made below) makes
//! `embed!("tests/fixtures/...")` mean the same directory as in this repository.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn ui() {
    link_fixtures();
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

/// The target directory trybuild uses: cargo's, as `cargo metadata` reports it.
fn target_dir() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version=1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    PathBuf::from(
        metadata["target_directory"]
            .as_str()
            .expect("target_directory in cargo metadata"),
    )
}

fn link_fixtures() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let project_tests = target_dir().join("tests/trybuild/preflight/tests");
    std::fs::create_dir_all(&project_tests).expect("create trybuild project dir");
    let link = project_tests.join("fixtures");
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link)
            .or_else(|_| std::fs::remove_dir_all(&link))
            .expect("remove old fixtures link");
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(&fixtures, &link).expect("link fixtures");
    #[cfg(not(unix))]
    copy_dir(&fixtures, &link);
    assert!(link.join("updown").is_dir());
}

#[cfg(not(unix))]
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create fixtures copy");
    for entry in std::fs::read_dir(from).expect("read fixtures") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture");
        }
    }
}
