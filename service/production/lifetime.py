"""Children that die with us: pg_dump and psql must not outlive a killed parent.

Our own cancel path kills a child's process group, but a SIGKILLed parent runs no code: its
pg_dump kept running (and holding its table locks on production) until its next write hit
the closed pipe. On Linux the kernel can deliver a signal when the parent dies
(prctl PR_SET_PDEATHSIG), set in the child between fork and exec; exec keeps it (pg_dump is
not set-user-ID). Elsewhere the children keep the old behaviour: own process group, killed on
every way out we do run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[[int, int], int] = libc.prctl
        return prctl
    except (OSError, AttributeError):
        return None


# Looked up once, here: between fork and exec the child should do as little as possible.
_PRCTL = _load_prctl()


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn for a child that must die with this process, or None where unsupported."""
    if _PRCTL is None:
        return None
    prctl, parent = _PRCTL, os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os._exit(1)

    return preexec


async def run_to_end(argv: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run a client tool (psql, pg_dump, pg_restore) to its end: (exit code, its stderr).

    In its own process group, dying with us; cancelled, its group is killed and waited for.
    Its stdout is discarded (the tools here write to files they are given)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent(),  # fork-safe: one prctl call, looked up beforehand
    )
    try:
        _, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(proc.wait(), timeout=5)
        raise
    return proc.returncode if proc.returncode is not None else -1, err
