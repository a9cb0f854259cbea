"""The daemon's figures: idle RSS and CPU over a window, SIGHUP -> `sync.started` latency.

The daemon runs as `python -m service run` with a schedule that never fires during the
benchmark and sync_on_start off, so everything it does is our doing. RSS is sampled from
/proc/PID/status (VmRSS) once a second; CPU is the growth of utime + stime in /proc/PID/stat
over the window. Latency is the `sync.started` event's own timestamp (structlog, UTC ISO with
microseconds) minus the wall clock just before kill(); both clocks are this host's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

NEVER = "0 0 1 1 *"  # once a year, New Year's midnight: never during a benchmark
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class DaemonFigures:
    idle_window_s: float = 0.0
    idle_rss_max_kb: int = 0
    idle_cpu_percent: float = 0.0
    sighup_latency_ms: list[float] = field(default_factory=list)
    rss_after_syncs_kb: int = 0
    note: str = ""


def has_run_command(env: dict[str, str]) -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "service", "run", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return probe.returncode == 0


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


class Daemon:
    """`python -m service run`, its JSON lines collected (with their arrival time) by a thread."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service", "run", "--log-format", "json"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.events.append((time.time(), event))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def count(self, name: str) -> int:
        with self.cond:
            return sum(1 for _, e in self.events if e.get("event") == name)

    def wait(self, name: str, count: int, timeout: float) -> tuple[float, dict[str, Any]]:
        """The count-th `name` event and when it arrived (time.time())."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                hits = [(t, e) for t, e in self.events if e.get("event") == name]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    raise RuntimeError(f"daemon: no {count} x {name} ({err.strip()[-300:]})")
                self.cond.wait(min(left, 0.2))

    def wait_for(self, name: str, count: int, timeout: float) -> dict[str, Any]:
        return self.wait(name, count, timeout)[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def measure_daemon(
    cwd: Path, env: dict[str, str], idle_s: float, sighups: int, sync_timeout_s: float
) -> DaemonFigures:
    """Start the daemon, watch it idle, poke it with SIGHUP, stop it."""
    figures = DaemonFigures(idle_window_s=idle_s)
    env = {**env, "SCHEMA_SYNC_SCHEDULE": NEVER, "SCHEMA_SYNC_SYNC_ON_START": "false"}
    daemon = Daemon(cwd, env)
    try:
        daemon.wait_for("daemon.started", 1, 60)
        pid = daemon.proc.pid
        if idle_s > 0:
            time.sleep(2)  # let start-up settle (imports, scheduler thread) before the window
            cpu0, t0 = _cpu_s(pid), time.monotonic()
            rss = _rss_kb(pid)
            while (left := idle_s - (time.monotonic() - t0)) > 0:
                time.sleep(min(1.0, left))
                rss = max(rss, _rss_kb(pid))
            figures.idle_rss_max_kb = rss
            figures.idle_cpu_percent = 100 * (_cpu_s(pid) - cpu0) / (time.monotonic() - t0)
        for n in range(1, sighups + 1):
            sent = time.time()
            os.kill(pid, signal.SIGHUP)
            started = daemon.wait_for("sync.started", n, 10)
            stamp = datetime.fromisoformat(str(started["timestamp"])).timestamp()
            figures.sighup_latency_ms.append(1000 * (stamp - sent))
            daemon.wait_for("sync.finished", n, sync_timeout_s)
            time.sleep(0.2)
        figures.rss_after_syncs_kb = _rss_kb(pid)
    finally:
        daemon.stop()
    return figures
