"""`plan` on every family: the single-difference table both ways, and the every-family
fixture against an empty database both ways (create everything; drop everything).

Each plan must converge by both oracles (plan_support.py): its own verification and pg_dump.
A refusal counts only where it is one of plan's documented unsafe cases (REFUSED below says
which and why); anything else refused, or left different, fails its pair's test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from service.demo.cluster import ScratchCluster
from service.plan.sides import SideData
from tests.conftest import FIXTURES
from tests.plan_support import (
    Outcome,
    check,
    copy_database,
    count,
    drop_database,
    dump,
    dump_of,
    plan_both_ways,
    read,
    reader,
)
from tests.single_differences import PAIRS, Pair
from tests.test_every_family import ROLES_SQL

TEMPLATE = "plan_family"
REFERENCE = "plan_family_ref"  # a pristine copy to read and dump (a template must stay idle)
# Pairs a plan refuses by design (docs/plan.md, "What plan refuses"), with what the reason
# must say: the fixture's enum label taken away while fam.trails.mood may hold it.
REFUSED = {("enum value", "back"): "enum labels are removed or reordered"}
# Environment limits, not planner gaps: the fixture writes security labels straight into
# pg_seclabel as a provider would (no label provider is installed here), so a plan's SECURITY
# LABEL statement cannot run on this server.
NO_PROVIDER = {
    "security label changed",
    "security label on a column",
    "security label on a language",
}


@pytest.fixture(scope="module")
def family(cluster: ScratchCluster) -> Iterator[str]:
    cluster.psql("postgres", ROLES_SQL)
    for name in (TEMPLATE, REFERENCE):
        cluster.drop_database(name)
    cluster.create_database(TEMPLATE, FIXTURES / "every_family.sql")
    cluster.psql("postgres", f'CREATE DATABASE "{REFERENCE}" TEMPLATE "{TEMPLATE}"')
    yield TEMPLATE
    for name in (TEMPLATE, REFERENCE):
        cluster.drop_database(name)


async def _pair(
    cluster: ScratchCluster, n: int, pair: Pair, base_data: SideData
) -> tuple[Outcome, Outcome]:
    base, changed = f"plan_base_{n}", f"plan_pair_{n}"
    subscriptions = "SUBSCRIPTION" in pair.setup + pair.change
    try:
        for name, sql in ((base, pair.setup), (changed, pair.setup + ";" + pair.change)):
            await copy_database(cluster, TEMPLATE, name)
            if sql.strip(";"):
                await asyncio.to_thread(cluster.psql, name, sql)
        async with reader(cluster, base) as rb, reader(cluster, changed) as rc:
            if pair.setup:  # else the fixture as read once (copies keep its OIDs)
                base_data = await read(cluster, base, rb)
            changed_data = await read(cluster, changed, rc)
            forward, backward = await plan_both_ways(rb, rc, base_data, changed_data)
        there = await check(cluster, forward, base, changed_data, dump_of(changed_data))
        back = await check(cluster, backward, changed, base_data, dump_of(base_data))
        return there, back
    finally:
        await asyncio.gather(
            drop_database(cluster, base, subscriptions),
            drop_database(cluster, changed, subscriptions),
        )


@pytest.fixture(scope="module")
async def outcomes(
    cluster: ScratchCluster, family: str
) -> list[tuple[Outcome, Outcome] | BaseException]:
    async with reader(cluster, REFERENCE) as r:
        base_data = await read(cluster, REFERENCE, r)
    # The oracle read from the archive a plan reads equals pg_dump's own output.
    assert dump_of(base_data) == await dump(cluster, REFERENCE)
    limit = asyncio.Semaphore(3)

    async def one(n: int, pair: Pair) -> tuple[Outcome, Outcome] | BaseException:
        async with limit:
            try:
                return await _pair(cluster, n, pair, base_data)
            except Exception as exc:  # reported by the pair's own test
                return exc

    return list(await asyncio.gather(*(one(n, p) for n, p in enumerate(PAIRS))))


def _judge(outcome: Outcome, pair: Pair, direction: str) -> None:
    if pair.property in NO_PROVIDER and outcome.proof and outcome.proof.problem:
        count("single differences", outcome, "not run: no label provider on this server")
        assert "security label provider" in outcome.proof.problem
        return
    count("single differences", outcome)
    expected = REFUSED.get((pair.property, direction))
    if expected is not None:
        assert outcome.refused and expected in outcome.why(), f"{direction}: {outcome.why()}"
        return
    assert outcome.converged, f"{direction}: {outcome.why()}"


@pytest.mark.parametrize("n", range(len(PAIRS)), ids=[p.property for p in PAIRS])
def test_a_single_difference_is_planned_both_ways(
    outcomes: list[tuple[Outcome, Outcome] | BaseException], n: int
) -> None:
    result = outcomes[n]
    if isinstance(result, BaseException):
        raise result
    there, back = result
    _judge(there, PAIRS[n], "there")  # FROM the fixture TO the changed copy
    _judge(back, PAIRS[n], "back")  # FROM the changed copy TO the fixture
    if PAIRS[n].expected is None:  # pg_dump does not see it: neither may plan
        assert not there.plan.statements and not back.plan.statements


async def test_every_family_is_created_from_nothing_and_dropped_again(
    cluster: ScratchCluster, family: str
) -> None:
    """An empty database -> the every-family fixture (create everything), and back (drop
    everything). The fixture's security labels are taken out first: they are written into
    pg_seclabel as a provider would, and no provider is loaded here to run SECURITY LABEL."""
    empty, full = "plan_empty", "plan_full"
    subscriptions = (
        "CREATE SUBSCRIPTION fam_sub CONNECTION 'dbname=nowhere password=hunter2' "
        "PUBLICATION p WITH (connect = false)"
    )
    try:
        await asyncio.to_thread(cluster.create_database, empty)
        await copy_database(cluster, TEMPLATE, full)
        await asyncio.to_thread(
            cluster.psql, full, f"DELETE FROM pg_catalog.pg_seclabel; {subscriptions}"
        )
        async with reader(cluster, empty) as re_, reader(cluster, full) as rf:
            empty_data, full_data = await asyncio.gather(
                read(cluster, empty, re_), read(cluster, full, rf)
            )
            create, drop = await plan_both_ways(re_, rf, empty_data, full_data)
        kinds = {s.kind for s in create.statements}
        assert len(kinds) >= 35, sorted(kinds)  # every family is created
        created = await check(cluster, create, empty, full_data, dump_of(full_data))
        count("every family vs an empty database", created)
        assert created.converged, created.why()
        dropped = await check(cluster, drop, full, empty_data, dump_of(empty_data))
        count("every family vs an empty database", dropped)
        assert dropped.converged, dropped.why()
        # The subscription's password reaches the plan (it is the SQL that makes TO), as
        # pg_dump's schema file carries it; never a log or a comment.
        assert any("hunter2" in s.sql for s in create.statements if s.kind == "subscription")
    finally:
        await asyncio.gather(
            drop_database(cluster, empty, subscriptions=True),
            drop_database(cluster, full, subscriptions=True),
        )
