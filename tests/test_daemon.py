"""`pg-schema-sync run` as a real process against a real PostgreSQL: signals, stop, lock, outage."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster, free_port
from tests.conftest import FIXTURES, Database, new_database, run_cli
from tests.daemon_proc import (
    DaemonProcess,
    pg_dump_wrapper,
    process_group_alive,
    snapshot,
)

STATE = Path("backups/.pg-schema-sync-state.json")
QUIET_S = 1.5  # a coalesced follow-up starts within milliseconds of the run before it


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


def daemon_env(dsn: str, **extra: str) -> dict[str, str]:
    # `* * * * *` keeps the schedule honest while SIGHUP drives the test.
    return {
        "SCHEMA_SYNC_DSN": dsn,
        "SCHEMA_SYNC_SCHEDULE": "* * * * *",
        "SCHEMA_SYNC_SYNC_ON_START": "false",
        **{f"SCHEMA_SYNC_{k.upper()}": v for k, v in extra.items()},
    }


def stamp(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def test_sighup_syncs_at_once_logs_json_without_the_password_and_reports_health(
    shop: Database, cluster: ScratchCluster, tmp_path: Path
) -> None:
    secret = "Daemon-Secret-pw9"
    shop.sql(f"CREATE ROLE daemon_reader LOGIN SUPERUSER PASSWORD '{secret}'")
    port = free_port()
    try:
        dsn = cluster.tcp_dsn(shop.name, "daemon_reader", secret)
        with DaemonProcess(tmp_path, daemon_env(dsn, metrics_port=str(port))) as d:
            d.wait_for("daemon.started")
            assert not (tmp_path / "sql/schemas/complete-schema.sql").exists()
            sent = time.time()
            d.send(signal.SIGHUP)
            started = d.wait_for("sync.started", reason="SIGHUP", timeout=5)
            finished = d.wait_for("sync.finished", timeout=10)
            assert stamp(started) - sent < 1.0, "SIGHUP took too long to start a sync"
            assert finished["run_id"] == started["run_id"]
            assert finished["first_run"] is True and finished["objects"] > 0
            assert (tmp_path / "sql/schemas/complete-schema.sql").stat().st_size > 0

            def scraped() -> str | None:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
                return text if 'duration_seconds_count{result="success"} 1.0' in text else None

            metrics: str = d.wait_until(scraped, "the metrics to show the run", timeout=5)
            gauge = next(
                ln for ln in metrics.splitlines() if ln.startswith("pg_schema_sync_last_success")
            )
            assert float(gauge.split()[-1]) >= int(sent)
            assert 'pg_schema_sync_drift_objects{impact="breaking"} 0.0' in metrics

            health = run_cli("health", cwd=tmp_path, env={"SCHEMA_SYNC_SCHEDULE": "* * * * *"})
            assert (health.code, health.out.split(":")[0]) == (0, "healthy"), health.out

            d.send(signal.SIGTERM)
            assert d.wait_exit(10) == 0
        events = d.events  # every line parses as JSON
        assert [e["event"] for e in events][-2:] == ["daemon.stopping", "daemon.stopped"]
        assert events[0]["schedule"] == "* * * * *"
        for line in d.lines + d.err_lines:
            assert secret not in line
        assert d.err_lines == []
        state = json.loads((tmp_path / STATE).read_text())
        assert state["last_success_at"] and state["consecutive_failures"] == 0
        assert secret not in (tmp_path / STATE).read_text()
        stopped = run_cli("health", cwd=tmp_path)
        assert stopped.code == 1 and "daemon stopped" in stopped.out
    finally:
        shop.sql("DROP OWNED BY daemon_reader; DROP ROLE daemon_reader")


def test_burst_of_100_sighups_runs_at_most_two_syncs(shop: Database, tmp_path: Path) -> None:
    with DaemonProcess(tmp_path, daemon_env(shop.dsn, sync_on_start="true")) as d:
        d.wait_for("sync.finished")  # the start-up sync
        for _ in range(100):
            d.send(signal.SIGHUP)

        def settled() -> bool:
            # Quiet: the last run finished a while ago and nothing started since.
            ends = d.named("sync.finished") + d.named("sync.failed")
            starts = d.named("sync.started")
            return (
                len(ends) == len(starts)
                and len(starts) >= 2
                and time.time() - stamp(ends[-1]) > QUIET_S
            )

        d.wait_until(settled, "the burst's syncs to finish", timeout=20)
        runs = [e for e in d.named("sync.started") if e["reason"] in ("SIGHUP", "start")]
        assert runs[0]["reason"] == "start"
        assert 1 <= len(runs[1:]) <= 2, [e["reason"] for e in runs]
        d.send(signal.SIGTERM)
        assert d.wait_exit(10) == 0


@pytest.mark.parametrize(
    ("grace", "signals", "code", "within"),
    [
        pytest.param("1", 1, 0, (0.9, 6.0), id="grace-then-cancel"),
        pytest.param("30", 2, 1, (0.0, 4.0), id="second-sigterm-at-once"),
    ],
)
def test_sigterm_during_stalled_export_keeps_previous_files_and_kills_pg_dump(
    shop: Database,
    tmp_path: Path,
    grace: str,
    signals: int,
    code: int,
    within: tuple[float, float],
) -> None:
    stall, pidfile = tmp_path / "STALL", tmp_path / "pg_dump.pid"
    # Stalls mid-export (after real output) only while STALL exists.
    wrapper = pg_dump_wrapper(
        tmp_path,
        f"if [ -e {stall} ]; then echo $$ > {pidfile}; "
        '$REAL "$@" | head -c 4000; exec sleep 60; fi',
    )
    env = daemon_env(shop.dsn, sync_on_start="true", stop_grace_s=grace, pg_dump=str(wrapper))
    with DaemonProcess(tmp_path, env) as d:
        d.wait_for("sync.finished")
        before = snapshot(tmp_path)
        shop.sql("ALTER TABLE shop.orders ADD COLUMN lost_on_cancel text")  # a run would write
        stall.touch()
        d.send(signal.SIGHUP)
        d.wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), "pg_dump to stall")
        pg_dump = int(pidfile.read_text())
        t0 = time.monotonic()
        d.send(signal.SIGTERM)
        if signals == 2:
            d.wait_for("daemon.stopping")
            d.send(signal.SIGTERM)
        assert d.wait_exit(within[1] + 5) == code, d.tail()
        elapsed = time.monotonic() - t0
        assert within[0] <= elapsed <= within[1], elapsed
    assert d.named("daemon.stopping", sync_running=True)
    assert d.named("sync.cancelled") and len(d.named("sync.finished")) == 1
    assert snapshot(tmp_path) == before  # same bytes, no new or partial backup, no temp files
    assert process_group_alive(pg_dump) == [], "pg_dump's group outlived the daemon"


def test_second_daemon_on_the_same_folder_names_the_holder(shop: Database, tmp_path: Path) -> None:
    with DaemonProcess(tmp_path, daemon_env(shop.dsn)) as first:
        first.wait_for("daemon.started")
        second = run_cli("run", cwd=tmp_path, env=daemon_env(shop.dsn), timeout=30)
        assert second.code == 2
        [line] = second.err.strip().splitlines()
        assert f"another pg-schema-sync daemon (PID {first.pid}) already runs" in line
        assert ".pg-schema-sync.lock" in line
        assert json.loads((tmp_path / STATE).read_text())["pid"] == first.pid
        assert first.proc.poll() is None
        first.send(signal.SIGTERM)
        assert first.wait_exit(10) == 0


def test_database_outage_is_logged_survived_and_retried_until_it_succeeds(
    tmp_path: Path,
) -> None:
    with ScratchCluster() as own:  # its own server: stopping it must not hurt other tests
        own.create_database("prod", FIXTURES / "shop.sql")
        env = daemon_env(own.dsn("prod"), sync_on_start="true", retry_backoff_max_s="1")
        with DaemonProcess(tmp_path, env) as d:
            d.wait_for("sync.finished")
            before = snapshot(tmp_path)
            own.stop_server()
            d.send(signal.SIGHUP)
            first = d.wait_for("sync.failed", cause="connection")
            assert first["consecutive_failures"] == 1 and first["retry_in_s"] == 1.0
            # "is the server running?" or, caught mid-shutdown, "shutting down": both connection.
            assert first["error"].startswith(f"cannot connect to postgres@{own.sockdir}")
            d.wait_for("sync.started", reason="retry")  # backoff retries without a trigger
            d.wait_for("sync.failed", count=2)
            assert snapshot(tmp_path) == before
            assert d.proc.poll() is None
            own.start_existing()
            recovered = d.wait_for("sync.finished", count=2)  # by a retry: no trigger sent
            assert recovered["drift_count"] == 0
            state = json.loads((tmp_path / STATE).read_text())  # written before the event
            assert state["consecutive_failures"] == 0 and state["last_success_at"]
            d.send(signal.SIGTERM)
            assert d.wait_exit(10) == 0
