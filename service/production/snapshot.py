"""Reading production: one read-only session for the catalog, pg_dump beside it, concurrently."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import asyncpg
from asyncpg.transaction import Transaction

from service.compare.drift import Drift, compare
from service.compare.inventory import Inventory
from service.errors import Cause, SyncError
from service.logs import get_logger, register_secret
from service.production.catalog import (
    CatalogOptions,
    NoMatchingSchemas,
    load_inventory,
)
from service.production.conninfo import ConnInfo
from service.production.db import SessionLimits, end_quickly, read_transaction
from service.production.export import (
    ExportError,
    ExportOptions,
    ExportResult,
    check_versions,
    export_schema,
    pg_dump_version,
)
from service.production.probe import Fingerprint, Probe
from service.production.session import catalog_errors, close_quickly, open_session

READ_ATTEMPTS = 3  # reads spoiled by concurrent DDL before the sync gives up (and retries later)
A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    inventory: Inventory
    schema_file: Path
    functions_file: Path
    server_version: str
    pg_dump_version: str
    # The catalog probe's fingerprint of the state read: what a later probe must still find
    # for the files to be current (the probing record keeps it).
    fingerprint: Fingerprint | None = None


async def read_inventory(
    info: ConnInfo, options: CatalogOptions, limits: SessionLimits | None = None
) -> tuple[Inventory, str]:
    """Only the catalog (what `compare` needs): (inventory, server version)."""
    conn = await open_session(info, limits or SessionLimits())
    try:
        inventory = await _load(conn, options, info)
        return inventory, _server_version(conn)
    finally:
        await close_quickly(conn)


async def take_snapshot(
    info: ConnInfo,
    catalog_options: CatalogOptions,
    export_options: ExportOptions,
    schema_out: Path,
    functions_out: Path,
    limits: SessionLimits | None = None,
    then: Callable[[Inventory], Awaitable[T]] | None = None,
    exported: Callable[[], Awaitable[None]] | None = None,
) -> tuple[Snapshot, T | None]:
    """pg_dump and the catalog queries, concurrently, against one production database.

    `then(inventory)` runs as soon as the catalog is read, while pg_dump is still exporting
    (at 10,000 tables it takes twice as long): work on the inventory alone goes there.
    `exported()` runs once the export's files are complete, beside the closing check of the
    read (a catalog query): work on the files alone goes there (flushing them to disk).
    Returns the snapshot and what `then` returned.
    """
    conn = await open_session(info, limits or SessionLimits())
    try:
        try:
            dump_major, dump_full = await pg_dump_version(export_options.pg_dump)
            check_versions(dump_major, dump_full, conn.get_server_version().major * 10_000)
        except ExportError as exc:
            raise SyncError(str(exc), Cause.PG_DUMP) from None
        for attempt in range(1, READ_ATTEMPTS + 1):
            read = await _read_once(
                conn,
                info,
                catalog_options,
                export_options,
                schema_out,
                functions_out,
                dump_full,
                then,
                exported,
            )
            if read is not None:
                result, inventory, followed, fingerprint = read
                snapshot = Snapshot(
                    inventory,
                    schema_out,
                    functions_out,
                    _server_version(conn),
                    result.pg_dump_version,
                    fingerprint,
                )
                return snapshot, followed
            get_logger().info("snapshot.moved", attempt=attempt, source=info.display())
        raise SyncError(
            f"the schema of {info.display()} changed during each of {READ_ATTEMPTS} reads "
            "(DDL running): nothing written; the next sync tries again",
            Cause.CATALOG,
        )
    except ExportError as exc:
        raise SyncError(str(exc), Cause.PG_DUMP) from None
    finally:
        await close_quickly(conn)


async def _read_once(
    conn: asyncpg.Connection,
    info: ConnInfo,
    catalog_options: CatalogOptions,
    export_options: ExportOptions,
    schema_out: Path,
    functions_out: Path,
    dump_full: str,
    then: Callable[[Inventory], Awaitable[T]] | None,
    exported: Callable[[], Awaitable[None]] | None = None,
) -> tuple[ExportResult, Inventory, T | None, Fingerprint] | None:
    """Export and inventory of one moment, or None when DDL committed while they were read.

    The catalog session's transaction exports its snapshot and pg_dump imports it; the
    catalog probe's fingerprint taken in that snapshot must equal the one taken after both are
    done, or the two may describe different states. The snapshot alone is not enough:
    pg_get_functiondef, pg_get_viewdef and the other deparsing functions (the inventory's and
    pg_dump's own) read the catalog through the system caches, which see the latest committed
    state, not the transaction's snapshot; a function replaced meanwhile would show its new
    text in the inventory and its old one in pg_dump's MVCC read.

    The first fingerprint is taken in the exported snapshot, which pg_export_snapshot() fixed
    before pg_dump starts: it runs beside pg_dump, ahead of the inventory on the catalog
    session. Without a shared snapshot it must come first (the transaction's snapshot is
    taken by its first statement, which must precede pg_dump's own)."""
    probe = Probe()
    with catalog_errors(info):
        transaction, shared = await _shared_transaction(conn, info)
    dump_started = asyncio.Event()

    async def end_transaction() -> None:
        # Read-only: nothing to commit. Errors do not matter: the reads are done. Bounded: over
        # a frozen link (a run cancelled by sync_timeout_s) the answer never comes.
        await end_quickly(conn, transaction)

    try:
        before = await _stamp(conn, info, probe) if shared is None else None

        async def release() -> None:
            # Not idle in transaction longer than needed (the server's
            # idle_in_transaction_session_timeout would end the session): once pg_dump has
            # imported the snapshot, and with no shared snapshot at once.
            if shared is not None:
                await dump_started.wait()
            await end_transaction()

        async def followed_by(inventory: Inventory) -> T | None:
            return await then(inventory) if then is not None else None

        async def catalog() -> tuple[Fingerprint, Inventory, T | None]:
            stamp = before or await _stamp(conn, info, probe)
            inventory = await _load(conn, catalog_options, info)
            _, followed = await both(release(), followed_by(inventory))
            return stamp, inventory, followed

        options = replace(export_options, snapshot=shared, encoding=server_encoding(conn))
        result, (stamped, inventory, followed) = await both(
            _export(info, options, schema_out, functions_out, dump_full, dump_started), catalog()
        )
    finally:
        await end_transaction()
    # A fresh snapshot: what is committed now; the files are settled meanwhile.
    after, _ = await both(_stamp(conn, info, probe), _settled(exported))
    if after.digest != stamped.digest:
        return None
    return result, inventory, followed, stamped


async def _settled(exported: Callable[[], Awaitable[None]] | None) -> None:
    if exported is not None:
        await exported()


async def _stamp(conn: asyncpg.Connection, info: ConnInfo, probe: Probe) -> Fingerprint:
    """The catalog probe's fingerprint as this moment sees it: in the shared transaction its
    snapshot, outside it a fresh one (JIT and parallel workers off, as for every read)."""
    with catalog_errors(info):
        if conn.is_in_transaction():
            return await probe.fingerprint(conn)
        async with read_transaction(conn):
            await conn.execute(
                "SELECT pg_catalog.set_config('jit', 'off', true),"
                " pg_catalog.set_config('max_parallel_workers_per_gather', '0', true)"
            )
            return await probe.fingerprint(conn)


async def _shared_transaction(
    conn: asyncpg.Connection, info: ConnInfo
) -> tuple[Transaction, str | None]:
    """A repeatable-read transaction and its exported snapshot for pg_dump, or None (said in
    the log) where none can be exported: a hot standby before PostgreSQL 10, a server or
    pooler that refuses it. (Not in a savepoint: a subtransaction cannot export one.)"""
    transaction = conn.transaction(isolation="repeatable_read", readonly=True)
    await transaction.start()
    try:
        snapshot_id: str = await conn.fetchval("SELECT pg_catalog.pg_export_snapshot()")
        return transaction, snapshot_id
    except asyncpg.PostgresError as exc:
        await end_quickly(conn, transaction)
        get_logger().warning(
            "snapshot.not_shared",
            source=info.display(),
            reason=f"pg_export_snapshot() failed: {exc}",
            effect="pg_dump and the catalog read separate snapshots; concurrent DDL may make "
            "a backup's export and inventory disagree",
        )
    transaction = conn.transaction(isolation="repeatable_read", readonly=True)
    await transaction.start()
    return transaction, None


async def _export(
    info: ConnInfo,
    options: ExportOptions,
    schema_out: Path,
    functions_out: Path,
    version: str,
    started: asyncio.Event,
) -> ExportResult:
    """pg_dump on the shared snapshot; should pg_dump reach a server that does not know it
    (a pooler, another host of a multi-host DSN), once more without, and say so."""
    try:
        return await export_schema(info, options, schema_out, functions_out, version, started)
    except ExportError as exc:
        if options.snapshot is None or "snapshot" not in str(exc):
            raise
        get_logger().warning(
            "snapshot.not_shared",
            source=info.display(),
            reason=str(exc),
            effect="exported again without the shared snapshot; concurrent DDL may make a "
            "backup's export and inventory disagree",
        )
        started.set()  # nothing to wait for any more: the catalog's transaction may end
        return await export_schema(
            info, replace(options, snapshot=None), schema_out, functions_out, version, started
        )


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Run two awaitables concurrently; if either fails or we are cancelled, cancel the other
    and wait for it (pg_dump's group is killed, temp files removed) before raising."""
    one, two = asyncio.ensure_future(first), asyncio.ensure_future(second)
    try:
        return await asyncio.gather(one, two)  # the first failure surfaces at once
    except BaseException:
        for task in (one, two):
            task.cancel()
        await asyncio.gather(one, two, return_exceptions=True)
        raise


# Who holds a table exclusively (DDL running): our own wait was cancelled by lock_timeout, so
# it can no longer be asked what it waited for; these are the likely culprits.
_LOCKED_BY_OTHERS = """
SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'AccessExclusiveLock'
  AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY 1 LIMIT 5"""


async def _locked_by_others(conn: asyncpg.Connection) -> list[str]:
    with contextlib.suppress(Exception):
        return [str(r["name"]) for r in await conn.fetch(_LOCKED_BY_OTHERS, timeout=5)]
    return []


async def _load(conn: asyncpg.Connection, options: CatalogOptions, info: ConnInfo) -> Inventory:
    with catalog_errors(info):
        try:
            return await load_inventory(conn, options)
        except NoMatchingSchemas as exc:
            raise SyncError(f"{exc} ({info.display()})", Cause.CATALOG) from None
        except asyncpg.LockNotAvailableError:
            held = await _locked_by_others(conn)
            which = f" on {', '.join(held)} (held exclusively by another session)" if held else ""
            raise SyncError(
                f"catalog query on {info.display()} gave up waiting for a lock{which} after "
                "lock_wait_timeout_ms: DDL is running on production; will retry",
                Cause.CATALOG,
            ) from None


def server_encoding(conn: asyncpg.Connection) -> str:
    """The database's encoding: pg_dump writes in it (pins.py says why)."""
    return str(conn.get_settings().server_encoding)


def _server_version(conn: asyncpg.Connection) -> str:
    v = conn.get_server_version()
    return f"{v.major}.{v.micro}" if v.major >= 10 else f"{v.major}.{v.minor}.{v.micro}"


async def compare_databases(
    source: ConnInfo,
    target: ConnInfo,
    options: CatalogOptions,
    limits: SessionLimits | None = None,
) -> Drift:
    """What differs going from `source` to `target`: catalog only, both read concurrently."""
    register_secret(source.password)
    register_secret(target.password)
    (old, _), (new, _) = await asyncio.gather(
        read_inventory(source, options, limits), read_inventory(target, options, limits)
    )
    return compare(old, new, sides=("from", "to"))  # FROM_DSN and TO_DSN
