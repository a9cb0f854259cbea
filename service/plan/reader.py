"""Reading one side of a plan: its catalog, pg_dump's entries and its dependencies, from one
read-only snapshot (pg_dump imports the snapshot the catalog session exported)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from service.compare.inventory import Inventory
from service.errors import Cause, SyncError
from service.plan import queries
from service.plan.entries import Archive, EntriesError, parse
from service.plan.facts import Column, Constraint, TableFacts
from service.plan.sides import SideData
from service.production.catalog import CatalogOptions, load_rows, server_version_num
from service.production.conninfo import ConnInfo, tool_env
from service.production.db import SessionLimits
from service.production.export import ExportOptions, pg_dump_argv, resolve_pg_dump
from service.production.lifetime import run_to_end
from service.production.probe import Probe
from service.production.session import catalog_errors, close_quickly, open_session

Catalog = tuple[int, int]


class Reader:
    """An open read-only snapshot of one side: the base read, then facts on demand."""

    def __init__(self, conn: asyncpg.Connection, info: ConnInfo) -> None:
        self.conn, self.info = conn, info
        self._transaction: Any = None

    @classmethod
    async def open(cls, info: ConnInfo, limits: SessionLimits) -> Reader:
        conn = await open_session(info, limits)
        reader = cls(conn, info)
        try:
            with catalog_errors(info):
                await reader._begin()
        except BaseException:
            await close_quickly(conn)
            raise
        return reader

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._transaction is not None:
                await self._transaction.rollback()
        await close_quickly(self.conn)

    async def read(self, catalog: CatalogOptions, export: ExportOptions, workdir: Path) -> SideData:
        """Catalog, holders and dependencies here; pg_dump on the same snapshot beside it."""
        snapshot = await self._export_snapshot()
        archive_task = asyncio.ensure_future(
            dump_archive(self.info, replace(export, snapshot=snapshot), workdir)
        )
        try:
            with catalog_errors(self.info):
                rows = await load_rows(self.conn, catalog)
                version = server_version_num(self.conn)
                holders = await self._holders(version)
                depends = tuple(_depend(r) for r in await self.conn.fetch(queries.DEPENDS))
                fingerprint = (await Probe().fingerprint(self.conn)).digest
                members = tuple((r[0], r[1], r[2]) for r in await self.conn.fetch(queries.MEMBERS))
            archive = await archive_task
        except BaseException:
            archive_task.cancel()
            with contextlib.suppress(BaseException):
                await archive_task
            raise
        by_key = {f"{r.kind} {r.name}": r for r in rows}
        inventory = Inventory.of(r.object(catalog) for r in rows)
        return SideData(
            self.info.display(),
            version,
            by_key,
            inventory,
            archive,
            holders,
            depends,
            fingerprint,
            members=members,
        )

    async def _export_snapshot(self) -> str | None:
        """For pg_dump; None where the server will not export one (a standby, a pooler):
        pg_dump then reads its own snapshot. (Not in a savepoint: a subtransaction cannot.)"""
        try:
            snapshot: str = await self.conn.fetchval("SELECT pg_catalog.pg_export_snapshot()")
            return snapshot
        except asyncpg.PostgresError:
            await self._transaction.rollback()
            await self._begin()
            return None

    async def _begin(self) -> None:
        self._transaction = self.conn.transaction(isolation="repeatable_read", readonly=True)
        await self._transaction.start()
        await self.conn.execute(
            "SELECT pg_catalog.set_config('search_path', '', true),"
            " pg_catalog.set_config('jit', 'off', true)"
        )

    async def _holders(self, version: int) -> dict[Catalog, Catalog]:
        sql = queries.HOLDERS + (queries.HOLDERS_15 if version >= 150000 else "")
        return {(r[0], r[1]): (r[2], r[3]) for r in await self.conn.fetch(sql)}

    async def tables(self, oids: Iterable[int]) -> dict[int, TableFacts]:
        """The facts of these tables (and foreign tables), by oid."""
        wanted = sorted(set(oids))
        if not wanted:
            return {}
        with catalog_errors(self.info):
            props = await self.conn.fetch(queries.TABLES, wanted)
            columns = await self.conn.fetch(queries.COLUMNS, wanted)
            constraints = await self.conn.fetch(queries.CONSTRAINTS, wanted)
        cols: dict[int, list[Column]] = {}
        for r in columns:
            cols.setdefault(r["relid"], []).append(Column.of(r))
        cons: dict[int, list[Constraint]] = {}
        for r in constraints:
            cons.setdefault(r["relid"], []).append(Constraint.of(r))
        return {
            r["oid"]: TableFacts.of(r, tuple(cols.get(r["oid"], ())), tuple(cons.get(r["oid"], ())))
            for r in props
        }

    async def cast_context(self, source: str, target: str) -> str | None:
        """'i', 'a', 'e' or None: how a `source` value becomes a `target` one here; None also
        where either type does not exist on this side."""
        try:
            async with self.conn.transaction():
                context: str | None = await self.conn.fetchval(queries.CAST_CONTEXT, source, target)
                return context
        except asyncpg.PostgresError:
            return None

    async def options(self, classid: int, objid: int) -> tuple[str, ...]:
        """A wrapper's, server's or user mapping's generic options (`key=value`)."""
        with catalog_errors(self.info):
            found = await self.conn.fetchval(queries.OPTIONS[classid], objid)
        return tuple(found or ())

    async def update_path(self, extension: str, source: str, target: str) -> bool:
        try:
            async with self.conn.transaction():
                return bool(
                    await self.conn.fetchval(queries.UPDATE_PATH, extension, source, target)
                )
        except asyncpg.PostgresError:
            return False


async def dump_archive(info: ConnInfo, options: ExportOptions, workdir: Path) -> Archive:
    """pg_dump -Fc of the database, then pg_restore --verbose of it as plain SQL, parsed."""
    pg_dump = resolve_pg_dump(options.pg_dump)
    pg_restore = str(Path(pg_dump).with_name("pg_restore"))
    with tempfile.TemporaryDirectory(prefix="plan-", dir=workdir) as tmp:
        archive, script = Path(tmp) / "archive", Path(tmp) / "script.sql"
        # Owners and privileges are kept in the archive and dropped (or not) at restore.
        argv = pg_dump_argv(pg_dump, replace(options, owners=True))
        await run_tool([*argv, "--format=custom", "--encoding=UTF8", f"--file={archive}"], info)
        restore = [pg_restore, "--verbose", f"--file={script}", str(archive)]
        if not options.owners:
            restore.insert(1, "--no-owner")
        await run_tool(restore, None)
        text = await asyncio.to_thread(script.read_bytes)
    try:
        return await asyncio.to_thread(parse, text)
    except EntriesError as exc:
        raise SyncError(f"cannot read pg_dump's archive of {info.display()}: {exc}") from None


async def run_tool(argv: list[str], info: ConnInfo | None) -> None:
    """Run a PostgreSQL client tool to its end; its own process group, killed with us. The
    password reaches it through its environment only."""
    env = info.child_env() if info is not None else tool_env()
    returncode, err = await run_to_end(argv, env)
    if returncode != 0:
        tool = Path(argv[0]).name
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "")
        if info is not None and info.password:
            detail = detail.replace(info.password, "***")
        where = f" on {info.display()}" if info is not None else ""
        raise SyncError(
            f"{tool} failed{where} (exit {returncode}): {detail.strip()}", Cause.PG_DUMP
        )


def _depend(r: asyncpg.Record) -> tuple[int, int, int, int, int, int, str]:
    return (r[0], r[1], r[2], r[3], r[4], r[5], r[6])
