"""The catalog reads a plan needs beyond the inventory: all read-only, all without OIDs in
what they return to a user (OIDs only tie rows of one database together).

HOLDERS   every catalog row that is part of another object (a column default, a constraint,
          a view's _RETURN rule, the index behind a constraint, an identity sequence, a row or
          array type, a publication's member, an extension's member) with that object's row;
DEPENDS   pg_depend between user objects, to find what must be dropped and recreated with an
          object that is (a view on a table column whose type changes, ...);
TABLES, COLUMNS, CONSTRAINTS
          a changed table's facts one by one, for ALTER TABLE (the inventory's definition is
          one line per fact, but a default expression can hold any text: read apart here).
Each runs with search_path '' like the inventory's, so deparsed names come out qualified.
"""

from __future__ import annotations

_CLASS = "'pg_catalog.pg_class'::regclass::oid"
_TYPE = "'pg_catalog.pg_type'::regclass::oid"

# (classid, objid) -> (holder classid, holder objid); resolved transitively in Python.
HOLDERS = f"""
SELECT d.classid, d.objid, d.refclassid AS hclassid, d.refobjid AS hobjid
FROM pg_catalog.pg_depend d
WHERE d.deptype IN ('i', 'e') AND d.objsubid = 0 AND d.objid >= 16384
UNION ALL
SELECT 'pg_catalog.pg_attrdef'::regclass::oid, ad.oid, {_CLASS}, ad.adrelid
FROM pg_catalog.pg_attrdef ad WHERE ad.oid >= 16384
UNION ALL
SELECT 'pg_catalog.pg_constraint'::regclass::oid, k.oid,
       CASE WHEN k.conrelid <> 0 THEN {_CLASS} ELSE {_TYPE} END,
       CASE WHEN k.conrelid <> 0 THEN k.conrelid ELSE k.contypid END
FROM pg_catalog.pg_constraint k WHERE k.oid >= 16384
UNION ALL
SELECT 'pg_catalog.pg_publication_rel'::regclass::oid, pr.oid,
       'pg_catalog.pg_publication'::regclass::oid, pr.prpubid
FROM pg_catalog.pg_publication_rel pr
UNION ALL
SELECT d.classid, d.objid, d.refclassid, d.refobjid
FROM pg_catalog.pg_depend d
WHERE d.classid IN ('pg_catalog.pg_amop'::regclass, 'pg_catalog.pg_amproc'::regclass)
  AND d.refclassid IN ('pg_catalog.pg_opclass'::regclass, 'pg_catalog.pg_opfamily'::regclass)
  AND d.objid >= 16384"""

# 15: schemas in publications
HOLDERS_15 = """
UNION ALL
SELECT 'pg_catalog.pg_publication_namespace'::regclass::oid, pn.oid,
       'pg_catalog.pg_publication'::regclass::oid, pn.pnpubid
FROM pg_catalog.pg_publication_namespace pn"""

# What depends on what, among objects made after initdb (built-ins never change).
DEPENDS = """
SELECT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid, d.refobjsubid,
       d.deptype::text
FROM pg_catalog.pg_depend d
WHERE d.deptype IN ('n', 'a') AND d.objid >= 16384 AND d.refobjid >= 16384"""

TABLES = """
SELECT c.oid, c.relkind::text AS relkind, c.relpersistence::text AS persistence,
       coalesce(c.reloptions, '{}') AS options,
       coalesce(toast.reloptions, '{}') AS toast_options,
       ts.spcname AS tablespace, am.amname AS access_method,
       c.relrowsecurity AS rls, c.relforcerowsecurity AS force_rls,
       c.relreplident::text AS replica_identity,
       (SELECT ic.relname FROM pg_catalog.pg_index x
        JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
        WHERE x.indrelid = c.oid AND x.indisreplident) AS replica_index,
       (SELECT ic.relname FROM pg_catalog.pg_index x
        JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
        WHERE x.indrelid = c.oid AND x.indisclustered) AS cluster_index,
       c.relispartition AS is_partition,
       pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound,
       CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partition_key,
       coalesce((SELECT array_agg(i.inhparent::regclass::text ORDER BY i.inhseqno)
                 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid), '{}') AS parents,
       NULLIF(c.reloftype, 0)::regtype::text AS of_type,
       srv.srvname AS server, coalesce(ft.ftoptions, '{}') AS server_options
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_class toast ON toast.oid = c.reltoastrelid
LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = c.reltablespace
LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
LEFT JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = c.oid
LEFT JOIN pg_catalog.pg_foreign_server srv ON srv.oid = ft.ftserver
WHERE c.oid = ANY ($1::oid[])"""

# attcompression (14) and the meaning of attstattarget (NULL from 17) differ by major: read
# through to_jsonb so one query serves 13 to 18.
COLUMNS = """
SELECT a.attrelid AS relid, a.attnum AS num, a.attname AS name,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       a.atttypid AS type_oid,
       CASE WHEN a.attcollation <> t.typcollation
            THEN format('%I.%I', cn.nspname, co.collname) END AS collation,
       ad.oid AS default_oid,
       pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) AS expression,
       a.attgenerated::text AS generated,
       a.attnotnull AS not_null,
       a.attidentity::text AS identity,
       a.attstorage::text AS storage, t.typstorage::text AS type_storage,
       NULLIF(to_jsonb(a) ->> 'attcompression', '') AS compression,
       CASE WHEN (to_jsonb(a) ->> 'attstattarget')::int >= 0
            THEN (to_jsonb(a) ->> 'attstattarget')::int END AS statistics,
       coalesce(ARRAY(SELECT o FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg\\_attver=%'),
                '{}') AS options,
       coalesce(a.attfdwoptions, '{}') AS fdw_options,
       a.attislocal AS local, a.attinhcount AS inherited,
       (SELECT format('%I.%I', sn.nspname, sc.relname)
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S'
        JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace
        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'i'
          AND d.refclassid = 'pg_catalog.pg_class'::regclass
          AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum) AS identity_sequence,
       (SELECT concat_ws(' ', 'INCREMENT BY ' || s.seqincrement, 'MINVALUE ' || s.seqmin,
                         'MAXVALUE ' || s.seqmax, 'START WITH ' || s.seqstart,
                         'CACHE ' || s.seqcache,
                         CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END)
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_sequence s ON s.seqrelid = d.objid
        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'i'
          AND d.refclassid = 'pg_catalog.pg_class'::regclass
          AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum) AS identity_options,
       (SELECT format_type(s.seqtypid, NULL)
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_sequence s ON s.seqrelid = d.objid
        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'i'
          AND d.refclassid = 'pg_catalog.pg_class'::regclass
          AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum) AS identity_type
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
WHERE a.attrelid = ANY ($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum"""

CONSTRAINTS = """
SELECT k.oid, k.conrelid AS relid, k.conname AS name, k.contype::text AS type,
       pg_catalog.pg_get_constraintdef(k.oid) AS definition,
       k.convalidated AS validated, k.conislocal AS local, k.coninhcount AS inherited,
       k.conparentid <> 0 AS cloned, k.condeferrable AS deferrable,
       k.condeferred AS deferred, k.connoinherit AS no_inherit,
       k.conindid <> 0 AS has_index
FROM pg_catalog.pg_constraint k
WHERE k.conrelid = ANY ($1::oid[])
ORDER BY k.conrelid, k.conname"""

# How a value of one type becomes another when a column's type changes: 'i' implicit, 'a'
# assignment (what ALTER COLUMN TYPE applies without USING), 'e' explicit only (needs USING),
# NULL none. Domains count as their base type, a typmod change as assignment, arrays as their
# elements, and strings convert to and from anything through text I/O (to them: assignment).
CAST_CONTEXT = """
WITH RECURSIVE pair(source, target) AS (SELECT $1::regtype::oid, $2::regtype::oid),
base(source, target) AS (
    SELECT coalesce((SELECT NULLIF(t.typbasetype, 0) FROM pg_catalog.pg_type t
                     WHERE t.oid = p.source AND t.typtype = 'd'), p.source),
           coalesce((SELECT NULLIF(t.typbasetype, 0) FROM pg_catalog.pg_type t
                     WHERE t.oid = p.target AND t.typtype = 'd'), p.target)
    FROM pair p
),
elements(source, target) AS (
    SELECT coalesce(NULLIF(se.typelem, 0), b.source), coalesce(NULLIF(te.typelem, 0), b.target)
    FROM base b
    JOIN pg_catalog.pg_type se ON se.oid = b.source
    JOIN pg_catalog.pg_type te ON te.oid = b.target
    WHERE (se.typcategory = 'A') = (te.typcategory = 'A')
)
SELECT CASE
    WHEN e.source = e.target THEN 'a'
    WHEN k.castcontext IS NOT NULL THEN k.castcontext::text
    WHEN tt.typcategory = 'S' THEN 'a'
    WHEN st.typcategory = 'S' THEN 'e'
    END
FROM elements e
JOIN pg_catalog.pg_type st ON st.oid = e.source
JOIN pg_catalog.pg_type tt ON tt.oid = e.target
LEFT JOIN pg_catalog.pg_cast k ON k.castsource = e.source AND k.casttarget = e.target"""

# Whether ALTER EXTENSION UPDATE can go from one version to another on this server.
UPDATE_PATH = """
SELECT p.path IS NOT NULL
FROM pg_catalog.pg_extension_update_paths($1) p
WHERE p.source = $2 AND p.target = $3"""

# Generic options of a foreign data wrapper, server or user mapping (by catalog and oid), as
# the catalog keeps them (`key=value`). A user mapping's are what pg_user_mappings shows this
# user: its password too where the user may see it (pg_dump reads the same).
OPTIONS = {
    2328: "SELECT coalesce(fdwoptions, '{}') FROM pg_catalog.pg_foreign_data_wrapper"
    " WHERE oid = $1",
    1417: "SELECT coalesce(srvoptions, '{}') FROM pg_catalog.pg_foreign_server WHERE oid = $1",
    1418: "SELECT coalesce(umoptions, '{}') FROM pg_catalog.pg_user_mappings WHERE umid = $1",
}

# Extension members as ALTER EXTENSION ... ADD / DROP names them: (extension, type, identity).
MEMBERS = """
SELECT quote_ident(x.extname) AS extension, i.type, i.identity
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid
CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, 0) i
WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'"""
