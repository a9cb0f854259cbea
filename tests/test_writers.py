"""One writer at a time per folder: sync, rollback and prune wait for the write lock, and
`check` reads no files a writer is halfway through replacing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.disk import lock
from tests.conftest import Database
from tests.daemon_proc import clean_env

# Another writer (the daemon's run, a hand-run command): holds the folder's write lock with a
# backup half-written, as a live sync does, until told to finish on stdin.
HOLDER = """
import asyncio, shutil, sys, tempfile
from pathlib import Path
from service.disk import lock, owner

async def main() -> None:
    async with lock.writing(Path(sys.argv[1])):
        backups = Path(sys.argv[2])
        backups.mkdir(parents=True, exist_ok=True)
        work = tempfile.mkdtemp(prefix=f".incomplete-{owner.tag()}-", dir=backups)
        print(work, flush=True)
        sys.stdin.readline()
        shutil.rmtree(work)

asyncio.run(main())
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    write_lock = tmp_path / "sql" / "schemas"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(write_lock), str(tmp_path / "backups")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    work = Path(proc.stdout.readline().strip())
    assert work.is_dir()
    try:
        yield proc, work
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _start(args: list[str], cwd: Path, db: Database) -> subprocess.Popen[str]:
    env = clean_env({"SCHEMA_SYNC_DSN": db.dsn, "SCHEMA_SYNC_LOG_FORMAT": "json"})
    return subprocess.Popen(
        [sys.executable, "-m", "service", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _waits_for(command: subprocess.Popen[str], holder_pid: int) -> bool:
    """Read the command's log until it says it waits for the holder (False: it never did)."""
    assert command.stderr is not None
    for line in command.stderr:
        if '"lock.waiting"' in line:
            assert f"PID {holder_pid}: " in line
            return True
    return False


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["sync"], "first sync"),
        (["rollback"], "no earlier good backup"),
        (["backups", "prune", "--keep-last", "1"], "deleted 0 of 0 backups"),
        # a reader too: files half-replaced by a writer would read as drift that is not there
        (["check"], "no schema files yet"),
    ],
)
def test_a_writing_command_waits_for_the_folders_writer_and_leaves_its_work_alone(
    holder: tuple[subprocess.Popen[str], Path],
    db: Database,
    tmp_path: Path,
    args: list[str],
    expect: str,
) -> None:
    proc, work = holder
    command = _start(args, tmp_path, db)
    try:
        assert _waits_for(command, proc.pid), "the command did not wait for the write lock"
        assert work.is_dir()  # the other writer's half-written backup is untouched
        assert proc.stdin is not None
        proc.stdin.write("\n")  # the other writer finishes and lets go
        proc.stdin.flush()
        out, err = command.communicate(timeout=120)
    finally:
        if command.poll() is None:
            command.kill()
    assert expect in out + err
    assert proc.wait(timeout=30) == 0


async def test_a_writer_that_keeps_the_lock_is_named_after_the_bounded_wait(
    holder: tuple[subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    proc, _ = holder
    path = tmp_path / "sql" / "schemas"
    waited: list[str] = []
    expected = rf"another pg-schema-sync \(PID {proc.pid}: .*-c.*\) is writing {path} and did"
    with pytest.raises(lock.LockHeld, match=expected):
        async with lock.writing(path, wait_s=1, on_wait=waited.append):
            pass
    assert len(waited) == 1 and waited[0].startswith(f"PID {proc.pid}: ")
