"""Errors a user can cause or meet: one line of text plus why, for alerts and retries."""

from __future__ import annotations

from enum import StrEnum


class Cause(StrEnum):
    """Why a sync failed."""

    CONNECTION = "connection"
    TIMEOUT = "timeout"  # a bound on a network wait ran out (half-open connection, partition)
    AUTHENTICATION = "authentication"
    PG_DUMP = "pg_dump"
    DISK = "disk"
    CATALOG = "catalog"
    VERIFY = "verify"
    LOCK = "lock"  # another writer held the folder's write lock too long
    INTERNAL = "internal"  # a bug: an exception other than SyncError
    OTHER = "other"


class SyncError(RuntimeError):
    """A sync could not complete; the message is one line saying what, why and what to do."""

    def __init__(self, message: str, cause: Cause = Cause.OTHER) -> None:
        super().__init__(message)
        self.cause = cause


class SettingsError(ValueError):
    """Invalid configuration; the message is one line naming the field and the bad value.

    Defined here, not beside the settings model, so that the command line can catch it
    without importing pydantic (`--help` and `--version` import nothing heavy)."""
