"""Pure: what the status page shows, as plain data, and the /api/status document.

The daemon builds a `Status` on its own loop (service/daemon/status.py) and hands it over;
nothing here reaches back into the daemon. Backups come from disk/ (`BackupRow.of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from service.disk import files
from service.disk.backups import Backup
from service.disk.history import DriftRecord, History, ItemRecord, RunRecord
from service.settings.links import backup_path, target_path

API_VERSION = 1
# What a backup page offers for download: the backup's own files, nothing else.
DOWNLOADS = (
    files.BACKUP_SUMMARY,
    files.BACKUP_SCHEMA,
    files.BACKUP_FUNCTIONS,
    files.BACKUP_INVENTORY,
    files.BACKUP_MANIFEST,
)


@dataclass(frozen=True)
class TargetStatus:
    """One target as the daemon sees it now."""

    name: str
    source: str  # host/port/database as ConnInfo.display() shows it: never a password
    healthy: bool
    health: str  # the `health` command's reason
    schedule: str
    timezone: str
    check_only: bool
    backup_dir: Path
    history: History
    running_since: datetime | None = None
    next_run_at: datetime | None = None
    last_full_sync_at: datetime | None = None
    last_success_at: datetime | None = None
    last_probe_at: datetime | None = None
    last_probe_result: str | None = None
    watch: str | None = None  # watch mode, in words; None when off
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_cause: str | None = None
    last_failure_at: datetime | None = None
    generation: int = -1  # grows with every change of the target's runner (-1: unknown)

    @property
    def path(self) -> str:
        return target_path(self.name)


@dataclass(frozen=True)
class Status:
    generated_at: datetime
    version: str  # pg-schema-sync's
    revision: str  # changes whenever what the daemon knows changes (the page's refresh)
    targets: tuple[TargetStatus, ...]
    daemon_started_at: datetime | None = None

    def target(self, name: str) -> TargetStatus | None:
        return next((t for t in self.targets if t.name == name), None)


@dataclass(frozen=True)
class BackupRow:
    """One backup folder as the page lists it."""

    target: str
    name: str
    status: str
    kind: str
    created_at: datetime
    finished_at: datetime | None
    first_run: bool
    drift: dict[str, int]
    verify: str
    attempts: int
    problem: str | None
    reason: str | None
    files: tuple[str, ...] = ()  # which of DOWNLOADS the folder holds (regular files only)

    @classmethod
    def of(cls, target: str, backup: Backup, present: tuple[str, ...] = ()) -> BackupRow:
        m = backup.manifest
        return cls(
            target=target,
            name=backup.name,
            status=backup.status,
            kind=backup.kind,
            created_at=backup.created_at,
            finished_at=m.finished_at if m else None,
            first_run=m.first_run if m else False,
            drift=dict(m.drift) if m else {},
            verify=m.verify if m else "off",
            attempts=m.attempts if m else 1,
            problem=backup.problem,
            reason=m.reason if m else None,
            files=present,
        )

    @property
    def path(self) -> str:
        return backup_path(self.target, self.name)

    @property
    def changes(self) -> int:
        return sum(self.drift.values())


# --------------------------------------------------------------------------------------------
# /api/status (schema: docs/status-api.schema.json)


def status_doc(
    status: Status, backups: dict[str, list[BackupRow]], etag: str, with_diffs: bool = False
) -> dict[str, Any]:
    return {
        "version": API_VERSION,
        "generated_at": _t(status.generated_at),
        "pg_schema_sync": status.version,
        "revision": etag,  # the daemon's state, the targets' health and their backups
        "daemon_started_at": _t(status.daemon_started_at),
        "targets": [target_doc(t, backups.get(t.name, []), with_diffs) for t in status.targets],
    }


def target_doc(t: TargetStatus, backups: list[BackupRow], with_diffs: bool) -> dict[str, Any]:
    drift = t.history.drift
    return {
        "name": t.name,
        "path": t.path,
        "source": t.source,
        "healthy": t.healthy,
        "health": t.health,
        "schedule": t.schedule,
        "timezone": t.timezone,
        "check_only": t.check_only,
        "running": t.running_since is not None,
        "running_since": _t(t.running_since),
        "next_run_at": _t(t.next_run_at),
        "last_full_sync_at": _t(t.last_full_sync_at),
        "last_success_at": _t(t.last_success_at),
        "last_probe_at": _t(t.last_probe_at),
        "last_probe_result": t.last_probe_result,
        "watch": t.watch,
        "consecutive_failures": t.consecutive_failures,
        "last_error": t.last_error,
        "last_error_cause": t.last_error_cause,
        "last_failure_at": _t(t.last_failure_at),
        "latest_drift": drift_doc(t.name, drift, with_diffs) if drift else None,
        "timeline": _timeline_doc(t.history.runs),
        "backups": [_backup_doc(b) for b in reversed(backups)],  # newest first
    }


def drift_doc(target: str, d: DriftRecord, with_diffs: bool) -> dict[str, Any]:
    return {
        "status": d.status,
        "fingerprint": d.fingerprint,
        "headline": d.headline,
        "found_at": _t(d.found_at),
        "last_seen_at": _t(d.last_seen_at),
        "ended_at": _t(d.ended_at),
        "files": d.files,
        "held_because": d.held_because,
        "run_id": d.run_id,
        "backup": d.backup,
        "backup_path": backup_path(target, d.backup) if d.backup else None,
        "commit": d.commit,
        "total": d.total,
        "items": [item_doc(i, with_diffs) for i in d.items],
    }


def item_doc(i: ItemRecord, with_diff: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": i.kind,
        "name": i.name,
        "change": i.change,
        "impact": i.impact,
        "reasons": list(i.reasons),
        "from": i.from_name,
    }
    if with_diff:
        doc["diff"] = i.diff
        doc["diff_clipped"] = i.clipped
    return doc


def run_doc(r: RunRecord) -> dict[str, Any]:
    return {
        "at": _t(r.at),
        "kind": r.kind,
        "drift": r.drift,
        "duration_s": r.duration_s,
        "first_run": r.first_run,
        "backup": r.backup,
        "cause": r.cause,
        "error": r.error,
    }


def backup_doc(b: BackupRow) -> dict[str, Any]:
    return {
        "name": b.name,
        "path": b.path,
        "status": b.status,
        "kind": b.kind,
        "created_at": _t(b.created_at),
        "finished_at": _t(b.finished_at),
        "first_run": b.first_run,
        "drift": b.drift,
        "verify": b.verify,
        "attempts": b.attempts,
        "problem": b.problem,
        "files": list(b.files),
    }


# The documents of what does not change between two requests (a target's cycles, each backup
# row: the listing keeps the same objects), kept by identity: 5,000 backups are a page away.
_docs: dict[int, tuple[object, Any]] = {}


def _by_identity(obj: object, build: Any) -> Any:
    cached = _docs.get(id(obj))
    if cached is None or cached[0] is not obj:
        if len(_docs) > 100_000:
            _docs.clear()
        cached = _docs[id(obj)] = (obj, build(obj))
    return cached[1]


def _timeline_doc(runs: tuple[RunRecord, ...]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = _by_identity(runs, lambda rs: [run_doc(r) for r in rs])
    return docs


def _backup_doc(row: BackupRow) -> dict[str, Any]:
    doc: dict[str, Any] = _by_identity(row, backup_doc)
    return doc


def _t(when: datetime | None) -> str | None:
    return when.isoformat() if when else None
