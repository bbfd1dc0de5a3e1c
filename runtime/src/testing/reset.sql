DO $preflight$
DECLARE
    given jsonb := nullif(current_setting('preflight.baseline', true), '')::jsonb;
    fp text := '';
    tables jsonb := '{}';
    seqs jsonb := '{}';
    r record;
    h text;
    empty boolean;
    doomed text[] := '{}';
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS cat FROM pg_class c
        WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r'
          AND NOT c.relisshared AND c.oid NOT IN ('pg_class'::regclass, 'pg_namespace'::regclass)
          AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'oid')
        ORDER BY c.relname
    LOOP
        EXECUTE format('SELECT md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t.oid), '''')) FROM %s AS t WHERE t.oid >= 16384', r.cat) INTO h;
        fp := md5(fp || r.cat::text || h);
    END LOOP;
    SELECT md5(fp || coalesce(string_agg(x, E'\n' ORDER BY x), '')) INTO fp FROM (
        SELECT concat_ws(' ', 'n', n.oid, n.nspname, n.nspowner, n.nspacl) FROM pg_namespace n
        WHERE n.oid >= 16384 AND n.nspname !~ '^pg_(toast_)?temp_'
        UNION ALL
        SELECT concat_ws(' ', 'c', c.oid, c.relname, c.relnamespace, c.reltype, c.relowner,
            c.relkind, c.relnatts, c.relchecks, c.relhasrules, c.relhastriggers,
            c.relrowsecurity, c.relforcerowsecurity, c.relreplident, c.relispartition,
            c.relacl, c.reloptions, c.relpersistence, pg_get_expr(c.relpartbound, c.oid))
        FROM pg_class c WHERE c.oid >= 16384 AND c.relpersistence <> 't'
        UNION ALL
        SELECT concat_ws(' ', 'a', a::text) FROM pg_attribute a WHERE a.attrelid >= 16384
        UNION ALL
        SELECT concat_ws(' ', 'i', i::text) FROM pg_index i WHERE i.indexrelid >= 16384
        UNION ALL
        SELECT concat_ws(' ', 'd', d::text) FROM pg_description d WHERE d.objoid >= 16384
        UNION ALL
        SELECT concat_ws(' ', 's', s::text) FROM pg_db_role_setting s
        JOIN pg_database b ON b.oid = s.setdatabase WHERE b.datname = current_database()
    ) AS f(x);
    IF given IS NULL THEN
        FOR r IN
            SELECT c.oid, c.relkind FROM pg_class c
            WHERE c.oid >= 16384 AND c.relkind IN ('r', 'm', 'S') AND c.relpersistence <> 't'
        LOOP
            IF r.relkind = 'S' THEN
                seqs := seqs || jsonb_build_object(r.oid::text, pg_sequence_last_value(r.oid));
                CONTINUE;
            END IF;
            EXECUTE format('SELECT NOT EXISTS (SELECT FROM %s)', r.oid::regclass) INTO empty;
            IF empty AND r.relkind = 'r' THEN
                h := NULL;
            ELSE
                EXECUTE format('SELECT md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) FROM %s AS t', r.oid::regclass) INTO h;
            END IF;
            tables := tables || jsonb_build_object(r.oid::text, h);
        END LOOP;
        PERFORM set_config('preflight.baseline',
            jsonb_build_object('schema', fp, 'tables', tables, 'sequences', seqs)::text, false);
        RETURN;
    END IF;
    IF fp IS DISTINCT FROM given->>'schema' THEN
        RAISE EXCEPTION 'preflight: the schema changed during the test';
    END IF;
    FOR r IN SELECT key::oid AS rel, value AS h FROM jsonb_each_text(given->'tables') LOOP
        IF r.h IS NULL THEN
            EXECUTE format('SELECT NOT EXISTS (SELECT FROM %s)', r.rel::regclass) INTO empty;
            IF NOT empty THEN
                doomed := doomed || r.rel::regclass::text;
            END IF;
        ELSE
            EXECUTE format('SELECT md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) FROM %s AS t', r.rel::regclass) INTO h;
            IF h IS DISTINCT FROM r.h THEN
                RAISE EXCEPTION 'preflight: % changed during the test', r.rel::regclass;
            END IF;
        END IF;
    END LOOP;
    IF cardinality(doomed) > 0 THEN
        EXECUTE 'TRUNCATE ' || array_to_string(doomed, ', ');
    END IF;
    FOR r IN SELECT key::oid AS seq, value::bigint AS v FROM jsonb_each_text(given->'sequences') LOOP
        IF pg_sequence_last_value(r.seq) IS DISTINCT FROM r.v THEN
            IF r.v IS NULL THEN
                PERFORM setval(r.seq, s.seqstart, false) FROM pg_sequence s WHERE s.seqrelid = r.seq;
            ELSE
                PERFORM setval(r.seq, r.v, true);
            END IF;
        END IF;
    END LOOP;
END
$preflight$
