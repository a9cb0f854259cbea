"""Rollback: put a backup's files back, atomically, and record that as a backup of its own.

Nothing is lost: files on disk that no backup holds (edited by hand) are saved as a
"snapshot" backup first, and the restore itself is a "rollback" backup, so running
`pg-schema-sync rollback` again returns to where you were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from service.disk import files
from service.disk.backups import (
    FILE_FOR,
    Backup,
    BackupError,
    Manifest,
    SchemaPaths,
    combined_hash,
    current_hashes,
    list_history,
    write_manifest,
)
from service.disk.retention import DONE, FAILED, STARTED


def default_target(history: Sequence[Backup], current: Mapping[str, str]) -> Backup:
    """The good backup before the current files: the newest done one holding other files,
    older than the newest backup that holds the current files (when one does)."""
    now_hash = combined_hash(current)
    newest_first = list(reversed(history))
    start = next(
        (i for i, b in enumerate(newest_first) if now_hash and b.files_hash == now_hash), -1
    )
    for b in newest_first[start + 1 :]:
        if b.status == DONE and b.files_hash != now_hash and b.files_hash is not None:
            return b
    raise BackupError("no earlier good backup to roll back to: see `pg-schema-sync backups`")


def restore(
    paths: SchemaPaths, target: Backup, run_id: str | None = None, verified: str = "off"
) -> Path:
    """Put a backup's files back in place atomically (file by file, inventory last) and record
    the result as a new backup, so the rollback itself can be rolled back."""
    now = datetime.now(UTC)
    current = current_hashes(paths)
    history = list_history(paths.backup_dir)
    cur = combined_hash(current)
    if current and (cur is None or all(b.files_hash != cur for b in history)):
        # The files on disk are in no backup (edited by hand?): keep them before replacing.
        _snapshot_current(paths, now, current, target.name)
    hashes = {n: files.sha256_file(target.path / n) for n in files.BACKUP_RESTORABLE}
    manifest = Manifest(
        status=STARTED,
        kind="rollback",
        created_at=now,
        run_id=run_id,
        files=hashes,
        restored_from=target.name,
        reason=f"rollback to {target.name}",
        verify=verified,
    )
    content: dict[str, Path | bytes] = {n: target.path / n for n in files.BACKUP_RESTORABLE}
    content[files.BACKUP_SUMMARY] = _rollback_summary(now, target, hashes).encode()
    content[files.BACKUP_MANIFEST] = manifest.to_json()
    folder = files.create_backup(paths.backup_dir, now, content)
    try:
        for name in files.BACKUP_RESTORABLE:  # schema, functions, inventory: inventory last
            files.copy_atomically(folder / name, getattr(paths, FILE_FOR[name]))
    except BaseException as exc:
        write_manifest(folder, manifest.finished(FAILED, reason=f"restore failed: {exc}"))
        raise
    write_manifest(folder, manifest.finished(DONE))
    return folder


def _snapshot_current(
    paths: SchemaPaths, now: datetime, hashes: Mapping[str, str], target: str
) -> Path:
    content: dict[str, Path | bytes] = {
        n: getattr(paths, attr) for n, attr in FILE_FOR.items() if n in hashes
    }
    status = DONE if combined_hash(hashes) else FAILED
    manifest = Manifest(
        status=status,
        kind="snapshot",
        created_at=now,
        finished_at=now,
        files=dict(hashes),
        reason=f"files on disk before rollback to {target}",
    )
    content[files.BACKUP_MANIFEST] = manifest.to_json()
    return files.create_backup(paths.backup_dir, now, content)


def _rollback_summary(now: datetime, target: Backup, hashes: Mapping[str, str]) -> str:
    lines = [
        f"# Rollback {now.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}",
        "",
        f"Restored the schema files of backup `{target.name}`.",
        "",
        "## Files",
        "",
        "| file | sha256 |",
        "|---|---|",
        *(f"| `{n}` | `{h}` |" for n, h in sorted(hashes.items())),
    ]
    return "\n".join(lines) + "\n"
