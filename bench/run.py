"""`python -m bench`: load generated schemas into a throwaway cluster and time every command.

Per scale, and per run in turn (so a noisy neighbour slows every command alike), in this
order: bare pg_dump --schema-only, a full sync into a fresh folder, an unchanged sync of the
same folder, check, compare base vs drifted, migra on the same pair. Correctness is asserted
on every run: the unchanged sync leaves sql/ as it was, check finds no drift, compare reports
exactly the three generated changes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from bench import catalog_probe, generate, report, startup, status_page
from bench import plan as plan_bench
from bench.daemon import DaemonFigures, has_run_command, measure_daemon
from bench.measure import Sample, run, tree_state
from bench.results import BenchFailure, Results, ScaleResult
from bench.scaffold import ROOT, VENVS, child_env, load_scale, migra_bin, say
from service.demo.cluster import ScratchCluster

COMMANDS = ("pg_dump", "sync (full)", "sync (unchanged)", "check", "compare", "migra")


# --------------------------------------------------------------------------------------------
# One run of every command


def _check(ok: bool, what: str, sample: Sample | None = None) -> None:
    if not ok:
        detail = (
            f"\n  exit {sample.exit_code}; stderr: {sample.stderr.strip()[-800:]}" if sample else ""
        )
        raise BenchFailure(what + detail)


def _service(*args: str) -> list[str]:
    return [sys.executable, "-m", "service", *args]


def run_once(
    cluster: ScratchCluster,
    result: ScaleResult,
    base: str,
    drifted: str,
    migra: Path | None,
    scratch: Path,
) -> None:
    scale = result.scale
    env = child_env(cluster)

    dump_file = scratch / "bare.sql"
    dump = ["pg_dump", "--schema-only", "-f", str(dump_file), "-d", cluster.dsn(base)]
    s = run(dump, env, tool="pg_dump")
    _check(s.exit_code == 0, "pg_dump failed", s)
    result.dump_bytes = dump_file.stat().st_size
    dump_file.unlink()
    result.add("pg_dump", s)

    work = Path(tempfile.mkdtemp(prefix=f"bench-sync-{scale}-", dir=scratch))
    sync_env = child_env(cluster, SCHEMA_SYNC_DSN=cluster.dsn(base))
    s = run(_service("sync"), sync_env, cwd=work, probe=True, tool="pg_dump")
    _check(s.exit_code == 0, "full sync failed", s)
    _check((work / "sql/schemas/complete-schema.sql").exists(), "full sync wrote no schema file")
    first = re.search(r"first sync: (\d+) objects", s.stdout)
    result.objects = int(first.group(1)) if first else result.objects
    result.add("sync (full)", s)

    before = tree_state(work / "sql")
    backups_before = sorted(p.name for p in (work / "backups").iterdir())
    s = run(_service("sync"), sync_env, cwd=work, probe=True, watch=work / "sql", tool="pg_dump")
    _check(s.exit_code == 0, "unchanged sync failed", s)
    _check(
        tree_state(work / "sql") == before,
        "unchanged sync changed files under sql/ (size, mtime or inode)",
    )
    _check(
        sorted(p.name for p in (work / "backups").iterdir()) == backups_before,
        "unchanged sync created a backup",
    )
    _check("nothing written" in s.stdout, f"unchanged sync did not say so: {s.stdout!r}", s)
    result.add("sync (unchanged)", s)

    s = run(_service("check"), sync_env, cwd=work, probe=True, tool="pg_dump")
    _check(s.exit_code == 0, "check found drift right after a sync", s)
    result.add("check", s)

    s = run(
        _service("compare", "--json", cluster.dsn(base), cluster.dsn(drifted)),
        env,
        cwd=work,
        probe=True,
    )
    _check(s.exit_code == 1, "compare did not report drift", s)
    got = {(c["change"], c["kind"], c["name"]) for c in json.loads(s.stdout)["changes"]}
    want = generate.expected_changes(scale)
    _check(got == want, f"compare reported {sorted(got)}, expected {sorted(want)}")
    result.add("compare", s)

    if migra is not None:
        s = run(
            [str(migra), "--unsafe", cluster.dsn(base), cluster.dsn(drifted)],
            {**env, "PYTHONPATH": ""},
            cwd=work,
            tool="migra",
        )
        _check(s.exit_code == 2, "migra found no differences (exit 2 expected)", s)
        found = _migra_changes(s.stdout, scale)
        if found != 3:
            result.notes.append(f"migra output names {found} of the 3 changes")
        result.add("migra", s)
    shutil.rmtree(work, ignore_errors=True)


def _migra_changes(sql: str, scale: int) -> int:
    """How many of the three generated changes migra's script mentions."""
    text = sql.lower()
    found = 0
    for change, kind, name in generate.expected_changes(scale):
        schema, short = name.split("(")[0].split(".")
        quoted = f'"{schema}"."{short}"'
        if kind == "table":
            found += f"alter table {quoted} add column" in text
        elif kind == "function":
            found += f"function {schema}.{short}(" in text and "hot fix" in text
        elif change == "removed":
            found += f"drop index if exists {quoted}" in text
    return found


# --------------------------------------------------------------------------------------------
# The command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark sync/check/compare against bare pg_dump and migra.",
    )
    # 2,000 and 5,000: issue 22's goals (unchanged sync at 2,000, full sync at 5,000).
    p.add_argument("--scales", default="1000,2000,5000,10000", help="comma-separated S values")
    p.add_argument(
        "--startup-runs", type=int, default=15, help="runs of each start-up figure (issue 22)"
    )
    p.add_argument("--runs", type=int, default=3, help="runs per command (median reported)")
    p.add_argument("--out", type=Path, default=None, help="folder for benchmark.md/.png/.json")
    p.add_argument("--quick", action="store_true", help="CI smoke: S=50, 1 run, no timing goals")
    p.add_argument("--idle-seconds", type=float, default=60.0, help="idle daemon window")
    p.add_argument("--sighups", type=int, default=5, help="SIGHUPs sent to time sync.started")
    p.add_argument("--no-migra", action="store_true", help="do not run (or install) migra")
    p.add_argument("--no-chart", action="store_true", help="do not draw benchmark.png")
    p.add_argument("--note", default="", help="a line to put under the table's heading")
    p.add_argument(
        "--probe-fleet",
        type=int,
        default=0,
        help="databases for the probe's fleet figure (0: skip)",
    )
    # A server holding 10,000 tables has a catalog of ~250 MB; PostgreSQL's default of 128 MB
    # would have pg_dump and the catalog reader evict each other's pages, which no production
    # server of that size does (shared_buffers is sized to RAM, typically a quarter of it).
    p.add_argument(
        "--shared-buffers",
        default="1GB",
        help="the throwaway server's shared_buffers (default 1GB; PostgreSQL's own is 128MB)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.scales, args.runs, args.idle_seconds, args.sighups = "50", 1, 0.0, 1
        args.startup_runs = 1
        args.no_migra, args.no_chart = True, True
        args.out = args.out or VENVS / "quick"
    args.out = args.out or ROOT / "docs"
    args.scale_list = [int(x) for x in str(args.scales).split(",") if x.strip()]
    if args.runs < 1 or not args.scale_list:
        p.error("need at least one scale and one run")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = Results(
        host=f"{os.cpu_count()} cores, {_mem_gib()} GiB RAM; the throwaway server runs with "
        f"shared_buffers = {args.shared_buffers}",
        quick=args.quick,
        note=args.note,
    )
    migra, results.migra_note = (None, "migra skipped (--no-migra)")
    if not args.no_migra:
        migra, results.migra_note = migra_bin(install=True)
    if results.migra_note:
        say(results.migra_note)
    biggest = max(args.scale_list)
    # The load creates each scale in one transaction, and pg_dump locks every table in one:
    # a generated table brings ~10 lockable relations (toast, indexes, identity sequence).
    # The shared lock table holds max_locks_per_transaction x (max_connections = 100).
    locks = max(128, 16 * biggest // 100)
    settings = {"max_locks_per_transaction": str(locks), "shared_buffers": args.shared_buffers}
    scratch = Path(tempfile.mkdtemp(prefix="pg-schema-sync-bench-"))
    try:
        with ScratchCluster(settings=settings) as cluster:
            dbs: list[tuple[int, str]] = []
            plans: list[plan_bench.PlanFigures] = []
            warm = False
            for scale in args.scale_list:
                result = ScaleResult(scale)
                say(f"S={scale}: generating and loading")
                base, drifted, result.load_s = load_scale(cluster, scale, scratch)
                say(f"S={scale}: loaded in {result.load_s:.1f}s; measuring {args.runs} run(s)")
                if not warm and not args.quick:
                    # Unmeasured: fills the bytecode cache and the OS page cache.
                    run_once(cluster, ScaleResult(scale), base, drifted, migra, scratch)
                    warm = True
                for n in range(args.runs):
                    run_once(cluster, result, base, drifted, migra, scratch)
                    say(f"S={scale}: run {n + 1}/{args.runs} done: " + report.brief(result))
                results.scales.append(result)
                dbs.append((scale, base))
                say(f"S={scale}: plan, plan + verification, migra")
                plans.append(
                    plan_bench.measure(
                        cluster, scale, base, drifted, migra, scratch, args.runs, child_env(cluster)
                    )
                )
                cluster.drop_database(drifted)
            results.startup = _startup(cluster, args, dbs, scratch)
            results.daemon, results.daemon_note = _daemon(cluster, args, dbs, scratch)
            probe_section = _probe(cluster, args, dbs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(results.to_json())
    say("status page: 100 targets x 50 backups" if not args.quick else "status page: quick")
    page = status_page.measure(10, 5, 3) if args.quick else status_page.measure(100, 50, 20)
    table = (
        report.markdown(results)
        + "\n"
        + probe_section
        + "\n"
        + status_page.markdown(page, judge=not args.quick)
        + "\n"
        + plan_bench.markdown(plans)
    )
    (args.out / "benchmark.md").write_text(table)
    if not args.no_chart:
        say(report.chart(args.out / "benchmark.json", args.out / "benchmark.png", VENVS))
    print(table)
    if args.quick:
        print("quick: correctness checks passed (unchanged sync wrote nothing; compare found 3)")
    return 0


def _startup(
    cluster: ScratchCluster, args: argparse.Namespace, dbs: list[tuple[int, str]], scratch: Path
) -> startup.StartupFigures:
    """--version, --help and a skipped check (on the smallest scale, 1,000 by default)."""
    scale, base = dbs[0]
    env = child_env(cluster, SCHEMA_SYNC_DSN=cluster.dsn(base))
    work = Path(tempfile.mkdtemp(prefix="bench-startup-", dir=scratch))
    s = run([str(startup.entry_point()), "sync"], env, cwd=work)
    _check(s.exit_code == 0, "the start-up figures' first sync failed", s)
    say(f"start-up: --version, --help, skipped check at S={scale}, {args.startup_runs} runs")
    psql = str(cluster.clientdir / "psql")
    return startup.measure(env, work, scale, psql, args.startup_runs, uv_run=not args.quick)


def _daemon(
    cluster: ScratchCluster, args: argparse.Namespace, dbs: list[tuple[int, str]], scratch: Path
) -> tuple[DaemonFigures | None, str]:
    scale, base = dbs[0]
    env = child_env(cluster, SCHEMA_SYNC_DSN=cluster.dsn(base))
    if not has_run_command(env):
        return None, "daemon figures skipped: this version has no `run` command"
    work = Path(tempfile.mkdtemp(prefix="bench-daemon-", dir=scratch))
    say(f"daemon: idle {args.idle_seconds:.0f}s, then {args.sighups} SIGHUP(s) at S={scale}")
    try:
        figures = measure_daemon(work, env, args.idle_seconds, args.sighups, 600)
    except RuntimeError as exc:
        return None, f"daemon figures failed: {exc}"
    return figures, f"daemon on S={scale}"


def _probe(
    cluster: ScratchCluster, args: argparse.Namespace, dbs: list[tuple[int, str]], scratch: Path
) -> str:
    """The catalog probe's figures per scale (bench/catalog_probe.py), as a markdown section."""
    figs = []
    for scale, base in dbs:
        say(f"S={scale}: catalog probe, unchanged cycle, watch latency")
        figs.append(
            catalog_probe.measure(
                cluster,
                scale,
                base,
                scratch,
                probes=5 if args.quick else 20,
                watch_interval=1.0 if args.quick else 5.0,
                watch_runs=1 if args.quick else 3,
                dump_runs=1 if args.quick else args.runs,
            )
        )
    fleet, note = None, "Fleet figure not measured (`--probe-fleet N` measures it)."
    if args.probe_fleet:
        fleet = catalog_probe.measure_fleet(cluster, args.probe_fleet, 60.0, 120.0, scratch)
    return catalog_probe.markdown(figs, fleet, note)


def _mem_gib() -> int:
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
