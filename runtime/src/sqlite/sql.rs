//! Every SQL text the SQLite backend sends. Identifiers are quoted with [`quote_ident`]; values
//! are always bound parameters (`?1`), never interpolated.

use crate::history::LAYOUT;

/// Quotes an identifier for SQLite: wrapped in `"`, inner `"` doubled. The caller has rejected
/// NUL bytes.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The text stored in `applied_at` and `at`: UTC with milliseconds, like PostgreSQL's
/// `timestamptz` text (`2026-11-24 02:45:01.123+00`).
const NOW: &str = "strftime('%Y-%m-%d %H:%M:%f+00', 'now')";

/// The statements for one history table.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    /// The quoted schema (attached database) holding the table, `"main"` by default.
    pub schema: String,
    /// The unquoted table name, a *value* for the `sqlite_schema` lookup.
    pub table_name: String,
    pub layout: String,
    pub create: String,
    /// The fast-path query: the goal row and the counts kept in `<table>_count`.
    pub fast_check: String,
    /// The fast-path query of a history without `<table>_count` yet: counts the rows.
    pub fast_check_uncounted: String,
    /// How many of the three triggers that keep `<table>_count` exist (their names are
    /// `counter_triggers`, bound as values).
    pub counter_kept: String,
    pub counter_triggers: [String; 3],
    /// Installs `<table>_count` and its triggers (see `PgBackend`'s twin for why).
    pub counter_install: String,
    /// Recounts into `<table>_count` when the count drifted (rows written while the triggers
    /// were dropped), or puts its row back if it was deleted; writes nothing otherwise.
    pub recount: String,
    pub read: String,
    pub insert_applied: String,
    pub upsert_applied: String,
    pub delete: String,
    pub set_checksum: String,
    pub set_chain: String,
    pub start_row: String,
    pub progress: String,
    pub finish_row: String,
    pub log: String,
}

impl Sql {
    pub fn new(schema: Option<&str>, table: &str) -> Sql {
        let schema_q = quote_ident(schema.unwrap_or("main"));
        let t = format!("{schema_q}.{}", quote_ident(table));
        let log = format!("{schema_q}.{}", quote_ident(&format!("{table}_log")));
        // Inside a trigger, SQLite names tables of the trigger's own schema unqualified.
        let count_name = quote_ident(&format!("{table}_count"));
        let count = format!("{schema_q}.{count_name}");
        let trigger = |what: &str| {
            format!(
                "{schema_q}.{}",
                quote_ident(&format!("{table}_count_{what}"))
            )
        };
        let on = quote_ident(table);
        let counts = format!(
            "SELECT count(*) AS total, count(*) FILTER (WHERE state <> 'applied') AS unfinished \
             FROM {schema_q}.{on}"
        );
        let columns = "version, name, checksum, chain, state, statements_done, \
                       statements_total, execution_ms, applied_by";
        Sql {
            // SQLite has no table comments; it keeps the text of `CREATE TABLE`, comments
            // included, in `sqlite_schema.sql`: the layout marker is a comment in there.
            layout: format!("SELECT sql FROM {schema_q}.sqlite_schema WHERE type = 'table' AND name = ?1"),
            create: format!(
                "BEGIN IMMEDIATE;\n\
                 CREATE TABLE IF NOT EXISTS {t} ( -- {LAYOUT}\n\
                   version text PRIMARY KEY NOT NULL,\n\
                   name text NOT NULL,\n\
                   checksum text NOT NULL,\n\
                   chain text NOT NULL,\n\
                   state text NOT NULL CHECK (state IN ('applied', 'in_progress', 'failed')),\n\
                   statements_done integer NOT NULL DEFAULT 0,\n\
                   statements_total integer NOT NULL DEFAULT 0,\n\
                   applied_at text NOT NULL DEFAULT ({NOW}),\n\
                   execution_ms integer NOT NULL DEFAULT 0,\n\
                   applied_by text NOT NULL DEFAULT '',\n\
                   error text\n\
                 );\n\
                 CREATE TABLE IF NOT EXISTS {log} (\n\
                   at text NOT NULL DEFAULT ({NOW}),\n\
                   action text NOT NULL,\n\
                   version text,\n\
                   detail text NOT NULL,\n\
                   performed_by text NOT NULL\n\
                 );\n\
                 COMMIT"
            ),
            fast_check: format!(
                "SELECT h.chain, h.state, c.total, c.unfinished FROM {count} AS c \
                 LEFT JOIN {t} AS h ON h.version = ?1 WHERE c.id = 1"
            ),
            fast_check_uncounted: format!(
                "SELECT h.chain, h.state, c.total, c.unfinished FROM ({counts}) AS c \
                 LEFT JOIN {t} AS h ON h.version = ?1"
            ),
            counter_kept: format!(
                "SELECT count(*) FROM {schema_q}.sqlite_schema \
                 WHERE type = 'trigger' AND name IN (?1, ?2, ?3)"
            ),
            counter_triggers: ["insert", "delete", "state"].map(|what| format!("{table}_count_{what}")),
            counter_install: format!(
                "BEGIN IMMEDIATE;\n\
                 CREATE TABLE IF NOT EXISTS {count} (\n\
                   id integer PRIMARY KEY CHECK (id = 1),\n\
                   total integer NOT NULL,\n\
                   unfinished integer NOT NULL\n\
                 );\n\
                 CREATE TRIGGER IF NOT EXISTS {insert} AFTER INSERT ON {on} BEGIN \
                 UPDATE {count_name} SET total = total + 1, \
                 unfinished = unfinished + (NEW.state <> 'applied') WHERE id = 1; END;\n\
                 CREATE TRIGGER IF NOT EXISTS {delete} AFTER DELETE ON {on} BEGIN \
                 UPDATE {count_name} SET total = total - 1, \
                 unfinished = unfinished - (OLD.state <> 'applied') WHERE id = 1; END;\n\
                 CREATE TRIGGER IF NOT EXISTS {state} AFTER UPDATE OF state ON {on} \
                 WHEN OLD.state IS NOT NEW.state BEGIN \
                 UPDATE {count_name} SET unfinished = unfinished \
                 + (NEW.state <> 'applied') - (OLD.state <> 'applied') WHERE id = 1; END;\n\
                 INSERT OR REPLACE INTO {count} (id, total, unfinished) \
                 SELECT 1, total, unfinished FROM ({counts});\n\
                 COMMIT",
                insert = trigger("insert"),
                delete = trigger("delete"),
                state = trigger("state"),
            ),
            recount: format!(
                "UPDATE {count} SET (total, unfinished) = (SELECT total, unfinished FROM ({counts})) \
                 WHERE id = 1 AND (total, unfinished) <> (SELECT total, unfinished FROM ({counts}));\n\
                 INSERT INTO {count} (id, total, unfinished) SELECT 1, total, unfinished \
                 FROM ({counts}) WHERE NOT EXISTS (SELECT 1 FROM {count} WHERE id = 1)"
            ),
            read: format!(
                "SELECT version, name, checksum, chain, state, statements_done, statements_total, \
                 applied_at, execution_ms, applied_by, error FROM {t}"
            ),
            insert_applied: format!(
                "INSERT INTO {t} ({columns}) VALUES (?1, ?2, ?3, ?4, 'applied', ?5, ?5, ?7, ?6)"
            ),
            upsert_applied: format!(
                "INSERT INTO {t} ({columns}) VALUES (?1, ?2, ?3, ?4, 'applied', ?5, ?5, ?7, ?6) \
                 ON CONFLICT (version) DO UPDATE SET name = excluded.name, \
                 checksum = excluded.checksum, chain = excluded.chain, state = 'applied', \
                 statements_done = excluded.statements_done, \
                 statements_total = excluded.statements_total, applied_by = excluded.applied_by, \
                 error = NULL"
            ),
            delete: format!("DELETE FROM {t} WHERE version = ?1"),
            set_checksum: format!("UPDATE {t} SET checksum = ?2, chain = ?3 WHERE version = ?1"),
            set_chain: format!("UPDATE {t} SET chain = ?2 WHERE version = ?1"),
            start_row: format!(
                "INSERT INTO {t} ({columns}) VALUES (?1, ?2, ?3, ?4, 'in_progress', ?5, ?6, 0, ?7) \
                 ON CONFLICT (version) DO UPDATE SET state = 'in_progress', \
                 checksum = excluded.checksum, chain = excluded.chain, \
                 statements_done = excluded.statements_done, \
                 statements_total = excluded.statements_total, applied_by = excluded.applied_by, \
                 error = NULL"
            ),
            progress: format!("UPDATE {t} SET statements_done = ?2 WHERE version = ?1"),
            finish_row: format!(
                "UPDATE {t} SET state = ?2, statements_done = ?3, \
                 execution_ms = execution_ms + ?4, error = ?5 WHERE version = ?1"
            ),
            log: format!(
                "INSERT INTO {log} (action, version, detail, performed_by) VALUES (?1, ?2, ?3, ?4)"
            ),
            schema: schema_q,
            table_name: table.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        let sql = Sql::new(None, "t\"; DROP TABLE x; --");
        assert!(sql
            .read
            .ends_with("FROM \"main\".\"t\"\"; DROP TABLE x; --\""));
        let sql = Sql::new(Some("aux"), "h");
        assert!(sql.delete.starts_with("DELETE FROM \"aux\".\"h\""));
        assert_eq!(sql.table_name, "h");
    }
}
