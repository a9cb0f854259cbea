"""One daemon per output folder: a non-blocking flock on a lock file that holds the PID.

The kernel drops a flock when its holder dies, however it dies, so a stale file never blocks a
restart. The file itself is never deleted: unlinking a lock file lets a process that opened the
old inode and a process that created a new one both "hold" the lock (barman avoids it the same
way). Release only empties it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class LockHeld(RuntimeError):
    """Another process holds the lock; the message names it and says what to do."""


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 64, 0).decode().strip()
        if text:
            return f"PID {int(text)}"
    return "a process that has not written its PID yet"


@contextlib.contextmanager
def hold(path: Path) -> Iterator[int]:
    """Hold the lock for the duration of the block; raise LockHeld if someone else has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(
                f"another pg-schema-sync daemon ({_holder(fd)}) already runs for this folder "
                f"(lock file {path}): stop it first, or point schema_file/lock_file elsewhere"
            ) from None
        pid = os.getpid()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n".encode(), 0)
        os.fsync(fd)
        try:
            yield pid
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing drops the flock
