"""Pure: a sync's facts in, the text of sync-summary.md out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from service.compare.drift import Drift, DriftItem
from service.compare.escape import md_code, md_fenced
from service.compare.levels import ORDER


@dataclass(frozen=True)
class SummaryFacts:
    when: datetime
    run_id: str
    source: str  # host/port/database, never a password
    server_version: str
    pg_dump_version: str
    counts: Mapping[str, int]
    drift: Drift
    first_run: bool
    file_hashes: Mapping[str, str]  # file name -> sha256


def render_summary(facts: SummaryFacts) -> str:
    lines = [
        f"# Schema sync {facts.when.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}",
        "",
        "| | |",
        "|---|---|",
        f"| Source | {md_code(facts.source, in_table=True)} |",
        f"| Server | PostgreSQL {facts.server_version} |",  # numbers we formatted ourselves
        f"| pg_dump | {facts.pg_dump_version} |",
        f"| Run | {md_code(facts.run_id, in_table=True)} |",
        "",
        "## Objects",
        "",
        "| kind | count |",
        "|---|---:|",
        *(f"| {kind} | {n} |" for kind, n in sorted(facts.counts.items())),  # our own words
        f"| **total** | **{sum(facts.counts.values())}** |",
        "",
    ]
    lines += _drift_section(facts)
    lines += ["## Files", "", "| file | sha256 |", "|---|---|"]
    lines += [
        f"| {md_code(name, in_table=True)} | `{digest}` |"
        for name, digest in sorted(facts.file_hashes.items())
    ]
    return "\n".join(lines) + "\n"


def _drift_section(facts: SummaryFacts) -> list[str]:
    if facts.first_run:
        return ["## Drift", "", "First sync: there were no schema files to compare with.", ""]
    if not facts.drift:
        return ["## Drift", "", "None: production matches the schema files.", ""]
    drift = facts.drift
    out = ["## Drift", "", f"{drift.headline().capitalize()}.", ""]
    # Names and definitions come from production: anyone with CREATE writes them. Each name
    # (and each reason, which names columns and roles) is an inline code span on one line,
    # each diff a fence its text cannot close, so no name or body becomes a heading, an image
    # or HTML in a markdown viewer.
    out += [f"- {i.impact.value}: {_title(i, ' ')}" for i in drift.worst_first()]
    out.append("")
    for level in ORDER:  # a section per impact level, the worst first
        items = [i for i in drift.worst_first() if i.impact is level]
        if not items:
            continue
        out += [f"### {level.value.capitalize()} ({len(items)})", ""]
        for item in items:
            out += [f"#### {_title(item)}", ""]
            out += [f"- {md_code(reason)}" for reason in item.reasons]
            out += ["", *md_fenced(item.diff, "diff"), ""]
    return out


def _title(item: DriftItem, after: str = ": ") -> str:
    """`renamed: table `app.b` (from `app.a`)`, names as code spans."""
    was = f" (from {md_code(item.from_name)})" if item.from_name is not None else ""
    return f"{item.change.value}{after}{item.kind} {md_code(item.name)}{was}"
