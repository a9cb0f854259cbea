"""Which process owns a leftover: a tag in its name (host, PID, process start time).

A PID alone is not enough: after a crash-loop or a reboot the PID is soon another process's.
With the start time (Linux: /proc/PID/stat field 22, clock ticks since boot) a tag names one
process for good. Other hosts' processes cannot be checked from here: their leftovers are
treated as alive (never touched) until they are a day old.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket

_TAG = re.compile(r"([0-9a-f]{8})\.(\d+)\.(\d+|x)")


@functools.cache
def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def tag(pid: int | None = None) -> str:
    """`host.pid.start` of this (or another local) process, safe in file and database names."""
    pid = os.getpid() if pid is None else pid
    return f"{_host()}.{pid}.{process_start(pid) or 'x'}"


def find_tag(name: str) -> str | None:
    found = _TAG.search(name)
    return found.group(0) if found else None


def alive(owner: str) -> bool | None:
    """True: the owner runs; False: it is gone; None: it is on another host (unknown)."""
    found = _TAG.fullmatch(owner)
    if found is None:
        return None
    host, pid, start = found.group(1), int(found.group(2)), found.group(3)
    if host != _host():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, someone else's
    if start == "x":
        return True
    return process_start(pid) == start
