"""Results -> the markdown table with the issue's targets, and the chart (drawn elsewhere)."""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.measure import Sample

if TYPE_CHECKING:
    from bench.results import Results, ScaleResult

ORDER = ("pg_dump", "sync (full)", "sync (unchanged)", "check", "compare", "migra")
TARGET_SCALE = 10_000


def _mb(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f}"


def _median(samples: Sequence[Sample], attr: str) -> float | None:
    values = [v for s in samples if (v := getattr(s, attr)) is not None]
    return statistics.median(values) if values else None


def _max_kb(values: Iterable[int | None]) -> int | None:
    got = [v for v in values if v]
    return max(got) if got else None


def paired(result: ScaleResult, command: str, base: str = "pg_dump") -> float | None:
    """Median over runs of wall(command) / wall(base) in the same run.

    Each run measures pg_dump right before the other commands, so a shared machine that speeds
    up or slows down between runs moves both sides of a run's ratio alike; the ratio of the
    medians mixes runs (here identical pg_dump runs ranged from 7.8 to 10.8 s).
    """
    xs, ys = result.samples.get(command), result.samples.get(base)
    if not xs or not ys or len(xs) != len(ys):
        return None
    return statistics.median(x.wall_s / y.wall_s for x, y in zip(xs, ys, strict=True))


def brief(result: ScaleResult) -> str:
    """One line of medians so far, for progress output."""
    return ", ".join(
        f"{c} {result.median_wall(c):.2f}s" for c in ORDER if result.median_wall(c) is not None
    )


def _rows(result: ScaleResult) -> list[str]:
    floor = result.median_wall("pg_dump")
    migra = result.median_wall("migra")
    rows = []
    for command in ORDER:
        samples = result.samples.get(command)
        if not samples:
            continue
        wall = statistics.median(s.wall_s for s in samples)
        spread = f"{min(s.wall_s for s in samples):.2f}-{max(s.wall_s for s in samples):.2f}"
        ours = _max_kb(s.ours_maxrss_kb for s in samples)
        tool = _max_kb(s.tool_maxrss_kb for s in samples)
        own_rss = _mb(ours) if command not in ("pg_dump", "migra") else _mb(tool)
        dump_rss = _mb(tool) if command != "migra" else "-"
        pair = paired(result, command)
        ratio = f"{pair:.2f}x" if pair else (f"{wall / floor:.2f}x" if floor else "-")
        faster = paired(result, "migra", "compare") if command == "compare" and migra else None
        vs_migra = f"({faster:.1f}x faster than migra) " if faster else ""
        rows.append(
            f"| {result.scale:,} | {command} | {wall:.2f} | {spread} | {len(samples)} | "
            f"{own_rss} | {dump_rss} | {_median(samples, 'cpu_s') or 0:.2f} | {ratio} "
            f"{vs_migra}|"
        )
    return rows


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("**pass**" if ok else "**FAIL**")


def targets(results: Results) -> list[str]:
    """The issue's targets, judged on the largest (and smallest) scale measured."""
    if not results.scales:
        return []
    big, small = results.scales[-1], results.scales[0]
    where = f"S = {big.scale:,}" + (
        "" if big.scale == TARGET_SCALE else f" (the targets are set at S = {TARGET_SCALE:,})"
    )
    floor = big.median_wall("pg_dump") or 0.0
    lines = [f"Judged at {where}.", "", "| target | measured | verdict |", "|---|---|---|"]

    def add(target: str, measured: str, ok: bool | None) -> None:
        lines.append(f"| {target} | {measured} | {_verdict(ok)} |")

    for command, target in (("sync (full)", "full sync"), ("sync (unchanged)", "unchanged sync")):
        wall, pair = big.median_wall(command), paired(big, command)
        if wall and floor and pair:
            add(
                f"{target} ≤ 1.10 x pg_dump",
                f"{pair:.2f}x per run (ratio of the medians: {wall / floor:.2f}x)",
                pair <= 1.10,
            )
    unchanged = [s for r in results.scales for s in r.samples.get("sync (unchanged)", [])]
    if unchanged:
        touched = sorted({Path(t).name for s in unchanged for t in s.touched})
        persistent = "files under sql/ identical afterwards (size, mtime, inode) in every run"
        transient = (
            "no write under sql/ seen by inotify"
            if not touched
            else "but inotify saw writes under sql/ during the run: "
            + ", ".join(f"`{t}`" for t in touched[:4])
        )
        add("unchanged sync writes 0 bytes under sql/", f"{persistent}; {transient}", not touched)
    compare, migra = big.median_wall("compare"), big.median_wall("migra")
    faster = paired(big, "migra", "compare")
    if compare and migra and faster:
        add(
            "compare ≥ 20 x faster than migra",
            f"{faster:.1f}x per run (ratio of the medians: {migra / compare:.1f}x)",
            faster >= 20,
        )
    elif compare:
        add("compare ≥ 20 x faster than migra", results.migra_note or "migra not run", None)
    peak = max(
        (s.ours_maxrss_kb or 0 for c, xs in big.samples.items() for s in xs if c != "migra"),
        default=0,
    )
    if peak:
        add("our peak RSS ≤ 120 MB", f"{peak / 1024:.0f} MB", peak / 1024 <= 120)
    if big.scale > small.scale:
        allowed = 1.1 * big.scale / small.scale
        for command in ORDER:
            t_big, t_small = big.median_wall(command), small.median_wall(command)
            if t_big and t_small and command not in ("migra",):
                growth = t_big / t_small
                add(
                    f"{command}: t({big.scale:,}) / t({small.scale:,}) ≤ {allowed:.0f}",
                    f"{growth:.1f}",
                    growth <= allowed,
                )
    d = results.daemon
    if d is not None:
        if d.idle_window_s:
            add(
                "idle daemon ≤ 60 MB RSS",
                f"{d.idle_rss_max_kb / 1024:.0f} MB (max over {d.idle_window_s:.0f} s)",
                d.idle_rss_max_kb / 1024 <= 60,
            )
            add("idle daemon < 0.5 % CPU", f"{d.idle_cpu_percent:.2f} %", d.idle_cpu_percent < 0.5)
        if d.sighup_latency_ms:
            med = statistics.median(d.sighup_latency_ms)
            add(
                "SIGHUP → sync.started ≤ 50 ms",
                f"median {med:.1f} ms, max {max(d.sighup_latency_ms):.1f} ms "
                f"({len(d.sighup_latency_ms)} signals)",
                med <= 50,
            )
        if d.rss_after_syncs_kb:
            add(
                "(info) daemon RSS after its syncs",
                f"{d.rss_after_syncs_kb / 1024:.0f} MB",
                None,
            )
    return lines


def first_hour_targets(results: Results) -> list[str]:
    """Issue 22's goals: the command answers at once, and a sync adds little to pg_dump."""
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    su = results.startup
    for row in su.rows if su else []:
        if row.goal_s is None or su is None:
            continue
        what = f"`{row.command}`"
        judged: bool | None = row.wall <= row.goal_s
        if row.command == "check":
            what += f" (skipped, S = {su.scale:,})"
            judged = judged if su.scale == 1_000 else None  # the goal is set at S = 1,000
        yard = statistics.median(row.yardstick)
        lines.append(
            f"| {what} ≤ {row.goal_s:g} s wall | {row.wall:.3f} s (psql --version "
            f"{yard:.3f} s) | {_verdict(judged)} |"
        )
    for command, scale, goal in (("sync (unchanged)", 2_000, 0.30), ("sync (full)", 5_000, 1.10)):
        result = next((r for r in results.scales if r.scale == scale), None)
        pair = paired(result, command) if result else None
        if result is None or pair is None:
            lines.append(
                f"| {command} at S = {scale:,} ≤ {goal:.2f} x pg_dump | not measured | - |"
            )
            continue
        wall, floor = result.median_wall(command) or 0.0, result.median_wall("pg_dump") or 1.0
        lines.append(
            f"| {command} at S = {scale:,} ≤ {goal:.2f} x pg_dump | {pair:.2f}x per run "
            f"({wall:.2f} s vs {floor:.2f} s) | {_verdict(pair <= goal)} |"
        )
    return lines


def markdown(results: Results) -> str:
    out = [
        "# Benchmark: pg-schema-sync vs bare pg_dump and migra",
        "",
        f"Host: {results.host}. Generated by `python -m bench` (see docs/benchmarking.md).",
    ]
    if results.note:
        out += ["", f"**Note:** {results.note}"]
    if results.quick:
        out.append("Quick mode (CI smoke): correctness only, the timings mean nothing.")
    out += [
        "",
        "Wall: median over the runs, seconds. *Our RSS*: peak RSS of our Python process alone "
        "(for pg_dump and migra: their own). *pg_dump RSS*: bare pg_dump's peak, or that of "
        "the pg_dump our sync started. CPU: user + sys of the whole process tree, median. "
        "*x pg_dump*: the median over runs of the command's wall over the same run's bare "
        "pg_dump wall (runs go pg_dump, sync, ..., migra in turn).",
        "",
        "| S | command | wall (s) | min-max | runs | our RSS (MB) | pg_dump RSS (MB) "
        "| CPU (s) | x pg_dump |",
        "|---:|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for result in results.scales:
        out += _rows(result)
    out += ["", "Objects and sizes:", ""]
    for r in results.scales:
        out.append(
            f"- S = {r.scale:,}: {r.objects:,} objects in the inventory, "
            f"pg_dump output {r.dump_bytes / 2**20:.1f} MiB, loaded in {r.load_s:.0f} s"
            + ("; " + "; ".join(r.notes) if r.notes else "")
        )
    for note in (results.migra_note, results.daemon_note):
        if note:
            out.append(f"- {note}")
    out += ["", "## Targets (issue 6)", "", *targets(results), ""]
    out += ["## Targets (issue 22)", "", *first_hour_targets(results), ""]
    if results.startup is not None:
        from bench.startup import markdown as startup_markdown

        out += startup_markdown(results.startup)
    return "\n".join(out)


def chart(data: Path, png: Path, venvs: Path) -> str:
    """Draw the chart with matplotlib from a throwaway venv (not a dependency of ours)."""
    venv = venvs / "plot"
    py = venv / "bin" / "python"
    if not py.exists():
        steps = [
            ["uv", "venv", "-q", str(venv)],
            ["uv", "pip", "install", "-q", "--python", str(py), "matplotlib"],
        ]
        for step in steps:
            if subprocess.run(step, capture_output=True, check=False).returncode != 0:
                return "chart skipped: could not install matplotlib into .bench/plot"
    script = Path(__file__).with_name("chart.py")
    done = subprocess.run(
        [str(py), str(script), str(data), str(png)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return f"chart failed: {done.stderr.strip()[-300:]}"
    return f"chart written to {png}"
