"""The only writer: atomic file replacement and backup folders.

Every write goes to a temp file in the destination folder, is fsynced, renamed over the
target and the folder fsynced (litestream's order), so a crash, a kill or a full disk at any
moment leaves either the old file or the new one, never a torn one. Backup folders are built
under a hidden temp name and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from service.disk import owner
from service.errors import Cause, SyncError

BACKUP_PREFIX = "schema-sync-"
BACKUP_SCHEMA = "production-schema.sql"
BACKUP_FUNCTIONS = "production-functions.sql"
BACKUP_INVENTORY = "inventory.json"
BACKUP_SUMMARY = "sync-summary.md"
BACKUP_MANIFEST = "manifest.json"
# What a backup must hold to be restored; the summary and manifest are for people and tools.
BACKUP_RESTORABLE = (BACKUP_SCHEMA, BACKUP_FUNCTIONS, BACKUP_INVENTORY)


class LinkRefused(SyncError):
    """A managed file is a symbolic link (or no regular file): reading it would copy whatever
    it points at into summaries, diffs and backups that others may read."""

    def __init__(self, path: Path, what: str = "a symbolic link") -> None:
        super().__init__(
            f"{path} is {what}: pg-schema-sync never follows links inside the folders it "
            "manages (another file's content would be copied into summaries, diffs and "
            "backups); replace it with a regular file, or remove it and run `sync`",
            Cause.DISK,
        )


def open_regular(path: Path) -> BinaryIO:
    """Open a file we manage for reading, refusing a symlink in its last component (the folder
    itself may be a link someone configured on purpose) and anything but a regular file (a
    FIFO would block, a device would read forever). O_NOFOLLOW: no window between a check
    and the open."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefused(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LinkRefused(path, "not a regular file")
    return os.fdopen(fd, "rb")


def read_regular(path: Path) -> bytes:
    with open_regular(path) as fh:
        return fh.read()


def refuse_links(*paths: Path) -> None:
    """LinkRefused for the first of `paths` that is a symlink (missing ones are fine), for
    readers that hand a path to another program (psql -f) instead of reading it here."""
    for path in paths:
        if path.is_symlink():
            raise LinkRefused(path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    with open_regular(path) as fh:
        return _digest(fh)


def _digest(fh: BinaryIO) -> str:
    h = hashlib.sha256()
    while chunk := fh.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def same_bytes(a: Path, b: Path) -> bool:
    """True when both files exist with identical content (size first, then streamed compare)."""
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
    except FileNotFoundError:
        return False
    with open_regular(a) as fa, open_regular(b) as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


@contextlib.contextmanager
def temp_path_beside(target: Path) -> Iterator[Path]:
    """A temp file name in the target's folder (same filesystem, so rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.{owner.tag()}.", suffix=".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def replace_atomically(source: Path, target: Path) -> None:
    """Move a finished temp file (same folder as target) into place, durably."""
    with open(source, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(source, 0o644)
    os.replace(source, target)
    fsync_dir(target.parent)


def write_atomically(target: Path, data: bytes) -> None:
    with temp_path_beside(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        replace_atomically(tmp, target)


def copy_atomically(source: Path, target: Path) -> None:
    """Copy `source` over `target`: a symlink at `target` is replaced, never followed."""
    with temp_path_beside(target) as tmp:
        _copy_regular(source, tmp)
        replace_atomically(tmp, target)


def _copy_regular(source: Path, dest: Path) -> None:
    with open_regular(source) as src, open(dest, "wb") as out:
        if not _copy_in_kernel(src, out):
            shutil.copyfileobj(src, out, 1 << 20)


# What copy_file_range says when it cannot copy between these two files (another filesystem
# on an older kernel, a filesystem without it): the bytes are then copied through user space.
_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM}


def _copy_in_kernel(src: BinaryIO, out: BinaryIO) -> bool:
    """Copy all of `src` into `out` without the bytes passing through this process (a reflink
    where the filesystem has them): 13 MB of export at S = 5,000 twice per sync. False when
    the kernel cannot, before anything was copied."""
    copy = getattr(os, "copy_file_range", None)
    if copy is None:
        return False
    copied = 0
    while True:
        try:
            n = copy(src.fileno(), out.fileno(), 1 << 30)
        except OSError as exc:
            if copied == 0 and exc.errno in _NO_KERNEL_COPY:
                return False
            raise
        if n == 0:
            return True
        copied += n


def backup_name(now: datetime) -> str:
    return BACKUP_PREFIX + now.strftime("%Y%m%d_%H%M%S")


def create_backup(
    backup_dir: Path,
    now: datetime,
    files: Mapping[str, Path | bytes],
    linked: Collection[str] = (),
) -> Path:
    """Write a complete backup folder (name -> source file or bytes); return its path.

    The names in `linked` are given a hard link to their source instead of a copy: a staged
    file (beside the backups, so on their filesystem) that nobody writes again. Copied when
    the filesystem refuses the link."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".incomplete-{owner.tag()}-", dir=backup_dir))
    try:
        for name, content in files.items():
            dest = work / name
            if isinstance(content, bytes):
                dest.write_bytes(content)
            elif name not in linked or not _link_regular(content, dest):
                _copy_regular(content, dest)
            with open(dest, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(work, 0o755)  # noqa: S103 - backups are meant to be read by the team
        fsync_dir(work)
        final = _unique(backup_dir / backup_name(now))
        os.rename(work, final)
        fsync_dir(backup_dir)
        return final
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _link_regular(source: Path, dest: Path) -> bool:
    """A hard link at `dest` to the regular file `source` (never to a symlink); False when
    the filesystem refuses (another device, no hard links, too many links)."""
    if not stat.S_ISREG(os.lstat(source).st_mode):
        raise LinkRefused(source, "not a regular file")
    try:
        os.link(source, dest, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            return False
        raise
    return True


def settle(paths: Mapping[str, Path]) -> dict[str, str]:
    """fsync each staged file and return its sha256 (name -> digest): done while the
    database is still being asked whether the read held, a backup then links the files and
    finds nothing left to flush."""
    digests: dict[str, str] = {}
    for name, path in paths.items():
        with open_regular(path) as fh:
            digests[name] = _digest(fh)
            os.fsync(fh.fileno())
    return digests


def _unique(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def list_backups(backup_dir: Path) -> list[Path]:
    """Complete backup folders, oldest first (names sort by time, then by -2, -3... suffix)."""
    if not backup_dir.is_dir():
        return []
    return sorted(
        (p for p in backup_dir.iterdir() if p.is_dir() and p.name.startswith(BACKUP_PREFIX)),
        key=backup_sort_key,
    )


def backup_sort_key(path: Path | str) -> tuple[str, int]:
    """Oldest first: names sort by time, then by their -2, -3... suffix."""
    name = path if isinstance(path, str) else path.name
    stem, _, suffix = name.rpartition("-")
    if stem.startswith(BACKUP_PREFIX) and suffix.isdigit() and len(stem) > len(BACKUP_PREFIX):
        return stem, int(suffix)
    return name, 1


def remove_backup(folder: Path) -> None:
    """Delete a backup folder; renamed to a hidden name first, so a crash halfway never leaves
    a partial folder that looks like a backup."""
    doomed = folder.with_name(f".deleting-{owner.tag()}-{folder.name}")
    os.rename(folder, doomed)
    fsync_dir(folder.parent)
    shutil.rmtree(doomed)


# Leftovers without an owner tag (older versions), or owned on another host: surely
# abandoned after a day.
STALE_UNKNOWN_S = 24 * 3600
_LEFTOVER_FOLDERS = (".staging-*", ".incomplete-*", ".deleting-*")


@contextlib.contextmanager
def staging_dir(backup_dir: Path) -> Iterator[Path]:
    """A private folder under backups/ for a run's export; removed when the run ends."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".staging-{owner.tag()}-", dir=backup_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_leftovers(backup_dir: Path, managed: Iterable[Path] = ()) -> list[Path]:
    """What killed runs left behind - staging, incomplete and half-deleted backup folders
    under backups/, temp files beside the managed files - and no live process owns.

    Called with the folder's write lock held, so no writer that honours it is at work; the
    owner tag in each name still protects a live process that does not (another version, a
    stray copy), and anything whose owner cannot be checked waits a day. Returns what went."""
    candidates: list[Path] = []
    if backup_dir.is_dir():
        for pattern in _LEFTOVER_FOLDERS:
            candidates += backup_dir.glob(pattern)
    for target in managed:
        if target.parent.is_dir():
            candidates += target.parent.glob(f".{glob.escape(target.name)}.*.tmp")
    removed = []
    for path in candidates:
        if _abandoned(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _abandoned(path: Path) -> bool:
    found = owner.find_tag(path.name)
    state = owner.alive(found) if found else None
    if state is not None:
        return not state
    try:
        return time.time() - path.lstat().st_mtime > STALE_UNKNOWN_S
    except FileNotFoundError:
        return False
