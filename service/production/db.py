"""asyncpg sessions that can only read and never wait long on production locks."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from service.production import pins
from service.production.conninfo import ConnInfo


@dataclass(frozen=True)
class SessionLimits:
    statement_timeout_ms: int = 120_000
    lock_timeout_ms: int = 5_000
    application_name: str = "pg-schema-sync"

    @property
    def command_timeout_s(self) -> float | None:
        """The client's own bound on each query: statement_timeout is enforced by the server,
        so over a dead network (answers never come) only this one ends the wait. A little
        above the server's, so a slow query still fails with the server's clearer message."""
        return self.statement_timeout_ms / 1000 + 2 if self.statement_timeout_ms else None


async def connect(info: ConnInfo, limits: SessionLimits | None = None) -> asyncpg.Connection:
    """A read-only session: every transaction read-only, bounded statement and lock waits, and
    the settings that shape printed text pinned (pins.py: they override the server's)."""
    limits = limits or SessionLimits()
    kwargs = info.asyncpg_kwargs()
    kwargs["server_settings"] = {
        **kwargs.get("server_settings", {}),
        **pins.server_settings(),
        "application_name": kwargs.get("server_settings", {}).get(
            "application_name", limits.application_name
        ),
        "default_transaction_read_only": "on",
        "statement_timeout": str(limits.statement_timeout_ms),
        "lock_timeout": str(limits.lock_timeout_ms),
        "idle_in_transaction_session_timeout": str(limits.statement_timeout_ms),
    }
    # No prepared-statement cache: each catalog query runs once per sync.
    with quiet_passfile_warning():
        conn: asyncpg.Connection = await asyncpg.connect(
            statement_cache_size=0, command_timeout=limits.command_timeout_s, **kwargs
        )
    return conn


@contextlib.contextmanager
def quiet_passfile_warning() -> Iterator[None]:
    """asyncpg prints a Python warning (two lines of source location) for a passfile others
    can read, and skips it; if the password was needed, the authentication error says so in
    one line instead (ConnInfo.passfile_problem)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="password file .* has group or world access")
        yield


ROLLBACK_TIMEOUT_S = 2.0


@contextlib.asynccontextmanager
async def read_transaction(conn: asyncpg.Connection, **options: Any) -> AsyncIterator[None]:
    """A read-only transaction whose end never waits long: it is rolled back (nothing to
    commit), and if the answer does not come - a frozen link, a run cancelled by its
    deadline - the connection is dropped instead (asyncpg's own exit would wait forever)."""
    transaction = conn.transaction(readonly=True, **options)
    await transaction.start()
    try:
        yield
    finally:
        await end_quickly(conn, transaction)


async def end_quickly(conn: asyncpg.Connection, transaction: Any) -> None:
    """Roll a read-only transaction back within ROLLBACK_TIMEOUT_S, else drop the connection."""
    # Ended already, or the connection gone: nothing to do, the reads are done anyway.
    with contextlib.suppress(Exception):
        try:
            async with asyncio.timeout(ROLLBACK_TIMEOUT_S):
                await transaction.rollback()
        except TimeoutError:
            conn.terminate()
