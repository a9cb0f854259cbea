"""A plan as the SQL script stdout carries, and as JSON. Pure.

The script sets what pg_dump's scripts set (encoding, string syntax, an empty search_path:
every name in it is schema-qualified) and the lock and statement timeouts from the settings.
Statements that cannot run in a transaction block come before or after the transaction;
all the others run inside one BEGIN ... COMMIT. Each is preceded by a comment naming its
object (control characters written out: a name must not end the comment), its hazards,
its lock and why it is planned that way."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from service.compare.escape import visible
from service.plan.model import Part, Plan, Statement

SESSION = (
    "SET client_encoding = 'UTF8';",
    "SET standard_conforming_strings = on;",
    "SELECT pg_catalog.set_config('search_path', '', false);",
    "SET check_function_bodies = false;",
    "SET xmloption = content;",
    "SET client_min_messages = warning;",
    "SET row_security = off;",
)


@dataclass(frozen=True)
class Header:
    source: str  # FROM, as shown (no password)
    target: str  # TO, as shown
    verified: str  # "verified: ... converges", "not verified (--no-verify)", ...
    lock_timeout_ms: int
    statement_timeout_ms: int


def timeouts(header: Header) -> tuple[str, ...]:
    return (
        f"SET lock_timeout = '{header.lock_timeout_ms}ms';",
        f"SET statement_timeout = '{header.statement_timeout_ms}ms';",
    )


def script(plan: Plan, header: Header) -> str:
    lines = [
        "-- pg-schema-sync plan",
        f"-- from: {visible(header.source)}",
        f"-- to:   {visible(header.target)}",
        f"-- {visible(header.verified)}",
    ]
    if not plan.statements:
        return "\n".join([*lines, "-- nothing to do", ""])
    count = len(plan.statements)
    hazards = ", ".join(sorted(h.value for h in plan.hazards())) or "none"
    lines += [f"-- {count} statement{'s' if count != 1 else ''}; hazards: {hazards}"]
    if plan.column_order:
        tables = ", ".join(sorted(visible(t.split(" ", 1)[1]) for t in plan.column_order))
        lines.append(
            f"-- columns stay in another order than TO's in: {tables} (PostgreSQL adds a "
            "column at the end and cannot reorder them)"
        )
    lines += ["", *timeouts(header), *SESSION, ""]
    session: dict[str, str] = {}
    for part, title in (
        (Part.BEFORE, "before the transaction: these cannot run inside one"),
        (Part.TRANSACTION, None),
        (Part.AFTER, "after the transaction: these cannot run inside one"),
    ):
        statements = plan.part(part)
        if not statements:
            continue
        if title:
            lines += [f"-- {title}", ""]
        else:
            lines += ["BEGIN;", ""]
        for s in statements:
            lines += [comment(s), *session_lines(s, session), terminated(s.sql), ""]
        if not title:
            lines += ["COMMIT;", ""]
    return "\n".join(lines)


def session_lines(s: Statement, current: dict[str, str]) -> list[str]:
    out = []
    for name, value in s.session:
        if current.get(name) != value:
            current[name] = value
            out.append(f"SET {name} = {value};")
    return out


def comment(s: Statement) -> str:
    parts = [f"-- {visible(s.kind)} {visible(s.name)}: {s.change.value}"]
    if s.hazards:
        parts.append("hazards: " + ", ".join(sorted(h.value for h in s.hazards)))
    parts.append(f"lock: {s.lock}")
    if not s.transactional:
        parts.append("runs outside a transaction")
    if s.note:
        parts.append(visible(s.note))
    return "; ".join(parts)


def terminated(sql: str) -> str:
    """The statement with its semicolon (on its own line after a trailing line comment)."""
    last = sql.rsplit("\n", 1)[-1]
    return sql + ("\n;" if last.lstrip().startswith("--") else ";")


def as_json(plan: Plan, header: Header) -> dict[str, Any]:
    return {
        "from": header.source,
        "to": header.target,
        "verification": header.verified,
        "statements": [s.as_json() for s in plan.statements],
        "column_order": sorted(plan.column_order),
        "refusals": [r.line() for r in plan.refusals],
    }


def json_text(plan: Plan, header: Header) -> str:
    return json.dumps(as_json(plan, header), indent=1, ensure_ascii=False) + "\n"
