"""What a webhook says: one alert event, rendered as Slack blocks, a Teams Adaptive Card or
signed generic JSON. Pure: no I/O, no clock (the caller passes the time), so every message a
user would see can be tested byte for byte.

Object names and error texts come from production (a quoted identifier may hold any
character), so they are never trusted as markup: Slack gets them escaped (`<!channel>` must not
ping a channel) or as plain_text, Teams as TextRuns (which render no markdown).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Any, Literal

from service import __version__
from service.compare.drift import Drift
from service.compare.escape import visible
from service.logs import scrub
from service.settings.targets import DEFAULT_NAME as DEFAULT_TARGET
from service.settings.webhooks import WebhookFormat

EventName = Literal["drift", "resolved", "failure", "recovered", "test"]
MAX_NAMES_JSON = 50  # as many as the Sentry event names
MAX_NAMES_CHAT = 20  # a chat message is read on a phone: the rest is in sync-summary.md
MAX_TEXT = 2_900  # Slack refuses a section over 3,000 characters
MAX_LINE = 200  # one object name; a 10 kB identifier must not crowd out the others
SIGNATURE_HEADER = "X-Schema-Sync-Signature"
TIMESTAMP_HEADER = "X-Schema-Sync-Timestamp"
EVENT_HEADER = "X-Schema-Sync-Event"
DELIVERY_HEADER = "X-Schema-Sync-Delivery"
LINK_TEXT = {
    "drift": "Show the diffs",
    "resolved": "Open the status page",
    "failure": "Open the status page",
    "recovered": "Open the status page",
    "test": "Open the status page",
}


@dataclass(frozen=True)
class Change:
    change: str  # added | removed | changed | renamed
    kind: str
    name: str
    impact: str = "breaking"  # breaking | behavioural | compatible | cosmetic
    reasons: tuple[str, ...] = ()  # names objects, columns, roles: never values or DDL
    from_name: str | None = None  # a rename's old name

    def line(self) -> str:
        """`breaking: changed table app.t: column b dropped`, one line, clipped."""
        was = f" (from {self.from_name})" if self.from_name is not None else ""
        said = {
            f"{self.kind} {self.change}",
            f"{self.kind} {self.from_name} renamed to {self.name}",
        }
        notes = "; ".join(r for r in self.reasons if r not in said)
        text = f"{self.impact}: {self.change} {self.kind} {self.name}{was}"
        # One line per object even when a name holds a line break: control characters are
        # written out, as on a terminal (the JSON document keeps names exact).
        return _clip(visible(text + (f": {notes}" if notes else "")), MAX_LINE)


@dataclass(frozen=True)
class AlertEvent:
    """One thing worth a message, in words; the same for every webhook format."""

    event: EventName
    target: str
    source: str  # host/database, never a password (ConnInfo.display)
    title: str
    at: datetime
    headline: str | None = None
    impact: dict[str, int] | None = None  # drift: items by impact, worst first
    changes: tuple[Change, ...] = ()
    total_changes: int = 0
    fingerprint: str | None = None
    backup: str | None = None
    commit: str | None = None  # the git commit of the refreshed files, when git delivery is on
    error: str | None = None
    cause: str | None = None
    failures: int | None = None
    held_because: str | None = None  # a drift whose files were not refreshed: why
    url: str | None = None  # the status page that shows it (public_url set)

    def details(self) -> list[tuple[str, str]]:
        """(label, value) lines shown under the title, in the order a reader wants them."""
        out = [("Target", self.target), ("Production", self.source)]
        if self.backup:
            out.append(("Backup", self.backup))
        if self.commit:
            out.append(("Commit", self.commit))
        if self.cause:
            out.append(("Cause", self.cause))
        if self.fingerprint:
            out.append(("Drift", self.fingerprint))
        return out


# -- the events ---------------------------------------------------------------------------------


def drift_event(
    target: str,
    source: str,
    drift: Drift,
    fingerprint: str,
    backup: str | None,
    at: datetime,
    commit: str | None = None,
    held_because: str | None = None,
    url: str | None = None,
) -> AlertEvent:
    # Names only, no DDL: function bodies can hold secrets, and the diff is in the backup.
    # The worst first: when the list is cut, what is kept is what breaks.
    changes = tuple(
        Change(i.change.value, i.kind, i.name, i.impact.value, i.reasons, i.from_name)
        for i in drift.worst_first()[:MAX_NAMES_JSON]
    )
    note = files_note(PurePath(backup).name if backup else None, commit, held_because)
    return AlertEvent(
        "drift",
        target,
        source,
        f"Schema drift on {_where(target, source)}: {drift.headline()}; {note}",
        at,
        headline=drift.headline(),
        impact=drift.impacts(),
        changes=changes,
        total_changes=len(drift),
        fingerprint=fingerprint,
        backup=backup,
        commit=commit,
        held_because=held_because,
        url=url,
    )


def files_note(backup: str | None, commit: str | None, held_because: str | None) -> str:
    """What the daemon did with the files: `files refreshed (backup B, commit C)`, or why not."""
    if held_because:
        return f"files not refreshed ({held_because})"
    done = [f"backup {backup}" if backup else "", f"commit {commit[:12]}" if commit else ""]
    shown = ", ".join(d for d in done if d)
    return f"files refreshed ({shown})" if shown else "files refreshed"


def resolved_event(
    target: str, source: str, fingerprint: str | None, at: datetime, url: str | None = None
) -> AlertEvent:
    title = f"Schema drift resolved on {_where(target, source)}: production matches the files"
    return AlertEvent("resolved", target, source, title, at, fingerprint=fingerprint, url=url)


def failure_event(
    target: str,
    source: str,
    error: str,
    cause: str,
    failures: int,
    at: datetime,
    url: str | None = None,
) -> AlertEvent:
    title = f"Schema sync failing on {_where(target, source)}: {failures} times in a row"
    return AlertEvent(
        "failure", target, source, title, at, error=error, cause=cause, failures=failures, url=url
    )


def recovered_event(
    target: str, source: str, failures: int, at: datetime, url: str | None = None
) -> AlertEvent:
    title = f"Schema sync recovered on {_where(target, source)} after {failures} failures"
    return AlertEvent("recovered", target, source, title, at, failures=failures, url=url)


def test_event(target: str, source: str, at: datetime) -> AlertEvent:
    title = f"Test message from pg-schema-sync: alerts for {target} reach this channel"
    return AlertEvent("test", target, source, title, at)


# -- the formats ----------------------------------------------------------------------------------


def render(fmt: WebhookFormat, event: AlertEvent) -> bytes:
    """The exact body sent: the format's document, scrubbed of secrets, as compact JSON."""
    builders = {"slack": slack_payload, "teams": teams_payload, "json": json_payload}
    document = scrub(builders[fmt](event))
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def slack_payload(event: AlertEvent) -> dict[str, Any]:
    """Slack incoming webhook: `text` (notifications, mrkdwn, escaped) and Block Kit blocks."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(_clip(_one_line(event.title), 150))},
    ]
    body = _body_lines(event)
    if body:
        blocks.append({"type": "section", "text": _plain(_clip("\n".join(body), MAX_TEXT))})
    if event.url:
        # mrkdwn for the link only: the URL is ours (public_url + quoted names), and escaped.
        link = f"<{slack_escape(event.url)}|{LINK_TEXT[event.event]}>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": link}})
    facts = [f"{label}: {value}" for label, value in event.details()]
    blocks.append({"type": "context", "elements": [_plain(_clip(f, MAX_LINE)) for f in facts[:10]]})
    return {"text": slack_escape(_one_line(event.title)), "blocks": blocks}


def teams_payload(event: AlertEvent) -> dict[str, Any]:
    """Teams Workflows ("Send webhook alerts to a channel") / incoming webhook: a message with
    one Adaptive Card attachment (version 1.4; Teams renders up to 1.5)."""
    color = {"drift": "Warning", "failure": "Attention", "resolved": "Good", "recovered": "Good"}
    if event.event == "drift" and (event.impact or {}).get("breaking"):
        color["drift"] = "Attention"  # red: something that works now can fail
    body: list[dict[str, Any]] = [
        {
            "type": "RichTextBlock",
            "inlines": [
                _run(
                    _one_line(event.title),
                    weight="Bolder",
                    size="Medium",
                    color=color.get(event.event, "Default"),
                )
            ],
        },
    ]
    # One RichTextBlock per fact rather than a FactSet: fact values render markdown, TextRuns
    # do not, and the values (target, host, error) are not ours to format.
    for label, value in event.details():
        body.append(
            {
                "type": "RichTextBlock",
                "spacing": "None",
                "inlines": [_run(f"{label}: ", weight="Bolder"), _run(_one_line(value))],
            }
        )
    lines = _body_lines(event)
    if lines:
        body.append(
            {
                "type": "RichTextBlock",
                "inlines": [_run(_clip("\n".join(lines), MAX_TEXT), fontType="Monospace")],
            }
        )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    }
    if event.url:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": LINK_TEXT[event.event], "url": event.url}
        ]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def json_payload(event: AlertEvent) -> dict[str, Any]:
    """The generic document: stable keys, version 1; null where a field does not apply."""
    drift = None
    if event.event == "drift":
        drift = {
            "fingerprint": event.fingerprint,
            "headline": event.headline,
            "impact": event.impact or {},
            "changes": [
                {
                    "change": c.change,
                    "kind": c.kind,
                    "name": c.name,
                    "impact": c.impact,
                    "reasons": list(c.reasons),
                    "from": c.from_name,
                }
                for c in event.changes
            ],
            "more": event.total_changes - len(event.changes),
            "backup": event.backup,
            "summary": f"{event.backup}/sync-summary.md" if event.backup else None,
            "files": "held" if event.held_because else "refreshed",
            "held_because": event.held_because,
        }
    failure = None
    if event.event == "failure":
        failure = {
            "error": event.error,
            "cause": event.cause,
            "consecutive_failures": event.failures,
        }
    return {
        "version": 1,
        "event": event.event,
        "target": event.target,
        "source": event.source,
        "title": event.title,
        "at": event.at.isoformat(),
        "drift": drift,
        "resolved_fingerprint": event.fingerprint if event.event == "resolved" else None,
        "failure": failure,
        "after_failures": event.failures if event.event == "recovered" else None,
        "commit": event.commit,
        "url": event.url,
        "sender": f"pg-schema-sync/{__version__}",
    }


# -- signing (generic JSON) -----------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>." + body): the receiver recomputes it
    over the raw body bytes and rejects old timestamps, so a captured request cannot be
    replayed later and a changed body or timestamp does not verify."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: str, body: bytes, header: str, now: int, tolerance_s: int = 300
) -> bool:
    """What a receiver does (also documented in docs/webhooks.md): fresh timestamp, equal MAC."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, ts, body), header)


# -- helpers ------------------------------------------------------------------------------------


def _where(target: str, source: str) -> str:
    """The unnamed single target is known by its database; a named one by its name."""
    return source if target == DEFAULT_TARGET else target


def _body_lines(event: AlertEvent) -> list[str]:
    if event.event == "drift":
        # As many names as fit, then a line saying how many are left and where they are: the
        # count must never be the part that is cut off.
        where = f" in {_clip(event.backup, MAX_LINE)}/sync-summary.md" if event.backup else ""
        room = MAX_TEXT - len(f"... and {event.total_changes} more{where}") - 1
        lines: list[str] = []
        for change in event.changes[:MAX_NAMES_CHAT]:
            line = change.line()
            if sum(len(x) + 1 for x in lines) + len(line) > room:
                break
            lines.append(line)
        if event.total_changes > len(lines):
            lines.append(f"... and {event.total_changes - len(lines)} more{where}")
        return lines
    if event.event == "failure" and event.error:
        return [_clip(event.error, 1_000)]
    return []


def slack_escape(text: str) -> str:
    """Slack's three control characters: with them escaped, `<!channel>` or `<url|text>` in an
    object name shows as text instead of pinging a channel or hiding a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str) -> dict[str, Any]:
    # plain_text is never parsed for mentions or links; emoji off keeps `:x:` in names literal.
    return {"type": "plain_text", "text": text or " ", "emoji": False}


def _run(text: str, **style: str) -> dict[str, Any]:
    return {"type": "TextRun", "text": text, **style}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
