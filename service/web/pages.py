"""Pure: the pages, rendered from plain data with Jinja2 templates that escape everything.

Autoescaping is on for every template (not chosen by file name), and undefined names fail
instead of rendering empty. Names and diffs come from production: besides HTML escaping,
control and bidirectional-override characters are shown as `\\x1b`-style text (the same
`visible` the terminal and sync-summary.md use). The only markup built outside a template is
a diff's line colouring (each line escaped by markupsafe) and the rendered summary
(summary.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from service.compare.escape import terminal_lines, visible
from service.disk.history import ItemRecord, RunRecord
from service.logs import redact
from service.settings.links import backup_path, file_path, target_path
from service.web.chart import Chart, svg, timeline
from service.web.model import BackupRow, Status, TargetStatus

OVERVIEW_BACKUPS = 5  # the overview lists the newest few; the target's page lists them all
# The overview's diffs, shared by its targets (each gets at least OVERVIEW_DIFF_MIN); a
# target's own page shows every diff the history keeps. 100 targets must stay one page.
OVERVIEW_DIFF_CHARS = 250_000
OVERVIEW_DIFF_MIN = 8_000
SEVERITY = {"breaking": 0, "behavioural": 1, "compatible": 2, "cosmetic": 3}


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("service.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when, name=_name, diff=diff_html, secretless=_secretless, plural=_plural
    )
    env.globals.update(
        target_path=target_path,
        backup_path=backup_path,
        file_path=file_path,
        chart_of=chart_of,
        chart_svg=chart_svg,
        section=section,
        shown_items=shown_items,
    )
    return env


@dataclass(frozen=True)
class Shown:
    item: ItemRecord
    diff: bool  # its diff is on this page (the overview leaves out what passes its budget)


def shown_items(items: Sequence[ItemRecord], budget: int | None) -> list[Shown]:
    """Breaking first when impacts are known (stable otherwise), diffs within `budget`."""
    ordered = sorted(items, key=lambda i: SEVERITY.get(i.impact or "", 9))
    out, room = [], budget
    for item in ordered:
        fits = room is None or len(item.diff) <= room
        if room is not None and fits:
            room -= len(item.diff)
        out.append(Shown(item, fits))
    return out


_sections: dict[tuple[object, ...], tuple[TargetStatus, tuple[BackupRow, ...], int, Markup]] = {}


def section(
    t: TargetStatus,
    rows: list[BackupRow],
    overview: bool,
    backup_limit: int | None,
    diff_budget: int | None,
    titles: bool,
) -> Markup:
    """One target's section, rendered again only when something it shows changed: its status
    (a frozen value; its history compares by identity first, and each run replaces it) or
    the backups it lists (the listing keeps the same row objects while a backup is
    unchanged). A fleet's page re-renders the few targets that ran, not all of them."""
    key = (t.name, overview, backup_limit, diff_budget, titles)
    shown = tuple(rows[-backup_limit:] if backup_limit else rows)
    cached = _sections.get(key)
    if (
        cached is not None
        and cached[2] == len(rows)
        and len(cached[1]) == len(shown)
        and all(a is b for a, b in zip(cached[1], shown, strict=True))
        and cached[0] == t
    ):
        return cached[3]
    macro = environment().get_template("_target.html").module.target  # type: ignore[attr-defined]
    html = Markup(macro(t, rows, overview, backup_limit, diff_budget, titles))  # noqa: S704
    if len(_sections) > 10_000:
        _sections.clear()
    _sections[key] = (t, shown, len(rows), html)
    return html


def index(status: Status, backups: dict[str, list[BackupRow]], etag: str) -> str:
    return _render(
        "index.html",
        etag=etag,
        status=status,
        backups=backups,
        overview=True,
        backup_limit=OVERVIEW_BACKUPS,
        diff_budget=max(OVERVIEW_DIFF_CHARS // max(len(status.targets), 1), OVERVIEW_DIFF_MIN),
        title="Status",
    )


def target_page(status: Status, target: TargetStatus, backups: list[BackupRow], etag: str) -> str:
    return _render(
        "target.html",
        etag=etag,
        status=status,
        target=target,
        backups={target.name: backups},
        overview=False,
        backup_limit=None,
        diff_budget=None,
        title=target.name,
    )


def backup_page(
    status: Status, row: BackupRow, summary: str | None, clipped: bool, etag: str
) -> str:
    return _render(
        "backup.html",
        etag=etag,
        status=status,
        row=row,
        summary=Markup(summary) if summary is not None else None,  # noqa: S704 - summary.py
        clipped=clipped,
        title=f"{row.target} {row.name}",
    )


def error_page(status: Status | None, code: int, message: str) -> str:
    return _render(
        "error.html", status=status, code=code, message=message, title=str(code), etag=None
    )


def _render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(now=datetime.now(UTC), **context)


# -- filters ----------------------------------------------------------------------------------


CACHED_DIFF_CHARS = 20_000  # diffs up to this size are kept rendered (1,024 of them at most)


def diff_html(text: str) -> Markup:
    """A unified diff, each line in a span whose class says added, removed or hunk. Small
    diffs are kept rendered: a drift's diffs are the same from one page view to the next,
    and the cache stays within ~30 MB however large a drift."""
    return _diff_cached(text) if len(text) <= CACHED_DIFF_CHARS else _diff_html(text)


@lru_cache(maxsize=1024)
def _diff_cached(text: str) -> Markup:
    return _diff_html(text)


def _diff_html(text: str) -> Markup:
    out = []
    for line in str(escape(terminal_lines(text.removesuffix("\n")))).split("\n"):
        first = line[:1]
        if line.startswith(("---", "+++")):
            css = "meta"
        elif first == "+":
            css = "add"
        elif first == "-":
            css = "del"
        elif line.startswith("@@"):
            css = "hunk"
        else:
            css = "ctx"
        # The line break inside the block: copying the diff keeps its lines, and no empty
        # line shows between two blocks.
        out.append(f'<span class="{css}">{line}\n</span>')
    return Markup("".join(out))  # noqa: S704 - the whole text escaped above


_charts: dict[int, tuple[object, Chart, dict[bool, Markup]]] = {}


def chart_of(runs: tuple[RunRecord, ...]) -> Chart:
    """The timeline of a target's cycles, computed again only when they changed (each run
    replaces the history's tuple, so its identity says whether it changed)."""
    return _chart_entry(runs)[1]


def chart_svg(runs: tuple[RunRecord, ...], titles: bool) -> Markup:
    drawn = _chart_entry(runs)[2]
    if titles not in drawn:
        drawn[titles] = svg(chart_of(runs), titles)
    return drawn[titles]


def _chart_entry(runs: tuple[RunRecord, ...]) -> tuple[object, Chart, dict[bool, Markup]]:
    cached = _charts.get(id(runs))
    if cached is None or cached[0] is not runs:
        if len(_charts) > 4096:
            _charts.clear()
        cached = _charts[id(runs)] = (runs, timeline(runs), {})
    return cached


@lru_cache(maxsize=16_384)  # the same few times, page after page
def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _name(value: str) -> str:
    """An object's name on one line: control characters written out (autoescape does HTML)."""
    return visible(value)


def _secretless(value: str | None) -> str:
    """Error texts: anything that looks like a password removed, controls shown."""
    return visible(redact(value), keep="\n\t") if value else ""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
