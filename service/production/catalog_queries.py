"""The pg_catalog queries behind service.catalog: one set-based query per object family.

Every query returns rows of (kind, name, body, owner, acl, comments, classid, objid):
  body      the normalised definition, one fact per line (no trailing commas, so adding a
            column or a constraint is a single added line in a diff);
  owner     the owning role, quoted, or NULL for objects without an owner of their own;
  acl       GRANT/REVOKE lines that turn the default ACL into the actual one, or '' / NULL;
  comments  COMMENT ON lines for the object and its parts (columns, constraints), or '';
  classid, objid
            the catalog row the object is (pg_class and the table's oid; for a security
            label, the labelled object's): not part of the definition, they let a plan
            match the object with pg_dump's entries and pg_depend's rows.

Schema-scoped queries take $1 (schemas to keep, empty = all) and $2 (schemas to drop) as
text[] of regexes (schema_patterns.py); global ones take no parameters. All run with
search_path = '' like pg_dump, so every deparsed name outside pg_catalog comes out
schema-qualified and no OID ever reaches the text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Query:
    family: str
    sql: str
    scoped: bool = True  # takes the ($1 schemas, $2 exclude_schemas) filter
    whole_database: bool = False  # not in any schema: left out under a `schemas` filter
    privileges_only: bool = False  # the body is privileges: left out when they are off
    only_if: str = ""  # SQL condition: run the query only where the session may read it


# Schemas we look into: user schemas that pass the filter (system ones never do). $1/$2 are
# regexes from schema_patterns.py, matched as pg_dump -n/-N match them: `~`, default collation.
_NSPNAME = 'n.nspname::text COLLATE pg_catalog."default"'
_NS = f"""ns AS (
    SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n
    WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
      AND (cardinality($1::text[]) = 0 OR {_NSPNAME} ~ ANY ($1::text[]))
      AND NOT {_NSPNAME} ~ ANY ($2::text[])
)"""


def _own(catalog: str, oid: str) -> str:
    """SQL: the object stands on its own, as pg_dump sees it.

    Not a member of an extension (CREATE EXTENSION brings those) and not made implicitly for
    another object (array and multirange types, range constructors, identity sequences).
    Whole objects only: a partitioned table's key columns depend internally on the table
    itself (objsubid = the column), which does not make the table anyone's part.
    """
    # A scalar subquery, not a join: one index probe per object beats hashing every
    # dependency of the catalog (40,000 rows for pg_class at 10,000 tables).
    return (
        f"NOT (SELECT EXISTS (SELECT FROM pg_catalog.pg_depend e WHERE e.classid = "
        f"'pg_catalog.{catalog}'::pg_catalog.regclass AND e.objid = {oid}"
        f" AND e.objsubid = 0 AND e.deptype IN ('e', 'i')))"
    )


def _acl(acl: str, baseline: str, target: str, owner: str, column: str = "''") -> str:
    """SQL: GRANT/REVOKE lines taking `baseline` to `acl`, one per grantee, sorted.

    Diffing against the baseline (acldefault, or pg_init_privs) makes NULL and an explicit
    default ACL the same thing, and sorting makes the order of GRANT statements irrelevant.
    """
    return f"""CASE WHEN {acl} IS NOT NULL AND {acl} IS DISTINCT FROM {baseline} THEN (
    SELECT string_agg(l.line, E'\\n' ORDER BY l.line) FROM (
        SELECT format('%s %s%s ON %s %s %s%s%s', d.verb,
                      string_agg(d.privilege_type, ', ' ORDER BY d.privilege_type), {column},
                      {target}, CASE d.verb WHEN 'GRANT' THEN 'TO' ELSE 'FROM' END,
                      CASE d.grantee WHEN 0 THEN 'PUBLIC' ELSE d.grantee::regrole::text END,
                      CASE WHEN d.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END,
                      CASE WHEN d.grantor <> {owner}
                           THEN ' GRANTED BY ' || d.grantor::regrole::text ELSE '' END) AS line
        FROM (
            SELECT 'GRANT' AS verb, g.* FROM (
                SELECT * FROM aclexplode({acl}) EXCEPT SELECT * FROM aclexplode({baseline})) g
            UNION ALL
            SELECT 'REVOKE', r.* FROM (
                SELECT * FROM aclexplode({baseline}) EXCEPT SELECT * FROM aclexplode({acl})) r
        ) d
        GROUP BY d.verb, d.grantee, d.grantor, d.is_grantable
    ) l
) END"""


def _acl_by_oid(source: str) -> str:
    """SQL: (oid, lines) with _acl's lines for every row of CTE `source` that needs them.

    `source` has columns oid, acl, baseline, target, owner. The same text as _acl, in one
    set-based pass: as a subquery per row, _acl costs ~60 us a row (12,000 relations: 0.7 s).
    Only items that are not in both arrays are exploded: within one ACL each item is one
    (grantee, grantor) pair, so a shared item's privileges cancel out exactly, and the usual
    table (owner's default item plus a few grants) explodes just the grants (0.55 s -> 0.1 s).
    """
    exploded = """SELECT s.oid, s.target, s.owner, x.*
            FROM {0} s, unnest(s.{1}) i(item), aclexplode(ARRAY[i.item]) x
            WHERE NOT i.item = ANY (s.{2})"""
    return f"""SELECT l.oid, string_agg(l.line, E'\\n' ORDER BY l.line) AS lines FROM (
    SELECT d.oid, format('%s %s%s ON %s %s %s%s%s', d.verb,
                         string_agg(d.privilege_type, ', ' ORDER BY d.privilege_type), '',
                         d.target, CASE d.verb WHEN 'GRANT' THEN 'TO' ELSE 'FROM' END,
                         CASE d.grantee WHEN 0 THEN 'PUBLIC' ELSE d.grantee::regrole::text END,
                         CASE WHEN d.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END,
                         CASE WHEN d.grantor <> d.owner
                              THEN ' GRANTED BY ' || d.grantor::regrole::text ELSE '' END) AS line
    FROM (
        SELECT 'GRANT' AS verb, g.* FROM (
            {exploded.format(source, "acl", "baseline")}
            EXCEPT {exploded.format(source, "baseline", "acl")}) g
        UNION ALL
        SELECT 'REVOKE', r.* FROM (
            {exploded.format(source, "baseline", "acl")}
            EXCEPT {exploded.format(source, "acl", "baseline")}) r
    ) d
    GROUP BY d.oid, d.target, d.owner, d.verb, d.grantee, d.grantor, d.is_grantable
) l
GROUP BY l.oid"""


def _comment(catalog: str, oid: str, what: str, subid: str = "0") -> str:
    """SQL: `COMMENT ON <what> IS '...'` for the object's pg_description row, else NULL."""
    return f"""(SELECT format('COMMENT ON %s IS %L', {what}, ds.description)
    FROM pg_catalog.pg_description ds
    WHERE ds.classoid = 'pg_catalog.{catalog}'::regclass AND ds.objoid = {oid}
      AND ds.objsubid = {subid})"""


def _described(alias: str, catalog: str, oid: str, subid: str = "0") -> str:
    """SQL: LEFT JOIN the object's pg_description row as `alias`.

    For the big families: one join costs far less than an index probe per row.
    """
    return (
        f"LEFT JOIN pg_catalog.pg_description {alias} ON {alias}.objoid = {oid}"
        f" AND {alias}.classoid = 'pg_catalog.{catalog}'::regclass AND {alias}.objsubid = {subid}"
    )


def _comment_on(what: str, alias: str) -> str:
    """SQL: `COMMENT ON <what> IS '...'` from a row joined by _described, else NULL."""
    return (
        f"CASE WHEN {alias}.description IS NOT NULL"
        f" THEN format('COMMENT ON %s IS %L', {what}, {alias}.description) END"
    )


def _owned_acl(acl: str, kind: str, owner: str, target: str, catalog: str, oid: str) -> str:
    """_acl against pg_init_privs if the object has some (e.g. schema public), else acldefault."""
    baseline = (
        f"coalesce((SELECT ip.initprivs FROM pg_catalog.pg_init_privs ip WHERE ip.objoid = {oid}"
        f" AND ip.classoid = 'pg_catalog.{catalog}'::regclass AND ip.objsubid = 0),"
        f" acldefault('{kind}', {owner}))"
    )
    return _acl(acl, baseline, target, owner)


_SCHEMA_ACL = _owned_acl(
    "n.nspacl",
    "n",
    "n.nspowner",
    "'SCHEMA ' || quote_ident(n.nspname)",
    "pg_namespace",
    "n.oid",
)
SCHEMAS = f"""WITH {_NS}
SELECT 'schema' AS kind, quote_ident(n.nspname) AS name,
       'CREATE SCHEMA ' || quote_ident(n.nspname) AS body,
       n.nspowner::regrole::text AS owner,
       {_SCHEMA_ACL} AS acl,
       {_comment("pg_namespace", "n.oid", "'SCHEMA ' || quote_ident(n.nspname)")} AS comments,
       'pg_catalog.pg_namespace'::regclass::oid AS classid, n.oid AS objid
FROM ns JOIN pg_catalog.pg_namespace n ON n.oid = ns.oid
WHERE {_own("pg_namespace", "n.oid")}"""

# Extensions are reported with their version (pg_dump leaves the version out).
EXTENSIONS = f"""SELECT 'extension' AS kind, quote_ident(x.extname) AS name,
       format('CREATE EXTENSION %I WITH SCHEMA %I VERSION %L',
              x.extname, n.nspname, x.extversion) AS body,
       NULL AS owner, NULL AS acl,
       {_comment("pg_extension", "x.oid", "'EXTENSION ' || quote_ident(x.extname)")} AS comments,
       'pg_catalog.pg_extension'::regclass::oid AS classid, x.oid AS objid
FROM pg_catalog.pg_extension x JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace"""


def _seq_options(sep: str) -> str:
    """SQL: a sequence's parameters (alias s = pg_sequence), all of them, joined by `sep`."""
    return f"""concat_ws({sep},
    'AS ' || format_type(s.seqtypid, NULL), 'START WITH ' || s.seqstart,
    'INCREMENT BY ' || s.seqincrement, 'MINVALUE ' || s.seqmin, 'MAXVALUE ' || s.seqmax,
    'CACHE ' || s.seqcache, CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END)"""


_COLUMN = """concat_ws(' ', quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
    CASE WHEN a.attcollation <> t.typcollation
         THEN format('COLLATE %I.%I', cn.nspname, co.collname) END,
    -- A default cannot refer to columns, so it needs no relation for context; opening
    -- every table for that costs more than all the rest of the query at 10,000 tables.
    CASE WHEN a.attgenerated = 's'
         THEN format('GENERATED ALWAYS AS (%s) STORED', pg_get_expr(ad.adbin, ad.adrelid))
         WHEN a.attgenerated = 'v'  -- 18
         THEN format('GENERATED ALWAYS AS (%s) VIRTUAL', pg_get_expr(ad.adbin, ad.adrelid))
         WHEN ad.adbin IS NOT NULL THEN 'DEFAULT ' || pg_get_expr(ad.adbin, 0) END,
    CASE WHEN a.attnotnull THEN 'NOT NULL' END,
    CASE a.attidentity WHEN 'a' THEN 'GENERATED ALWAYS' WHEN 'd' THEN 'GENERATED BY DEFAULT' END
        || format(' AS IDENTITY (SEQUENCE NAME %s %s)', ident.seqname, ident.options),
    CASE WHEN a.attstorage <> t.typstorage THEN 'STORAGE ' || CASE a.attstorage
         WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL' WHEN 'm' THEN 'MAIN'
         ELSE 'EXTENDED' END END,
    CASE a.attcompression WHEN 'p' THEN 'COMPRESSION pglz' WHEN 'l' THEN 'COMPRESSION lz4' END,
    CASE WHEN a.attstattarget >= 0 THEN 'STATISTICS ' || a.attstattarget END,
    -- Debian's PostgreSQL 15.20 stores a per-database pg_attver=<n> among every column's
    -- options; pg_dump leaves it out, and so must we, or equal databases drift.
    'WITH (' || NULLIF(array_to_string(ARRAY(SELECT o FROM unnest(a.attoptions) o
                                             WHERE o NOT LIKE 'pg\\_attver=%'), ', '), '')
        || ')',
    'OPTIONS (' || array_to_string(a.attfdwoptions, ', ') || ')',
    CASE WHEN NOT a.attislocal THEN 'INHERITED' END)"""

# Tables, partitioned tables, foreign tables, views and materialized views: the relations
# with columns. Columns and constraints are aggregated per relation in one pass each.
_CONSTRAINT_COMMENT = _comment_on("format('CONSTRAINT %I ON %s', k.conname, rel.name)", "kd")
_COLUMN_COMMENT = _comment_on("'COLUMN ' || rel.name || '.' || quote_ident(a.attname)", "cd")
_COLUMN_ACL = _acl(
    "a.attacl",
    "acldefault('c', rel.relowner)",
    "'TABLE ' || rel.name",
    "rel.relowner",
    "' (' || quote_ident(a.attname) || ')'",
)
RELATIONS = f"""WITH {_NS},
rel AS (
    SELECT c.*, format('%I.%I', ns.nspname, c.relname) AS name,
           CASE c.relkind WHEN 'f' THEN 'foreign table' WHEN 'v' THEN 'view'
                WHEN 'm' THEN 'materialized view' ELSE 'table' END AS kind
    FROM pg_catalog.pg_class c JOIN ns ON ns.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {_own("pg_class", "c.oid")}
),
ident AS (
    SELECT d.refobjid, d.refobjsubid, {_seq_options("' '")} AS options,
           format('%I.%I', sn.nspname, sc.relname) AS seqname
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S'
    JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace
    JOIN pg_catalog.pg_sequence s ON s.seqrelid = sc.oid
    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'i'
      AND d.refclassid = 'pg_catalog.pg_class'::regclass
),
cols AS (
    SELECT a.attrelid,
           string_agg('    ' || {_COLUMN}, E'\\n' ORDER BY a.attnum) AS lines,
           string_agg({_COLUMN_ACL},
                      E'\\n' ORDER BY a.attnum) AS acl,
           string_agg({_COLUMN_COMMENT}, E'\\n' ORDER BY a.attnum) AS comments
    FROM rel
    JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
    LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
    LEFT JOIN ident ON ident.refobjid = a.attrelid AND ident.refobjsubid = a.attnum
    {_described("cd", "pg_class", "a.attrelid", "a.attnum")}
    WHERE a.attnum > 0 AND NOT a.attisdropped
    GROUP BY a.attrelid
),
cons AS (
    -- what pg_dump emits: local CHECKs, FKs not cloned to partitions, all index constraints
    SELECT k.conrelid,
           string_agg(format('    CONSTRAINT %I %s', k.conname, pg_get_constraintdef(k.oid)),
                      E'\\n' ORDER BY k.conname) AS lines,
           string_agg({_CONSTRAINT_COMMENT},
                      E'\\n' ORDER BY k.conname) AS comments
    FROM rel JOIN pg_catalog.pg_constraint k ON k.conrelid = rel.oid
    {_described("kd", "pg_constraint", "k.oid")}
    WHERE (k.contype = 'c' AND k.conislocal) OR (k.contype = 'f' AND k.conparentid = 0)
       OR k.contype IN ('p', 'u', 'x')
       -- 18: NOT NULL constraints have names and states; like pg_dump, only what differs
       -- from a plain NOT NULL (which the column line says), so an upgrade is no drift
       OR (k.contype = 'n' AND k.conislocal AND (NOT k.convalidated OR k.connoinherit
           OR k.conname <> format('%s_%s_not_null', rel.relname,
                                  (SELECT a.attname FROM pg_catalog.pg_attribute a
                                   WHERE a.attrelid = k.conrelid AND a.attnum = k.conkey[1]))))
    GROUP BY k.conrelid
),
parents AS (
    SELECT i.inhrelid, string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno) AS list
    FROM rel JOIN pg_catalog.pg_inherits i ON i.inhrelid = rel.oid
    GROUP BY i.inhrelid
),
acl_source AS (
    SELECT rel.oid, rel.relacl AS acl, acldefault('r', rel.relowner) AS baseline,
           'TABLE ' || rel.name AS target, rel.relowner AS owner
    FROM rel
    WHERE rel.relacl IS NOT NULL AND rel.relacl IS DISTINCT FROM acldefault('r', rel.relowner)
),
relacl AS (
    {_acl_by_oid("acl_source")}
),
special_index AS (
    SELECT x.indrelid,
           string_agg(CASE WHEN x.indisclustered THEN 'CLUSTER ON ' || quote_ident(ic.relname)
                      END, E'\\n') AS cluster_on,
           string_agg(CASE WHEN x.indisreplident THEN quote_ident(ic.relname) END, '') AS replident
    FROM rel JOIN pg_catalog.pg_index x ON x.indrelid = rel.oid
    JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
    WHERE x.indisclustered OR x.indisreplident
    GROUP BY x.indrelid
)
SELECT rel.kind, rel.name,
       concat_ws(E'\\n',
           format('CREATE %s%s %s (',
                  CASE WHEN rel.relpersistence = 'u' THEN 'UNLOGGED ' ELSE '' END,
                  upper(rel.kind), rel.name),
           cols.lines,
           cons.lines,
           ')',
           -- a typed table (CREATE TABLE ... OF type) takes its columns from the type
           'OF ' || NULLIF(rel.reloftype, 0)::regtype::text,
           CASE WHEN rel.relispartition
                THEN format('PARTITION OF %s %s', parents.list,
                            pg_get_expr(rel.relpartbound, rel.oid))
                ELSE 'INHERITS (' || parents.list || ')' END,
           CASE WHEN rel.relkind = 'p' THEN 'PARTITION BY ' || pg_get_partkeydef(rel.oid) END,
           CASE WHEN am.amname <> 'heap' THEN 'USING ' || quote_ident(am.amname) END,
           'WITH (' || array_to_string(rel.reloptions, ', ') || ')',
           'WITH (toast.' || array_to_string(toast.reloptions, ', toast.') || ')',
           'TABLESPACE ' || quote_ident(ts.spcname),
           CASE WHEN rel.relkind = 'f' THEN concat_ws(' ', 'SERVER ' || quote_ident(srv.srvname),
                'OPTIONS (' || array_to_string(ft.ftoptions, ', ') || ')') END,
           CASE WHEN rel.relrowsecurity THEN 'ENABLE ROW LEVEL SECURITY' END,
           CASE WHEN rel.relforcerowsecurity THEN 'FORCE ROW LEVEL SECURITY' END,
           CASE WHEN rel.relkind NOT IN ('r', 'p') THEN NULL
                WHEN rel.relreplident = 'n' THEN 'REPLICA IDENTITY NOTHING'
                WHEN rel.relreplident = 'f' THEN 'REPLICA IDENTITY FULL'
                WHEN rel.relreplident = 'i'
                THEN 'REPLICA IDENTITY USING INDEX ' || special_index.replident END,
           special_index.cluster_on,
           CASE WHEN rel.relkind IN ('v', 'm') THEN E'AS\\n' || pg_get_viewdef(rel.oid) END
       ) AS body,
       rel.relowner::regrole::text AS owner,
       concat_ws(E'\\n', relacl.lines, cols.acl) AS acl,
       concat_ws(E'\\n', {_comment_on("upper(rel.kind) || ' ' || rel.name", "rd")},
                 cols.comments, cons.comments) AS comments,
       'pg_catalog.pg_class'::regclass::oid AS classid, rel.oid AS objid
FROM rel
LEFT JOIN cols ON cols.attrelid = rel.oid
LEFT JOIN cons ON cons.conrelid = rel.oid
LEFT JOIN parents ON parents.inhrelid = rel.oid
LEFT JOIN special_index ON special_index.indrelid = rel.oid
LEFT JOIN relacl ON relacl.oid = rel.oid
LEFT JOIN pg_catalog.pg_am am ON am.oid = rel.relam
LEFT JOIN pg_catalog.pg_class toast ON toast.oid = rel.reltoastrelid
LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = rel.reltablespace
LEFT JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = rel.oid
LEFT JOIN pg_catalog.pg_foreign_server srv ON srv.oid = ft.ftserver
{_described("rd", "pg_class", "rel.oid")}"""

_NEWLINE_INDENT = "E'\\n    '"

_SEQUENCE_ACL = _acl(
    "c.relacl",
    "acldefault('s', c.relowner)",
    "format('SEQUENCE %I.%I', ns.nspname, c.relname)",
    "c.relowner",
)
# Sequences of their own (serial ones included); identity sequences belong to their column.
SEQUENCES = f"""WITH {_NS}
SELECT 'sequence' AS kind, format('%I.%I', ns.nspname, c.relname) AS name,
       concat_ws(E'\\n',
           format('CREATE %sSEQUENCE %I.%I',
                  CASE WHEN c.relpersistence = 'u' THEN 'UNLOGGED ' ELSE '' END,
                  ns.nspname, c.relname),
           '    ' || {_seq_options(_NEWLINE_INDENT)},
           (SELECT format('    OWNED BY %s.%I', d.refobjid::regclass, a.attname)
            FROM pg_catalog.pg_depend d
            JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'a')
       ) AS body,
       c.relowner::regrole::text AS owner,
       {_SEQUENCE_ACL} AS acl,
       {_comment("pg_class", "c.oid", "format('SEQUENCE %I.%I', ns.nspname, c.relname)")}
           AS comments,
       'pg_catalog.pg_class'::regclass::oid AS classid, c.oid AS objid
FROM pg_catalog.pg_class c
JOIN ns ON ns.oid = c.relnamespace
JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
WHERE c.relkind = 'S' AND {_own("pg_class", "c.oid")}"""

# Indexes that do not back a constraint (those are in their table's definition).
_INDEX_CTES = f"""idx AS (
    SELECT x.indexrelid, x.indrelid, x.indnkeyatts, x.indisunique, x.indexprs, x.indpred,
           x.indkey::int2[] AS keys, x.indclass::oid[] AS classes,
           x.indcollation::oid[] AS collations, x.indoption::int2[] AS options,
           ns.nspname, ic.relname, ic.relkind, ic.reloptions, ic.reltablespace, am.amname,
           pg_catalog.pg_indexam_has_property(ic.relam, 'can_order') AS can_order,
           format('%I.%I', ns.nspname, tc.relname) AS table_name
    FROM pg_catalog.pg_index x
    JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam
    JOIN pg_catalog.pg_class tc ON tc.oid = x.indrelid
    JOIN ns ON ns.oid = tc.relnamespace
    WHERE {_own("pg_class", "tc.oid")}
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid
                      AND k.conrelid = x.indrelid AND k.contype IN ('p', 'u', 'x'))
),
-- What pg_get_indexdef prints for the columns, and whether that is all it would print:
-- plain columns, each with its column's collation and its type's default operator class
-- (exactly, or the one preferred binary-compatible class GetDefaultOpClass picks, as text_ops
-- for varchar), no opclass options. pg_get_indexdef looks the default class up per column
-- by scanning pg_opclass and opens the table: ~80 us an index, 1 s at 10,000 tables.
idx_columns AS (
    SELECT idx.indexrelid,
           string_agg(quote_ident(a.attname) || CASE
                          WHEN NOT idx.can_order THEN ''
                          WHEN k.opt & 1 = 1 THEN ' DESC' || CASE WHEN k.opt & 2 = 0
                                                              THEN ' NULLS LAST' ELSE '' END
                          WHEN k.opt & 2 = 2 THEN ' NULLS FIRST' ELSE '' END,
                      ', ' ORDER BY k.n) FILTER (WHERE k.n <= idx.indnkeyatts) AS key_list,
           string_agg(quote_ident(a.attname), ', ' ORDER BY k.n)
               FILTER (WHERE k.n > idx.indnkeyatts) AS include_list,
           bool_and(k.attnum <> 0 AND (k.n > idx.indnkeyatts OR (
               (k.coll = 0 OR k.coll = a.attcollation) AND ia.attoptions IS NULL
               AND oc.opcdefault AND (oc.opcintype = a.atttypid OR (
                   SELECT count(*) = 1 AND bool_and(o.oid = oc.oid)
                   FROM pg_catalog.pg_opclass o
                   JOIN pg_catalog.pg_type it ON it.oid = o.opcintype
                   JOIN pg_catalog.pg_type ct ON ct.oid = a.atttypid
                   LEFT JOIN pg_catalog.pg_cast c
                          ON c.castsource = a.atttypid AND c.casttarget = o.opcintype
                   WHERE o.opcmethod = oc.opcmethod AND o.opcdefault
                     AND (o.opcintype = a.atttypid
                          OR (c.castmethod = 'b' AND c.castcontext = 'i'
                              AND it.typispreferred AND it.typcategory = ct.typcategory))
               ))))) AS plain
    FROM idx
    CROSS JOIN unnest(idx.keys, idx.classes, idx.collations, idx.options)
        WITH ORDINALITY k(attnum, opclass, coll, opt, n)
    -- OFFSET 0 keeps these lookups per column: joined, pg_attribute is hashed whole (400k rows)
    LEFT JOIN LATERAL (SELECT a.attname, a.atttypid, a.attcollation FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = idx.indrelid AND a.attnum = k.attnum OFFSET 0) a ON true
    LEFT JOIN LATERAL (SELECT ia.attoptions FROM pg_catalog.pg_attribute ia
                       WHERE ia.attrelid = idx.indexrelid AND ia.attnum = k.n OFFSET 0) ia ON true
    LEFT JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opclass
    GROUP BY idx.indexrelid
)"""
# pg_get_indexdef's text, built from the catalog where the index is plain (unique ones may say
# NULLS NOT DISTINCT, a column that exists from PostgreSQL 15 on: left to pg_get_indexdef).
_INDEX_BUILT = """cols.plain AND NOT idx.indisunique AND idx.indexprs IS NULL
     AND idx.reloptions IS NULL"""
_INDEX_DEF = f"""CASE WHEN {_INDEX_BUILT}
THEN format('CREATE INDEX %I ON %s%s USING %I (%s)%s%s', idx.relname,
            CASE WHEN idx.relkind = 'I' THEN 'ONLY ' ELSE '' END, idx.table_name, idx.amname,
            cols.key_list, ' INCLUDE (' || cols.include_list || ')',
            ' WHERE ' || pg_get_expr(idx.indpred, idx.indrelid))
ELSE pg_get_indexdef(idx.indexrelid) END"""
INDEXES = f"""WITH {_NS}, {_INDEX_CTES}
SELECT 'index' AS kind, format('%I.%I', idx.nspname, idx.relname) AS name,
       concat_ws(E'\\n', {_INDEX_DEF},
           '    TABLESPACE ' || quote_ident(ts.spcname),
           (SELECT '    PARTITION OF ' || i.inhparent::regclass::text
            FROM pg_catalog.pg_inherits i WHERE i.inhrelid = idx.indexrelid),
           -- ALTER INDEX ... ALTER COLUMN n SET STATISTICS (expression columns); the
           -- default is -1 up to PostgreSQL 16 and NULL from 17, neither of which is >= 0
           (SELECT string_agg(format('    ALTER COLUMN %s SET STATISTICS %s', ia.attnum,
                                     ia.attstattarget), E'\\n' ORDER BY ia.attnum)
            FROM pg_catalog.pg_attribute ia
            WHERE ia.attrelid = idx.indexrelid AND ia.attstattarget >= 0)) AS body,
       NULL AS owner, NULL AS acl,
       {_comment_on("format('INDEX %I.%I', idx.nspname, idx.relname)", "d")}
           AS comments,
       'pg_catalog.pg_class'::regclass::oid AS classid, idx.indexrelid AS objid
FROM idx JOIN idx_columns cols ON cols.indexrelid = idx.indexrelid
LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = idx.reltablespace
{_described("d", "pg_class", "idx.indexrelid")}"""
# For the tests: every index's definition as INDEXES builds it, beside pg_get_indexdef's.
INDEX_DEF_CHECK = f"""WITH {_NS}, {_INDEX_CTES}
SELECT format('%I.%I', idx.nspname, idx.relname) AS name, {_INDEX_BUILT} AS from_catalog,
       {_INDEX_DEF} AS built, pg_get_indexdef(idx.indexrelid) AS deparsed
FROM idx JOIN idx_columns cols ON cols.indexrelid = idx.indexrelid"""

# Functions and procedures keyed by identity argument types, so overloads stay apart.
_PROC_NAME = """format('%I.%I(%s)', ns.nspname, p.proname, array_to_string(ARRAY(
    SELECT format_type(u.t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, n)
    ORDER BY u.n), ', '))"""

_FUNCTION_ACL = _acl(
    "fn.proacl",
    "acldefault('f', fn.proowner)",
    "upper(fn.kind) || ' ' || fn.name",
    "fn.proowner",
)
FUNCTIONS = f"""WITH {_NS},
fn AS (
    SELECT p.*, {_PROC_NAME} AS name,
           CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END AS kind
    FROM pg_catalog.pg_proc p JOIN ns ON ns.oid = p.pronamespace
    WHERE p.prokind IN ('f', 'p', 'w') AND {_own("pg_proc", "p.oid")}
)
SELECT fn.kind, fn.name, rtrim(pg_get_functiondef(fn.oid), E'\\n') AS body,
       fn.proowner::regrole::text AS owner,
       {_FUNCTION_ACL} AS acl,
       {_comment_on("upper(fn.kind) || ' ' || fn.name", "d")} AS comments,
       'pg_catalog.pg_proc'::regclass::oid AS classid, fn.oid AS objid
FROM fn {_described("d", "pg_proc", "fn.oid")}"""

_AGGREGATE_ACL = _acl(
    "ag.proacl", "acldefault('f', ag.proowner)", "'FUNCTION ' || ag.name", "ag.proowner"
)
AGGREGATES = f"""WITH {_NS},
ag AS (
    SELECT p.oid, p.proowner, p.proacl, p.proparallel, g.*, {_PROC_NAME} AS name
    FROM pg_catalog.pg_proc p JOIN ns ON ns.oid = p.pronamespace
    JOIN pg_catalog.pg_aggregate g ON g.aggfnoid = p.oid
    WHERE p.prokind = 'a' AND {_own("pg_proc", "p.oid")}
)
SELECT 'aggregate' AS kind, ag.name,
       concat_ws(E'\\n    ',
           format('CREATE AGGREGATE %s (', ag.name),
           'ARGUMENTS = ' || pg_get_function_arguments(ag.oid),
           'KIND = ' || CASE ag.aggkind WHEN 'o' THEN 'ORDERED SET' WHEN 'h' THEN 'HYPOTHETICAL'
                             ELSE 'NORMAL' END,
           'SFUNC = ' || ag.aggtransfn::regproc, 'STYPE = ' || format_type(ag.aggtranstype, NULL),
           'SSPACE = ' || NULLIF(ag.aggtransspace, 0),
           'FINALFUNC = ' || NULLIF(ag.aggfinalfn, 0)::regproc,
           CASE WHEN ag.aggfinalextra THEN 'FINALFUNC_EXTRA' END,
           'FINALFUNC_MODIFY = ' || ag.aggfinalmodify::text,
           'INITCOND = ' || quote_literal(ag.agginitval),
           'COMBINEFUNC = ' || NULLIF(ag.aggcombinefn, 0)::regproc,
           'SERIALFUNC = ' || NULLIF(ag.aggserialfn, 0)::regproc,
           'DESERIALFUNC = ' || NULLIF(ag.aggdeserialfn, 0)::regproc,
           'MSFUNC = ' || NULLIF(ag.aggmtransfn, 0)::regproc,
           'MINVFUNC = ' || NULLIF(ag.aggminvtransfn, 0)::regproc,
           'MSTYPE = ' || format_type(NULLIF(ag.aggmtranstype, 0), NULL),
           'MSSPACE = ' || NULLIF(ag.aggmtransspace, 0),
           'MFINALFUNC = ' || NULLIF(ag.aggmfinalfn, 0)::regproc,
           CASE WHEN ag.aggmfinalextra THEN 'MFINALFUNC_EXTRA' END,
           'MFINALFUNC_MODIFY = ' || ag.aggmfinalmodify::text,
           'MINITCOND = ' || quote_literal(ag.aggminitval),
           'SORTOP = ' || NULLIF(ag.aggsortop, 0)::regoperator,
           'PARALLEL = ' || CASE ag.proparallel WHEN 's' THEN 'SAFE' WHEN 'r' THEN 'RESTRICTED'
                                 ELSE 'UNSAFE' END
       ) || E'\\n)' AS body,
       ag.proowner::regrole::text AS owner,
       {_AGGREGATE_ACL} AS acl,
       {_comment("pg_proc", "ag.oid", "'AGGREGATE ' || ag.name")} AS comments,
       'pg_catalog.pg_proc'::regclass::oid AS classid, ag.oid AS objid
FROM ag"""

# Triggers, rules and policies are named `<name> ON <schema>.<table>`.
_ON_TABLE = "format('%I ON %I.%I', {0}, ns.nspname, c.relname)"
_ENABLED = """CASE {0} WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA'
     WHEN 'A' THEN 'ENABLE ALWAYS' END"""

# pg_dump skips triggers cloned onto partitions unless their enabled state was changed.
TRIGGERS = f"""WITH {_NS}
SELECT 'trigger' AS kind, {_ON_TABLE.format("t.tgname")} AS name,
       concat_ws(E'\\n', pg_get_triggerdef(t.oid, false), {_ENABLED.format("t.tgenabled")}) AS body,
       NULL AS owner, NULL AS acl,
       {_comment("pg_trigger", "t.oid", "'TRIGGER ' || " + _ON_TABLE.format("t.tgname"))}
           AS comments,
       'pg_catalog.pg_trigger'::regclass::oid AS classid, t.oid AS objid
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN ns ON ns.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_trigger pt ON pt.oid = t.tgparentid
WHERE NOT t.tgisinternal AND (t.tgparentid = 0 OR t.tgenabled <> pt.tgenabled)
  AND {_own("pg_class", "c.oid")}"""

RULES = f"""WITH {_NS}
SELECT 'rule' AS kind, {_ON_TABLE.format("r.rulename")} AS name,
       concat_ws(E'\\n', pg_get_ruledef(r.oid), {_ENABLED.format("r.ev_enabled")}) AS body,
       NULL AS owner, NULL AS acl,
       {_comment("pg_rewrite", "r.oid", "'RULE ' || " + _ON_TABLE.format("r.rulename"))}
           AS comments,
       'pg_catalog.pg_rewrite'::regclass::oid AS classid, r.oid AS objid
FROM pg_catalog.pg_rewrite r
JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
JOIN ns ON ns.oid = c.relnamespace
WHERE r.rulename <> '_RETURN' AND {_own("pg_class", "c.oid")}"""

POLICIES = f"""WITH {_NS}
SELECT 'policy' AS kind, {_ON_TABLE.format("p.polname")} AS name,
       concat_ws(E'\\n    ', format('CREATE POLICY %I ON %I.%I', p.polname, ns.nspname, c.relname),
           'AS ' || CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
           'FOR ' || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                          WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
           'TO ' || (SELECT string_agg(g.name, ', ' ORDER BY g.name) FROM (
               SELECT CASE r WHEN 0 THEN 'PUBLIC' ELSE r::regrole::text END AS name
               FROM unnest(p.polroles) r) g),
           'USING (' || pg_get_expr(p.polqual, p.polrelid) || ')',
           'WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')') AS body,
       NULL AS owner, NULL AS acl,
       {_comment("pg_policy", "p.oid", "'POLICY ' || " + _ON_TABLE.format("p.polname"))}
           AS comments,
       'pg_catalog.pg_policy'::regclass::oid AS classid, p.oid AS objid
FROM pg_catalog.pg_policy p
JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
JOIN ns ON ns.oid = c.relnamespace
WHERE {_own("pg_class", "c.oid")}"""

_COLLATE = "format('COLLATE %I.%I', cn.nspname, co.collname)"

_TYPE_ACL = _acl(
    "ty.typacl",
    "acldefault('T', ty.typowner)",
    "upper(ty.kind) || ' ' || ty.name",
    "ty.typowner",
)
# Enums, composites, ranges, base types and domains; array, multirange and table row types
# are implicit (internal dependency) and left out, like pg_dump does.
TYPES = f"""WITH {_NS},
ty AS (
    SELECT t.*, format('%I.%I', ns.nspname, t.typname) AS name,
           CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END AS kind
    FROM pg_catalog.pg_type t JOIN ns ON ns.oid = t.typnamespace
    LEFT JOIN pg_catalog.pg_class r ON r.oid = t.typrelid
    WHERE t.typtype IN ('b', 'c', 'd', 'e', 'r') AND coalesce(r.relkind, 'c') = 'c'
      AND {_own("pg_type", "t.oid")}
)
SELECT ty.kind, ty.name,
    CASE WHEN NOT ty.typisdefined THEN 'CREATE TYPE ' || ty.name
    WHEN ty.typtype = 'e' THEN concat_ws(E'\\n', format('CREATE TYPE %s AS ENUM (', ty.name),
        (SELECT string_agg('    ' || quote_literal(e.enumlabel), E'\\n' ORDER BY e.enumsortorder)
         FROM pg_catalog.pg_enum e WHERE e.enumtypid = ty.oid), ')')
    WHEN ty.typtype = 'c' THEN concat_ws(E'\\n', format('CREATE TYPE %s AS (', ty.name),
        (SELECT string_agg('    ' || concat_ws(' ', quote_ident(a.attname),
                    format_type(a.atttypid, a.atttypmod),
                    CASE WHEN a.attcollation <> at.typcollation THEN {_COLLATE} END),
                E'\\n' ORDER BY a.attnum)
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
         LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
         LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
         WHERE a.attrelid = ty.typrelid AND a.attnum > 0 AND NOT a.attisdropped), ')')
    WHEN ty.typtype = 'r' THEN (
        SELECT concat_ws(E'\\n    ', format('CREATE TYPE %s AS RANGE (', ty.name),
            'SUBTYPE = ' || format_type(rg.rngsubtype, NULL),
            'SUBTYPE_OPCLASS = ' || CASE WHEN NOT oc.opcdefault
                                         THEN format('%I.%I', ocn.nspname, oc.opcname) END,
            'COLLATION = ' || CASE WHEN rg.rngcollation <> st.typcollation
                                   THEN format('%I.%I', cn.nspname, co.collname) END,
            'CANONICAL = ' || NULLIF(rg.rngcanonical, 0)::regproc,
            'SUBTYPE_DIFF = ' || NULLIF(rg.rngsubdiff, 0)::regproc,
            'MULTIRANGE_TYPE_NAME = ' || rg.rngmultitypid::regtype) || E'\\n)'
        FROM pg_catalog.pg_range rg
        JOIN pg_catalog.pg_type st ON st.oid = rg.rngsubtype
        JOIN pg_catalog.pg_opclass oc ON oc.oid = rg.rngsubopc
        JOIN pg_catalog.pg_namespace ocn ON ocn.oid = oc.opcnamespace
        LEFT JOIN pg_catalog.pg_collation co ON co.oid = rg.rngcollation
        LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
        WHERE rg.rngtypid = ty.oid)
    WHEN ty.typtype = 'd' THEN concat_ws(E'\\n',
        format('CREATE DOMAIN %s AS %s', ty.name, format_type(ty.typbasetype, ty.typtypmod)),
        (SELECT '    ' || {_COLLATE} FROM pg_catalog.pg_type bt
         JOIN pg_catalog.pg_collation co ON co.oid = ty.typcollation
         JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
         WHERE bt.oid = ty.typbasetype AND bt.typcollation <> ty.typcollation),
        '    DEFAULT ' || coalesce(pg_get_expr(ty.typdefaultbin, 0), ty.typdefault),
        CASE WHEN ty.typnotnull THEN '    NOT NULL' END,
        (SELECT string_agg(format('    CONSTRAINT %I %s', k.conname, pg_get_constraintdef(k.oid)),
                           E'\\n' ORDER BY k.conname)
         FROM pg_catalog.pg_constraint k WHERE k.contypid = ty.oid))
    ELSE concat_ws(E'\\n    ', format('CREATE TYPE %s (', ty.name),
        'INPUT = ' || ty.typinput::regproc, 'OUTPUT = ' || ty.typoutput::regproc,
        'RECEIVE = ' || NULLIF(ty.typreceive, 0)::regproc,
        'SEND = ' || NULLIF(ty.typsend, 0)::regproc,
        'TYPMOD_IN = ' || NULLIF(ty.typmodin, 0)::regproc,
        'TYPMOD_OUT = ' || NULLIF(ty.typmodout, 0)::regproc,
        'ANALYZE = ' || NULLIF(ty.typanalyze, 0)::regproc,
        'SUBSCRIPT = ' || NULLIF(ty.typsubscript, 0)::regproc,
        'INTERNALLENGTH = ' || CASE WHEN ty.typlen < 0 THEN 'VARIABLE' ELSE ty.typlen::text END,
        CASE WHEN ty.typbyval THEN 'PASSEDBYVALUE' END,
        'ALIGNMENT = ' || ty.typalign::text, 'STORAGE = ' || ty.typstorage::text,
        'CATEGORY = ' || quote_literal(ty.typcategory::text),
        CASE WHEN ty.typispreferred THEN 'PREFERRED = true' END,
        'DEFAULT = ' || quote_literal(ty.typdefault),
        'ELEMENT = ' || format_type(NULLIF(ty.typelem, 0), NULL),
        'DELIMITER = ' || quote_literal(ty.typdelim::text),
        CASE WHEN ty.typcollation <> 0 THEN 'COLLATABLE = true' END) || E'\\n)'
    END AS body,
    ty.typowner::regrole::text AS owner,
    {_TYPE_ACL} AS acl,
    concat_ws(E'\\n', {_comment("pg_type", "ty.oid", "upper(ty.kind) || ' ' || ty.name")},
        (SELECT string_agg(format('COMMENT ON COLUMN %s.%I IS %L', ty.name, a.attname,
                                  ds.description), E'\\n' ORDER BY a.attnum)
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_description ds
           ON ds.objoid = a.attrelid AND ds.objsubid = a.attnum
          AND ds.classoid = 'pg_catalog.pg_class'::regclass
         WHERE a.attrelid = ty.typrelid),
        -- Only domains have these. Driven from the domain's constraints, one index probe
        -- each: joined the other way round, the planner scanned pg_description per type.
        CASE WHEN ty.typtype = 'd' THEN (
            SELECT string_agg(format('COMMENT ON CONSTRAINT %I ON DOMAIN %s IS %L', k.conname,
                                     ty.name, ds.description), E'\\n' ORDER BY k.conname)
            FROM pg_catalog.pg_constraint k
            CROSS JOIN LATERAL (SELECT obj_description(k.oid, 'pg_constraint') AS description) ds
            WHERE k.contypid = ty.oid AND ds.description IS NOT NULL) END) AS comments,
       'pg_catalog.pg_type'::regclass::oid AS classid, ty.oid AS objid
FROM ty"""

COLLATIONS = f"""WITH {_NS}
SELECT 'collation' AS kind, format('%I.%I', ns.nspname, co.collname) AS name,
       concat_ws(E'\\n    ', format('CREATE COLLATION %I.%I (', ns.nspname, co.collname),
           'PROVIDER = ' || CASE co.collprovider WHEN 'i' THEN 'icu' WHEN 'c' THEN 'libc'
                                 ELSE 'default' END,
           'LC_COLLATE = ' || quote_literal(co.collcollate),
           'LC_CTYPE = ' || quote_literal(co.collctype),
           -- the locale column was renamed across versions; to_jsonb reads whichever exists
           'LOCALE = ' || quote_literal(coalesce(to_jsonb(co) ->> 'colliculocale',
                                                 to_jsonb(co) ->> 'colllocale')),
           'RULES = ' || quote_literal(to_jsonb(co) ->> 'collicurules'),
           'DETERMINISTIC = ' || co.collisdeterministic,
           'ENCODING = ' || CASE WHEN co.collencoding >= 0
                                 THEN pg_encoding_to_char(co.collencoding) END) || E'\\n)'
           AS body,
       co.collowner::regrole::text AS owner, NULL AS acl,
       {_comment("pg_collation", "co.oid", "format('COLLATION %I.%I', ns.nspname, co.collname)")}
           AS comments,
       'pg_catalog.pg_collation'::regclass::oid AS classid, co.oid AS objid
FROM pg_catalog.pg_collation co JOIN ns ON ns.oid = co.collnamespace
WHERE {_own("pg_collation", "co.oid")}"""

_STATISTICS_COMMENT = _comment(
    "pg_statistic_ext", "s.oid", "format('STATISTICS %I.%I', ns.nspname, s.stxname)"
)
STATISTICS = f"""WITH {_NS}
SELECT 'statistics' AS kind, format('%I.%I', ns.nspname, s.stxname) AS name,
       concat_ws(E'\\n', pg_get_statisticsobjdef(s.oid),
                 '    STATISTICS ' || CASE WHEN s.stxstattarget >= 0 THEN s.stxstattarget END)
           AS body,
       s.stxowner::regrole::text AS owner, NULL AS acl,
       {_STATISTICS_COMMENT} AS comments,
       'pg_catalog.pg_statistic_ext'::regclass::oid AS classid, s.oid AS objid
FROM pg_catalog.pg_statistic_ext s JOIN ns ON ns.oid = s.stxnamespace
WHERE {_own("pg_statistic_ext", "s.oid")} AND {_own("pg_class", "s.stxrelid")}"""

# Schema filter or not, default privileges follow their schema; global ones (no schema)
# only appear without a `schemas` filter, as with pg_dump -n.
DEFAULT_PRIVILEGES = f"""WITH {_NS},
da AS (
    SELECT d.*, CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
               WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' ELSE 'SCHEMAS' END AS objects,
           n.nspname,
           CASE WHEN d.defaclnamespace = 0
                THEN acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype
                                END::"char", d.defaclrole)
                ELSE acldefault('c', d.defaclrole) END AS baseline
    FROM pg_catalog.pg_default_acl d
    LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
    WHERE (d.defaclnamespace = 0 AND cardinality($1::text[]) = 0)
       OR d.defaclnamespace IN (SELECT oid FROM ns)
)
SELECT 'default privileges' AS kind, da.name,
       concat_ws(E'\\n', 'ALTER DEFAULT PRIVILEGES ' || da.name,
                 {_acl("da.defaclacl", "da.baseline", "da.objects", "da.defaclrole")}) AS body,
       NULL AS owner, NULL AS acl, NULL AS comments,
       'pg_catalog.pg_default_acl'::regclass::oid AS classid, da.oid AS objid
FROM (SELECT da.*, concat_ws(' ', 'FOR ROLE ' || da.defaclrole::regrole::text,
                             'IN SCHEMA ' || quote_ident(da.nspname), 'ON ' || da.objects) AS name
      FROM da) da"""

# -- database-wide objects: only without a `schemas` filter (pg_dump -n skips them too) -----

EVENT_TRIGGERS = f"""SELECT 'event trigger' AS kind, quote_ident(et.evtname) AS name,
       concat_ws(E'\\n    ', format('CREATE EVENT TRIGGER %I ON %I', et.evtname, et.evtevent),
           'WHEN TAG IN (' || (SELECT string_agg(quote_literal(tag), ', ')
                               FROM unnest(et.evttags) tag) || ')',
           'EXECUTE FUNCTION ' || et.evtfoid::regproc || '()',
           {_ENABLED.format("et.evtenabled")}) AS body,
       et.evtowner::regrole::text AS owner, NULL AS acl,
       {_comment("pg_event_trigger", "et.oid", "'EVENT TRIGGER ' || quote_ident(et.evtname)")}
           AS comments,
       'pg_catalog.pg_event_trigger'::regclass::oid AS classid, et.oid AS objid
FROM pg_catalog.pg_event_trigger et
WHERE {_own("pg_event_trigger", "et.oid")}"""

_FDW_COMMENT = _comment(
    "pg_foreign_data_wrapper", "w.oid", "'FOREIGN DATA WRAPPER ' || quote_ident(w.fdwname)"
)
_FDW_ACL = _acl(
    "w.fdwacl",
    "acldefault('F', w.fdwowner)",
    "'FOREIGN DATA WRAPPER ' || quote_ident(w.fdwname)",
    "w.fdwowner",
)
FOREIGN_DATA_WRAPPERS = f"""SELECT 'foreign data wrapper' AS kind, quote_ident(w.fdwname) AS name,
       concat_ws(E'\\n    ', 'CREATE FOREIGN DATA WRAPPER ' || quote_ident(w.fdwname),
           'HANDLER ' || NULLIF(w.fdwhandler, 0)::regproc,
           'VALIDATOR ' || NULLIF(w.fdwvalidator, 0)::regproc,
           'OPTIONS (' || array_to_string(w.fdwoptions, ', ') || ')') AS body,
       w.fdwowner::regrole::text AS owner,
       {_FDW_ACL} AS acl,
       {_FDW_COMMENT} AS comments,
       'pg_catalog.pg_foreign_data_wrapper'::regclass::oid AS classid, w.oid AS objid
FROM pg_catalog.pg_foreign_data_wrapper w
WHERE {_own("pg_foreign_data_wrapper", "w.oid")}"""

_SERVER_ACL = _acl(
    "s.srvacl",
    "acldefault('S', s.srvowner)",
    "'FOREIGN SERVER ' || quote_ident(s.srvname)",
    "s.srvowner",
)
SERVERS = f"""SELECT 'server' AS kind, quote_ident(s.srvname) AS name,
       concat_ws(E'\\n    ', 'CREATE SERVER ' || quote_ident(s.srvname),
           'TYPE ' || quote_literal(s.srvtype), 'VERSION ' || quote_literal(s.srvversion),
           'FOREIGN DATA WRAPPER ' || quote_ident(w.fdwname),
           'OPTIONS (' || array_to_string(s.srvoptions, ', ') || ')') AS body,
       s.srvowner::regrole::text AS owner,
       {_SERVER_ACL} AS acl,
       {_comment("pg_foreign_server", "s.oid", "'SERVER ' || quote_ident(s.srvname)")}
           AS comments,
       'pg_catalog.pg_foreign_server'::regclass::oid AS classid, s.oid AS objid
FROM pg_catalog.pg_foreign_server s
JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
WHERE {_own("pg_foreign_server", "s.oid")}"""

PUBLICATIONS = f"""SELECT 'publication' AS kind, quote_ident(p.pubname) AS name,
       concat_ws(E'\\n    ', 'CREATE PUBLICATION ' || quote_ident(p.pubname),
           CASE WHEN p.puballtables THEN 'FOR ALL TABLES' END,
           (SELECT string_agg(concat_ws(' ', 'TABLE ' || pr.prrelid::regclass::text,
                   '(' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n)
                           FROM unnest(pr.prattrs::int2[]) WITH ORDINALITY k(attnum, n)
                           JOIN pg_catalog.pg_attribute a
                             ON a.attrelid = pr.prrelid AND a.attnum = k.attnum) || ')',
                   'WHERE (' || pg_get_expr(pr.prqual, pr.prrelid) || ')'),
                   E'\\n    ' ORDER BY pr.prrelid::regclass::text)
            FROM pg_catalog.pg_publication_rel pr WHERE pr.prpubid = p.oid),
           (SELECT string_agg('TABLES IN SCHEMA ' || quote_ident(n.nspname), E'\\n    '
                              ORDER BY n.nspname)
            FROM pg_catalog.pg_publication_namespace pn
            JOIN pg_catalog.pg_namespace n ON n.oid = pn.pnnspid WHERE pn.pnpubid = p.oid),
           format('WITH (publish = %L, publish_via_partition_root = %s)',
                  concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END,
                            CASE WHEN p.pubupdate THEN 'update' END,
                            CASE WHEN p.pubdelete THEN 'delete' END,
                            CASE WHEN p.pubtruncate THEN 'truncate' END), p.pubviaroot)) AS body,
       p.pubowner::regrole::text AS owner, NULL AS acl,
       {_comment("pg_publication", "p.oid", "'PUBLICATION ' || quote_ident(p.pubname)")}
           AS comments,
       'pg_catalog.pg_publication'::regclass::oid AS classid, p.oid AS objid
FROM pg_catalog.pg_publication p"""

# Like pg_dump: casts created after initdb (OID above the built-in range) that no extension owns.
_CAST_NAME = (
    "format('(%s AS %s)', format_type(k.castsource, NULL), format_type(k.casttarget, NULL))"
)
CASTS = f"""SELECT 'cast' AS kind, {_CAST_NAME} AS name,
       format('CREATE CAST %s %s%s', {_CAST_NAME},
              CASE k.castmethod WHEN 'f' THEN 'WITH FUNCTION ' || k.castfunc::regprocedure
                   WHEN 'i' THEN 'WITH INOUT' ELSE 'WITHOUT FUNCTION' END,
              CASE k.castcontext WHEN 'a' THEN ' AS ASSIGNMENT' WHEN 'i' THEN ' AS IMPLICIT'
                   ELSE '' END) AS body,
       NULL AS owner, NULL AS acl,
       {_comment("pg_cast", "k.oid", "'CAST ' || " + _CAST_NAME)} AS comments,
       'pg_catalog.pg_cast'::regclass::oid AS classid, k.oid AS objid
FROM pg_catalog.pg_cast k
WHERE k.oid >= 16384 AND {_own("pg_cast", "k.oid")}"""


# pg_dump -n refuses to dump when its patterns match no schema at all: so do we.
ANY_SCHEMA_MATCHES = f"""SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace n
                      WHERE {_NSPNAME} ~ ANY ($1::text[]))"""


QUERIES: tuple[Query, ...] = (
    Query("schemas", SCHEMAS),
    # Unlike pg_dump -n, extensions stay under a `schemas` filter: a changed extension
    # version is drift for any schema that uses it (the conformance reference agrees).
    Query("extensions", EXTENSIONS, scoped=False),
    Query("relations", RELATIONS),
    Query("sequences", SEQUENCES),
    Query("indexes", INDEXES),
    Query("functions", FUNCTIONS),
    Query("aggregates", AGGREGATES),
    Query("triggers", TRIGGERS),
    Query("rules", RULES),
    Query("policies", POLICIES),
    Query("types", TYPES),
    Query("collations", COLLATIONS),
    Query("statistics", STATISTICS),
    Query("default privileges", DEFAULT_PRIVILEGES, privileges_only=True),
    Query("event triggers", EVENT_TRIGGERS, scoped=False, whole_database=True),
    Query("foreign data wrappers", FOREIGN_DATA_WRAPPERS, scoped=False, whole_database=True),
    Query("servers", SERVERS, scoped=False, whole_database=True),
    Query("publications", PUBLICATIONS, scoped=False, whole_database=True),
    Query("casts", CASTS, scoped=False, whole_database=True),
)
