//! The contenders on PostgreSQL and the floors, each measured as "connect, then do the thing".

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio::runtime::Runtime;

use crate::gen::{self, Generated, Set};
use crate::preflight_impl;
use crate::probe::{self, Commits};

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// Preflight, async driver (`run_async` on tokio-postgres), default settings.
    Preflight,
    /// Preflight, async driver, `synchronous_commits(true)`.
    PreflightSynced,
    /// Preflight, blocking driver (`run` on postgres), default settings.
    PreflightBlocking,
    /// refinery 0.10, `Runner::run_async` on tokio-postgres, default settings.
    Refinery,
    /// refinery 0.10, `set_grouped(true)`: one transaction for the run.
    RefineryGrouped,
    /// sqlx 0.9, `Migrator::run` on a `PgConnection`.
    Sqlx,
    /// tokio-postgres connect + `SELECT 1`: the no-op floor.
    ConnectSelect1,
    /// postgres (blocking) connect + `SELECT 1`: the floor of the blocking driver.
    ConnectSelect1Blocking,
    /// `psql -1 -f`: the SQL in one transaction, by the PostgreSQL client.
    Psql,
    /// tokio-postgres connect + one `batch_execute` of the concatenated SQL (one transaction).
    BatchExecute,
    /// The pipelined probe: a transaction and a history row per migration, asynchronous
    /// commits but the last.
    Probe,
    /// The pipelined probe with every commit synchronous.
    ProbeSynced,
}

pub const ALL: [Tool; 12] = [
    Tool::Preflight,
    Tool::PreflightSynced,
    Tool::PreflightBlocking,
    Tool::Refinery,
    Tool::RefineryGrouped,
    Tool::Sqlx,
    Tool::ConnectSelect1,
    Tool::ConnectSelect1Blocking,
    Tool::Psql,
    Tool::BatchExecute,
    Tool::Probe,
    Tool::ProbeSynced,
];

/// The apply contenders: floors first.
pub const APPLY: [Tool; 10] = [
    Tool::Psql,
    Tool::BatchExecute,
    Tool::Probe,
    Tool::ProbeSynced,
    Tool::Preflight,
    Tool::PreflightSynced,
    Tool::PreflightBlocking,
    Tool::Refinery,
    Tool::RefineryGrouped,
    Tool::Sqlx,
];

/// The no-op boot contenders: floors first.
pub const NOOP: [Tool; 6] = [
    Tool::ConnectSelect1,
    Tool::ConnectSelect1Blocking,
    Tool::Preflight,
    Tool::PreflightBlocking,
    Tool::Refinery,
    Tool::Sqlx,
];

impl Tool {
    /// A short name (command lines, child processes).
    pub fn name(self) -> &'static str {
        match self {
            Tool::Preflight => "preflight",
            Tool::PreflightSynced => "preflight-synced",
            Tool::PreflightBlocking => "preflight-blocking",
            Tool::Refinery => "refinery",
            Tool::RefineryGrouped => "refinery-grouped",
            Tool::Sqlx => "sqlx",
            Tool::ConnectSelect1 => "connect+select1",
            Tool::ConnectSelect1Blocking => "connect+select1-blocking",
            Tool::Psql => "psql",
            Tool::BatchExecute => "batch-execute",
            Tool::Probe => "probe",
            Tool::ProbeSynced => "probe-synced",
        }
    }

    pub fn parse(name: &str) -> Option<Tool> {
        ALL.into_iter().find(|t| t.name() == name)
    }

    /// The row label in the tables (the contenders table says what each does).
    pub fn label(self) -> &'static str {
        match self {
            Tool::Preflight => "Preflight",
            Tool::PreflightSynced => "Preflight, every commit synchronous",
            Tool::PreflightBlocking => "Preflight, blocking driver",
            Tool::Refinery => "refinery 0.10",
            Tool::RefineryGrouped => "refinery 0.10, grouped",
            Tool::Sqlx => "sqlx 0.9",
            Tool::ConnectSelect1 => "floor: connect + SELECT 1",
            Tool::ConnectSelect1Blocking => "floor: connect + SELECT 1, blocking",
            Tool::Psql => "floor: psql -1 -f",
            Tool::BatchExecute => "floor: one batch_execute",
            Tool::Probe => "floor: pipelined probe",
            Tool::ProbeSynced => "floor: pipelined probe, synchronous commits",
        }
    }

    /// What it does, for the contenders table: (client, transactions, commits, lock).
    pub fn settings(self) -> [&'static str; 4] {
        const ASYNC_BUT_LAST: &str = "every migration but the run's last with \
             `SET LOCAL synchronous_commit = off`; the last waits for the WAL flush, which makes \
             the run durable before it returns";
        const SYNC: &str = "each waits for the WAL flush (`synchronous_commit = on`)";
        const ONE_PER_MIGRATION: &str = "one per migration, with its history row";
        match self {
            Tool::Preflight => [
                "tokio-postgres; windows of up to 64 migrations per round trip",
                ONE_PER_MIGRATION,
                ASYNC_BUT_LAST,
                "advisory try-lock, polled",
            ],
            Tool::PreflightSynced => [
                "tokio-postgres; windows of up to 64 migrations per round trip",
                ONE_PER_MIGRATION,
                SYNC,
                "advisory try-lock, polled",
            ],
            Tool::PreflightBlocking => [
                "postgres (blocking); one migration at a time",
                ONE_PER_MIGRATION,
                ASYNC_BUT_LAST,
                "advisory try-lock, polled",
            ],
            Tool::Refinery => [
                "tokio-postgres; a round trip per statement",
                ONE_PER_MIGRATION,
                SYNC,
                "none",
            ],
            Tool::RefineryGrouped => [
                "tokio-postgres; a round trip per statement",
                "one for the whole run (`set_grouped(true)`)",
                "one, waits for the WAL flush",
                "none",
            ],
            Tool::Sqlx => [
                "sqlx `PgConnection`; a round trip per statement",
                ONE_PER_MIGRATION,
                SYNC,
                "blocking `pg_advisory_lock`",
            ],
            Tool::ConnectSelect1 => ["tokio-postgres", "—", "—", "—"],
            Tool::ConnectSelect1Blocking => ["postgres (blocking)", "—", "—", "—"],
            Tool::Psql => [
                "a `psql` process; a round trip per statement",
                "one for everything (`-1`)",
                "one, waits for the WAL flush",
                "none",
            ],
            Tool::BatchExecute => [
                "tokio-postgres; one simple query (one round trip)",
                "one for everything",
                "one, waits for the WAL flush",
                "none",
            ],
            Tool::Probe => [
                "tokio-postgres; all transactions sent before the first reply is read",
                "one per migration, with a history row (values in the SQL text)",
                ASYNC_BUT_LAST,
                "none",
            ],
            Tool::ProbeSynced => [
                "tokio-postgres; all transactions sent before the first reply is read",
                "one per migration, with a history row (values in the SQL text)",
                SYNC,
                "none",
            ],
        }
    }

    pub fn is_floor(self) -> bool {
        matches!(
            self,
            Tool::ConnectSelect1
                | Tool::ConnectSelect1Blocking
                | Tool::Psql
                | Tool::BatchExecute
                | Tool::Probe
                | Tool::ProbeSynced
        )
    }

    /// The tool whose bookkeeping this one reads: bringing a database to "N applied" for this
    /// tool is done by that one (not timed).
    pub fn setup(self) -> Tool {
        match self {
            Tool::Preflight
            | Tool::PreflightSynced
            | Tool::PreflightBlocking
            | Tool::ConnectSelect1
            | Tool::ConnectSelect1Blocking => Tool::Preflight,
            Tool::Refinery | Tool::RefineryGrouped => Tool::Refinery,
            Tool::Sqlx => Tool::Sqlx,
            Tool::Psql | Tool::BatchExecute => Tool::BatchExecute,
            Tool::Probe | Tool::ProbeSynced => Tool::Probe,
        }
    }
}

/// The contenders table for the report: what each contender does.
pub fn contenders_table(tools: &[Tool]) -> String {
    let mut out = String::from(
        "| contender | client and round trips | transactions | commits | lock |\n|---|---|---|---|---|\n",
    );
    for t in tools {
        let [client, tx, commits, lock] = t.settings();
        out.push_str(&format!(
            "| {} | {client} | {tx} | {commits} | {lock} |\n",
            t.label()
        ));
    }
    out
}

/// A set loaded the way each tool wants it; loading is not timed (an application has it
/// embedded).
pub struct Prepared {
    pub preflight: preflight_runtime::Migrations,
    pub refinery: Vec<refinery::Migration>,
    pub sqlx: sqlx::migrate::Migrator,
    /// What the floors apply: the whole set, or only the migrations a deploy adds.
    pub floor: Vec<Generated>,
    /// `floor` concatenated, as text and as a file (for psql).
    pub floor_sql: String,
    pub floor_file: Option<PathBuf>,
}

impl Prepared {
    /// The whole set; the floors apply all of it.
    pub fn new(rt: &Runtime, set: &Set) -> Prepared {
        Prepared::from_parts(rt, &set.dir, &set.migrations, Some(set.all_sql.clone()))
    }

    /// The whole set; the floors apply only its last `new` migrations (a deploy on top of the
    /// others).
    pub fn deploy(rt: &Runtime, set: &Set, new: usize) -> Prepared {
        let mut p = Prepared::new(rt, set);
        p.floor = set.migrations[set.migrations.len().saturating_sub(new)..].to_vec();
        p.floor_sql = gen::concatenate(&p.floor);
        let file = set.all_sql.with_extension(format!("last{new}.sql"));
        std::fs::write(&file, &p.floor_sql).expect("write the deploy's SQL file");
        p.floor_file = Some(file);
        p
    }

    pub fn from_parts(
        rt: &Runtime,
        dir: &Path,
        generated: &[Generated],
        floor_file: Option<PathBuf>,
    ) -> Prepared {
        let refinery = generated
            .iter()
            .map(|m| {
                refinery::Migration::unapplied(&format!("V{}__{}", m.version, m.name), &m.sql)
                    .expect("generated names are valid refinery names")
            })
            .collect();
        let sqlx = rt
            .block_on(sqlx::migrate::Migrator::new(dir))
            .expect("sqlx reads the generated directory");
        Prepared {
            preflight: preflight_impl::migrations(generated),
            refinery,
            sqlx,
            floor: generated.to_vec(),
            floor_sql: gen::concatenate(generated),
            floor_file,
        }
    }
}

/// What one timed boot did.
#[derive(Debug)]
pub struct Outcome {
    pub elapsed: Duration,
    /// For Preflight: whether it took the one-query fast path.
    pub fast_path: Option<bool>,
}

/// Connects to `url` and runs `tool` once, timed from before connecting to the end of the run
/// (closing the connection is not timed).
pub fn boot(rt: &Runtime, tool: Tool, url: &str, p: &Prepared) -> Result<Outcome, String> {
    let plain = |elapsed| Outcome {
        elapsed,
        fast_path: None,
    };
    match tool {
        Tool::ConnectSelect1 => rt.block_on(async {
            let start = Instant::now();
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let driver = tokio::spawn(connection);
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| format!("SELECT 1: {e}"))?;
            let elapsed = start.elapsed();
            drop(client);
            let _ = driver.await;
            Ok(plain(elapsed))
        }),
        Tool::ConnectSelect1Blocking => {
            let start = Instant::now();
            let mut client = postgres::Client::connect(url, postgres::NoTls)
                .map_err(|e| format!("connect: {e}"))?;
            client
                .simple_query("SELECT 1")
                .map_err(|e| format!("SELECT 1: {e}"))?;
            Ok(plain(start.elapsed()))
        }
        Tool::Preflight | Tool::PreflightSynced => {
            let every_commit_synced = tool == Tool::PreflightSynced;
            let (fast, elapsed) = rt.block_on(preflight_impl::boot_async(
                url,
                &p.preflight,
                every_commit_synced,
            ))?;
            Ok(Outcome {
                elapsed,
                fast_path: Some(fast),
            })
        }
        Tool::PreflightBlocking => {
            let (fast, elapsed) = preflight_impl::boot_blocking(url, &p.preflight)?;
            Ok(Outcome {
                elapsed,
                fast_path: Some(fast),
            })
        }
        Tool::Refinery | Tool::RefineryGrouped => rt.block_on(async {
            let start = Instant::now();
            let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let driver = tokio::spawn(connection);
            refinery::Runner::new(&p.refinery)
                .set_grouped(tool == Tool::RefineryGrouped)
                .run_async(&mut client)
                .await
                .map_err(|e| format!("refinery: {e}"))?;
            let elapsed = start.elapsed();
            drop(client);
            let _ = driver.await;
            Ok(plain(elapsed))
        }),
        Tool::Sqlx => rt.block_on(async {
            let start = Instant::now();
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            p.sqlx
                .run(&mut conn)
                .await
                .map_err(|e| format!("sqlx: {e}"))?;
            let elapsed = start.elapsed();
            let _ = conn.close().await;
            Ok(plain(elapsed))
        }),
        Tool::BatchExecute => rt.block_on(async {
            let start = Instant::now();
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let driver = tokio::spawn(connection);
            // One simple query: the server runs it as one implicit transaction.
            client
                .batch_execute(&p.floor_sql)
                .await
                .map_err(|e| format!("batch_execute: {e}"))?;
            let elapsed = start.elapsed();
            drop(client);
            let _ = driver.await;
            Ok(plain(elapsed))
        }),
        Tool::Probe | Tool::ProbeSynced => {
            let commits = if tool == Tool::Probe {
                Commits::AsyncButLast
            } else {
                Commits::Synchronous
            };
            rt.block_on(probe::apply(url, &p.floor, commits)).map(plain)
        }
        Tool::Psql => {
            let file = p
                .floor_file
                .as_ref()
                .ok_or("psql needs the concatenated file")?;
            let start = Instant::now();
            let out = Command::new("psql")
                .args(["-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f"])
                .arg(file)
                .arg("-d")
                .arg(url)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .output()
                .map_err(|e| {
                    format!("cannot run psql (install the PostgreSQL client, e.g. `apt-get install -y postgresql-client`): {e}")
                })?;
            let elapsed = start.elapsed();
            if out.status.success() {
                Ok(plain(elapsed))
            } else {
                Err(format!(
                    "psql failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
    }
}
