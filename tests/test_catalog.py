"""The catalog inventory against a real PostgreSQL: what drifts, under which name, and what not."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from service.compare.drift import Change, Drift, compare
from service.compare.inventory import Inventory
from service.demo.cluster import ScratchCluster
from service.production import catalog_queries
from service.production.catalog import CatalogOptions, load_inventory
from service.production.db import connect
from tests.conftest import Database, new_database

ADDED, REMOVED, CHANGED = Change.ADDED, Change.REMOVED, Change.CHANGED
TEMPLATE = "catalog_base"
_names = itertools.count()

# One of (nearly) everything pg_dump --schema-only emits; every case below starts from it.
BASE_SQL = """
CREATE EXTENSION pg_trgm VERSION '1.3';
CREATE SCHEMA app;
CREATE SCHEMA empty_schema;
CREATE TYPE app.mood AS ENUM ('sad', 'ok');
CREATE TYPE app.unused AS ENUM ('x');
CREATE TYPE app.pair AS (a integer, b text);
CREATE TYPE app.floatrange AS RANGE (subtype = float8);
CREATE DOMAIN app.posint AS integer NOT NULL CHECK (VALUE > 0);
CREATE COLLATION app.nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE app.trails (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    length_km numeric CHECK (length_km >= 0),
    mood app.mood,
    region text
);
CREATE TABLE app.segments (id serial PRIMARY KEY, trail_id integer REFERENCES app.trails,
                           x integer, y integer);
CREATE TABLE app.lonely (id integer);
CREATE INDEX trails_name_idx ON app.trails (name);
CREATE VIEW app.long_trails AS SELECT id, name FROM app.trails WHERE length_km > 10;
CREATE MATERIALIZED VIEW app.trail_count AS SELECT count(*) AS n FROM app.trails;
CREATE SEQUENCE app.ticket START 100;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE FUNCTION app.find_route(a integer, b integer) RETURNS integer
    LANGUAGE sql AS 'SELECT a + b';
CREATE PROCEDURE app.cleanup() LANGUAGE sql AS 'DELETE FROM app.segments WHERE x IS NULL';
CREATE AGGREGATE app.total(integer) (SFUNC = int4pl, STYPE = integer, INITCOND = '0');
CREATE TRIGGER trail_touch BEFORE UPDATE ON app.trails
    FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE RULE no_delete AS ON DELETE TO app.segments DO INSTEAD NOTHING;
ALTER TABLE app.trails ENABLE ROW LEVEL SECURITY;
CREATE POLICY trail_owner ON app.trails USING (name = current_user);
CREATE STATISTICS app.seg_xy ON x, y FROM app.segments;
CREATE FUNCTION app.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$;
CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION app.on_ddl();
CREATE FOREIGN DATA WRAPPER dummy;
CREATE SERVER remote FOREIGN DATA WRAPPER dummy;
CREATE FOREIGN TABLE app.remote_trails (id integer) SERVER remote;
CREATE PUBLICATION trail_pub FOR TABLE app.trails;
CREATE FUNCTION app.pair_to_int(app.pair) RETURNS integer LANGUAGE sql AS 'SELECT ($1).a';
CREATE CAST (app.pair AS integer) WITH FUNCTION app.pair_to_int(app.pair);
CREATE FUNCTION app.pair_to_text(app.pair) RETURNS text LANGUAGE sql AS 'SELECT ($1).b';
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO catalog_reader;
GRANT SELECT ON app.trails TO catalog_reader;
COMMENT ON TABLE app.trails IS 'walkable';
"""

ROLES_SQL = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'catalog_reader') THEN
        CREATE ROLE catalog_reader;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'catalog_owner') THEN
        CREATE ROLE catalog_owner;
    END IF;
END $$;
"""


@pytest.fixture(scope="session")
def base_template(cluster: ScratchCluster) -> str:
    cluster.psql("postgres", ROLES_SQL)
    cluster.drop_database(TEMPLATE)
    cluster.create_database(TEMPLATE)
    cluster.psql(TEMPLATE, BASE_SQL)
    return TEMPLATE


@pytest.fixture
def base(cluster: ScratchCluster, base_template: str) -> Iterator[Database]:
    """A fresh database holding BASE_SQL (copied from a template: much faster than loading)."""
    name = f"catalog_{next(_names)}"
    cluster.psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{base_template}"')
    yield Database(cluster, name)
    cluster.drop_database(name)


@pytest.fixture
def two_databases(cluster: ScratchCluster) -> Iterator[tuple[Database, Database]]:
    a, b = new_database(cluster), new_database(cluster)
    yield a, b
    cluster.drop_database(a.name)
    cluster.drop_database(b.name)


async def inventory(db: Database, options: CatalogOptions | None = None) -> Inventory:
    conn = await connect(db.conninfo)
    try:
        return await load_inventory(conn, options or CatalogOptions())
    finally:
        await conn.close()


async def drift_after(db: Database, sql: str, options: CatalogOptions | None = None) -> Drift:
    before = await inventory(db, options)
    db.sql(sql)
    return compare(before, await inventory(db, options))


def changes(drift: Drift) -> set[tuple[str, str, Change]]:
    return {(i.kind, i.name, i.change) for i in drift.items}


CASES = [
    ("schema", "extra", "CREATE SCHEMA extra", ADDED),
    ("schema", "empty_schema", "DROP SCHEMA empty_schema", REMOVED),
    ("schema", "empty_schema", "ALTER SCHEMA empty_schema OWNER TO catalog_owner", CHANGED),
    ("extension", "hstore", "CREATE EXTENSION hstore", ADDED),
    ("extension", "pg_trgm", "DROP EXTENSION pg_trgm", REMOVED),
    ("extension", "pg_trgm", "ALTER EXTENSION pg_trgm UPDATE TO '1.4'", CHANGED),
    ("table", "app.extra", "CREATE TABLE app.extra (id integer)", ADDED),
    ("table", "app.lonely", "DROP TABLE app.lonely", REMOVED),
    ("table", "app.trails", "ALTER TABLE app.trails ADD COLUMN note text", CHANGED),
    ("table", "app.lonely", "ALTER TABLE app.lonely SET UNLOGGED", CHANGED),
    ("view", "app.v2", "CREATE VIEW app.v2 AS SELECT 1 AS one", ADDED),
    ("view", "app.long_trails", "DROP VIEW app.long_trails", REMOVED),
    (
        "view",
        "app.long_trails",
        "CREATE OR REPLACE VIEW app.long_trails AS "
        "SELECT id, name FROM app.trails WHERE length_km > 20",
        CHANGED,
    ),
    ("materialized view", "app.mv2", "CREATE MATERIALIZED VIEW app.mv2 AS SELECT 1", ADDED),
    ("materialized view", "app.trail_count", "DROP MATERIALIZED VIEW app.trail_count", REMOVED),
    (
        "materialized view",
        "app.trail_count",
        "DROP MATERIALIZED VIEW app.trail_count; "
        "CREATE MATERIALIZED VIEW app.trail_count AS SELECT count(id) AS n FROM app.trails",
        CHANGED,
    ),
    ("sequence", "app.s2", "CREATE SEQUENCE app.s2", ADDED),
    ("sequence", "app.ticket", "DROP SEQUENCE app.ticket", REMOVED),
    ("sequence", "app.ticket", "ALTER SEQUENCE app.ticket INCREMENT BY 5", CHANGED),
    ("index", "app.segments_x_idx", "CREATE INDEX ON app.segments (x)", ADDED),
    ("index", "app.trails_name_idx", "DROP INDEX app.trails_name_idx", REMOVED),
    (
        "index",
        "app.trails_name_idx",
        "ALTER INDEX app.trails_name_idx SET (fillfactor=50)",
        CHANGED,
    ),
    (
        "function",
        "app.find_route(integer)",
        "CREATE FUNCTION app.find_route(a integer) RETURNS integer LANGUAGE sql AS 'SELECT a'",
        ADDED,
    ),
    ("function", "app.find_route(integer, integer)", "DROP FUNCTION app.find_route", REMOVED),
    (
        "function",
        "app.find_route(integer, integer)",
        "CREATE OR REPLACE FUNCTION app.find_route(a integer, b integer) RETURNS integer "
        "LANGUAGE sql AS 'SELECT a - b'",
        CHANGED,
    ),
    ("procedure", "app.p2()", "CREATE PROCEDURE app.p2() LANGUAGE sql AS 'SELECT 1'", ADDED),
    ("procedure", "app.cleanup()", "DROP PROCEDURE app.cleanup", REMOVED),
    (
        "procedure",
        "app.cleanup()",
        "CREATE OR REPLACE PROCEDURE app.cleanup() LANGUAGE sql AS 'DELETE FROM app.segments'",
        CHANGED,
    ),
    (
        "aggregate",
        "app.total(bigint)",
        "CREATE AGGREGATE app.total(bigint) (SFUNC = int8pl, STYPE = bigint)",
        ADDED,
    ),
    ("aggregate", "app.total(integer)", "DROP AGGREGATE app.total(integer)", REMOVED),
    (
        "aggregate",
        "app.total(integer)",
        "DROP AGGREGATE app.total(integer); "
        "CREATE AGGREGATE app.total(integer) (SFUNC = int4pl, STYPE = integer, INITCOND = '1')",
        CHANGED,
    ),
    (
        "trigger",
        "t2 ON app.segments",
        "CREATE TRIGGER t2 AFTER INSERT ON app.segments EXECUTE FUNCTION app.touch()",
        ADDED,
    ),
    ("trigger", "trail_touch ON app.trails", "DROP TRIGGER trail_touch ON app.trails", REMOVED),
    (
        "trigger",
        "trail_touch ON app.trails",
        "ALTER TABLE app.trails DISABLE TRIGGER trail_touch",
        CHANGED,
    ),
    (
        "rule",
        "no_insert ON app.segments",
        "CREATE RULE no_insert AS ON INSERT TO app.segments DO INSTEAD NOTHING",
        ADDED,
    ),
    ("rule", "no_delete ON app.segments", "DROP RULE no_delete ON app.segments", REMOVED),
    (
        "rule",
        "no_delete ON app.segments",
        "CREATE OR REPLACE RULE no_delete AS ON DELETE TO app.segments DO ALSO NOTHING",
        CHANGED,
    ),
    ("policy", "p2 ON app.trails", "CREATE POLICY p2 ON app.trails FOR SELECT USING (true)", ADDED),
    ("policy", "trail_owner ON app.trails", "DROP POLICY trail_owner ON app.trails", REMOVED),
    (
        "policy",
        "trail_owner ON app.trails",
        "ALTER POLICY trail_owner ON app.trails TO catalog_reader",
        CHANGED,
    ),
    ("type", "app.color", "CREATE TYPE app.color AS ENUM ('red')", ADDED),
    ("type", "app.unused", "DROP TYPE app.unused", REMOVED),
    ("type", "app.mood", "ALTER TYPE app.mood ADD VALUE 'happy'", CHANGED),
    ("type", "app.pair", "ALTER TYPE app.pair ADD ATTRIBUTE c date", CHANGED),
    ("type", "app.intrange", "CREATE TYPE app.intrange AS RANGE (subtype = int4)", ADDED),
    ("type", "app.floatrange", "DROP TYPE app.floatrange", REMOVED),
    ("domain", "app.d2", "CREATE DOMAIN app.d2 AS text", ADDED),
    ("domain", "app.posint", "DROP DOMAIN app.posint", REMOVED),
    (
        "domain",
        "app.posint",
        "ALTER DOMAIN app.posint ADD CONSTRAINT small CHECK (VALUE < 1000) NOT VALID",
        CHANGED,
    ),
    ("collation", "app.c2", 'CREATE COLLATION app.c2 FROM "C"', ADDED),
    ("collation", "app.nocase", "DROP COLLATION app.nocase", REMOVED),
    ("collation", "app.nocase", "ALTER COLLATION app.nocase OWNER TO catalog_owner", CHANGED),
    ("statistics", "app.st2", "CREATE STATISTICS app.st2 ON x, id FROM app.segments", ADDED),
    ("statistics", "app.seg_xy", "DROP STATISTICS app.seg_xy", REMOVED),
    ("statistics", "app.seg_xy", "ALTER STATISTICS app.seg_xy SET STATISTICS 500", CHANGED),
    (
        "event trigger",
        "e2",
        "CREATE EVENT TRIGGER e2 ON ddl_command_start EXECUTE FUNCTION app.on_ddl()",
        ADDED,
    ),
    ("event trigger", "audit_ddl", "DROP EVENT TRIGGER audit_ddl", REMOVED),
    ("event trigger", "audit_ddl", "ALTER EVENT TRIGGER audit_ddl DISABLE", CHANGED),
    ("foreign data wrapper", "dummy2", "CREATE FOREIGN DATA WRAPPER dummy2", ADDED),
    (
        "foreign data wrapper",
        "dummy",
        "ALTER FOREIGN DATA WRAPPER dummy OPTIONS (debug 'true')",
        CHANGED,
    ),
    ("server", "s2", "CREATE SERVER s2 FOREIGN DATA WRAPPER dummy", ADDED),
    ("server", "remote", "ALTER SERVER remote OPTIONS (host 'elsewhere')", CHANGED),
    (
        "foreign table",
        "app.ft2",
        "CREATE FOREIGN TABLE app.ft2 (id integer) SERVER remote",
        ADDED,
    ),
    ("foreign table", "app.remote_trails", "DROP FOREIGN TABLE app.remote_trails", REMOVED),
    (
        "foreign table",
        "app.remote_trails",
        "ALTER FOREIGN TABLE app.remote_trails ADD COLUMN name text",
        CHANGED,
    ),
    ("publication", "p2", "CREATE PUBLICATION p2 FOR TABLE app.segments", ADDED),
    ("publication", "trail_pub", "DROP PUBLICATION trail_pub", REMOVED),
    ("publication", "trail_pub", "ALTER PUBLICATION trail_pub ADD TABLE app.segments", CHANGED),
    (
        "cast",
        "(app.pair AS text)",
        "CREATE CAST (app.pair AS text) WITH FUNCTION app.pair_to_text",
        ADDED,
    ),
    ("cast", "(app.pair AS integer)", "DROP CAST (app.pair AS integer)", REMOVED),
    (
        "default privileges",
        "FOR ROLE postgres ON FUNCTIONS",
        "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
        ADDED,
    ),
    (
        "default privileges",
        "FOR ROLE postgres IN SCHEMA app ON TABLES",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA app REVOKE SELECT ON TABLES FROM catalog_reader",
        REMOVED,
    ),
    (
        "default privileges",
        "FOR ROLE postgres IN SCHEMA app ON TABLES",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT INSERT ON TABLES TO catalog_reader",
        CHANGED,
    ),
]


@pytest.mark.parametrize(
    ("kind", "name", "sql", "change"), CASES, ids=[f"{c[3]} {c[0]} {c[1]}" for c in CASES]
)
async def test_each_kind_of_change_is_reported_as_that_object_alone(
    base: Database, kind: str, name: str, sql: str, change: Change
) -> None:
    drift = await drift_after(base, sql)
    assert changes(drift) == {(kind, name, change)}


TABLE_ALTERATIONS = [
    "ALTER TABLE app.trails ALTER COLUMN name SET DEFAULT 'x'",
    "ALTER TABLE app.trails ALTER COLUMN length_km SET NOT NULL",
    "ALTER TABLE app.trails ADD CONSTRAINT short CHECK (length_km < 100) NOT VALID",
    "ALTER TABLE app.trails ADD CONSTRAINT uq UNIQUE (name) DEFERRABLE INITIALLY DEFERRED",
    "ALTER TABLE app.trails ALTER COLUMN id SET INCREMENT BY 2",
    "ALTER TABLE app.trails ALTER COLUMN name SET STATISTICS 500",
    "ALTER TABLE app.trails ALTER COLUMN name SET STORAGE MAIN",
    'ALTER TABLE app.trails ALTER COLUMN region TYPE text COLLATE "C"',
    "ALTER TABLE app.trails SET (fillfactor = 50)",
    "ALTER TABLE app.trails REPLICA IDENTITY FULL",
    "ALTER TABLE app.trails FORCE ROW LEVEL SECURITY",
    "ALTER TABLE app.trails CLUSTER ON trails_name_idx",
    "ALTER TABLE app.trails RENAME COLUMN mood TO feeling",
]


@pytest.mark.parametrize("sql", TABLE_ALTERATIONS)
async def test_table_details_are_part_of_the_table_definition(base: Database, sql: str) -> None:
    drift = await drift_after(base, sql)
    assert changes(drift) == {("table", "app.trails", CHANGED)}


async def test_an_added_column_is_one_added_line(base: Database) -> None:
    drift = await drift_after(base, "ALTER TABLE app.trails ADD COLUMN note text")
    lines = drift.items[0].diff.splitlines()
    assert [ln for ln in lines if ln.startswith(("+", "-")) and ln[:3] not in ("+++", "---")] == [
        "+    note text"
    ]


async def test_column_order_is_drift(two_databases: tuple[Database, Database]) -> None:
    a, b = two_databases
    a.sql("CREATE TABLE t (x integer, y text)")
    b.sql("CREATE TABLE t (y text, x integer)")
    assert changes(compare(await inventory(a), await inventory(b))) == {
        ("table", "public.t", CHANGED)
    }


async def test_overloaded_functions_are_distinct_objects(db: Database) -> None:
    db.sql(
        "CREATE FUNCTION f(a integer) RETURNS integer LANGUAGE sql AS 'SELECT a';"
        "CREATE FUNCTION f(a text) RETURNS text LANGUAGE sql AS 'SELECT a';"
    )
    inv = await inventory(db)
    assert {o.name for o in inv if o.kind == "function"} == {"public.f(integer)", "public.f(text)"}
    drift = await drift_after(db, "DROP FUNCTION f(text)")
    assert changes(drift) == {("function", "public.f(text)", REMOVED)}


async def test_names_are_quoted_like_postgres_quotes_identifiers(db: Database) -> None:
    db.sql(
        'CREATE SCHEMA "Weird Schema";'
        'CREATE TABLE "Weird Schema"."Tëst" ("Col" integer, café text);'
        'CREATE FUNCTION "Weird Schema"."Fn"("Weird Schema"."Tëst") RETURNS integer '
        "LANGUAGE sql AS 'SELECT 1';"
        'CREATE INDEX "Ïdx" ON "Weird Schema"."Tëst" (café);'
    )
    names = {(o.kind, o.name) for o in await inventory(db)}
    assert {
        ("schema", '"Weird Schema"'),
        ("table", '"Weird Schema"."Tëst"'),
        ("function", '"Weird Schema"."Fn"("Weird Schema"."Tëst")'),
        ("index", '"Weird Schema"."Ïdx"'),
    } <= names
    table = next(o for o in await inventory(db) if o.kind == "table")
    assert '    "Col" integer' in table.definition.splitlines()
    assert '    "café" text' in table.definition.splitlines()


TRAILS = ("table", "app.trails")
ROUTE = ("function", "app.find_route(integer, integer)")


@pytest.mark.parametrize(
    ("switch", "sql", "drifting"),
    [
        ("owners", "ALTER TABLE app.trails OWNER TO catalog_owner", TRAILS),
        ("owners", "ALTER FUNCTION app.find_route OWNER TO catalog_owner", ROUTE),
        ("privileges", "GRANT INSERT ON app.trails TO catalog_reader", TRAILS),
        ("privileges", "GRANT UPDATE (name) ON app.trails TO catalog_reader", TRAILS),
        ("privileges", "REVOKE EXECUTE ON FUNCTION app.find_route FROM PUBLIC", ROUTE),
        ("comments", "COMMENT ON TABLE app.trails IS 'steep'", TRAILS),
        ("comments", "COMMENT ON COLUMN app.trails.name IS 'what people call it'", TRAILS),
        ("comments", "COMMENT ON CONSTRAINT trails_pkey ON app.trails IS 'the key'", TRAILS),
        ("comments", "COMMENT ON FUNCTION app.find_route IS 'shortest'", ROUTE),
        (
            "comments",
            "COMMENT ON INDEX app.trails_name_idx IS 'by name'",
            ("index", "app.trails_name_idx"),
        ),
    ],
)
async def test_owner_privilege_and_comment_changes_drift_only_when_switched_on(
    base: Database, switch: str, sql: str, drifting: tuple[str, str]
) -> None:
    off = CatalogOptions(**{switch: False})  # type: ignore[arg-type]
    on_before, off_before = await inventory(base), await inventory(base, off)
    base.sql(sql)
    assert changes(compare(on_before, await inventory(base))) == {(*drifting, CHANGED)}
    assert not compare(off_before, await inventory(base, off))


async def test_default_privileges_are_left_out_without_privileges(base: Database) -> None:
    kinds = {o.kind for o in await inventory(base, CatalogOptions(privileges=False))}
    assert "default privileges" not in kinds
    assert "default privileges" in {o.kind for o in await inventory(base)}


async def test_grant_order_and_an_explicit_default_acl_are_no_drift(
    base_template: str, two_databases: tuple[Database, Database]
) -> None:
    a, b = two_databases
    a.sql(
        "CREATE TABLE t (x integer);"
        "GRANT SELECT ON t TO catalog_reader; GRANT SELECT ON t TO catalog_owner;"
        "CREATE TABLE u (x integer)"
    )
    b.sql(
        "CREATE TABLE t (x integer);"
        "GRANT SELECT ON t TO catalog_owner; GRANT SELECT ON t TO catalog_reader;"
        "CREATE TABLE u (x integer); GRANT ALL ON u TO PUBLIC; REVOKE ALL ON u FROM PUBLIC"
    )
    raw_acls = "SELECT relname, relacl FROM pg_class WHERE relname IN ('t', 'u') ORDER BY 1"
    assert a.sql(raw_acls) != b.sql(raw_acls)  # the catalogs really differ
    assert not compare(await inventory(a), await inventory(b))


ACL_T_LINES = [  # as the per-row subquery wrote them before the set-based query
    "GRANT INSERT, SELECT ON TABLE app.acl_t TO catalog_reader WITH GRANT OPTION",
    "GRANT SELECT ON TABLE app.acl_t TO PUBLIC GRANTED BY catalog_reader",
    "REVOKE DELETE, TRUNCATE, UPDATE ON TABLE app.acl_t FROM catalog_owner",
    "GRANT UPDATE (y) ON TABLE app.acl_t TO catalog_reader",
]


async def test_table_privileges_read_as_sorted_grant_and_revoke_lines(base: Database) -> None:
    # Revoked from the owner, granted with grant option, granted on by a non-owner, to PUBLIC,
    # on a column: every part of the line format, for tables and their columns alike.
    base.sql(
        "GRANT USAGE ON SCHEMA app TO catalog_reader; CREATE TABLE app.acl_t (x integer, y text);"
        "ALTER TABLE app.acl_t OWNER TO catalog_owner;"
        "REVOKE UPDATE, DELETE, TRUNCATE ON app.acl_t FROM catalog_owner;"
        "GRANT SELECT, INSERT ON app.acl_t TO catalog_reader WITH GRANT OPTION;"
        "GRANT UPDATE (y) ON app.acl_t TO catalog_reader;"
        "SET ROLE catalog_reader; GRANT SELECT ON app.acl_t TO PUBLIC; RESET ROLE"
    )
    table = (await inventory(base)).objects["table app.acl_t"].definition
    acl = [line for line in table.splitlines() if line.startswith(("GRANT", "REVOKE"))]
    assert acl == ACL_T_LINES


async def test_schema_filter_keeps_only_those_schemas_and_extensions(base: Database) -> None:
    inv = await inventory(base, CatalogOptions(schemas=("empty_schema",)))
    assert {(o.kind, o.name) for o in inv} == {
        ("schema", "empty_schema"),
        ("extension", "pg_trgm"),
        ("extension", "plpgsql"),
    }


async def test_changes_outside_the_filtered_schemas_are_no_drift(base: Database) -> None:
    only_app = CatalogOptions(schemas=("app",))
    assert not await drift_after(base, "CREATE TABLE public.elsewhere ()", only_app)
    assert await drift_after(base, "CREATE TABLE app.here ()", only_app)
    without_app = CatalogOptions(exclude_schemas=("app",))
    assert not await drift_after(base, "ALTER TABLE app.trails ADD COLUMN z int", without_app)
    assert await drift_after(base, "CREATE TABLE public.t ()", without_app)


async def test_exclude_schema_drops_everything_in_it(base: Database) -> None:
    inv = await inventory(base, CatalogOptions(exclude_schemas=("app",)))
    assert not [o for o in inv if o.name.startswith("app.") or " ON app." in o.name]
    assert "event trigger" in {o.kind for o in inv}  # database-wide objects stay


async def test_postgis_and_pgrouting_members_are_not_in_the_inventory(db: Database) -> None:
    db.sql("CREATE EXTENSION postgis; CREATE EXTENSION pgrouting")
    inv = await inventory(db)
    assert {(o.kind, o.name) for o in inv} == {
        ("schema", "public"),
        ("extension", "plpgsql"),
        ("extension", "postgis"),
        ("extension", "pgrouting"),
    }
    version = db.sql("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").strip()
    assert f"VERSION '{version}'" in inv.objects["extension postgis"].definition
    drift = await drift_after(
        db, "CREATE TABLE trails (id integer, geom geometry(LineString, 4326))"
    )
    assert changes(drift) == {("table", "public.trails", ADDED)}


async def test_the_same_sql_in_two_databases_is_no_drift(
    base_template: str, two_databases: tuple[Database, Database]
) -> None:
    a, b = two_databases
    for d in (a, b):
        d.sql(BASE_SQL)
    one, two = await inventory(a), await inventory(b)
    assert not compare(one, two)
    assert set(one.counts()) == {kind for kind, *_ in CASES}  # every family is really there


# Every shape of index the catalog builds itself or hands to pg_get_indexdef.
INDEX_SHAPES_SQL = """
CREATE EXTENSION pg_trgm;
CREATE DOMAIN dint AS integer;
CREATE TABLE "Weird T" ("Col A" integer, "select" text COLLATE "C", n numeric, ts timestamptz,
                        dd dint, v varchar, bp char(3), r int4range, arr text[], j jsonb);
CREATE INDEX "Idx 1" ON "Weird T" ("Col A" DESC NULLS FIRST, "select") INCLUDE (n, ts);
CREATE INDEX ON "Weird T" (n NULLS FIRST, ts DESC NULLS LAST);
CREATE INDEX ON "Weird T" ("select");
CREATE INDEX ON "Weird T" ("select" COLLATE "POSIX");
CREATE INDEX ON "Weird T" USING hash (n);
CREATE INDEX ON "Weird T" USING brin (ts);
CREATE INDEX ON "Weird T" USING gist (r);
CREATE INDEX ON "Weird T" (dd);
CREATE INDEX ON "Weird T" (bp);
CREATE INDEX ON "Weird T" (v);
CREATE INDEX ON "Weird T" (v varchar_pattern_ops);
CREATE INDEX ON "Weird T" (lower(v));
CREATE INDEX ON "Weird T" (n) WITH (fillfactor = 70);
CREATE INDEX ON "Weird T" (ts) WHERE ts > '2020-01-01' AND n IS NOT NULL OR "Col A" = 3;
CREATE INDEX ON "Weird T" ("Col A") WHERE "select" <> 'x';
CREATE INDEX ON "Weird T" USING gin (arr);
CREATE INDEX ON "Weird T" USING gin (j);
CREATE INDEX ON "Weird T" USING gin (j jsonb_path_ops);
CREATE INDEX ON "Weird T" USING gist (v gist_trgm_ops (siglen = 32));
CREATE INDEX ON "Weird T" USING gin (v gin_trgm_ops);
CREATE UNIQUE INDEX ON "Weird T" (n, ts);
CREATE UNIQUE INDEX ON "Weird T" (bp) NULLS NOT DISTINCT;
CREATE TABLE p (a integer, b text) PARTITION BY RANGE (a);
CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);
CREATE INDEX ON p (a, b);
CREATE INDEX ON ONLY p (b);
CREATE SCHEMA "S 2";
CREATE TABLE "S 2"."T" (x int8, y float8, z oid, w name, u uuid, b bytea, bo bool);
CREATE INDEX ON "S 2"."T" (x, y, z, w, u, b, bo);
CREATE INDEX ON "S 2"."T" (x DESC);
"""


async def test_index_definitions_built_from_the_catalog_read_as_pg_get_indexdef(
    db: Database,
) -> None:
    db.sql(INDEX_SHAPES_SQL)
    conn = await connect(db.conninfo)
    try:
        await conn.execute("SET search_path = ''")
        rows = await conn.fetch(catalog_queries.INDEX_DEF_CHECK, [], [])
    finally:
        await conn.close()
    assert len(rows) == 27
    assert [(r["name"], r["built"]) for r in rows] == [(r["name"], r["deparsed"]) for r in rows]
    built = {r["name"] for r in rows if r["from_catalog"]}
    # Plain columns of any access method, orders, INCLUDE, predicates, partitioned parents:
    assert {'public."Idx 1"', 'public."Weird T_ts_idx1"', "public.p_b_idx"} <= built
    assert "public.p1_a_b_idx" in built
    assert '"S 2"."T_x_y_z_w_u_b_bo_idx"' in built and 'public."Weird T_v_idx"' in built  # text_ops
    # Expressions, non-default classes or collations, options, domains, unique: deparsed.
    assert (
        not {
            'public."Weird T_lower_idx"',
            'public."Weird T_v_idx1"',
            'public."Weird T_select_idx1"',
            'public."Weird T_n_idx1"',
            'public."Weird T_dd_idx"',
            'public."Weird T_n_ts_idx1"',
        }
        & built
    )


async def test_partitioned_tables_and_their_indexes_are_objects(db: Database) -> None:
    # A partitioned table's key columns depend internally on the table itself: that is no
    # reason to leave the table out as "made for another object".
    db.sql(
        "CREATE TABLE m (city integer, day date NOT NULL) PARTITION BY RANGE (day);"
        "CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');"
        "CREATE INDEX m_day_idx ON m (day)"
    )
    inv = await inventory(db)
    parent = inv.objects["table public.m"].definition
    assert "PARTITION BY RANGE (day)" in parent
    assert "CREATE INDEX m_day_idx ON ONLY public.m USING btree (day)" in (
        inv.objects["index public.m_day_idx"].definition
    )
    assert "PARTITION OF public.m FOR VALUES" in inv.objects["table public.m_2024"].definition
    drift = await drift_after(db, "ALTER TABLE m ADD COLUMN note text")
    assert ("table", "public.m", CHANGED) in changes(drift)
