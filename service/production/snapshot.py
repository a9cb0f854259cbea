"""Reading production: one read-only session for the catalog, pg_dump beside it, concurrently."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg

from service.compare.drift import Drift, compare
from service.compare.inventory import Inventory
from service.errors import Cause, SyncError
from service.logs import register_secret
from service.production.catalog import CatalogOptions, load_inventory
from service.production.conninfo import ConnInfo
from service.production.db import SessionLimits, connect
from service.production.export import (
    ExportError,
    ExportOptions,
    check_versions,
    export_schema,
    pg_dump_version,
)

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


async def open_session(info: ConnInfo, limits: SessionLimits) -> asyncpg.Connection:
    """Connect, turning every way it can fail into one clear line."""
    where = info.display()
    try:
        return await connect(info, limits)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise SyncError(
            f"authentication failed for {where}: {exc}; check the password "
            "(PGPASSWORD, SCHEMA_SYNC_PASSWORD or a passfile) and the user",
            Cause.AUTHENTICATION,
        ) from None
    except asyncpg.InvalidCatalogNameError as exc:
        raise SyncError(
            f"cannot connect to {where}: {exc}; check the database name", Cause.AUTHENTICATION
        ) from None
    except asyncpg.PostgresError as exc:
        raise SyncError(f"cannot connect to {where}: {exc}", Cause.CONNECTION) from None
    except TimeoutError:  # a connection failure like a refused one (same cause, same retry)
        raise SyncError(
            f"cannot connect to {where}: no answer within the connect timeout; is the server "
            "running and reachable?",
            Cause.CONNECTION,
        ) from None
    except (OSError, asyncpg.InterfaceError) as exc:
        reason = str(exc) or type(exc).__name__
        raise SyncError(
            f"cannot connect to {where}: {reason}; is the server running and reachable?",
            Cause.CONNECTION,
        ) from None


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
) -> tuple[Snapshot, T | None]:
    """pg_dump and the catalog queries, concurrently, against one production database.

    `then(inventory)` runs as soon as the catalog is read, while pg_dump is still exporting
    (at 10,000 tables it takes twice as long): work on the inventory alone goes there.
    Returns the snapshot and what `then` returned.
    """
    conn = await open_session(info, limits or SessionLimits())
    try:
        try:
            dump_major, dump_full = await pg_dump_version(export_options.pg_dump)
            check_versions(dump_major, dump_full, conn.get_server_version().major * 10_000)
        except ExportError as exc:
            raise SyncError(str(exc), Cause.PG_DUMP) from None

        async def catalog() -> tuple[Inventory, T | None]:
            inventory = await _load(conn, catalog_options, info)
            return inventory, (await then(inventory) if then is not None else None)

        result, (inventory, followed) = await both(
            export_schema(info, export_options, schema_out, functions_out, dump_full), catalog()
        )
        snapshot = Snapshot(
            inventory, schema_out, functions_out, _server_version(conn), result.pg_dump_version
        )
        return snapshot, followed
    except ExportError as exc:
        raise SyncError(str(exc), Cause.PG_DUMP) from None
    finally:
        await close_quickly(conn)


CLOSE_TIMEOUT_S = 2.0


async def close_quickly(conn: asyncpg.Connection) -> None:
    """Close politely, but never wait on a half-open connection: asyncpg's close() waits for
    the server's answer to Terminate, and over a partition that never comes (a stop would
    then outlast its grace). On timeout asyncpg aborts the socket itself."""
    with contextlib.suppress(Exception):
        await conn.close(timeout=CLOSE_TIMEOUT_S)
    if not conn.is_closed():
        conn.terminate()


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
    try:
        return await load_inventory(conn, options)
    except asyncpg.LockNotAvailableError:
        held = await _locked_by_others(conn)
        which = f" on {', '.join(held)} (held exclusively by another session)" if held else ""
        raise SyncError(
            f"catalog query on {info.display()} gave up waiting for a lock{which} after "
            "lock_wait_timeout_ms: DDL is running on production; will retry",
            Cause.CATALOG,
        ) from None
    except asyncpg.PostgresError as exc:
        raise SyncError(f"catalog query on {info.display()} failed: {exc}", Cause.CATALOG) from None
    except TimeoutError:
        raise _query_timeout(info) from None
    except (OSError, asyncpg.InterfaceError) as exc:
        if isinstance(exc.__context__, TimeoutError):
            # The client-side bound fired and asyncpg dropped the connection; the transaction's
            # ROLLBACK then failed on it and hid the timeout.
            raise _query_timeout(info) from None
        raise SyncError(
            f"lost the connection to {info.display()}: {exc}", Cause.CONNECTION
        ) from None


def _query_timeout(info: ConnInfo) -> SyncError:
    return SyncError(
        f"a catalog query on {info.display()} got no answer within statement_timeout_ms "
        "+ 2 s: the network or server stopped answering; will retry",
        Cause.TIMEOUT,
    )


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
