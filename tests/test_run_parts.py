"""tests/run_parts.py, behind `./dev test`: no failure swallowed, nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parent / "run_parts.py"
REPO = RUNNER.parent.parent


def runner(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(RUNNER), "--logs", str(tmp_path / "logs"), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # our SIGINT must reach the runner only, as Ctrl-C would
    )


def run(tmp_path: Path, *args: str, timeout: float = 60) -> tuple[int, str]:
    proc = runner(tmp_path, *args)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def sh(script: str) -> str:
    """A part's COMMAND: `sh -c SCRIPT`, quoted for the runner's shlex."""
    return "sh -c '" + script.replace("'", "'\\''") + "'"


def wait_until(done: Callable[[], bool], bound_s: float = 30) -> None:
    deadline = time.monotonic() + bound_s
    while not done():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_parts_run_side_by_side_prefixed_logged_and_the_run_passes(tmp_path: Path) -> None:
    # Each waits for the other's file: they can only both finish if they ran at once.
    a = sh("echo from-a; touch a; while [ ! -e b ]; do sleep 0.05; done; echo a-saw-b")
    b = sh("echo from-b >&2; touch b; while [ ! -e a ]; do sleep 0.05; done")
    code, out = run(tmp_path, f"alpha={a}", f"b={b}")
    assert code == 0, out
    assert "alpha | from-a" in out and "b     | from-b" in out  # stderr too, name-aligned
    logs = tmp_path / "logs"
    assert (logs / "alpha.log").read_text() == "from-a\na-saw-b\n"
    summary = (logs / "summary.txt").read_text()
    assert summary.splitlines()[1].split()[:2] == ["alpha", "passed"]
    assert summary.splitlines()[-1].startswith("passed: ")
    assert summary in out


def test_a_failing_part_fails_the_run_stops_the_others_and_its_log_is_shown_whole(
    tmp_path: Path,
) -> None:
    slow = sh(
        "sleep 60 & s=$!; trap 'echo interrupted >> stopped; kill $s; exit 130' INT; touch up; wait"
    )
    bad = sh("while [ ! -e up ]; do sleep 0.05; done; seq 1 500; echo the-reason >&2; exit 3")
    t0 = time.monotonic()
    code, out = run(tmp_path, f"slow={slow}", f"bad={bad}")
    assert code == 1
    assert time.monotonic() - t0 < 30  # not the 60 s the slow part would take
    assert (tmp_path / "stopped").read_text() == "interrupted\n"  # SIGINT first: it can unwind
    whole = out.split("==> bad failed (exit 3): its whole log")[1]
    assert "\n1\n2\n" in whole and "\n500\nthe-reason\n" in whole  # unprefixed, complete
    assert "bad   failed (exit 3)" in out and "slow  stopped" in out
    assert out.rstrip().splitlines()[-1].startswith("FAILED: ")


def test_keep_going_lets_the_others_finish_and_still_fails(tmp_path: Path) -> None:
    code, out = run(tmp_path, "--keep-going", f"ok={sh('sleep 1; echo finished')}", "bad=false")
    assert code == 1
    assert "ok  | finished" in out and "ok   passed" in out and "bad  failed (exit 1)" in out


def test_a_part_starts_after_the_parts_it_needs_and_not_at_all_if_one_failed(
    tmp_path: Path,
) -> None:
    code, out = run(
        tmp_path,
        "--keep-going",
        f"first={sh('sleep 0.5; touch first-done')}",
        f"second:first={sh('test -e first-done && echo saw-first')}",
        "broken=false",
        f"needs-broken:broken={sh('touch must-not-run')}",
    )
    assert code == 1
    assert "second       | saw-first" in out and "second        passed" in out
    assert "needs-broken  not run" in out
    assert not (tmp_path / "must-not-run").exists()


def test_ctrl_c_stops_every_part_and_the_run_exits_130(tmp_path: Path) -> None:
    part = sh(
        "sleep 60 & s=$!; trap 'echo $1 >> stopped; kill $s; exit 130' INT; touch up-$1; wait"
    )
    proc = runner(tmp_path, f"one={part} sh one", f"two={part} sh two")
    wait_until(lambda: (tmp_path / "up-one").exists() and (tmp_path / "up-two").exists())
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert sorted((tmp_path / "stopped").read_text().split()) == ["one", "two"]
    assert "one: stopping (SIGINT)" in out and "one  stopped" in out


def test_a_second_ctrl_c_hurries_a_part_that_ignores_the_first(tmp_path: Path) -> None:
    stubborn = sh("sleep 60 & trap '' INT; trap 'echo term > got; exit 143' TERM; touch up; wait")
    proc = runner(tmp_path, f"stubborn={stubborn}")  # the default grace: 150 s
    wait_until(lambda: (tmp_path / "up").exists())
    os.kill(proc.pid, signal.SIGINT)
    assert proc.stdout is not None
    seen = ""
    while "stubborn: stopping (SIGINT)" not in seen:  # the first one was acted on
        line = proc.stdout.readline()
        assert line, seen
        seen += line
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    out = seen + out
    assert proc.returncode == 130, out
    assert "stubborn: SIGINT again: SIGTERM" in out
    assert (tmp_path / "got").read_text() == "term\n"


def test_a_part_that_ignores_sigint_is_terminated(tmp_path: Path) -> None:
    stubborn = sh("sleep 60 & trap '' INT; trap 'echo term > got; exit 143' TERM; touch up; wait")
    bad = sh("while [ ! -e up ]; do sleep 0.05; done; exit 1")
    code, out = run(tmp_path, "--stop-grace", "1", f"stubborn={stubborn}", f"bad={bad}")
    assert code == 1
    assert "still running 1 s after SIGINT: SIGTERM" in out
    assert (tmp_path / "got").read_text() == "term\n"


def test_a_part_past_the_time_limit_is_stopped_and_fails(tmp_path: Path) -> None:
    code, out = run(tmp_path, "--timeout", "1", f"hangs={sh('sleep 60')}")
    assert code == 1
    assert "hangs: stopping (ran past the 1 s limit)" in out and "hangs  timed out" in out


def test_a_process_left_running_by_a_part_is_ended_and_fails_the_run(tmp_path: Path) -> None:
    # setsid: out of the part's process group, as pg_ctl's server or a daemon would be.
    leak = sh("setsid sleep 300 < /dev/null > /dev/null 2>&1 & echo $! > leaked")
    code, out = run(tmp_path, f"leaky={leak}")
    pid = int((tmp_path / "leaked").read_text())
    assert code == 1, out
    assert not alive(pid)
    assert f"left running after the parts ended (now ended): {pid} sleep" in out


def test_serial_runs_one_at_a_time_in_order_unprefixed(tmp_path: Path) -> None:
    a = sh("test ! -e b-started && sleep 0.3 && echo a-done")
    b = sh("touch b-started; echo b-done")
    code, out = run(tmp_path, "--serial", f"a={a}", f"b={b}", "c=false", f"d={sh('touch d')}")
    assert code == 1, out
    assert "\na-done\n" in out and "\nb-done\n" in out  # no `a |` prefix
    assert "c  failed (exit 1)" in out and "d  not run" in out
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-command", "bad part 'no-command': expected NAME[:AFTER,...]=COMMAND"),
        ("x:ghost=true", "part x waits for unknown ['ghost']"),
    ],
)
def test_a_bad_part_is_one_clear_line(tmp_path: Path, spec: str, message: str) -> None:
    code, out = run(tmp_path, spec)
    assert code == 1
    assert out.strip() == f"run_parts: {message}"


def test_the_docker_tests_option_splits_the_suite_in_two() -> None:
    def collected(choice: str) -> list[str]:
        argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        argv += ["tests/test_container_engine.py", "tests/test_container.py", "-m", "not slow"]
        proc = subprocess.run(
            [*argv, f"--docker-tests={choice}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return [line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line]

    # With the caller's own -m in force, as `./dev test -m "not slow"` passes it to both halves.
    only, rest = collected("only"), collected("skip")
    assert only and set(only) == {"tests/test_container_engine.py"}
    assert rest and set(rest) == {"tests/test_container.py"}
