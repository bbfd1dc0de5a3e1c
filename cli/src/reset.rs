//! `preflight reset`: back to a freshly migrated database, for development.
//!
//! When every applied migration can be reverted (each has a down body, unchanged since it was
//! applied, and none is unfinished), the reset reverts them all, newest first, through the
//! runner; otherwise it drops every object in the migrated schema in one transaction that holds
//! the runner's migration lock (PostgreSQL; refused while a run holds it). Either
//! way it then applies every migration through the runner. It prints what it will revert or
//! drop before doing anything, does nothing without `--yes`, and refuses a database on another
//! machine unless `--allow-remote` is given.

use std::net::IpAddr;

use preflight_runtime::lock::advisory_key;
use preflight_runtime::{plan, redact_url, Error, HistoryRow, Migrations, Revert, Runner, Version};
use serde_json::{json, Value};

use crate::db::Db;
use crate::CliError;

/// What a reset will do before it re-applies every migration.
enum Plan<'m> {
    /// Revert these, newest first, with their down bodies.
    Revert(Vec<&'m preflight_runtime::Migration>),
    /// Drop these objects; `why` says why reverting was not possible.
    Drop {
        schema: String,
        objects: Vec<Object>,
        why: Vec<String>,
    },
}

/// A database object the reset drops.
struct Object {
    /// `table`, `view`, `function`, ...
    kind: String,
    /// Schema-qualified where the database has schemas.
    name: String,
    /// The `DROP` statement, with identifiers quoted by the database itself.
    drop: String,
}

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

/// `reset`: describes the plan; with `yes`, prints it at once (when `announce`), carries it
/// out and re-applies every migration. Returns the text still to print, the JSON document and
/// whether the reset happened.
pub(crate) fn reset(
    set: &Migrations,
    db: &mut Db,
    r: &Runner<'_>,
    (schema, table): (Option<&str>, &str),
    yes: bool,
    announce: bool,
) -> Result<(String, Value, bool), CliError> {
    let history = db.history(r)?;
    let plan = plan_reset(set, db, &history, schema)?;
    let mut human = describe(&plan);
    if yes && announce {
        // Before anything is dropped, so that it is on screen even if the reset fails.
        print!("{human}");
        human.clear();
    }
    let mut doc = match &plan {
        Plan::Revert(list) => json!({
            "revert": list.iter().map(|m| m.version().to_string()).collect::<Vec<_>>(),
        }),
        Plan::Drop {
            schema,
            objects,
            why,
        } => json!({
            "schema": schema,
            "drop": objects.iter().map(|o| format!("{} {}", o.kind, o.name)).collect::<Vec<_>>(),
            "not_reversible": why,
        }),
    };
    if !yes {
        human.push_str("nothing was changed: run again with --yes to reset\n");
        doc["ok"] = json!(false);
        doc["error"] = json!("a reset needs --yes");
        return Ok((human, doc, false));
    }
    match &plan {
        Plan::Revert(list) if !list.is_empty() => {
            db.revert(r, Revert::To(Version::new(0)))?;
        }
        Plan::Revert(_) => {}
        Plan::Drop {
            objects, schema, ..
        } => drop_objects(db, objects, schema, table)?,
    }
    let report = db.run(r)?;
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

fn plan_reset<'m>(
    set: &'m Migrations,
    db: &mut Db,
    history: &[HistoryRow],
    schema: Option<&str>,
) -> Result<Plan<'m>, CliError> {
    let why = match plan::plan_down(set, history, Revert::To(Version::new(0))) {
        // An empty history reverts nothing, and would leave whatever else is there in the way.
        Ok(list) if !history.is_empty() => return Ok(Plan::Revert(list)),
        Ok(_) => Vec::new(),
        Err(Error::NoDown { reasons }) => reasons,
        Err(e) => vec![e.to_string()],
    };
    let (schema, objects) = objects(db, schema)?;
    if history.is_empty() && objects.is_empty() {
        return Ok(Plan::Revert(Vec::new()));
    }
    Ok(Plan::Drop {
        schema,
        objects,
        why,
    })
}

fn describe(plan: &Plan<'_>) -> String {
    match plan {
        Plan::Revert(list) if list.is_empty() => {
            "the database has no migrations and no objects: nothing to revert or drop\n".to_owned()
        }
        Plan::Revert(list) => {
            let mut text = format!(
                "every applied migration is reversible: reverting {} migration(s), newest first:\n",
                list.len()
            );
            for m in list {
                text.push_str(&format!("  {} {} ({})\n", m.version(), m.name(), m.path()));
            }
            text.push_str("then applying every migration again\n");
            text
        }
        Plan::Drop {
            schema,
            objects,
            why,
        } => {
            let mut text = String::new();
            if !why.is_empty() {
                text.push_str("not every applied migration can be reverted:\n");
                for reason in why {
                    text.push_str(&format!("  {reason}\n"));
                }
            }
            text.push_str(&format!(
                "dropping every object in schema {schema} ({}):\n",
                objects.len()
            ));
            for o in objects {
                text.push_str(&format!("  {} {}\n", o.kind, o.name));
            }
            text.push_str("then applying every migration again\n");
            text
        }
    }
}

/// Every object of the migrated schema (the history table's: `--table`'s schema, or the
/// connection's current schema), in an order that drops dependents' owners first. Objects that
/// go with another one (a table's indexes, triggers, partitions and owned sequences, an
/// extension's members) are left to that one's `CASCADE`.
const POSTGRES_OBJECTS: &str = "
WITH s AS (SELECT coalesce($1::text, current_schema()) AS name),
member AS (
    -- An object that belongs to another one (not to itself: a partitioned table depends
    -- internally on its own key columns).
    SELECT objid, classid FROM pg_depend
    WHERE deptype IN ('e', 'a', 'i') AND NOT (objid = refobjid AND classid = refclassid)
)
SELECT kind, name, statement FROM (
    SELECT 1 AS rank,
           CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                          WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                          ELSE 'table' END AS kind,
           format('%I.%I', n.nspname, c.relname) AS name,
           format('DROP %s IF EXISTS %I.%I CASCADE',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                 WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                 ELSE 'TABLE' END,
                  n.nspname, c.relname) AS statement
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, s
    WHERE n.nspname = s.name AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND NOT c.relispartition
      AND NOT EXISTS (SELECT 1 FROM member m
                      WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid)
    UNION ALL
    SELECT 2,
           CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
                          ELSE 'function' END,
           format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
           format('DROP %s IF EXISTS %I.%I(%s) CASCADE',
                  CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
                                 ELSE 'FUNCTION' END,
                  n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, s
    WHERE n.nspname = s.name
      AND NOT EXISTS (SELECT 1 FROM member m
                      WHERE m.classid = 'pg_proc'::regclass AND m.objid = p.oid)
    UNION ALL
    SELECT 3,
           CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END,
           format('%I.%I', n.nspname, t.typname),
           format('DROP %s IF EXISTS %I.%I CASCADE',
                  CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace, s
    WHERE n.nspname = s.name
      AND (t.typtype IN ('e', 'd', 'r')
           OR (t.typtype = 'c'
               AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
      AND NOT EXISTS (SELECT 1 FROM member m
                      WHERE m.classid = 'pg_type'::regclass AND m.objid = t.oid)
    UNION ALL
    SELECT 4, 'extension', format('%I', e.extname),
           format('DROP EXTENSION IF EXISTS %I CASCADE', e.extname)
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace, s
    WHERE n.nspname = s.name
) o
ORDER BY rank, name";

/// SQLite's objects: views, then tables (their indexes and triggers go with them).
const SQLITE_OBJECTS: &str = "
SELECT type, name, printf('DROP %s IF EXISTS \"%w\"', upper(type), name)
FROM sqlite_schema
WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
ORDER BY type = 'table', name";

fn objects(db: &mut Db, schema: Option<&str>) -> Result<(String, Vec<Object>), CliError> {
    let failed = |e: &dyn std::fmt::Display| {
        CliError::Refused(format!("cannot list the database's objects: {e}"))
    };
    match db {
        Db::Postgres(client) => {
            let current: String = client
                .query_one("SELECT coalesce($1::text, current_schema())", &[&schema])
                .and_then(|r| r.try_get(0))
                .map_err(|e| failed(&e))?;
            let rows = client
                .query(POSTGRES_OBJECTS, &[&schema])
                .map_err(|e| failed(&e))?;
            let objects = rows
                .iter()
                .map(|r| {
                    Ok(Object {
                        kind: r.try_get(0)?,
                        name: r.try_get(1)?,
                        drop: r.try_get(2)?,
                    })
                })
                .collect::<Result<_, postgres::Error>>()
                .map_err(|e| failed(&e))?;
            Ok((current, objects))
        }
        Db::Sqlite(conn) => {
            let mut statement = conn.prepare(SQLITE_OBJECTS).map_err(|e| failed(&e))?;
            let objects = statement
                .query_map([], |r| {
                    Ok(Object {
                        kind: r.get(0)?,
                        name: r.get(1)?,
                        drop: r.get(2)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| failed(&e))?;
            Ok(("main".to_owned(), objects))
        }
    }
}

/// Drops the objects in one transaction: a failure leaves the database as it was. On
/// PostgreSQL the transaction first takes the runner's migration lock of `schema.table` (as a
/// transaction lock: the server releases it at the end, whatever happens), so that a run
/// migrating the same database, an application booting say, is not pulled out from under; when
/// a run holds it, nothing is dropped.
fn drop_objects(
    db: &mut Db,
    objects: &[Object],
    schema: &str,
    table: &str,
) -> Result<(), CliError> {
    let failed = |o: &Object, e: &dyn std::fmt::Display| {
        CliError::Refused(format!(
            "cannot drop {} {}: {e}; nothing was dropped",
            o.kind, o.name
        ))
    };
    match db {
        Db::Postgres(client) => {
            let mut tx = client
                .transaction()
                .map_err(|e| CliError::Refused(format!("cannot start the reset: {e}")))?;
            let take =
                |tx: &mut postgres::Transaction<'_>| -> Result<(i64, bool), postgres::Error> {
                    let database: String =
                        tx.query_one("SELECT current_database()::text", &[])?.get(0);
                    let key = advisory_key(&database, schema, table);
                    let row = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&key])?;
                    Ok((key, row.get(0)))
                };
            let (key, locked) = take(&mut tx)
                .map_err(|e| CliError::Refused(format!("cannot take the migration lock: {e}")))?;
            if !locked {
                return Err(CliError::Refused(format!(
                    "a migration run holds the migration lock of {schema}.{table} (advisory \
                     lock {key} in pg_locks): nothing was dropped; retry once it has finished"
                )));
            }
            for o in objects {
                tx.batch_execute(&o.drop).map_err(|e| failed(o, &e))?;
            }
            tx.commit()
                .map_err(|e| CliError::Refused(format!("cannot commit the reset: {e}")))
        }
        Db::Sqlite(conn) => {
            // Foreign keys would make the order matter; the pragma is a no-op inside a
            // transaction, so it is switched off around it.
            let pragma = |conn: &rusqlite::Connection, on: bool| {
                conn.pragma_update(None, "foreign_keys", on)
                    .map_err(|e| CliError::Refused(format!("cannot set foreign_keys: {e}")))
            };
            let enforced: bool = conn
                .pragma_query_value(None, "foreign_keys", |r| r.get(0))
                .unwrap_or(false);
            pragma(conn, false)?;
            let result = (|| {
                let tx = conn
                    .transaction()
                    .map_err(|e| CliError::Refused(format!("cannot start the reset: {e}")))?;
                for o in objects {
                    tx.execute_batch(&o.drop).map_err(|e| failed(o, &e))?;
                }
                tx.commit()
                    .map_err(|e| CliError::Refused(format!("cannot commit the reset: {e}")))
            })();
            pragma(conn, enforced)?;
            result
        }
    }
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
