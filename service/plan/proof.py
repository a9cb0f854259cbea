"""Proving a plan (I/O): FROM's dump installed into a scratch database on the verify server,
the plan's script run on it with psql ON_ERROR_STOP (the very text stdout gets), the result
read back and compared with TO (converge.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from service.compare.drift import Drift
from service.plan import render
from service.plan.converge import differences
from service.plan.model import Plan
from service.plan.sides import Side, SideData
from service.production.catalog import CatalogOptions, load_rows
from service.production.conninfo import ConnInfo
from service.production.db import connect
from service.production.export import ExportOptions
from service.production.session import close_quickly
from service.verify import VerifyError, install, resolve_tool, scratch_database

# The verification session's bounds: the scratch copy is nobody else's, but a statement that
# never ends must still end the verification.
PROOF_LOCK_TIMEOUT_MS = 60_000
PROOF_STATEMENT_TIMEOUT_MS = 3_600_000


@dataclass
class Proof:
    passed: bool
    problem: str | None = None  # the statement that failed, one line
    drift: Drift = field(default_factory=lambda: Drift(()))  # what still differs
    duration_s: float = 0.0

    def lines(self) -> list[str]:
        """What is said on stderr when it did not pass."""
        out = [self.problem] if self.problem else []
        out += [f"{i.change.value} {i.kind} {i.name}" for i in self.drift.items]
        return out


async def prove(
    server: ConnInfo,
    plan: Plan,
    old: SideData,
    new: SideData,
    catalog: CatalogOptions,
    export: ExportOptions,
    workdir: Path,
) -> Proof:
    """A scratch copy of FROM made from its dump, the plan run on it, the result compared."""
    t0 = time.monotonic()
    psql = psql_of(export)
    copy = workdir / "from.sql"
    await asyncio.to_thread(copy.write_text, copy_script(old))
    async with scratch_database(server) as scratch:
        problem = await install(psql, scratch, copy, f"the copy of {old.display}")
        if problem is not None:
            raise VerifyError(
                f"FROM's schema does not install on the verify server: {problem.one_line()}"
            )
        proof = await run_and_compare(psql, scratch, plan, new, catalog, workdir)
    proof.duration_s = time.monotonic() - t0
    return proof


async def run_and_compare(
    psql: str,
    copy: ConnInfo,
    plan: Plan,
    new: SideData,
    catalog: CatalogOptions,
    workdir: Path,
) -> Proof:
    """Run the plan's script on `copy` (a copy of FROM) with psql and compare the result with
    TO: the verification proper."""
    script = workdir / f"plan-{copy.dbname}.sql"
    header = render.Header(
        "FROM", new.display, "verification run", PROOF_LOCK_TIMEOUT_MS, PROOF_STATEMENT_TIMEOUT_MS
    )
    await asyncio.to_thread(script.write_text, render.script(plan, header))
    problem = await install(psql, copy, script, "the plan")
    if problem is not None:
        return Proof(False, f"the plan fails: {problem.one_line()}")
    conn = await connect(copy)
    try:
        rows = await load_rows(conn, catalog)
    finally:
        await close_quickly(conn)
    got = {f"{r.kind} {r.name}": r for r in rows}
    drift = differences(got, new.rows, catalog, plan.column_order)
    return Proof(not drift, None, drift)


def psql_of(export: ExportOptions) -> str:
    """psql beside the pg_dump in use (the same version), else on PATH."""
    return resolve_tool(
        str(Path(resolve_tool(export.pg_dump, "pg_dump")).with_name("psql")), "psql"
    )


def copy_script(old: SideData) -> str:
    """FROM's dump as a script that makes an exact copy: pg_dump writes CREATE EXTENSION
    without a version (a restore gets the newest); the copy gets the version FROM has."""
    script = old.archive.script
    side = Side(old)
    for key, row in old.rows.items():
        if row.kind != "extension":
            continue
        for entry in side.entries_of.get(key, ()):
            if entry.desc == "EXTENSION":
                script = script.replace(entry.sql.rstrip("\n"), row.body + ";", 1)
    return script
