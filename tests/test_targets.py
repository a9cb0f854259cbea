"""Many databases from one config: ten real databases in one cluster plus unreachable ones.

The daemon syncs every target concurrently up to max_concurrent_syncs; a hung or missing
database is reported and holds up nobody; the CLI addresses all targets or one by --target.
"""

from __future__ import annotations

import json
import signal
import socket
import statistics
import threading
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from service.demo.cluster import ScratchCluster, free_port
from tests.conftest import FIXTURES, Database, new_database, run_cli
from tests.daemon_proc import DaemonProcess
from tests.test_alerts import envelopes

GOOD = [f"db{i:02d}" for i in range(10)]
HUNG_TIMEOUT_S = 4  # connect_timeout of the target whose server accepts and never answers


@pytest.fixture(scope="module")
def fleet(cluster: ScratchCluster) -> Iterator[dict[str, Database]]:
    dbs = {name: new_database(cluster, FIXTURES / "shop.sql") for name in GOOD}
    yield dbs
    for d in dbs.values():
        cluster.drop_database(d.name)


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung server or firewall)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(5)
    for s in [*held, server]:
        s.close()


def write_config(
    folder: Path,
    cluster: ScratchCluster,
    fleet: dict[str, Database],
    bad: dict[str, str],
    **top: object,
) -> Path:
    """Global connection (socket folder, port, user) inherited by every target; each names its
    database. `bad` maps extra target names to their dsn."""
    lines = [
        f'host = "{cluster.sockdir}"',
        f"port = {cluster.port}",
        'user = "postgres"',
        *(f"{k} = {json.dumps(v)}" for k, v in top.items()),
    ]
    for name, dsn in bad.items():
        lines += ["[[targets]]", f'name = "{name}"', f'dsn = "{dsn}"', "health_max_age_s = 1"]
    for name, db in fleet.items():
        lines += ["[[targets]]", f'name = "{name}"', f'database = "{db.name}"']
    path = folder / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def stamp(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def max_overlap(events: list[dict[str, object]]) -> int:
    """Most syncs running at once, from their started/finished/failed events."""
    edges = sorted(
        (stamp(e), 1 if e["event"] == "sync.started" else -1)
        for e in events
        if e["event"] in ("sync.started", "sync.finished", "sync.failed")
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_daemon_syncs_ten_databases_at_once_and_a_hung_one_holds_up_nobody(
    cluster: ScratchCluster,
    fleet: dict[str, Database],
    hung_port: int,
    tmp_path: Path,
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/api/1/envelope/", method="POST").respond_with_json({"id": "x"})
    metrics_port = free_port()
    # The broken targets come first: if anything serialised behind them, the test would see it.
    bad = {
        "hung": f"postgresql://postgres@127.0.0.1:{hung_port}/x?connect_timeout={HUNG_TIMEOUT_S}",
        "missing": f"postgresql://postgres@/no_such_db?host={cluster.sockdir}&port={cluster.port}",
    }
    config = write_config(
        tmp_path,
        cluster,
        fleet,
        bad,
        schedule="0 0 1 1 *",  # never during the test: start-up and SIGHUP drive it
        max_concurrent_syncs=12,
        retry_backoff_max_s=1,
        failure_alert_after=1,
        metrics_port=metrics_port,
        sentry_dsn=f"http://public@127.0.0.1:{httpserver.port}/1",
    )
    with DaemonProcess(tmp_path, {}, "--config", str(config)) as d:
        started = d.wait_for("daemon.started")
        assert started["targets"] == ["hung", "missing", *GOOD]
        for name in GOOD:
            d.wait_for("sync.finished", target=name, timeout=30)
        good_done = max(stamp(e) for e in d.named("sync.finished"))
        first_start = min(stamp(e) for e in d.named("sync.started"))
        missing = d.wait_for("sync.failed", target="missing")
        assert "no_such_db" in missing["error"] and missing["retry_in_s"] is None
        hung = d.wait_for("sync.failed", target="hung", timeout=HUNG_TIMEOUT_S + 10)
        assert hung["cause"] == "connection" and hung["retry_in_s"] == 1.0
        # Nothing waited on the hung server: every good database started before it timed out.
        # (Not "finished before": on a loaded 2-core machine ten syncs can outlast the timeout.)
        good_starts = [stamp(e) for e in d.named("sync.started") if e.get("target") in GOOD]
        assert len(good_starts) >= len(GOOD)
        assert max(good_starts) < stamp(hung), (max(good_starts), stamp(hung))
        durations = [e["duration_s"] for e in d.named("sync.finished")]
        wall = good_done - first_start
        print(
            f"\n10 databases + 2 broken, limit 12: all good synced {wall:.2f}s after the first "
            f"start; one sync took {statistics.median(durations):.2f}s (median, under load), "
            f"max {max(durations):.2f}s; hung target failed after {hung['duration_s']}s"
        )
        # One after another, the round would take the sum of the syncs; at once, about the
        # longest (a margin for start-up skew on a loaded machine).
        assert wall < max(max(durations) + 1.5, sum(durations) / 3), "the syncs ran one by one"
        assert max_overlap(d.events) >= 10

        # Health names the broken targets; every good one has its own state file.
        health = run_cli("health", "--config", str(config), cwd=tmp_path)
        assert health.code == 1, health.out
        assert health.out.splitlines()[0] == "unhealthy: 2 of 12 targets: hung, missing"
        assert "  db00: healthy: last successful sync" in health.out
        for name in GOOD:
            state = json.loads(
                (tmp_path / f"backups/{name}/.pg-schema-sync-state.json").read_text()
            )
            assert state["last_success_at"] and state["consecutive_failures"] == 0
            assert (tmp_path / f"sql/schemas/{name}/complete-schema.sql").stat().st_size > 0
            assert len(list((tmp_path / f"backups/{name}").glob("schema-sync-*"))) == 1

        # SIGHUP syncs every target; a drift in one is reported under its name.
        fleet["db03"].sql("ALTER TABLE shop.orders ADD COLUMN hotfix text")
        n_started = len(d.named("sync.started"))
        d.send(signal.SIGHUP)
        for name in GOOD:
            d.wait_for("sync.started", target=name, reason="SIGHUP")
            d.wait_for("sync.finished", count=2, target=name, timeout=30)
        assert {e["target"] for e in d.named("sync.started")[n_started:]} >= set(GOOD)
        [drift] = d.named("drift.detected")
        assert (drift["target"], drift["name"]) == ("db03", "shop.orders")
        assert [
            e["target"] for e in d.named("sync.finished", first_run=False) if e["drift_count"]
        ] == ["db03"]

        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
        assert 'pg_schema_sync_drift_objects{impact="compatible",target="db03"} 1.0' in text
        assert 'pg_schema_sync_drift_objects{impact="breaking",target="db03"} 0.0' in text
        assert 'pg_schema_sync_drift_objects{impact="compatible",target="db04"} 0.0' in text
        assert 'pg_schema_sync_sync_failures_total{cause="connection",target="hung"}' in text
        d.send(signal.SIGTERM)
        assert d.wait_exit(15) == 0, d.tail()
    assert d.err_lines == []
    events = [e for _, evs in envelopes(httpserver) for e in evs]
    tagged = {(e["level"], e["tags"]["target"]) for e in events}
    assert {("error", "hung"), ("error", "missing"), ("warning", "db03")} <= tagged
    [drift_event] = [e for e in events if e["level"] == "warning"]
    assert drift_event["fingerprint"] == [drift["fingerprint"], "db03"]


def test_cli_syncs_all_targets_within_the_limit_and_addresses_one_by_name(
    cluster: ScratchCluster, fleet: dict[str, Database], tmp_path: Path
) -> None:
    bad = {
        "deadport": f"postgresql://postgres@127.0.0.1:{free_port()}/x",
        "missing": f"postgresql://postgres@/no_such_db?host={cluster.sockdir}&port={cluster.port}",
    }
    config = str(write_config(tmp_path, cluster, fleet, bad, max_concurrent_syncs=3))
    synced = run_cli("sync", "--config", config, "--log-level", "info", cwd=tmp_path)
    assert synced.code == 2, synced.err
    assert synced.out.splitlines()[-1] == "synced 10 of 12 targets; failed: deadport, missing"
    assert "db07: first sync: " in synced.out
    assert "deadport: failed: cannot connect to postgres@127.0.0.1:" in synced.out
    log = [json.loads(line) for line in synced.err.splitlines() if line.startswith("{")]
    good = [e for e in log if e["target"] in GOOD]  # failures log no event of their own here
    assert max_overlap(good) == 3  # bounded, and actually concurrent
    assert {e["target"] for e in log if e["event"] == "sync.finished"} == set(GOOD)

    fleet["db05"].sql("CREATE FUNCTION shop.fleet_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    try:
        every = run_cli("check", "--config", config, "--json", cwd=tmp_path)
        assert every.code == 2  # an error outranks drift
        doc = every.json()
        assert (doc["drift"], doc["error"]) == (True, True)
        assert list(doc["targets"]) == ["deadport", "missing", *GOOD]
        assert doc["targets"]["deadport"]["cause"] == "connection"
        assert doc["targets"]["db04"] == {
            "drift": False,
            "headline": "no drift",
            "impact": {},
            "changes": [],
        }
        one = run_cli("check", "--config", config, "--target", "db05", "--json", cwd=tmp_path)
        assert one.code == 1
        # The single-target document, byte for byte as without targets.
        assert one.out == json.dumps(doc["targets"]["db05"]) + "\n"
        assert doc["targets"]["db05"]["changes"] == [
            {
                "kind": "function",
                "name": "shop.fleet_probe()",
                "change": "added",
                "impact": "compatible",
                "reasons": ["function added"],
            }
        ]
        fixed = run_cli("sync", "--config", config, "--target", "db05", cwd=tmp_path)
        assert fixed.code == 0 and "wrote " in fixed.out and "db05" not in fixed.out.split()[0]
    finally:
        fleet["db05"].sql("DROP FUNCTION shop.fleet_probe()")

    listed = run_cli("backups", "--config", config, "--target", "db05", cwd=tmp_path)
    assert listed.code == 0 and listed.out.count("schema-sync-") == 2, listed.out
    ambiguous = run_cli("rollback", "--config", config, cwd=tmp_path)
    assert ambiguous.code == 2
    assert ambiguous.err.startswith("pg-schema-sync: several targets are configured (deadport,")
    unknown = run_cli("check", "--config", config, "--target", "nope", cwd=tmp_path)
    assert unknown.code == 2
    assert unknown.err == (
        "pg-schema-sync: no target named 'nope': configured targets are deadport, missing, "
        + ", ".join(GOOD)
        + "\n"
    )
    rolled = run_cli("rollback", "--config", config, "--target", "db05", cwd=tmp_path)
    assert rolled.code == 0, rolled.err
    assert "wrote sql/schemas/db05/complete-schema.sql" in rolled.out


def test_invalid_targets_get_one_line_per_field_naming_the_target(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        "[[targets]]\nname = 'app'\nport = 99999\ncolour = 'blue'\n"
        "[[targets]]\nname = 'a/b'\n"
        "[[targets]]\nname = 'app'\n"
    )
    result = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert result.code == 2
    where = f"(from SCHEMA_SYNC_TARGETS or {config})"
    assert result.err.splitlines() == [
        f"pg-schema-sync: invalid setting targets[app].port=99999 {where}: "
        "Input should be less than or equal to 65535",
        f"invalid setting targets[app].colour {where}: no such target setting; "
        "`pg-schema-sync config --example` lists every setting",
        f"invalid setting targets[a/b].name='a/b' {where}: use 1-63 letters, digits, '_', '-' "
        "or '.', starting with a letter or digit (it names the target's folders)",
        f"invalid setting targets[app].name {where}: the name is used twice; names must differ",
    ]
    shared = tmp_path / "shared.toml"
    shared.write_text(
        "[[targets]]\nname = 'a'\n[[targets]]\nname = 'b'\nschema_dir = 'sql/schemas/a'\n"
    )
    result = run_cli("check", "--config", str(shared), cwd=tmp_path)
    assert result.code == 2
    assert result.err.startswith("pg-schema-sync: invalid setting targets[b].schema_dir (from ")
    assert "sql/schemas/a is also used by target a; give each target its own folder" in result.err
    env = {"SCHEMA_SYNC_TARGETS": '[{"name": "x", "schedule": "every day"}]'}
    result = run_cli("run", cwd=tmp_path, env=env, timeout=30)
    assert result.code == 2
    assert result.err.startswith("pg-schema-sync: invalid setting targets[x].schedule='every day'")
