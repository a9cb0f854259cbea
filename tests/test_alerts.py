"""Who hears about what: the pure decisions, and real Sentry envelopes from a running daemon."""

from __future__ import annotations

import gzip
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from service.daemon.alerts import (
    AlertState,
    Notice,
    after_failure,
    after_success,
    retry_delay_s,
    scrub_event,
)
from service.demo.cluster import ScratchCluster
from service.errors import Cause
from service.logs import register_secret
from tests.conftest import FIXTURES, Database, new_database
from tests.daemon_proc import DaemonProcess, pg_dump_wrapper

# -- pure decisions ----------------------------------------------------------------------------


def test_first_run_is_a_baseline_and_alerts_nobody() -> None:
    state, notices = after_success(AlertState(), "abc", first_run=True, refreshed=True)
    assert (state, notices) == (AlertState(), [])


def test_failures_alert_once_per_streak_at_the_threshold_and_recovery_is_told() -> None:
    state = AlertState(active_drift="fp")
    seen = []
    for _ in range(5):
        state, notices = after_failure(state, alert_after=3)
        seen.append(notices)
    assert seen == [[], [], [Notice.FAILURE_ALERT], [], []]
    assert state.active_drift == "fp"  # a failed run knows nothing new about drift
    state, notices = after_success(state, "fp", first_run=False, refreshed=False)
    assert notices == [Notice.RECOVERED, Notice.DRIFT_KNOWN]
    assert state == AlertState("fp", 0, False)
    # A short blip below the threshold is not worth a recovery notice either.
    state, _ = after_failure(state, alert_after=3)
    assert after_success(state, "fp", first_run=False, refreshed=False)[1] == [Notice.DRIFT_KNOWN]


@pytest.mark.parametrize(
    ("cause", "early_retry"),
    [
        (Cause.CONNECTION, 5),
        (Cause.AUTHENTICATION, None),
        (Cause.PG_DUMP, None),
        (Cause.DISK, None),
        (Cause.CATALOG, None),
        (Cause.OTHER, None),
    ],
)
def test_only_connection_failures_are_retried_early(
    cause: Cause, early_retry: float | None
) -> None:
    # A restart or network blip heals in seconds; a wrong password or full disk does not.
    assert retry_delay_s(cause, 1, cap_s=300) == early_retry


def test_retry_backoff_doubles_and_stops_at_the_cap() -> None:
    delays = [retry_delay_s(Cause.CONNECTION, n, cap_s=60) for n in range(1, 8)]
    assert delays == [5, 10, 20, 40, 60, 60, 60]


def test_sentry_payload_scrubber_removes_passwords_everywhere() -> None:
    register_secret("hunter2-xyz")
    event = {
        "message": "cannot connect: postgresql://app:hunter2-xyz@db/prod failed",
        "extra": {"PGPASSWORD": "anything", "dsn": "host=db password=p4ss"},
        "contexts": {"failure": {"error": "password=hunter2-xyz rejected", "n": 3}},
        "breadcrumbs": {"values": [{"message": "saw hunter2-xyz"}]},
        "fingerprint": ["0123abcd"],
    }
    text = json.dumps(scrub_event(event))
    assert "hunter2-xyz" not in text and "p4ss" not in text and "anything" not in text
    assert "0123abcd" in text and '"n": 3' in text


# -- Sentry for real: the daemon posting envelopes to a local ingest endpoint -------------------


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


def envelopes(server: HTTPServer) -> list[tuple[bytes, list[dict[str, Any]]]]:
    """(raw body, events) of every envelope received, in order."""
    out = []
    for request, _response in server.log:
        body = request.get_data()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        lines = body.split(b"\n")
        events = []
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                events.append(json.loads(payload))
        out.append((body, events))
    return out


def test_sentry_gets_one_event_per_distinct_drift_and_failure_streak(
    shop: Database, cluster: ScratchCluster, tmp_path: Path, httpserver: HTTPServer
) -> None:
    secret = "Sentry-Secret-pw7"
    shop.sql(f"CREATE ROLE sentry_reader LOGIN SUPERUSER PASSWORD '{secret}'")
    httpserver.expect_request("/api/1/envelope/", method="POST").respond_with_json({"id": "x"})
    fail = tmp_path / "FAIL"
    # While FAIL exists, pg_dump "fails" with an error quoting the connection URI: the kind of
    # message that must not carry the password to Sentry.
    wrapper = pg_dump_wrapper(
        tmp_path,
        f'if [ -e {fail} ]; then echo "pg_dump: error: connection to '
        f'postgresql://sentry_reader:$PGPASSWORD@127.0.0.1/x failed" >&2; exit 1; fi',
    )
    env = {
        "SCHEMA_SYNC_DSN": cluster.tcp_dsn(shop.name, "sentry_reader", secret),
        "SCHEMA_SYNC_SCHEDULE": "0 0 1 1 *",  # never during the test: only SIGHUP runs
        "SCHEMA_SYNC_SENTRY_DSN": f"http://public@127.0.0.1:{httpserver.port}/1",
        "SCHEMA_SYNC_SENTRY_ENVIRONMENT": "test",
        "SCHEMA_SYNC_FAILURE_ALERT_AFTER": "2",
        "SCHEMA_SYNC_PG_DUMP": str(wrapper),
    }
    schemas = tmp_path / "sql/schemas"
    try:
        with DaemonProcess(tmp_path, env) as d:
            runs = 1
            d.wait_for("sync.finished")  # first run: the baseline, no event

            def sync_now() -> None:
                nonlocal runs
                runs += 1
                d.send(signal.SIGHUP)
                d.wait_until(
                    lambda: len(d.named("sync.finished") + d.named("sync.failed")) >= runs,
                    f"run {runs}",
                )

            baseline = {p.name: p.read_bytes() for p in schemas.iterdir() if p.is_file()}
            shop.sql("ALTER TABLE shop.orders ADD COLUMN hotfix text")
            sync_now()  # drift -> files written, one warning event
            first = d.named("drift.detected")
            assert {e["new"] for e in first} == {True} and first[0]["name"] == "shop.orders"
            # The run's own event counts the changes by impact (a nullable column: compatible).
            finished = d.named("sync.finished")[-1]
            assert finished["drift_count"] == 1 and finished["impact"] == {"compatible": 1}
            for name, data in baseline.items():  # like a `git checkout` of the old files
                if not name.startswith(".pg-schema-sync"):
                    (schemas / name).write_bytes(data)
            sync_now()  # the same drift again: logged, not re-sent
            again = d.named("drift.detected")[len(first) :]
            assert again and {e["new"] for e in again} == {False}
            assert {e["fingerprint"] for e in again} == {first[0]["fingerprint"]}
            sync_now()  # files agree: the daemon wrote them, so no "resolved" follows
            assert not d.named("drift.resolved")
            fail.touch()
            sync_now()
            sync_now()  # second failure in a row: the error event
            sync_now()  # third: no second error event for the same streak
            assert [e["consecutive_failures"] for e in d.named("sync.failed")] == [1, 2, 3]
            fail.unlink()
            sync_now()
            d.wait_for("sync.recovered")
            d.send(signal.SIGTERM)
            assert d.wait_exit(15) == 0  # exit flushes what Sentry has queued
    finally:
        shop.sql("DROP OWNED BY sentry_reader; DROP ROLE sentry_reader")

    received = envelopes(httpserver)
    events = [e for _, evs in received for e in evs]
    assert [(e["level"], e["fingerprint"][0]) for e in events] == [
        ("warning", first[0]["fingerprint"]),
        ("error", "sync-failed"),
        ("info", "sync-recovered"),
    ]
    drift_event = events[0]
    assert drift_event["fingerprint"] == [first[0]["fingerprint"]]
    assert drift_event["contexts"]["drift"]["changes"] == [
        "compatible: changed table shop.orders: column hotfix added"
    ]
    assert drift_event["tags"]["drift_impact"] == "compatible"  # a warning, not an error
    assert first[0]["impact"] == "compatible" and first[0]["reasons"] == ["column hotfix added"]
    assert drift_event["contexts"]["drift"]["files"] == "refreshed"
    assert "; files refreshed (backup schema-sync-" in drift_event["message"]
    assert drift_event["environment"] == "test"
    assert events[1]["contexts"]["failure"]["consecutive_failures"] == 2
    assert "postgresql://sentry_reader:***@" in json.dumps(events[1])
    for body, _ in received:
        assert secret.encode() not in body
    for line in d.lines + d.err_lines:
        assert secret not in line
