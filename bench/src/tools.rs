//! The contenders and the floors, each measured as "connect, then do the thing".

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio::runtime::Runtime;

use crate::gen::{Generated, Set};
use crate::preflight_impl;

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Preflight, async driver (`run_async` on tokio-postgres).
    Preflight,
    /// Preflight, sync driver (`run` on postgres).
    PreflightSync,
    /// refinery 0.10, `Runner::run_async` on tokio-postgres.
    Refinery,
    /// sqlx 0.9, `Migrator::run` on a `PgConnection`.
    Sqlx,
    /// tokio-postgres connect + `SELECT 1`: the no-op floor.
    ConnectSelect1,
    /// postgres (sync) connect + `SELECT 1`: the floor of the sync driver.
    ConnectSelect1Sync,
    /// `psql -1 -f all.sql`: the apply floor.
    Psql,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Preflight => "preflight",
            Tool::PreflightSync => "preflight-sync",
            Tool::Refinery => "refinery",
            Tool::Sqlx => "sqlx",
            Tool::ConnectSelect1 => "connect+select1",
            Tool::ConnectSelect1Sync => "connect+select1-sync",
            Tool::Psql => "psql",
        }
    }

    pub fn parse(name: &str) -> Option<Tool> {
        [
            Tool::Preflight,
            Tool::PreflightSync,
            Tool::Refinery,
            Tool::Sqlx,
            Tool::ConnectSelect1,
            Tool::ConnectSelect1Sync,
            Tool::Psql,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }

    /// Whether measuring this tool needs the Preflight runner.
    pub fn needs_runner(self) -> bool {
        matches!(self, Tool::Preflight | Tool::PreflightSync)
    }
}

/// A set loaded the way each tool wants it; loading is not timed (an application has it
/// embedded).
pub struct Prepared {
    pub preflight: preflight_runtime::Migrations,
    pub refinery: Vec<refinery::Migration>,
    pub sqlx: sqlx::migrate::Migrator,
    pub all_sql: Option<std::path::PathBuf>,
}

impl Prepared {
    pub fn new(rt: &Runtime, set: &Set) -> Prepared {
        Prepared::from_parts(rt, &set.dir, &set.migrations, Some(set.all_sql.clone()))
    }

    pub fn from_parts(
        rt: &Runtime,
        dir: &Path,
        generated: &[Generated],
        all_sql: Option<std::path::PathBuf>,
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
            all_sql,
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
        Tool::ConnectSelect1Sync => {
            let start = Instant::now();
            let mut client = postgres::Client::connect(url, postgres::NoTls)
                .map_err(|e| format!("connect: {e}"))?;
            client
                .simple_query("SELECT 1")
                .map_err(|e| format!("SELECT 1: {e}"))?;
            Ok(plain(start.elapsed()))
        }
        Tool::Preflight => {
            let (fast, elapsed) = rt.block_on(preflight_impl::boot_async(url, &p.preflight))?;
            Ok(Outcome {
                elapsed,
                fast_path: Some(fast),
            })
        }
        Tool::PreflightSync => {
            let (fast, elapsed) = preflight_impl::boot_sync(url, &p.preflight)?;
            Ok(Outcome {
                elapsed,
                fast_path: Some(fast),
            })
        }
        Tool::Refinery => rt.block_on(async {
            let start = Instant::now();
            let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let driver = tokio::spawn(connection);
            refinery::Runner::new(&p.refinery)
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
        Tool::Psql => {
            let file = p
                .all_sql
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
