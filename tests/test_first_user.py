"""What a first-time user meets: check before any sync, --json --diff, diff headers that say
which side is which, progress from ./dev conformance, the demo cluster's error messages."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from service.demo.cluster import ClusterError, ScratchCluster
from tests.conftest import Database
from tests.inproc import in_process

REPO = Path(__file__).resolve().parent.parent


def test_check_before_the_first_sync_says_there_are_no_files_yet(
    db: Database, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    db.sql("CREATE TABLE t (id int)")
    env = {"SCHEMA_SYNC_DSN": db.dsn}
    result = in_process(["check"], tmp_path, env, capfd)
    assert result.code == 1
    first = result.out.splitlines()[0]
    assert first.startswith("no schema files yet in sql/schemas") and "pg-schema-sync sync" in first
    as_json = in_process(["check", "--json"], tmp_path, env, capfd)
    assert as_json.json()["drift"] is True  # stdout stays one JSON document
    assert "no schema files yet" in as_json.err


def test_check_json_diff_carries_diffs_whose_headers_name_files_and_production(
    db: Database, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    db.sql("CREATE TABLE t (id int)")
    env = {"SCHEMA_SYNC_DSN": db.dsn}
    assert in_process(["sync"], tmp_path, env, capfd).code == 0
    db.sql("ALTER TABLE t ADD COLUMN note text")
    doc = in_process(["check", "--json", "--diff"], tmp_path, env, capfd).json()
    [change] = doc["changes"]
    assert change["name"] == "public.t" and change["change"] == "changed"
    assert change["diff"].startswith("--- files/table public.t\n+++ production/table public.t\n")
    assert "+    note text" in change["diff"]
    assert "diff" not in in_process(["check", "--json"], tmp_path, env, capfd).json()["changes"][0]
    text = in_process(["check", "--diff"], tmp_path, env, capfd).out
    assert "--- files/table public.t" in text and "+++ production/table public.t" in text


def test_an_interrupted_initdb_is_named_initdb() -> None:
    # A stand-in initdb that is interrupted as Ctrl-C would interrupt it: a fault a real
    # initdb cannot be made to show on demand.
    bindir = Path(tempfile.mkdtemp(prefix="fake-pgbin-"))
    try:
        for name, body in (("initdb", "kill -INT $$\nsleep 5\n"), ("postgres", "exit 0\n")):
            path = bindir / name
            path.write_text(f"#!/bin/sh\n{body}")
            path.chmod(0o755)
        bindir.chmod(0o755)  # the server user (runuser, when we are root) must reach it
        cluster = ScratchCluster(bindir=bindir)
        with pytest.raises(ClusterError) as caught:
            cluster.start()
        cluster.stop()
        message = str(caught.value)
        assert message.startswith("initdb was interrupted (signal 2)"), message
        assert "--no-sync" not in message
    finally:
        for p in bindir.iterdir():
            p.unlink()
        bindir.rmdir()


def test_dev_conformance_streams_a_line_per_check_as_it_finishes(tmp_path: Path) -> None:
    # The runner is not ours; a stand-in prints as the real one does with --verbose, then
    # waits for the test: the line can only be read here if it was not held in a buffer.
    go = tmp_path / "go"
    runner = tmp_path / "runner.py"
    runner.write_text(
        "import sys, time, pathlib\n"
        "assert '--verbose' in sys.argv\n"
        "print('ok   fixture a->b drift=True')\n"
        f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.05)\n"
        "print('1 fixtures: 1/1 checks agree')\n"
    )
    runner.chmod(runner.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "CONFORMANCE_RUNNER": str(runner)}
    proc = subprocess.Popen(
        [str(REPO / "dev"), "conformance"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("ok "):
                break
        assert any("conformance:" in ln and "one line per check" in ln for ln in seen), seen
        go.touch()
        rest = proc.stdout.read()
        assert proc.wait(60) == 0
        assert "checks agree" in rest and "conformance: finished (exit 0)" in rest
    finally:
        go.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
