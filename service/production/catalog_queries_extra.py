"""The catalog queries for the families pg_dump emits beyond tables, functions and types.

Operators, operator classes and families, text search objects, conversions, access methods,
procedural languages, transforms, user mappings, subscriptions and security labels: each a
query of its own, with rows of the same shape as catalog_queries (kind, name, body, owner,
acl, comments, classid, objid) and the same rules (no OIDs in the text, extension members left out).

Every query reads only columns that exist unchanged in PostgreSQL 13 to 18. The one family
whose columns differ between majors (subscriptions) reads its row through to_jsonb, so a
column added in a later major shows up as one more option line without a query per version.
"""

from __future__ import annotations

from service.production.catalog_queries import _NS, Query, _acl, _comment, _own

# What pg_dump would print for a function reference: schema-qualified under search_path ''.
_OPERATOR_NAME = """format('%I.%s(%s, %s)', ns.nspname, o.oprname,
       coalesce(format_type(NULLIF(o.oprleft, 0), NULL), 'NONE'),
       coalesce(format_type(NULLIF(o.oprright, 0), NULL), 'NONE'))"""

OPERATORS = f"""WITH {_NS}
SELECT 'operator' AS kind, {_OPERATOR_NAME} AS name,
       concat_ws(E'\\n    ', format('CREATE OPERATOR %I.%s (', ns.nspname, o.oprname),
           'FUNCTION = ' || o.oprcode::regprocedure,
           'LEFTARG = ' || format_type(NULLIF(o.oprleft, 0), NULL),
           'RIGHTARG = ' || format_type(NULLIF(o.oprright, 0), NULL),
           'COMMUTATOR = ' || NULLIF(o.oprcom, 0)::regoperator,
           'NEGATOR = ' || NULLIF(o.oprnegate, 0)::regoperator,
           'RESTRICT = ' || NULLIF(o.oprrest, 0)::regprocedure,
           'JOIN = ' || NULLIF(o.oprjoin, 0)::regprocedure,
           CASE WHEN o.oprcanhash THEN 'HASHES' END,
           CASE WHEN o.oprcanmerge THEN 'MERGES' END) || E'\\n)' AS body,
       o.oprowner::regrole::text AS owner, NULL AS acl,
       {_comment("pg_operator", "o.oid", "'OPERATOR ' || " + _OPERATOR_NAME)} AS comments,
       'pg_catalog.pg_operator'::regclass::oid AS classid, o.oid AS objid
FROM pg_catalog.pg_operator o JOIN ns ON ns.oid = o.oprnamespace
WHERE {_own("pg_operator", "o.oid")}"""

# pg_amop/pg_amproc rows that pg_depend ties to one operator class or family, as the
# OPERATOR / FUNCTION lines of CREATE OPERATOR CLASS (ALTER OPERATOR FAMILY ... ADD).
_MEMBERS = """NULLIF(concat_ws(E'\\n    ',
    (SELECT string_agg(concat_ws(' ', format('OPERATOR %s %s', ao.amopstrategy,
                                             ao.amopopr::regoperator),
                                 'FOR ORDER BY ' || (SELECT format('%I.%I', sn.nspname, sf.opfname)
                                    FROM pg_catalog.pg_opfamily sf
                                    JOIN pg_catalog.pg_namespace sn ON sn.oid = sf.opfnamespace
                                    WHERE sf.oid = NULLIF(ao.amopsortfamily, 0))),
                       E'\\n    ' ORDER BY ao.amopstrategy, ao.amoplefttype::regtype::text,
                                          ao.amoprighttype::regtype::text)
     FROM pg_catalog.pg_amop ao JOIN pg_catalog.pg_depend d
       ON d.classid = 'pg_catalog.pg_amop'::regclass AND d.objid = ao.oid
     WHERE d.refclassid = 'pg_catalog.{catalog}'::regclass AND d.refobjid = {oid}
       AND ao.amopfamily = {family}),
    (SELECT string_agg(format('FUNCTION %s (%s, %s) %s', ap.amprocnum,
                              format_type(ap.amproclefttype, NULL),
                              format_type(ap.amprocrighttype, NULL), ap.amproc::regprocedure),
                       E'\\n    ' ORDER BY ap.amprocnum, ap.amproclefttype::regtype::text,
                                          ap.amprocrighttype::regtype::text)
     FROM pg_catalog.pg_amproc ap JOIN pg_catalog.pg_depend d
       ON d.classid = 'pg_catalog.pg_amproc'::regclass AND d.objid = ap.oid
     WHERE d.refclassid = 'pg_catalog.{catalog}'::regclass AND d.refobjid = {oid}
       AND ap.amprocfamily = {family})), '')"""

_OPCLASS_NAME = "format('%I.%I USING %I', ns.nspname, oc.opcname, am.amname)"
OPERATOR_CLASSES = f"""WITH {_NS}
SELECT 'operator class' AS kind, {_OPCLASS_NAME} AS name,
       concat_ws(E'\\n    ',
           format('CREATE OPERATOR CLASS %I.%I%s FOR TYPE %s USING %I FAMILY %I.%I AS',
                  ns.nspname, oc.opcname, CASE WHEN oc.opcdefault THEN ' DEFAULT' ELSE '' END,
                  format_type(oc.opcintype, NULL), am.amname, fn.nspname, f.opfname),
           {_MEMBERS.format(catalog="pg_opclass", oid="oc.oid", family="oc.opcfamily")},
           'STORAGE ' || format_type(NULLIF(oc.opckeytype, 0), NULL)) AS body,
       oc.opcowner::regrole::text AS owner, NULL AS acl,
       {_comment("pg_opclass", "oc.oid", "'OPERATOR CLASS ' || " + _OPCLASS_NAME)} AS comments,
       'pg_catalog.pg_opclass'::regclass::oid AS classid, oc.oid AS objid
FROM pg_catalog.pg_opclass oc JOIN ns ON ns.oid = oc.opcnamespace
JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod
JOIN pg_catalog.pg_opfamily f ON f.oid = oc.opcfamily
JOIN pg_catalog.pg_namespace fn ON fn.oid = f.opfnamespace
WHERE {_own("pg_opclass", "oc.oid")}"""

# A family lists the members added to it loosely (ALTER OPERATOR FAMILY ... ADD); those of
# its classes are in the classes.
_OPFAMILY_NAME = "format('%I.%I USING %I', ns.nspname, f.opfname, am.amname)"
OPERATOR_FAMILIES = f"""WITH {_NS}
SELECT 'operator family' AS kind, {_OPFAMILY_NAME} AS name,
       concat_ws(E'\\n    ', 'CREATE OPERATOR FAMILY ' || {_OPFAMILY_NAME},
           {_MEMBERS.format(catalog="pg_opfamily", oid="f.oid", family="f.oid")}) AS body,
       f.opfowner::regrole::text AS owner, NULL AS acl,
       {_comment("pg_opfamily", "f.oid", "'OPERATOR FAMILY ' || " + _OPFAMILY_NAME)} AS comments,
       'pg_catalog.pg_opfamily'::regclass::oid AS classid, f.oid AS objid
FROM pg_catalog.pg_opfamily f JOIN ns ON ns.oid = f.opfnamespace
JOIN pg_catalog.pg_am am ON am.oid = f.opfmethod
WHERE {_own("pg_opfamily", "f.oid")}"""


def _named(what: str, name: str) -> str:
    """SQL: `WHAT schema.name` for a COMMENT ON line (alias ns = the object's schema)."""
    return f"format('{what} %I.%I', ns.nspname, {name})"


TEXT_SEARCH_PARSERS = f"""WITH {_NS}
SELECT 'text search parser' AS kind, format('%I.%I', ns.nspname, p.prsname) AS name,
       concat_ws(E'\\n    ',
           format('CREATE TEXT SEARCH PARSER %I.%I (', ns.nspname, p.prsname),
           'START = ' || p.prsstart::regprocedure, 'GETTOKEN = ' || p.prstoken::regprocedure,
           'END = ' || p.prsend::regprocedure,
           'HEADLINE = ' || NULLIF(p.prsheadline, 0)::regprocedure,
           'LEXTYPES = ' || p.prslextype::regprocedure) || E'\\n)' AS body,
       NULL AS owner, NULL AS acl,
       {_comment("pg_ts_parser", "p.oid", _named("TEXT SEARCH PARSER", "p.prsname"))} AS comments,
       'pg_catalog.pg_ts_parser'::regclass::oid AS classid, p.oid AS objid
FROM pg_catalog.pg_ts_parser p JOIN ns ON ns.oid = p.prsnamespace
WHERE {_own("pg_ts_parser", "p.oid")}"""

TEXT_SEARCH_TEMPLATES = f"""WITH {_NS}
SELECT 'text search template' AS kind, format('%I.%I', ns.nspname, t.tmplname) AS name,
       concat_ws(E'\\n    ',
           format('CREATE TEXT SEARCH TEMPLATE %I.%I (', ns.nspname, t.tmplname),
           'INIT = ' || NULLIF(t.tmplinit, 0)::regprocedure,
           'LEXIZE = ' || t.tmpllexize::regprocedure) || E'\\n)' AS body,
       NULL AS owner, NULL AS acl,
       {_comment("pg_ts_template", "t.oid", _named("TEXT SEARCH TEMPLATE", "t.tmplname"))}
           AS comments,
       'pg_catalog.pg_ts_template'::regclass::oid AS classid, t.oid AS objid
FROM pg_catalog.pg_ts_template t JOIN ns ON ns.oid = t.tmplnamespace
WHERE {_own("pg_ts_template", "t.oid")}"""

TEXT_SEARCH_DICTIONARIES = f"""WITH {_NS}
SELECT 'text search dictionary' AS kind, format('%I.%I', ns.nspname, d.dictname) AS name,
       concat_ws(E'\\n    ',
           format('CREATE TEXT SEARCH DICTIONARY %I.%I (', ns.nspname, d.dictname),
           'TEMPLATE = ' || (SELECT format('%I.%I', tn.nspname, t.tmplname)
                             FROM pg_catalog.pg_ts_template t
                             JOIN pg_catalog.pg_namespace tn ON tn.oid = t.tmplnamespace
                             WHERE t.oid = d.dicttemplate),
           d.dictinitoption) || E'\\n)' AS body,
       d.dictowner::regrole::text AS owner, NULL AS acl,
       {_comment("pg_ts_dict", "d.oid", _named("TEXT SEARCH DICTIONARY", "d.dictname"))}
           AS comments,
       'pg_catalog.pg_ts_dict'::regclass::oid AS classid, d.oid AS objid
FROM pg_catalog.pg_ts_dict d JOIN ns ON ns.oid = d.dictnamespace
WHERE {_own("pg_ts_dict", "d.oid")}"""

# A configuration's token mappings are part of it: one line per token type, dictionaries in
# their order of use.
TEXT_SEARCH_CONFIGURATIONS = f"""WITH {_NS}
SELECT 'text search configuration' AS kind, format('%I.%I', ns.nspname, c.cfgname) AS name,
       concat_ws(E'\\n    ',
           format('CREATE TEXT SEARCH CONFIGURATION %I.%I (PARSER = %I.%I)', ns.nspname,
                  c.cfgname, pn.nspname, p.prsname),
           (SELECT string_agg(format('ADD MAPPING FOR %s WITH %s', m.alias, m.dicts),
                              E'\\n    ' ORDER BY m.alias)
            FROM (SELECT tt.alias, string_agg(mp.mapdict::regdictionary::text, ', '
                                              ORDER BY mp.mapseqno) AS dicts
                  FROM pg_catalog.pg_ts_config_map mp
                  JOIN pg_catalog.ts_token_type(c.cfgparser) tt ON tt.tokid = mp.maptokentype
                  WHERE mp.mapcfg = c.oid GROUP BY tt.alias) m)) AS body,
       c.cfgowner::regrole::text AS owner, NULL AS acl,
       {_comment("pg_ts_config", "c.oid", _named("TEXT SEARCH CONFIGURATION", "c.cfgname"))}
           AS comments,
       'pg_catalog.pg_ts_config'::regclass::oid AS classid, c.oid AS objid
FROM pg_catalog.pg_ts_config c JOIN ns ON ns.oid = c.cfgnamespace
JOIN pg_catalog.pg_ts_parser p ON p.oid = c.cfgparser
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.prsnamespace
WHERE {_own("pg_ts_config", "c.oid")}"""

CONVERSIONS = f"""WITH {_NS}
SELECT 'conversion' AS kind, format('%I.%I', ns.nspname, c.conname) AS name,
       format('CREATE %sCONVERSION %I.%I FOR %L TO %L FROM %s',
              CASE WHEN c.condefault THEN 'DEFAULT ' ELSE '' END, ns.nspname, c.conname,
              pg_encoding_to_char(c.conforencoding), pg_encoding_to_char(c.contoencoding),
              c.conproc::regprocedure) AS body,
       c.conowner::regrole::text AS owner, NULL AS acl,
       {_comment("pg_conversion", "c.oid", "format('CONVERSION %I.%I', ns.nspname, c.conname)")}
           AS comments,
       'pg_catalog.pg_conversion'::regclass::oid AS classid, c.oid AS objid
FROM pg_catalog.pg_conversion c JOIN ns ON ns.oid = c.connamespace
WHERE {_own("pg_conversion", "c.oid")}"""

# -- database-wide: only without a `schemas` filter (pg_dump -n leaves them out too) --------
# Built-in rows have OIDs below FirstNormalObjectId (16384), as pg_dump's own test.

ACCESS_METHODS = f"""SELECT 'access method' AS kind, quote_ident(a.amname) AS name,
       format('CREATE ACCESS METHOD %I TYPE %s HANDLER %s', a.amname,
              CASE a.amtype WHEN 'i' THEN 'INDEX' WHEN 't' THEN 'TABLE' ELSE a.amtype::text END,
              a.amhandler::regprocedure) AS body,
       NULL AS owner, NULL AS acl,
       {_comment("pg_am", "a.oid", "'ACCESS METHOD ' || quote_ident(a.amname)")} AS comments,
       'pg_catalog.pg_am'::regclass::oid AS classid, a.oid AS objid
FROM pg_catalog.pg_am a
WHERE a.oid >= 16384 AND {_own("pg_am", "a.oid")}"""

_LANGUAGE_ACL = _acl(
    "l.lanacl", "acldefault('l', l.lanowner)", "'LANGUAGE ' || quote_ident(l.lanname)", "l.lanowner"
)
LANGUAGES = f"""SELECT 'language' AS kind, quote_ident(l.lanname) AS name,
       concat_ws(E'\\n    ',
           format('CREATE %sPROCEDURAL LANGUAGE %I',
                  CASE WHEN l.lanpltrusted THEN 'TRUSTED ' ELSE '' END, l.lanname),
           'HANDLER ' || NULLIF(l.lanplcallfoid, 0)::regprocedure,
           'INLINE ' || NULLIF(l.laninline, 0)::regprocedure,
           'VALIDATOR ' || NULLIF(l.lanvalidator, 0)::regprocedure) AS body,
       l.lanowner::regrole::text AS owner,
       {_LANGUAGE_ACL} AS acl,
       {_comment("pg_language", "l.oid", "'LANGUAGE ' || quote_ident(l.lanname)")} AS comments,
       'pg_catalog.pg_language'::regclass::oid AS classid, l.oid AS objid
FROM pg_catalog.pg_language l
WHERE l.oid >= 16384 AND {_own("pg_language", "l.oid")}"""

_TRANSFORM_NAME = "format('FOR %s LANGUAGE %I', format_type(t.trftype, NULL), l.lanname)"
TRANSFORMS = f"""SELECT 'transform' AS kind, {_TRANSFORM_NAME} AS name,
       concat_ws(E'\\n    ', 'CREATE TRANSFORM ' || {_TRANSFORM_NAME},
           'FROM SQL WITH FUNCTION ' || NULLIF(t.trffromsql, 0)::regprocedure,
           'TO SQL WITH FUNCTION ' || NULLIF(t.trftosql, 0)::regprocedure) AS body,
       NULL AS owner, NULL AS acl,
       {_comment("pg_transform", "t.oid", "'TRANSFORM ' || " + _TRANSFORM_NAME)} AS comments,
       'pg_catalog.pg_transform'::regclass::oid AS classid, t.oid AS objid
FROM pg_catalog.pg_transform t JOIN pg_catalog.pg_language l ON l.oid = t.trflang
WHERE t.oid >= 16384 AND {_own("pg_transform", "t.oid")}"""


def _redact_options(options: str) -> str:
    """SQL: an options array as `key 'value', ...` (sorted), with a password's value hidden.

    pg_dump writes these passwords into the schema file; the inventory (inventory.json, drift
    reports, Sentry) never carries them. A changed password is then only seen in the file.
    """
    return f"""(SELECT string_agg(CASE WHEN split_part(o, '=', 1) = 'password'
                           THEN 'password ''********'''
                           ELSE format('%s %L', split_part(o, '=', 1),
                                       substr(o, length(split_part(o, '=', 1)) + 2)) END,
                      ', ' ORDER BY o)
     FROM unnest({options}) o)"""


# Who the mapping is for (PUBLIC or a role) and the server make its name; the options the
# pg_user_mappings view shows are those this session may see, as for pg_dump.
_MAPPING_NAME = (
    "format('FOR %s SERVER %I', CASE WHEN u.umuser = 0 THEN 'PUBLIC' ELSE u.usename::text END,"
    " u.srvname)"
)
USER_MAPPINGS = f"""SELECT 'user mapping' AS kind, {_MAPPING_NAME} AS name,
       concat_ws(E'\\n    ', 'CREATE USER MAPPING ' || {_MAPPING_NAME},
                 'OPTIONS (' || {_redact_options("u.umoptions")} || ')') AS body,
       NULL AS owner, NULL AS acl, NULL AS comments,
       'pg_catalog.pg_user_mapping'::regclass::oid AS classid, u.umid AS objid
FROM pg_catalog.pg_user_mappings u
WHERE {_own("pg_user_mapping", "u.umid")}"""

# Read through to_jsonb: the option columns differ by major (binary, streaming 14; two_phase,
# disable_on_error 15; origin, password_required, run_as_owner 16; failover 17; ...). What
# pg_dump does not dump is left out: enabled (it always creates subscriptions disabled) and
# the skip LSN. pg_subscription hides the connection string from non-superusers, and so does
# pg_dump: without that privilege the family is skipped (Query.only_if).
_SUBSCRIPTION_SKIP = (
    "'oid', 'subdbid', 'subname', 'subowner', 'subenabled', 'subskiplsn', 'subconninfo',"
    " 'subpublications'"
)
SUBSCRIPTIONS = f"""SELECT 'subscription' AS kind, quote_ident(s.subname) AS name,
       concat_ws(E'\\n    ', 'CREATE SUBSCRIPTION ' || quote_ident(s.subname),
           -- key=value form (password=..., quoted or not) and URI form (://user:secret@)
           'CONNECTION ' || quote_literal(regexp_replace(regexp_replace(s.subconninfo,
               '(password\\s*=\\s*)(''([^''\\\\]|\\\\.)*''|\\S+)', '\\1********', 'g'),
               '^([a-z]+://[^:/@]*:)[^@]*@', '\\1********@')),
           -- in the subscription's own order, as pg_dump writes them
           'PUBLICATION ' || (SELECT string_agg(quote_ident(p), ', ' ORDER BY n)
                              FROM unnest(s.subpublications) WITH ORDINALITY u(p, n)),
           (SELECT string_agg(format('%s = %s', j.key, j.value), E'\\n    ' ORDER BY j.key)
            FROM jsonb_each_text(to_jsonb(s)) j
            WHERE j.key NOT IN ({_SUBSCRIPTION_SKIP}))) AS body,
       s.subowner::regrole::text AS owner, NULL AS acl,
       {_comment("pg_subscription", "s.oid", "'SUBSCRIPTION ' || quote_ident(s.subname)")}
           AS comments,
       'pg_catalog.pg_subscription'::regclass::oid AS classid, s.oid AS objid
FROM pg_catalog.pg_subscription s
WHERE s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d
                   WHERE d.datname = current_database())"""
_SUBSCRIPTIONS_READABLE = (
    "has_column_privilege('pg_catalog.pg_subscription', 'subconninfo', 'SELECT')"
)

# Labels of objects in the filtered schemas, and of schema-less objects (languages, event
# triggers, ...) only without a `schemas` filter; the label's provider and the object's
# identity (pg_identify_object: readable, no OIDs) name it. Shared objects (roles, databases,
# tablespaces) are outside a database's dump.
SECURITY_LABELS = f"""WITH {_NS}
SELECT 'security label' AS kind, format('%s ON %s %s', l.provider, i.what, i.identity) AS name,
       format('SECURITY LABEL FOR %s ON %s %s IS %L', l.provider, i.what, i.identity, l.label)
           AS body,
       NULL AS owner, NULL AS acl, NULL AS comments,
       l.classoid AS classid, l.objoid AS objid
FROM pg_catalog.pg_seclabel l
CROSS JOIN LATERAL (SELECT o.schema, o.identity, CASE o.type WHEN 'table column' THEN 'COLUMN'
                                                 ELSE upper(o.type) END AS what
                    FROM pg_catalog.pg_identify_object(l.classoid, l.objoid, l.objsubid) o) i
WHERE l.objoid >= 16384
  AND (i.schema IN (SELECT nspname FROM ns)
       OR (i.schema IS NULL AND cardinality($1::text[]) = 0))
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e WHERE e.classid = l.classoid
                  AND e.objid = l.objoid AND e.objsubid = 0 AND e.deptype = 'e')"""


EXTRA_QUERIES: tuple[Query, ...] = (
    Query("operators", OPERATORS),
    Query("operator classes", OPERATOR_CLASSES),
    Query("operator families", OPERATOR_FAMILIES),
    Query("text search parsers", TEXT_SEARCH_PARSERS),
    Query("text search templates", TEXT_SEARCH_TEMPLATES),
    Query("text search dictionaries", TEXT_SEARCH_DICTIONARIES),
    Query("text search configurations", TEXT_SEARCH_CONFIGURATIONS),
    Query("conversions", CONVERSIONS),
    Query("security labels", SECURITY_LABELS),
    Query("access methods", ACCESS_METHODS, scoped=False, whole_database=True),
    Query("languages", LANGUAGES, scoped=False, whole_database=True),
    Query("transforms", TRANSFORMS, scoped=False, whole_database=True),
    Query("user mappings", USER_MAPPINGS, scoped=False, whole_database=True),
    Query(
        "subscriptions",
        SUBSCRIPTIONS,
        scoped=False,
        whole_database=True,
        only_if=_SUBSCRIPTIONS_READABLE,
    ),
)

# Every catalog the extra families read, for whoever needs to know when they change.
CATALOGS_READ = (
    "pg_operator",
    "pg_opclass",
    "pg_opfamily",
    "pg_amop",
    "pg_amproc",
    "pg_am",
    "pg_ts_parser",
    "pg_ts_template",
    "pg_ts_dict",
    "pg_ts_config",
    "pg_ts_config_map",
    "pg_conversion",
    "pg_language",
    "pg_transform",
    "pg_user_mapping",
    "pg_foreign_server",
    "pg_subscription",
    "pg_seclabel",
    "pg_description",
    "pg_depend",
    "pg_namespace",
    "pg_database",
    "pg_type",  # format_type
    "pg_proc",  # ::regprocedure
    "pg_authid",  # ::regrole, and pg_user_mappings' role names
)
