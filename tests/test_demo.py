"""`pg-schema-sync demo`: its sample schema is real PostGIS/pgRouting, its report shows the
hot-fix as drift, and it leaves no cluster or temp folder behind, however it ends."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from service.demo import run as demo
from service.demo.cluster import ScratchCluster
from tests.conftest import Database, new_database

# Folders the demo creates and prints: its ScratchCluster's and its own temp folder.
TEMP_DIR = re.compile(r"/\S*pg-schema-sync-(?:cluster|demo)-[A-Za-z0-9_]+")


ROUTE_1_TO_3 = "SELECT string_agg(trail_name, ',' ORDER BY seq) FROM routing.find_route(1, 3)"


def temp_dirs(output: str) -> set[str]:
    return set(TEMP_DIR.findall(output))


def still_there(dirs: set[str]) -> list[str]:
    return sorted(d for d in dirs if Path(d).exists())


def load(cluster: ScratchCluster, *files: Path) -> Database:
    return new_database(cluster, *files)


# -- the SQL files -------------------------------------------------------------------------


def test_production_schema_loads_with_postgis_and_pgrouting(cluster: ScratchCluster) -> None:
    db = load(cluster, demo.PRODUCTION_SQL)
    try:
        extensions = db.sql("SELECT extname FROM pg_extension").split()
        assert {"postgis", "pgrouting"} <= set(extensions)
        geometry_columns = db.sql(
            "SELECT f_table_schema || '.' || f_table_name || '.' || f_geometry_column"
            " || ' ' || type || ' ' || srid FROM geometry_columns"
        ).splitlines()
        assert "trails.trails.geom LINESTRING 4326" in geometry_columns
        assert "trails.trailheads.location POINT 4326" in geometry_columns
        # The trigger computed lengths with PostGIS; find_route really calls pgr_dijkstra.
        assert db.sql("SELECT count(*) FROM trails.trails WHERE length_m > 500").strip() == "3"
        route = db.sql(
            "SELECT string_agg(trail_name, ',' ORDER BY seq) FROM routing.find_route(1, 3)"
        )
        assert route.strip() == "Valley Loop"
    finally:
        cluster.drop_database(db.name)


def test_production_schema_loads_again_where_its_roles_exist(cluster: ScratchCluster) -> None:
    first = load(cluster, demo.PRODUCTION_SQL)
    second = load(cluster, demo.PRODUCTION_SQL)  # roles are cluster-wide: the DO block skips them
    try:
        grants = second.sql(
            "SELECT has_function_privilege('trails_app', "
            "'routing.find_route(integer, integer)', 'EXECUTE')"
        )
        assert grants.strip() == "t"
    finally:
        cluster.drop_database(first.name)
        cluster.drop_database(second.name)


def test_hotfix_reroutes_around_closed_trails_and_adds_a_column(cluster: ScratchCluster) -> None:
    db = load(cluster, demo.PRODUCTION_SQL, demo.HOTFIX_SQL)
    try:
        route = db.sql(
            "SELECT string_agg(trail_name, ',' ORDER BY seq) FROM routing.find_route(1, 3)"
        )
        assert route.strip() == "Mill Path,Ridge Climb"
        column = db.sql(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = 'trails'"
            " AND table_name = 'trails' AND column_name = 'closed_reason'"
        )
        assert column.strip() == "text"
    finally:
        cluster.drop_database(db.name)


# -- the demo ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_demo_reports_the_hotfixed_function_and_the_new_column(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The user's own production settings must not leak into the demo's throwaway cluster.
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SCHEMA_SYNC_PORT=2\n")
    monkeypatch.setenv("SCHEMA_SYNC_HOST", "/nonexistent")
    monkeypatch.setenv("SCHEMA_SYNC_SCHEMAS", '["public"]')
    monkeypatch.setenv("PGDATABASE", "nope")
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    out = io.StringIO()
    code = await demo.run_demo(out)
    text = out.getvalue()
    assert code == 0, text
    assert "Traceback" not in text
    first, _, report = text.partition("drift report:")
    assert report, text
    assert re.search(r"^\s+wrote:$", first, re.M), first
    assert "sql/schemas/complete-schema.sql" in first
    # A hot-fixed body changes behaviour; a new nullable column breaks no client.
    assert re.search(
        r"^\s+behavioural\s+changed\s+function\s+routing\.find_route\(", report, re.M
    ), report
    assert re.search(r"^\s+compatible\s+changed\s+table\s+trails\.trails\s*$", report, re.M), report
    assert re.search(r"^\s+- function body changed$", report, re.M), report
    assert re.search(r"^\s+- column closed_reason added$", report, re.M), report
    # The diffs themselves: the new WHERE in the function body, the new column in the table.
    assert re.search(r"^\s+\+.*WHERE t\.is_open", report, re.M), report
    assert re.search(r"^\s+\+.*closed_reason text", report, re.M), report
    assert "sync-summary.md" in report
    dirs = temp_dirs(text)
    assert len(dirs) == 2, text
    assert not still_there(dirs)


@pytest.mark.slow
async def test_demo_cancelled_midway_stops_its_cluster_and_removes_its_folder() -> None:
    out = io.StringIO()
    task = asyncio.create_task(demo.run_demo(out))
    deadline = time.monotonic() + 60
    while "first sync into" not in out.getvalue():
        assert not task.done() and time.monotonic() < deadline, out.getvalue()
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = out.getvalue()
    dirs = temp_dirs(text)
    assert len(dirs) == 2, text
    assert not still_there(dirs)


async def test_demo_without_an_extension_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo, "REQUIRED_EXTENSIONS", ("postgis", "no_such_extension"))
    out = io.StringIO()
    code = await demo.run_demo(out)
    text = out.getvalue()
    assert code == 1, text
    failures = [line for line in text.splitlines() if line.startswith("demo failed:")]
    assert len(failures) == 1, text
    assert "no_such_extension not installed" in failures[0]
    assert "./dev setup" in failures[0]
    assert "apt-get install postgresql-" in failures[0]
    assert "Traceback" not in text
    assert not still_there(temp_dirs(text))


@pytest.mark.slow
def test_demo_command_on_sigterm_cleans_up_and_exits_143(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
    with (tmp_path / "stderr").open("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "demo"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        watchdog = threading.Timer(120, proc.kill)  # a hung demo fails the test, not the run
        watchdog.start()
        try:
            assert proc.stdout is not None
            seen = ""
            # Read char by char: a step's line only ends once the step is done.
            while "first sync into" not in seen:
                char = proc.stdout.read(1)
                if not char:
                    break
                seen += char
            assert "first sync into" in seen, seen
            proc.send_signal(signal.SIGTERM)
            text = seen + proc.stdout.read()
            proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        errors = err.read()
    assert proc.returncode == 128 + signal.SIGTERM, text + errors
    assert "Traceback" not in text + errors
    assert "demo stopped (SIGTERM)" in text
    dirs = temp_dirs(text)
    assert len(dirs) == 2, text
    assert not still_there(dirs)
