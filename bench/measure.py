"""One measured child process: wall time, peak RSS, CPU, and what it wrote under a folder.

Peak RSS is VmHWM (the high-water mark of a process's own memory map, which exec starts
afresh), never ru_maxrss: Linux folds into ru_maxrss the map a child had before exec, a
copy of its parent's, and wait4 adds the maxima of grandchildren too.
- our Python: the child is `python -m bench.probe`, which runs the command in-process and
  records its own VmHWM at exit;
- pg_dump and migra: a sampler thread reads /proc/PID/status every 20 ms for the child
  (bare pg_dump, migra) or the pg_dump our process started, once exec has named it.
  VmHWM only grows, so the last sample is the peak up to 20 ms before exit; pg_dump peaks
  once it has read the catalogs, well before it ends.
Writes under a folder are watched with inotify (ctypes, Linux), so a temp file written and
deleted during the run is seen even though the folder looks untouched afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x2, 0x8, 0x80, 0x100, 0x200
IN_Q_OVERFLOW, IN_NONBLOCK, IN_CLOEXEC = 0x4000, 0o4000, 0o2000000
_WATCHED = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE
_EVENT = struct.Struct("iIII")


@dataclass
class Sample:
    """One run of one command."""

    wall_s: float
    exit_code: int
    tool_maxrss_kb: int | None = None  # bare pg_dump / migra, or the pg_dump our sync ran
    ours_maxrss_kb: int | None = None  # our Python alone (probe), None for foreign tools
    cpu_s: float = 0.0  # user + sys of the child tree
    write_bytes: int | None = None  # bytes our process passed to write() (probe)
    touched: list[str] = field(default_factory=list)  # names written under the watched folder
    stdout: str = ""
    stderr: str = ""


class Watch:
    """inotify on a folder tree: which names were created, written or moved in during a run."""

    def __init__(self, root: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd: int = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.dirs: dict[int, Path] = {}
        for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            wd = libc.inotify_add_watch(self.fd, str(folder).encode(), _WATCHED)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")
            self.dirs[wd] = folder

    def touched(self) -> list[str]:
        """Relative names with a write-like event since the watch began; then close it."""
        names: set[str] = set()
        try:
            while True:
                try:
                    buf = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    break
                off = 0
                while off < len(buf):
                    wd, mask, _cookie, size = _EVENT.unpack_from(buf, off)
                    raw = buf[off + _EVENT.size : off + _EVENT.size + size].rstrip(b"\0")
                    off += _EVENT.size + size
                    if mask & IN_Q_OVERFLOW:
                        names.add("(inotify queue overflow: many writes)")
                    elif mask & (IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE):
                        names.add(str(self.dirs.get(wd, Path("?")) / raw.decode(errors="replace")))
        finally:
            os.close(self.fd)
        return sorted(names)


class PeakSampler(threading.Thread):
    """VmHWM of the processes called `names` that are `root` or its children, every 20 ms."""

    def __init__(self, root: int, names: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.root, self.names = root, names
        self.peak_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            for pid in self._candidates():
                self.peak_kb = max(self.peak_kb, _hwm_of(pid, self.names))

    def _candidates(self) -> list[int]:
        pids = [self.root]
        if self.names != (_comm(self.root),):  # a wrapper: look among its children
            pids += _children(self.root)
        return pids


def _children(pid: int) -> list[int]:
    """Child pids of every thread of pid, from /proc/PID/task/TID/children.

    Cheap on purpose: the sampler runs beside the measured command every 20 ms, and reading
    every /proc/*/stat instead (as this did) cost a few ms of CPU a time, ~15 % of a core on a
    2-core machine taken from our commands but never from bare pg_dump.
    """
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            found += [int(c) for c in children.read_text().split()]
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _hwm_of(pid: int, names: tuple[str, ...]) -> int:
    """VmHWM of pid if exec has made it one of `names` (before exec it is a copy of us)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    fields = dict(ln.split(":", 1) for ln in text.splitlines() if ":" in ln)
    if fields.get("Name", "").strip() not in names or "VmHWM" not in fields:
        return 0
    return int(fields["VmHWM"].split()[0])


def run(
    argv: list[str],
    env: dict[str, str],
    cwd: Path | None = None,
    probe: bool = False,
    watch: Path | None = None,
    tool: str | None = None,
) -> Sample:
    """Run argv (or, with probe, `python -m bench.probe ... argv[2:]`) and measure it; `tool`
    names the foreign process (pg_dump, migra) whose peak RSS to sample."""
    probe_out: Path | None = None
    if probe:
        fd, name = tempfile.mkstemp(prefix="bench-probe-", suffix=".json")
        os.close(fd)
        probe_out = Path(name)
        # argv is ["python", "-m", module, args...]: the probe takes (out, module, args...).
        argv = [sys.executable, "-m", "bench.probe", str(probe_out), *argv[2:]]
    watcher = Watch(watch) if watch is not None else None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        sampler = PeakSampler(proc.pid, (tool,)) if tool else None
        if sampler:
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if sampler:
            sampler.done.set()
            sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    sample = Sample(
        wall_s=wall,
        exit_code=proc.returncode,
        tool_maxrss_kb=sampler.peak_kb or None if sampler else None,
        cpu_s=usage.ru_utime + usage.ru_stime,
        touched=watcher.touched() if watcher else [],
        stdout=stdout,
        stderr=stderr,
    )
    if probe_out is not None:
        try:
            facts = json.loads(probe_out.read_text() or "{}")
        finally:
            probe_out.unlink(missing_ok=True)
        sample.ours_maxrss_kb = facts.get("self_maxrss_kb")
        sample.write_bytes = facts.get("write_bytes_syscall")
    return sample


def tree_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """(size, mtime_ns, inode) of every file under root: equal before and after = untouched."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (st.st_size, st.st_mtime_ns, st.st_ino)
        for p in sorted(root.rglob("*"))
        if p.is_file() and (st := p.stat())
    }
