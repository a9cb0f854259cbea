"""`pg-schema-sync verify` and verification inside `sync`, against a real PostgreSQL.

The session cluster is both production (fresh databases) and the verify server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from service.demo.run import PRODUCTION_SQL
from service.disk.files import BACKUP_MANIFEST, BACKUP_SCHEMA, list_backups
from service.production.catalog import CatalogOptions
from service.production.export import ExportOptions
from service.verify import SCRATCH_PREFIX, parse_psql_error, verify_files
from tests.conftest import FIXTURES, Database, new_database, run_cli

SCHEMA = Path("sql/schemas/complete-schema.sql")
FUNCTIONS = Path("sql/schemas/functions.sql")


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


@pytest.fixture
def verifier(cluster: ScratchCluster) -> Iterator[str]:
    """A verify login that may create databases but is no superuser: it cannot give objects
    to their production owner, so installing a dump with owners fails."""
    cluster.psql("postgres", "CREATE ROLE verifier LOGIN CREATEDB")
    yield cluster.dsn("postgres", user="verifier")
    cluster.psql("postgres", "DROP ROLE verifier")


def env_for(cluster: ScratchCluster, db: Database, **extra: str) -> dict[str, str]:
    return {"SCHEMA_SYNC_DSN": db.dsn, "SCHEMA_SYNC_VERIFY_DSN": cluster.dsn(), **extra}


def scratch_databases(cluster: ScratchCluster) -> list[str]:
    out = cluster.psql(
        "postgres", f"SELECT datname FROM pg_database WHERE datname LIKE '{SCRATCH_PREFIX}%'"
    )
    return out.split()


def manifest(backup: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((backup / BACKUP_MANIFEST).read_text())
    return data


def events(stderr: str, name: str) -> list[dict[str, object]]:
    return [json.loads(ln) for ln in stderr.splitlines() if f'"event": "{name}"' in ln]


def insert_at(path: Path, line_no: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(line_no - 1, text)
    path.write_text("".join(lines))


def test_verify_passes_for_the_postgis_pgrouting_demo_schema(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    trails = new_database(cluster, PRODUCTION_SQL)
    try:
        env = env_for(cluster, trails)
        assert run_cli("sync", cwd=tmp_path, env=env).code == 0
        result = run_cli("verify", cwd=tmp_path, env=env)
        assert result.code == 0, result.out + result.err
        assert result.out.startswith(f"verify passed: {SCHEMA} installs and re-dumps identically")
        assert scratch_databases(cluster) == []
    finally:
        cluster.drop_database(trails.name)


def test_broken_statement_fails_with_file_line_and_message(
    cluster: ScratchCluster, shop: Database, tmp_path: Path
) -> None:
    env = env_for(cluster, shop)
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    line = next(
        i
        for i, t in enumerate((tmp_path / SCHEMA).read_text().splitlines(), 1)
        if t.startswith("CREATE TABLE shop.orders")
    )
    insert_at(
        tmp_path / SCHEMA, line, "CREATE TABLE shop.broken (\n    x int,\n    y no_such_type\n);\n"
    )
    result = run_cli("verify", cwd=tmp_path, env=env)
    assert result.code == 1, result.err
    assert result.out.splitlines()[0] == (
        f'verify failed: {SCHEMA}:{line + 2}: ERROR: type "no_such_type" does not exist'
    )
    assert scratch_databases(cluster) == []


def test_missing_extension_is_reported_before_installing(
    cluster: ScratchCluster, shop: Database, tmp_path: Path
) -> None:
    env = env_for(cluster, shop)
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    insert_at(
        tmp_path / SCHEMA, 20, "CREATE EXTENSION IF NOT EXISTS no_such_ext WITH SCHEMA public;\n"
    )
    result = run_cli("verify", cwd=tmp_path, env=env)
    assert result.code == 2  # could not run: the server lacks what the files need
    assert (
        f"  - extension no_such_ext is not available on the verify server (CREATE EXTENSION at "
        f"{SCHEMA}:20): install its package there" in result.err
    )
    assert scratch_databases(cluster) == []  # nothing was created


def test_round_trip_names_a_function_edited_by_hand(
    cluster: ScratchCluster, shop: Database, tmp_path: Path
) -> None:
    env = env_for(cluster, shop)
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    text = (tmp_path / SCHEMA).read_text()
    edited = text.replace("SELECT qty * 1.5 $$", "SELECT qty * 2.5 $$", 1)
    assert edited != text
    (tmp_path / SCHEMA).write_text(edited)
    result = run_cli("verify", "--diff", cwd=tmp_path, env=env)
    assert result.code == 1, result.err
    assert "round trip differs" in result.out
    assert "behavioural changed  function shop.price(integer)" in result.out
    assert "+" in result.out and "2.5" in result.out
    assert "shop.price(integer, numeric)" not in result.out


def test_round_trip_names_a_file_reformatted_by_hand(
    cluster: ScratchCluster, shop: Database, tmp_path: Path
) -> None:
    env = env_for(cluster, shop)
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    with open(tmp_path / FUNCTIONS, "a") as fh:
        fh.write("-- a note added by hand\n")
    result = run_cli("verify", cwd=tmp_path, env=env)
    assert result.code == 1
    assert "behavioural changed  file functions.sql" in result.out


def test_verify_without_a_verify_server_is_one_clear_line(shop: Database, tmp_path: Path) -> None:
    result = run_cli("verify", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": shop.dsn})
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert line.startswith("pg-schema-sync: verify_dsn is not set: set SCHEMA_SYNC_VERIFY_DSN")


def test_require_mode_keeps_old_files_and_the_failed_candidate(
    cluster: ScratchCluster, shop: Database, verifier: str, tmp_path: Path
) -> None:
    assert run_cli("sync", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": shop.dsn}).code == 0
    before = {p: (tmp_path / p).read_bytes() for p in (SCHEMA, FUNCTIONS)}
    shop.sql("ALTER TABLE shop.orders ADD COLUMN note text")
    env = env_for(cluster, shop, SCHEMA_SYNC_VERIFY="require", SCHEMA_SYNC_VERIFY_DSN=verifier)
    result = run_cli("sync", "--log-format", "json", cwd=tmp_path, env=env)
    assert result.code == 2
    # The verify role cannot give objects to their owner (postgres, a superuser there): the
    # check before installing says so, and how to verify anyway.
    assert "verification error: the verify server" in result.err
    assert "previous files kept" in result.err
    assert {p: (tmp_path / p).read_bytes() for p in (SCHEMA, FUNCTIONS)} == before
    candidate = list_backups(tmp_path / "backups")[-1]
    assert b"note text" in (candidate / BACKUP_SCHEMA).read_bytes()
    m = manifest(candidate)
    assert (m["status"], m["verify"]) == ("failed", "error")
    [failed] = events(result.err, "verify.failed")
    assert failed["mode"] == "require" and failed["promoted"] is False
    assert failed["stage"] == "error" and failed["level"] == "error"
    assert "verifier is not a member of postgres (it owns objects in the files" in str(
        failed["error"]
    )
    assert "verify with a superuser role (postgres is one there)" in str(failed["error"])
    assert scratch_databases(cluster) == []
    check = run_cli("check", "--json", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": shop.dsn})
    assert check.code == 1  # the drift is still there for the next run
    # The next attempt fails the same way: one failed backup, not one per attempt.
    assert run_cli("sync", cwd=tmp_path, env=env).code == 2
    assert list_backups(tmp_path / "backups")[-1] == candidate
    assert manifest(candidate)["attempts"] == 2
    listed = run_cli("backups", cwd=tmp_path).out
    assert "(2 attempts)" in listed

    # warn: the same failure is logged, the files are promoted anyway.
    env["SCHEMA_SYNC_VERIFY"] = "warn"
    warned = run_cli("sync", "--log-format", "json", cwd=tmp_path, env=env)
    assert warned.code == 0, warned.err
    assert b"note text" in (tmp_path / SCHEMA).read_bytes()
    [failed] = events(warned.err, "verify.failed")
    assert failed["level"] == "warning" and failed["promoted"] is True
    m = manifest(list_backups(tmp_path / "backups")[-1])
    assert (m["status"], m["verify"]) == ("done", "error")


def test_require_mode_promotes_files_that_pass(
    cluster: ScratchCluster, shop: Database, tmp_path: Path
) -> None:
    env = env_for(cluster, shop, SCHEMA_SYNC_VERIFY="require")
    result = run_cli("sync", "--log-format", "json", "--log-level", "info", cwd=tmp_path, env=env)
    assert result.code == 0, result.err
    assert (tmp_path / SCHEMA).exists()
    [passed] = events(result.err, "verify.passed")
    assert str(passed["database"]).startswith(SCRATCH_PREFIX)
    m = manifest(list_backups(tmp_path / "backups")[-1])
    assert (m["status"], m["verify"]) == ("done", "passed")
    assert scratch_databases(cluster) == []


async def test_scratch_database_is_dropped_when_verification_is_cancelled(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    slow = tmp_path / "slow.sql"
    slow.write_text("CREATE TABLE t (x int);\nSELECT pg_sleep(60);\n")
    task = asyncio.create_task(
        verify_files(cluster.conninfo(), slow, None, None, ExportOptions(), CatalogOptions())
    )
    deadline = time.monotonic() + 20
    while not scratch_databases(cluster):
        assert time.monotonic() < deadline, "scratch database never appeared"
        await asyncio.sleep(0.05)
    [name] = scratch_databases(cluster)
    await asyncio.sleep(0.5)  # psql is now inside pg_sleep
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert scratch_databases(cluster) == []
    sessions = cluster.psql(
        "postgres", f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"
    )
    assert sessions.strip() == "0"


def test_two_verifies_at_once_never_collide(
    cluster: ScratchCluster, shop: Database, tmp_path: Path
) -> None:
    env = env_for(cluster, shop)
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "service", "verify"],
            cwd=tmp_path,
            env={**full_env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert scratch_databases(cluster) == []


def test_interrupted_sync_leaves_a_backup_marked_failed(
    cluster: ScratchCluster, shop: Database, tmp_path: Path
) -> None:
    env = env_for(cluster, shop)
    assert run_cli("sync", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": shop.dsn}).code == 0
    good = list_backups(tmp_path / "backups")[-1]
    before = (tmp_path / SCHEMA).read_bytes()
    shop.sql("ALTER TABLE shop.orders ADD COLUMN lost text")
    # A psql that hangs: the sync is killed while verifying, between backup and promotion.
    real = subprocess.run(["which", "pg_dump"], capture_output=True, text=True).stdout.strip()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in (("pg_dump", f'exec {real} "$@"\n'), ("psql", "sleep 60\n")):
        (bindir / name).write_text("#!/bin/bash\n" + body)
        (bindir / name).chmod(0o755 | stat.S_IXUSR)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}

    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "sync"],
        cwd=tmp_path,
        env={
            **full_env,
            **env,
            "SCHEMA_SYNC_VERIFY": "require",
            "SCHEMA_SYNC_PG_DUMP": str(bindir / "pg_dump"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while len(list_backups(tmp_path / "backups")) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted = list_backups(tmp_path / "backups")[-1]
    assert manifest(interrupted)["status"] == "started"  # as the killed run left it
    assert (tmp_path / SCHEMA).read_bytes() == before

    listed = run_cli("backups", "--json", cwd=tmp_path).json()
    assert [(b["name"], b["status"]) for b in listed] == [
        (good.name, "done"),
        (interrupted.name, "failed"),
    ]
    assert "interrupted" in listed[1]["reason"]
    refused = run_cli("rollback", interrupted.name, cwd=tmp_path)
    assert refused.code == 2 and "is marked failed" in refused.err
    # Retention never takes it for the newest good backup.
    dry = run_cli("backups", "prune", "--dry-run", "--keep-last", "1", cwd=tmp_path)
    assert f"keep         {good.name}  (newest good backup)" in dry.out
    # The next sync records the failure in the manifest for good.
    assert run_cli("sync", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": shop.dsn}).code == 0
    assert manifest(interrupted)["status"] == "failed"


def test_psql_error_with_echoed_statement_points_at_the_offending_line() -> None:
    stderr = (
        'psql:x.sql:6: ERROR:  type "nosuchtype" does not exist\n'
        "LINE 3:   z nosuchtype\n            ^\n"
        "psql:x.sql:6: STATEMENT:  CREATE TABLE b (\n  y int,\n  z nosuchtype\n);\n"
    )
    problem = parse_psql_error(stderr, "x.sql")
    assert (problem.file, problem.line, problem.stage) == ("x.sql", 5, "install")
    runtime = "psql:x.sql:9: ERROR:  division by zero\npsql:x.sql:9: STATEMENT:  SELECT 1/0;\n"
    assert parse_psql_error(runtime, "x.sql").line == 9
