"""Where people see what a drift means: `check` (text, --json, --fail-on), sync-summary.md,
the webhooks, Sentry, the `drift.detected` log event and the git commit message; with
object names an attacker wrote, which stay text in every one of them."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import structlog
from pytest_httpserver import HTTPServer

from service.compare.drift import Drift, compare
from service.compare.levels import Impact
from service.compare.report import SummaryFacts, render_summary
from service.daemon.alerting import Alerts
from service.daemon.alerts import AlertState
from service.daemon.messages import drift_event, render
from service.delivery.message import CommitFacts, sync_message
from service.production.catalog import load_inventory
from service.production.db import connect
from tests.conftest import Database, run_cli
from tests.inproc import in_process
from tests.test_alerts import envelopes
from tests.test_hostile_names import ESCAPES, HEADING, IMAGE, SCRIPT, TICKS, _outside_code, _quote

AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_check_fails_only_at_or_above_fail_on_and_lists_the_worst_first(
    db: Database, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # (gone and v differ: were they alike, dropping one and renaming the other would leave
    # two candidates for one rename, and a rename is never guessed)
    db.sql("CREATE TABLE t (id int); CREATE TABLE gone (x text); CREATE TABLE v (id int)")
    env = {"SCHEMA_SYNC_DSN": db.dsn}
    assert in_process(["sync"], tmp_path, env, capfd).code == 0
    db.sql("ALTER TABLE t ADD COLUMN note text; COMMENT ON TABLE t IS 'x'")

    def check(*args: str) -> Any:
        return in_process(["check", *args], tmp_path, env, capfd)

    additive = check()
    assert additive.code == 1  # the default, `any`: every drift fails, as before --fail-on
    assert additive.out.splitlines() == [
        "drift: 1 change (1 compatible)",
        "  compatible  changed  table public.t: column note added; comment added",
    ]
    tolerant = check("--fail-on", "breaking")
    assert tolerant.code == 0, tolerant.out  # a CI gate that lets additive drift through
    assert "not failing: no change is breaking or worse (--fail-on)" in tolerant.out
    assert check("--fail-on", "behavioural").code == 0
    assert check("--fail-on", "compatible").code == 1

    db.sql("DROP TABLE gone; ALTER TABLE v RENAME TO w")
    breaking = check("--fail-on", "breaking")
    assert breaking.code == 1
    assert breaking.out.splitlines() == [
        "drift: 3 changes (2 breaking, 1 compatible)",
        "  breaking    removed  table public.gone",
        "  breaking    renamed  table public.w (from public.v)",
        "  compatible  changed  table public.t: column note added; comment added",
    ]
    doc = check("--json", "--fail-on", "breaking")
    assert doc.code == 1
    assert doc.json()["headline"] == "3 changes (2 breaking, 1 compatible)"
    assert doc.json()["impact"] == {"breaking": 2, "compatible": 1}
    renamed = doc.json()["changes"][1]
    assert renamed == {
        "kind": "table",
        "name": "public.w",
        "change": "renamed",
        "impact": "breaking",
        "reasons": ["table public.v renamed to public.w"],
        "from": "public.v",
    }
    wrong = run_cli("check", "--fail-on", "sometimes", cwd=tmp_path, env=env)
    assert wrong.code == 2 and "invalid choice: 'sometimes'" in wrong.err
    assert "Traceback" not in wrong.err


# -- hostile names in every format -------------------------------------------------------------

QUOTED_HEADING, QUOTED_TICKS = _quote(HEADING), _quote(TICKS)


@pytest.fixture
def hostile_drift(db: Database) -> Drift:
    """A real compare of objects named to inject markdown, HTML, escapes and newlines: a
    column renamed (the reason names both), a table renamed, a column dropped."""
    db.sql(
        f"CREATE TABLE public.{QUOTED_HEADING} (id int, {QUOTED_TICKS} text, {_quote(SCRIPT)} int);"
        f"CREATE TABLE public.{_quote(IMAGE)} (id int)"
    )

    async def read() -> Any:
        conn = await connect(db.conninfo)
        try:
            return await load_inventory(conn)
        finally:
            await conn.close()

    before = asyncio.run(read())
    db.sql(
        f"ALTER TABLE public.{QUOTED_HEADING} RENAME COLUMN {QUOTED_TICKS} TO {_quote(ESCAPES)};"
        f"ALTER TABLE public.{_quote(IMAGE)} RENAME TO {_quote('x' + ESCAPES)}"
    )
    after = asyncio.run(read())
    return compare(before, after)


def test_hostile_names_are_renamed_and_said_exactly_in_json(hostile_drift: Drift) -> None:
    doc = hostile_drift.as_json()
    assert doc["impact"] == {"breaking": 2}
    by_change = {c["change"]: c for c in doc["changes"]}
    assert by_change["changed"]["reasons"] == [
        f"column {QUOTED_TICKS} renamed to {_quote(ESCAPES)}"
    ]
    assert by_change["renamed"]["from"] == f"public.{_quote(IMAGE)}"
    assert by_change["renamed"]["name"] == f"public.{_quote('x' + ESCAPES)}"


def test_hostile_names_stay_text_in_the_summary_the_terminal_and_the_commit(
    hostile_drift: Drift, capfd: pytest.CaptureFixture[str]
) -> None:
    facts = SummaryFacts(AT, "run", "db", "15", "15", {"table": 2}, hostile_drift, False, {})
    summary = render_summary(facts)
    assert "\x1b" not in summary
    rendered = _outside_code(summary)
    headings = [ln for ln in rendered.split("\n") if ln.lstrip().startswith("#")]
    assert all(h.startswith(("# Schema sync", "## ", "### ", "#### ")) for h in headings)
    assert not any("Injected" in h for h in headings), headings
    for raw in ("![", "<script", "**bold**"):
        assert raw not in rendered, raw
    assert "### Breaking (2)" in summary
    assert "\\x1b[31mred" in summary and "x\\n# Injected heading\\n" in summary

    from service.cli.common import emit_drift

    capfd.readouterr()
    assert emit_drift(hostile_drift, False, False) == 1
    out = capfd.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    lines = out.splitlines()
    assert len(lines) == 3 and all(ln.startswith("  breaking ") for ln in lines[1:]), lines
    assert "\\x1b[2J" in out  # shown, not obeyed

    facts_git = CommitFacts("default", "db", "b", None)
    message = sync_message(facts_git, hostile_drift, False, 2)
    assert message.startswith("schema drift: 2 breaking\n\n")
    assert "\x1b" not in message and "\n# Injected" not in message


def test_hostile_names_stay_text_in_every_webhook(hostile_drift: Drift) -> None:
    event = drift_event("app", "db", hostile_drift, hostile_drift.fingerprint(), None, AT)
    slack = json.loads(render("slack", event))
    assert slack["text"] == "Schema drift on app: 2 changes (2 breaking); files refreshed"
    for block in slack["blocks"]:  # names and reasons only ever in plain_text
        for obj in [block.get("text"), *block.get("elements", [])]:
            if obj is not None:
                assert obj["type"] == "plain_text" and obj["emoji"] is False
    body = slack["blocks"][1]["text"]["text"]
    assert body.count("\n") == 1  # two lines: a newline in a name does not make a third
    assert body.startswith("breaking: ")
    card = json.loads(render("teams", event))["attachments"][0]["content"]
    assert card["body"][0]["inlines"][0]["color"] == "Attention"  # breaking: red
    kinds = {b["type"] for b in card["body"]} | {
        i["type"] for b in card["body"] for i in b["inlines"]
    }
    assert kinds == {"RichTextBlock", "TextRun"}
    document = json.loads(render("json", event))
    changes = document["drift"]["changes"]
    assert [c["impact"] for c in changes] == ["breaking", "breaking"]
    assert any(c["from"] == f"public.{_quote(IMAGE)}" for c in changes)
    assert any(ESCAPES in r for c in changes for r in c["reasons"])  # exact: JSON escapes it


def test_sentry_hears_a_breaking_drift_as_an_error_and_the_log_says_why(
    hostile_drift: Drift, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/1/envelope/", method="POST").respond_with_json({"id": "x"})
    alerts = Alerts("default", "db", 3)
    alerts.start_sentry(f"http://public@127.0.0.1:{httpserver.port}/1", "test")
    first = hostile_drift.items[0]
    additive = Drift((replace(first, impact=Impact.COMPATIBLE, reasons=("column c added",)),))
    try:
        with structlog.testing.capture_logs() as logs:
            state = alerts.succeeded(
                AlertState(), hostile_drift, False, None, structlog.get_logger()
            )
            alerts.succeeded(state, additive, False, None, structlog.get_logger())
    finally:
        alerts.close(10)
        sentry_sdk.init()  # no DSN: the SDK is off again for the rest of the session
    events = [e for _, evs in envelopes(httpserver) for e in evs]
    assert [e["level"] for e in events] == ["error", "warning"]
    assert events[0]["message"] == "Schema drift on db: 2 changes (2 breaking); files refreshed"
    assert events[0]["tags"]["drift_impact"] == "breaking"
    assert events[0]["contexts"]["drift"]["impact"] == {"breaking": 2}
    assert events[1]["message"] == "Schema drift on db: 1 change (1 compatible); files refreshed"
    detected = [e for e in logs if e["event"] == "drift.detected"]
    assert [e["impact"] for e in detected] == ["breaking", "breaking", "compatible"]
    renamed = [e for e in detected if e["change"] == "renamed"]
    assert renamed and renamed[0]["from"] == f"public.{_quote(IMAGE)}"
    assert (
        renamed[0]["reasons"] == [renamed[0]["reasons"][0]]
        and "renamed to" in (renamed[0]["reasons"][0])
    )
