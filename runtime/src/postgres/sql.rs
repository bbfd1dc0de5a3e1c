//! Every SQL text the PostgreSQL backend sends. Identifiers are quoted with [`quote_ident`];
//! values are always parameters (`$1`), never interpolated.

use crate::history::{LAYOUT, LEASE_ROW};

/// Quotes an identifier for PostgreSQL: wrapped in `"`, inner `"` doubled. The caller has
/// rejected NUL bytes, which no identifier may contain.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements for one history table (its layout: [`crate::history`]).
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    /// The qualified, quoted table name, also passed as a *value* to `to_regclass`.
    pub table: String,
    pub create_schema: Option<String>,
    /// The fast-path query: for each set of `$1` (text[]), its newest row by `ord`, and whether
    /// any of their rows is unfinished (see [`crate::history`]).
    pub fast_check: String,
    /// The layout comment and whether layout 1's side objects exist (`<table>_count`,
    /// `<table>_log`, `<table>_lease`, the function `<table>_counter()`), given their names as
    /// values `$1`..`$5`.
    pub layout: String,
    /// `layout` for CockroachDB, which has no `to_regprocedure` (and layout 1 kept no function
    /// there): the fifth column is `false`.
    pub layout_cockroach: String,
    /// The names `layout` takes as values: the table, `<table>_count`, `<table>_log`,
    /// `<table>_lease` and `<table>_counter()`, qualified and quoted.
    pub names: [String; 5],
    /// Creates the table, its indexes and comment, in one transaction.
    pub create: String,
    pub read: String,
    /// Reads a layout-1 table as layout-2 rows with an empty set.
    pub read_v1: String,
    /// A layout-1 table's versions and checksums (to choose the set its rows get).
    pub v1_rows: String,
    /// The constraints an upgrade replaces: the primary key (`$2`: unless on CockroachDB) and
    /// the check on `state`.
    pub v1_constraints: String,
    /// Fails (division by zero) unless migration (`$1`, `$2`) is recorded `applied`: the first
    /// request of a pipelined migration transaction (see `Backend::transaction_window`).
    pub guard: String,
    pub insert_applied: String,
    pub upsert_applied: String,
    pub delete: String,
    pub set_checksum: String,
    pub set_chain: String,
    /// Appends a line to a row's `repaired` column, stamped with the server's clock.
    pub note: String,
    pub start_row: String,
    pub start_revert: String,
    pub progress: String,
    pub finish_row: String,
    pub lease_try: String,
    pub lease_holder: String,
    pub lease_renew: String,
    pub lease_release: String,
    /// Layout 1's lease table, which a run uses while the history is of layout 1 (so that it
    /// excludes binaries that know only layout 1), until the upgrade moves the lease into the
    /// table.
    pub legacy_lease: LegacyLease,
    /// The qualified, quoted names of layout 1's side objects.
    pub legacy: Legacy,
}

/// Layout 1's `<table>_lease`.
#[derive(Debug, Clone)]
pub(crate) struct LegacyLease {
    pub create: String,
    pub try_take: String,
    pub holder: String,
    pub renew: String,
    pub release: String,
    /// Copies lease `$1` into the history table's lease row (inside the upgrade).
    pub transfer: String,
}

/// The qualified, quoted names of what layout 1 kept beside the history table.
#[derive(Debug, Clone)]
pub(crate) struct Legacy {
    pub count: String,
    pub log: String,
    pub lease: String,
    pub counter: String,
}

/// The states a row may have (layout 2).
const STATES: &str = "'applied', 'in_progress', 'failed', 'reverting', 'revert_failed', 'lease'";

/// The unfinished rows, as the partial index `<table>_open` and the fast path both say it (the
/// same text, so that the planner sees the index's predicate in the query).
const OPEN: &str = "state NOT IN ('applied', 'lease')";

/// The triggers that kept layout 1's `<table>_count` (their `pg_trigger.tgname`).
const COUNT_TRIGGERS: [&str; 3] = [
    "preflight_count_rows",
    "preflight_count_state",
    "preflight_count_truncate",
];

/// The columns every insert writes, in the order of the parameters `$1`..`$8`:
/// set, version, ord, name, checksum, chain, statements (done and total), applied_by.
const INSERT_COLUMNS: &str = "\"set\", version, ord, name, checksum, chain, state, \
     statements_done, statements_total, applied_at, execution_ms, applied_by";

/// The upgrade of a layout-1 table (see [`crate::history`]), as requests: the table altered in
/// place (grants and ownership stay), rows given set `$1` and their `ord`, the log folded into
/// `repaired`, the side objects dropped, the lease moved into the table when `lease_owner` (a
/// run holding layout 1's lease) is given, the comment changed; all in one transaction, with
/// the table locked against every other session. `constraints`: the names of the primary key
/// and of the check on `state` to replace. Returns (simple SQL, parameterised SQL, simple SQL)
/// segments in order; the parameterised ones take `set`, the versions and the ords.
pub(crate) fn upgrade(
    sql: &Sql,
    table_name: &str,
    constraints: &[String],
    log_exists: bool,
    transfer_lease: bool,
    cockroach: bool,
) -> Upgrade {
    let t = &sql.table;
    let mut head = String::new();
    if !cockroach {
        head.push_str(&format!(
            "BEGIN;\nLOCK TABLE {t} IN ACCESS EXCLUSIVE MODE;\n"
        ));
    }
    head.push_str(&format!(
        "ALTER TABLE {t} ADD COLUMN \"set\" text, ADD COLUMN ord text NOT NULL DEFAULT '', \
         ADD COLUMN completed text NOT NULL DEFAULT '', ADD COLUMN repaired text, \
         ADD COLUMN expires_at timestamptz"
    ));
    let set_rows = format!("UPDATE {t} SET \"set\" = $1");
    let ords = format!(
        "UPDATE {t} AS h SET ord = u.ord FROM unnest($1::text[], $2::text[]) AS u(version, ord) \
         WHERE h.version = u.version"
    );
    let mut tail = Vec::new();
    if log_exists {
        tail.push(format!(
            "UPDATE {t} AS h SET repaired = l.text FROM (SELECT version, \
             string_agg(action || ': ' || detail || ' by ' || performed_by || ' at ' || at::text, \
             E'\\n' ORDER BY at) AS text FROM {log} WHERE version IS NOT NULL GROUP BY version) AS l \
             WHERE h.version = l.version",
            log = sql.legacy.log
        ));
    }
    tail.push(format!("ALTER TABLE {t} ALTER COLUMN \"set\" SET NOT NULL"));
    for name in constraints {
        tail.push(format!(
            "ALTER TABLE {t} DROP CONSTRAINT {}",
            quote_ident(name)
        ));
    }
    if cockroach {
        // Not run against a live cluster (see the module docs): CockroachDB keeps the old key
        // as a unique index on `version` (named `<table>_version_key`), which would forbid one
        // version in two sets, so it is dropped after.
        tail.push(format!(
            "ALTER TABLE {t} ALTER PRIMARY KEY USING COLUMNS (\"set\", version)"
        ));
        tail.push(format!(
            "DROP INDEX IF EXISTS {t}@{} CASCADE",
            quote_ident(&format!("{table_name}_version_key"))
        ));
    } else {
        tail.push(format!(
            "ALTER TABLE {t} ADD PRIMARY KEY (\"set\", version)"
        ));
    }
    tail.push(format!("ALTER TABLE {t} ADD CHECK (state IN ({STATES}))"));
    tail.extend(indexes(t, table_name));
    if !cockroach {
        for trigger in COUNT_TRIGGERS {
            tail.push(format!("DROP TRIGGER IF EXISTS {trigger} ON {t}"));
        }
        tail.push(format!("DROP FUNCTION IF EXISTS {}", sql.legacy.counter));
    }
    tail.push(format!("DROP TABLE IF EXISTS {}", sql.legacy.count));
    tail.push(format!("DROP TABLE IF EXISTS {}", sql.legacy.log));
    let transfer = transfer_lease.then(|| sql.legacy_lease.transfer.clone());
    let mut last = vec![format!("DROP TABLE IF EXISTS {}", sql.legacy.lease)];
    last.push(format!("COMMENT ON TABLE {t} IS '{LAYOUT}'"));
    if !cockroach {
        last.push("COMMIT".to_owned());
    }
    Upgrade {
        head,
        set_rows,
        ords,
        tail: tail.join(";\n"),
        transfer,
        last: last.join(";\n"),
    }
}

/// The requests of an upgrade, in order (see [`upgrade`]).
#[derive(Debug, Clone)]
pub(crate) struct Upgrade {
    pub head: String,
    /// `$1`: the set.
    pub set_rows: String,
    /// `$1`, `$2`: the versions and their ords (text[]).
    pub ords: String,
    pub tail: String,
    /// `$1`: the owner of layout 1's lease this run holds.
    pub transfer: Option<String>,
    pub last: String,
}

/// The two indexes of layout 2.
fn indexes(t: &str, table_name: &str) -> [String; 2] {
    [
        format!(
            "CREATE INDEX {} ON {t} (\"set\", ord)",
            quote_ident(&format!("{table_name}_ord"))
        ),
        format!(
            "CREATE INDEX {} ON {t} (\"set\") WHERE {OPEN}",
            quote_ident(&format!("{table_name}_open"))
        ),
    ]
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

impl Sql {
    pub fn new(schema: Option<&str>, table: &str) -> Sql {
        let qualify = |name: &str| match schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(name)),
            None => quote_ident(name),
        };
        let t = qualify(table);
        let legacy = Legacy {
            count: qualify(&format!("{table}_count")),
            log: qualify(&format!("{table}_log")),
            lease: qualify(&format!("{table}_lease")),
            counter: format!("{}()", qualify(&format!("{table}_counter"))),
        };
        let lease = &legacy.lease;
        let key = "\"set\" = $1 AND version = $2";
        let own = format!("\"set\" = '' AND version = '{LEASE_ROW}'");
        let [ord_index, open_index] = indexes(&t, table);
        Sql {
            create_schema: schema.map(|s| format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(s))),
            fast_check: format!(
                "SELECT h.version, h.chain, h.state, x.open \
                 FROM unnest($1::text[]) WITH ORDINALITY AS s(name, i) \
                 CROSS JOIN (SELECT EXISTS (SELECT 1 FROM {t} \
                 WHERE \"set\" = ANY($1) AND {OPEN}) AS open) AS x \
                 LEFT JOIN LATERAL (SELECT version, chain, state FROM {t} \
                 WHERE \"set\" = s.name ORDER BY ord DESC LIMIT 1) AS h ON true \
                 ORDER BY s.i"
            ),
            layout: layout("to_regprocedure($5) IS NOT NULL"),
            layout_cockroach: layout("$5::text IS NULL"),
            names: [
                t.clone(),
                legacy.count.clone(),
                legacy.log.clone(),
                legacy.lease.clone(),
                legacy.counter.clone(),
            ],
            create: format!(
                "BEGIN;\n\
                 CREATE TABLE {t} (\n\
                   \"set\" text NOT NULL,\n\
                   version text NOT NULL,\n\
                   ord text NOT NULL DEFAULT '',\n\
                   name text NOT NULL,\n\
                   checksum text NOT NULL,\n\
                   chain text NOT NULL,\n\
                   state text NOT NULL CHECK (state IN ({STATES})),\n\
                   statements_done integer NOT NULL DEFAULT 0,\n\
                   statements_total integer NOT NULL DEFAULT 0,\n\
                   completed text NOT NULL DEFAULT '',\n\
                   applied_at timestamptz NOT NULL DEFAULT now(),\n\
                   execution_ms bigint NOT NULL DEFAULT 0,\n\
                   applied_by text NOT NULL DEFAULT '',\n\
                   error text,\n\
                   repaired text,\n\
                   expires_at timestamptz,\n\
                   PRIMARY KEY (\"set\", version)\n\
                 );\n\
                 {ord_index};\n\
                 {open_index};\n\
                 COMMENT ON TABLE {t} IS '{LAYOUT}';\n\
                 COMMIT"
            ),
            read: format!(
                "SELECT \"set\", version, name, checksum, chain, state, statements_done, \
                 statements_total, completed, applied_at::text, execution_ms, applied_by, error, \
                 repaired FROM {t} WHERE \"set\" <> ''"
            ),
            read_v1: format!(
                "SELECT ''::text, version, name, checksum, chain, state, statements_done, \
                 statements_total, ''::text, applied_at::text, execution_ms, applied_by, error, \
                 NULL::text FROM {t}"
            ),
            v1_rows: format!("SELECT version, checksum FROM {t}"),
            // CockroachDB replaces its primary key with `ALTER PRIMARY KEY` and cannot drop it
            // first: only the check on `state` is dropped there.
            v1_constraints: "SELECT conname::text FROM pg_constraint WHERE conrelid = to_regclass($1) \
                 AND ((contype = 'p' AND NOT $2) \
                 OR (contype = 'c' AND pg_get_constraintdef(oid) LIKE '%state%')) \
                 ORDER BY contype"
                .to_owned(),
            guard: format!(
                "SELECT 1 / count(*)::int FROM {t} WHERE {key} AND state = 'applied'"
            ),
            insert_applied: format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 'applied', \
                 $7, $7, now(), (extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint, $8)"
            ),
            upsert_applied: format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 'applied', \
                 $7, $7, now(), 0, $8) \
                 ON CONFLICT (\"set\", version) DO UPDATE SET name = excluded.name, \
                 checksum = excluded.checksum, chain = excluded.chain, state = 'applied', \
                 statements_done = excluded.statements_done, \
                 statements_total = excluded.statements_total, completed = '', \
                 applied_by = excluded.applied_by, error = NULL"
            ),
            delete: format!("DELETE FROM {t} WHERE {key}"),
            set_checksum: format!("UPDATE {t} SET checksum = $3, chain = $4 WHERE {key}"),
            set_chain: format!("UPDATE {t} SET chain = $3 WHERE {key}"),
            note: format!(
                "UPDATE {t} SET repaired = coalesce(repaired || E'\\n', '') || $3 || ' at ' \
                 || now()::text WHERE {key}"
            ),
            // A fresh start ($10 false) inserts or finds the row taken (no row returned); a
            // resume ($10 true) takes over the unfinished row.
            start_row: format!(
                "INSERT INTO {t} AS h ({INSERT_COLUMNS}, completed) VALUES ($1, $2, $3, $4, $5, $6, \
                 'in_progress', $7, $8, now(), 0, $9, $11) \
                 ON CONFLICT (\"set\", version) DO UPDATE SET state = 'in_progress', \
                 checksum = excluded.checksum, chain = excluded.chain, \
                 statements_done = excluded.statements_done, \
                 statements_total = excluded.statements_total, completed = excluded.completed, \
                 applied_by = excluded.applied_by, error = NULL \
                 WHERE $10 AND h.state <> 'applied' RETURNING 1"
            ),
            start_revert: format!(
                "UPDATE {t} SET state = 'reverting', statements_done = $3, statements_total = $4, \
                 completed = $5, error = NULL \
                 WHERE {key} AND state IN ('applied', 'reverting', 'revert_failed') RETURNING 1"
            ),
            progress: format!(
                "UPDATE {t} SET statements_done = $3, completed = $4 WHERE {key}"
            ),
            finish_row: format!(
                "UPDATE {t} SET state = $3, statements_done = $4, \
                 execution_ms = execution_ms + $5, error = $6 WHERE {key}"
            ),
            // One atomic statement: take the lease if there is none, if it expired (its
            // holder died) or if it is already ours.
            lease_try: format!(
                "INSERT INTO {t} AS l (\"set\", version, name, checksum, chain, state, applied_at, \
                 applied_by, expires_at) \
                 VALUES ('', '{LEASE_ROW}', '', '', '', 'lease', now(), $1, \
                 now() + $2 * interval '1 second') \
                 ON CONFLICT (\"set\", version) DO UPDATE SET applied_by = excluded.applied_by, \
                 applied_at = excluded.applied_at, expires_at = excluded.expires_at \
                 WHERE l.expires_at < now() OR l.applied_by = excluded.applied_by \
                 RETURNING l.applied_by"
            ),
            lease_holder: format!(
                "SELECT applied_by, applied_at::text, expires_at::text FROM {t} WHERE {own}"
            ),
            lease_renew: format!(
                "UPDATE {t} SET expires_at = now() + $2 * interval '1 second' \
                 WHERE {own} AND applied_by = $1 RETURNING 1"
            ),
            lease_release: format!("DELETE FROM {t} WHERE {own} AND applied_by = $1"),
            legacy_lease: LegacyLease {
                create: format!(
                    "CREATE TABLE IF NOT EXISTS {lease} (\n\
                       id integer PRIMARY KEY CHECK (id = 1),\n\
                       owner text NOT NULL,\n\
                       acquired_at timestamptz NOT NULL,\n\
                       expires_at timestamptz NOT NULL,\n\
                       renewed_at timestamptz NOT NULL\n\
                     )"
                ),
                try_take: format!(
                    "INSERT INTO {lease} AS l (id, owner, acquired_at, expires_at, renewed_at) \
                     VALUES (1, $1, now(), now() + $2 * interval '1 second', now()) \
                     ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, \
                     acquired_at = excluded.acquired_at, expires_at = excluded.expires_at, \
                     renewed_at = excluded.renewed_at \
                     WHERE l.expires_at < now() OR l.owner = excluded.owner RETURNING l.owner"
                ),
                holder: format!(
                    "SELECT owner, acquired_at::text, expires_at::text FROM {lease} WHERE id = 1"
                ),
                renew: format!(
                    "UPDATE {lease} SET expires_at = now() + $2 * interval '1 second', \
                     renewed_at = now() WHERE id = 1 AND owner = $1 RETURNING 1"
                ),
                release: format!("DELETE FROM {lease} WHERE id = 1 AND owner = $1"),
                transfer: format!(
                    "INSERT INTO {t} (\"set\", version, name, checksum, chain, state, applied_at, \
                     applied_by, expires_at) \
                     SELECT '', '{LEASE_ROW}', '', '', '', 'lease', acquired_at, owner, expires_at \
                     FROM {lease} WHERE id = 1 AND owner = $1"
                ),
            },
            legacy,
            table: t,
        }
    }
}

/// The layout query with the function check as its fifth column.
fn layout(function_exists: &str) -> String {
    format!(
        "SELECT coalesce(obj_description(c.oid, 'pg_class'), ''), to_regclass($2) IS NOT NULL, \
         to_regclass($3) IS NOT NULL, to_regclass($4) IS NOT NULL, {function_exists} \
         FROM pg_class c WHERE c.oid = to_regclass($1)"
    )
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
            .contains("FROM \"s\"\"x\".\"t\"\"; DROP TABLE x; --\" WHERE"));
    }
}
