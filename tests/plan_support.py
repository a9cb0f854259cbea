"""What the plan tests share: reading a database as a plan side, planning between two read
sides, and the two oracles -- the plan's own verification (applied to a copy of FROM and
compared as `check` compares) and pg_dump (the copy's dump equals TO's, normalised as the
conformance runner normalises, column order aside only for the tables the plan names).

Sides are read once and planned both ways; copies of FROM are made from templates (a file
copy, not a restore), so a pair costs a few hundred milliseconds of server time."""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from service.demo.cluster import ScratchCluster
from service.plan.model import Plan
from service.plan.proof import Proof, run_and_compare
from service.plan.reader import Reader
from service.plan.run import Request, Source, plan_sides
from service.plan.sides import SideData
from service.production.catalog import CatalogOptions
from service.production.db import SessionLimits
from service.production.export import ExportOptions
from tests.test_every_family import copy_of, drop_copy

SKIP_LINES = ("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict")


@contextlib.asynccontextmanager
async def reader(cluster: ScratchCluster, db: str) -> AsyncIterator[Reader]:
    r = await Reader.open(cluster.conninfo(db), SessionLimits())
    try:
        yield r
    finally:
        await r.close()


async def read(cluster: ScratchCluster, db: str, r: Reader) -> SideData:
    with tempfile.TemporaryDirectory() as tmp:
        export = ExportOptions(pg_dump=str(cluster.clientdir / "pg_dump"))
        return await r.read(CatalogOptions(), export, Path(tmp))


# The unsafe cases plan refuses by design (docs/plan.md), as its reasons word them.
DOCUMENTED = (
    "there is no cast from",
    "enum labels are removed or reordered",
    "has no update path",
    "it becomes a partitioned table (or stops being one)",
    "its partition key changes",
    "ALTER TABLE INHERIT merges them",
)


# table -> {"converged" / "refused" / ...: how many directions}, for the test summary.
CONVERGENCE: dict[str, dict[str, int]] = {}


def count(table: str, outcome: Outcome, what: str | None = None) -> None:
    """Record one direction's result: converged, refused (documented), or `what` it was."""
    if what is None:
        what = "converged" if outcome.converged else "refused" if outcome.documented else "failed"
    tally = CONVERGENCE.setdefault(table, {})
    tally[what] = tally.get(what, 0) + 1


@dataclass
class Outcome:
    """One direction of a pair: the plan, what its verification said, and pg_dump's word."""

    plan: Plan
    proof: Proof | None = None
    dump_differs: list[str] | None = None  # lines only one side's normalised dump has

    @property
    def refused(self) -> bool:
        return bool(self.plan.refusals)

    @property
    def documented(self) -> bool:
        """Refused, and only for documented unsafe cases."""
        return self.refused and all(
            any(d in r.reason for d in DOCUMENTED) for r in self.plan.refusals
        )

    @property
    def converged(self) -> bool:
        return (
            not self.refused and (self.proof is None or self.proof.passed) and not self.dump_differs
        )

    def why(self) -> str:
        if self.refused:
            return "refused: " + "; ".join(r.line() for r in self.plan.refusals)
        if self.proof is not None and not self.proof.passed:
            return "not verified: " + "; ".join(self.proof.lines()[:5])
        return "pg_dump differs: " + "; ".join((self.dump_differs or [])[:5])


async def plan_both_ways(
    ra: Reader, rb: Reader, a: SideData, b: SideData, concurrently: bool = False
) -> tuple[Plan, Plan]:
    """The plans a -> b and b -> a, given both sides read and their readers still open."""
    request = Request(
        Source(a.display),
        Source(b.display),
        CatalogOptions(),
        ExportOptions(),
        SessionLimits(),
        concurrently=concurrently,
    )
    ab, _, _ = await plan_sides(request, ra, rb, a, b)
    ba, _, _ = await plan_sides(request, rb, ra, b, a)
    return ab, ba


async def check(
    cluster: ScratchCluster, plan: Plan, copy: str, target_data: SideData, target_dump: list[str]
) -> Outcome:
    """Run `plan` on database `copy` (a copy of FROM) and judge it against TO (its data and
    its dump, read before anything ran)."""
    if plan.refusals:
        return Outcome(plan)
    with tempfile.TemporaryDirectory() as tmp:
        proof = await run_and_compare(
            str(cluster.clientdir / "psql"), cluster.conninfo(copy), plan, target_data,
            CatalogOptions(), Path(tmp),
        )  # fmt: skip
    if not proof.passed:
        return Outcome(plan, proof)
    got, want = await dump(cluster, copy), target_dump
    tables = {key.split(" ", 1)[1] for key in plan.column_order}
    differs = sorted(set(normalise(got, tables)) ^ set(normalise(want, tables)))
    if not differs and normalise(got, tables) != normalise(want, tables):
        differs = ["the same lines in another order"]
    return Outcome(plan, proof, differs)


def dump_of(data: SideData) -> list[str]:
    """What dump() gives for a database, from the side a plan read of it: pg_restore's
    script of pg_dump's archive is pg_dump's plain output (plus comments, left out)."""
    lines = [
        ln
        for ln in data.archive.script.splitlines()
        if ln.strip() and not ln.startswith(SKIP_LINES)
    ]
    versions = sorted(
        (row.name.strip('"'), row.body.rsplit(" VERSION ", 1)[1].strip("'"))
        for row in data.rows.values()
        if row.kind == "extension"
    )
    return lines + [f"extension {name} {version}" for name, version in versions]


async def dump(cluster: ScratchCluster, db: str) -> list[str]:
    """pg_dump --schema-only as the conformance runner reads it, plus extension versions."""
    proc = await asyncio.create_subprocess_exec(
        str(cluster.clientdir / "pg_dump"), "--schema-only", cluster.dsn(db),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    lines = [ln for ln in out.decode().splitlines() if ln.strip() and not ln.startswith(SKIP_LINES)]
    conn = await asyncpg.connect(cluster.dsn(db))
    try:
        rows = await conn.fetch("SELECT extname, extversion FROM pg_extension ORDER BY 1")
    finally:
        await conn.close()
    return lines + [f"extension {r[0]} {r[1]}" for r in rows]


def normalise(lines: list[str], tables: set[str]) -> list[str]:
    """The dump's lines; for the tables named, whose column order the plan leaves as
    PostgreSQL can (added at the end), their columns, column comments and column grants as
    sorted sets (each line still exact)."""
    if not tables:
        return lines
    out: list[str] = []
    loose: list[str] = []
    block: list[str] | None = None
    for line in lines:
        if block is not None:
            if line.startswith(")"):
                out += sorted(ln.rstrip(",") for ln in block)
                out.append(line)
                block = None
            else:
                block.append(line)
            continue
        head = re.match(r"CREATE (?:UNLOGGED |FOREIGN )?TABLE (.+) \($", line)
        if head and head.group(1) in tables:
            out.append(line)
            block = []
            continue
        if any(_column_line(line, t) for t in tables):
            loose.append(line)
            continue
        out.append(line)
    return out + sorted(loose)


async def copy_database(cluster: ScratchCluster, template: str, name: str) -> None:
    await copy_of(cluster, template, name)


async def drop_database(cluster: ScratchCluster, name: str, subscriptions: bool = False) -> None:
    await drop_copy(cluster, name, subscriptions)


async def there_and_back(
    cluster: ScratchCluster, a: str, b: str, copies: bool = False, concurrently: bool = False
) -> tuple[Outcome, Outcome]:
    """Read both databases, plan a -> b and b -> a, judge each on a copy of its FROM: the
    database itself (both were read first), or a template copy of it (`copies`)."""
    async with reader(cluster, a) as ra, reader(cluster, b) as rb:
        a_data, b_data = await asyncio.gather(read(cluster, a, ra), read(cluster, b, rb))
        forward, backward = await plan_both_ways(ra, rb, a_data, b_data, concurrently)
    outcomes = []
    for plan, source, target in ((forward, a, b_data), (backward, b, a_data)):
        copy = f"{source}_copy" if copies else source
        if copies:
            await copy_database(cluster, source, copy)
        try:
            outcomes.append(await check(cluster, plan, copy, target, dump_of(target)))
        finally:
            if copies:
                await drop_database(cluster, copy)
    return outcomes[0], outcomes[1]


def _column_line(line: str, table: str) -> bool:
    """A column's comment or grant line of `table` (they follow the columns' order)."""
    if line.startswith(f"COMMENT ON COLUMN {table}."):
        return True
    return line.startswith(("GRANT ", "REVOKE ")) and f") ON TABLE {table} " in line
