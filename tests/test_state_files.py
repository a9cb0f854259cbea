"""Files a user commits stay clean: the schema folder holds the three schema files and nothing
of the tool's own. The daemon's state and lock files live in the state folder (backup_dir, or
state_dir); an older version's, found beside the schema files, are moved there at start."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.daemon.health import DaemonState, save_state
from service.disk import history
from service.disk.history import History, RunRecord
from service.disk.legacy import move_state
from tests.conftest import Database, run_cli
from tests.daemon_proc import DaemonProcess

SCHEMA_FILES = ["complete-schema.sql", "functions.sql", "inventory.json"]
NEVER = "0 0 1 1 *"
OLD_STATE = Path("sql/schemas/.pg-schema-sync-state.json")
OLD_LOCK = Path("sql/schemas/.pg-schema-sync.lock")


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_after_a_sync_and_a_check_the_schema_folder_holds_only_the_schema_files(
    db: Database, tmp_path: Path
) -> None:
    db.sql("CREATE TABLE t (id int PRIMARY KEY)")
    env = {"SCHEMA_SYNC_DSN": db.dsn}
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    db.sql("ALTER TABLE t ADD COLUMN c text")
    assert run_cli("check", cwd=tmp_path, env=env).code == 1
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0  # drift: files replaced
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0  # skipped cycle
    assert listing(tmp_path / "sql/schemas") == SCHEMA_FILES
    assert listing(tmp_path / "sql") == ["schemas"]


def test_after_the_daemon_ran_the_schema_folder_holds_only_the_schema_files(
    db: Database, tmp_path: Path
) -> None:
    db.sql("CREATE TABLE t (id int PRIMARY KEY)")
    # A typo'd variable: the daemon says so among its own events (stdout), and runs.
    env = {"SCHEMA_SYNC_DSN": db.dsn, "SCHEMA_SYNC_SCHEDULE": NEVER, "SCHEMA_SYNC_STOP_GRACE": "5"}
    with DaemonProcess(tmp_path, env) as d:
        typo = d.wait_for("settings.unknown_variable")
        assert typo["variable"] == "SCHEMA_SYNC_STOP_GRACE"
        assert typo["nearest"] == "SCHEMA_SYNC_STOP_GRACE_S" and typo["level"] == "warning"
        started = d.wait_for("daemon.started")
        assert started["state_file"] == str(tmp_path / "backups/.pg-schema-sync-state.json")
        d.wait_for("sync.finished")
        assert listing(tmp_path / "backups").count(".pg-schema-sync.lock") == 1
        d.send(signal.SIGTERM)
        assert d.wait_exit(30) == 0
    assert listing(tmp_path / "sql/schemas") == SCHEMA_FILES
    state = json.loads((tmp_path / "backups/.pg-schema-sync-state.json").read_text())
    assert state["last_success_at"] and state["daemon_stopped_at"]
    assert run_cli("health", cwd=tmp_path).out.startswith("unhealthy: the daemon stopped")


def test_state_dir_holds_the_daemons_files_when_set(db: Database, tmp_path: Path) -> None:
    state_dir = tmp_path / "var/state"
    env = {
        "SCHEMA_SYNC_DSN": db.dsn,
        "SCHEMA_SYNC_SCHEDULE": NEVER,
        "SCHEMA_SYNC_STATE_DIR": str(state_dir),
    }
    with DaemonProcess(tmp_path, env) as d:
        d.wait_for("sync.finished")
        d.send(signal.SIGTERM)
        assert d.wait_exit(30) == 0
    assert listing(state_dir) == [
        ".pg-schema-sync-history.json",  # the status page's timeline (issue 21)
        ".pg-schema-sync-state.json",
        ".pg-schema-sync.lock",
    ]
    assert ".pg-schema-sync-state.json" not in listing(tmp_path / "backups")
    healthy = run_cli("health", cwd=tmp_path, env={"SCHEMA_SYNC_STATE_DIR": str(state_dir)})
    assert healthy.out.startswith("unhealthy: the daemon stopped")  # it read that state


def test_an_older_versions_state_is_moved_once_and_its_lock_retired(
    db: Database, tmp_path: Path
) -> None:
    db.sql("CREATE TABLE t (id int PRIMARY KEY)")
    env = {"SCHEMA_SYNC_DSN": db.dsn, "SCHEMA_SYNC_SCHEDULE": NEVER}
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    then = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    # What an older daemon left in the folder a user commits (and `health` still reads).
    save_state(
        tmp_path / OLD_STATE,
        DaemonState(
            daemon_started_at=then, last_success_at=then, active_drift="abc", failure_alerted=True
        ),
    )
    (tmp_path / OLD_LOCK).write_text("")
    # The status page's timeline, which went beside the state file, goes with it.
    old_history = tmp_path / "sql/schemas/.pg-schema-sync-history.json"
    history.save(old_history, History(runs=(RunRecord(then, "full", run_id="older-run"),)))
    assert "last successful sync" in run_cli("health", cwd=tmp_path).out
    with DaemonProcess(tmp_path, {**env, "SCHEMA_SYNC_SYNC_ON_START": "false"}) as d:
        moved = d.wait_for("state.moved")
        assert moved["old"] == str(tmp_path / OLD_STATE)
        assert moved["new"] == str(tmp_path / "backups/.pg-schema-sync-state.json")
        d.wait_for("daemon.started")
        d.send(signal.SIGTERM)
        assert d.wait_exit(30) == 0
    assert listing(tmp_path / "sql/schemas") == SCHEMA_FILES
    assert not old_history.exists()
    assert "older-run" in (tmp_path / "backups/.pg-schema-sync-history.json").read_text()
    state = json.loads((tmp_path / "backups/.pg-schema-sync-state.json").read_text())
    # What the alerts need to survive the move did: the drift already alerted on, the streak.
    assert state["active_drift"] == "abc" and state["failure_alerted"] is True
    assert state["last_success_at"] == then.isoformat()


def test_an_older_daemon_still_running_is_not_run_beside(db: Database, tmp_path: Path) -> None:
    (tmp_path / OLD_LOCK).parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode());"
            "print('held', flush=True); sys.stdin.read()",
            str(tmp_path / OLD_LOCK),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        result = run_cli(
            "run", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": db.dsn, "SCHEMA_SYNC_SCHEDULE": NEVER}
        )
        assert result.code == 2
        assert result.err.splitlines() == [
            f"pg-schema-sync: an older pg-schema-sync daemon (PID {holder.pid}) still runs for "
            f"this folder (lock file {tmp_path / OLD_LOCK}): stop it before starting this version"
        ]
        assert (tmp_path / OLD_LOCK).exists()  # not ours to remove while held
    finally:
        holder.kill()
        holder.wait()


def test_moving_the_state_across_file_systems_copies_then_removes(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system (/dev/shm)")
    old = tmp_path / "sql/schemas/.pg-schema-sync-state.json"
    old.parent.mkdir(parents=True)
    old.write_text('{"version": 1, "pid": 7}\n')
    new = shm / f"pg-schema-sync-test-{os.getpid()}" / "state.json"
    try:
        assert move_state(old, new)
        assert not old.exists() and json.loads(new.read_text())["pid"] == 7
        assert not move_state(old, new)  # once
    finally:
        new.unlink(missing_ok=True)
        new.parent.rmdir()


def test_a_symlink_in_the_old_place_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    old = tmp_path / "old.json"
    old.symlink_to(target)
    assert not move_state(old, tmp_path / "new.json")
    assert old.is_symlink() and target.read_text() == "{}"


def test_two_configs_sharing_a_schema_folder_still_exclude_each_other(
    db: Database, tmp_path: Path
) -> None:
    """Different backup and state folders, one schema folder: the write lock is the folder's
    own, so a sync of the second config waits for the first's writer."""
    folder = tmp_path / "sql/schemas"
    folder.mkdir(parents=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the first config's sync holds it while writing
        env = {
            "SCHEMA_SYNC_DSN": db.dsn,
            "SCHEMA_SYNC_BACKUP_DIR": str(tmp_path / "other-backups"),
            "SCHEMA_SYNC_STATE_DIR": str(tmp_path / "other-state"),
            "SCHEMA_SYNC_LOG_FORMAT": "json",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "sync"],
            cwd=tmp_path,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        waiting = proc.stderr.readline()
        assert json.loads(waiting)["event"] == "lock.waiting"
        assert not (folder / "complete-schema.sql").exists()
    finally:
        os.close(fd)  # the first writer is done
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "first sync" in out
    assert listing(folder) == SCHEMA_FILES
