"""Every family pg_dump emits is in the inventory, and every single difference is named.

The coverage test is structural: it dumps a database holding an object of every family with
`pg_dump -Fc --schema-only`, lists its table of contents with `pg_restore -l`, and demands
an inventory object for each entry (service/production/dump_coverage.py says which kinds hold
which entry, or why an entry is left out). The single-difference table (single_differences.py)
then checks, pair by pair, that pg_dump's output differs exactly when compare reports drift,
and that compare names the one object that differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NamedTuple

import asyncpg
import pytest

from service.compare.drift import compare
from service.compare.inventory import Inventory
from service.demo.cluster import ScratchCluster
from service.production.catalog import CatalogOptions, load_inventory
from service.production.conninfo import LIBPQ_ENV
from service.production.db import connect
from service.production.dump_coverage import OUTSIDE_INVENTORY, TOC_KINDS
from tests.conftest import FIXTURES
from tests.impact_expectations import IMPACT
from tests.single_differences import PAIRS, Pair

TEMPLATE = "every_family"
OPTIONS = CatalogOptions()
ROLES_SQL = """DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fam_reader') THEN
        CREATE ROLE fam_reader;
    END IF;
END $$"""
SUBSCRIPTION_SQL = (
    "CREATE SUBSCRIPTION fam_sub CONNECTION 'dbname=nowhere password=hunter2' "
    "PUBLICATION p WITH (connect = false);"
    "CREATE SUBSCRIPTION fam_uri CONNECTION 'postgresql://bob:hunter3@nowhere/db' "
    "PUBLICATION p WITH (connect = false)"
)
# A subscription keeps its database from being dropped until it lets go of its slot.
DROP_SUBSCRIPTIONS = """DO $$ DECLARE s text; BEGIN
    FOR s IN SELECT quote_ident(subname) FROM pg_subscription
             WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    LOOP
        EXECUTE 'ALTER SUBSCRIPTION ' || s || ' DISABLE';
        EXECUTE 'ALTER SUBSCRIPTION ' || s || ' SET (slot_name = NONE)';
        EXECUTE 'DROP SUBSCRIPTION ' || s;
    END LOOP;
END $$"""
# Like the conformance runner: comments, SET lines and \restrict keys are not schema.
SKIP_LINES = ("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict")
# Kinds whose objects are one pg_dump entry each: counted both ways, so the inventory holds
# neither fewer (missed) nor more (built-in or implicit objects pg_dump leaves out).
# Not extensions: the inventory reports plpgsql's version too, which pg_dump never writes.
ONE_ENTRY_EACH = {
    "OPERATOR": "operator",
    "OPERATOR CLASS": "operator class",
    "OPERATOR FAMILY": "operator family",
    "TEXT SEARCH PARSER": "text search parser",
    "TEXT SEARCH TEMPLATE": "text search template",
    "TEXT SEARCH DICTIONARY": "text search dictionary",
    "TEXT SEARCH CONFIGURATION": "text search configuration",
    "CONVERSION": "conversion",
    "ACCESS METHOD": "access method",
    "PROCEDURAL LANGUAGE": "language",
    "TRANSFORM": "transform",
    "USER MAPPING": "user mapping",
    "SUBSCRIPTION": "subscription",
    "COLLATION": "collation",
    "STATISTICS": "statistics",
    "EVENT TRIGGER": "event trigger",
    "PUBLICATION": "publication",
    "CAST": "cast",
    "FUNCTION": "function",
    "PROCEDURE": "procedure",
    "AGGREGATE": "aggregate",
    "FOREIGN DATA WRAPPER": "foreign data wrapper",
    "SERVER": "server",
    "FOREIGN TABLE": "foreign table",
    "VIEW": "view",
    "MATERIALIZED VIEW": "materialized view",
    "INDEX": "index",
    "TRIGGER": "trigger",
    "RULE": "rule",
    "POLICY": "policy",
    "DOMAIN": "domain",
    "DEFAULT ACL": "default privileges",
}
DATABASE_WIDE = {
    "access method",
    "language",
    "transform",
    "user mapping",
    "subscription",
    "event trigger",
    "foreign data wrapper",
    "server",
    "publication",
    "cast",
}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in LIBPQ_ENV}


async def _run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env()
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def dump_lines(cluster: ScratchCluster, db: str) -> list[str]:
    """The pg_dump oracle: the schema-only dump's statements, as the conformance runner reads."""
    out = await _run(str(cluster.bindir / "pg_dump"), "--schema-only", cluster.dsn(db))
    return [ln for ln in out.splitlines() if ln.strip() and not ln.startswith(SKIP_LINES)]


async def toc(cluster: ScratchCluster, db: str, *args: str) -> list[tuple[str, str, str, str]]:
    """pg_restore -l of a schema-only custom-format dump: (description, schema, tag, owner)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = str(Path(tmp) / "dump")
        await _run(
            str(cluster.bindir / "pg_dump"), "-Fc", "--schema-only", *args, "-f", archive,
            cluster.dsn(db),
        )  # fmt: skip
        listing = await _run(str(cluster.bindir / "pg_restore"), "-l", archive)
    descriptions = sorted(TOC_KINDS.keys() | OUTSIDE_INVENTORY.keys(), key=len, reverse=True)
    entries = []
    for line in listing.splitlines():
        if not (m := re.match(r"\d+; \d+ \d+ (.*) (\S*)$", line)):
            continue
        rest, owner = m.groups()
        desc = next((d for d in descriptions if rest.startswith(d + " ")), None)
        assert desc, f"pg_dump wrote an entry of a kind nobody decided about: {line!r}"
        schema, tag = rest[len(desc) + 1 :].split(" ", 1)
        entries.append((desc, schema, tag, owner))
    return entries


async def inventory(cluster: ScratchCluster, db: str, options: CatalogOptions) -> Inventory:
    conn = await connect(cluster.conninfo(db))
    try:
        return await load_inventory(conn, options)
    finally:
        await conn.close()


# Words that open the tag of a COMMENT, ACL or SECURITY LABEL entry, as descriptions.
_TARGETS = {"COLUMN": "TABLE", "FOREIGN SERVER": "SERVER", "LANGUAGE": "PROCEDURAL LANGUAGE"}


def _target(tag: str) -> str:
    """The object kind a COMMENT, ACL or SECURITY LABEL tag starts with (`TABLE plain`)."""
    words = sorted([*TOC_KINDS, *_TARGETS], key=len, reverse=True)
    return next(w for w in words if tag.startswith(w + " ") and TOC_KINDS.get(w) != ("*",))


def _unargued(name: str) -> str:
    """A routine's name without its argument list: `fam.f(a integer)` -> `fam.f(`."""
    return re.sub(r"\(.*\)$", "(", name)


def holders(desc: str, schema: str, tag: str, owner: str, inv: Inventory) -> list[str]:
    """The keys of the inventory objects holding this pg_dump entry (names here need no quotes)."""
    kinds = TOC_KINDS[desc]
    if kinds == ("*",):  # COMMENT / ACL: held by the object they name
        target = _target(tag)
        inner = tag[len(target) + 1 :]
        if target == "COLUMN":
            inner = inner.rsplit(".", 1)[0]
        if target == "CONSTRAINT":  # `CONSTRAINT c ON t` or `CONSTRAINT c ON DOMAIN d`
            inner = "x " + inner.split(" ON ", 1)[1].removeprefix("DOMAIN ")
        return holders(_TARGETS.get(target, target), schema, inner, owner, inv)
    if desc == "SECURITY LABEL":  # the tag names the object: `TABLE plain`, `COLUMN plain.a`
        what = _target(tag)
        rest = tag[len(what) + 1 :]
        on = f"{what} {schema}.{rest}" if schema != "-" else f"{what} {rest}"
        return [
            o.key
            for o in inv
            if o.kind in kinds and _unargued(o.name.split(" ON ", 1)[1]) == _unargued(on)
        ]
    qualified = f"{schema}.{tag}" if schema != "-" else tag
    first, _, second = tag.partition(" ")
    names: set[str]
    if desc in ("TRIGGER", "RULE", "POLICY"):
        names = {f"{second} ON {schema}.{first}"}
    elif desc.endswith("CONSTRAINT") or desc == "DEFAULT":
        names = {f"{schema}.{first}"}
    elif desc.startswith("PUBLICATION "):
        names = {first}
    elif desc in ("TRANSFORM", "CAST"):
        names = {tag.removeprefix(desc + " ")}
    elif desc == "USER MAPPING":
        user, server = tag.removeprefix("USER MAPPING ").split(" SERVER ")
        names = {f"FOR {'PUBLIC' if user == 'public' else user} SERVER {server}"}
    elif desc == "DEFAULT ACL":
        objects = tag.rsplit(" ", 1)[1]
        in_schema = f" IN SCHEMA {schema}" if schema != "-" else ""
        names = {f"FOR ROLE {owner}{in_schema} ON {objects}"}
    else:
        names = {qualified}
    found = []
    for obj in inv:
        if obj.kind not in kinds:
            continue
        operator = desc == "OPERATOR" and obj.name.startswith(qualified + "(")
        opclass = desc.startswith("OPERATOR ") and obj.name.startswith(qualified + " USING ")
        identity = desc == "SEQUENCE" and f"SEQUENCE NAME {qualified} " in obj.definition
        # COMMENT and ACL tags name a routine with its argument names, the inventory without
        routine = desc in ("FUNCTION", "PROCEDURE", "AGGREGATE") and (
            _unargued(obj.name) == _unargued(qualified)
        )
        if obj.name in names or operator or opclass or identity or routine:
            found.append(obj.key)
    return found


def uncovered(entries: list[tuple[str, str, str, str]], inv: Inventory) -> list[str]:
    """Every entry no inventory object holds, and every count that differs, as readable lines."""
    problems = [
        f"{desc} {schema} {tag}: no inventory object holds it"
        for desc, schema, tag, owner in entries
        if desc not in OUTSIDE_INVENTORY and not holders(desc, schema, tag, owner, inv)
    ]
    dumped = Counter(desc for desc, *_ in entries)
    held = inv.counts()
    for desc, kind in ONE_ENTRY_EACH.items():
        if dumped[desc] != held.get(kind, 0):
            problems.append(f"{dumped[desc]} {desc} entries, but {held.get(kind, 0)} {kind}")
    return problems


@pytest.fixture(scope="module")
def family_template(cluster: ScratchCluster) -> Iterator[str]:
    cluster.psql("postgres", ROLES_SQL)
    cluster.drop_database(TEMPLATE)
    cluster.create_database(TEMPLATE, FIXTURES / "every_family.sql")
    yield TEMPLATE
    cluster.drop_database(TEMPLATE)


@pytest.fixture
async def copies(cluster: ScratchCluster, family_template: str) -> AsyncIterator[list[str]]:
    """Copies of the template made on demand (append a name); dropped afterwards."""
    names: list[str] = []
    yield names
    admin = await asyncpg.connect(cluster.dsn("postgres"))
    try:
        for name in names:
            db = await asyncpg.connect(cluster.dsn(name))
            try:
                await db.execute(DROP_SUBSCRIPTIONS)
            finally:
                await db.close()
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def copy_of(cluster: ScratchCluster, template: str, name: str, sql: str = "") -> None:
    admin = await asyncpg.connect(cluster.dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    if sql:
        db = await asyncpg.connect(cluster.dsn(name))
        try:
            await db.execute(sql)
        finally:
            await db.close()


async def test_every_entry_pg_dump_writes_is_an_inventory_object(
    cluster: ScratchCluster, family_template: str, copies: list[str]
) -> None:
    copies.append("every_family_cov")
    await copy_of(cluster, family_template, "every_family_cov", SUBSCRIPTION_SQL)
    entries = await toc(cluster, "every_family_cov")
    inv = await inventory(cluster, "every_family_cov", CatalogOptions())
    # the database really holds every family the inventory knows
    assert set(TOC_KINDS) - {d for d, *_ in entries} == set()
    assert uncovered(entries, inv) == []
    assert "OF fam.pair" in inv.objects["table fam.typed"].definition.splitlines()
    # passwords in subscriptions and user mappings stay out of the files
    assert "hunter" not in inv.to_json() and "sesame" not in inv.to_json()
    assert "password '********'" in inv.objects["user mapping FOR PUBLIC SERVER remote"].definition
    assert "postgresql://bob:********@nowhere/db" in inv.objects["subscription fam_uri"].definition


async def test_a_schema_filter_leaves_out_what_pg_dump_n_leaves_out(
    cluster: ScratchCluster, family_template: str, copies: list[str]
) -> None:
    copies.append("every_family_n")
    await copy_of(cluster, family_template, "every_family_n", SUBSCRIPTION_SQL)
    entries = await toc(cluster, "every_family_n", "-n", "fam")
    inv = await inventory(cluster, "every_family_n", CatalogOptions(schemas=("fam",)))
    assert not DATABASE_WIDE & set(inv.counts())
    assert uncovered(entries, inv) == []


class Outcome(NamedTuple):
    dump_differs: bool  # the oracle: pg_dump --schema-only of the two databases differs
    named: list[tuple[str, str]]  # what compare reports, (kind, name) per change
    meant: list[tuple[str, tuple[str, ...]]]  # and what each change means: (impact, reasons)


async def drop_copy(cluster: ScratchCluster, name: str, subscriptions: bool = False) -> None:
    """Drop a database if it exists; its subscriptions first (they hold it otherwise)."""
    if subscriptions:
        with contextlib.suppress(asyncpg.InvalidCatalogNameError):
            db = await asyncpg.connect(cluster.dsn(name))
            try:
                await db.execute(DROP_SUBSCRIPTIONS)
            finally:
                await db.close()
    admin = await asyncpg.connect(cluster.dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _side(cluster: ScratchCluster, name: str) -> tuple[list[str], Inventory]:
    """A database's dump and inventory, read side by side."""
    return await asyncio.gather(dump_lines(cluster, name), inventory(cluster, name, OPTIONS))


async def _outcome(
    cluster: ScratchCluster, template: str, base: tuple[list[str], Inventory], n: int, pair: Pair
) -> Outcome | BaseException:
    names = [f"fam_pair_{n}"] + ([f"fam_pair_{n}_a"] if pair.setup else [])
    made: list[str] = []
    try:
        for name, sql in zip(names, (pair.setup + ";" + pair.change, pair.setup), strict=False):
            made.append(name)
            await copy_of(cluster, template, name, sql)
        if pair.setup:
            (before_dump, before), (after_dump, after) = await asyncio.gather(
                _side(cluster, names[1]), _side(cluster, names[0])
            )
        else:
            (before_dump, before), (after_dump, after) = base, await _side(cluster, names[0])
        items = compare(before, after).items
        named = [(i.kind, i.name) for i in items]
        meant = [(i.impact.value, i.reasons) for i in items]
        return Outcome(after_dump != before_dump, named, meant)
    except Exception as exc:  # reported by the pair's own test
        return exc
    finally:
        for name in made:
            await drop_copy(cluster, name, subscriptions="SUBSCRIPTION" in pair.setup + pair.change)


@pytest.fixture(scope="module")
async def outcomes(cluster: ScratchCluster, family_template: str) -> list[Outcome | BaseException]:
    """Every pair, a few at a time: most of a pair's time is waiting on the server and pg_dump."""
    base = await _side(cluster, family_template)
    limit = asyncio.Semaphore(3)

    async def one(n: int, pair: Pair) -> Outcome | BaseException:
        async with limit:
            return await _outcome(cluster, family_template, base, n, pair)

    return list(await asyncio.gather(*(one(n, p) for n, p in enumerate(PAIRS))))


@pytest.mark.parametrize("n", range(len(PAIRS)), ids=[p.property for p in PAIRS])
async def test_a_single_difference_is_named_exactly_as_pg_dump_sees_it(
    outcomes: list[Outcome | BaseException], n: int
) -> None:
    outcome = outcomes[n]
    if isinstance(outcome, BaseException):
        raise outcome
    assert outcome.dump_differs == bool(outcome.named), "pg_dump and compare disagree"
    assert outcome.named == ([PAIRS[n].expected] if PAIRS[n].expected else [])


@pytest.mark.parametrize("n", range(len(PAIRS)), ids=[p.property for p in PAIRS])
async def test_a_single_difference_says_what_it_means_to_clients(
    outcomes: list[Outcome | BaseException], n: int
) -> None:
    outcome = outcomes[n]
    if isinstance(outcome, BaseException):
        raise outcome
    expected = IMPACT[PAIRS[n].property]
    assert outcome.meant == ([expected] if expected else [])


def test_every_single_difference_has_an_expected_impact() -> None:
    properties = [p.property for p in PAIRS]
    assert len(set(properties)) == len(properties)
    assert set(IMPACT) == set(properties)
    assert {e[0] for e in IMPACT.values() if e} == {
        "breaking",
        "behavioural",
        "compatible",
        "cosmetic",
    }


async def test_every_family_loaded_twice_with_other_oids_is_no_drift(
    cluster: ScratchCluster, family_template: str
) -> None:
    # Copies of a template keep its OIDs; loading the SQL again after other objects came and
    # went gives every object new ones, which must not reach any definition.
    fixture = FIXTURES / "every_family.sql"
    again = "every_family_again"
    cluster.create_database(again)
    try:
        cluster.psql(again, "CREATE TABLE shift AS SELECT 1; DROP TABLE shift;" * 20)
        cluster.psql(again, file=fixture)
        one, two = await asyncio.gather(
            inventory(cluster, family_template, OPTIONS), inventory(cluster, again, OPTIONS)
        )
        oids = "SELECT oid FROM pg_catalog.pg_operator WHERE oprname = '==='"
        assert cluster.psql(family_template, oids) != cluster.psql(again, oids)
        assert [(i.kind, i.name) for i in compare(one, two).items] == []
    finally:
        cluster.drop_database(again)
