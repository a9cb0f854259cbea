"""The daemon with the catalog probe: skipped cycles stay healthy, SIGHUP still reads in full,
and watch mode turns a hot-fix into drift.detected within seconds, one sync per migration."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from service.demo.cluster import ScratchCluster, free_port
from service.production.db import connect
from tests.conftest import FIXTURES, Database, new_database, run_cli
from tests.daemon_proc import DaemonProcess

STATE = Path("backups/.pg-schema-sync-state.json")
RARE = "0 0 1 1 *"  # the schedule never fires during a test: the probe drives it


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


def env(dsn: str, **extra: str) -> dict[str, str]:
    return {
        "SCHEMA_SYNC_DSN": dsn,
        "SCHEMA_SYNC_SCHEDULE": RARE,
        **{f"SCHEMA_SYNC_{k.upper()}": v for k, v in extra.items()},
    }


def test_restart_on_an_unchanged_database_skips_stays_healthy_and_sighup_reads_in_full(
    shop: Database, tmp_path: Path
) -> None:
    assert run_cli("sync", cwd=tmp_path, env=env(shop.dsn)).code == 0
    port = free_port()
    with DaemonProcess(tmp_path, env(shop.dsn, sync_on_start="true", metrics_port=str(port))) as d:
        first = d.wait_for("sync.finished")
        assert first["skipped"] == "unchanged" and first["drift_count"] == 0
        assert first["headline"] == "skipped: unchanged" and first["files_written"] == []
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        assert 'pg_schema_sync_cycles_total{kind="skipped"} 1.0' in metrics
        assert "pg_schema_sync_probe_duration_seconds_count 1.0" in metrics
        assert "pg_schema_sync_last_success_timestamp_seconds" in metrics
        state = json.loads((tmp_path / STATE).read_text())
        assert state["last_success_at"] and state["last_probe_result"] == "unchanged"
        health = run_cli("health", cwd=tmp_path, env={"SCHEMA_SYNC_SCHEDULE": RARE})
        assert health.code == 0, health.out

        d.send(signal.SIGHUP)  # sync now means now: a full read, whatever the probe says
        second = d.wait_for("sync.finished", count=2)
        assert "skipped" not in second and second["full_reason"] == "full sync requested"
        d.send(signal.SIGTERM)
        assert d.wait_exit(10) == 0


async def _burst(db: Database, statements: int) -> None:
    conn = await connect(db.conninfo)
    try:
        await conn.execute("SET default_transaction_read_only = off")
        for i in range(statements):
            await conn.execute(f"CREATE TABLE shop.burst_{i} (id int)")
            await asyncio.sleep(0.005)
    finally:
        await conn.close()


def test_watch_mode_reports_a_hotfix_within_seconds_and_one_sync_per_migration(
    shop: Database, tmp_path: Path
) -> None:
    settings = env(shop.dsn, watch_interval_s="0.5", watch_settle_s="1", watch_settle_max_s="30")
    with DaemonProcess(tmp_path, {**settings, "SCHEMA_SYNC_SYNC_ON_START": "true"}) as d:
        d.wait_for("sync.finished")  # the first sync records the fingerprint
        shop.sql(
            "CREATE OR REPLACE FUNCTION shop.price(qty integer) RETURNS numeric"
            " LANGUAGE sql IMMUTABLE AS $$ SELECT qty * 2 $$"
        )
        applied = time.time()
        drift = d.wait_for("drift.detected", timeout=20)
        assert (drift["kind"], drift["name"]) == ("function", "shop.price(integer)")
        watch = d.named("sync.started", reason="watch")
        assert len(watch) == 1
        latency = time.time() - applied
        print(f"\nhot-fix -> drift.detected: {latency:.2f} s (interval 0.5 s, settle 1 s)")

        before = len(d.named("sync.started"))
        asyncio.run(_burst(shop, 200))

        def settled() -> bool:  # every burst table reported and no sync still running
            done = d.named("sync.finished")
            reported = sum(e["drift_count"] for e in done[before:])
            return reported >= 200 and len(d.named("sync.started")) == len(done)

        d.wait_until(settled, "the burst's sync", timeout=40)
        runs = d.named("sync.started")[before:]
        assert [e["reason"] for e in runs] in (["watch"], ["watch", "watch"]), runs
        d.send(signal.SIGTERM)
        assert d.wait_exit(10) == 0


NOTIFY_SQL = Path(__file__).parent.parent / "deploy" / "pg-schema-sync-notify.sql"


def test_push_mode_probes_on_notify_long_before_the_poll_and_survives_a_lost_listener(
    shop: Database, tmp_path: Path
) -> None:
    shop.load(NOTIFY_SQL)
    settings = env(
        shop.dsn,
        watch_interval_s="120",  # the poll alone would take two minutes
        watch_settle_s="0.3",
        listen_channel="pg_schema_sync",
        sync_on_start="true",
    )
    with DaemonProcess(tmp_path, settings) as d:
        d.wait_for("sync.finished")
        d.wait_for("listen.started")
        shop.sql("ALTER TABLE shop.orders ADD COLUMN pushed int")
        drift = d.wait_for("drift.detected", timeout=15)
        assert (drift["kind"], drift["name"]) == ("table", "shop.orders")
        assert d.named("sync.started", reason="watch")

        # A lost LISTEN connection is reported and re-established (polling goes on meanwhile).
        shop.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
        )
        d.wait_for("listen.lost", timeout=10)
        d.wait_for("listen.started", count=2, timeout=150)
        d.send(signal.SIGTERM)
        assert d.wait_exit(10) == 0


def _metric(port: int, name: str) -> float:
    """The sum of every series of `name` on the daemon's metrics endpoint (0 when absent)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + " ", name + "{"))
    ]
    return sum(values)


async def _flood(dsn: str, count: int, sent: list[int], per_message: int = 5) -> float:
    """`count` NOTIFYs, each in a transaction of its own (notifications of one transaction
    arrive together), sent `per_message` transactions to a round trip; `sent[0]` counts."""
    conn = await asyncpg.connect(dsn)
    t0 = time.monotonic()
    try:
        for start in range(0, count, per_message):
            sent[0] = start
            await conn.execute(
                "".join(
                    f"BEGIN; NOTIFY pg_schema_sync, '{i}'; COMMIT; "
                    for i in range(start, min(count, start + per_message))
                )
            )
    finally:
        await conn.close()
    return time.monotonic() - t0


def test_a_notify_flood_from_an_unprivileged_role_is_bounded_and_signals_stay_prompt(
    shop: Database, cluster: ScratchCluster, tmp_path: Path
) -> None:
    # Any role that may connect may NOTIFY the channel: only CONNECT, nothing else.
    role = f"flood_{shop.name}"
    cluster.psql("postgres", f"CREATE ROLE {role} LOGIN")
    cluster.psql("postgres", f'GRANT CONNECT ON DATABASE "{shop.name}" TO {role}')
    port, gap = free_port(), 1.0
    settings = env(
        shop.dsn,
        watch_interval_s="120",  # polling alone would probe once in the whole test
        watch_settle_s="0.3",
        listen_channel="pg_schema_sync",
        listen_min_gap_s=str(gap),
        sync_on_start="true",
        metrics_port=str(port),
    )
    try:
        with DaemonProcess(tmp_path, settings) as d:
            d.wait_for("sync.finished")
            d.wait_for("listen.started")
            probes_before = _metric(port, "pg_schema_sync_probe_duration_seconds_count")
            flood, sent = asyncio.new_event_loop(), [0]
            try:
                sender = flood.create_task(_flood(cluster.dsn(shop.name, role), 10_000, sent))
                while sent[0] < 8_000 and not sender.done():  # SIGHUP in the flood's last part
                    flood.run_until_complete(asyncio.sleep(0.05))
                hup = time.monotonic()
                d.send(signal.SIGHUP)
                d.wait_for("sync.started", reason="SIGHUP", timeout=10)
                hup_s = time.monotonic() - hup
                flooded_s = flood.run_until_complete(sender)
            finally:
                flood.close()
            assert not sender.cancelled()

            time.sleep(gap + 0.5)  # the one follow-up probe the flood's tail may cause
            probes = _metric(port, "pg_schema_sync_probe_duration_seconds_count") - probes_before
            # One per gap while the flood lasted, its follow-up, SIGHUP's sync's own probe.
            bound = flooded_s / gap + 3
            print(
                f"\n10,000 NOTIFYs in {flooded_s:.1f} s -> {probes:.0f} probes "
                f"(bound {bound:.1f}); SIGHUP -> sync.started in {hup_s:.2f} s"
            )
            assert probes <= bound, (probes, flooded_s)

            def all_received() -> bool:
                return _metric(port, "pg_schema_sync_listen_notifications_total") >= 10_000

            d.wait_until(all_received, "10,000 notifications counted", timeout=30)
            assert _metric(port, "pg_schema_sync_listen_notifications_total") == 10_000
            assert 1 <= _metric(port, "pg_schema_sync_watch_probes_total") <= bound
            assert not d.named("sync.started", reason="watch")  # nothing changed: no sync

            term = time.monotonic()
            d.send(signal.SIGTERM)
            assert d.wait_exit(10) == 0
            print(f"SIGTERM -> exit in {time.monotonic() - term:.2f} s")
    finally:
        cluster.psql("postgres", f'REVOKE ALL ON DATABASE "{shop.name}" FROM {role}')
        cluster.drop_database(shop.name)
        cluster.psql("postgres", f"DROP ROLE IF EXISTS {role}")
