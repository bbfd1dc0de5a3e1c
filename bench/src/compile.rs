//! Compile time of `preflight::embed!` over 10/100/1,000 generated files, in a generated
//! workspace whose dependencies are built once (not timed): a cold build of the embedding crate,
//! an unchanged rebuild, and a rebuild after editing one file. The floor is the same crate
//! without the `embed!` call.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::gen::{self, Shape};
use crate::report::{Measure, Row};
use crate::stats::Samples;

const FLOOR: &str = "floor";

fn crate_name(n: u32) -> String {
    format!("embed_{n}")
}

/// Where the generated workspace lives: under `CARGO_TARGET_DIR` when set, so that its
/// dependencies stay built between runs.
fn base_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("compile-bench"),
        None => std::env::temp_dir().join("preflight-compile-bench"),
    }
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create a directory of the generated workspace");
    }
    std::fs::write(path, text).expect("write a file of the generated workspace");
}

fn generate(ws: &Path, sizes: &[u32]) {
    let preflight = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the bench crate sits in the Preflight workspace")
        .to_path_buf();
    let mut members: Vec<String> = sizes.iter().map(|&n| crate_name(n)).collect();
    members.push(FLOOR.to_owned());
    let list = members
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    write(
        &ws.join("Cargo.toml"),
        &format!(
            "[workspace]\nmembers = [{list}]\nresolver = \"2\"\n\n[workspace.dependencies]\n\
             preflight = {{ path = {p:?} }}\npreflight-build = {{ package = \"preflight\", path = {p:?}, default-features = false }}\n",
            p = preflight.display().to_string()
        ),
    );
    // Same dependency versions as the Preflight workspace.
    let _ = std::fs::copy(preflight.join("Cargo.lock"), ws.join("Cargo.lock"));
    for member in &members {
        let dir = ws.join(member);
        write(
            &dir.join("Cargo.toml"),
            &format!(
                "[package]\nname = \"{member}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
                 [dependencies]\npreflight = {{ workspace = true }}\n\n\
                 [build-dependencies]\npreflight = {{ workspace = true, package = \"preflight\", default-features = false }}\n"
            ),
        );
        write(
            &dir.join("build.rs"),
            "fn main() {\n    preflight::build::watch(\"migrations\");\n}\n",
        );
        let main = if member == FLOOR {
            "fn main() {\n    println!(\"0\");\n}\n".to_owned()
        } else {
            "static MIGRATIONS: preflight::Migrations = preflight::embed!(\"migrations\");\n\n\
             fn main() {\n    println!(\"{}\", MIGRATIONS.len());\n}\n"
                .to_owned()
        };
        write(&dir.join("src/main.rs"), &main);
    }
    for &n in sizes {
        gen::write_dir(
            &ws.join(crate_name(n)).join("migrations"),
            &gen::migrations(Shape::Light, n),
        );
    }
    std::fs::create_dir_all(ws.join(FLOOR).join("migrations")).expect("create a directory");
}

fn cargo(ws: &Path, args: &[&str]) -> Result<std::time::Duration, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let start = Instant::now();
    let out = Command::new(cargo)
        .args(args)
        .current_dir(ws)
        .env("CARGO_TARGET_DIR", ws.join("target"))
        .env_remove("RUSTFLAGS")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let elapsed = start.elapsed();
    if out.status.success() {
        Ok(elapsed)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("cargo failed")
            .to_owned();
        Err(first)
    }
}

/// Runs the compile-time scenario.
pub fn compile(sizes: &[u32], rounds: usize) -> Vec<Row> {
    let macro_ready =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/lib.rs"))
            .is_ok_and(|s| s.contains("pub use preflight_macros::embed"));
    let label = |n: u32, what: &str| format!("compile: `embed!` of {n} files, {what}");
    let kinds = [
        "cold build of the crate",
        "unchanged rebuild",
        "rebuild after editing one file",
    ];
    if !macro_ready {
        return sizes
            .iter()
            .flat_map(|&n| kinds.map(|k| (n, k)))
            .map(|(n, k)| {
                let mut r = Row::new(label(n, k));
                r.preflight = Measure::text("not measured: macro not ready");
                r
            })
            .collect();
    }
    let ws = base_dir();
    eprintln!("compile time: generated workspace in {}", ws.display());
    generate(&ws, sizes);
    // Dependencies once, not timed.
    eprintln!("  building the dependencies (not timed)");
    if let Err(e) = cargo(&ws, &["build", "--workspace", "--quiet"]) {
        return vec![{
            let mut r = Row::new("compile: `embed!`");
            r.preflight = Measure::text(format!(
                "not measured: the generated crate does not build: {e}"
            ));
            r
        }];
    }
    let mut members: Vec<(String, Option<u32>)> =
        sizes.iter().map(|&n| (crate_name(n), Some(n))).collect();
    members.push((FLOOR.to_owned(), None));
    // samples[member][kind]
    let mut samples: Vec<[Samples; 3]> = vec![Default::default(); members.len()];
    let mut errors: Vec<Option<String>> = vec![None; members.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.rotate_left(round % members.len());
        for i in order {
            let (name, n) = &members[i];
            let run = || -> Result<[std::time::Duration; 3], String> {
                cargo(&ws, &["clean", "--quiet", "-p", name])?;
                let cold = cargo(&ws, &["build", "--quiet", "-p", name])?;
                let unchanged = cargo(&ws, &["build", "--quiet", "-p", name])?;
                // Edit one file (the floor's build script watches an empty directory: add one).
                let edited = match n {
                    Some(n) => ws.join(name).join("migrations").join(gen::file_name(
                        &gen::migrations(Shape::Light, *n)[(*n as usize) / 2],
                    )),
                    None => ws.join(name).join("migrations").join("README.md"),
                };
                let mut text = std::fs::read_to_string(&edited).unwrap_or_default();
                text.push_str(&format!("-- edited in round {round}\n"));
                std::fs::write(&edited, text)
                    .map_err(|e| format!("cannot edit {edited:?}: {e}"))?;
                let after_edit = cargo(&ws, &["build", "--quiet", "-p", name])?;
                Ok([cold, unchanged, after_edit])
            };
            match run() {
                Ok(t) => {
                    for (k, d) in t.into_iter().enumerate() {
                        samples[i][k].push(d);
                    }
                }
                Err(e) => errors[i] = Some(e),
            }
        }
    }
    let floor_index = members.len() - 1;
    let mut rows = Vec::new();
    for (i, (_, n)) in members.iter().enumerate() {
        let Some(n) = n else { continue };
        for (k, kind) in kinds.iter().enumerate() {
            let mut r = Row::new(label(*n, kind));
            r.preflight.samples = samples[i][k].clone();
            if let Some(e) = &errors[i] {
                r.preflight.note(format!("error: {e}"));
            }
            r.floor.samples = samples[floor_index][k].clone();
            r.floor.note("same crate without `embed!`");
            r.refinery = Measure::text("not measured");
            r.sqlx = Measure::text("not measured");
            rows.push(r);
        }
    }
    rows
}
