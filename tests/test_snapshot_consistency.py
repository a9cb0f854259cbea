"""Export and inventory read one moment of production, whatever DDL runs meanwhile."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg
import structlog

from service.errors import SyncError
from service.production.catalog import CatalogOptions
from service.production.export import ExportOptions, pg_dump_argv
from service.production.snapshot import take_snapshot
from tests.conftest import Database

RUNS = 3


async def _churn(db: Database, stop: asyncio.Event, done: list[int]) -> None:
    """CREATE OR REPLACE the function as fast as the server allows, until told to stop."""
    conn = await asyncpg.connect(**db.conninfo.asyncpg_kwargs())
    try:
        n = 0
        while not stop.is_set():
            n += 1
            await conn.execute(
                "CREATE OR REPLACE FUNCTION public.moment() RETURNS int LANGUAGE sql "
                f"AS $$ SELECT {n} $$"
            )
            done.append(n)
    finally:
        await conn.close()


async def test_export_and_inventory_agree_under_concurrent_ddl(
    db: Database, tmp_path: Path
) -> None:
    db.sql("CREATE FUNCTION public.moment() RETURNS int LANGUAGE sql AS $$ SELECT 0 $$")
    stop, done = asyncio.Event(), [0]
    churn = asyncio.create_task(_churn(db, stop, done))
    pairs, refused = [], []
    try:
        with structlog.testing.capture_logs() as logs:
            for run in range(RUNS):
                out = tmp_path / str(run)
                out.mkdir()
                try:
                    snapshot, _ = await take_snapshot(
                        db.conninfo, CatalogOptions(), ExportOptions(), out / "s.sql", out / "f.sql"
                    )
                except SyncError as exc:  # DDL spoiled every attempt: said, nothing returned
                    refused.append(str(exc))
                    continue
                [fn] = [o for o in snapshot.inventory if o.name == "public.moment()"]
                exported = re.search(r"SELECT (\d+)", (out / "s.sql").read_text())
                inventoried = re.search(r"SELECT (\d+)", fn.definition)
                assert exported and inventoried
                pairs.append((exported.group(1), inventoried.group(1)))
    finally:
        stop.set()
        await churn
    assert done[-1] > RUNS  # the DDL really ran between and during the reads
    assert all(a == b for a, b in pairs), (pairs, refused)
    assert all("changed during each of 3 reads" in why for why in refused), refused
    assert not [e for e in logs if e["event"] == "snapshot.not_shared"]
    # Quiet again: the read goes through and still agrees.
    out = tmp_path / "quiet"
    out.mkdir()
    snapshot, _ = await take_snapshot(
        db.conninfo, CatalogOptions(), ExportOptions(), out / "s.sql", out / "f.sql"
    )
    assert f"SELECT {done[-1]} " in (out / "s.sql").read_text()


def test_pg_dump_reads_the_exported_snapshot() -> None:
    argv = pg_dump_argv("/usr/bin/pg_dump", ExportOptions(snapshot="00000003-0000001B-1"))
    assert "--snapshot=00000003-0000001B-1" in argv
