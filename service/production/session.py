"""Sessions on production: connect to a supported server, every failure one clear line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from service.errors import Cause, SyncError
from service.production.catalog import server_version_num
from service.production.catalog_versions import UnsupportedServer, check_supported
from service.production.conninfo import ConnInfo
from service.production.db import SessionLimits, connect
from service.production.pins import PinsOverridden
from service.production.pins import check as check_pins


async def open_session(info: ConnInfo, limits: SessionLimits) -> asyncpg.Connection:
    """Connect to a supported server whose session shows the pinned settings, turning every
    way it can fail into one clear line."""
    conn = await _connect(info, limits)
    try:
        check_supported(server_version_num(conn), info.display())
        with catalog_errors(info):
            await check_pins(conn)
    except UnsupportedServer as exc:
        await close_quickly(conn)
        raise SyncError(str(exc), Cause.CATALOG) from None
    except PinsOverridden as exc:
        await close_quickly(conn)
        raise SyncError(f"{info.display()}: {exc}", Cause.CATALOG) from None
    except BaseException:
        await close_quickly(conn)
        raise
    return conn


async def _connect(info: ConnInfo, limits: SessionLimits) -> asyncpg.Connection:
    where = info.display()
    try:
        return await connect(info, limits)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        # A passfile named but unusable is the likelier cause than the password in it.
        why = info.passfile_problem() or (
            "check the password (PGPASSWORD, SCHEMA_SYNC_PASSWORD or a passfile) and the user"
        )
        raise SyncError(
            f"authentication failed for {where}: {exc}; {why}", Cause.AUTHENTICATION
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


CLOSE_TIMEOUT_S = 2.0


async def close_quickly(conn: asyncpg.Connection) -> None:
    """Close politely, but never wait on a half-open connection: asyncpg's close() waits for
    the server's answer to Terminate, and over a partition that never comes (a stop would
    then outlast its grace). On timeout asyncpg aborts the socket itself."""
    with contextlib.suppress(Exception):
        await conn.close(timeout=CLOSE_TIMEOUT_S)
    if not conn.is_closed():
        conn.terminate()


@contextlib.contextmanager
def catalog_errors(info: ConnInfo) -> Iterator[None]:
    """Every way a statement on the catalog session can fail, as one line with its cause."""
    try:
        yield
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
