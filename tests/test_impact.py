"""What a drift means: each single change through `compare` on a real PostgreSQL, with the
impact and the reasons a person reads without the diff; renames of every kind, both ways,
and the near-misses that must stay a removed plus an added object.

One database (tests/fixtures/impact.sql) serves every case: each change runs inside a
transaction, the catalog is read in that same transaction (it sees its own DDL) and the
transaction is rolled back. No database is created per case, so ~100 cases take seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import NamedTuple

import asyncpg
import pytest

from service.compare.casts import IMPLICIT_CASTS
from service.compare.drift import Change, Drift, compare
from service.compare.inventory import Inventory
from service.demo.cluster import ScratchCluster
from service.production.catalog import CatalogOptions, load_inventory
from tests.conftest import FIXTURES

ROLE_SQL = """DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'impact_reader') THEN
        CREATE ROLE impact_reader;
    END IF;
END $$"""
DATABASE = "impact_cases"

# (change, kind, name, impact, reasons[, from])
Item = tuple[str, ...] | tuple[str, str, str, str, tuple[str, ...]]


class Case(NamedTuple):
    what: str
    change: str
    expected: list[tuple[object, ...]]


def changed(kind: str, name: str, impact: str, *reasons: str) -> tuple[object, ...]:
    return ("changed", kind, name, impact, reasons, None)


def added(kind: str, name: str, impact: str, *reasons: str) -> tuple[object, ...]:
    return ("added", kind, name, impact, reasons, None)


def removed(kind: str, name: str, impact: str, *reasons: str) -> tuple[object, ...]:
    return ("removed", kind, name, impact, reasons, None)


def renamed(kind: str, was: str, name: str, impact: str, *reasons: str) -> tuple[object, ...]:
    return ("renamed", kind, name, impact, reasons, was)


T, P, M = "app.trails", "app.plain", "app.measures"
ROUTE = "app.route_length(integer, integer)"
FOLLOWS_TRAILS = "follows table app.trails renamed to app.paths"

CASES: list[Case] = [
    # -- columns: types (implicitly castable both ways or not), limits, NOT NULL, defaults
    Case("column dropped", "ALTER TABLE app.plain DROP COLUMN b", [
        changed("table", P, "breaking", "column b dropped")]),
    Case("integer -> bigint: not castable back", "ALTER TABLE app.plain ALTER a TYPE bigint", [
        changed("table", P, "breaking", "column a: integer -> bigint")]),
    Case("text -> varchar: castable both ways", "ALTER TABLE app.measures ALTER tag TYPE varchar", [
        changed("table", M, "compatible", "column tag: text -> character varying")]),
    Case("varchar(10) -> text", "ALTER TABLE app.trails ALTER code TYPE text", [
        changed("table", T, "compatible", "column code: character varying(10) -> text")]),
    Case("varchar widened", "ALTER TABLE app.trails ALTER code TYPE varchar(20)", [
        changed("table", T, "compatible",
                "column code: character varying(10) -> character varying(20)")]),
    Case("varchar narrowed", "ALTER TABLE app.trails ALTER code TYPE varchar(5)", [
        changed("table", T, "breaking",
                "column code: character varying(10) -> character varying(5)")]),
    Case("numeric widened", "ALTER TABLE app.measures ALTER v TYPE numeric(10,2)", [
        changed("table", M, "compatible", "column v: numeric(8,2) -> numeric(10,2)")]),
    Case("numeric loses integer digits", "ALTER TABLE app.measures ALTER v TYPE numeric(6,2)", [
        changed("table", M, "breaking", "column v: numeric(8,2) -> numeric(6,2)")]),
    Case("numeric loses a decimal", "ALTER TABLE app.measures ALTER v TYPE numeric(9,1)", [
        changed("table", M, "behavioural", "column v: numeric(8,2) -> numeric(9,1)")]),
    Case("timestamp precision cut", "ALTER TABLE app.measures ALTER at TYPE timestamp(0)", [
        changed("table", M, "behavioural",
                "column at: timestamp(3) without time zone -> timestamp(0) without time zone")]),
    Case("timestamp -> timestamptz", "ALTER TABLE app.measures ALTER at TYPE timestamptz(3)", [
        changed("table", M, "breaking",
                "column at: timestamp(3) without time zone -> timestamp(3) with time zone")]),
    Case("text -> integer", "ALTER TABLE app.plain ALTER b TYPE integer USING 0", [
        changed("table", P, "breaking", "column b: text -> integer")]),
    Case("enum column -> text", "ALTER TABLE app.trails ALTER mood TYPE text", [
        changed("table", T, "breaking", "column mood: app.mood -> text")]),
    Case("column added NOT NULL without a default",
         "ALTER TABLE app.plain ADD COLUMN c integer NOT NULL", [
        changed("table", P, "breaking", "column c added NOT NULL without a default")]),
    Case("column added NOT NULL with a default",
         "ALTER TABLE app.plain ADD COLUMN c integer NOT NULL DEFAULT 0", [
        changed("table", P, "compatible", "column c added")]),
    Case("identity column added",
         "ALTER TABLE app.plain ADD COLUMN c integer GENERATED ALWAYS AS IDENTITY", [
        changed("table", P, "compatible", "column c added")]),
    Case("NOT NULL dropped", "ALTER TABLE app.trails ALTER name DROP NOT NULL", [
        changed("table", T, "compatible", "NOT NULL dropped from column name")]),
    Case("default dropped from a NOT NULL column",
         "ALTER TABLE app.trails ALTER name DROP DEFAULT", [
        changed("table", T, "breaking",
                "column name: default dropped from a NOT NULL column: inserts without it fail")]),
    Case("default changed", "ALTER TABLE app.trails ALTER name SET DEFAULT 'x'", [
        changed("table", T, "behavioural", "column name: default changed")]),
    Case("identity dropped", "ALTER TABLE app.trails ALTER id DROP IDENTITY", [
        changed("table", T, "breaking", "column id: identity dropped: inserts without it fail")]),
    Case("identity GENERATED BY DEFAULT -> ALWAYS",
         "ALTER TABLE app.segments ALTER id DROP DEFAULT, "
         "ALTER id ADD GENERATED ALWAYS AS IDENTITY", [
        changed("table", "app.segments", "breaking", "column id: identity GENERATED ALWAYS added",
                "column id: default dropped")]),  # the worst reason first
    Case("identity sequence renamed", "ALTER SEQUENCE app.trails_id_seq RENAME TO trails_ident", [
        changed("table", T, "breaking",
                "column id: identity sequence app.trails_id_seq renamed to app.trails_ident")]),
    Case("column order changed (dropped and added back)",
         "ALTER TABLE app.plain DROP COLUMN a; ALTER TABLE app.plain ADD COLUMN a integer", [
        changed("table", P, "breaking", "column order changed")]),
    # -- column renames: the table says it, what refers to the column follows it
    Case("column renamed", "ALTER TABLE app.trails RENAME COLUMN region TO area", [
        changed("index", "app.trails_region_idx", "cosmetic",
                "follows column region of app.trails renamed to area"),
        changed("policy", "trail_reader ON app.trails", "cosmetic",
                "follows column region of app.trails renamed to area"),
        changed("table", T, "breaking", "column region renamed to area")]),
    Case("column renamed, a view reads it", "ALTER TABLE app.trails RENAME length_km TO km", [
        changed("table", T, "breaking", "column length_km renamed to km"),
        changed("view", "app.long_trails", "behavioural", "view query changed")]),
    Case("column owning a sequence renamed", "ALTER TABLE app.trails RENAME serial_no TO number", [
        changed("sequence", "app.ticket", "cosmetic",
                "follows column serial_no of app.trails renamed to number"),
        changed("table", T, "breaking", "column serial_no renamed to number")]),
    Case("column named in a foreign key renamed",
         "ALTER TABLE app.segments RENAME COLUMN trail_id TO path_id", [
        changed("table", "app.segments", "breaking", "column trail_id renamed to path_id")]),
    # -- constraints
    Case("CHECK added", "ALTER TABLE app.plain ADD CONSTRAINT a_small CHECK (a < 10)", [
        changed("table", P, "breaking", "CHECK constraint a_small added")]),
    Case("CHECK dropped", "ALTER TABLE app.trails DROP CONSTRAINT trails_length_km_check", [
        changed("table", T, "compatible", "CHECK constraint trails_length_km_check dropped")]),
    Case("CHECK tightened",
         "ALTER TABLE app.trails DROP CONSTRAINT trails_length_km_check, "
         "ADD CONSTRAINT trails_length_km_check CHECK (length_km > 1)", [
        changed("table", T, "breaking", "CHECK constraint trails_length_km_check changed")]),
    Case("UNIQUE dropped", "ALTER TABLE app.trails DROP CONSTRAINT trails_code_key", [
        changed("table", T, "breaking",
                "UNIQUE constraint trails_code_key dropped: ON CONFLICT relying on it fails")]),
    Case("UNIQUE added", "ALTER TABLE app.plain ADD UNIQUE (a)", [
        changed("table", P, "breaking", "UNIQUE constraint plain_a_key added")]),
    Case("PRIMARY KEY added", "ALTER TABLE app.plain ADD PRIMARY KEY (a)", [
        changed("table", P, "breaking", "NOT NULL added to column a",
                "PRIMARY KEY plain_pkey added")]),
    Case("FOREIGN KEY added", "ALTER TABLE app.plain ADD FOREIGN KEY (a) REFERENCES app.trails", [
        changed("table", P, "breaking", "FOREIGN KEY plain_a_fkey added")]),
    Case("FOREIGN KEY ON DELETE CASCADE -> RESTRICT",
         "ALTER TABLE app.segments DROP CONSTRAINT segments_trail_id_fkey, "
         "ADD CONSTRAINT segments_trail_id_fkey FOREIGN KEY (trail_id) REFERENCES app.trails "
         "ON DELETE RESTRICT", [
        changed("table", "app.segments", "breaking",
                "FOREIGN KEY segments_trail_id_fkey: ON DELETE CASCADE -> RESTRICT")]),
    Case("CHECK renamed",
         "ALTER TABLE app.trails RENAME CONSTRAINT trails_length_km_check TO length_ok", [
        changed("table", T, "cosmetic",
                "CHECK constraint trails_length_km_check renamed to length_ok")]),
    Case("UNIQUE renamed",
         "ALTER TABLE app.trails RENAME CONSTRAINT trails_code_key TO code_once", [
        changed("table", T, "breaking", "UNIQUE constraint trails_code_key renamed to code_once")]),
    # -- table facts, privileges, comments
    Case("RLS enabled", "ALTER TABLE app.plain ENABLE ROW LEVEL SECURITY", [
        changed("table", P, "breaking", "row level security enabled")]),
    Case("replica identity NOTHING", "ALTER TABLE app.plain REPLICA IDENTITY NOTHING", [
        changed("table", P, "breaking",
                "replica identity NOTHING: UPDATE and DELETE fail while it is published")]),
    Case("SELECT revoked", "REVOKE SELECT ON app.trails FROM impact_reader", [
        changed("table", T, "breaking", "SELECT revoked from impact_reader")]),
    Case("UPDATE on a column granted", "GRANT UPDATE (note) ON app.trails TO impact_reader", [
        changed("table", T, "compatible", "UPDATE (note) granted to impact_reader")]),
    Case("grant option added", "GRANT SELECT ON app.trails TO impact_reader WITH GRANT OPTION", [
        changed("table", T, "compatible", "grant option on SELECT granted to impact_reader")]),
    Case("schema USAGE revoked", "REVOKE USAGE ON SCHEMA app FROM impact_reader", [
        changed("schema", "app", "breaking", "USAGE revoked from impact_reader")]),
    Case("comment changed", "COMMENT ON TABLE app.trails IS 'for walking'", [
        changed("table", T, "cosmetic", "comment changed")]),
    Case("column comment dropped", "COMMENT ON COLUMN app.trails.region IS NULL", [
        changed("table", T, "cosmetic", "comment on column app.trails.region removed")]),
    Case("table removed", "DROP TABLE app.plain", [
        removed("table", P, "breaking", "table removed")]),
    Case("table added", "CREATE TABLE app.fresh (a integer)", [
        added("table", "app.fresh", "compatible", "table added")]),
    # -- views
    Case("view loses an output column",
         "DROP VIEW app.long_trails; CREATE VIEW app.long_trails AS "
         "SELECT id, name FROM app.trails WHERE length_km > 10", [
        changed("view", "app.long_trails", "breaking", "output column length_km dropped",
                "view query changed")]),
    Case("view gains an output column",
         "CREATE OR REPLACE VIEW app.long_trails AS "
         "SELECT id, name, length_km, region FROM app.trails WHERE length_km > 10", [
        changed("view", "app.long_trails", "behavioural", "view query changed",
                "output column region added")]),
    Case("view output column retyped",
         "DROP VIEW app.long_trails; CREATE VIEW app.long_trails AS "
         "SELECT id::bigint AS id, name, length_km FROM app.trails WHERE length_km > 10", [
        changed("view", "app.long_trails", "breaking", "output column id: integer -> bigint",
                "view query changed")]),
    Case("view output column renamed", "ALTER VIEW app.long_trails RENAME COLUMN name TO title", [
        changed("view", "app.long_trails", "breaking", "output column name renamed to title",
                "view query changed")]),
    Case("materialized view query changed",
         "DROP MATERIALIZED VIEW app.trail_count; "
         "CREATE MATERIALIZED VIEW app.trail_count AS SELECT count(id) AS n FROM app.trails", [
        changed("materialized view", "app.trail_count", "behavioural",
                "materialized view query changed")]),
    # -- functions and procedures
    Case("function body changed",
         "CREATE OR REPLACE FUNCTION app.route_length(a integer, b integer DEFAULT 0) "
         "RETURNS integer LANGUAGE sql AS 'SELECT a + b + 1'", [
        changed("function", ROUTE, "behavioural", "function body changed")]),
    Case("function signature changed: one removed, one added",
         "DROP FUNCTION app.route_length(integer, integer); CREATE FUNCTION "
         "app.route_length(a bigint, b integer DEFAULT 0) RETURNS integer LANGUAGE sql "
         "AS 'SELECT (a + b)::integer'", [
        added("function", "app.route_length(bigint, integer)", "compatible", "function added"),
        removed("function", ROUTE, "breaking", "function removed")]),
    Case("function overload added",
         "CREATE FUNCTION app.route_length(a text) RETURNS integer LANGUAGE sql AS 'SELECT 1'", [
        added("function", "app.route_length(text)", "compatible", "function added")]),
    Case("function return type changed",
         "DROP FUNCTION app.route_length(integer, integer); CREATE FUNCTION "
         "app.route_length(a integer, b integer DEFAULT 0) RETURNS bigint LANGUAGE sql "
         "AS 'SELECT a + b'; GRANT EXECUTE ON FUNCTION app.route_length TO impact_reader", [
        changed("function", ROUTE, "breaking", "return type: integer -> bigint")]),
    Case("function argument default dropped",
         "DROP FUNCTION app.route_length(integer, integer); CREATE FUNCTION "
         "app.route_length(a integer, b integer) RETURNS integer LANGUAGE sql "
         "AS 'SELECT a + b'; GRANT EXECUTE ON FUNCTION app.route_length TO impact_reader", [
        changed("function", ROUTE, "breaking",
                "argument 2 (b integer): default dropped: calls that leave it out fail")]),
    Case("function argument renamed",
         "DROP FUNCTION app.route_length(integer, integer); CREATE FUNCTION "
         "app.route_length(x integer, b integer DEFAULT 0) RETURNS integer LANGUAGE sql "
         "AS 'SELECT x + b'; GRANT EXECUTE ON FUNCTION app.route_length TO impact_reader", [
        changed("function", ROUTE, "breaking", "argument 1: a integer -> x integer",
                "function body changed")]),
    Case("function SECURITY DEFINER and SET",
         "ALTER FUNCTION app.route_length SECURITY DEFINER SET search_path = app", [
        changed("function", ROUTE, "behavioural", "SECURITY DEFINER added",
                "SET search_path added")]),
    Case("EXECUTE revoked", "REVOKE EXECUTE ON FUNCTION app.route_length FROM impact_reader", [
        changed("function", ROUTE, "breaking", "EXECUTE revoked from impact_reader")]),
    Case("function removed", "DROP FUNCTION app.self_count(integer)", [
        removed("function", "app.self_count(integer)", "breaking", "function removed")]),
    Case("procedure body changed",
         "CREATE OR REPLACE PROCEDURE app.cleanup() LANGUAGE sql "
         "AS 'DELETE FROM app.segments WHERE y IS NULL'", [
        changed("procedure", "app.cleanup()", "behavioural", "procedure body changed")]),
    # -- types, domains, sequences
    Case("enum label renamed", "ALTER TYPE app.mood RENAME VALUE 'ok' TO 'fine'", [
        changed("type", "app.mood", "breaking", "enum label 'ok' renamed to 'fine'")]),
    Case("enum label added in the middle", "ALTER TYPE app.mood ADD VALUE 'meh' BEFORE 'ok'", [
        changed("type", "app.mood", "compatible", "enum label 'meh' added")]),
    Case("composite attribute added", "ALTER TYPE app.point2 ADD ATTRIBUTE z integer", [
        changed("type", "app.point2", "breaking", "attribute z added")]),
    Case("composite attribute dropped", "ALTER TYPE app.point2 DROP ATTRIBUTE y", [
        changed("type", "app.point2", "breaking", "attribute y dropped")]),
    Case("domain CHECK dropped", "ALTER DOMAIN app.posint DROP CONSTRAINT positive", [
        changed("domain", "app.posint", "compatible", "CHECK constraint positive dropped")]),
    Case("sequence increment", "ALTER SEQUENCE app.ticket INCREMENT BY 5", [
        changed("sequence", "app.ticket", "behavioural", "INCREMENT BY 1 -> 5")]),
    Case("sequence bound lowered", "ALTER SEQUENCE app.ticket MAXVALUE 1000", [
        changed("sequence", "app.ticket", "behavioural",
                "MAXVALUE 9223372036854775807 -> 1000")]),
    # -- indexes, triggers, policies
    Case("index added", "CREATE INDEX plain_a_idx ON app.plain (a)", [
        added("index", "app.plain_a_idx", "compatible", "index added")]),
    Case("unique index added", "CREATE UNIQUE INDEX plain_a_idx ON app.plain (a)", [
        added("index", "app.plain_a_idx", "breaking",
              "unique index added: duplicate values are refused")]),
    Case("index removed", "DROP INDEX app.trails_region_idx", [
        removed("index", "app.trails_region_idx", "behavioural",
                "index removed: queries that used it get slower")]),
    Case("index changed",
         "DROP INDEX app.trails_region_idx; "
         "CREATE INDEX trails_region_idx ON app.trails (region, name)", [
        changed("index", "app.trails_region_idx", "behavioural",
                "index definition changed: query plans change")]),
    Case("trigger added",
         "CREATE TRIGGER plain_touch BEFORE UPDATE ON app.plain "
         "FOR EACH ROW EXECUTE FUNCTION app.touch()", [
        added("trigger", "plain_touch ON app.plain", "behavioural", "trigger added")]),
    Case("trigger disabled", "ALTER TABLE app.trails DISABLE TRIGGER trail_touch", [
        changed("trigger", "trail_touch ON app.trails", "behavioural", "trigger disabled")]),
    Case("trigger removed", "DROP TRIGGER trail_touch ON app.trails", [
        removed("trigger", "trail_touch ON app.trails", "behavioural", "trigger removed")]),
    Case("policy roles narrowed", "ALTER POLICY trail_reader ON app.trails TO postgres", [
        changed("policy", "trail_reader ON app.trails", "breaking",
                "TO impact_reader -> postgres")]),
    Case("policy roles widened", "ALTER POLICY trail_reader ON app.trails TO PUBLIC", [
        changed("policy", "trail_reader ON app.trails", "compatible",
                "TO impact_reader -> PUBLIC")]),
    Case("policy made stricter", "ALTER POLICY trail_reader ON app.trails USING (region = 'n')", [
        changed("policy", "trail_reader ON app.trails", "breaking",
                "USING expression changed: rows allowed differ")]),
    Case("restrictive policy added",
         "CREATE POLICY only_named ON app.trails AS RESTRICTIVE USING (name <> '')", [
        added("policy", "only_named ON app.trails", "breaking",
              "restrictive policy added: fewer rows pass")]),
    Case("permissive policy removed", "DROP POLICY trail_reader ON app.trails", [
        removed("policy", "trail_reader ON app.trails", "breaking",
                "permissive policy removed: rows it let through are refused")]),
    # -- renames of every kind the issue names: one item, `from` the old name
    Case("table renamed", "ALTER TABLE app.plain RENAME TO simple", [
        renamed("table", P, "app.simple", "breaking", "table app.plain renamed to app.simple")]),
    Case("table renamed: what holds its name follows", "ALTER TABLE app.trails RENAME TO paths", [
        changed("index", "app.trails_region_idx", "cosmetic", FOLLOWS_TRAILS),
        changed("materialized view", "app.trail_count", "cosmetic", FOLLOWS_TRAILS),
        renamed("policy", "trail_reader ON app.trails", "trail_reader ON app.paths", "cosmetic",
                FOLLOWS_TRAILS),
        changed("sequence", "app.ticket", "cosmetic", FOLLOWS_TRAILS),
        renamed("table", T, "app.paths", "breaking", "table app.trails renamed to app.paths"),
        changed("table", "app.segments", "cosmetic", FOLLOWS_TRAILS),
        renamed("trigger", "trail_touch ON app.trails", "trail_touch ON app.paths", "cosmetic",
                FOLLOWS_TRAILS),
        changed("view", "app.long_trails", "cosmetic", FOLLOWS_TRAILS)]),
    Case("table moved to another schema with its sequence",
         "ALTER TABLE app.segments SET SCHEMA spare", [
        renamed("sequence", "app.segments_id_seq", "spare.segments_id_seq", "breaking",
                "sequence app.segments_id_seq renamed to spare.segments_id_seq"),
        renamed("table", "app.segments", "spare.segments", "breaking",
                "table app.segments renamed to spare.segments")]),
    Case("view renamed", "ALTER VIEW app.long_trails RENAME TO longer_trails", [
        renamed("view", "app.long_trails", "app.longer_trails", "breaking",
                "view app.long_trails renamed to app.longer_trails")]),
    Case("materialized view renamed", "ALTER MATERIALIZED VIEW app.trail_count RENAME TO counted", [
        renamed("materialized view", "app.trail_count", "app.counted", "breaking",
                "materialized view app.trail_count renamed to app.counted")]),
    Case("function renamed", "ALTER FUNCTION app.route_length RENAME TO path_length", [
        renamed("function", ROUTE, "app.path_length(integer, integer)", "breaking",
                f"function {ROUTE} renamed to app.path_length(integer, integer)")]),
    Case("recursive function renamed: its body still calls the old name",
         "ALTER FUNCTION app.self_count RENAME TO count_self", [
        renamed("function", "app.self_count(integer)", "app.count_self(integer)", "breaking",
                "function app.self_count(integer) renamed to app.count_self(integer)")]),
    Case("procedure renamed", "ALTER PROCEDURE app.cleanup() RENAME TO tidy", [
        renamed("procedure", "app.cleanup()", "app.tidy()", "breaking",
                "procedure app.cleanup() renamed to app.tidy()")]),
    Case("type renamed", "ALTER TYPE app.mood RENAME TO feeling", [
        changed("table", T, "cosmetic", "follows type app.mood renamed to app.feeling"),
        renamed("type", "app.mood", "app.feeling", "breaking",
                "type app.mood renamed to app.feeling")]),
    Case("domain renamed", "ALTER DOMAIN app.posint RENAME TO positive_int", [
        renamed("domain", "app.posint", "app.positive_int", "breaking",
                "domain app.posint renamed to app.positive_int")]),
    Case("sequence renamed", "ALTER SEQUENCE app.ticket RENAME TO ticket_no", [
        renamed("sequence", "app.ticket", "app.ticket_no", "breaking",
                "sequence app.ticket renamed to app.ticket_no"),
        changed("table", T, "cosmetic", "follows sequence app.ticket renamed to app.ticket_no")]),
    Case("index renamed: no client names an index",
         "ALTER INDEX app.trails_region_idx RENAME TO by_region", [
        renamed("index", "app.trails_region_idx", "app.by_region", "cosmetic",
                "index app.trails_region_idx renamed to app.by_region")]),
    Case("trigger renamed", "ALTER TRIGGER trail_touch ON app.trails RENAME TO trail_stamp", [
        renamed("trigger", "trail_touch ON app.trails", "trail_stamp ON app.trails", "cosmetic",
                "trigger trail_touch ON app.trails renamed to trail_stamp ON app.trails")]),
    Case("policy renamed", "ALTER POLICY trail_reader ON app.trails RENAME TO readers", [
        renamed("policy", "trail_reader ON app.trails", "readers ON app.trails", "cosmetic",
                "policy trail_reader ON app.trails renamed to readers ON app.trails")]),
    # -- near-misses: similar is not the same
    Case("renamed and changed: two objects", "ALTER TABLE app.plain RENAME TO simple; "
         "ALTER TABLE app.simple ADD COLUMN c integer", [
        removed("table", P, "breaking", "table removed"),
        added("table", "app.simple", "compatible", "table added")]),
    Case("dropped and a different one created",
         "DROP TABLE app.plain; CREATE TABLE app.other (a integer, b varchar)", [
        added("table", "app.other", "compatible", "table added"),
        removed("table", P, "breaking", "table removed")]),
    Case("two equal candidates: no guess",
         "DROP TABLE app.twin_one; CREATE TABLE app.twin_a (v integer); "
         "CREATE TABLE app.twin_b (v integer)", [
        added("table", "app.twin_a", "compatible", "table added"),
        added("table", "app.twin_b", "compatible", "table added"),
        removed("table", "app.twin_one", "breaking", "table removed")]),
    Case("function renamed and its body changed",
         "DROP FUNCTION app.self_count(integer); "
         "CREATE FUNCTION app.count_self(n integer) RETURNS integer LANGUAGE sql AS 'SELECT n'", [
        added("function", "app.count_self(integer)", "compatible", "function added"),
        removed("function", "app.self_count(integer)", "breaking", "function removed")]),
    Case("a sequence renamed while the table's default names another",
         "ALTER SEQUENCE app.ticket RENAME TO ticket_no; CREATE SEQUENCE app.ticket; "
         "ALTER TABLE app.trails ALTER serial_no SET DEFAULT nextval('app.ticket')", [
        changed("sequence", "app.ticket", "behavioural",
                "START WITH 100 -> 1", "OWNED BY app.trails.serial_no -> none"),
        added("sequence", "app.ticket_no", "compatible", "sequence added")]),
]  # fmt: skip
# The schema rename moves every object: its own test below reads the whole answer.
SCHEMA_RENAME = "ALTER SCHEMA app RENAME TO application"


def seen(drift: Drift) -> list[tuple[object, ...]]:
    return [
        (i.change.value, i.kind, i.name, i.impact.value, i.reasons, i.from_name)
        for i in drift.items
    ]


@pytest.fixture(scope="module")
def database(cluster: ScratchCluster) -> Iterator[str]:
    cluster.psql("postgres", ROLE_SQL)
    cluster.drop_database(DATABASE)
    cluster.create_database(DATABASE, FIXTURES / "impact.sql")
    yield DATABASE
    cluster.drop_database(DATABASE)


async def _changed(conn: asyncpg.Connection, sql: str) -> Inventory:
    """The inventory with `sql` applied, read in its own transaction, then rolled back."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(sql)
        return await load_inventory(conn, CatalogOptions())
    finally:
        await transaction.rollback()


class Seen(NamedTuple):
    forward: Drift
    backward: Drift


@pytest.fixture(scope="module")
async def outcomes(
    cluster: ScratchCluster, database: str
) -> AsyncIterator[tuple[Inventory, dict[str, Seen | BaseException]]]:
    # A writable session: the catalog reader's own sessions are read-only.
    conn = await asyncpg.connect(cluster.dsn(database))
    try:
        base = await load_inventory(conn, CatalogOptions())
        found: dict[str, Seen | BaseException] = {}
        for case in [*CASES, Case("schema renamed", SCHEMA_RENAME, [])]:
            try:
                after = await _changed(conn, case.change)
                found[case.what] = Seen(compare(base, after), compare(after, base))
            except Exception as exc:  # reported by the case's own test
                found[case.what] = exc
        yield base, found
    finally:
        await conn.close()


def _outcome(found: dict[str, Seen | BaseException], what: str) -> Seen:
    outcome = found[what]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_a_change_says_what_it_means(
    outcomes: tuple[Inventory, dict[str, Seen | BaseException]], case: Case
) -> None:
    outcome = _outcome(outcomes[1], case.what)
    assert seen(outcome.forward) == case.expected
    # The impact of the item is the worst of its reasons', and the headline counts it.
    for item in outcome.forward.items:
        assert item.reasons, item


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if any(e[0] == "renamed" for e in c.expected)],
    ids=lambda c: c.what,
)
def test_a_rename_one_way_is_a_rename_the_other_way(
    outcomes: tuple[Inventory, dict[str, Seen | BaseException]], case: Case
) -> None:
    outcome = _outcome(outcomes[1], case.what)
    there = {(i.kind, i.from_name, i.name, i.impact) for i in outcome.forward.items if i.from_name}
    back = {(i.kind, i.name, i.from_name, i.impact) for i in outcome.backward.items if i.from_name}
    assert there == back and there
    assert {i.change for i in outcome.backward.items} <= {Change.RENAMED, Change.CHANGED}


def test_a_schema_renamed_is_one_breaking_rename_and_its_objects_follow(
    outcomes: tuple[Inventory, dict[str, Seen | BaseException]],
) -> None:
    base, found = outcomes
    outcome = _outcome(found, "schema renamed")
    for drift, was, now in ((outcome.forward, "app", "application"),
                            (outcome.backward, "application", "app")):  # fmt: skip
        items = drift.items
        assert {i.change for i in items} == {Change.RENAMED}
        moved = [o for o in base if o.name.startswith("app.") or " ON app." in o.name]
        assert len(items) == len(moved) + 1  # and the schema
        [schema] = [i for i in items if i.kind == "schema"]
        assert (schema.from_name, schema.name, schema.impact.value) == (was, now, "breaking")
        followers = [i for i in items if i.kind != "schema"]
        assert {i.impact.value for i in followers} == {"cosmetic"}
        assert {i.reasons for i in followers} == {(f"follows schema {was} renamed to {now}",)}
        assert drift.headline() == f"{len(items)} changes (1 breaking, {len(items) - 1} cosmetic)"


def test_the_implicit_cast_table_is_the_servers(cluster: ScratchCluster) -> None:
    rows = cluster.psql(
        "postgres",
        "SELECT format_type(castsource, NULL) || '|' || format_type(casttarget, NULL) "
        "FROM pg_catalog.pg_cast WHERE castcontext = 'i' AND oid < 16384",
    ).split("\n")
    server = {tuple(r.split("|")) for r in rows if r}
    ours = {(source, target) for source, targets in IMPLICIT_CASTS.items() for target in targets}
    assert ours == server
