//! `preflight::build::watch` in a real crate: a migration file *added* after a build is
//! embedded by the next `cargo build` (include_str! alone would not notice it), an edited file
//! is re-embedded, and lint findings show up as warnings in cargo's output.
//!
//! The crate lives in a temporary directory and depends on this workspace's `preflight` by path
//! with `default-features = false`, in `[dependencies]` and `[build-dependencies]`. Its target
//! directory sits under this workspace's, so the dependencies compile once, not on every run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    let out = cargo()
        .args(["metadata", "--format-version=1", "--no-deps", "--offline"])
        .current_dir(workspace())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    PathBuf::from(
        metadata["target_directory"]
            .as_str()
            .expect("target_directory"),
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
    std::fs::write(path, text).expect("write file");
}

/// `cargo run` in the crate; returns (stdout, stderr) and fails the test if the build fails.
fn run(dir: &Path, target: &Path) -> (String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cargo()
        .args(["run", "--quiet", "--offline"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert!(status.success(), "cargo run failed:\n{stderr}");
    (stdout, stderr)
}

#[test]
fn a_new_migration_file_is_embedded_by_the_next_build() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let preflight = workspace().display().to_string().replace('\\', "/");
    write(
        &root.join("Cargo.toml"),
        &format!(
            r#"[package]
name = "preflight-watch-test"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
preflight = {{ path = "{preflight}", default-features = false }}

[build-dependencies]
preflight = {{ path = "{preflight}", default-features = false }}

[workspace]
"#
        ),
    );
    // The workspace's lock file keeps the dependency versions (and `--offline`) working.
    std::fs::copy(workspace().join("Cargo.lock"), root.join("Cargo.lock")).expect("copy lock");
    write(
        &root.join("build.rs"),
        "fn main() { preflight::build::watch(\"migrations\"); }\n",
    );
    write(
        &root.join("src/main.rs"),
        r#"static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations");

fn main() {
    let last = MIGRATIONS.last().map(|m| m.chain().to_string()).unwrap_or_default();
    println!("{} {last}", MIGRATIONS.len());
}
"#,
    );
    write(
        &root.join("migrations/1_users.sql"),
        "CREATE TABLE users (id bigint);\n",
    );
    let target = target_dir().join("watch-test");

    let (first, _) = run(root, &target);
    assert!(first.starts_with("1 "), "{first}");

    write(
        &root.join("migrations/2_email.sql"),
        "ALTER TABLE users ADD COLUMN email text;\n",
    );
    let (second, _) = run(root, &target);
    assert!(
        second.starts_with("2 "),
        "the added file was not embedded: {second}"
    );

    write(
        &root.join("migrations/2_email.sql"),
        "ALTER TABLE users ADD COLUMN email varchar(320);\n",
    );
    let (edited, _) = run(root, &target);
    assert!(edited.starts_with("2 "), "{edited}");
    assert_ne!(
        edited, second,
        "the edited file was not re-embedded (same chain)"
    );

    // A lint finding is a warning in cargo's output, on stable Rust.
    write(
        &root.join("migrations/3_index.sql"),
        "CREATE INDEX users_email ON users (email);\n",
    );
    let (third, stderr) = run(root, &target);
    assert!(third.starts_with("3 "), "{third}");
    assert!(
        stderr.contains("migrations/3_index.sql:1:1: warning:")
            && stderr.contains("[require-concurrent-index-creation]"),
        "no lint warning in cargo's output:\n{stderr}"
    );
}
