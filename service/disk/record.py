"""What the last successful full sync saw: the record a later cycle compares its probe with.

It lives in the backup folder (`<backup_dir>/.pg-schema-sync-record.json`), not beside the schema
files: it changes on every full sync whose fingerprint moved (VACUUM FULL does not move it,
but a REINDEX CONCURRENTLY does), and an unchanged database must not write a byte under
sql/, which editors, git and CI watch. backups/ is the tool's own folder, already written by
every sync that drifts. A process without it (a fresh CI checkout) simply runs a full read.
Written atomically (temp file, fsync, rename): a reader sees the old record or the new one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from service.disk import files

RECORD_NAME = ".pg-schema-sync-record.json"  # bookkeeping, like the state and lock files
RECORD_FORMAT = 1


@dataclass(frozen=True)
class SyncRecord:
    fingerprint: str
    recorded_at: datetime
    file_hashes: dict[str, str]  # absolute path -> sha256 of the files the sync left
    pg_dump_version: str
    settings_digest: str  # of the settings that shape the files (see sync.output_settings)
    counts: dict[str, int] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)  # per-catalog, for `probe.changed`

    def to_json(self) -> bytes:
        data: dict[str, Any] = {"format": RECORD_FORMAT, **asdict(self)}
        data["recorded_at"] = self.recorded_at.isoformat()
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, text: str) -> SyncRecord:
        data = json.loads(text)
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"unknown record format {data.get('format')!r}")
        return cls(
            fingerprint=str(data["fingerprint"]),
            recorded_at=datetime.fromisoformat(data["recorded_at"]),
            file_hashes={str(k): str(v) for k, v in data["file_hashes"].items()},
            pg_dump_version=str(data["pg_dump_version"]),
            settings_digest=str(data["settings_digest"]),
            counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
            parts={str(k): str(v) for k, v in data.get("parts", {}).items()},
        )


def record_path(backup_dir: Path) -> Path:
    return backup_dir / RECORD_NAME


def read_record(backup_dir: Path) -> SyncRecord | None:
    """The record, or None when absent or unreadable (either way: run a full sync)."""
    try:
        return SyncRecord.from_json(record_path(backup_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_record(backup_dir: Path, record: SyncRecord) -> None:
    backup_dir.mkdir(parents=True, exist_ok=True)
    files.write_atomically(record_path(backup_dir), record.to_json())


def hashes_of(paths: list[Path]) -> dict[str, str]:
    """sha256 of each file; a missing file hashes as "" so it never matches a recorded one."""
    out: dict[str, str] = {}
    for path in paths:
        try:
            out[str(path)] = files.sha256_file(path)
        except FileNotFoundError:
            out[str(path)] = ""
    return out
