"""`plan` on migra's 26 fixture pairs (../shared/conformance/migra), both directions.

For each pair a -> b and b -> a the plan must converge by both oracles (plan_support.py), or
be refused for one of the documented unsafe cases listed in REFUSED (each with the words
its reason must contain). The fixtures load as the conformance runner loads them.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from tests.plan_support import Outcome, count, drop_database, there_and_back


def _fixtures() -> Path:
    """$MIGRA_FIXTURES, else shared/conformance/migra beside the checkout or above it (a
    worktree sits one folder deeper than the main checkout)."""
    if os.environ.get("MIGRA_FIXTURES"):
        return Path(os.environ["MIGRA_FIXTURES"])
    for up in Path(__file__).resolve().parents[1:4]:
        found = up / "shared" / "conformance" / "migra"
        if found.is_dir():
            return found
    return Path("../shared/conformance/migra")


FIXTURES = _fixtures()
PAIRS = (
    sorted(p.name for p in FIXTURES.glob("*") if (p / "a.sql").exists())
    if FIXTURES.is_dir()
    else []
)
# (fixture, direction) -> what the refusal must say. Each is a documented unsafe case
# (docs/plan.md, "What plan refuses"): values with no cast to the new type, enum labels taken
# away while columns hold them, an extension version with no update path, a table that
# becomes partitioned (or stops being partitioned).
REFUSED = {
    ("enumdefaults", "a->b"): "there is no cast from other.otherenum1 to other.otherenum2",
    ("enumdefaults", "b->a"): "there is no cast from other.otherenum2 to other.otherenum1",
    ("enumdeps", "b->a"): "enum labels are removed or reordered",
    ("everything", "b->a"): "enum labels are removed or reordered",
    ("extversions", "b->a"): "no update path from version '1.4' to '1.3'",
    ("partitioning", "a->b"): "it becomes a partitioned table (or stops being one)",
    ("partitioning", "b->a"): "it becomes a partitioned table (or stops being one)",
}


async def _load(cluster: ScratchCluster, name: str, sql: Path) -> None:
    await drop_database(cluster, name)
    await asyncio.to_thread(cluster.create_database, name, sql)


async def _fixture(cluster: ScratchCluster, fixture: str) -> tuple[Outcome, Outcome]:
    a, b = f"migra_{fixture}_a", f"migra_{fixture}_b"
    try:
        await asyncio.gather(
            _load(cluster, a, FIXTURES / fixture / "a.sql"),
            _load(cluster, b, FIXTURES / fixture / "b.sql"),
        )
        return await there_and_back(cluster, a, b)
    finally:
        await asyncio.gather(drop_database(cluster, a), drop_database(cluster, b))


@pytest.fixture(scope="module")
async def outcomes(
    cluster: ScratchCluster,
) -> dict[str, tuple[Outcome, Outcome] | BaseException]:
    if not PAIRS:
        reason = f"migra's fixtures are not in {FIXTURES}: set MIGRA_FIXTURES"
        if os.environ.get("PG_SCHEMA_SYNC_REQUIRE_SERVERS"):  # ./dev test: never skip quietly
            pytest.fail(reason)
        pytest.skip(reason)
    cluster.psql("postgres", "DO $$ BEGIN CREATE ROLE schemainspect_test_role; "
                 "EXCEPTION WHEN duplicate_object THEN NULL; END $$")  # fmt: skip
    limit = asyncio.Semaphore(3)

    async def one(fixture: str) -> tuple[Outcome, Outcome] | BaseException:
        async with limit:
            try:
                return await _fixture(cluster, fixture)
            except Exception as exc:
                return exc

    results = await asyncio.gather(*(one(f) for f in PAIRS))
    return dict(zip(PAIRS, results, strict=True))


def _judge(outcome: Outcome, fixture: str, direction: str) -> None:
    count("migra fixtures", outcome)
    expected = REFUSED.get((fixture, direction))
    if expected is not None:
        assert outcome.refused, f"{direction}: planned, but should be refused ({expected})"
        assert expected in outcome.why(), outcome.why()
        return
    assert outcome.converged, f"{direction}: {outcome.why()}"


@pytest.mark.parametrize("fixture", PAIRS or ["(no fixtures)"])
def test_migra_pair_is_planned_both_ways(
    outcomes: dict[str, tuple[Outcome, Outcome] | BaseException], fixture: str
) -> None:
    result = outcomes[fixture]
    if isinstance(result, BaseException):
        raise result
    there, back = result
    _judge(there, fixture, "a->b")
    _judge(back, fixture, "b->a")


def test_the_fixtures_are_all_there() -> None:
    assert len(PAIRS) == 26 or not FIXTURES.is_dir()
