"""The daemon's files as older versions left them: beside the schema files, in the folder a
user commits (where they were committed by accident). They now live in the state folder
(backup_dir unless state_dir is set); at start the daemon moves them:

- the state file is moved once, atomically: renamed when both folders are on one file system,
  else copied atomically (temp file, fsync, rename) and only then removed from the old place;
  a state file already in the new place wins and the old one is removed;
- the lock file is removed once nobody holds it; if an older daemon still holds it, the new
  one refuses to start (both would sync the same files on their own schedules).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path

from service.disk import files
from service.disk.lock import LOCK_NAME, LockHeld

STATE_NAME = ".pg-schema-sync-state.json"


def legacy_paths(schema_folder: Path) -> tuple[Path, Path]:
    """(state file, lock file) where versions before the state folder kept them."""
    return schema_folder / STATE_NAME, schema_folder / LOCK_NAME


def move_state(old: Path, new: Path) -> bool:
    """Move an old-place state file to `new`; True if one was moved (or dropped for a newer
    one already there). A symlink or a non-file in the old place is left alone."""
    try:
        st = os.lstat(old)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or old.absolute() == new.absolute():
        return False
    new.parent.mkdir(parents=True, exist_ok=True)
    if new.exists():
        old.unlink()  # the new place's state is the newer: the old one is a leftover
        files.fsync_dir(old.parent)
        return True
    try:
        os.rename(old, new)  # atomic; no window where neither place holds the state
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        files.write_atomically(new, files.read_regular(old))
        old.unlink()
    files.fsync_dir(new.parent)
    files.fsync_dir(old.parent)
    return True


def retire_lock(old: Path) -> bool:
    """Remove an old-place lock file nobody holds; LockHeld if an older daemon holds it."""
    try:
        fd = os.open(old, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:  # a symlink (ELOOP) or unreadable: not ours to touch
        if exc.errno in (errno.ELOOP, errno.EACCES, errno.EPERM):
            return False
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = f" (PID {int(os.pread(fd, 64, 0).decode().strip())})"
            raise LockHeld(
                f"an older pg-schema-sync daemon{holder} still runs for this folder (lock file "
                f"{old}): stop it before starting this version"
            ) from None
        # Unlinked while held: an older daemon starting at this moment finds it locked and
        # stops; one started later creates a new one and runs, its writes still serialised
        # with ours by the schema folder's own lock (disk/lock.py).
        old.unlink()
        files.fsync_dir(old.parent)
        return True
    finally:
        os.close(fd)
