"""`plan` on the benchmark's drifted pair, beside migra on the same pair (issue 19).

Per scale and per run, in turn: `pg-schema-sync plan --no-verify BASE DRIFTED` (reading both
sides and planning), `pg-schema-sync plan BASE DRIFTED` (the same, then the proof: a scratch
copy of BASE made from its dump, the plan run on it, the result read back and compared), and
migra on the same pair. Correctness on every run: the plan changes exactly the three
generated objects, and the verified run says it converges. The verification's own seconds are
those the plan's header reports for it.

`python -m bench.plan --scales 1000,10000` measures alone and writes its section into
docs/benchmark.md (between its markers); `python -m bench` runs the same per scale.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import generate
from bench.measure import Sample, run
from service.demo.cluster import ScratchCluster

START, END = "<!-- plan:start -->", "<!-- plan:end -->"
_VERIFIED = re.compile(r"verified: applied to a scratch copy of FROM, it gives TO \(([\d.]+) s\)")


@dataclass
class PlanFigures:
    scale: int
    plan: list[Sample] = field(default_factory=list)  # --no-verify
    verified: list[Sample] = field(default_factory=list)  # with the proof
    proof_s: list[float] = field(default_factory=list)  # the proof's own seconds
    migra: list[Sample] = field(default_factory=list)
    statements: int = 0

    @staticmethod
    def median(samples: list[Sample]) -> float | None:
        return statistics.median(s.wall_s for s in samples) if samples else None


def _service(*args: str) -> list[str]:
    return [sys.executable, "-m", "service", *args]


def _planned(sample: Sample, scale: int, what: str) -> dict[str, object]:
    if sample.exit_code != 0:
        raise AssertionError(f"{what} failed (exit {sample.exit_code}): {sample.stderr[-800:]}")
    doc: dict[str, object] = json.loads(sample.stdout)
    statements = doc["statements"]
    assert isinstance(statements, list)
    objects = {(s["kind"], s["object"]) for s in statements}
    want = {(kind, name) for _, kind, name in generate.expected_changes(scale)}
    if objects != want:
        raise AssertionError(f"{what}: the plan changes {sorted(objects)}, expected {sorted(want)}")
    return doc


def measure(
    cluster: ScratchCluster,
    scale: int,
    base: str,
    drifted: str,
    migra: Path | None,
    scratch: Path,
    runs: int,
    env: dict[str, str],
) -> PlanFigures:
    fig = PlanFigures(scale)
    work = Path(tempfile.mkdtemp(prefix=f"bench-plan-{scale}-", dir=scratch))
    pair = (cluster.dsn(base), cluster.dsn(drifted))
    verify_env = {**env, "SCHEMA_SYNC_VERIFY_DSN": cluster.dsn("postgres")}
    try:
        for _ in range(runs):
            s = run(_service("plan", "--json", "--no-verify", *pair), env, cwd=work, probe=True)
            fig.statements = len(_planned(s, scale, "plan --no-verify")["statements"])  # type: ignore[arg-type]
            fig.plan.append(s)
            s = run(_service("plan", "--json", *pair), verify_env, cwd=work, probe=True)
            verification = str(_planned(s, scale, "plan")["verification"])
            found = _VERIFIED.search(verification)
            if found is None:
                raise AssertionError(f"plan was not verified: {verification}")
            fig.proof_s.append(float(found.group(1)))
            fig.verified.append(s)
            if migra is not None:
                s = run(
                    [str(migra), "--unsafe", *pair],
                    {**env, "PYTHONPATH": ""},
                    cwd=work,
                    tool="migra",
                )
                if s.exit_code != 2:
                    raise AssertionError(f"migra found no differences: {s.stderr[-400:]}")
                fig.migra.append(s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return fig


def markdown(figs: list[PlanFigures], note: str = "") -> str:
    lines = [
        START,
        "## plan: a migration between two schemas (issue 19)",
        "",
        "The benchmark's drifted pair (BASE -> DRIFTED: a column added, a function changed, an "
        "index dropped), planned by `pg-schema-sync plan` and by migra. *plan* reads both "
        "sides (pg_dump's archive of each, both catalogs) and plans; *plan + verification* "
        "also proves the plan (FROM's dump installed into a scratch database, the plan run on "
        "it with psql, the result read back and compared with TO); *verification* is that "
        "proof alone, as the plan's header reports it. Wall seconds, median of the runs; our "
        "RSS is the plan process's own peak.",
    ]
    if note:
        lines += ["", note]
    lines += [
        "",
        "| S | plan (s) | plan + verification (s) | verification (s) | migra (s) | plan / migra "
        "| statements | our RSS (MB) | runs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figs:
        plan, verified, migra = f.median(f.plan), f.median(f.verified), f.median(f.migra)
        proof = statistics.median(f.proof_s) if f.proof_s else None
        rss = max((s.ours_maxrss_kb or 0 for s in f.verified), default=0) / 1024
        ratio = f"{plan / migra:.2f}x" if plan and migra else "-"
        lines.append(
            f"| {f.scale:,} | {_s(plan)} | {_s(verified)} | {_s(proof)} | {_s(migra)} | "
            f"{ratio} | {f.statements} | {rss:.0f} | {len(f.plan)} |"
        )
    return "\n".join([*lines, END, ""])


def _s(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def write_section(doc: Path, section: str) -> None:
    """Put the section into benchmark.md in place of the previous one (or at its end)."""
    text = doc.read_text() if doc.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


def main(argv: list[str] | None = None) -> int:
    from bench import scaffold as bench_run

    p = argparse.ArgumentParser(prog="python -m bench.plan", description=__doc__)
    p.add_argument("--scales", default="1000,10000")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=bench_run.ROOT / "docs" / "benchmark.md")
    p.add_argument("--note", default="")
    p.add_argument("--no-migra", action="store_true")
    args = p.parse_args(argv)
    scales = [int(s) for s in args.scales.split(",")]
    migra, why = (None, "") if args.no_migra else bench_run.migra_bin(install=True)
    if why:
        bench_run.say(why)
    locks = max(128, 16 * max(scales) // 100)
    settings = {"max_locks_per_transaction": str(locks), "shared_buffers": "1GB"}
    scratch = Path(tempfile.mkdtemp(prefix="pg-schema-sync-bench-plan-"))
    figs = []
    try:
        with ScratchCluster(settings=settings) as cluster:
            env = bench_run.child_env(cluster)
            for scale in scales:
                bench_run.say(f"S={scale}: generating and loading")
                base, drifted, load_s = bench_run.load_scale(cluster, scale, scratch)
                bench_run.say(f"S={scale}: loaded in {load_s:.0f} s; planning {args.runs} runs")
                figs.append(measure(cluster, scale, base, drifted, migra, scratch, args.runs, env))
                for name in (base, drifted):
                    cluster.drop_database(name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    section = markdown(figs, args.note)
    write_section(args.out, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
