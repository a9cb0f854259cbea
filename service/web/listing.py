"""The backups of each target, read through disk/ and kept between requests.

Reading 5,000 manifests, or even statting 5,000 folders, on every page view would cost far
more than rendering the page. What writes a backup, and where it shows:

- a backup created, pruned or rolled back (by the daemon or by hand): the backups folder's
  own mtime moves: every backup folder is statted again;
- the target's runner ran (its `generation` moved): it may have finished its new backup or
  folded a repeated failure into the newest earlier one (merge_repeated_failure): the
  newest backups are statted again;
- a run finishing its own backup, or marked interrupted: only backups still "started" can,
  and those are statted on every view.

A backup whose folder's mtime changed (a file written or replaced in it) is read again; the
others are kept. A folder that is a symbolic link is not listed: the page never follows a
link out of backups/.
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
from service.disk.retention import STARTED
from service.web.model import DOWNLOADS, BackupRow

RECHECK_NEWEST = 2  # after a run: its own backup, and the one a repeated failure merges into


@dataclass(frozen=True)
class _Seen:
    mtime_ns: int
    row: BackupRow


@dataclass(frozen=True)
class _Folder:
    key: tuple[int, int]  # (the backup folder's mtime, the target's generation)
    seen: dict[str, _Seen]  # oldest first
    rows: list[BackupRow]
    signature: str


class Listing:
    """Thread-safe: pages are rendered in the web's own worker threads."""

    def __init__(self) -> None:
        self._folders: dict[Path, _Folder] = {}
        self._lock = threading.Lock()

    def backups(
        self, target: str, backup_dir: Path, generation: int = -1
    ) -> tuple[list[BackupRow], str]:
        """(the target's backups oldest first, a signature that changes when they change)."""
        folder = backup_dir.absolute()
        try:
            key = (os.stat(folder).st_mtime_ns, generation)
        except OSError:
            return [], "none"
        with self._lock:
            known = self._folders.get(folder)
        if known is None or known.key[0] != key[0] or generation < 0:
            seen = self._reread(folder, target, known.seen if known else {}, newest=None)
        elif known.key == key and not any(r.status == STARTED for r in known.rows):
            return known.rows, known.signature
        else:  # the runner ran, or a backup is still being written
            newest = RECHECK_NEWEST if known.key != key else 0
            seen = self._reread(folder, target, known.seen, newest=newest)
        digest = hashlib.sha256(repr(key).encode())
        for name, s in seen.items():
            digest.update(f"{name}\0{s.mtime_ns}\n".encode())
        rows = [s.row for s in seen.values()]
        entry = _Folder(key, seen, rows, digest.hexdigest()[:16])
        with self._lock:
            self._folders[folder] = entry
        return rows, entry.signature

    def find(
        self, target: str, backup_dir: Path, name: str, generation: int = -1
    ) -> BackupRow | None:
        """A backup by a name the listing holds; anything else (`..`, a link) is None."""
        rows, _ = self.backups(target, backup_dir, generation)
        return next((r for r in rows if r.name == name), None)

    @staticmethod
    def _reread(
        folder: Path, target: str, known: dict[str, _Seen], newest: int | None
    ) -> dict[str, _Seen]:
        """newest=None: list and stat every folder; else stat the started ones and the
        `newest` last ones, keep the rest as they were."""
        if newest is not None:
            last = set(list(known)[-newest:]) if newest else set()
            names = [
                (n, _mtime(folder / n) if s.row.status == STARTED or n in last else s.mtime_ns)
                for n, s in known.items()
            ]
        else:
            names = _folders(folder)
        fresh: dict[str, _Seen] = {}
        for name, mtime in names:
            if mtime is None:  # gone since
                continue
            seen = known.get(name)
            if seen is None or seen.mtime_ns != mtime:
                path = folder / name
                try:
                    seen = _Seen(mtime, BackupRow.of(target, read_backup(path), _present(path)))
                except OSError:  # pruned while we looked
                    continue
            fresh[name] = seen
        return fresh


def _mtime(path: Path) -> int | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_mtime_ns if stat.S_ISDIR(info.st_mode) else None


def _folders(backup_dir: Path) -> list[tuple[str, int | None]]:
    """(name, mtime_ns) of the backup folders, oldest first; links and files left out."""
    found: list[tuple[str, int | None]] = []
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
    return sorted(found, key=lambda f: files.backup_sort_key(f[0]))


def _present(folder: Path) -> tuple[str, ...]:
    out = []
    for name in DOWNLOADS:
        try:
            if stat.S_ISREG(os.lstat(folder / name).st_mode):
                out.append(name)
        except OSError:
            continue
    return tuple(out)
