"""Pure: a sync's facts in, the text of sync-summary.md out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from service.compare.drift import Drift


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
        f"| Source | `{facts.source}` |",
        f"| Server | PostgreSQL {facts.server_version} |",
        f"| pg_dump | {facts.pg_dump_version} |",
        f"| Run | `{facts.run_id}` |",
        "",
        "## Objects",
        "",
        "| kind | count |",
        "|---|---:|",
        *(f"| {kind} | {n} |" for kind, n in sorted(facts.counts.items())),
        f"| **total** | **{sum(facts.counts.values())}** |",
        "",
    ]
    lines += _drift_section(facts)
    lines += ["## Files", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| `{name}` | `{digest}` |" for name, digest in sorted(facts.file_hashes.items())]
    return "\n".join(lines) + "\n"


def _drift_section(facts: SummaryFacts) -> list[str]:
    if facts.first_run:
        return ["## Drift", "", "First sync: there were no schema files to compare with.", ""]
    if not facts.drift:
        return ["## Drift", "", "None: production matches the schema files.", ""]
    out = ["## Drift", "", f"{facts.drift.headline().capitalize()}.", ""]
    out += [f"- {i.change.value} {i.kind} `{i.name}`" for i in facts.drift.items]
    out.append("")
    for item in facts.drift.items:
        out += [f"### {item.change.value}: {item.kind} `{item.name}`", "", "```diff"]
        out.append(item.diff.rstrip("\n"))
        out += ["```", ""]
    return out
