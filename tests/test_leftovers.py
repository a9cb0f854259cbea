"""What killed runs leave behind is cleaned at the next start, unless a live process owns it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from service.demo.cluster import ScratchCluster
from service.disk import owner
from service.production.catalog import CatalogOptions
from service.production.export import ExportOptions
from service.verify import SCRATCH_PREFIX, verify_files
from tests.conftest import Database, run_cli


def _dead_tag() -> str:
    """The owner tag of a process that has exited."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    tag = owner.tag(proc.pid)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait()
    return tag


def test_leftovers_of_dead_processes_go_at_start_and_live_ones_stay(
    db: Database, tmp_path: Path
) -> None:
    backups, schemas = tmp_path / "backups", tmp_path / "sql" / "schemas"
    backups.mkdir()
    schemas.mkdir(parents=True)
    dead, live = _dead_tag(), owner.tag()  # live: this test's own process
    gone = [
        backups / f".staging-{dead}-a1b2c3d4",  # a fresh one: no 24 h wait
        backups / f".incomplete-{dead}-e5f6",
        backups / f".deleting-{dead}-schema-sync-20250101_000000",
        schemas / f".complete-schema.sql.{dead}.x1y2z3.tmp",
        schemas / f".inventory.json.{dead}.q9w8.tmp",
    ]
    kept = [
        backups / f".staging-{live}-a1b2c3d4",
        backups / f".incomplete-{live}-e5f6",  # a live writer's backup in progress
        schemas / f".functions.sql.{live}.x1y2z3.tmp",
        backups / ".staging-oldformat",  # no owner in the name, not a day old: unknown
        schemas / "notes.tmp",  # not ours
    ]
    for path in gone + kept:
        if path.name.endswith(".tmp"):
            path.write_bytes(b"x" * 1000)
        else:
            path.mkdir()
            (path / "production-schema.sql").write_bytes(b"x" * 1000)
    result = run_cli("sync", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": db.dsn})
    assert result.code == 0, result.err
    assert [p for p in gone if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


EXPORT_CHILD = """
import asyncio, sys
from collections.abc import Callable
from pathlib import Path
from service.production.conninfo import ConnInfo
from service.production.export import ExportOptions, export_schema

out = Path(sys.argv[2])
asyncio.run(export_schema(
    ConnInfo.parse(sys.argv[1]), ExportOptions(lock_wait_timeout_ms=120_000),
    out / "s.sql", out / "f.sql",
))
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rfind(b")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def _wait_until(done: Callable[[], bool], bound_s: float) -> None:
    """Poll `done` until true; the bound only ends a failing test."""
    deadline = time.monotonic() + bound_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_pg_dump_dies_with_its_killed_parent(db: Database, tmp_path: Path) -> None:
    db.sql("CREATE TABLE held (id int)")
    psql = [str(db.cluster.bindir / "psql"), "-X", "-q", "-d", db.dsn, "-c"]
    locker = subprocess.Popen(
        [*psql, "BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300)"],
        stdout=subprocess.DEVNULL,
    )
    parent = subprocess.Popen([sys.executable, "-c", EXPORT_CHILD, db.dsn, str(tmp_path)])
    try:
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        _wait_until(lambda: db.sql(waiting).strip() != "0", 60)  # pg_dump blocks on the table
        pg_dump = _children(parent.pid)
        assert pg_dump and parent.poll() is None
        parent.send_signal(signal.SIGKILL)  # no cleanup code runs in the parent
        parent.wait()
        # Unlinked from its parent pg_dump would wait 120 s for the lock; linked, the kernel
        # kills it at once.
        _wait_until(lambda: not any(_running(p) for p in pg_dump), 30)
        assert not [p for p in pg_dump if _running(p)], "pg_dump outlived its killed parent"
    finally:
        for proc in (parent, locker):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


async def test_verify_drops_scratch_databases_whose_owner_is_gone_and_only_those(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    dead = SCRATCH_PREFIX + _dead_tag().replace(".", "_") + "_0badf00d"
    live = SCRATCH_PREFIX + owner.tag().replace(".", "_") + "_0000beef"
    legacy = SCRATCH_PREFIX + "0123456789abcdef"  # an older version's: owner unknown
    for name in (dead, live, legacy):
        cluster.psql("postgres", f'CREATE DATABASE "{name}"')
    schema = tmp_path / "s.sql"
    schema.write_text("CREATE TABLE t (id int);\n")
    try:
        await verify_files(
            cluster.conninfo(), schema, None, None, ExportOptions(), CatalogOptions()
        )
        names = cluster.psql("postgres", "SELECT datname FROM pg_database").split()
        assert dead not in names
        assert live in names and legacy in names
    finally:
        for name in (dead, live, legacy):
            cluster.drop_database(name)
