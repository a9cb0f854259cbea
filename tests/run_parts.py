#!/usr/bin/env python3
"""Run the parts of `./dev test` side by side and fail if any part fails.

    python3 tests/run_parts.py [--serial] [--keep-going] [--logs DIR] [--timeout S] PART...

PART is `NAME[:AFTER[,AFTER...]]=COMMAND`: COMMAND one shell-quoted string (split with shlex, no
shell runs it), started once every part named in AFTER has passed. `./dev test` builds the list
(see `test_parts` there and docs/development/tests.md). What the runner guarantees:

- output: each part's output (stdout and stderr) goes to DIR/NAME.log and, line by line with a
  `NAME |` prefix, to our stdout as it comes; at the end a failed part's log is printed again in
  full, then one line per part: result, seconds, log file (also in DIR/summary.txt);
- exit code: 0 only if every part exited 0; otherwise 1 (130 after Ctrl-C);
- stopping: each part runs in its own process group. The first failure stops the others
  (unless --keep-going), and so do Ctrl-C and SIGTERM: SIGINT to the group first -- pytest
  unwinds on it, so its fixtures stop their PostgreSQL clusters and dockerd -- then SIGTERM
  after STOP_GRACE_S, SIGKILL after KILL_GRACE_S more. A part running past --timeout is
  stopped the same way and fails;
- nothing left running: every process a part starts inherits DEV_TEST_RUN=<this run's id>
  (not PG*/SCHEMA_SYNC_*: the tests strip those from their children). Once the parts have
  ended, any process still carrying it -- a server or daemon a killed test could not stop -- is
  ended (SIGTERM, then SIGKILL) by its pid, named, and fails the run.

--serial runs the parts one at a time in the given order, in the foreground process group (so
a debugger's prompt works), with their output unprefixed; each part then needs all before it.
Standard library only: it runs before, and beside, the project's virtualenv.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import BinaryIO

MARKER = "DEV_TEST_RUN"
STOP_GRACE_S = 150.0  # pytest's teardown after SIGINT: `compose down`, dockerd's own 60 s stop
KILL_GRACE_S = 30.0
POLL_S = 0.2


@dataclass
class Part:
    name: str
    after: list[str]
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = None
    started: float = 0.0
    ended: float = 0.0
    cpu: float = 0.0
    result: str = "not run"  # passed | failed (exit N) | stopped | timed out | not run
    stopping: list[tuple[float, signal.Signals]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started if self.started else 0.0


def parse_part(spec: str, logs: Path) -> Part:
    head, sep, command = spec.partition("=")
    name, _, after = head.partition(":")
    if not sep or not name or not command.strip():
        raise SystemExit(f"run_parts: bad part {spec!r}: expected NAME[:AFTER,...]=COMMAND")
    deps = [a for a in after.split(",") if a]
    return Part(name, deps, shlex.split(command), logs / f"{name}.log")


class Runner:
    def __init__(
        self, parts: list[Part], serial: bool, keep_going: bool, timeout: float, grace: float
    ) -> None:
        self.parts, self.serial, self.keep_going = parts, serial, keep_going
        self.timeout, self.grace = timeout, grace
        self.run_id = uuid.uuid4().hex
        self.width = max(len(p.name) for p in parts)
        self.out_lock = threading.Lock()
        self.interrupted: signal.Signals | None = None
        self.signals_seen = self.signals_handled = 0
        self.giving_up = False  # a part failed (or we were interrupted): start nothing new
        self.leftovers: list[str] = []
        names = {p.name for p in parts}
        for p in parts:
            unknown = [a for a in p.after if a not in names]
            if unknown:
                raise SystemExit(f"run_parts: part {p.name} waits for unknown {unknown}")
        if serial:  # one at a time, in the given order
            for before, part in itertools.pairwise(parts):
                part.after = [before.name]

    # -- signals: the handler only records the request; the loop acts on it ----------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.interrupted = signal.Signals(signum)
        self.signals_seen += 1

    def on_interrupt(self, running: list[Part]) -> None:
        """The first signal stops every part; a second one hurries them (SIGTERM, SIGKILL)."""
        if self.signals_seen == self.signals_handled or self.interrupted is None:
            return
        self.signals_handled = self.signals_seen
        self.giving_up = True
        for p in running:
            if not p.stopping:
                self.say(f"{p.name}: stopping ({self.interrupted.name})")
                p.result = "stopped"
                self.signal_part(p, signal.SIGINT)
            elif p.stopping[-1][1] != signal.SIGKILL:
                hurry = signal.SIGTERM if p.stopping[-1][1] == signal.SIGINT else signal.SIGKILL
                self.say(f"{p.name}: {self.interrupted.name} again: {hurry.name}")
                self.signal_part(p, hurry)

    def say(self, text: str) -> None:
        self.show(f"==> {text}\n".encode())

    def show(self, data: bytes) -> None:
        # A closed stdout (piped into `head`) must not stop the copying: the logs stay whole
        # and a part never blocks on a pipe nobody reads.
        with self.out_lock, contextlib.suppress(OSError):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    # -- one part ------------------------------------------------------------------------
    def start(self, part: Part) -> None:
        self.say(f"{part.name}: started ({shlex.join(part.argv)})")
        env = {**os.environ, MARKER: self.run_id}
        log = part.log.open("wb")
        part.started = time.monotonic()
        try:
            part.proc = subprocess.Popen(
                part.argv,
                stdin=None if self.serial else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                # Parallel parts get their own group: our signals reach all of a part and
                # nothing else. A serial part stays in the terminal's group, so a debugger
                # can read from it; Ctrl-C then reaches it straight from the terminal.
                start_new_session=not self.serial,
            )
        except OSError as exc:
            log.close()
            part.ended, part.result = time.monotonic(), f"failed (could not start: {exc})"
            self.say(f"{part.name}: {part.result}")
            return
        assert part.proc.stdout is not None
        target = self._copy_raw if self.serial else self._copy_lines
        part.reader = threading.Thread(
            target=target, args=(part, part.proc.stdout, log), daemon=True
        )
        part.reader.start()

    def _copy_lines(self, part: Part, stream: BinaryIO, log: BinaryIO) -> None:
        prefix = f"{part.name:<{self.width}} | ".encode()
        with log:
            for line in iter(stream.readline, b""):
                log.write(line)
                log.flush()
                self.show(prefix + line + (b"" if line.endswith(b"\n") else b"\n"))

    def _copy_raw(self, part: Part, stream: BinaryIO, log: BinaryIO) -> None:
        # Chunks, not lines: a prompt without a newline (pdb's) shows at once.
        with log:
            while chunk := os.read(stream.fileno(), 65536):
                log.write(chunk)
                log.flush()
                self.show(chunk)

    def signal_part(self, part: Part, sig: signal.Signals) -> None:
        assert part.proc is not None
        part.stopping.append((time.monotonic(), sig))
        try:
            if self.serial and sig == signal.SIGINT:
                return  # it shares our terminal: the Ctrl-C reached it already
            if self.serial:
                os.kill(part.proc.pid, sig)
            else:
                os.killpg(part.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, part: Part, why: str) -> None:
        """Ask a running part to stop (once); `step` escalates to SIGTERM and SIGKILL."""
        if part.proc is None or part.ended or part.stopping:
            return
        self.say(f"{part.name}: stopping ({why}): SIGINT, SIGTERM after {self.grace:.0f} s")
        part.result = "timed out" if why.startswith("ran past") else "stopped"
        self.signal_part(part, signal.SIGINT)

    def escalate(self, part: Part) -> None:
        if not part.stopping or part.ended:
            return
        since, last = part.stopping[-1]
        waited = time.monotonic() - since
        if last == signal.SIGINT and waited > self.grace:
            self.say(f"{part.name}: still running {self.grace:.0f} s after SIGINT: SIGTERM")
            self.signal_part(part, signal.SIGTERM)
        elif last == signal.SIGTERM and waited > KILL_GRACE_S:
            self.say(f"{part.name}: still running {KILL_GRACE_S:.0f} s after SIGTERM: SIGKILL")
            self.signal_part(part, signal.SIGKILL)

    def reap(self, part: Part) -> bool:
        """True when the part has just ended; records its result."""
        assert part.proc is not None
        # wait4, not poll: it also tells the CPU time the part and the children it waited for
        # used -- with the wall time, how much of a part was work and how much waiting.
        pid, status, usage = os.wait4(part.proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        rc = part.proc.returncode = os.waitstatus_to_exitcode(status)
        part.cpu = usage.ru_utime + usage.ru_stime
        if part.reader is not None:
            part.reader.join(timeout=5)  # grandchildren holding the pipe must not hang us
        part.ended = time.monotonic()
        if not part.stopping:
            part.result = "passed" if rc == 0 else f"failed (exit {rc})"
        elif part.result == "stopped" and rc == 0:
            part.result = "passed"  # it finished as we asked it to stop
        self.say(f"{part.name}: {part.result} after {part.seconds:.0f} s ({part.cpu:.0f} s CPU)")
        return True

    # -- the run -------------------------------------------------------------------------
    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        t0, load0 = time.monotonic(), loadavg()
        running: list[Part] = []
        pending = list(self.parts)
        try:
            self.loop(pending, running)
        except BaseException:
            for p in running:  # a fault of ours must not leave the parts running
                if p.proc is not None:
                    with contextlib.suppress(OSError):
                        (os.kill if self.serial else os.killpg)(p.proc.pid, signal.SIGTERM)
            raise
        self.sweep()
        return self.report(time.monotonic() - t0, load0)

    def loop(self, pending: list[Part], running: list[Part]) -> None:
        while pending or running:
            self.on_interrupt(running)
            for p in list(running):
                if self.reap(p):
                    running.remove(p)
                    if p.result != "passed" and not self.keep_going and not self.giving_up:
                        self.giving_up = True
                        for other in running:
                            self.stop(other, f"{p.name} {p.result}")
                elif self.timeout and p.seconds > self.timeout:
                    self.stop(p, f"ran past the {self.timeout:.0f} s limit")
                else:
                    self.escalate(p)
            for p in list(pending):
                needs = [q for q in self.parts if q.name in p.after]
                if self.giving_up or any(q.ended and q.result != "passed" for q in needs):
                    pending.remove(p)  # not run: we are stopping, or a part it needs failed
                elif all(q.ended for q in needs):
                    pending.remove(p)
                    self.start(p)
                    if p.proc is not None:
                        running.append(p)
                    elif not self.keep_going:
                        self.giving_up = True
            time.sleep(POLL_S)

    def sweep(self) -> None:
        """End what a part left running, by pid: processes that carry this run's marker."""
        mine = f"{MARKER}={self.run_id}".encode()
        found = marked(mine)
        if not found:
            return
        for pid, name in found.items():
            self.leftovers.append(f"{pid} {name}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline and marked(mine):
            time.sleep(0.5)
        for pid in marked(mine):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def report(self, wall: float, load0: str) -> int:
        failed = [p for p in self.parts if p.result != "passed"]
        for p in failed:
            # A part we stopped has shown its output already; one that failed, again in full.
            if p.result in ("stopped", "not run"):
                continue
            if p.log.exists() and p.log.stat().st_size:
                self.say(f"{p.name} {p.result}: its whole log ({p.log})")
                sys.stdout.buffer.write(p.log.read_bytes())
                sys.stdout.buffer.write(b"\n")
        w = self.width
        lines = [f"{'part':<{w}}  {'result':<16} {'wall':>7} {'CPU':>7}  log"]
        lines += [
            f"{p.name:<{w}}  {p.result:<16} {p.seconds:5.0f} s {p.cpu:5.0f} s  {p.log}"
            for p in self.parts
        ]
        if self.leftovers:
            lines.append(
                "left running after the parts ended (now ended): " + "; ".join(self.leftovers)
            )
        ok = not failed and not self.leftovers and self.interrupted is None
        lines.append(
            f"{'passed' if ok else 'FAILED'}: {wall:.0f} s wall "
            f"(load average {load0} at the start, {loadavg()} at the end)"
        )
        summary = "\n".join(lines) + "\n"
        self.parts[0].log.parent.joinpath("summary.txt").write_text(summary)
        sys.stdout.buffer.write(b"==> parts\n" + summary.encode())
        sys.stdout.buffer.flush()
        if ok:
            return 0
        return 130 if self.interrupted == signal.SIGINT else 1


def marked(marker: bytes) -> dict[int, str]:
    """Live processes whose environment holds `marker` (pid -> command name)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:  # gone, or not ours to read
            continue
        if marker in environ.split(b"\0") and stat[stat.rindex(")") + 2] != "Z":
            found[int(entry.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
    return found


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serial", action="store_true", help="one part at a time, in order")
    ap.add_argument("--keep-going", action="store_true", help="a failure does not stop the rest")
    ap.add_argument("--logs", type=Path, default=Path(".test-logs"), help="folder for the logs")
    ap.add_argument("--timeout", type=float, default=0, help="seconds a part may run (0: no limit)")
    ap.add_argument(
        "--stop-grace",
        type=float,
        default=STOP_GRACE_S,
        help="seconds from SIGINT to SIGTERM when stopping a part (default %(default)s)",
    )
    ap.add_argument("parts", nargs="+", metavar="NAME[:AFTER,...]=COMMAND")
    args = ap.parse_args(argv)
    args.logs.mkdir(parents=True, exist_ok=True)
    for old in args.logs.glob("*.log"):
        old.unlink()
    parts = [parse_part(s, args.logs) for s in args.parts]
    return Runner(parts, args.serial, args.keep_going, args.timeout, args.stop_grace).run()


if __name__ == "__main__":
    sys.exit(main())
