//! Compile cost of embedding migrations: Preflight's `embed!` over 10/100/1,000 generated files,
//! sqlx's `migrate!` and refinery's `embed_migrations!` over the same 1,000 (same SQL; refinery
//! needs its own `V{n}__{name}.sql` file names), in a generated workspace whose dependencies
//! are built once (not timed). Per crate: a cold build of the crate, an unchanged rebuild, a
//! rebuild after editing one file; each tool's floor is the same crate without the macro.
//! Then the release binaries' sizes: what embedding 1,000 migrations adds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::gen::{self, Generated, Shape};
use crate::report::{Measure, Table};
use crate::scenarios::rotation;
use crate::stats::{fmt_bytes, fmt_ms, Samples};

/// Which macro a generated crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Macro {
    Preflight,
    Sqlx,
    Refinery,
}

impl Macro {
    fn label(self) -> &'static str {
        match self {
            Macro::Preflight => "Preflight `embed!`",
            Macro::Sqlx => "sqlx 0.9 `migrate!`",
            Macro::Refinery => "refinery 0.10 `embed_migrations!`",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Macro::Preflight => "embed",
            Macro::Sqlx => "sqlx",
            Macro::Refinery => "refinery",
        }
    }

    fn dependencies(self) -> &'static str {
        match self {
            Macro::Preflight => {
                "[dependencies]\npreflight = { workspace = true }\n\n\
                 [build-dependencies]\npreflight = { workspace = true }\n"
            }
            Macro::Sqlx => {
                "[dependencies]\nsqlx = { version = \"0.9\", default-features = false, \
                 features = [\"runtime-tokio\", \"postgres\", \"macros\", \"migrate\"] }\n"
            }
            Macro::Refinery => {
                "[dependencies]\nrefinery = { version = \"0.10\", default-features = false, \
                 features = [\"tokio-postgres\"] }\n"
            }
        }
    }

    /// The build script: each tool's documented way to notice changed migration files.
    fn build_rs(self) -> &'static str {
        match self {
            Macro::Preflight => "fn main() {\n    preflight::build::watch(\"migrations\");\n}\n",
            Macro::Sqlx | Macro::Refinery => {
                "fn main() {\n    println!(\"cargo:rerun-if-changed=migrations\");\n}\n"
            }
        }
    }

    /// `main.rs`; `black_box` keeps the embedded set in the binary (a constant-folded length
    /// would let the linker drop it).
    fn main_rs(self, embed: bool) -> &'static str {
        match (self, embed) {
            (_, false) => "fn main() {\n    println!(\"{}\", std::hint::black_box(0usize));\n}\n",
            (Macro::Preflight, true) => {
                "static MIGRATIONS: preflight::Migrations = preflight::embed!(\"migrations\");\n\n\
                 fn main() {\n    let m = std::hint::black_box(&MIGRATIONS);\n    \
                 println!(\"{}\", m.iter().map(|m| m.up().statement_count()).sum::<usize>());\n}\n"
            }
            (Macro::Sqlx, true) => {
                "static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!(\"./migrations\");\n\n\
                 fn main() {\n    let m = std::hint::black_box(&MIGRATOR);\n    \
                 println!(\"{}\", m.iter().map(|m| m.sql.as_str().len()).sum::<usize>());\n}\n"
            }
            (Macro::Refinery, true) => {
                "mod embedded {\n    refinery::embed_migrations!(\"migrations\");\n}\n\n\
                 fn main() {\n    let r = std::hint::black_box(embedded::migrations::runner());\n    \
                 println!(\"{}\", r.get_migrations().iter().map(|m| m.sql().map_or(0, str::len)).sum::<usize>());\n}\n"
            }
        }
    }

    fn file_name(self, m: &Generated) -> String {
        match self {
            Macro::Refinery => format!("V{}__{}.sql", m.version, m.name),
            Macro::Preflight | Macro::Sqlx => gen::file_name(m),
        }
    }
}

/// A crate of the generated workspace.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    tool: Macro,
    /// Migrations embedded; `None`: the floor (no macro).
    size: Option<u32>,
    /// Its build times are measured (otherwise it is built for the binary sizes only).
    timed: bool,
}

/// Where the generated workspace lives: under `CARGO_TARGET_DIR` when set, so that its
/// dependencies stay built between runs.
fn base_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("compile-bench"),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join("compile-bench"),
    }
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create a directory of the generated workspace");
    }
    std::fs::write(path, text).expect("write a file of the generated workspace");
}

fn generate(ws: &Path, members: &[Member]) {
    let preflight = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the bench crate sits in the Preflight workspace")
        .to_path_buf();
    let list = members
        .iter()
        .map(|m| format!("\"{}\"", m.name))
        .collect::<Vec<_>>()
        .join(", ");
    write(
        &ws.join("Cargo.toml"),
        &format!(
            "[workspace]\nmembers = [{list}]\nresolver = \"2\"\n\n[workspace.dependencies]\n\
             preflight = {{ path = {p:?} }}\n",
            p = preflight.display().to_string()
        ),
    );
    // Same dependency versions as the Preflight workspace.
    if !ws.join("Cargo.lock").exists() {
        let _ = std::fs::copy(preflight.join("Cargo.lock"), ws.join("Cargo.lock"));
    }
    for m in members {
        let dir = ws.join(&m.name);
        write(
            &dir.join("Cargo.toml"),
            &format!(
                "[package]\nname = \"{}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n{}",
                m.name,
                m.tool.dependencies()
            ),
        );
        write(&dir.join("build.rs"), m.tool.build_rs());
        write(&dir.join("src/main.rs"), m.tool.main_rs(m.size.is_some()));
        let migrations = dir.join("migrations");
        let _ = std::fs::remove_dir_all(&migrations);
        std::fs::create_dir_all(&migrations).expect("create a migrations directory");
        if let Some(n) = m.size {
            for g in gen::migrations(Shape::Light, n) {
                std::fs::write(migrations.join(m.tool.file_name(&g)), &g.sql)
                    .expect("write a migration file");
            }
        }
    }
}

fn cargo(ws: &Path, args: &[&str]) -> Result<Duration, String> {
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

const KINDS: [&str; 3] = [
    "cold build of the crate",
    "unchanged rebuild",
    "rebuild after editing one file",
];

/// The compile-time tables and the binary-size table. `peers_at`: the size at which sqlx and
/// refinery are measured too (their crates embed the same files).
pub fn compile(sizes: &[u32], rounds: usize, peers_at: Option<u32>) -> Vec<String> {
    let mut members: Vec<Member> = sizes
        .iter()
        .map(|&n| Member {
            name: format!("embed_{n}"),
            tool: Macro::Preflight,
            size: Some(n),
            timed: true,
        })
        .collect();
    let tools: &[Macro] = if peers_at.is_some() {
        &[Macro::Preflight, Macro::Sqlx, Macro::Refinery]
    } else {
        &[Macro::Preflight]
    };
    let smallest = sizes.iter().copied().min().unwrap_or(10);
    for &tool in tools {
        if let (Some(n), true) = (peers_at, tool != Macro::Preflight) {
            // The smallest size too, untimed, for the binary size each migration adds.
            if smallest < n {
                members.push(Member {
                    name: format!("{}_{smallest}", tool.prefix()),
                    tool,
                    size: Some(smallest),
                    timed: false,
                });
            }
            members.push(Member {
                name: format!("{}_{n}", tool.prefix()),
                tool,
                size: Some(n),
                timed: true,
            });
        }
        members.push(Member {
            name: format!("{}_floor", tool.prefix()),
            tool,
            size: None,
            timed: true,
        });
    }
    let ws = base_dir();
    eprintln!("compile time: generated workspace in {}", ws.display());
    generate(&ws, &members);
    // Each crate once on its own, not timed: its dependencies are then built with the
    // features that crate alone selects (a `--workspace` build would unify them across the
    // crates, and building one crate afterwards would rebuild its dependencies).
    eprintln!("  building each crate's dependencies (not timed)");
    for m in &members {
        if let Err(e) = cargo(&ws, &["build", "--quiet", "-p", &m.name]) {
            return vec![format!(
                "#### Compile time\n\nnot measured: the generated crate {} does not build: {e}\n",
                m.name
            )];
        }
    }
    // samples[member][kind]
    let mut samples: Vec<[Samples; 3]> = vec![Default::default(); members.len()];
    let mut errors: Vec<Option<String>> = vec![None; members.len()];
    let indices: Vec<usize> = (0..members.len()).filter(|&i| members[i].timed).collect();
    for round in 0..rounds {
        for i in rotation(&indices, round) {
            let m = &members[i];
            let run = || -> Result<[Duration; 3], String> {
                cargo(&ws, &["clean", "--quiet", "-p", &m.name])?;
                let cold = cargo(&ws, &["build", "--quiet", "-p", &m.name])?;
                let unchanged = cargo(&ws, &["build", "--quiet", "-p", &m.name])?;
                // Edit one file (a floor's build script watches an empty directory: add one).
                let dir = ws.join(&m.name).join("migrations");
                let edited = match m.size {
                    Some(n) => dir.join(
                        m.tool
                            .file_name(&gen::migrations(Shape::Light, n)[(n as usize) / 2]),
                    ),
                    None => dir.join("README.md"),
                };
                let mut text = std::fs::read_to_string(&edited).unwrap_or_default();
                text.push_str(&format!("-- edited in round {round}\n"));
                std::fs::write(&edited, text)
                    .map_err(|e| format!("cannot edit {edited:?}: {e}"))?;
                let after_edit = cargo(&ws, &["build", "--quiet", "-p", &m.name])?;
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
    let mut out = Vec::new();
    let floor_of = |tool: Macro| {
        members
            .iter()
            .position(|m| m.tool == tool && m.size.is_none())
    };
    for &n in sizes {
        for (k, kind) in KINDS.iter().enumerate() {
            let mut t = Table::new(format!("Compile: {n} migration files, {kind}"));
            t.say(format!(
                "{} (cold, unchanged and edited in a row per crate; crates \
                 alternate), dev profile, the crate's dependencies already built. Each tool's \
                 floor is the same crate without the macro (same dependencies and build \
                 script). Build scripts: Preflight `preflight::build::watch(\"migrations\")`, \
                 sqlx and refinery `cargo:rerun-if-changed=migrations` (what their docs advise \
                 for noticing new files).",
                crate::report::rounds(rounds)
            ));
            for &tool in tools {
                let with = members
                    .iter()
                    .position(|m| m.timed && m.tool == tool && m.size == Some(n));
                let Some(with) = with else { continue };
                let Some(floor) = floor_of(tool) else {
                    continue;
                };
                let mut fm = Measure {
                    samples: samples[floor][k].clone(),
                    notes: Vec::new(),
                };
                if let Some(e) = &errors[floor] {
                    fm.note(format!("error: {e}"));
                }
                let mut wm = Measure {
                    samples: samples[with][k].clone(),
                    notes: Vec::new(),
                };
                if let Some(e) = &errors[with] {
                    wm.note(format!("error: {e}"));
                }
                if let (Some(a), Some(b)) = (wm.median(), fm.median()) {
                    wm.note(format!("{} over its floor", signed_ms(a - b)));
                }
                t.push(
                    format!("floor: {} crate without the macro", tool_name(tool)),
                    true,
                    fm,
                );
                t.push(tool.label(), false, wm);
            }
            out.push(t.markdown());
        }
    }
    out.push(sizes_table(&ws, &members));
    out
}

fn tool_name(tool: Macro) -> &'static str {
    match tool {
        Macro::Preflight => "Preflight",
        Macro::Sqlx => "sqlx",
        Macro::Refinery => "refinery",
    }
}

fn signed_ms(d: f64) -> String {
    format!("{}{}", if d < 0.0 { "−" } else { "+" }, fmt_ms(d.abs()))
}

/// Release binaries: each embedding crate beside its tool's floor.
fn sizes_table(ws: &Path, members: &[Member]) -> String {
    eprintln!("  release builds for the binary sizes");
    let mut out = String::from(
        "#### Binary size added by embedding the migrations (release profile)\n\n\
         One release build per crate (sizes do not vary between builds). Each crate's `main` \
         reads the whole embedded set through `std::hint::black_box`, so the linker keeps it; \
         \"added\" is everything embedding brings (the set and the library code that reads \
         it), the last column only what each further migration adds.\n\n\
         | tool | migrations | binary | floor (same crate without the macro) | added | per migration, from the smallest set to this one |\n\
         |---|---|---|---|---|---|\n",
    );
    let size_of = |m: &Member| -> Result<u64, String> {
        cargo(ws, &["build", "--release", "--quiet", "-p", &m.name])?;
        std::fs::metadata(ws.join("target/release").join(&m.name))
            .map(|md| md.len())
            .map_err(|e| format!("no binary: {e}"))
    };
    for tool in [Macro::Preflight, Macro::Sqlx, Macro::Refinery] {
        let Some(floor) = members.iter().find(|m| m.tool == tool && m.size.is_none()) else {
            continue;
        };
        let floor_size = size_of(floor);
        let mut embedding: Vec<&Member> = members
            .iter()
            .filter(|m| m.tool == tool && m.size.is_some())
            .collect();
        embedding.sort_by_key(|m| m.size);
        let mut smallest: Option<(u32, u64)> = None;
        for m in embedding {
            let n = m.size.unwrap_or(0);
            let row = match (size_of(m), &floor_size) {
                (Ok(with), Ok(without)) => {
                    let added = with as f64 - *without as f64;
                    let marginal = match smallest {
                        Some((k, size)) if k < n => {
                            fmt_bytes((with as f64 - size as f64) / f64::from(n - k))
                        }
                        _ => "—".to_owned(),
                    };
                    if smallest.is_none() {
                        smallest = Some((n, with));
                    }
                    format!(
                        "| {} | {n} | {} | {} | {} | {marginal} |\n",
                        tool.label(),
                        fmt_bytes(with as f64),
                        fmt_bytes(*without as f64),
                        fmt_bytes(added),
                    )
                }
                (Err(e), _) => format!("| {} | {n} | error: {e} | | | |\n", tool.label()),
                (_, Err(e)) => format!("| {} | {n} | | error: {e} | | |\n", tool.label()),
            };
            out.push_str(&row);
        }
    }
    out.push('\n');
    out
}
