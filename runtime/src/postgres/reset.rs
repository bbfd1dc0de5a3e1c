//! The objects of the migrated schema, listed and dropped for a development reset. The
//! database writes the `DROP` statements itself (`format('%I')` quotes the identifiers).

use crate::backend::SchemaObjects;
use crate::error::Error;
use crate::plan::SchemaObject;

use super::wire::{get, Op, Param, PgConn};
use super::PgBackend;

/// Every object of the schema, in an order that drops dependents' owners first. Objects that
/// go with another one (a table's indexes, triggers, partitions and owned sequences, an
/// extension's members) are left to that one's `CASCADE`.
const OBJECTS: &str = "
WITH s AS (SELECT $1::text AS name),
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

impl<C: PgConn> SchemaObjects for PgBackend<C> {
    async fn schema_objects(&mut self, schema: &str) -> Result<Vec<SchemaObject>, Error> {
        let rows = self
            .query(OBJECTS, vec![Param::Text(schema.to_owned())])
            .await
            .map_err(|e| Error::db(format!("listing the objects of schema {schema}"), e))?;
        rows.iter()
            .map(|r| Ok(SchemaObject::new(get(r, 0)?, get(r, 1)?, get(r, 2)?)))
            .collect()
    }

    async fn drop_objects(&mut self, objects: &[SchemaObject]) -> Result<(), Error> {
        let mut ops = vec![Op::Simple("BEGIN")];
        ops.extend(objects.iter().map(|o| Op::Simple(&o.drop)));
        ops.push(Op::Simple("COMMIT"));
        let results = self.conn.pipeline(&ops).await;
        // The first failure names its object; the others are its consequences (25P02, or not
        // run), and the transaction ended rolled back (see `PgConn::pipeline`).
        for (i, result) in results.into_iter().enumerate() {
            if let Err(e) = result {
                let what = match i.checked_sub(1).and_then(|k| objects.get(k)) {
                    Some(o) => format!("dropping {} {} (nothing was dropped)", o.kind, o.name),
                    None => "the reset's transaction (nothing was dropped)".to_owned(),
                };
                return Err(Error::db(what, e));
            }
        }
        Ok(())
    }
}
