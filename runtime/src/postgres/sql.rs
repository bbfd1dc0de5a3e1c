//! Every SQL text the PostgreSQL backend sends. Identifiers are quoted with [`quote_ident`];
//! values are always parameters (`$1`), never interpolated.

use crate::history::LAYOUT;

/// Quotes an identifier for PostgreSQL: wrapped in `"`, inner `"` doubled. The caller has
/// rejected NUL bytes, which no identifier may contain.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements for one history table.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    /// The qualified, quoted table name, also passed as a *value* to `to_regclass`.
    pub table: String,
    pub create_schema: Option<String>,
    /// The fast-path query: the goal row and the counts kept in `<table>_count` (see
    /// [`counter_install`]); a count of `-1` there means "not kept: count the rows".
    pub fast_check: String,
    /// The fast-path query of a history that has no `<table>_count` yet: counts the rows.
    pub fast_check_uncounted: String,
    /// The layout comment, whether `<table>_count` exists and whether its three triggers do
    /// (and are enabled).
    pub layout: String,
    /// `layout` for CockroachDB, which keeps no triggers (the third column is `false`).
    pub layout_cockroach: String,
    /// The qualified, quoted name of `<table>_count`, also passed as a value to `to_regclass`.
    pub count_table: String,
    /// Recounts the rows into `<table>_count` when they differ (rows written with triggers
    /// disabled), or puts its row back if it was deleted; writes nothing otherwise (so the
    /// transaction gets no id and its commit no flush).
    pub recount: String,
    /// Creates `<table>_count` holding `-1`: counts not kept (CockroachDB, or no privilege to
    /// create the trigger), so the fast path counts the rows itself, in the same query.
    pub counter_marker: String,
    pub create: String,
    pub read: String,
    /// Fails (division by zero) unless migration `$1` is recorded `applied`: the first request
    /// of a pipelined migration transaction (see `Backend::transaction_window`).
    pub guard: String,
    pub insert_applied: String,
    pub upsert_applied: String,
    pub delete: String,
    pub set_checksum: String,
    pub set_chain: String,
    pub start_row: String,
    pub progress: String,
    pub finish_row: String,
    pub log: String,
    pub lease_create: String,
    pub lease_try: String,
    pub lease_holder: String,
    pub lease_renew: String,
    pub lease_release: String,
}

/// The session query: what the slow path needs to know first.
pub(crate) const SESSION: &str = "SELECT current_database()::text, \
     coalesce(current_schema()::text, ''), version(), current_setting('application_name'), \
     pg_backend_pid()::int8";
/// Sets a setting for the session (`false`) or the transaction (`true`, third parameter).
pub(crate) const SET_CONFIG: &str = "SELECT set_config($1, $2, $3)";
/// Sets setting `$1` to `$2` for the session and returns its value before.
pub(crate) const SWAP_SETTING: &str = "SELECT before.value, set_config($1, $2, false) \
     FROM (SELECT current_setting($1) AS value OFFSET 0) AS before";
/// Starts a migration transaction that is not the run's last: its commit returns without
/// waiting for the WAL flush (see `runner::migrate` for why that is safe). A constant: no value
/// is interpolated.
pub(crate) const BEGIN_ASYNC_COMMIT: &str = "BEGIN; SET LOCAL synchronous_commit = off";
/// Takes the advisory lock `$1` (`pg_locks` ids `$2`, `$3`) only on the server session the run
/// started on (`$4`, the backend pid read by the session query; negative: unknown) and only if
/// that session does not hold it already; returns (acquired, backend pid, already held). Behind
/// a pooler in transaction mode the statements of one client reach different server sessions,
/// and two clients can share one session whose lock is re-entrant: both show here.
pub(crate) const TRY_ADVISORY: &str =
    "WITH s AS MATERIALIZED (SELECT pg_backend_pid()::int8 AS pid, \
     EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \
     AND classid = $2 AND objid = $3 AND objsubid = 1 AND granted) AS held) \
     SELECT CASE WHEN ($4 < 0 OR s.pid = $4) AND NOT s.held THEN pg_try_advisory_lock($1) \
     ELSE false END, s.pid, s.held FROM s";
/// Releases the advisory lock `$1` only on the session that took it (`$2`; negative: unknown);
/// returns (released, or NULL when on another session; backend pid).
pub(crate) const ADVISORY_UNLOCK: &str = "SELECT CASE WHEN $2 < 0 OR pg_backend_pid() = $2 \
     THEN pg_advisory_unlock($1) END, pg_backend_pid()::int8";
/// Who holds a bigint advisory lock: classid = high 32 bits, objid = low 32 bits, objsubid 1.
pub(crate) const ADVISORY_HOLDER: &str = "SELECT a.pid, coalesce(a.application_name, ''), \
     coalesce(host(a.client_addr), 'local'), coalesce(a.backend_start::text, ''), \
     coalesce(a.state, 'unknown state') || coalesce(' since ' || a.state_change::text, '') \
     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 \
     AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     LIMIT 1";

/// Tables that may be another tool's history: every table (outside the system schemas) with a
/// `version` or `version_id` column, with its columns; [`crate::adopt::ForeignTable::identify`]
/// decides.
pub(crate) const FOREIGN_TABLES: &str = "SELECT table_schema::text, table_name::text, \
     array_agg(column_name::text ORDER BY ordinal_position) \
     FROM information_schema.columns \
     WHERE table_schema NOT IN ('pg_catalog', 'information_schema', 'crdb_internal', 'pg_extension') \
     GROUP BY 1, 2 \
     HAVING bool_or(column_name::text IN ('version', 'version_id')) \
     ORDER BY 1, 2";

/// The query that reads another tool's history table, columns cast to the types
/// [`crate::adopt::ForeignHistory`] holds (the tools' own types vary a little by version).
pub(crate) fn read_foreign(tool: crate::adopt::Tool, schema: &str, table: &str) -> String {
    use crate::adopt::Tool;
    let t = format!("{}.{}", quote_ident(schema), quote_ident(table));
    match tool {
        // What golang-migrate itself reads: one row.
        Tool::GolangMigrate => format!("SELECT version::int8, dirty FROM {t} LIMIT 1"),
        Tool::Goose => format!("SELECT id::int8, version_id::int8, is_applied FROM {t} ORDER BY id"),
        Tool::Sqlx => format!(
            "SELECT version::int8, description::text, success, checksum::bytea FROM {t} ORDER BY version"
        ),
        Tool::Refinery => format!(
            "SELECT version::int8, coalesce(name::text, ''), checksum::text FROM {t} ORDER BY version"
        ),
        Tool::Diesel => format!("SELECT version::text FROM {t} ORDER BY version"),
        Tool::Flyway => format!(
            "SELECT installed_rank::int8, version::text, description::text, type::text, \
             checksum::int4, success FROM {t} ORDER BY installed_rank"
        ),
    }
}

/// The triggers that keep `<table>_count` (their `pg_trigger.tgname`).
const COUNT_TRIGGER: &str = "preflight_count_rows";
const COUNT_TRIGGER_STATE: &str = "preflight_count_state";
const COUNT_TRIGGER_TRUNCATE: &str = "preflight_count_truncate";

/// The columns of `<table>_count`: one row, `id` 1.
const COUNT_COLUMNS: &str = "  id integer PRIMARY KEY CHECK (id = 1),\n  \
     total bigint NOT NULL,\n  unfinished bigint NOT NULL";

/// Installs `<table>_count` and the triggers that keep it, in `schema` (the history table's,
/// resolved: the trigger function names it explicitly, whatever a writer's `search_path`).
/// One transaction that first locks the history table against writers, so the initial count
/// and the trigger see the same rows, and concurrent installers (lock strategy `None`) queue.
///
/// The count lets the fast path answer "how many rows, how many unfinished" in one index
/// lookup instead of a scan, so a no-op boot costs the same with 10 or 10,000 migrations.
pub(crate) fn counter_install(schema: &str, table: &str) -> String {
    let q = |name: &str| format!("{}.{}", quote_ident(schema), quote_ident(name));
    let t = q(table);
    let count = q(&format!("{table}_count"));
    let function = q(&format!("{table}_counter"));
    let body = format!(
        "\nBEGIN\n\
         IF TG_OP = 'INSERT' THEN\n\
           UPDATE {count} SET total = total + 1, \
           unfinished = unfinished + (NEW.state <> 'applied')::int WHERE id = 1;\n\
         ELSIF TG_OP = 'DELETE' THEN\n\
           UPDATE {count} SET total = total - 1, \
           unfinished = unfinished - (OLD.state <> 'applied')::int WHERE id = 1;\n\
         ELSIF TG_OP = 'UPDATE' THEN\n\
           UPDATE {count} SET unfinished = unfinished \
           + (NEW.state <> 'applied')::int - (OLD.state <> 'applied')::int WHERE id = 1;\n\
         ELSE\n\
           UPDATE {count} SET total = 0, unfinished = 0 WHERE id = 1;\n\
         END IF;\n\
         RETURN NULL;\n\
         END\n"
    );
    let body = dollar_quote(&body);
    format!(
        "BEGIN;\n\
         LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE;\n\
         CREATE TABLE IF NOT EXISTS {count} (\n{COUNT_COLUMNS}\n);\n\
         CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS {body};\n\
         DROP TRIGGER IF EXISTS {COUNT_TRIGGER} ON {t};\n\
         DROP TRIGGER IF EXISTS {COUNT_TRIGGER_STATE} ON {t};\n\
         DROP TRIGGER IF EXISTS {COUNT_TRIGGER_TRUNCATE} ON {t};\n\
         CREATE TRIGGER {COUNT_TRIGGER} AFTER INSERT OR DELETE ON {t} \
         FOR EACH ROW EXECUTE FUNCTION {function}();\n\
         CREATE TRIGGER {COUNT_TRIGGER_STATE} AFTER UPDATE ON {t} \
         FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION {function}();\n\
         CREATE TRIGGER {COUNT_TRIGGER_TRUNCATE} AFTER TRUNCATE ON {t} \
         FOR EACH STATEMENT EXECUTE FUNCTION {function}();\n\
         INSERT INTO {count} (id, total, unfinished) SELECT 1, s.total, s.unfinished FROM {counts} \
         ON CONFLICT (id) DO UPDATE SET total = excluded.total, unfinished = excluded.unfinished;\n\
         COMMIT",
        counts = row_counts(&t),
    )
}

/// The history's counts as one row (`total`, `unfinished`), as a subquery aliased `s`: what
/// `<table>_count` holds, counted the slow way.
fn row_counts(t: &str) -> String {
    format!(
        "(SELECT count(*) AS total, count(*) FILTER (WHERE state <> 'applied') AS unfinished \
         FROM {t}) AS s"
    )
}

/// The layout query with `triggers_kept` as its third column.
fn layout(triggers_kept: &str) -> String {
    format!(
        "SELECT coalesce(obj_description(c.oid, 'pg_class'), ''), to_regclass($2) IS NOT NULL, \
         {triggers_kept} FROM pg_class c WHERE c.oid = to_regclass($1)"
    )
}

/// Wraps a function body in a dollar quote whose tag the body does not contain (a quoted
/// identifier in it may hold any text).
fn dollar_quote(body: &str) -> String {
    let mut tag = "$preflight$".to_owned();
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$preflight{n}$");
    }
    format!("{tag}{body}{tag}")
}

impl Sql {
    pub fn new(schema: Option<&str>, table: &str) -> Sql {
        let qualify = |name: &str| match schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(name)),
            None => quote_ident(name),
        };
        let t = qualify(table);
        let log = qualify(&format!("{table}_log"));
        let lease = qualify(&format!("{table}_lease"));
        let count = qualify(&format!("{table}_count"));
        let counts = row_counts(&t);
        let columns = "version, name, checksum, chain, state, statements_done, \
                       statements_total, applied_at, execution_ms, applied_by";
        Sql {
            create_schema: schema.map(|s| format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(s))),
            // The subqueries are init plans, evaluated only when their CASE branch is taken:
            // never while the trigger keeps the counts.
            fast_check: format!(
                "SELECT h.chain, h.state, \
                 CASE WHEN c.total >= 0 THEN c.total ELSE (SELECT count(*) FROM {t}) END, \
                 CASE WHEN c.total >= 0 THEN c.unfinished \
                 ELSE (SELECT count(*) FROM {t} WHERE state <> 'applied') END \
                 FROM {count} AS c LEFT JOIN {t} AS h ON h.version = $1 WHERE c.id = 1"
            ),
            fast_check_uncounted: format!(
                "SELECT h.chain, h.state, s.total, s.unfinished FROM {counts} \
                 LEFT JOIN {t} AS h ON h.version = $1"
            ),
            layout: layout(&format!(
                "(SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgenabled <> 'D' \
                 AND g.tgname IN ('{COUNT_TRIGGER}', '{COUNT_TRIGGER_STATE}', '{COUNT_TRIGGER_TRUNCATE}')) = 3"
            )),
            layout_cockroach: layout("false"),
            recount: format!(
                "BEGIN; LOCK TABLE {t} IN SHARE MODE; \
                 UPDATE {count} AS c SET total = s.total, unfinished = s.unfinished FROM {counts} \
                 WHERE c.id = 1 AND c.total >= 0 AND (c.total, c.unfinished) <> (s.total, s.unfinished); \
                 INSERT INTO {count} (id, total, unfinished) SELECT 1, s.total, s.unfinished \
                 FROM {counts} WHERE NOT EXISTS (SELECT 1 FROM {count} WHERE id = 1); \
                 COMMIT"
            ),
            counter_marker: format!(
                "CREATE TABLE IF NOT EXISTS {count} (\n{COUNT_COLUMNS}\n);\n\
                 INSERT INTO {count} (id, total, unfinished) VALUES (1, -1, -1) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            count_table: count,
            create: format!(
                "BEGIN;\n\
                 CREATE TABLE {t} (\n\
                   version text PRIMARY KEY,\n\
                   name text NOT NULL,\n\
                   checksum text NOT NULL,\n\
                   chain text NOT NULL,\n\
                   state text NOT NULL CHECK (state IN ('applied', 'in_progress', 'failed')),\n\
                   statements_done integer NOT NULL DEFAULT 0,\n\
                   statements_total integer NOT NULL DEFAULT 0,\n\
                   applied_at timestamptz NOT NULL DEFAULT now(),\n\
                   execution_ms bigint NOT NULL DEFAULT 0,\n\
                   applied_by text NOT NULL DEFAULT '',\n\
                   error text\n\
                 );\n\
                 COMMENT ON TABLE {t} IS '{LAYOUT}';\n\
                 CREATE TABLE IF NOT EXISTS {log} (\n\
                   at timestamptz NOT NULL DEFAULT now(),\n\
                   action text NOT NULL,\n\
                   version text,\n\
                   detail text NOT NULL,\n\
                   performed_by text NOT NULL\n\
                 );\n\
                 COMMIT"
            ),
            read: format!(
                "SELECT version, name, checksum, chain, state, statements_done, statements_total, \
                 applied_at::text, execution_ms, applied_by, error FROM {t}"
            ),
            guard: format!(
                "SELECT 1 / count(*)::int FROM {t} WHERE version = $1 AND state = 'applied'"
            ),
            insert_applied: format!(
                "INSERT INTO {t} ({columns}) VALUES ($1, $2, $3, $4, 'applied', $5, $5, now(), \
                 (extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint, $6)"
            ),
            upsert_applied: format!(
                "INSERT INTO {t} ({columns}) VALUES ($1, $2, $3, $4, 'applied', $5, $5, now(), 0, $6) \
                 ON CONFLICT (version) DO UPDATE SET name = excluded.name, \
                 checksum = excluded.checksum, chain = excluded.chain, state = 'applied', \
                 statements_done = excluded.statements_done, \
                 statements_total = excluded.statements_total, applied_by = excluded.applied_by, \
                 error = NULL"
            ),
            delete: format!("DELETE FROM {t} WHERE version = $1"),
            set_checksum: format!("UPDATE {t} SET checksum = $2, chain = $3 WHERE version = $1"),
            set_chain: format!("UPDATE {t} SET chain = $2 WHERE version = $1"),
            // A fresh start ($8 false) inserts or finds the row taken (no row returned); a
            // resume ($8 true) takes over the unfinished row.
            start_row: format!(
                "INSERT INTO {t} AS h ({columns}) VALUES ($1, $2, $3, $4, 'in_progress', $5, $6, now(), 0, $7) \
                 ON CONFLICT (version) DO UPDATE SET state = 'in_progress', \
                 checksum = excluded.checksum, chain = excluded.chain, \
                 statements_done = excluded.statements_done, \
                 statements_total = excluded.statements_total, applied_by = excluded.applied_by, \
                 error = NULL WHERE $8 AND h.state <> 'applied' RETURNING 1"
            ),
            progress: format!("UPDATE {t} SET statements_done = $2 WHERE version = $1"),
            finish_row: format!(
                "UPDATE {t} SET state = $2, statements_done = $3, \
                 execution_ms = execution_ms + $4, error = $5 WHERE version = $1"
            ),
            log: format!(
                "INSERT INTO {log} (action, version, detail, performed_by) VALUES ($1, $2, $3, $4)"
            ),
            lease_create: format!(
                "CREATE TABLE IF NOT EXISTS {lease} (\n\
                   id integer PRIMARY KEY CHECK (id = 1),\n\
                   owner text NOT NULL,\n\
                   acquired_at timestamptz NOT NULL,\n\
                   expires_at timestamptz NOT NULL,\n\
                   renewed_at timestamptz NOT NULL\n\
                 )"
            ),
            // One atomic statement: take the lease if there is none, if it expired (its
            // holder died) or if it is already ours.
            lease_try: format!(
                "INSERT INTO {lease} AS l (id, owner, acquired_at, expires_at, renewed_at) \
                 VALUES (1, $1, now(), now() + $2 * interval '1 second', now()) \
                 ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, \
                 acquired_at = excluded.acquired_at, expires_at = excluded.expires_at, \
                 renewed_at = excluded.renewed_at \
                 WHERE l.expires_at < now() OR l.owner = excluded.owner RETURNING l.owner"
            ),
            lease_holder: format!(
                "SELECT owner, acquired_at::text, expires_at::text FROM {lease} WHERE id = 1"
            ),
            lease_renew: format!(
                "UPDATE {lease} SET expires_at = now() + $2 * interval '1 second', \
                 renewed_at = now() WHERE id = 1 AND owner = $1 RETURNING 1"
            ),
            lease_release: format!("DELETE FROM {lease} WHERE id = 1 AND owner = $1"),
            table: t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_ident("a.b"), "\"a.b\"");
        let sql = Sql::new(Some("s\"x"), "t\"; DROP TABLE x; --");
        assert_eq!(sql.table, "\"s\"\"x\".\"t\"\"; DROP TABLE x; --\"");
        assert!(sql
            .read
            .ends_with("FROM \"s\"\"x\".\"t\"\"; DROP TABLE x; --\""));
    }

    #[test]
    fn dollar_quotes_avoid_the_body_text() {
        assert_eq!(dollar_quote("x"), "$preflight$x$preflight$");
        assert_eq!(
            dollar_quote("a $preflight$ b"),
            "$preflight1$a $preflight$ b$preflight1$"
        );
        let install = counter_install("s", "t$preflight$");
        assert!(install.contains("AS $preflight1$"), "{install}");
    }
}
