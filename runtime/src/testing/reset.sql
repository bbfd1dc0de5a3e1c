DO $preflight$
DECLARE
    given jsonb := nullif(current_setting('preflight.baseline', true), '')::jsonb;
    fp text;
    q text;
    tables jsonb := '{}';
    seqs jsonb := '{}';
    filled oid[];
    r record;
    h text;
BEGIN
    -- The schema's fingerprint: a count and a sum of row hashes (no sorting, no long strings).
    SELECT string_agg(format(
               'SELECT hashtextextended(t::text, %s) AS h FROM %s AS t WHERE t.oid >= 16384',
               c.oid, c.oid::regclass), ' UNION ALL ')
    INTO q
    FROM pg_class c
    WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r' AND NOT c.relisshared
      AND c.oid NOT IN ('pg_class'::regclass, 'pg_namespace'::regclass)
      AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'oid');
    EXECUTE 'SELECT count(*) || '':'' || coalesce(sum(h), 0) FROM (' || q || ') AS s' INTO fp;
    SELECT fp || ' ' || count(*) || ':' || coalesce(sum(hashtextextended(x, 0)), 0) INTO fp FROM (
        SELECT concat_ws(' ', 'n', n.oid, n.nspname, n.nspowner, n.nspacl) FROM pg_namespace n
        WHERE n.oid >= 16384 AND n.nspname !~ '^pg_(toast_)?temp_'
        UNION ALL
        SELECT concat_ws(' ', 'c', c.oid, c.relname, c.relnamespace, c.reltype, c.relowner,
            c.relkind, c.relnatts, c.relchecks, c.relhasrules, c.relhastriggers,
            c.relrowsecurity, c.relforcerowsecurity, c.relreplident, c.relispartition,
            c.relacl, c.reloptions, c.relpersistence, pg_get_expr(c.relpartbound, c.oid))
        FROM pg_class c WHERE c.oid >= 16384 AND c.relpersistence <> 't'
        UNION ALL
        SELECT concat_ws(' ', 'a', a::text) FROM pg_attribute a
        WHERE a.attrelid >= 16384 AND a.attnum > 0
        UNION ALL
        SELECT concat_ws(' ', 'i', i::text) FROM pg_index i WHERE i.indexrelid >= 16384
        UNION ALL
        SELECT concat_ws(' ', 'd', d::text) FROM pg_description d WHERE d.objoid >= 16384
        UNION ALL
        SELECT concat_ws(' ', 's', s::text) FROM pg_db_role_setting s
        JOIN pg_database b ON b.oid = s.setdatabase WHERE b.datname = current_database()
    ) AS f(x);

    IF given IS NULL THEN
        -- The baseline: which tables have rows (and a hash of them), the sequences' values.
        SELECT string_agg(format('SELECT %s::oid AS o WHERE EXISTS (SELECT FROM %s)',
                   c.oid, c.oid::regclass), ' UNION ALL ')
        INTO q
        FROM pg_class c
        WHERE c.oid >= 16384 AND c.relkind IN ('r', 'm') AND c.relpersistence <> 't';
        IF q IS NOT NULL THEN
            EXECUTE 'SELECT array_agg(o) FROM (' || q || ') AS s' INTO filled;
        END IF;
        FOR r IN
            SELECT c.oid, c.relkind FROM pg_class c
            WHERE c.oid >= 16384 AND c.relkind IN ('r', 'm', 'S') AND c.relpersistence <> 't'
        LOOP
            IF r.relkind = 'S' THEN
                seqs := seqs || jsonb_build_object(r.oid::text, pg_sequence_last_value(r.oid));
            ELSIF r.relkind = 'r' AND NOT (r.oid = ANY (coalesce(filled, '{}'))) THEN
                tables := tables || jsonb_build_object(r.oid::text, NULL);
            ELSE
                EXECUTE format('SELECT count(*) || '':'' || coalesce(sum(hashtextextended(t::text, 0)), 0) FROM %s AS t',
                    r.oid::regclass) INTO h;
                tables := tables || jsonb_build_object(r.oid::text, h);
            END IF;
        END LOOP;
        PERFORM set_config('preflight.baseline',
            jsonb_build_object('schema', fp, 'tables', tables, 'sequences', seqs)::text, false);
        RETURN;
    END IF;

    -- Check and reset. The commit need not wait for the WAL flush: the rename that puts the
    -- database back in the pool commits after it, synchronously, and its flush covers this
    -- commit too (the WAL is sequential); a crash before that leaves the database under its
    -- test name, dropped later as a leftover.
    PERFORM set_config('synchronous_commit', 'off', true);
    IF fp IS DISTINCT FROM given->>'schema' THEN
        RAISE EXCEPTION 'preflight: the schema changed during the test';
    END IF;
    SELECT string_agg(format('SELECT %s::oid AS o WHERE EXISTS (SELECT FROM %s)',
               t.key, t.key::oid::regclass), ' UNION ALL ')
    INTO q
    FROM jsonb_each(given->'tables') AS t
    WHERE t.value = 'null'::jsonb;
    IF q IS NOT NULL THEN
        EXECUTE 'SELECT array_agg(o) FROM (' || q || ') AS s' INTO filled;
    END IF;
    FOR r IN SELECT t.key::oid AS rel, t.value FROM jsonb_each_text(given->'tables') AS t
             WHERE t.value IS NOT NULL LOOP
        EXECUTE format('SELECT count(*) || '':'' || coalesce(sum(hashtextextended(t::text, 0)), 0) FROM %s AS t',
            r.rel::regclass) INTO h;
        IF h IS DISTINCT FROM r.value THEN
            RAISE EXCEPTION 'preflight: % changed during the test', r.rel::regclass;
        END IF;
    END LOOP;
    IF cardinality(filled) > 0 THEN
        -- One statement for all of them, so that foreign keys between them do not get in the way.
        EXECUTE 'TRUNCATE ' || (SELECT string_agg(f::regclass::text, ', ') FROM unnest(filled) AS f);
    END IF;
    FOR r IN SELECT t.key::oid AS seq, t.value::bigint AS v FROM jsonb_each_text(given->'sequences') AS t LOOP
        IF pg_sequence_last_value(r.seq) IS DISTINCT FROM r.v THEN
            IF r.v IS NULL THEN
                PERFORM setval(r.seq, s.seqstart, false) FROM pg_sequence AS s WHERE s.seqrelid = r.seq;
            ELSE
                PERFORM setval(r.seq, r.v, true);
            END IF;
        END IF;
    END LOOP;
END
$preflight$
