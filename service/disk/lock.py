"""Locks on an output folder: flock on lock files that hold the holder's PID.

Two locks, because a daemon lives long and a write is short:
- the daemon lock (`lock_file`, default .pg-schema-sync.lock): one daemon per folder, held
  for the daemon's life, never waited for;
- the write lock (the same name + `.write`): held by every command that writes the folder
  (each sync, the daemon's included; rollback; prune) for the whole of its run, so two
  writers never interleave and no writer cleans up what another is still writing. A hand-run
  `sync` beside the daemon waits for the daemon's run to end, and the other way round, for
  at most WRITE_WAIT_S, then stops with a line naming the holder.

The kernel drops a flock when its holder dies, however it dies, so a stale file never blocks a
restart. The file itself is never deleted: unlinking a lock file lets a process that opened the
old inode and a process that created a new one both "hold" the lock (barman avoids it the same
way). Release only empties it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

LOCK_NAME = ".pg-schema-sync.lock"
WRITE_WAIT_S = 120.0  # a large sync takes about a minute; a hand-run command waits that long
_POLL_S = 0.2


class LockHeld(RuntimeError):
    """Another process holds the lock; the message names it and says what to do."""


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        first, _, what = os.pread(fd, 256, 0).decode().strip().partition("\n")
        if first:
            return f"PID {int(first)}" + (f", {what.strip()}" if what.strip() else "")
    return "a process that has not written its PID yet"


def write_lock_path(lock_file: Path) -> Path:
    """The folder's write lock, beside its daemon lock."""
    return lock_file.with_name(lock_file.name + ".write")


@contextlib.asynccontextmanager
async def writing(
    path: Path,
    what: str,
    wait_s: float = WRITE_WAIT_S,
    on_wait: Callable[[str], None] | None = None,
) -> AsyncIterator[None]:
    """Hold the folder's write lock for the block, waiting up to `wait_s` for another writer
    (`on_wait(holder)` is called once when it has to wait); LockHeld after that."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    raise LockHeld(
                        f"another pg-schema-sync ({holder}) is writing {path.parent} "
                        f"(lock file {path}) and did not finish within {wait_s:.0f}s: try "
                        "again when it is done"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(holder)
                    told = True
                await asyncio.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{what}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing drops the flock


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
