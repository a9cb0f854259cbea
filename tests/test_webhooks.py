"""Webhook delivery against real local receivers: slow, 500ing, hanging, refusing; the daemon's
messages across a restart; `alerts test`."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from service.compare.drift import Change, Drift, DriftItem
from service.daemon.alerting import Alerts
from service.daemon.alerts import AlertState
from service.daemon.messages import drift_event, render, resolved_event
from service.daemon.webhooks import Hook, WebhookSender, deliver, hooks_of
from service.demo.cluster import ScratchCluster
from service.settings.webhooks import WebhookSettings
from tests.conftest import FIXTURES, Database, new_database, run_cli
from tests.daemon_proc import DaemonProcess, pg_dump_wrapper
from tests.test_webhook_messages import documented_verifier

AT = datetime(2026, 11, 29, tzinfo=UTC)
DRIFT = Drift((DriftItem("table", "shop.orders", Change.CHANGED, "-a\n+b\n"),))
SECRET = "webhook-signing-key-0123456789"


def url_of(server: HTTPServer, path: str) -> str:
    """The server's URL by address: logs name a webhook by host, and 127.0.0.1 is what it is."""
    return f"http://127.0.0.1:{server.port}{path}"


def hook(url: str, fmt: str = "json", index: int = 0, **more: Any) -> Hook:
    return Hook(index, WebhookSettings(url=url, format=fmt, **more))  # type: ignore[arg-type]


def event(n: int = 0) -> Any:
    return drift_event(f"t{n}", "r@db:5432/app", DRIFT, f"fp{n}", None, AT)


@pytest.fixture
def hanging() -> Iterator[str]:
    """A receiver that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/hook"


@pytest.fixture
def refusing() -> str:
    """A port nothing listens on: every connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook/Refused-Secret-Path"


class Sleeps(list[float]):
    """Stands in for asyncio.sleep in `deliver`: records the backoff instead of waiting it."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


# -- one message, all its attempts ------------------------------------------------------------


async def test_a_500ing_receiver_is_retried_with_backoff_then_given_up(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("boom", status=500)
    sleeps = Sleeps()
    async with httpx.AsyncClient() as client:
        result = await deliver(
            client, hook(url_of(httpserver, "/hook")), "drift", b"{}", 5, 3, _log(), sleep=sleeps
        )
    assert (result.ok, result.attempts, result.status, result.cause) == (
        False, 3, 500, "HTTP 500: boom",
    )  # fmt: skip
    assert len(httpserver.log) == 3 and len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0  # doubling, jittered
    ids = {req.headers["X-Schema-Sync-Delivery"] for req, _ in httpserver.log}
    assert len(ids) == 1  # one delivery id over the retries: a receiver can dedupe them


async def test_a_receiver_that_recovers_gets_the_message_once(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/hook").respond_with_data("busy", status=503)
    httpserver.expect_request("/hook").respond_with_data("ok")
    async with httpx.AsyncClient() as client:
        result = await deliver(
            client, hook(url_of(httpserver, "/hook")), "drift", b"{}", 5, 4, _log(), sleep=Sleeps()
        )
    assert (result.ok, result.attempts, result.status) == (True, 2, 200)


async def test_a_refusal_is_final_and_a_gone_webhook_is_not_hammered(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hook").respond_with_data("channel_is_archived", status=410)
    async with httpx.AsyncClient() as client:
        result = await deliver(
            client, hook(url_of(httpserver, "/hook")), "drift", b"{}", 5, 4, _log(), sleep=Sleeps()
        )
    assert (result.ok, result.attempts, result.cause) == (False, 1, "HTTP 410: channel_is_archived")


async def test_a_closed_port_fails_with_a_cause_that_does_not_hold_the_url(refusing: str) -> None:
    async with httpx.AsyncClient() as client:
        result = await deliver(client, hook(refusing), "drift", b"{}", 5, 2, _log(), sleep=Sleeps())
    assert not result.ok and result.attempts == 2 and result.status is None
    assert result.cause is not None and result.cause.startswith("ConnectError")
    assert "Refused-Secret-Path" not in result.cause


async def test_a_slow_receiver_within_the_timeout_is_waited_for(httpserver: HTTPServer) -> None:
    def slow(_request: Request) -> Response:
        time.sleep(0.5)
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(slow)
    async with httpx.AsyncClient() as client:
        result = await deliver(
            client, hook(url_of(httpserver, "/hook")), "drift", b"{}", 5, 1, _log()
        )
    assert result.ok and result.attempts == 1


# -- the sender: queues, workers, shutdown -------------------------------------------------------


async def test_a_hanging_webhook_times_out_and_holds_up_no_other_webhook(
    httpserver: HTTPServer, hanging: str
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    good = hook(url_of(httpserver, "/hook"), "slack", index=1)
    stuck = hook(hanging, "json", index=0, secret=SECRET)
    sender = WebhookSender(timeout_s=0.3, attempts=1)
    with structlog.testing.capture_logs() as logs:
        sender.submit((stuck, good), event(1))  # returns at once: nothing is sent here
        assert logs == [] and len(httpserver.log) == 0
        await sender.close(timeout_s=10)
    by_event = {(e["event"], e["webhook"]): e for e in logs}
    assert by_event[("alert.sent", "webhook[1] slack 127.0.0.1")]["status"] == 200
    failed = by_event[("alert.failed", "webhook[0] json 127.0.0.1")]
    assert failed["cause"] == "timeout after 0.3 s" and failed["attempts"] == 1
    assert hanging not in json.dumps(logs)
    assert json.loads(httpserver.log[0][0].get_data())["text"].startswith("Schema drift on t1")


async def test_a_full_queue_drops_the_oldest_message_and_says_so(hanging: str) -> None:
    sender = WebhookSender(timeout_s=30, attempts=1, queue_size=2)
    target = hook(hanging)
    with structlog.testing.capture_logs() as logs:
        for n in range(5):  # no await in between: the worker has not taken any yet
            sender.submit((target,), event(n))
        dropped = [e for e in logs if e["event"] == "alert.dropped"]
        assert [e["reason"] for e in dropped] == ["queue full (2)"] * 3
        await sender.close(timeout_s=0.2)  # t3 is in flight, t4 queued: both given up
    dropped = [e for e in logs if e["event"] == "alert.dropped"]
    assert [e["reason"] for e in dropped[3:]] == ["shutdown: not delivered in time"] * 2
    with structlog.testing.capture_logs() as logs:
        sender.submit((target,), event(9))  # after close: dropped, never queued
    assert [(e["event"], e["reason"]) for e in logs] == [("alert.dropped", "stopping")]


async def test_event_filters_choose_what_each_webhook_hears(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    only_drift = hook(url_of(httpserver, "/hook"), events=["drift"])
    sender = WebhookSender(timeout_s=5, attempts=1)
    sender.submit((only_drift,), resolved_event("app", "r@db/app", "fp", AT))
    sender.submit((only_drift,), event(2))
    await sender.close(timeout_s=10)
    assert [json.loads(r.get_data())["event"] for r, _ in httpserver.log] == ["drift"]


async def test_the_drift_message_names_the_commit_git_delivery_hands_to_alerts(
    httpserver: HTTPServer,
) -> None:
    # The runner's one-line wiring for git delivery: succeeded(..., commit=outcome.commit).
    httpserver.expect_request("/hook").respond_with_data("ok")
    parent = Alerts("default", "", 3)
    parent.webhooks = WebhookSender(timeout_s=5, attempts=1)
    alerts = parent.for_target(
        "app",
        "r@db:5432/app",
        3,
        hooks=hooks_of(
            [WebhookSettings(url=SecretStr(url_of(httpserver, "/hook")), format="json")]
        ),
    )
    state = alerts.succeeded(
        AlertState(), DRIFT, False, "backups/app/s-1", _log(), commit="c0ffee1"
    )
    # Refreshed (the files were written): remembered to dedupe, never waiting for "resolved".
    assert (state.refreshed_drift, state.active_drift) == (DRIFT.fingerprint(), None)
    alerts.succeeded(state, DRIFT, False, None, _log(), commit="c0ffee2")  # known: no message
    await parent.webhooks.close(timeout_s=10)
    ((request, _),) = httpserver.log
    document = json.loads(request.get_data())
    assert (document["commit"], document["drift"]["backup"]) == ("c0ffee1", "backups/app/s-1")


def _log() -> Any:
    return structlog.get_logger("test")


# -- the daemon: real drift, restart, failures, secrets --------------------------------------


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


def posts(server: HTTPServer, path: str) -> list[tuple[Any, bytes]]:
    return [(r.headers, r.get_data()) for r, _ in server.log if r.path == path]


def test_daemon_sends_one_message_per_drift_across_a_restart_and_one_per_failure_streak(
    shop: Database, cluster: ScratchCluster, tmp_path: Path, httpserver: HTTPServer, refusing: str
) -> None:
    password = "Webhook-Test-pw9"
    shop.sql(f"CREATE ROLE hook_reader LOGIN SUPERUSER PASSWORD '{password}'")
    httpserver.expect_request("/api/1/envelope/").respond_with_json({"id": "x"})
    httpserver.expect_request("/json/Json-Secret-Path").respond_with_data("ok")
    httpserver.expect_request("/slack/Slack-Secret-Path").respond_with_data("ok")
    json_url = url_of(httpserver, "/json/Json-Secret-Path")
    slack_url = url_of(httpserver, "/slack/Slack-Secret-Path")
    sentry_dsn = f"http://SentryKey@127.0.0.1:{httpserver.port}/1"
    fail = tmp_path / "FAIL"
    # While FAIL exists pg_dump "fails" quoting every secret the daemon knows: none of them
    # may reach a webhook.
    wrapper = pg_dump_wrapper(
        tmp_path,
        f'if [ -e {fail} ]; then echo "pg_dump: error: postgresql://hook_reader:$PGPASSWORD@x/y '
        f'{json_url} {slack_url} {sentry_dsn} {SECRET}" >&2; exit 1; fi',
    )
    webhooks = [
        {"url": json_url, "format": "json", "secret": SECRET},
        {"url": slack_url, "format": "slack", "events": ["drift", "failure"]},
        {"url": refusing, "format": "teams"},  # dead: retried in the background, never in the way
    ]
    env = {
        "SCHEMA_SYNC_DSN": cluster.tcp_dsn(shop.name, "hook_reader", password),
        "SCHEMA_SYNC_SCHEDULE": "0 0 1 1 *",  # only SIGHUP runs
        "SCHEMA_SYNC_WEBHOOKS": json.dumps(webhooks),
        "SCHEMA_SYNC_WEBHOOK_ATTEMPTS": "1",  # retries: see the tests above
        "SCHEMA_SYNC_SENTRY_DSN": sentry_dsn,
        "SCHEMA_SYNC_FAILURE_ALERT_AFTER": "1",
        "SCHEMA_SYNC_PG_DUMP": str(wrapper),
    }
    schemas = tmp_path / "sql/schemas"
    logs: list[str] = []
    try:
        with DaemonProcess(tmp_path, env) as d:
            d.wait_for("sync.finished")  # the baseline: no message
            baseline = {p.name: p.read_bytes() for p in schemas.iterdir() if p.is_file()}
            shop.sql("ALTER TABLE shop.orders ADD COLUMN hotfix text")
            d.send(signal.SIGHUP)
            finished = d.wait_for("sync.finished", count=2)
            assert finished["drift_count"] == 1
            d.wait_for("alert.sent", alert="drift", webhook="webhook[0] json 127.0.0.1")
            for name, data in baseline.items():  # `git checkout` of the old files
                if not name.startswith(".pg-schema-sync"):
                    (schemas / name).write_bytes(data)
            d.send(signal.SIGTERM)
            assert d.wait_exit(20) == 0
            logs += d.lines + d.err_lines
        with DaemonProcess(tmp_path, env) as d:
            first = d.wait_for("sync.finished")  # the same drift again, after a restart
            assert first["drift_count"] == 1
            assert {e["new"] for e in d.named("drift.detected")} == {False}

            def sync_now(count: int, closing: str) -> None:
                d.send(signal.SIGHUP)
                d.wait_for(closing, count=count)

            sync_now(2, "sync.finished")  # files agree again: the daemon wrote them, no message
            fail.touch()
            sync_now(1, "sync.failed")  # failure_alert_after = 1
            sync_now(2, "sync.failed")  # the same streak: no second message
            fail.unlink()
            sync_now(3, "sync.finished")  # recovered
            d.wait_for("alert.sent", alert="recovered", webhook="webhook[0] json 127.0.0.1")
            d.send(signal.SIGTERM)
            assert d.wait_exit(20) == 0
            logs += d.lines + d.err_lines
            assert [e["event"] for e in d.named("sync.failed")] == ["sync.failed"] * 2
            refused = d.named("alert.failed", webhook="webhook[2] teams 127.0.0.1")
            assert refused and refused[0]["cause"].startswith("ConnectError")
    finally:
        shop.sql("DROP OWNED BY hook_reader; DROP ROLE hook_reader")

    json_posts = posts(httpserver, "/json/Json-Secret-Path")
    documents = [json.loads(body) for _, body in json_posts]
    assert [doc["event"] for doc in documents] == ["drift", "failure", "recovered"]
    drift = documents[0]["drift"]
    assert drift["changes"] == [
        {
            "change": "changed",
            "kind": "table",
            "name": "shop.orders",
            "impact": "compatible",
            "reasons": ["column hotfix added"],
            "from": None,
        }
    ]
    assert drift["headline"] == "1 change (1 compatible)"
    assert "/backups/schema-sync-" in drift["backup"]
    assert documents[1]["failure"]["consecutive_failures"] == 1
    assert "postgresql://hook_reader:***@x/y" in documents[1]["failure"]["error"]
    verified = documented_verifier()
    for headers, body in json_posts:  # what docs/webhooks.md tells a receiver to check
        assert verified(SECRET.encode(), dict(headers), body)
    slack = [json.loads(body)["text"] for _, body in posts(httpserver, "/slack/Slack-Secret-Path")]
    assert len(slack) == 2  # its filter: drift and failure only
    assert slack[0].startswith("Schema drift on hook_reader@127.0.0.1:") and "1 change" in slack[0]
    assert slack[1].endswith("1 times in a row")
    every_body = b"".join(
        body for _, body in json_posts + posts(httpserver, "/slack/Slack-Secret-Path")
    )
    for secret in (
        password,
        "Json-Secret-Path",
        "Slack-Secret-Path",
        "Refused-Secret-Path",
        "SentryKey",
        SECRET,
    ):
        assert secret.encode() not in every_body, secret
        assert not [line for line in logs if secret in line], secret


# -- the CLI ----------------------------------------------------------------------------------


def test_alerts_test_posts_to_each_webhook_and_says_which_failed(
    tmp_path: Path, httpserver: HTTPServer, refusing: str
) -> None:
    httpserver.expect_request("/hook/Good-Secret").respond_with_data("ok")
    good = url_of(httpserver, "/hook/Good-Secret")
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[webhooks]]\nurl = "{good}"\nformat = "json"\nsecret = "{SECRET}"\n'
        f'[[webhooks]]\nurl = "{refusing}"\nformat = "slack"\n'
    )
    result = run_cli("alerts", "test", "--config", str(config), cwd=tmp_path, timeout=60)
    assert result.code == 2, result.err
    lines = result.out.splitlines()
    assert lines[0] == "webhook[0] json 127.0.0.1: delivered (HTTP 200)"
    assert lines[1].startswith("webhook[1] slack 127.0.0.1: failed: ConnectError")
    assert "Secret" not in result.out + result.err
    ((request, _),) = httpserver.log
    assert json.loads(request.get_data())["event"] == "test"
    assert request.headers["X-Schema-Sync-Event"] == "test"
    config.write_text("")
    result = run_cli("alerts", "test", "--config", str(config), cwd=tmp_path)
    assert result.code == 2 and result.err.startswith("pg-schema-sync: no webhooks configured")
    assert len(result.err.splitlines()) == 1


def test_render_is_what_is_sent() -> None:
    # The generic body is signed as bytes: rendering twice must give the same bytes.
    assert render("json", event(3)) == render("json", event(3))
