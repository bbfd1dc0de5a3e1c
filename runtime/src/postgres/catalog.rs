//! The schema as drift compares it (see [`crate::drift`]): one query over `pg_catalog` that
//! returns every object's attributes as `(kind, name, attribute, value)` rows, read in a
//! read-only transaction whose `search_path` is `pg_catalog` alone, so that the server prints
//! every name schema-qualified whatever the session's path. Objects that belong to an
//! extension (`pg_depend` type `e`) and Preflight's own (everything in the history table's
//! schema named `<table>` or `<table>_...`, and what hangs on those tables) are left out.

use crate::backend::{Catalogs, ScratchWork, Surroundings};
use crate::drift::Catalog;
use crate::error::Error;

use super::sql;
use super::wire::{get, Op, Param, PgConn};
use super::PgBackend;

/// The catalog query: `$1` the history table's schema, `$2` the history table. Every part
/// yields `(kind, name, attribute, value)`; an empty attribute is the object's definition,
/// and attributes without a value are left out.
const CATALOG: &str = r#"
WITH ns AS (
  SELECT n.oid, n.nspname FROM pg_namespace n
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                    AND d.objid = n.oid AND d.deptype = 'e')
), rel AS (
  SELECT c.oid, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
         c.relispartition, c.reloptions, c.relpartbound, format('%I.%I', ns.nspname, c.relname) AS name
  FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
  WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
    AND NOT (ns.nspname = $1 AND (c.relname = $2 OR starts_with(c.relname, $2 || '_')))
)
SELECT 'schema', format('%I', nspname), '', '' FROM ns
UNION ALL
SELECT 'extension', format('%I', e.extname), '', 'version ' || e.extversion || ' in schema ' || format('%I', n.nspname)
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
UNION ALL
SELECT 'table', r.name, a.attr, a.value FROM rel r, LATERAL (VALUES
  ('', CASE r.relkind WHEN 'p' THEN 'partitioned table' WHEN 'f' THEN 'foreign table' ELSE 'table' END),
  ('unlogged', CASE WHEN r.relpersistence = 'u' THEN 'yes' END),
  ('row level security', CASE WHEN r.relrowsecurity THEN
     CASE WHEN r.relforcerowsecurity THEN 'enabled, forced' ELSE 'enabled' END END),
  ('partition key', CASE WHEN r.relkind = 'p' THEN pg_get_partkeydef(r.oid) END),
  ('partition of', CASE WHEN r.relispartition THEN
     (SELECT format('%I.%I ', pn.nspname, pc.relname) FROM pg_inherits i
      JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
      WHERE i.inhrelid = r.oid) || pg_get_expr(r.relpartbound, r.oid) END),
  ('options', array_to_string(r.reloptions, ', '))
) AS a(attr, value)
WHERE r.relkind IN ('r', 'p', 'f') AND a.value IS NOT NULL
UNION ALL
SELECT 'column', r.name || '.' || format('%I', att.attname), a.attr, a.value
FROM rel r
JOIN pg_attribute att ON att.attrelid = r.oid AND att.attnum > 0 AND NOT att.attisdropped
JOIN pg_type t ON t.oid = att.atttypid
LEFT JOIN pg_attrdef ad ON ad.adrelid = att.attrelid AND ad.adnum = att.attnum,
LATERAL (VALUES
  ('type', format_type(att.atttypid, att.atttypmod)),
  ('not null', CASE WHEN att.attnotnull THEN 'yes' END),
  ('default', CASE WHEN att.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END),
  ('generated', CASE WHEN att.attgenerated = 's' THEN pg_get_expr(ad.adbin, ad.adrelid) END),
  ('identity', CASE att.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END),
  ('collation', CASE WHEN att.attcollation <> t.typcollation THEN
     (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
      JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = att.attcollation) END)
) AS a(attr, value)
WHERE r.relkind IN ('r', 'p', 'f') AND a.value IS NOT NULL
UNION ALL
SELECT 'index', format('%I.%I', n.nspname, ic.relname), a.attr, a.value
FROM pg_index i JOIN rel r ON r.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace,
LATERAL (VALUES
  ('', pg_get_indexdef(i.indexrelid)),
  ('unique', CASE WHEN i.indisunique THEN 'yes' END),
  ('predicate', pg_get_expr(i.indpred, i.indrelid)),
  ('valid', CASE WHEN NOT i.indisvalid THEN 'no' END)
) AS a(attr, value)
WHERE a.value IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid
                  AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x'))
UNION ALL
SELECT 'constraint', r.name || '.' || format('%I', co.conname), '', pg_get_constraintdef(co.oid)
FROM pg_constraint co JOIN rel r ON r.oid = co.conrelid
UNION ALL
SELECT CASE r.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END, r.name, a.attr, a.value
FROM rel r, LATERAL (VALUES
  ('', pg_get_viewdef(r.oid, true)),
  ('options', array_to_string(r.reloptions, ', '))
) AS a(attr, value)
WHERE r.relkind IN ('v', 'm') AND a.value IS NOT NULL
UNION ALL
SELECT 'sequence', r.name, '', format_type(s.seqtypid, NULL) || ' start ' || s.seqstart
  || ' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax
  || ' cache ' || s.seqcache || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
  format('%I.%I', n.nspname, p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
  '',
  CASE WHEN p.prokind = 'a' THEN 'aggregate returning ' || format_type(p.prorettype, NULL)
       ELSE pg_get_functiondef(p.oid) END
FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
  AND NOT (n.nspname = $1 AND starts_with(p.proname, $2 || '_'))
UNION ALL
SELECT 'trigger', r.name || '.' || format('%I', tg.tgname), a.attr, a.value
FROM pg_trigger tg JOIN rel r ON r.oid = tg.tgrelid, LATERAL (VALUES
  ('', pg_get_triggerdef(tg.oid)),
  ('enabled', CASE tg.tgenabled WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'replica only'
                                WHEN 'A' THEN 'always' END)
) AS a(attr, value)
WHERE NOT tg.tgisinternal AND a.value IS NOT NULL
UNION ALL
SELECT CASE t.typtype WHEN 'e' THEN 'enum' ELSE 'domain' END, format('%I.%I', n.nspname, t.typname),
  a.attr, a.value
FROM pg_type t JOIN ns n ON n.oid = t.typnamespace, LATERAL (VALUES
  ('', CASE WHEN t.typtype = 'e' THEN
     coalesce((SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
               FROM pg_enum e WHERE e.enumtypid = t.oid), '')
     ELSE format_type(t.typbasetype, t.typtypmod) END),
  ('not null', CASE WHEN t.typnotnull THEN 'yes' END),
  ('default', t.typdefault),
  ('check', (SELECT string_agg(format('%I ', c.conname) || pg_get_constraintdef(c.oid), '; '
                               ORDER BY c.conname)
             FROM pg_constraint c WHERE c.contypid = t.oid))
) AS a(attr, value)
WHERE t.typtype IN ('e', 'd') AND a.value IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
UNION ALL
SELECT 'policy', r.name || '.' || format('%I', p.polname), a.attr, a.value
FROM pg_policy p JOIN rel r ON r.oid = p.polrelid, LATERAL (VALUES
  ('', CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END || ' for '
       || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                        WHEN 'd' THEN 'DELETE' ELSE 'ALL' END
       || ' to ' || (SELECT string_agg(x.role, ', ' ORDER BY x.role) FROM
            (SELECT CASE WHEN rid = 0 THEN 'public' ELSE format('%I', ro.rolname) END AS role
             FROM unnest(p.polroles) AS rid LEFT JOIN pg_roles ro ON ro.oid = rid) AS x)),
  ('using', pg_get_expr(p.polqual, p.polrelid)),
  ('with check', pg_get_expr(p.polwithcheck, p.polrelid))
) AS a(attr, value)
WHERE a.value IS NOT NULL
"#;

/// The history table's schema (the configured one, or the current schema) and the session's
/// `search_path`.
const SURROUNDINGS: &str =
    "SELECT coalesce($1::text, current_schema()::text, ''), current_setting('search_path')";

impl<C: PgConn> Catalogs for PgBackend<C> {
    async fn surroundings(&mut self, table: &str) -> Result<Surroundings, Error> {
        let rows = self
            .query(SURROUNDINGS, vec![Param::OptText(self.cfg_schema.clone())])
            .await
            .map_err(|e| Error::db("reading the session's schema", e))?;
        let row = rows
            .first()
            .ok_or_else(|| Error::History("the schema query returned no row".into()))?;
        Ok(Surroundings {
            schema: get(row, 0)?,
            table: table.to_owned(),
            search_path: Some(get(row, 1)?),
        })
    }

    async fn catalog(&mut self, own: &Surroundings) -> Result<Catalog, Error> {
        let ops = [
            Op::Simple("BEGIN READ ONLY; SET LOCAL search_path = pg_catalog"),
            Op::Query(
                CATALOG,
                vec![
                    Param::Text(own.schema.clone()),
                    Param::Text(own.table.clone()),
                ],
            ),
            Op::Simple("COMMIT"),
        ];
        let mut results = self.conn.pipeline(&ops).await.into_iter();
        let begun = results.next();
        let rows = results.next();
        let committed = results.next();
        let rows = match (begun, rows) {
            (Some(Err(e)), _) => return Err(Error::db("starting the catalog read", e)),
            (_, Some(Ok(rows))) => rows,
            (_, Some(Err(e))) => return Err(Error::db("reading the catalog", e)),
            (_, None) => return Err(Error::History("the catalog query returned nothing".into())),
        };
        if let Some(Err(e)) = committed {
            return Err(Error::db("ending the catalog read", e));
        }
        let mut catalog = Catalog::default();
        for row in &rows {
            let kind: String = get(row, 0)?;
            let attribute: String = get(row, 2)?;
            catalog.insert(&kind, get(row, 1)?, &attribute, get(row, 3)?);
        }
        Ok(catalog)
    }

    async fn on_scratch<W: ScratchWork>(&mut self, work: W) -> Result<Catalog, Error> {
        let Some(scratch) = self.scratch.clone() else {
            return Err(Error::Config(
                "drift builds the migrations in a scratch database on the server, and needs to \
                 know how to connect to it: set `Runner::scratch(Scratch::postgres(config, tls))` \
                 (the `preflight drift` command does it from --database-url)"
                    .into(),
            ));
        };
        self.conn.on_scratch(&scratch, work).await
    }
}

/// Sets the scratch connection's `search_path` (a value, bound as a parameter).
pub(super) fn set_search_path(path: &str) -> Op<'static> {
    Op::Query(
        sql::SET_CONFIG,
        vec![
            Param::Text("search_path".into()),
            Param::Text(path.to_owned()),
            Param::Bool(false),
        ],
    )
}
