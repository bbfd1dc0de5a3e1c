//! The server the bench runs against, and a description of the machine.

use std::process::Command;

use preflight_runtime::testing;

pub struct Server {
    url: String,
    private: bool,
}

impl Server {
    /// `DATABASE_URL`, or a private cluster (started by the testing helpers, stopped when this
    /// process exits; it runs with fsync=off, set on its command line).
    pub fn start() -> Server {
        let private = std::env::var("DATABASE_URL").map_or(true, |u| u.trim().is_empty());
        if private {
            eprintln!("DATABASE_URL is not set: starting a private PostgreSQL cluster");
        }
        let url = testing::server_url().to_owned();
        Server { url, private }
    }

    fn setting(&self, client: &mut postgres::Client, name: &str) -> String {
        client
            .query_one(&format!("SHOW {name}"), &[])
            .map_or_else(|e| format!("? ({e})"), |r| r.get::<_, String>(0))
    }

    /// The machine section of the report.
    pub fn describe(&self) -> String {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls)
            .expect("connect to the benchmark server");
        let version = self.setting(&mut c, "server_version");
        let fsync = self.setting(&mut c, "fsync");
        let sync_commit = self.setting(&mut c, "synchronous_commit");
        let where_ = if self.private {
            "private cluster started by the bench on 127.0.0.1 (initdb defaults, fsync=off: \
             commits cost less than on a real server; set DATABASE_URL for one that syncs)"
                .to_owned()
        } else {
            "the server DATABASE_URL names".to_owned()
        };
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "?".to_owned());
        let free = command_output("free", &["-h"]);
        let rustc = command_output("rustc", &["--version"]);
        let psql = command_output("psql", &["--version"]);
        format!(
            "Machine: `nproc` = {nproc} ({cpu}); rustc: `{rustc}`; psql: `{psql}`\n\n\
             PostgreSQL {version} — {where_}; fsync = {fsync}, synchronous_commit = {sync_commit}\n\n\
             `free -h`:\n```\n{free}\n```\n",
            rustc = rustc.trim(),
            psql = psql.trim(),
            free = free.trim_end(),
        )
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("({program}: {e})"))
}
