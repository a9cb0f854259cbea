"""A half-open connection (TCP accepted, nothing answered) must end a run, never hang it."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from tests.conftest import Database, run_cli
from tests.daemon_proc import DaemonProcess, snapshot
from tests.tcp_proxy import FreezingProxy

PASSWORD = "Partition-pw-7"
# Authentication and the first answers fit in 4 KiB; the catalog queries' and pg_dump's do not:
# every connection freezes mid-query, after it was established.
MID_QUERY = 4096


@pytest.fixture
def reader(db: Database) -> Iterator[str]:
    db.sql(f"CREATE ROLE partition_reader LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
    db.sql("CREATE TABLE orders (id int PRIMARY KEY, note text); CREATE VIEW v AS SELECT 1 AS x")
    yield "partition_reader"
    db.sql("DROP OWNED BY partition_reader; DROP ROLE partition_reader")


def _dsn(proxy: FreezingProxy, db: Database, user: str) -> str:
    return f"postgresql://{user}:{PASSWORD}@127.0.0.1:{proxy.port}/{db.name}?connect_timeout=2"


def test_sync_through_a_frozen_network_fails_with_a_timeout_and_keeps_the_files(
    db: Database, cluster: ScratchCluster, reader: str, tmp_path: Path
) -> None:
    first = run_cli("sync", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": db.dsn})
    assert first.code == 0, first.err
    before = snapshot(tmp_path)
    db.sql("ALTER TABLE orders ADD COLUMN total numeric")  # drift the frozen run cannot see
    with FreezingProxy(("127.0.0.1", cluster.port), freeze_after=MID_QUERY) as proxy:
        env = {"SCHEMA_SYNC_DSN": _dsn(proxy, db, reader), "SCHEMA_SYNC_SYNC_TIMEOUT_S": "3"}
        result = run_cli("sync", cwd=tmp_path, env=env, timeout=60)
        assert proxy.connections >= 2  # the catalog session and pg_dump both got through
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert "timed out after 3 s (sync_timeout_s)" in lines[0]
    assert PASSWORD not in result.err
    assert snapshot(tmp_path) == before  # previous files intact, no backup


def test_catalog_query_has_a_client_side_bound_even_without_a_sync_timeout(
    db: Database, cluster: ScratchCluster, reader: str, tmp_path: Path
) -> None:
    # statement_timeout is enforced by the server: over a frozen link only the client's own
    # bound (statement_timeout_ms + 2 s) ends the wait.
    with FreezingProxy(("127.0.0.1", cluster.port), freeze_after=MID_QUERY) as proxy:
        env = {
            "SCHEMA_SYNC_DSN": _dsn(proxy, db, reader),
            "SCHEMA_SYNC_STATEMENT_TIMEOUT_MS": "500",
        }
        result = run_cli("check", cwd=tmp_path, env=env, timeout=60)
    assert result.code == 2, result.err
    assert "no answer within statement_timeout_ms" in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_daemon_reports_a_partition_as_a_timeout_retries_and_stops_within_its_grace(
    db: Database, cluster: ScratchCluster, reader: str, tmp_path: Path
) -> None:
    with FreezingProxy(("127.0.0.1", cluster.port), freeze_after=MID_QUERY) as proxy:
        env = {
            "SCHEMA_SYNC_DSN": _dsn(proxy, db, reader),
            "SCHEMA_SYNC_SCHEDULE": "0 0 1 1 *",
            "SCHEMA_SYNC_SYNC_TIMEOUT_S": "2",
            "SCHEMA_SYNC_STOP_GRACE_S": "1",
            "SCHEMA_SYNC_LOG_FORMAT": "json",
        }
        with DaemonProcess(tmp_path, env) as d:
            failed = d.wait_for("sync.failed", timeout=30)
            assert failed["cause"] == "timeout", failed
            assert "timed out after 2 s" in failed["error"]
            assert failed["retry_in_s"] is not None  # the usual early retry
            # A stop while a run hangs on the frozen link: the run is cancelled, its
            # connection abandoned, and the daemon is gone well within compose's 40 s.
            d.send(signal.SIGHUP)
            d.wait_for("sync.started", count=2, timeout=10)
            time.sleep(0.5)  # let it reach the frozen queries
            d.send(signal.SIGTERM)
            assert d.wait_exit(1 + 10) == 0, d.tail()
        assert d.named("daemon.stopped")
        assert not (tmp_path / "sql/schemas/complete-schema.sql").exists()
        assert all(PASSWORD not in line for line in d.lines + d.err_lines)
