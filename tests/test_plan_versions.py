"""`plan` on PostgreSQL 13 and 18 (15, the Debian server, runs everything else).

A representative subset, each plan judged by both oracles (plan_support.py): the catalog
test's base schema created from nothing and dropped again; the version test's rounds of
single changes (tests/test_versions.py: every family, plus what only 18 has -- named NOT NULL
constraints, virtual generated columns), planned there and back, round after round; and a
few of migra's fixture pairs. Servers come from ./dev as for tests/test_versions.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from tests.plan_support import copy_database, drop_database, there_and_back
from tests.test_catalog import BASE_SQL, ROLES_SQL
from tests.test_plan_migra import FIXTURES
from tests.test_versions import installed, major_of, rounds

MAJORS = (13, 18)
MIGRA = ("constraints", "dependencies", "identitycols", "inherit", "seq", "triggers", "rls")


@pytest.fixture(scope="module", params=MAJORS, ids=[f"pg{m}" for m in MAJORS])
def server(request: pytest.FixtureRequest) -> Iterator[ScratchCluster]:
    """A cluster of that major, with pg_dump, pg_restore and psql at least as new."""
    major = request.param
    clients = installed("clients-18") if major == 18 else None
    with ScratchCluster(installed(str(major)), clientdir=clients) as c:
        c.psql("postgres", ROLES_SQL)
        yield c


async def _both(cluster: ScratchCluster, a: str, b: str) -> list[str]:
    """Plan a -> b and b -> a, each checked on a copy; the failures, said in a line each
    (documented refusals are no failure)."""
    outcomes = await there_and_back(cluster, a, b, copies=True)
    return [
        f"{a} {name}: {o.why()}"
        for o, name in zip(outcomes, ("there", "back"), strict=True)
        if not o.converged and not o.documented
    ]


async def test_the_base_schema_is_created_and_dropped(server: ScratchCluster) -> None:
    empty, full = "v_empty", "v_full"
    try:
        await asyncio.to_thread(server.create_database, empty)
        await asyncio.to_thread(server.create_database, full)
        await asyncio.to_thread(server.psql, full, BASE_SQL)
        assert await _both(server, empty, full) == []
    finally:
        await asyncio.gather(drop_database(server, empty), drop_database(server, full))


async def test_every_round_of_single_changes_is_planned_there_and_back(
    server: ScratchCluster,
) -> None:
    current = "v_round_0"
    made = [current]
    failures: list[str] = []
    try:
        await asyncio.to_thread(server.create_database, current)
        await asyncio.to_thread(server.psql, current, BASE_SQL)
        for i, steps in enumerate(rounds(major_of(server)), start=1):
            following = f"v_round_{i}"
            made.append(following)
            await copy_database(server, current, following)
            await asyncio.to_thread(server.psql, following, ";\n".join(s for _, s, _ in steps))
            failures += [
                f"round {i} {[s for _, s, _ in steps]}: {f}"
                for f in await _both(server, current, following)
            ]
            await drop_database(server, current)
            current = following
    finally:
        await asyncio.gather(*(drop_database(server, name) for name in made))
    assert failures == []


@pytest.mark.parametrize("fixture", MIGRA)
async def test_migra_pairs(server: ScratchCluster, fixture: str) -> None:
    folder = FIXTURES / fixture
    if not folder.is_dir():
        pytest.skip(f"migra's fixtures are not in {FIXTURES}")
    server.psql("postgres", "DO $$ BEGIN CREATE ROLE schemainspect_test_role; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$")  # fmt: skip
    a, b = f"vm_{fixture}_a", f"vm_{fixture}_b"
    try:
        for name, sql in ((a, folder / "a.sql"), (b, folder / "b.sql")):
            await drop_database(server, name)
            await asyncio.to_thread(server.create_database, name, Path(sql))
        failures = await _both(server, a, b)
    finally:
        await asyncio.gather(drop_database(server, a), drop_database(server, b))
    assert failures == []
