"""Skipped cycles: probe production first, and skip the full read when nothing changed.

A cycle is skipped only when all of these hold; anything else (a probe error included) reads
production in full, so a skip can only ever repeat the last full sync's answer:
- the catalog fingerprint equals the one the last successful full sync recorded;
- the schema, functions and inventory files still have the sha256 that sync left;
- pg_dump reports the same version, and the settings that shape the files are the same;
- that sync is younger than `full_sync_interval_s` (the safety net).
The fingerprint recorded is the one the full read takes in its own snapshot, the one pg_dump
imports (production/snapshot.py), beside pg_dump rather than before it: it describes exactly
the state the files were written from, and the read is retried if DDL committed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from service import __version__
from service.disk.record import SyncRecord, hashes_of, read_record, write_record
from service.errors import Cause, SyncError
from service.production import pins
from service.production.conninfo import ConnInfo
from service.production.db import SessionLimits
from service.production.pgdump import ExportError, pg_dump_version, resolve_pg_dump
from service.production.probe import Fingerprint, probe_once

if TYPE_CHECKING:  # a check the probe answers builds no Settings (cli/quick.py)
    from service.settings.model import Settings

UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Decision:
    skip: bool
    reason: str  # UNCHANGED when skipped, else why the full read runs
    fingerprint: Fingerprint | None = None  # to record after the full sync; None: record none
    record: SyncRecord | None = None
    changed_catalogs: list[str] = field(default_factory=list)
    probe_error: str | None = None
    probe_cause: Cause | None = None  # the probe's failure: connection, authentication, ...


@dataclass(frozen=True)
class ProbeTarget:
    """What a probe and the decision to skip read of a target's settings: built from the
    Settings (`of`), or from what a check of the same settings left (settings/cache.py)."""

    name: str
    conninfo: ConnInfo
    pg_dump: str
    digest: str  # settings_digest of these settings and files
    full_sync_interval_s: float
    sync_timeout_s: float
    limits: SessionLimits

    @classmethod
    def of(cls, settings: Settings, files: list[Path]) -> ProbeTarget:
        return cls(
            name=settings.name,
            conninfo=settings.conninfo(),
            pg_dump=settings.pg_dump,
            digest=settings_digest(settings, files),
            full_sync_interval_s=settings.full_sync_interval_s,
            sync_timeout_s=settings.sync_timeout_s,
            limits=session_limits(settings),
        )


def session_limits(settings: Settings) -> SessionLimits:
    # lock_wait_timeout_ms bounds pg_dump's lock waits; the catalog session waits no longer.
    return SessionLimits(
        statement_timeout_ms=settings.statement_timeout_ms,
        lock_timeout_ms=settings.lock_wait_timeout_ms,
    )


def settings_digest(settings: Settings, files: list[Path]) -> str:
    """Digest of everything in the settings and the client that shapes the files (and of this
    tool's version, whose normalisation shapes them too). The client's `options` (the DSN's or
    PGOPTIONS) and a service file reach pg_dump: the pinned settings in them no longer print,
    but others may (a role, row_security); a change in them reads in full, once."""
    info = settings.conninfo()
    shaping = {
        "tool": __version__,
        "schemas": list(settings.schemas),
        "exclude_schemas": list(settings.exclude_schemas),
        "owners": settings.include_owners,
        "privileges": settings.include_privileges,
        "comments": settings.include_comments,
        "files": [str(p) for p in files],
        "source": info.display(),
        "options": info.params.get("options"),
        "service": info.params.get("service"),
        "pg_dump": shutil.which(settings.pg_dump) or settings.pg_dump,
        "pins": pins.digest_text(),
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()


def decide(
    record: SyncRecord | None,
    fingerprint: Fingerprint,
    file_hashes: dict[str, str],
    dump_version: str,
    digest: str,
    now: datetime,
    full_sync_interval_s: float,
) -> str:
    """UNCHANGED when the cycle may be skipped, else the reason it may not (pure)."""
    if record is None:
        return "no record of a full sync"
    if fingerprint.digest != record.fingerprint:
        return "catalog changed"
    if file_hashes != record.file_hashes:
        return "files changed on disk"
    if dump_version != record.pg_dump_version:
        return "pg_dump version changed"
    if digest != record.settings_digest:
        return "settings changed"
    if (now - record.recorded_at).total_seconds() >= full_sync_interval_s:
        return "full_sync_interval reached"
    return UNCHANGED


async def probe_and_decide(
    target: ProbeTarget, files: list[Path], backup_dir: Path, full: bool
) -> Decision:
    """Probe, then decide. Without a record, or with `full`, nothing can be skipped: no probe
    then (the full read takes the fingerprint it records in its own snapshot, beside pg_dump).

    The files' sha256 and pg_dump's version are taken while the probe waits on the server:
    a skipped cycle is the command's whole work, and these are a third of its own time."""
    record = read_record(backup_dir)
    if full:
        return Decision(False, "full sync requested", record=record)
    if record is None:
        return Decision(False, "no record of a full sync")
    aside = asyncio.ensure_future(_file_hashes_and_version(files, target.pg_dump))
    try:
        fingerprint = await probe_once(target.conninfo, target.limits)
    except BaseException as exc:
        aside.cancel()
        with contextlib.suppress(BaseException):
            await aside
        if isinstance(exc, SyncError):
            # The full read will fail the same way, or succeed: either is the right answer.
            return Decision(
                False, "probe failed", record=record, probe_error=str(exc), probe_cause=exc.cause
            )
        raise
    changed = fingerprint.changed_catalogs(record.parts)
    hashes, dump_version, dump_error = await aside
    if dump_version is None:
        return Decision(False, "pg_dump failed", fingerprint, record, changed, dump_error)
    reason = decide(
        record,
        fingerprint,
        hashes,
        dump_version,
        target.digest,
        datetime.now(UTC),
        target.full_sync_interval_s,
    )
    return Decision(reason == UNCHANGED, reason, fingerprint, record, changed)


async def _file_hashes_and_version(
    files: list[Path], pg_dump: str
) -> tuple[dict[str, str], str | None, str | None]:
    """(sha256 of each file, pg_dump's version or None, why not), side by side."""
    hashing = asyncio.ensure_future(asyncio.to_thread(hashes_of, files))
    try:
        version, error = await _dump_version(pg_dump), None
    except ExportError as exc:
        version, error = None, str(exc)
    except BaseException:
        hashing.cancel()
        with contextlib.suppress(BaseException):
            await hashing
        raise
    return await hashing, version, error


_VERSIONS: dict[tuple[str, int, int, int], str] = {}


async def _dump_version(pg_dump: str) -> str:
    """pg_dump's version, asked once per binary (by path, inode, size and mtime): the daemon
    would otherwise start a process every cycle of every target."""
    path = resolve_pg_dump(pg_dump)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ExportError(f"cannot run {path}: {exc}") from None
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _VERSIONS:
        _VERSIONS[key] = (await pg_dump_version(pg_dump))[1]
    return _VERSIONS[key]


def record_full_sync(
    settings: Settings,
    files: list[Path],
    backup_dir: Path,
    fingerprint: Fingerprint,
    dump_version: str,
    counts: dict[str, int],
    written: dict[str, str] | None = None,
) -> None:
    """After a successful full sync: what it saw, for the next cycle to compare with.
    `written`: the sha256 of what the sync wrote to `files` (path -> digest); else the
    files are hashed as they are."""
    write_record(
        backup_dir,
        SyncRecord(
            fingerprint=fingerprint.digest,
            recorded_at=datetime.now(UTC),
            file_hashes=written if written is not None else hashes_of(files),
            pg_dump_version=dump_version,
            settings_digest=settings_digest(settings, files),
            counts=counts,
            parts=fingerprint.parts,
        ),
    )
