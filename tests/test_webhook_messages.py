"""What a webhook receiver sees: Slack blocks, a Teams card, signed JSON; and the settings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.compare.drift import Change, Drift, DriftItem
from service.compare.levels import Impact
from service.daemon.messages import (
    drift_event,
    failure_event,
    recovered_event,
    render,
    resolved_event,
    signature,
    verify_signature,
)
from service.daemon.webhooks import backoff_s, retry_after_s, retryable
from service.logs import register_secret
from service.settings.model import SettingsError, load_settings
from tests.doc_snippets import find

AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
SOURCE = "reader@db.internal:5432/app"


def documented_verifier() -> Callable[[bytes, dict[str, str], bytes], bool]:
    """The receiver's `verified` function exactly as docs/webhooks.md shows it (a run mark)."""
    snippet = find("def verified(")
    assert snippet.page == "docs/webhooks.md" and snippet.language == "python"
    scope: dict[str, Any] = {}
    exec(snippet.code, scope)  # noqa: S102 -- our own docs, run as a reader would
    return scope["verified"]  # type: ignore[no-any-return]


def drift_of(*items: tuple[Any, ...]) -> Drift:
    """Items from (change, kind, name[, impact, reasons[, from]])."""
    return Drift(
        tuple(
            DriftItem(kind, name, change, f"diff of {name}", *more)
            for change, kind, name, *more in items
        )
    )


DRIFT = drift_of(
    (Change.ADDED, "function", "shop.total(integer)", Impact.COMPATIBLE, ("function added",)),
    (Change.CHANGED, "table", "shop.orders", Impact.BREAKING, ("column note dropped",)),
)


def doc(fmt: str, event: Any) -> Any:
    return json.loads(render(fmt, event))  # type: ignore[arg-type]


def texts(value: Any) -> list[str]:
    """Every "text" string of a Slack or Teams document, in order."""
    if isinstance(value, dict):
        own = [value["text"]] if isinstance(value.get("text"), str) else []
        return own + [t for k, v in value.items() if k != "text" for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


def test_slack_drift_message_names_objects_target_backup_and_commit() -> None:
    event = drift_event("app", SOURCE, DRIFT, DRIFT.fingerprint(), "backups/app/s-1", AT, "c0ffee1")
    slack = doc("slack", event)
    assert slack["text"] == (
        "Schema drift on app: 2 changes (1 breaking, 1 compatible); "
        "files refreshed (backup s-1, commit c0ffee1)"
    )
    header, section, context = slack["blocks"]
    assert header["type"] == "header" and header["text"]["text"] == slack["text"]
    assert section["text"]["text"] == (  # the breaking change first, with why
        "breaking: changed table shop.orders: column note dropped\n"
        "compatible: added function shop.total(integer)"
    )
    assert [e["text"] for e in context["elements"]] == [
        "Target: app",
        f"Production: {SOURCE}",
        "Backup: backups/app/s-1",
        "Commit: c0ffee1",
        f"Drift: {DRIFT.fingerprint()}",
    ]
    no_commit = doc("slack", drift_event("app", SOURCE, DRIFT, "fp", None, AT))
    assert not [t for t in texts(no_commit) if t.startswith(("Commit", "Backup"))]


def test_a_held_drift_says_why_its_files_were_not_refreshed() -> None:
    held = drift_event("app", SOURCE, DRIFT, "fp", None, AT, held_because="check_only")
    assert doc("slack", held)["text"].endswith("; files not refreshed (check_only)")
    document = doc("json", held)["drift"]
    assert (document["files"], document["held_because"]) == ("held", "check_only")
    plain = drift_event("app", SOURCE, DRIFT, "fp", None, AT)
    assert doc("json", plain)["drift"]["files"] == "refreshed"
    assert doc("slack", plain)["text"].endswith("; files refreshed")


def test_every_format_links_to_the_status_page_when_public_url_is_set() -> None:
    url = "https://schema-sync.example/backups/app/schema-sync-20261129_100000?x=<1>&y"
    event = drift_event("app", SOURCE, DRIFT, "fp", "backups/app/s-1", AT, url=url)
    slack = doc("slack", event)
    [link] = [
        b for b in slack["blocks"] if b["type"] == "section" and b["text"]["type"] == "mrkdwn"
    ]
    # Slack's own escaping in a link: the URL's < > & cannot end the link or start another.
    escaped = (
        "https://schema-sync.example/backups/app/schema-sync-20261129_100000?x=&lt;1&gt;&amp;y"
    )
    assert link["text"]["text"] == f"<{escaped}|Show the diffs>"
    card = doc("teams", event)["attachments"][0]["content"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Show the diffs", "url": url}]
    assert doc("json", event)["url"] == url
    for other in (
        resolved_event("app", SOURCE, "fp", AT, url),
        failure_event("app", SOURCE, "boom", "connection", 3, AT, url),
        recovered_event("app", SOURCE, 3, AT, url),
    ):
        assert doc("json", other)["url"] == url
        assert doc("teams", other)["attachments"][0]["content"]["actions"][0]["url"] == url
    no_link = drift_event("app", SOURCE, DRIFT, "fp", None, AT)
    assert doc("json", no_link)["url"] is None
    assert "actions" not in doc("teams", no_link)["attachments"][0]["content"]
    assert [b["type"] for b in doc("slack", no_link)["blocks"]] == ["header", "section", "context"]


def test_the_unnamed_target_is_called_by_its_database() -> None:
    event = resolved_event("default", SOURCE, "fp", AT)
    assert doc("slack", event)["text"] == (
        f"Schema drift resolved on {SOURCE}: production matches the files"
    )


def test_object_names_cannot_ping_a_channel_or_hide_a_link() -> None:
    # A quoted identifier may hold anything; production's DDL is not ours to trust as markup.
    evil = drift_of(
        (Change.ADDED, "table", 'public."<!channel> <https://evil.example|click> *x* [a](b)"'),
    )
    slack = doc("slack", drift_event("<!here>", SOURCE, evil, "fp", None, AT))
    assert "<!here>" not in slack["text"] and "&lt;!here&gt;" in slack["text"]
    for block in slack["blocks"]:  # the name only ever appears in plain_text objects
        for obj in [block.get("text"), *block.get("elements", [])]:
            if obj is not None:
                assert obj["type"] == "plain_text" and obj["emoji"] is False
    card = doc("teams", drift_event("app", SOURCE, evil, "fp", None, AT))
    content = card["attachments"][0]["content"]
    kinds = {b["type"] for b in content["body"]} | {
        i["type"] for b in content["body"] for i in b["inlines"]
    }
    assert kinds == {"RichTextBlock", "TextRun"}  # TextRuns render no markdown, no links
    assert any("<!channel>" in t for t in texts(card))  # shown as text, as it is


def test_teams_gets_one_adaptive_card_workflows_accept() -> None:
    card = doc("teams", failure_event("app", SOURCE, "connection refused", "connection", 3, AT))
    assert card["type"] == "message" and len(card["attachments"]) == 1
    attachment = card["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    content = attachment["content"]
    assert (content["type"], content["version"]) == ("AdaptiveCard", "1.4")
    assert texts(card) == [
        "Schema sync failing on app: 3 times in a row",
        "Target: ",
        "app",
        "Production: ",
        SOURCE,
        "Cause: ",
        "connection",
        "connection refused",
    ]
    assert content["body"][0]["inlines"][0]["color"] == "Attention"


def test_generic_json_document_and_a_signature_a_receiver_can_verify() -> None:
    event = drift_event("app", SOURCE, DRIFT, DRIFT.fingerprint(), "backups/app/s-1", AT)
    body = render("json", event)
    document = json.loads(body)
    assert document["event"] == "drift" and document["version"] == 1
    assert document["drift"]["headline"] == "2 changes (1 breaking, 1 compatible)"
    assert document["drift"]["impact"] == {"breaking": 1, "compatible": 1}
    assert document["drift"]["changes"] == [
        {
            "change": "changed",
            "kind": "table",
            "name": "shop.orders",
            "impact": "breaking",
            "reasons": ["column note dropped"],
            "from": None,
        },
        {
            "change": "added",
            "kind": "function",
            "name": "shop.total(integer)",
            "impact": "compatible",
            "reasons": ["function added"],
            "from": None,
        },
    ]
    assert document["drift"]["summary"] == "backups/app/s-1/sync-summary.md"
    assert document["commit"] is None and document["failure"] is None
    assert "diff of" not in body.decode()  # names only: DDL may hold secrets
    secret, now = "s3cret-key-0123456789", 1_790_000_000
    header = signature(secret, now, body)
    # The documented receiver code, run as a user would paste it.
    verified = documented_verifier()
    fresh = int(time.time())
    headers = {"X-Schema-Sync-Timestamp": str(fresh), "X-Schema-Sync-Signature": ""}
    headers["X-Schema-Sync-Signature"] = signature(secret, fresh, body)
    assert verified(secret.encode(), headers, body)
    assert not verified(secret.encode(), headers, body.replace(b"orders", b"0rders"))
    assert not verified(b"another-secret-000000", headers, body)
    stale = {"X-Schema-Sync-Timestamp": str(now), "X-Schema-Sync-Signature": header}
    assert not verified(secret.encode(), stale, body)  # 2026-09: long ago by now
    assert verify_signature(secret, str(now), body, header, now=now + 60)
    assert not verify_signature(secret, str(now), body + b" ", header, now=now)  # body changed
    assert not verify_signature(secret, str(now + 1), body, header, now=now)  # timestamp changed
    assert not verify_signature("other-secret-0123456789", str(now), body, header, now=now)
    assert not verify_signature(secret, str(now), body, header, now=now + 301)  # a replay
    assert not verify_signature(secret, "soon", body, header, now=now)


def test_a_huge_drift_stays_a_readable_message() -> None:
    big = drift_of(*[(Change.ADDED, "table", f"s.t{i:03}_{'x' * 500}") for i in range(300)])
    slack = doc("slack", drift_event("app", SOURCE, big, "fp", "backups/b", AT))
    section = slack["blocks"][1]["text"]["text"]
    *names, tail = section.split("\n")
    assert len(section) <= 2_900 and 0 < len(names) <= 20
    assert tail == f"... and {300 - len(names)} more in backups/b/sync-summary.md"
    document = json.loads(render("json", drift_event("app", SOURCE, big, "fp", None, AT)))
    assert len(document["drift"]["changes"]) == 50 and document["drift"]["more"] == 250


def test_every_payload_is_scrubbed_of_known_secrets_and_passwords() -> None:
    url = "https://hooks.slack.com/services/T0/B0/WebhookTok3n"
    register_secret(url)
    error = (
        f"pg_dump: connection to postgresql://reader:pw-Hunter2@db/app failed; posted to {url}; "
        "password=pw-Hunter2"
    )
    for fmt in ("slack", "teams", "json"):
        body = render(fmt, failure_event("app", SOURCE, error, "connection", 3, AT)).decode()
        assert "pw-Hunter2" not in body and url not in body and "WebhookTok3n" not in body
        assert "postgresql://reader:***@db/app" in body
    assert "after 4 failures" in render("json", recovered_event("app", SOURCE, 4, AT)).decode()


def test_backoff_doubles_with_jitter_in_its_upper_half_and_stops_at_the_cap() -> None:
    assert [backoff_s(n, 1.0, 60.0, 0.0) for n in range(1, 9)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0,
    ]  # fmt: skip
    assert [backoff_s(n, 1.0, 60.0, 0.999) for n in (1, 7)] == pytest.approx([1.0, 60.0], 0.01)
    assert backoff_s(10_000, 1.0, 60.0, 0.5) == 45.0  # no overflow after a long outage


def test_which_answers_are_worth_another_attempt() -> None:
    assert [s for s in (400, 401, 403, 404, 408, 410, 429, 500, 502, 503) if retryable(s)] == [
        408, 429, 500, 502, 503,
    ]  # fmt: skip
    assert retry_after_s("3", 60) == 3.0 and retry_after_s("9999", 60) == 60
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", 60) is None
    assert retry_after_s(None, 60) is None and retry_after_s("-5", 60) == 0.0


# -- settings -------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_webhooks_from_the_config_file_and_a_target_of_its_own(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "webhook_attempts = 2\n"
        '[[webhooks]]\nurl = "https://hooks.slack.com/services/A/B/C"\nformat = "slack"\n'
        '[[webhooks]]\nurl = "https://ops.example/h"\nsecret = "0123456789abcdef"\n'
        'events = ["drift", "failure"]\n'
        '[[targets]]\nname = "app"\n'
        '[[targets]]\nname = "billing"\n'
        'webhooks = [{url = "https://teams.example/wf?sig=x", format = "teams"}]\n'
        '[[targets]]\nname = "quiet"\nwebhooks = []\n',
    )
    settings = load_settings(config)
    app, billing, quiet = settings.resolved_targets()
    assert [(w.format, w.host(), w.events) for w in app.webhooks] == [
        ("slack", "hooks.slack.com", ("drift", "resolved", "failure", "recovered")),
        ("json", "ops.example", ("drift", "failure")),
    ]
    assert [w.format for w in billing.webhooks] == ["teams"] and quiet.webhooks == []
    assert settings.webhook_attempts == 2 and settings.webhook_timeout_s == 10


def test_webhooks_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(
        "SCHEMA_SYNC_WEBHOOKS",
        '[{"url": "https://hooks.slack.com/services/A/B/C", "format": "slack"}]',
    )
    assert [w.host() for w in load_settings().webhooks] == ["hooks.slack.com"]
    # The URL pasted as it is, not as JSON: one line that shows how, and not the URL.
    monkeypatch.setenv("SCHEMA_SYNC_WEBHOOKS", "https://hooks.slack.com/services/T/B/SeCrEt")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "not valid JSON" in str(caught.value) and '"format": "slack"' in str(caught.value)
    assert "SeCrEt" not in str(caught.value)


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ('url = "hooks.slack.com/services/SeCrEt-Path"', "not an http(s) URL"),
        ('url = "ftp://SeCrEt-Path@x/y"', "not an http(s) URL"),
        ('url = "https://h/SeCrEt-Path"\nformat = "discord"', "Input should be 'slack'"),
        ('url = "https://h/SeCrEt-Path"\nsecret = "SeCrEt-short"', "at least 16 characters"),
        ('url = "https://h/SeCrEt-Path"\nevents = []', "list at least one of"),
        ('url = "https://h/SeCrEt-Path"\nevents = ["drifts"]', "Input should be 'drift'"),
        # An unknown key is named, with where to find the valid ones (issue 22).
        ('url = "https://h/SeCrEt-Path"\nchannel = "#ops"', "config --example` lists"),
    ],
)
def test_a_bad_webhook_is_one_line_that_never_shows_its_url(
    tmp_path: Path, table: str, why: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, f"[[webhooks]]\n{table}\n"))
    message = str(caught.value)
    assert message.startswith(("invalid setting webhooks.0.", "unknown setting webhooks.0."))
    assert why in message
    assert "SeCrEt" not in message and "\n" not in message
    with pytest.raises(SettingsError) as caught:  # and the same inside a target
        load_settings(
            write(tmp_path, f'[[targets]]\nname = "app"\n[[targets.webhooks]]\n{table}\n')
        )
    assert "targets[app].webhooks" in str(caught.value) and "SeCrEt" not in str(caught.value)
