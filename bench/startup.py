"""How soon the command answers: `--version`, `--help` and a `check` whose probe finds nothing
changed, each run as a user runs it (the installed entry point, `<venv>/bin/pg-schema-sync`,
not `uv run`), side by side with `psql --version` as the yardstick of a command that answers
at once.

Runs alternate (ours, psql, ours, psql, ...) after one unmeasured warm-up each, so a noisy
neighbour slows both alike; the ratio is the median of the per-pair ratios. The children get
bench/run.py's environment: bytecode cached (as the container image compiles it), no PG* or
SCHEMA_SYNC_* variables but the DSN. `uv run` is timed once more on `--version`, to show what
it adds on top of the command itself.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Sample, run

GOALS = {"--version": 0.25, "--help": 0.25, "check": 0.6}
NO_CACHE = "check, settings built"


@dataclass
class StartupRow:
    command: str
    goal_s: float | None
    ours: list[float] = field(default_factory=list)  # wall, seconds
    cpu: list[float] = field(default_factory=list)
    yardstick: list[float] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(self.ours)

    @property
    def ratio(self) -> float:
        return statistics.median(a / b for a, b in zip(self.ours, self.yardstick, strict=True))


@dataclass
class StartupFigures:
    entry_point: str
    yardstick: str
    scale: int
    rows: list[StartupRow] = field(default_factory=list)
    uv_run_version_s: float | None = None
    note: str = ""


def entry_point() -> Path:
    """The installed command of this interpreter's environment (uv sync puts it there)."""
    return Path(sys.executable).parent / "pg-schema-sync"


def _check(sample: Sample, what: str, expect_out: str | None = None) -> None:
    if sample.exit_code != 0 or (expect_out is not None and expect_out not in sample.stdout):
        raise RuntimeError(
            f"{what} failed: exit {sample.exit_code}, out {sample.stdout[-300:]!r}, "
            f"err {sample.stderr[-500:]!r}"
        )


def measure(
    env: dict[str, str], synced: Path, scale: int, psql: str, runs: int, uv_run: bool = True
) -> StartupFigures:
    """`synced`: a folder whose files a full sync has just written (its check is skipped)."""
    exe = entry_point()
    figures = StartupFigures(str(exe), f"{psql} --version", scale)
    # The check must be a skipped cycle: the probe says so at debug level (not timed).
    shown = run([str(exe), "check", "--log-level", "debug", "--log-format", "json"], env, synced)
    _check(shown, "check (debug)", "in sync")
    probes = [json.loads(ln) for ln in shown.stderr.splitlines() if '"probe.finished"' in ln]
    if not probes or probes[-1].get("result") != "unchanged":
        raise RuntimeError(f"the benchmark's check was not a skipped cycle: {probes}")
    # `check` keeps the settings it resolved (docs/probe.md): its warm-up run leaves them for
    # the measured ones, as a user's earlier check does. Without a cache folder (a file stands
    # where it would go) every check builds the settings: the second row.
    no_cache = {**env, "XDG_CACHE_HOME": str(synced / "not-a-cache-folder")}
    (synced / "not-a-cache-folder").write_text("")
    cases = [
        ("--version", [str(exe), "--version"], None, "pg-schema-sync", env),
        ("--help", [str(exe), "--help"], None, "usage: pg-schema-sync", env),
        ("check", [str(exe), "check"], synced, "in sync: no drift", env),
        (NO_CACHE, [str(exe), "check"], synced, "in sync: no drift", no_cache),
    ]
    yard = [psql, "--version"]
    for name, argv, cwd, expect, case_env in cases:
        row = StartupRow(name, GOALS.get(name))
        _check(run(argv, case_env, cwd), name, expect)  # warm-up: bytecode and page cache
        run(yard, env)
        for _ in range(runs):
            ours = run(argv, case_env, cwd)
            _check(ours, name, expect)
            row.ours.append(ours.wall_s)
            row.cpu.append(ours.cpu_s)
            row.yardstick.append(run(yard, env).wall_s)
        figures.rows.append(row)
    uv = shutil.which("uv") if uv_run else None
    if uv is not None:
        argv = [uv, "run", "--frozen", "--project", str(Path(__file__).parent.parent)]
        argv += ["pg-schema-sync", "--version"]
        run(argv, env)
        times = [run(argv, env).wall_s for _ in range(max(3, runs // 3))]
        figures.uv_run_version_s = statistics.median(times)
    return figures


def markdown(f: StartupFigures) -> list[str]:
    out = [
        "## Start-up (issue 22)",
        "",
        f"Measured: the installed entry point `{_short(f.entry_point)}` (what `uv tool "
        "install`, pip and the container image install), bytecode cached; the yardstick is "
        f"`{_short(f.yardstick)}`, run in turn with each of ours. `check` is a skipped cycle "
        f"(the probe found nothing changed) at S = {f.scale:,}. Wall: median of "
        f"{len(f.rows[0].ours) if f.rows else 0} runs; *x psql*: the median of the per-pair "
        "ratios.",
        "",
        "| command | wall (s) | min-max | CPU (s) | psql --version (s) | x psql | goal | verdict |",
        "|---|---:|---|---:|---:|---:|---|---|",
    ]
    for r in f.rows:
        spread = f"{min(r.ours):.3f}-{max(r.ours):.3f}"
        goal = f"≤ {r.goal_s:g} s" if r.goal_s else "-"
        verdict = "-" if r.goal_s is None else ("**pass**" if r.wall <= r.goal_s else "**FAIL**")
        out.append(
            f"| `{r.command}` | {r.wall:.3f} | {spread} | {statistics.median(r.cpu):.3f} | "
            f"{statistics.median(r.yardstick):.3f} | {r.ratio:.1f}x | {goal} | {verdict} |"
        )
    if f.uv_run_version_s is not None:
        version = next((r for r in f.rows if r.command == "--version"), None)
        extra = f" ({f.uv_run_version_s - version.wall:+.2f} s)" if version else ""
        out += [
            "",
            f"`uv run --frozen pg-schema-sync --version` takes {f.uv_run_version_s:.2f} s"
            f"{extra}: uv checks the environment against the lock file before it starts the "
            "command. Time the installed command, not `uv run`.",
        ]
    if f.note:
        out += ["", f.note]
    return [*out, ""]


def _short(path: str) -> str:
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return path.replace(root, "")
