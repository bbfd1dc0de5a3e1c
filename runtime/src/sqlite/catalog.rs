//! The schema as drift compares it on SQLite (see [`crate::drift`]): the `main` database's
//! tables, indexes, views and triggers from `sqlite_schema` (their `CREATE` text, whitespace
//! normalised), each table's columns from `pragma_table_xinfo`, each index's uniqueness and
//! partiality from `pragma_index_list`. SQLite's own objects (`sqlite_%`) and Preflight's are
//! left out. The scratch database is in memory.

use rusqlite::Connection;

use crate::backend::{Catalogs, ScratchWork, Surroundings};
use crate::drift::Catalog;
use crate::error::Error;

use super::sql::quote_ident;
use super::{db_error, SqliteBackend};

/// The database drift reads: where unqualified `CREATE`s of migrations land.
const MAIN: &str = "main";

/// Every object of `main`: `(type, name, table, sql)`.
const OBJECTS: &str = "SELECT type, name, tbl_name, sql FROM main.sqlite_schema \
     WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name";

/// A table's columns: name, declared type, not null, default, primary-key position, hidden
/// (1: hidden in a virtual table, 2 and 3: generated).
const COLUMNS: &str = "SELECT name, type, \"notnull\", dflt_value, pk, hidden \
     FROM pragma_table_xinfo(?1, 'main') ORDER BY name";

/// Whether an index is unique and partial: `(unique, partial)`.
const INDEX: &str = "SELECT \"unique\", partial FROM pragma_index_list(?1, 'main') WHERE name = ?2";

/// A name as messages show it: bare when it is a plain identifier, quoted otherwise.
fn shown(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

/// `CREATE` text with runs of whitespace made one space.
fn normalised(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `name` is one of Preflight's objects (see [`crate::drift`]).
fn is_own(name: &str, own: &Surroundings) -> bool {
    own.schema == MAIN
        && (name == own.table
            || name
                .strip_prefix(own.table.as_str())
                .is_some_and(|rest| rest.starts_with('_')))
}

impl SqliteBackend<'_> {
    fn read_catalog(&self, own: &Surroundings) -> rusqlite::Result<Catalog> {
        let mut catalog = Catalog::default();
        let mut objects = self.conn.prepare(OBJECTS)?;
        let rows = objects
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (kind, name, table, sql) in rows {
            if is_own(&name, own) || is_own(&table, own) {
                continue;
            }
            let definition = sql.as_deref().map(normalised).unwrap_or_default();
            match kind.as_str() {
                "table" => {
                    catalog.insert("table", shown(&name), "", definition);
                    self.columns(&mut catalog, &name)?;
                }
                "index" => {
                    let key = shown(&name);
                    catalog.insert("index", key.clone(), "", definition);
                    let (unique, partial): (bool, bool) =
                        self.conn
                            .query_row(INDEX, [&table, &name], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    if unique {
                        catalog.insert("index", key.clone(), "unique", "yes".into());
                    }
                    if partial {
                        catalog.insert("index", key, "partial", "yes".into());
                    }
                }
                "view" | "trigger" => catalog.insert(&kind, shown(&name), "", definition),
                _ => {}
            }
        }
        Ok(catalog)
    }

    fn columns(&self, catalog: &mut Catalog, table: &str) -> rusqlite::Result<()> {
        let mut columns = self.conn.prepare(COLUMNS)?;
        let rows = columns
            .query_map([table], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (column, declared, not_null, default, pk, hidden) in rows {
            let key = format!("{}.{}", shown(table), shown(&column));
            catalog.insert("column", key.clone(), "type", declared);
            if not_null {
                catalog.insert("column", key.clone(), "not null", "yes".into());
            }
            if let Some(d) = default {
                catalog.insert("column", key.clone(), "default", d);
            }
            if pk > 0 {
                catalog.insert("column", key.clone(), "primary key", pk.to_string());
            }
            if hidden > 1 {
                catalog.insert("column", key, "generated", "yes".into());
            }
        }
        Ok(())
    }
}

impl Catalogs for SqliteBackend<'_> {
    async fn surroundings(&mut self, table: &str) -> Result<Surroundings, Error> {
        Ok(Surroundings {
            schema: self.schema.clone().unwrap_or_else(|| MAIN.to_owned()),
            table: table.to_owned(),
            search_path: None,
        })
    }

    async fn catalog(&mut self, own: &Surroundings) -> Result<Catalog, Error> {
        self.read_catalog(own)
            .map_err(|e| Error::db("reading the schema", db_error(&e)))
    }

    async fn on_scratch<W: ScratchWork>(&mut self, work: W) -> Result<Catalog, Error> {
        let scratch = Connection::open_in_memory()
            .map_err(|e| Error::db("opening an in-memory scratch database", db_error(&e)))?;
        // The history table's attached database, if it is not `main`, as in the live one.
        if let Some(schema) = work
            .config()
            .schema
            .as_deref()
            .filter(|s| *s != MAIN && *s != "temp")
        {
            scratch
                .execute_batch(&format!(
                    "ATTACH DATABASE ':memory:' AS {}",
                    quote_ident(schema)
                ))
                .map_err(|e| Error::db("attaching an in-memory database", db_error(&e)))?;
        }
        let mut b = SqliteBackend::new(&scratch, work.config())?;
        work.run(&mut b).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_text() {
        assert_eq!(shown("users"), "users");
        assert_eq!(shown("my table"), "\"my table\"");
        assert_eq!(
            normalised("CREATE TABLE t (\n  id INTEGER\n)"),
            "CREATE TABLE t ( id INTEGER )"
        );
        let own = Surroundings {
            schema: "main".into(),
            table: "preflight_history".into(),
            search_path: None,
        };
        assert!(is_own("preflight_history_count", &own));
        assert!(!is_own("preflight_historyx", &own));
    }
}
