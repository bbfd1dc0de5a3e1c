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

/// The statements for one history table (its layout: [`crate::history`]).
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    /// The quoted schema (attached database) holding the table, `"main"` by default.
    pub schema: String,
    /// The unquoted table name, a *value* for the `sqlite_schema` lookup.
    pub table_name: String,
    /// The `CREATE TABLE` text of the table (its layout marker is a comment in it).
    pub layout: String,
    /// Layout 1's side objects that still exist (`?1`..`?5`: `<table>_count`, `<table>_log` and
    /// the three `<table>_count_*` triggers, as names).
    pub legacy_objects: String,
    /// The names `legacy_objects` takes.
    pub legacy_names: [String; 5],
    pub create: String,
    pub read: String,
    /// Reads a layout-1 table as layout-2 rows with an empty set.
    pub read_v1: String,
    /// A layout-1 table's versions and checksums (to choose the set its rows get).
    pub v1_rows: String,
    pub insert_applied: String,
    pub upsert_applied: String,
    pub delete: String,
    pub set_checksum: String,
    pub set_chain: String,
    /// Appends a line to a row's `repaired` column, stamped with the clock.
    pub note: String,
    pub start_row: String,
    pub start_revert: String,
    pub progress: String,
    pub finish_row: String,
}

/// The columns of layout 2, shared by the table and the one an upgrade builds.
fn columns() -> String {
    format!(
        "  \"set\" text NOT NULL,\n\
           version text NOT NULL,\n\
           ord text NOT NULL DEFAULT '',\n\
           name text NOT NULL,\n\
           checksum text NOT NULL,\n\
           chain text NOT NULL,\n\
           state text NOT NULL CHECK (state IN ('applied', 'in_progress', 'failed', \
         'reverting', 'revert_failed', 'lease')),\n\
           statements_done integer NOT NULL DEFAULT 0,\n\
           statements_total integer NOT NULL DEFAULT 0,\n\
           completed text NOT NULL DEFAULT '',\n\
           applied_at text NOT NULL DEFAULT ({NOW}),\n\
           execution_ms integer NOT NULL DEFAULT 0,\n\
           applied_by text NOT NULL DEFAULT '',\n\
           error text,\n\
           repaired text,\n\
           expires_at text,\n\
           PRIMARY KEY (\"set\", version)"
    )
}

/// The unfinished rows, as the partial index `<table>_open` and the fast path both say it.
const OPEN: &str = "state NOT IN ('applied', 'lease')";

/// The columns every insert writes, in the order of the parameters `?1`..`?8`.
const INSERT_COLUMNS: &str = "\"set\", version, ord, name, checksum, chain, state, \
     statements_done, statements_total, execution_ms, applied_by";

impl Sql {
    pub fn new(schema: Option<&str>, table: &str) -> Sql {
        let schema_q = quote_ident(schema.unwrap_or("main"));
        let t = format!("{schema_q}.{}", quote_ident(table));
        let key = "\"set\" = ?1 AND version = ?2";
        Sql {
            // SQLite has no table comments; it keeps the text of `CREATE TABLE`, comments
            // included, in `sqlite_schema.sql`: the layout marker is a comment in there.
            layout: format!("SELECT sql FROM {schema_q}.sqlite_schema WHERE type = 'table' AND name = ?1"),
            legacy_objects: format!(
                "SELECT type, name FROM {schema_q}.sqlite_schema WHERE name IN (?1, ?2, ?3, ?4, ?5) \
                 ORDER BY type = 'table'"
            ),
            legacy_names: [
                format!("{table}_count"),
                format!("{table}_log"),
                format!("{table}_count_insert"),
                format!("{table}_count_delete"),
                format!("{table}_count_state"),
            ],
            create: format!(
                "BEGIN IMMEDIATE;\n\
                 CREATE TABLE IF NOT EXISTS {t} ( -- {LAYOUT}\n{columns}\n);\n\
                 {indexes};\n\
                 COMMIT",
                columns = columns(),
                indexes = indexes(&schema_q, table).join(";\n"),
            ),
            read: format!(
                "SELECT \"set\", version, name, checksum, chain, state, statements_done, \
                 statements_total, completed, applied_at, execution_ms, applied_by, error, repaired \
                 FROM {t} WHERE \"set\" <> ''"
            ),
            read_v1: format!(
                "SELECT '', version, name, checksum, chain, state, statements_done, \
                 statements_total, '', applied_at, execution_ms, applied_by, error, NULL FROM {t}"
            ),
            v1_rows: format!("SELECT version, checksum FROM {t}"),
            insert_applied: format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'applied', \
                 ?7, ?7, ?9, ?8)"
            ),
            upsert_applied: format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'applied', \
                 ?7, ?7, ?9, ?8) \
                 ON CONFLICT (\"set\", version) DO UPDATE SET name = excluded.name, \
                 checksum = excluded.checksum, chain = excluded.chain, state = 'applied', \
                 statements_done = excluded.statements_done, \
                 statements_total = excluded.statements_total, completed = '', \
                 applied_by = excluded.applied_by, error = NULL"
            ),
            delete: format!("DELETE FROM {t} WHERE {key}"),
            set_checksum: format!("UPDATE {t} SET checksum = ?3, chain = ?4 WHERE {key}"),
            set_chain: format!("UPDATE {t} SET chain = ?3 WHERE {key}"),
            note: format!(
                "UPDATE {t} SET repaired = coalesce(repaired || char(10), '') || ?3 || ' at ' \
                 || {NOW} WHERE {key}"
            ),
            start_row: format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}, completed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
                 'in_progress', ?7, ?8, 0, ?9, ?10) \
                 ON CONFLICT (\"set\", version) DO UPDATE SET state = 'in_progress', \
                 checksum = excluded.checksum, chain = excluded.chain, \
                 statements_done = excluded.statements_done, \
                 statements_total = excluded.statements_total, completed = excluded.completed, \
                 applied_by = excluded.applied_by, error = NULL"
            ),
            start_revert: format!(
                "UPDATE {t} SET state = 'reverting', statements_done = ?3, statements_total = ?4, \
                 completed = ?5, error = NULL \
                 WHERE {key} AND state IN ('applied', 'reverting', 'revert_failed')"
            ),
            progress: format!("UPDATE {t} SET statements_done = ?3, completed = ?4 WHERE {key}"),
            finish_row: format!(
                "UPDATE {t} SET state = ?3, statements_done = ?4, \
                 execution_ms = execution_ms + ?5, error = ?6 WHERE {key}"
            ),
            schema: schema_q,
            table_name: table.to_owned(),
        }
    }

    /// The fast-path query for `sets` sets (`?1`..`?n`): for each, its newest row by `ord`
    /// (one probe of `<table>_ord`), and whether any of their rows is unfinished (one probe of
    /// the partial index `<table>_open`), in the order given.
    pub fn fast_check(&self, sets: usize) -> String {
        let t = format!("{}.{}", self.schema, quote_ident(&self.table_name));
        let names: Vec<String> = (1..=sets)
            .map(|i| format!("SELECT {i} AS i, ?{i} AS name"))
            .collect();
        let params: Vec<String> = (1..=sets).map(|i| format!("?{i}")).collect();
        format!(
            "SELECT h.version, h.chain, h.state, \
             EXISTS (SELECT 1 FROM {t} WHERE \"set\" IN ({params}) AND {OPEN}) \
             FROM ({names}) AS n \
             LEFT JOIN {t} AS h ON h.rowid = (SELECT rowid FROM {t} \
             WHERE \"set\" = n.name ORDER BY ord DESC LIMIT 1) \
             ORDER BY n.i",
            params = params.join(", "),
            names = names.join(" UNION ALL "),
        )
    }

    /// The upgrade of a layout-1 table (see [`crate::history`]), in one transaction: SQLite
    /// cannot change a primary key, so the table is rebuilt (created beside it, filled, the old
    /// one dropped, the new one renamed) with its rows given set `?1`; `ords` then sets each
    /// row's `ord`. `log`: layout 1's `<table>_log` exists, and its entries go into `repaired`.
    pub fn upgrade(&self, log: bool) -> Upgrade {
        let schema = &self.schema;
        let t = format!("{schema}.{}", quote_ident(&self.table_name));
        let new_name = format!("{}_upgrade", self.table_name);
        let new = format!("{schema}.{}", quote_ident(&new_name));
        let create = format!(
            "CREATE TABLE {new} ( -- {LAYOUT}\n{columns}\n)",
            columns = columns()
        );
        let insert = format!(
            "INSERT INTO {new} (\"set\", version, ord, name, checksum, chain, state, \
             statements_done, statements_total, completed, applied_at, execution_ms, applied_by, \
             error) SELECT ?1, version, '', name, checksum, chain, state, statements_done, \
             statements_total, '', applied_at, execution_ms, applied_by, error FROM {t}"
        );
        let log = log.then(|| {
            let log = format!(
                "{schema}.{}",
                quote_ident(&format!("{}_log", self.table_name))
            );
            format!(
                "UPDATE {new} SET repaired = (SELECT group_concat(action || ': ' || detail || \
                 ' by ' || performed_by || ' at ' || at, char(10) ORDER BY at) FROM {log} AS l \
                 WHERE l.version = {new}.version)"
            )
        });
        let mut finish = Vec::new();
        for name in &self.legacy_names[2..] {
            finish.push(format!(
                "DROP TRIGGER IF EXISTS {schema}.{}",
                quote_ident(name)
            ));
        }
        for name in &self.legacy_names[..2] {
            finish.push(format!(
                "DROP TABLE IF EXISTS {schema}.{}",
                quote_ident(name)
            ));
        }
        finish.push(format!("DROP TABLE {t}"));
        finish.push(format!(
            "ALTER TABLE {new} RENAME TO {}",
            quote_ident(&self.table_name)
        ));
        finish.extend(indexes(schema, &self.table_name));
        Upgrade {
            create,
            insert,
            log,
            finish: finish.join(";\n"),
        }
    }

    /// Sets a row's `ord` (`?1` version, `?2` ord) in the table being upgraded.
    pub fn upgrade_ord(&self) -> String {
        let new = format!(
            "{}.{}",
            self.schema,
            quote_ident(&format!("{}_upgrade", self.table_name))
        );
        format!("UPDATE {new} SET ord = ?2 WHERE version = ?1")
    }
}

/// The statements of an upgrade, in order (see [`Sql::upgrade`]).
#[derive(Debug, Clone)]
pub(crate) struct Upgrade {
    pub create: String,
    /// `?1`: the set.
    pub insert: String,
    pub log: Option<String>,
    pub finish: String,
}

/// The two indexes of layout 2.
fn indexes(schema_q: &str, table: &str) -> [String; 2] {
    let on = quote_ident(table);
    [
        format!(
            "CREATE INDEX IF NOT EXISTS {schema_q}.{} ON {on} (\"set\", ord)",
            quote_ident(&format!("{table}_ord"))
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {schema_q}.{} ON {on} (\"set\") WHERE {OPEN}",
            quote_ident(&format!("{table}_open"))
        ),
    ]
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
            .contains("FROM \"main\".\"t\"\"; DROP TABLE x; --\" WHERE"));
        let sql = Sql::new(Some("aux"), "h");
        assert!(sql.delete.starts_with("DELETE FROM \"aux\".\"h\""));
        assert!(sql.fast_check(2).contains("IN (?1, ?2)"));
        assert_eq!(sql.table_name, "h");
    }
}
