"""Sharding end to end: one config of 30 real databases split over daemons run as `run --shard
I/N`, each in its own folder as pods of a StatefulSet have their own volumes.

Three shards: every target is synced by exactly one daemon, into that daemon's folder only;
SIGHUP to all three syncs every target exactly once more. Then four shards over the same
folders plus a new one (scaling the StatefulSet from 3 to 4): only the targets that the new
shard wins move, each is synced there, and every other target stays with the folder that
already holds its files.
"""

from __future__ import annotations

import contextlib
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster, free_port
from service.settings.shards import shard_of
from tests.conftest import new_database, run_cli
from tests.daemon_proc import DaemonProcess

NAMES = [f"db{i:02d}" for i in range(30)]
SCHEMA = """
CREATE TABLE item (id int PRIMARY KEY, note text);
CREATE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM item';
"""
SYNC_WAIT_S = 90  # 30 first syncs on a shared 2-core machine: generous, still bounded


@pytest.fixture(scope="module")
def databases(
    cluster: ScratchCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """30 small databases, copies of one template (CREATE DATABASE ... TEMPLATE is a file copy)."""
    folder = tmp_path_factory.mktemp("shard-dbs")
    template = new_database(cluster)
    template.sql(SCHEMA)
    names = {target: f"{template.name}_{target}" for target in NAMES}
    script = folder / "create.sql"
    script.write_text(
        "".join(f'CREATE DATABASE "{db}" TEMPLATE "{template.name}";\n' for db in names.values())
    )
    try:
        cluster.psql("postgres", file=script)
        yield names
    finally:
        # One psql for all: each DROP DATABASE waits for a checkpoint of its own anyway.
        script.write_text(
            "".join(
                f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE);\n'
                for db in [*names.values(), template.name]
            )
        )
        cluster.psql("postgres", file=script)


def write_config(path: Path, cluster: ScratchCluster, databases: dict[str, str]) -> Path:
    lines = [
        f'host = "{cluster.sockdir}"',
        f"port = {cluster.port}",
        'user = "postgres"',
        'schedule = "0 0 1 1 *"',  # never during the test: start-up and SIGHUP drive it
        "max_concurrent_syncs = 2",
        'metrics_host = "127.0.0.1"',
    ]
    for target, db in databases.items():
        lines += ["[[targets]]", f'name = "{target}"', f'database = "{db}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def start(
    stack: contextlib.ExitStack, folder: Path, config: Path, shard: str, port: int
) -> DaemonProcess:
    folder.mkdir(exist_ok=True)
    env = {"SCHEMA_SYNC_METRICS_PORT": str(port)}
    return stack.enter_context(
        DaemonProcess(folder, env, "--config", str(config), "--shard", shard)
    )


def synced_files(folder: Path) -> set[str]:
    return {p.parent.name for p in (folder / "sql/schemas").glob("*/complete-schema.sql")}


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text: str = response.read().decode()
    return text


def stop_all(daemons: list[DaemonProcess]) -> None:
    for d in daemons:
        d.send(signal.SIGTERM)
    for d in daemons:
        assert d.wait_exit(30) == 0, d.tail()
        assert d.err_lines == []


def test_shards_split_the_fleet_and_a_fourth_shard_takes_about_a_quarter(
    cluster: ScratchCluster, databases: dict[str, str], tmp_path: Path
) -> None:
    t0 = time.monotonic()
    config = write_config(tmp_path / "fleet.toml", cluster, databases)
    folders = [tmp_path / f"pod-{i}" for i in range(4)]

    # -- three shards ----------------------------------------------------------------------
    with contextlib.ExitStack() as stack:
        ports = [free_port() for _ in range(3)]
        daemons = [start(stack, folders[i], config, f"{i}/3", ports[i]) for i in range(3)]
        served: list[set[str]] = []
        for i, d in enumerate(daemons):
            started = d.wait_for("daemon.started", timeout=60)
            assert (started["shard"], started["targets_configured"]) == (f"{i}/3", 30)
            served.append(set(started["targets"]))
        # Every target is served by exactly one daemon.
        assert sorted(n for s in served for n in s) == NAMES
        for d, mine in zip(daemons, served, strict=True):
            for name in mine:
                d.wait_for("sync.finished", target=name, timeout=SYNC_WAIT_S)
        first_round = time.monotonic() - t0
        for i, (d, mine) in enumerate(zip(daemons, served, strict=True)):
            # ... synced by that daemon alone, into its own folder alone.
            assert {e["target"] for e in d.named("sync.started")} == mine
            assert synced_files(folders[i]) == mine
            assert {p.name for p in (folders[i] / "backups").iterdir()} == mine
            text = metrics(ports[i])
            assert f'pg_schema_sync_shard_info{{count="3",index="{i}",shard="{i}/3"}} 1.0' in text
            assert f"pg_schema_sync_targets_served {float(len(mine))}" in text
            assert "pg_schema_sync_targets_configured 30.0" in text
            health = run_cli("health", "--config", str(config), "--shard", f"{i}/3", cwd=folders[i])
            assert health.code == 0, health.out
            assert health.out.splitlines()[0] == (
                f"healthy: all {len(mine)} targets (shard {i}/3: {len(mine)} of 30 targets)"
            )

        # SIGHUP to every shard: every target synced exactly once more, by its own daemon.
        t_hup = time.monotonic()
        for d in daemons:
            d.send(signal.SIGHUP)
        for d, mine in zip(daemons, served, strict=True):
            for name in mine:
                d.wait_for("sync.finished", count=2, target=name, timeout=SYNC_WAIT_S)
        hup_round = time.monotonic() - t_hup
        hup = [e["target"] for d in daemons for e in d.named("sync.started", reason="SIGHUP")]
        assert sorted(hup) == NAMES
        stop_all(daemons)

    # -- four shards: the StatefulSet scaled from 3 to 4 ----------------------------------
    before = {name: i for i, mine in enumerate(served) for name in mine}
    with contextlib.ExitStack() as stack:
        ports = [free_port() for _ in range(4)]
        daemons = [start(stack, folders[i], config, f"{i}/4", ports[i]) for i in range(4)]
        served4 = [set(d.wait_for("daemon.started", timeout=60)["targets"]) for d in daemons]
        assert sorted(n for s in served4 for n in s) == NAMES
        after = {name: i for i, mine in enumerate(served4) for name in mine}
        moved = {n for n in NAMES if after[n] != before[n]}
        # Rendezvous: what moves goes to the new shard, nothing moves between the old ones.
        assert moved == served4[3]
        for d, mine in zip(daemons, served4, strict=True):
            for name in mine:
                d.wait_for("sync.finished", target=name, timeout=SYNC_WAIT_S)
        for d in daemons:
            for e in d.named("sync.finished"):
                # A target that stayed finds its files in its folder (not a first run, and
                # nothing drifted, so nothing written); a moved one starts in the new volume.
                assert e["first_run"] is (e["target"] in moved), e
                assert bool(e["files_written"]) == (e["target"] in moved), e
        assert synced_files(folders[3]) == moved
        stop_all(daemons)

    total = time.monotonic() - t0
    per3 = [len(s) for s in served]
    per4 = [len(s) for s in served4]
    print(
        f"\nsharding 30 targets: 3 shards {per3}, 4 shards {per4}; {len(moved)} of 30 moved "
        f"({len(moved) / 30:.0%}, expected ~25%): {sorted(moved)}; first round "
        f"{first_round:.1f}s, SIGHUP round {hup_round:.1f}s, test {total:.1f}s"
    )
    # With 30 names the share is one draw, not an average: about a quarter, not exactly.
    assert 0.15 <= len(moved) / 30 <= 0.40
    assert moved == {n for n in NAMES if shard_of(n, 4) == 3}
