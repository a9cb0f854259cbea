"""The backups of each target, read through disk/ and kept between requests.

Reading 5,000 manifests on every page view would cost far more than rendering the page, so a
backup is read again only when its folder changed: writing or replacing a file in a folder
(a manifest's status going from started to done, a merge of repeated failures) moves the
folder's mtime, and a new or pruned backup changes the listing itself. A folder that is a
symbolic link is not listed: the page never follows a link out of backups/.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from service.disk import files
from service.disk.backups import read_backup
from service.web.model import DOWNLOADS, BackupRow


@dataclass(frozen=True)
class _Seen:
    mtime_ns: int
    row: BackupRow


class Listing:
    """Thread-safe: pages are rendered in the web's own worker threads."""

    def __init__(self) -> None:
        self._seen: dict[Path, dict[str, _Seen]] = {}
        self._lock = threading.Lock()

    def backups(self, target: str, backup_dir: Path) -> tuple[list[BackupRow], str]:
        """(the target's backups oldest first, a signature that changes when they change)."""
        folder = backup_dir.absolute()
        with self._lock:
            known = dict(self._seen.get(folder, {}))
        fresh: dict[str, _Seen] = {}
        for name, mtime in _folders(folder):
            seen = known.get(name)
            if seen is None or seen.mtime_ns != mtime:
                path = folder / name
                try:
                    row = BackupRow.of(target, read_backup(path), _present(path))
                except OSError:  # pruned while we looked
                    continue
                seen = _Seen(mtime, row)
            fresh[name] = seen
        with self._lock:
            self._seen[folder] = fresh
        digest = hashlib.sha256()
        for name, seen in fresh.items():
            digest.update(f"{name}\0{seen.mtime_ns}\n".encode())
        return [s.row for s in fresh.values()], digest.hexdigest()[:16]

    def find(self, target: str, backup_dir: Path, name: str) -> BackupRow | None:
        """A backup by a name the listing holds; anything else (`..`, a link) is None."""
        rows, _ = self.backups(target, backup_dir)
        return next((r for r in rows if r.name == name), None)


def _folders(backup_dir: Path) -> list[tuple[str, int]]:
    """(name, mtime_ns) of the backup folders, oldest first; links and files left out."""
    found: list[tuple[str, int]] = []
    try:
        with os.scandir(backup_dir) as entries:
            for entry in entries:
                if not entry.name.startswith(files.BACKUP_PREFIX):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        found.append((entry.name, entry.stat(follow_symlinks=False).st_mtime_ns))
                except OSError:
                    continue
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found, key=lambda f: files.backup_sort_key(Path(f[0])))


def _present(folder: Path) -> tuple[str, ...]:
    out = []
    for name in DOWNLOADS:
        try:
            if stat.S_ISREG(os.lstat(folder / name).st_mode):
                out.append(name)
        except OSError:
            continue
    return tuple(out)
