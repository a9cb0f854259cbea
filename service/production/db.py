"""asyncpg sessions that can only read and never wait long on production locks."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg

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
    """A read-only session: every transaction read-only, bounded statement and lock waits."""
    limits = limits or SessionLimits()
    kwargs = info.asyncpg_kwargs()
    kwargs["server_settings"] = {
        **kwargs.get("server_settings", {}),
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
