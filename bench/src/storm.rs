//! Scenarios run in child processes (this binary in its child role): the storm (many
//! processes booting at once on an empty database) and the peak memory of a no-op boot.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use preflight_runtime::testing::TestDatabase;

use crate::gen::{self, Shape};
use crate::report::{Measure, Table};
use crate::scenarios::{check_applied, rotation, runtime, shorten, Plan};
use crate::stats::{fmt_bytes, Samples};
use crate::tools::{boot, Prepared, Tool};

/// The child role: boot once, then print `ok <unix nanos> <peak RSS in KiB>` (or `err ...`).
pub fn child(tool: &str, url: &str, dir: &Path) -> i32 {
    let result = (|| {
        let tool = Tool::parse(tool).ok_or_else(|| format!("unknown tool {tool}"))?;
        let rt = runtime();
        let generated = gen::read_dir(dir)?;
        let prepared = Prepared::from_parts(&rt, dir, &generated, None);
        boot(&rt, tool, url, &prepared)
    })();
    match result {
        Ok(_) => {
            println!("ok {} {}", unix_nanos(), peak_rss_kib().unwrap_or(0));
            0
        }
        Err(e) => {
            println!("err {}", e.replace('\n', " "));
            1
        }
    }
}

/// `VmHWM` of this process: its peak resident set size.
fn peak_rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// What a group of child processes did.
struct Children {
    /// First spawn to last success.
    total: Duration,
    /// Peak RSS of each successful child, in bytes.
    peaks: Vec<u64>,
    failed: usize,
    first_error: Option<String>,
}

/// Spawns `processes` copies of this binary in the child role, all at once, on `url`.
fn spawn(tool: Tool, url: &str, dir: &Path, processes: usize) -> Result<Children, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let t0 = unix_nanos();
    let mut children = Vec::with_capacity(processes);
    for _ in 0..processes {
        let child = Command::new(&exe)
            .args(["--child", tool.name(), "--url", url, "--dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot spawn a child: {e}"))?;
        children.push(child);
    }
    let mut last_ok = None::<u128>;
    let mut peaks = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    for child in children {
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for a child: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("").to_owned();
        let mut words = line.split_whitespace();
        let ok = (words.next() == Some("ok"))
            .then(|| words.next().and_then(|t| t.parse::<u128>().ok()))
            .flatten();
        match ok {
            Some(t) => {
                last_ok = Some(last_ok.map_or(t, |l| l.max(t)));
                if let Some(kib) = words.next().and_then(|k| k.parse::<u64>().ok()) {
                    peaks.push(kib * 1024);
                }
            }
            None => {
                failed += 1;
                if first_error.is_none() {
                    first_error = Some(if line.is_empty() {
                        format!("child exited with {}", out.status)
                    } else {
                        line.trim_start_matches("err ").to_owned()
                    });
                }
            }
        }
    }
    let total = last_ok
        .map(|t| Duration::from_nanos(t.saturating_sub(t0).try_into().unwrap_or(u64::MAX)))
        .ok_or_else(|| {
            format!(
                "no process succeeded: {}",
                first_error.clone().unwrap_or_default()
            )
        })?;
    Ok(Children {
        total,
        peaks,
        failed,
        first_error,
    })
}

const STORM: [Tool; 4] = [
    Tool::ConnectSelect1,
    Tool::Preflight,
    Tool::Refinery,
    Tool::Sqlx,
];

/// `storm_processes` processes booting at once on an empty database, and one alone.
pub fn storm(work: &Path, plan: &Plan) -> Vec<Table> {
    let n = plan.storm_count;
    let k = plan.storm_processes;
    eprintln!("storm: {k} processes, {n} light migrations");
    let set = gen::write(work, Shape::Light, n);
    let mut single: HashMap<Tool, Measure> = HashMap::new();
    let mut many: HashMap<Tool, Measure> = HashMap::new();
    let mut failures: HashMap<Tool, (usize, usize)> = HashMap::new();
    for round in 0..plan.rounds {
        for tool in rotation(&STORM, round) {
            // Alternate which of the two goes first, too.
            let order = if round % 2 == 0 { [1, k] } else { [k, 1] };
            for processes in order {
                let db = TestDatabase::empty();
                let target = if processes == 1 {
                    single.entry(tool).or_default()
                } else {
                    many.entry(tool).or_default()
                };
                match spawn(tool, db.url(), &set.dir, processes) {
                    Ok(r) => {
                        target.samples.push(r.total);
                        if processes > 1 {
                            let f = failures.entry(tool).or_default();
                            f.0 += r.failed;
                            f.1 += processes;
                        }
                        if let Some(e) = r.first_error {
                            target.note(format!("e.g. {}", shorten(&e)));
                        }
                        if tool != Tool::ConnectSelect1 {
                            if let Err(e) = check_applied(db.url(), Shape::Light, n) {
                                target.note(e);
                            }
                        }
                    }
                    Err(e) => target.note(format!("error: {}", shorten(&e))),
                }
            }
        }
    }
    let mut storm = Table::new(format!(
        "Storm: {k} processes boot at once on an empty database ({n} light migrations)"
    ));
    storm.say(format!(
        "{}. The bench spawns itself {k} times at once in a child role; the time runs \
         from the first spawn to the last child's success. The floor is {k} processes spawned \
         the same way that only connect and `SELECT 1`: what starting that many processes \
         costs on this machine, whatever they then do. Ratios divide by that storm floor.",
        crate::report::rounds(plan.rounds)
    ));
    let mut alone = Table::new(format!(
        "Single boot, same set, one process spawned the same way ({n} light migrations)"
    ));
    alone.say(format!(
        "{}, alternating with the storm runs.",
        crate::report::rounds(plan.rounds)
    ));
    for tool in STORM {
        let mut m = many.remove(&tool).unwrap_or_default();
        if let Some((failed, of)) = failures.get(&tool) {
            m.notes.insert(0, format!("{failed}/{of} processes failed"));
        }
        let label = |t: Tool| {
            if t == Tool::ConnectSelect1 {
                format!("floor: {k} × connect + SELECT 1")
            } else {
                t.label().to_owned()
            }
        };
        storm.push(label(tool), tool.is_floor(), m);
        let s = single.remove(&tool).unwrap_or_default();
        alone.push(tool.label(), tool.is_floor(), s);
    }
    vec![storm, alone]
}

const MEMORY: [Tool; 6] = [
    Tool::ConnectSelect1,
    Tool::ConnectSelect1Blocking,
    Tool::Preflight,
    Tool::PreflightBlocking,
    Tool::Refinery,
    Tool::Sqlx,
];

/// Peak resident memory of a process doing one no-op boot at `n` applied.
pub fn memory(work: &Path, plan: &Plan, n: u32) -> Table {
    eprintln!("peak memory of a no-op boot, {n} applied");
    let rt = runtime();
    let set = gen::write(work, Shape::Light, n);
    let prepared = Prepared::new(&rt, &set);
    let dbs: HashMap<Tool, TestDatabase> = [Tool::Preflight, Tool::Refinery, Tool::Sqlx]
        .into_iter()
        .map(|t| (t, TestDatabase::empty()))
        .collect();
    let mut by_tool: HashMap<Tool, Measure> = HashMap::new();
    for (&tool, db) in &dbs {
        if let Err(e) = boot(&rt, tool, db.url(), &prepared) {
            by_tool
                .entry(tool)
                .or_default()
                .note(format!("setup: {}", shorten(&e)));
        }
    }
    for round in 0..plan.rounds {
        for tool in rotation(&MEMORY, round) {
            let m = by_tool.entry(tool).or_insert_with(|| Measure {
                samples: Samples::of(crate::stats::Unit::Bytes),
                notes: Vec::new(),
            });
            match spawn(tool, dbs[&tool.setup()].url(), &set.dir, 1) {
                Ok(r) => match r.peaks.first() {
                    Some(&bytes) => m.samples.push_bytes(bytes),
                    None => m.note("no VmHWM in /proc/self/status"),
                },
                Err(e) => m.note(format!("error: {}", shorten(&e))),
            }
        }
    }
    let mut t = Table::new(format!("Peak memory (RSS) of a no-op boot, {n} applied"));
    t.say(format!(
        "{}. One process per run (this binary in its child role), `VmHWM` from \
         `/proc/self/status` after the boot. Every child first loads the set in all three tools' \
         forms (as the storm's children do; an application has it compiled in), so the floors \
         include that: compare the differences.",
        crate::report::rounds(plan.rounds)
    ));
    let floor_of = |t: Tool| {
        if matches!(t, Tool::PreflightBlocking | Tool::ConnectSelect1Blocking) {
            Tool::ConnectSelect1Blocking
        } else {
            Tool::ConnectSelect1
        }
    };
    let floor_median = |t: Tool| by_tool.get(&floor_of(t)).and_then(|m| m.median());
    let mut entries = Vec::new();
    for tool in MEMORY {
        let mut m = by_tool.get(&tool).cloned().unwrap_or_default();
        if !tool.is_floor() {
            if let (Some(v), Some(f)) = (m.median(), floor_median(tool)) {
                m.note(format!("{} over its driver's floor", fmt_bytes(v - f)));
            }
        }
        entries.push((tool, m));
    }
    for (tool, m) in entries {
        t.push(tool.label(), tool.is_floor(), m);
    }
    t
}
