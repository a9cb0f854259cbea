"""Bad input a user can give ends in one line on stderr and exit 2, never a traceback; a
damaged backup is skipped and reported, never fatal for a sync."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from service.disk.files import BACKUP_MANIFEST
from tests.conftest import Database, backup_names, new_database, run_cli
from tests.inproc import in_process

Prepare = Callable[[Path], None]


def _nothing(work: Path) -> None:
    pass


def _sql_is_a_file(work: Path) -> None:
    shutil.rmtree(work / "sql")
    (work / "sql").write_text("not a folder\n")


def _manifest_without_files(work: Path) -> None:
    backup = work / "backups" / backup_names(work / "backups")[0]
    doc = json.loads((backup / BACKUP_MANIFEST).read_text())
    doc["files"] = {}
    (backup / BACKUP_MANIFEST).write_text(json.dumps(doc))


def _manifest_missing(work: Path) -> None:
    ((work / "backups" / backup_names(work / "backups")[0]) / BACKUP_MANIFEST).unlink()


def _first_backup(work: Path) -> str:
    return (work / "backups" / backup_names(work / "backups")[0]).name


CASES: list[tuple[str, list[str], dict[str, str], Prepare, str]] = [
    ("PGPORT not a number", ["check"], {"PGPORT": "abc"}, _nothing, "PGPORT 'abc'"),
    (
        "DSN port not a number",
        ["check"],
        {"SCHEMA_SYNC_DSN": "postgresql://u@h:x/db"},
        _nothing,
        "port in the connection string",
    ),
    (
        "keyword port not a number",
        ["sync"],
        {"SCHEMA_SYNC_DSN": "host=h port=5o32"},
        _nothing,
        "port",
    ),
    (
        "mysql DSN",
        ["sync"],
        {"SCHEMA_SYNC_DSN": "mysql://u:pw@h/db"},
        _nothing,
        "not a libpq connection string",
    ),
    (
        "http DSN",
        ["check"],
        {"SCHEMA_SYNC_DSN": "http://h/db"},
        _nothing,
        "not a libpq connection string",
    ),
    (
        "schedule that never fires",
        ["run"],
        {"SCHEMA_SYNC_SCHEDULE": "0 0 30 2 *"},
        _nothing,
        "never fires",
    ),
    ("run where sql is a file", ["run"], {}, _sql_is_a_file, "cannot start"),
    (
        "prune --keep-days inf",
        ["backups", "prune", "--keep-days", "inf"],
        {},
        _nothing,
        "--keep-days inf",
    ),
    (
        "prune --keep-days nan",
        ["backups", "prune", "--keep-days", "nan"],
        {},
        _nothing,
        "--keep-days nan",
    ),
    (
        "prune --keep-last 0",
        ["backups", "prune", "--keep-last", "0"],
        {},
        _nothing,
        "--keep-last 0",
    ),
    (
        "retain_days inf",
        ["backups", "prune"],
        {"SCHEMA_SYNC_RETAIN_DAYS": "inf"},
        _nothing,
        "invalid setting retain_days",
    ),
    ("rollback ''", ["rollback", ""], {}, _nothing, "'' is not a backup folder"),
    (
        "rollback to a manifest listing no files",
        ["rollback", "FIRST"],
        {},
        _manifest_without_files,
        "listing no files",
    ),
    (
        "rollback to a backup without manifest",
        ["rollback", "FIRST"],
        {},
        _manifest_missing,
        "has no manifest",
    ),
]


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, cluster: ScratchCluster) -> Path:
    """A folder after two syncs (two backups, the files of the second in place)."""
    db = new_database(cluster)
    work = tmp_path_factory.mktemp("synced")
    db.sql("CREATE TABLE t (id int)")
    assert run_cli("sync", cwd=work, env={"SCHEMA_SYNC_DSN": db.dsn}).code == 0
    db.sql("CREATE TABLE u (id int)")
    assert run_cli("sync", cwd=work, env={"SCHEMA_SYNC_DSN": db.dsn}).code == 0
    return work


@pytest.mark.parametrize(
    ("args", "env", "prepare", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str],
    env: dict[str, str],
    prepare: Prepare,
    expected: str,
    synced: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path / "work"
    shutil.copytree(synced, work, symlinks=True)
    prepare(work)
    args = [_first_backup(work) if a == "FIRST" else a for a in args]
    env = {"SCHEMA_SYNC_SYNC_ON_START": "false", **env}
    result = in_process(args, work, env, capfd)
    lines = result.err.strip().splitlines()
    assert result.code == 2, (result.out, result.err)
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize(
    "damage",
    [
        lambda doc: {**doc, "files": list(doc["files"])},
        lambda doc: {**doc, "created_at": "2026-01-01T00:00:00"},
        lambda doc: {**doc, "drift": "lots"},
        lambda doc: [doc],
    ],
    ids=["files as a list", "timestamp without zone", "drift as a string", "not an object"],
)
def test_a_damaged_manifest_is_skipped_and_reported_never_fatal_for_a_sync(
    damage: Callable[[dict[str, object]], object],
    db: Database,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    env = {"SCHEMA_SYNC_DSN": db.dsn, "SCHEMA_SYNC_RETAIN_COUNT": "5"}
    db.sql("CREATE TABLE t (id int)")
    assert in_process(["sync"], tmp_path, env, capfd).code == 0
    backup = tmp_path / "backups" / backup_names(tmp_path / "backups")[0]
    doc = json.loads((backup / BACKUP_MANIFEST).read_text())
    (backup / BACKUP_MANIFEST).write_text(json.dumps(damage(doc)))
    db.sql("CREATE TABLE u (id int)")
    synced = in_process(["sync"], tmp_path, env, capfd)
    assert synced.code == 0, synced.err
    assert "Traceback" not in synced.err
    listed = in_process(["backups"], tmp_path, env, capfd)
    assert listed.code == 0, listed.err
    assert backup.name in listed.out and "unreadable manifest" in listed.out
    assert in_process(["rollback", backup.name], tmp_path, env, capfd).code == 2


def test_a_lock_timeout_follows_lock_wait_timeout_ms_and_names_the_table(
    db: Database, cluster: ScratchCluster, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Deparsing a CHECK constraint opens its table: DDL holding it makes the catalog wait.
    db.sql("CREATE TABLE busy (n int CHECK (n > 0))")
    holder = subprocess.Popen(
        [
            str(cluster.bindir / "psql"),
            "-X",
            "-q",
            "-d",
            db.dsn,
            "-c",
            "BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            held = db.sql(
                "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                "AND relation = 'busy'::regclass AND granted"
            ).strip()
            if held == "1":
                break
            time.sleep(0.05)
        # The statement timeout (3 s) is below the old fixed lock_timeout (5 s) and above the
        # configured lock wait (0.3 s): which one fires shows which one the session obeys.
        env = {
            "SCHEMA_SYNC_LOCK_WAIT_TIMEOUT_MS": "300",
            "SCHEMA_SYNC_STATEMENT_TIMEOUT_MS": "3000",
        }
        result = in_process(["compare", db.dsn, db.dsn], tmp_path, env, capfd)
    finally:
        holder.kill()
        holder.wait()
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "gave up waiting for a lock on public.busy" in lines[0], lines[0]
