"""Pure: the timeline of the last cycles as bars for an inline SVG (no script, no library).

One bar per cycle, the newest at the right edge (a short history fills from the right, as
the cycles come). Its height grows with the cycle's drift (on a log
scale, so one change is visible beside a thousand); a failed cycle is a full-height bar of
its own colour, a cycle with no drift a short one (full read or skipped by the probe).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from service.disk.history import RunRecord

WIDTH = 600
HEIGHT = 48
BASE = 3.0  # a cycle without drift: a stub, so the cadence of the cycles still shows
GAP = 1.0
MAX_STEP = 12.0  # a bar's widest: two cycles are two bars, not two halves of the chart


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str  # drift | clean | skipped | failed | first
    title: str  # the tooltip: when, what, how much


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    most: int  # the largest drift drawn (the scale's top)
    summary: str  # for aria-label: what a screen reader says instead of the bars


def timeline(runs: Sequence[RunRecord], width: int = WIDTH, height: int = HEIGHT) -> Chart:
    if not runs:
        return Chart(width, height, (), 0, "no cycles yet")
    step = min(width / len(runs), MAX_STEP)
    left = width - step * len(runs)
    most = max((r.drift for r in runs), default=0)
    bars = []
    for i, run in enumerate(runs):
        h, css = _height(run, most, height)
        bars.append(
            Bar(
                x=round(left + i * step, 2),
                y=round(height - h, 2),
                width=round(max(step - GAP, 1.0), 2),
                height=round(h, 2),
                css=css,
                title=_title(run),
            )
        )
    failed = sum(r.kind == "failed" for r in runs)
    drifted = sum(r.drift > 0 for r in runs)
    summary = f"{len(runs)} cycles: {drifted} with drift, {failed} failed"
    return Chart(width, height, tuple(bars), most, summary)


def _height(run: RunRecord, most: int, height: int) -> tuple[float, str]:
    if run.kind == "failed":
        return float(height), "failed"
    if run.first_run:
        return BASE, "first"
    if run.drift > 0:
        share = math.log1p(run.drift) / math.log1p(max(most, 1))
        return max(BASE * 2, share * height), "drift"
    return BASE, "skipped" if run.kind == "skipped" else "clean"


def _title(run: RunRecord) -> str:
    when = run.at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    if run.kind == "failed":
        held = f", {run.drift} changes held back" if run.drift else ""
        return f"{when}: failed ({run.cause or 'error'}){held}"
    if run.first_run:
        return f"{when}: first sync"
    what = "skipped (catalog unchanged)" if run.kind == "skipped" else "full sync"
    noun = "change" if run.drift == 1 else "changes"
    return f"{when}: {what}, {run.drift} {noun}"


def svg(chart: Chart, titles: bool = True) -> Markup:
    """The chart as inline SVG markup: one <rect> per bar with its tooltip, or (titles=False,
    for an overview of many targets) one <path> per kind of bar, a few elements instead of
    hundreds. Built here rather than in a template loop: at 100 targets x 100 cycles that
    loop was most of the page's render time. Every text is escaped; the rest are numbers."""
    head = (
        f'<svg class="timeline" viewBox="0 0 {chart.width} {chart.height}" '
        f'width="{chart.width}" height="{chart.height}" role="img" '
        f'aria-label="{escape(chart.summary)}">'
    )
    if titles:
        body = "".join(
            f'<rect x="{b.x:g}" y="{b.y:g}" width="{b.width:g}" height="{b.height:g}" '
            f'class="{b.css}"><title>{escape(b.title)}</title></rect>'
            for b in chart.bars
        )
    else:
        paths: dict[str, list[str]] = {}
        for b in chart.bars:
            paths.setdefault(b.css, []).append(
                f"M{b.x:g} {b.y:g}h{b.width:g}v{b.height:g}h{-b.width:g}z"
            )
        body = "".join(f'<path class="{css}" d="{"".join(d)}"/>' for css, d in paths.items())
    return Markup(head + body + "</svg>")  # noqa: S704 - numbers and escaped text only
