//! The database's objects, listed and dropped for a development reset.

use crate::backend::SchemaObjects;
use crate::error::Error;
use crate::plan::SchemaObject;

use super::sql::quote_ident;
use super::{db_error, SqliteBackend};

/// The objects of an attached database (`main` by default): views, then tables (their
/// indexes and triggers go with them). `?1` is the database's name, for the `DROP`s.
fn objects(schema: &str) -> String {
    format!(
        "SELECT type, name, printf('DROP %s IF EXISTS \"%w\".\"%w\"', upper(type), ?1, name)
         FROM {}.sqlite_schema
         WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
         ORDER BY type = 'table', name",
        quote_ident(schema)
    )
}

impl SchemaObjects for SqliteBackend<'_> {
    async fn schema_objects(&mut self, schema: &str) -> Result<Vec<SchemaObject>, Error> {
        let listed = self
            .conn
            .prepare(&objects(schema))
            .and_then(|mut statement| {
                statement
                    .query_map([schema], |r| {
                        Ok(SchemaObject::new(r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()
            });
        listed.map_err(|e| Error::db("listing the database's objects", db_error(&e)))
    }

    async fn drop_objects(&mut self, objects: &[SchemaObject]) -> Result<(), Error> {
        // Foreign keys would make the order matter; the pragma is a no-op inside a
        // transaction, so it is switched off around it, and restored.
        let conn = self.conn;
        let enforced: bool = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .map_err(|e| Error::db("reading foreign_keys", db_error(&e)))?;
        conn.pragma_update(None, "foreign_keys", false)
            .map_err(|e| Error::db("switching foreign_keys off", db_error(&e)))?;
        let dropped = (|| {
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| Error::db("starting the reset", db_error(&e)))?;
            for o in objects {
                if let Err(e) = conn.execute_batch(&o.drop) {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(Error::db(
                        format!("dropping {} {} (nothing was dropped)", o.kind, o.name),
                        db_error(&e),
                    ));
                }
            }
            conn.execute_batch("COMMIT")
                .map_err(|e| Error::db("committing the reset", db_error(&e)))
        })();
        let restored = conn
            .pragma_update(None, "foreign_keys", enforced)
            .map_err(|e| Error::db("restoring foreign_keys", db_error(&e)));
        dropped.and(restored)
    }
}
