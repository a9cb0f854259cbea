"""Sharding without a database: the rendezvous assignment, pinned for all releases; bad shard
settings as one line and exit 2; `targets`, `health` and `/metrics`-free parts of `run`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from service.demo.cluster import free_port
from service.settings.shards import ShardError, assign, resolve, shard_of
from tests.conftest import run_cli
from tests.daemon_proc import DaemonProcess
from tests.inproc import in_process

# Never change this table. Each row is a target name and the shard that serves it among
# N = 1, 2, ..., 8 shards. Every daemon of a fleet must agree on it, and so must every release:
# a daemon upgraded before the others would otherwise serve another share of the targets
# (two shards syncing one database into two volumes, or none syncing it).
PINNED: dict[str, tuple[int, ...]] = {
    "billing": (0, 1, 1, 3, 3, 3, 3, 3),
    "trails": (0, 1, 2, 2, 2, 2, 2, 2),
    "shop": (0, 1, 1, 1, 1, 1, 1, 1),
    "default": (0, 1, 1, 3, 3, 3, 3, 3),
    "db00": (0, 1, 1, 1, 1, 1, 1, 1),
    "db01": (0, 0, 2, 3, 3, 3, 3, 3),
    "db29": (0, 0, 0, 3, 3, 5, 5, 5),
    "analytics.eu-1": (0, 0, 2, 2, 4, 4, 4, 4),
    "A": (0, 1, 1, 1, 1, 1, 1, 1),
    "x_y-z.9": (0, 1, 1, 1, 1, 1, 1, 1),
    "orders": (0, 1, 2, 2, 2, 2, 6, 6),
    "pg-schema-sync": (0, 0, 0, 0, 0, 0, 0, 7),
}
MANY = [f"db{i:05d}" for i in range(10_000)]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_the_pinned_assignment_never_changes(name: str) -> None:
    assert tuple(shard_of(name, n) for n in range(1, 9)) == PINNED[name]


def test_the_assignment_is_the_same_in_every_python_process() -> None:
    """Python's hash() of a str changes per process (PYTHONHASHSEED): the shard must not."""
    code = (
        "import json; from service.settings.shards import assign; "
        f"print(json.dumps(assign({sorted(PINNED)!r}, 5)))"
    )
    seen = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout
        seen.add(out)
    assert len(seen) == 1
    assert json.loads(seen.pop()) == {n: PINNED[n][4] for n in sorted(PINNED)}


@pytest.mark.parametrize("count", range(1, 9))
def test_one_more_shard_moves_about_one_in_n_plus_one_and_only_to_the_new_shard(
    count: int,
) -> None:
    before, after = assign(MANY, count), assign(MANY, count + 1)
    moved = [n for n in MANY if before[n] != after[n]]
    # Rendezvous: a target moves only when the new shard outbids its old one.
    assert {after[n] for n in moved} == {count}
    share = len(moved) / len(MANY)
    print(f"\n{count} -> {count + 1} shards: {share:.3f} of 10,000 targets moved")
    assert abs(share - 1 / (count + 1)) < 0.02, share


@pytest.mark.parametrize("count", [2, 3, 5, 8])
def test_shards_get_even_shares_of_a_large_fleet(count: int) -> None:
    shares = Counter(assign(MANY, count).values())
    assert set(shares) == set(range(count))
    expected = len(MANY) / count
    assert all(abs(n - expected) < 0.06 * expected for n in shares.values()), shares


@pytest.mark.parametrize(
    ("spec", "count", "env", "why"),
    [
        ("3/3", None, {}, "shard 3 does not exist among 3: shards are numbered 0 to 2"),
        ("0/0", None, {}, "the shard count must be 1 to 10000, not 0"),
        ("-1/3", None, {}, "write INDEX/COUNT"),
        ("1/3/4", None, {}, "write INDEX/COUNT"),
        ("one/three", None, {}, "write INDEX/COUNT"),
        ("\uff11/\uff13", None, {}, "write INDEX/COUNT"),  # fullwidth digits: not a shard
        ("1/3", 4, {}, "it says 3 shards but shard_count is 4"),
        ("auto", None, {"HOSTNAME": "pg-schema-sync-1"}, "needs the number of shards"),
        ("auto", 3, {}, "neither is set"),
        ("auto", 3, {"HOSTNAME": "laptop"}, "but HOSTNAME is 'laptop'"),
        ("auto", 3, {"HOSTNAME": "pg-schema-sync-3"}, "pod pg-schema-sync-3 is shard 3"),
        ("auto", 3, {"POD_NAME": "web", "HOSTNAME": "x-1"}, "but POD_NAME is 'web'"),
    ],
)
def test_an_unusable_shard_is_refused_with_the_reason(
    spec: str, count: int | None, env: dict[str, str], why: str
) -> None:
    with pytest.raises(ShardError, match=None) as caught:
        resolve(spec, count, env)
    assert why in str(caught.value)


def test_auto_takes_the_pod_ordinal_and_the_count() -> None:
    shard = resolve("auto", 8, {"HOSTNAME": "pg-schema-sync-7"})
    assert shard is not None and (shard.index, shard.count) == (7, 8)
    # POD_NAME (from the downward API) beats HOSTNAME, which a pod may have changed.
    shard = resolve("auto", 8, {"POD_NAME": "sync-2", "HOSTNAME": "sync-5"})
    assert shard is not None and shard.index == 2
    assert resolve(None, 8, {}) is None and resolve(" ", None, {}) is None


def fleet_config(folder: Path, names: list[str]) -> Path:
    lines = ['host = "/nonexistent"', 'user = "reader"']
    for name in names:
        lines += ["[[targets]]", f'name = "{name}"', f'database = "{name}"']
    path = folder / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--shard", "3/3"], {}),
        (["--shard", "0/0"], {}),
        (["--shard", "auto"], {"HOSTNAME": "pg-schema-sync-0"}),
        (["--shard", "auto", "--shard-count", "3"], {"HOSTNAME": "laptop"}),
        (["--shard", "auto"], {"POD_NAME": "pg-schema-sync-3", "SCHEMA_SYNC_SHARD_COUNT": "3"}),
        ([], {"SCHEMA_SYNC_SHARD": "2/two"}),
        ([], {"SCHEMA_SYNC_SHARD": "1/3", "SCHEMA_SYNC_SHARD_COUNT": "4"}),
    ],
)
@pytest.mark.parametrize("command", ["run", "targets", "check"])
def test_bad_shard_settings_are_one_line_and_exit_2(
    command: str,
    args: list[str],
    env: dict[str, str],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    config = fleet_config(tmp_path, PINNED_NAMES)
    env = {"HOSTNAME": "", **env}  # the test machine's own host name must not count
    result = in_process([command, "--config", str(config), *args], tmp_path, env, capfd)
    assert result.code == 2, (result.out, result.err)
    [line] = result.err.splitlines()
    assert line.startswith("pg-schema-sync: invalid setting shard="), line
    assert "SCHEMA_SYNC_SHARD" in line
    assert not (tmp_path / "sql").exists()  # refused before anything was created


PINNED_NAMES = sorted(PINNED)


def test_targets_lists_every_target_with_its_shard(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = fleet_config(tmp_path, PINNED_NAMES)
    plain = in_process(["targets", "--config", str(config)], tmp_path, {}, capfd)
    assert plain.code == 0
    assert plain.out.splitlines()[0] == f"{len(PINNED)} targets (not sharded)"
    rows = {ln.split()[0]: ln.split()[1:] for ln in plain.out.splitlines()[1:]}
    assert rows["billing"] == ["reader@/nonexistent:5432/billing", "sql/schemas/billing"]

    listed = in_process(
        ["targets", "--config", str(config), "--shard-count", "4", "--json"], tmp_path, {}, capfd
    ).json()
    assert {t["name"]: t["shard"] for t in listed["targets"]} == {n: PINNED[n][3] for n in PINNED}
    assert listed["per_shard"] == [sum(1 for r in PINNED.values() if r[3] == i) for i in range(4)]

    one = in_process(["targets", "--config", str(config), "--shard", "2/4"], tmp_path, {}, capfd)
    served = [n for n in PINNED_NAMES if PINNED[n][3] == 2]
    assert one.out.splitlines()[0] == f"shard 2/4 serves {len(served)} of {len(PINNED)} targets"
    assert [ln.split()[0] for ln in one.out.splitlines()[1:]] == served

    # In a pod (shard from the environment): --all lists the others too, --target finds one.
    pod = {"SCHEMA_SYNC_SHARD": "auto", "SCHEMA_SYNC_SHARD_COUNT": "4", "POD_NAME": "x-2"}
    everything = in_process(["targets", "--config", str(config), "--all"], tmp_path, pod, capfd)
    assert len(everything.out.splitlines()) == 1 + len(PINNED)
    where = in_process(
        ["targets", "--config", str(config), "--target", "orders"], tmp_path, pod, capfd
    )
    assert where.out.splitlines()[1].split()[:3] == ["orders", "shard", "2/4"]


def test_a_command_for_a_target_of_another_shard_says_where_it_is_served(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = fleet_config(tmp_path, PINNED_NAMES)
    result = in_process(
        ["check", "--config", str(config), "--target", "trails", "--shard", "0/3"],
        tmp_path,
        {},
        capfd,
    )
    assert result.code == 2
    assert result.err.strip() == (
        "pg-schema-sync: target 'trails' is served by shard 2/3, not by this shard 0/3: run the "
        "command there (pod <statefulset>-2)"
    )


def test_health_of_a_shard_with_no_targets_is_healthy_and_says_so(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # "pg-schema-sync" alone: of 8 shards it falls to shard 7, so shard 0 serves nothing.
    config = fleet_config(tmp_path, ["pg-schema-sync"])
    for flags in ([], ["--liveness"]):
        result = in_process(
            ["health", "--config", str(config), "--shard", "0/8", *flags], tmp_path, {}, capfd
        )
        word = "alive" if flags else "healthy"
        assert (result.code, result.out) == (0, f"{word}: shard 0/8 serves none of 1 target\n")


def test_a_shard_with_no_targets_starts_says_so_once_and_stays_healthy(tmp_path: Path) -> None:
    config = fleet_config(tmp_path, ["pg-schema-sync"])  # shard 7 of 8
    port = free_port()
    env = {"SCHEMA_SYNC_METRICS_PORT": str(port), "POD_NAME": "pg-schema-sync-0"}
    args = ["--config", str(config), "--shard", "auto", "--shard-count", "8"]
    with DaemonProcess(tmp_path, env, *args) as d:
        started = d.wait_for("daemon.started", timeout=60)
        assert (started["targets"], started["shard"], started["targets_configured"]) == (
            [],
            "0/8",
            1,
        )
        [empty] = d.named("shard.empty")
        assert empty["shard"] == "0/8" and "stays up" in empty["message"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert 'pg_schema_sync_shard_info{count="8",index="0",shard="0/8"} 1.0' in text
        assert "pg_schema_sync_targets_served 0.0" in text
        d.send(signal.SIGHUP)  # nothing to sync: asked anyway, it stays up and quiet
        health = run_cli("health", *args, cwd=tmp_path, env={"POD_NAME": "pg-schema-sync-0"})
        assert (health.code, health.out) == (0, "healthy: shard 0/8 serves none of 1 target\n")
        d.send(signal.SIGTERM)
        assert d.wait_exit(20) == 0, d.tail()
    # One line says the shard is empty; nothing else happens between start and stop.
    assert [e["event"] for e in d.events] == [
        "shard.empty",
        "daemon.started",
        "daemon.stopping",
        "daemon.stopped",
    ]
    assert d.err_lines == []
    assert not (tmp_path / "sql").exists()  # no target folder, no lock taken
