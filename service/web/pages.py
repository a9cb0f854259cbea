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
from service.disk.history import ItemRecord
from service.logs import redact
from service.settings.links import backup_path, file_path, target_path
from service.web.chart import timeline
from service.web.model import BackupRow, Status, TargetStatus

OVERVIEW_BACKUPS = 5  # the overview lists the newest few; the target's page lists them all
OVERVIEW_DIFF_CHARS = 200_000  # per target on the overview; the target's page shows all kept
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
        timeline=timeline,
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


def index(status: Status, backups: dict[str, list[BackupRow]], etag: str) -> str:
    return _render(
        "index.html",
        etag=etag,
        status=status,
        backups=backups,
        overview=True,
        backup_limit=OVERVIEW_BACKUPS,
        diff_budget=OVERVIEW_DIFF_CHARS,
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


def diff_html(text: str) -> Markup:
    """A unified diff, each line in a span whose class says added, removed or hunk."""
    out = []
    for line in terminal_lines(text).split("\n"):
        css = (
            "meta"
            if line.startswith(("---", "+++"))
            else "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else "hunk"
            if line.startswith("@@")
            else "ctx"
        )
        out.append(f'<span class="{css}">{escape(line)}</span>')
    return Markup("\n".join(out))  # noqa: S704 - every line escaped above


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
