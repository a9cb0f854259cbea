"""`pg-schema-sync run` as a child process, with its JSON log lines collected as they come."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

Event = dict[str, Any]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The test's environment without libpq or SCHEMA_SYNC_ variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
    env.update(extra)
    return env


class DaemonProcess:
    """The daemon in its own session; stdout/stderr read by threads so it never blocks."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str) -> None:
        self._start([sys.executable, "-m", "service", "run", *args], cwd, clean_env(env))

    def _start(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.lines: list[str] = []
        self.err_lines: list[str] = []
        self._cond = threading.Condition()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(
                target=self._read, args=(self.proc.stderr, self.err_lines), daemon=True
            ),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream: TextIO, into: list[str]) -> None:
        for line in stream:
            with self._cond:
                into.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def events(self) -> list[Event]:
        """Every stdout line as JSON (a line that is not JSON fails the test here)."""
        with self._cond:
            return [json.loads(line) for line in self.lines]

    def named(self, name: str, **fields: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e["event"] == name and all(e.get(k) == v for k, v in fields.items())
        ]

    def wait_until(self, check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = check()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}\n{self.tail()}")
                self._cond.wait(min(left, 0.2))

    def wait_for(self, name: str, count: int = 1, timeout: float = 20, **fields: Any) -> Event:
        """The `count`-th event called `name` with these fields; its arrival is polled."""

        def found() -> Event | None:
            hits = self.named(name, **fields)
            return hits[count - 1] if len(hits) >= count else None

        result: Event = self.wait_until(found, f"{count} x {name} {fields}", timeout)
        return result

    def send(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        for t in self._readers:
            t.join(5)
        return code

    def tail(self, n: int = 15) -> str:
        return "".join(self.lines[-n:]) + "--- stderr ---\n" + "".join(self.err_lines[-n:])

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def pg_dump_wrapper(folder: Path, body: str) -> Path:
    """A script standing in for pg_dump that runs `body` and otherwise execs the real one.

    Used only to simulate faults (a stall, a crash); `--version` always passes through.
    """
    real = shutil.which("pg_dump")
    assert real, "pg_dump not on PATH"
    script = folder / "bin" / "pg_dump"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        "#!/bin/bash\n"
        f'if [ "$1" = --version ]; then exec {real} --version; fi\n'
        f"REAL={real}\n{body}\n"
        f'exec {real} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under sql/ and backups/ (daemon bookkeeping aside), by relative path."""
    out = {}
    for root in ("sql", "backups"):
        base = folder / root
        if base.exists():
            for p in sorted(base.rglob("*")):
                if p.is_file() and ".pg-schema-sync" not in p.name:  # state, lock, their temps
                    out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def process_group_alive(pgid: int) -> list[str]:
    """Live (non-zombie) members of a process group: `[pid state name]` for each."""
    alive = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat_file.read_text()
        except OSError:  # exited while we looked
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after the ")".
        name = text[text.index("(") + 1 : text.rindex(")")]
        state, _ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            alive.append(f"{stat_file.parent.name} {state} {name}")
    return alive
