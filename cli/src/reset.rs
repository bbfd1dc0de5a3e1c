//! `preflight reset`: back to a freshly migrated database, for development.
//!
//! The runner does the work under its migration lock ([`Runner::reset`]): when every applied
//! migration can be reverted (each has a down body, unchanged since it was applied, and none
//! is unfinished), it reverts them all, newest first; otherwise it drops every object in the
//! migrated schema in one transaction. Either way it then applies every migration. This
//! command prints the runner's dry run first ([`Runner::plan_reset`]), does nothing without
//! `--yes`, and refuses a database on another machine unless `--allow-remote` is given.

use std::net::IpAddr;

use preflight_runtime::{redact_url, Connection, Plan, Runner};
use serde_json::{json, Value};

use crate::CliError;

/// Refuses a database that is not on this machine, unless `allow_remote`.
pub(crate) fn check_local(url: &str, allow_remote: bool) -> Result<(), CliError> {
    if allow_remote {
        return Ok(());
    }
    match remote_host(url)? {
        None => Ok(()),
        Some(host) => Err(CliError::Refused(format!(
            "refusing to reset {}: its host `{host}` is not this machine, and a reset drops \
             data; pass --allow-remote if this really is a development database",
            redact_url(url)
        ))),
    }
}

/// The first host of `url` that is not this machine, if any. SQLite files and Unix sockets
/// are local; so are `localhost` and loopback addresses (and no host at all, which means the
/// local socket).
fn remote_host(url: &str) -> Result<Option<String>, CliError> {
    if preflight_runtime::sqlite::parse_url(url).is_some() {
        return Ok(None);
    }
    let (driver_url, _) = crate::tls::configure(url)
        .map_err(|e| CliError::Connect(format!("{}: {e}", redact_url(url))))?;
    let config: postgres::Config = driver_url.parse().map_err(|e| {
        CliError::Usage(format!(
            "{} is not a valid database URL: {e}",
            redact_url(url)
        ))
    })?;
    let loopback = |ip: &IpAddr| ip.is_loopback();
    for host in config.get_hosts() {
        if let postgres::config::Host::Tcp(name) = host {
            let local = name.eq_ignore_ascii_case("localhost")
                || name.parse::<IpAddr>().is_ok_and(|ip| loopback(&ip))
                // `[::1]` as written in URLs
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| loopback(&ip));
            if !local {
                return Ok(Some(name.clone()));
            }
        }
    }
    // `hostaddr` overrides where a host name points.
    if let Some(ip) = config.get_hostaddrs().iter().find(|ip| !loopback(ip)) {
        return Ok(Some(ip.to_string()));
    }
    Ok(None)
}

/// `reset`: describes the runner's plan; with `yes`, prints it at once (when `announce`), and
/// has the runner carry it out. Returns the text still to print, the JSON document and whether
/// the reset happened.
pub(crate) fn reset(
    db: &mut dyn Connection,
    r: &Runner<'_>,
    yes: bool,
    announce: bool,
) -> Result<(String, Value, bool), CliError> {
    let plan = r.plan_reset(db)?;
    let mut human = describe(&plan);
    if yes && announce {
        // Before anything is dropped, so that it is on screen even if the reset fails.
        print!("{human}");
        human.clear();
    }
    let mut doc = match &plan.teardown {
        None => json!({
            "revert": plan.revert.iter().map(|s| s.migration().version().to_string()).collect::<Vec<_>>(),
        }),
        Some(t) => json!({
            "schema": t.schema,
            "drop": t.objects.iter().map(|o| format!("{} {}", o.kind, o.name)).collect::<Vec<_>>(),
            "not_reversible": t.not_reversible,
        }),
    };
    if !yes {
        human.push_str("nothing was changed: run again with --yes to reset\n");
        doc["ok"] = json!(false);
        doc["error"] = json!("a reset needs --yes");
        return Ok((human, doc, false));
    }
    let report = r.reset(db)?;
    human.push_str(&format!(
        "reset: {} migration(s) applied\n",
        report.applied.len()
    ));
    doc["ok"] = json!(true);
    doc["applied"] = json!(report
        .applied
        .iter()
        .map(|a| a.version.to_string())
        .collect::<Vec<_>>());
    Ok((human, doc, true))
}

fn describe(plan: &Plan<'_>) -> String {
    if let Some(t) = &plan.teardown {
        let mut text = String::new();
        if !t.not_reversible.is_empty() {
            text.push_str("not every applied migration can be reverted:\n");
            for reason in &t.not_reversible {
                text.push_str(&format!("  {reason}\n"));
            }
        }
        text.push_str(&format!(
            "dropping every object in schema {} ({}):\n",
            t.schema,
            t.objects.len()
        ));
        for o in &t.objects {
            text.push_str(&format!("  {} {}\n", o.kind, o.name));
        }
        text.push_str("then applying every migration again\n");
        return text;
    }
    if plan.revert.is_empty() {
        return "the database has no migrations and no objects: nothing to revert or drop\n"
            .to_owned();
    }
    let mut text = format!(
        "every applied migration is reversible: reverting {} migration(s), newest first:\n",
        plan.revert.len()
    );
    for step in &plan.revert {
        let m = step.migration();
        text.push_str(&format!("  {} {} ({})\n", m.version(), m.name(), m.path()));
    }
    text.push_str("then applying every migration again\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_is_local() {
        for url in [
            "postgres://u:p@localhost/db",
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@[::1]:5432/db",
            "postgres:///db?host=/var/run/postgresql",
            "postgres:///db",
            "host=localhost user=u",
            "sqlite://app.db",
            "sqlite::memory:",
        ] {
            assert_eq!(remote_host(url).unwrap(), None, "{url}");
        }
        for (url, host) in [
            ("postgres://u:secret@db.example.com/app", "db.example.com"),
            ("postgres://u@10.0.0.5/app", "10.0.0.5"),
            (
                "postgres://u@localhost,db2.example.com/app",
                "db2.example.com",
            ),
            ("postgres://u@localhost/app?hostaddr=10.1.1.1", "10.1.1.1"),
        ] {
            assert_eq!(remote_host(url).unwrap().as_deref(), Some(host), "{url}");
        }
        let refused = check_local("postgres://u:secret@db.example.com/app", false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("--allow-remote"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
        assert!(check_local("postgres://u:secret@db.example.com/app", true).is_ok());
    }
}
