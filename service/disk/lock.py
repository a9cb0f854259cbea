"""Locks on an output folder: flock on lock files that hold the holder's PID.

Two locks, because a daemon lives long and a write is short:
- the daemon lock (`lock_file`, default .pg-schema-sync.lock in the state folder: state_dir,
  else backup_dir): one daemon per state folder (its state file, backups, probe record), held
  for the daemon's life, never waited for. It is not in the schema folder: nothing of the
  tool's own belongs in the folder a user commits;
- the write lock (a flock on the schema files' folder itself): held by every command that
  writes the folder (each sync, the daemon's included; rollback; prune) for its whole run, so two
  writers never interleave and no writer cleans up what another is still writing. A hand-run
  `sync` beside the daemon waits for the daemon's run to end, and the other way round, for
  at most WRITE_WAIT_S, then stops with a line naming the holder. Being the folder itself, it
  is the same lock for every config that writes there, whatever its backup_dir or state_dir:
  two configs (or two daemons) sharing a schema folder still never write it at once.

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
        text = os.pread(fd, 64, 0).decode().strip()
        if text:
            return f"PID {int(text)}"
    return "a process that has not written its PID yet"


@contextlib.asynccontextmanager
async def writing(
    folder: Path, wait_s: float = WRITE_WAIT_S, on_wait: Callable[[str], None] | None = None
) -> AsyncIterator[None]:
    """Hold the folder's write lock for the block, waiting up to `wait_s` for another writer
    (`on_wait(holder)` is called once when it has to wait); LockHeld after that.

    The lock is a flock on the folder itself: taking it creates and writes nothing, so a run
    that changes nothing leaves every byte and mtime under sql/ as it was."""
    os.makedirs(folder, exist_ok=True)
    async with _flocked(folder, fcntl.LOCK_EX, wait_s, on_wait):
        yield


@contextlib.asynccontextmanager
async def reading(
    folder: Path, wait_s: float = WRITE_WAIT_S, on_wait: Callable[[str], None] | None = None
) -> AsyncIterator[None]:
    """The folder's lock shared, for a reader of its files (`check`): no writer is halfway
    through replacing them meanwhile, which would read as drift that is not there. A folder
    that does not exist has no files to read and gets no lock (a reader creates nothing)."""
    async with _flocked(folder, fcntl.LOCK_SH, wait_s, on_wait, missing_ok=True):
        yield


@contextlib.asynccontextmanager
async def _flocked(
    folder: Path,
    mode: int,
    wait_s: float,
    on_wait: Callable[[str], None] | None,
    missing_ok: bool = False,
) -> AsyncIterator[None]:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not missing_ok:
            raise
        yield
        return
    try:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _flock_holder(fd)
                if time.monotonic() >= deadline:
                    raise LockHeld(
                        f"another pg-schema-sync ({holder}) is writing {folder} and did not "
                        f"finish within {wait_s:.0f}s: try again when it is done"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(holder)
                    told = True
                await asyncio.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _flock_holder(fd: int) -> str:
    """Who holds a flock on `fd`'s file: from /proc/locks (Linux), with its command line."""
    st = os.fstat(fd)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if fields[1] == "FLOCK" and fields[5] == where:  # waiters show "->" instead
                pid = int(fields[4])
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                # One line of plain text: an argument may hold newlines or escape codes.
                words = " ".join(a.decode(errors="replace") for a in argv if a).split()
                command = "".join(c if c.isprintable() else "?" for c in " ".join(words))
                return f"PID {pid}: {command[:120]}" if command else f"PID {pid}"
    return "a process this system does not name"


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
                f"another pg-schema-sync daemon ({_holder(fd)}) already runs with this state "
                f"folder (lock file {path}): stop it first, or give this one its own state_dir"
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
