"""The catalog probe's figures: its time and server CPU, the locks it takes, the unchanged
cycle against bare pg_dump, DDL -> drift.detected in watch mode, and one daemon watching many
small databases.

`python -m bench.catalog_probe --scales 1000,10000` runs on its own (a throwaway cluster,
the generated schemas of bench/generate.py); `python -m bench` calls `measure` per scale.

How: the probe runs in this process on one connection; the server's CPU for it is the growth
of utime + stime of that connection's backend (/proc/PID/stat; 10 ms ticks, so averaged over
many probes). Locks: pg_locks of the probing backend, read inside the probe's transaction
before it ends. The unchanged cycle is `sync_target` in this process (what a daemon's
scheduled cycle costs) and the `sync` command as a child (plus the interpreter's start).
The fleet's server CPU is the postmaster's own plus its reaped children's (cutime/cstime)
plus its live children's, over the window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import SecretStr

from bench import generate
from bench.daemon import Daemon
from service.demo.cluster import ScratchCluster
from service.production.db import connect
from service.production.probe import Probe
from service.settings.model import Settings
from service.sync import sync_target

TICKS = os.sysconf("SC_CLK_TCK")
NEVER = "0 0 1 1 *"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ProbeFigures:
    scale: int
    probe_ms: float = 0.0  # median wall time of one probe (kept-open connection)
    probe_server_cpu_ms: float = 0.0  # server CPU per probe
    user_table_locks: int = 0  # locks the probe held on relations outside pg_catalog
    catalog_locks: int = 0
    unchanged_cycle_ms: float = 0.0  # sync_target in-process, skipped (median)
    unchanged_cli_s: float = 0.0  # `python -m service sync` as a child, skipped
    pg_dump_s: float = 0.0  # bare pg_dump --schema-only (median)
    watch_latency_s: list[float] = field(default_factory=list)  # DDL -> drift.detected
    watch_interval_s: float = 0.0
    full_sync_s: float = 0.0  # the watch-triggered sync's own duration


@dataclass
class FleetFigures:
    databases: int = 0
    interval_s: float = 0.0
    window_s: float = 0.0
    probes: int = 0
    daemon_cpu_percent: float = 0.0  # of one core, over the window
    server_cpu_percent: float = 0.0
    note: str = ""


def _cpu_ticks(pid: int, children: bool = False) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    own = int(fields[11]) + int(fields[12])
    return own + (int(fields[13]) + int(fields[14]) if children else 0)


def _server_ticks(postmaster: int) -> int:
    """The whole server: postmaster, its reaped children, its live children."""
    total = _cpu_ticks(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == postmaster:
                    total += _cpu_ticks(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return total


def _postmaster_pid(cluster: ScratchCluster) -> int:
    return int((cluster.datadir / "postmaster.pid").read_text().split()[0])


async def _probe_costs(cluster: ScratchCluster, db: str, fig: ProbeFigures, n: int) -> None:
    conn = await connect(cluster.conninfo(db))
    try:
        probe = Probe()
        await probe.fingerprint(conn)  # warm: builds the SQL, fills the catalog caches
        backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
        walls: list[float] = []
        before = _cpu_ticks(backend)
        for _ in range(n):
            t0 = time.perf_counter()
            await probe.fingerprint(conn)
            walls.append(time.perf_counter() - t0)
        fig.probe_server_cpu_ms = (_cpu_ticks(backend) - before) / TICKS / n * 1000
        fig.probe_ms = statistics.median(walls) * 1000
        # The locks: the probe's statement inside a transaction, then pg_locks before COMMIT.
        sql = probe.sql
        assert sql is not None
        async with conn.transaction(readonly=True):
            await conn.fetch(sql)
            rows = await conn.fetch(
                "SELECT c.relnamespace = 'pg_catalog'::regnamespace AS catalog, count(*)"
                " FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'"
                " AND l.relation <> 'pg_locks'::regclass GROUP BY 1"
            )
        got = {r["catalog"]: r["count"] for r in rows}
        fig.catalog_locks, fig.user_table_locks = got.get(True, 0), got.get(False, 0)
    finally:
        await conn.close()


def _settings(cluster: ScratchCluster, db: str, work: Path) -> Settings:
    return Settings(
        dsn=SecretStr(cluster.dsn(db)),
        schema_file=work / "sql/schemas/complete-schema.sql",
        functions_file=work / "sql/schemas/functions.sql",
        inventory_file=work / "sql/schemas/inventory.json",
        backup_dir=work / "backups",
    )


def child_env(cluster: ScratchCluster, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
    env["PATH"] = f"{cluster.bindir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


async def _unchanged_cycle(cluster: ScratchCluster, db: str, work: Path, fig: ProbeFigures) -> None:
    settings = _settings(cluster, db, work)
    first = await sync_target(settings)
    assert first.skipped is None
    walls = []
    for _ in range(5):
        t0 = time.perf_counter()
        again = await sync_target(settings)
        walls.append(time.perf_counter() - t0)
        assert again.skipped == "unchanged", again.probe
    fig.unchanged_cycle_ms = statistics.median(walls) * 1000


def _unchanged_cli(cluster: ScratchCluster, db: str, work: Path, fig: ProbeFigures) -> None:
    """The `sync` command on the folder the in-process cycles synced, timed the second time:
    the first reads in full (the child's PATH finds another pg_dump, which may print other
    files), and the second is the skipped cycle a user sees from then on."""
    for _ in range(2):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "service", "sync"],
            cwd=work,
            env=child_env(cluster, SCHEMA_SYNC_DSN=cluster.dsn(db)),
            capture_output=True,
            text=True,
            check=False,
        )
        fig.unchanged_cli_s = time.perf_counter() - t0
        assert proc.returncode == 0 and "nothing written" in proc.stdout, proc.stderr[-2000:]
    assert "catalog unchanged" in proc.stdout, proc.stdout


def _pg_dump_s(cluster: ScratchCluster, db: str, scratch: Path, runs: int) -> float:
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            ["pg_dump", "--schema-only", "-f", str(scratch / "bare.sql"), "-d", cluster.dsn(db)],
            env=child_env(cluster),
            check=True,
        )
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def _watch_latency(
    cluster: ScratchCluster, db: str, work: Path, fig: ProbeFigures, interval: float, n: int
) -> None:
    env = child_env(
        cluster,
        SCHEMA_SYNC_DSN=cluster.dsn(db),
        SCHEMA_SYNC_SCHEDULE=NEVER,
        SCHEMA_SYNC_SYNC_ON_START="true",
        SCHEMA_SYNC_WATCH_INTERVAL_S=str(interval),
        SCHEMA_SYNC_WATCH_SETTLE_S="1",
        SCHEMA_SYNC_LOG_FORMAT="json",
    )
    fig.watch_interval_s = interval
    daemon = Daemon(work, env)
    try:
        daemon.wait("sync.finished", 1, 900)
        for i in range(n):
            drifts = daemon.count("drift.detected")
            cluster.psql(db, f"CREATE TABLE public.bench_watch_{i} (id int)")
            committed = time.time()
            seen, _ = daemon.wait("drift.detected", drifts + 1, 900)
            fig.watch_latency_s.append(seen - committed)
            _, finished = daemon.wait("sync.finished", i + 2, 900)
            fig.full_sync_s = float(finished.get("duration_s", 0.0))
            time.sleep(interval * 0.37)  # the next DDL lands at another point of the interval
    finally:
        daemon.stop()
        for i in range(n):
            cluster.psql(db, f"DROP TABLE IF EXISTS public.bench_watch_{i}")


def measure(
    cluster: ScratchCluster,
    scale: int,
    db: str,
    scratch: Path,
    probes: int = 20,
    watch_interval: float = 5.0,
    watch_runs: int = 3,
    dump_runs: int = 3,
) -> ProbeFigures:
    fig = ProbeFigures(scale)
    asyncio.run(_probe_costs(cluster, db, fig, probes))
    fig.pg_dump_s = _pg_dump_s(cluster, db, scratch, dump_runs)
    work = Path(tempfile.mkdtemp(prefix=f"bench-probe-{scale}-", dir=scratch))
    try:
        asyncio.run(_unchanged_cycle(cluster, db, work, fig))
        _unchanged_cli(cluster, db, work, fig)
        if watch_runs:
            _watch_latency(cluster, db, work, fig, watch_interval, watch_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return fig


def measure_fleet(
    cluster: ScratchCluster, databases: int, interval: float, window: float, scratch: Path
) -> FleetFigures:
    """One daemon watching `databases` small databases (20 tables each) for `window` s."""
    template = "fleet_template"
    cluster.create_database(template)
    cluster.psql(
        template,
        "".join(f"CREATE TABLE t{i} (id int PRIMARY KEY, v text, n int);" for i in range(20)),
    )
    names = [f"fleet_{i}" for i in range(databases)]
    for name in names:
        cluster.psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    targets = [{"name": n, "dsn": cluster.dsn(n)} for n in names]
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-", dir=scratch))
    env = child_env(
        cluster,
        SCHEMA_SYNC_TARGETS=json.dumps(targets),
        SCHEMA_SYNC_SCHEDULE=NEVER,
        SCHEMA_SYNC_SYNC_ON_START="true",
        SCHEMA_SYNC_WATCH_INTERVAL_S=str(interval),
        SCHEMA_SYNC_LOG_FORMAT="json",
    )
    fig = FleetFigures(databases, interval)
    daemon = Daemon(work, env)
    try:
        daemon.wait("sync.finished", databases, 1800)  # every target's first sync
        time.sleep(min(interval, 5.0))  # let the first syncs' connections end
        postmaster = _postmaster_pid(cluster)
        d0, s0, t0 = _cpu_ticks(daemon.proc.pid), _server_ticks(postmaster), time.time()
        time.sleep(window)
        d1, s1, t1 = _cpu_ticks(daemon.proc.pid), _server_ticks(postmaster), time.time()
        fig.window_s = t1 - t0
        fig.daemon_cpu_percent = (d1 - d0) / TICKS / fig.window_s * 100
        fig.server_cpu_percent = (s1 - s0) / TICKS / fig.window_s * 100
        fig.probes = round(databases * fig.window_s / interval)
        if daemon.count("sync.started") > databases:
            fig.note = "a probe started an unexpected sync during the window"
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
        for name in [*names, template]:
            cluster.drop_database(name)
    return fig


def markdown(figs: list[ProbeFigures], fleet: FleetFigures | None, fleet_note: str) -> str:
    """The benchmark.md section for the probe, goals marked."""
    out = [
        "## Catalog probe: skipped cycles and watch mode",
        "",
        "| S | probe | server CPU / probe | locks on user tables | locks on catalogs "
        "| unchanged cycle (in-process) | unchanged `sync` (CLI) | bare pg_dump "
        "| cycle / pg_dump | DDL → drift.detected (watch interval) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figs:
        ratio = f.unchanged_cycle_ms / 1000 / f.pg_dump_s if f.pg_dump_s else 0.0
        lat = (
            f"{statistics.median(f.watch_latency_s):.1f} s median, max "
            f"{max(f.watch_latency_s):.1f} s ({f.watch_interval_s:g} s; sync {f.full_sync_s:.1f} s)"
            if f.watch_latency_s
            else "not measured"
        )
        out.append(
            f"| {f.scale:,} | {f.probe_ms:.1f} ms | {f.probe_server_cpu_ms:.1f} ms "
            f"| {f.user_table_locks} | {f.catalog_locks} | {f.unchanged_cycle_ms:.0f} ms "
            f"| {f.unchanged_cli_s:.2f} s | {f.pg_dump_s:.2f} s | {ratio:.3f}x | {lat} |"
        )
    if fleet is not None:
        out += [
            "",
            f"One daemon watching {fleet.databases} databases (20 tables each), watch interval "
            f"{fleet.interval_s:g} s, over {fleet.window_s:.0f} s (~{fleet.probes} probes): "
            f"daemon {fleet.daemon_cpu_percent:.2f} % of one core, server "
            f"{fleet.server_cpu_percent:.2f} %. {fleet.note}",
        ]
    elif fleet_note:
        out += ["", fleet_note]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.catalog_probe")
    p.add_argument("--scales", default="1000")
    p.add_argument("--watch-interval", type=float, default=5.0)
    p.add_argument("--watch-runs", type=int, default=3)
    p.add_argument("--fleet", type=int, default=0, help="databases for the fleet figure")
    p.add_argument("--fleet-interval", type=float, default=60.0)
    p.add_argument("--fleet-window", type=float, default=120.0)
    p.add_argument("--out", type=Path, default=None, help="write probe.json here")
    args = p.parse_args(argv)
    scales = [int(s) for s in args.scales.split(",") if s.strip()]
    biggest = max(scales)
    settings = {
        "max_locks_per_transaction": str(max(128, 16 * biggest // 100)),
        "shared_buffers": "1GB",
    }
    scratch = Path(tempfile.mkdtemp(prefix="pg-schema-sync-bench-probe-"))
    figs: list[ProbeFigures] = []
    fleet = None
    try:
        with ScratchCluster(settings=settings) as cluster:
            for scale in scales:
                script = scratch / f"base_{scale}.sql"
                script.write_text(generate.base_sql(scale))
                db = f"base_{scale}"
                cluster.create_database(db, script)
                cluster.psql(db, "VACUUM ANALYZE")
                fig = measure(
                    cluster,
                    scale,
                    db,
                    scratch,
                    watch_interval=args.watch_interval,
                    watch_runs=args.watch_runs,
                )
                print(json.dumps(asdict(fig)), file=sys.stderr, flush=True)
                figs.append(fig)
                cluster.drop_database(db)
            if args.fleet:
                fleet = measure_fleet(
                    cluster, args.fleet, args.fleet_interval, args.fleet_window, scratch
                )
                print(json.dumps(asdict(fleet)), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = markdown(figs, fleet, "")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        doc = {"scales": [asdict(f) for f in figs], "fleet": asdict(fleet) if fleet else None}
        (args.out / "probe.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
