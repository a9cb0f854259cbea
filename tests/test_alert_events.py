"""What a person hears, case by case (docs/alerts-events.md): a drift the daemon refreshed is
one message and is never "resolved"; a drift whose files were held back (check_only, a failed
verify = "require") is resolved when production and the files agree again without the
daemon's write. The pure decisions first, then the same sequences from a running daemon
posting to a real HTTP receiver."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from service.daemon.alerts import (
    AlertState,
    Notice,
    after_failure,
    after_held_failure,
    after_success,
)
from service.demo.cluster import ScratchCluster, free_port
from tests.conftest import FIXTURES, Database, new_database, run_cli
from tests.daemon_proc import DaemonProcess, snapshot

N = Notice
PUBLIC = "https://schema-sync.example.test"
HOTFIX = (
    "CREATE OR REPLACE FUNCTION shop.price(qty integer) RETURNS numeric "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT qty * 1.75 $$"
)
REVERT = (
    "CREATE OR REPLACE FUNCTION shop.price(qty integer) RETURNS numeric "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT qty * 1.5 $$"
)


def run(steps: list[tuple[str | None, str]], alert_after: int = 3) -> list[list[Notice]]:
    """Feed (fingerprint, what) steps through the decisions: what is one of refreshed, held,
    held-failure (verify failed), failure; returns the notices of each step."""
    state, seen = AlertState(), []
    for fingerprint, what in steps:
        if what == "failure":
            state, notices = after_failure(state, alert_after)
        elif what == "held-failure":
            assert fingerprint is not None
            state, notices = after_held_failure(state, fingerprint, alert_after)
        else:
            state, notices = after_success(state, fingerprint, False, what == "refreshed")
        seen.append(notices)
    return seen


# -- the decisions ------------------------------------------------------------------------------


def test_a_refreshed_drift_is_one_message_and_no_resolved_follows() -> None:
    assert run([("X", "refreshed"), (None, "refreshed"), (None, "refreshed")]) == [
        [N.DRIFT_REFRESHED],
        [],
        [],
    ]


def test_the_same_drift_refreshed_again_after_the_files_were_reset_is_not_news() -> None:
    # Someone checks out the old files: a later sync finds the same drift and writes it again.
    assert run([("X", "refreshed"), ("X", "refreshed"), (None, "refreshed")]) == [
        [N.DRIFT_REFRESHED],
        [N.DRIFT_KNOWN],
        [],
    ]
    seen = run([("X", "refreshed"), (None, "refreshed"), ("X", "refreshed")])
    assert seen == [[N.DRIFT_REFRESHED], [], [N.DRIFT_KNOWN]]
    # Production changing again is news: back (Y), then the same hot fix once more (X).
    seen = run([("X", "refreshed"), ("Y", "refreshed"), ("X", "refreshed")])
    assert seen == [[N.DRIFT_REFRESHED], [N.DRIFT_REFRESHED], [N.DRIFT_REFRESHED]]


def test_a_held_drift_stays_open_until_production_and_files_agree_again() -> None:
    assert run([("X", "held"), ("X", "held"), ("X", "held"), (None, "held"), (None, "held")]) == [
        [N.DRIFT_HELD],
        [N.DRIFT_KNOWN],
        [N.DRIFT_KNOWN],
        [N.DRIFT_RESOLVED],
        [],
    ]
    # A held drift that changes is a new drift; the first is not resolved on the way.
    assert run([("X", "held"), ("Y", "held")]) == [[N.DRIFT_HELD], [N.DRIFT_HELD]]


def test_a_drift_held_by_a_failed_verify_then_reverted_is_resolved_after_recovery() -> None:
    steps = [("X", "held-failure"), ("X", "held-failure"), (None, "refreshed")]
    assert run(steps, alert_after=2) == [
        [N.DRIFT_HELD],
        [N.DRIFT_KNOWN, N.FAILURE_ALERT],
        [N.RECOVERED, N.DRIFT_RESOLVED],
    ]


def test_a_drift_held_by_a_failed_verify_then_written_ends_with_the_write() -> None:
    # verify passes at last: the files are refreshed; that message ends it, no "resolved".
    steps = [("X", "held-failure"), ("X", "refreshed"), (None, "refreshed")]
    assert run(steps, alert_after=1) == [
        [N.DRIFT_HELD, N.FAILURE_ALERT],
        [N.RECOVERED, N.DRIFT_REFRESHED],
        [],
    ]


def test_a_failure_in_between_changes_nothing_about_the_drift() -> None:
    steps = [("X", "held"), (None, "failure"), ("X", "held"), (None, "held")]
    assert run(steps) == [[N.DRIFT_HELD], [], [N.DRIFT_KNOWN], [N.DRIFT_RESOLVED]]
    steps = [("X", "refreshed"), (None, "failure"), (None, "refreshed")]
    assert run(steps) == [[N.DRIFT_REFRESHED], [], []]


# -- a running daemon ---------------------------------------------------------------------------


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


def received(server: HTTPServer) -> list[dict[str, Any]]:
    return [json.loads(request.get_data()) for request, _ in server.log]


def env_for(db: Database, server: HTTPServer, **extra: str) -> dict[str, str]:
    hook = [{"url": server.url_for("/hook"), "format": "json"}]
    return {
        "SCHEMA_SYNC_DSN": db.dsn,
        "SCHEMA_SYNC_SCHEDULE": "0 0 1 1 *",  # only start-up and SIGHUP run
        "SCHEMA_SYNC_WEBHOOKS": json.dumps(hook),
        "SCHEMA_SYNC_WEBHOOK_ATTEMPTS": "1",
        "SCHEMA_SYNC_PUBLIC_URL": PUBLIC,
        **{f"SCHEMA_SYNC_{k.upper()}": v for k, v in extra.items()},
    }


class Runs:
    """SIGHUP, then wait for that run's closing event."""

    def __init__(self, d: DaemonProcess) -> None:
        self.d, self.done = d, 0

    def wait_start(self) -> None:
        self.next_done()

    def next_done(self) -> dict[str, Any]:
        self.done += 1

        def closing() -> dict[str, Any] | None:
            ends = [e for e in self.d.events if e["event"] in ("sync.finished", "sync.failed")]
            return ends[self.done - 1] if len(ends) >= self.done else None

        event: dict[str, Any] = self.d.wait_until(closing, f"run {self.done}", timeout=60)
        return event

    def now(self) -> dict[str, Any]:
        self.d.send(signal.SIGHUP)
        return self.next_done()


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=30
    ).stdout


def test_daemon_refreshed_drift_one_message_with_backup_commit_and_page(
    shop: Database, tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = env_for(shop, httpserver, git_repository=remote.as_uri())
    schemas = work / "sql/schemas"
    with DaemonProcess(work, env) as d:
        runs = Runs(d)
        runs.wait_start()  # the baseline: no message
        baseline = {p.name: p.read_bytes() for p in schemas.iterdir() if p.is_file()}
        shop.sql(HOTFIX)
        assert runs.now()["drift_count"] == 1  # found, files refreshed: one message
        assert runs.now()["drift_count"] == 0  # the files match: nothing, no "resolved"
        for name, data in baseline.items():  # someone checks out the old files
            if not name.startswith(".pg-schema-sync"):
                (schemas / name).write_bytes(data)
        assert runs.now()["drift_count"] == 1  # the same drift, written again: not news
        assert runs.now()["drift_count"] == 0
        d.send(signal.SIGTERM)
        assert d.wait_exit(20) == 0
    docs = received(httpserver)
    assert [doc["event"] for doc in docs] == ["drift"]
    [doc] = docs
    backup = doc["drift"]["backup"].rsplit("/", 1)[1]
    log = git("log", "--format=%H %s", "schema-sync/default", cwd=remote).splitlines()
    [first_commit] = [ln.split()[0] for ln in log if " schema drift: " in ln]
    assert doc["drift"]["files"] == "refreshed" and doc["drift"]["held_because"] is None
    assert doc["commit"] == first_commit
    assert doc["title"].endswith(
        f"1 change (1 behavioural); files refreshed (backup {backup}, commit {first_commit[:12]})"
    )
    assert doc["url"] == f"{PUBLIC}/backups/default/{backup}"
    message = git("log", "-1", "--format=%B", first_commit, cwd=remote)
    assert f"Status-Page: {PUBLIC}/backups/default/{backup}" in message
    detected = d.named("drift.detected")
    assert [(e["new"], e["files"]) for e in detected] == [(True, "refreshed"), (False, "refreshed")]
    assert not d.named("drift.resolved")


def test_daemon_check_only_drift_held_open_then_resolved_when_production_reverts(
    shop: Database, tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    assert run_cli("sync", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": shop.dsn}).code == 0
    before = snapshot(tmp_path)
    port = free_port()
    env = env_for(shop, httpserver, check_only="true", metrics_port=str(port))

    def latest() -> dict[str, Any]:
        doc = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=10).json()
        drift: dict[str, Any] = doc["targets"][0]["latest_drift"]
        return drift

    def metric(name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        return float(next(ln for ln in text.splitlines() if ln.startswith(name + " ")).split()[1])

    with DaemonProcess(tmp_path, env) as d:
        runs = Runs(d)
        runs.wait_start()
        shop.sql(HOTFIX)
        assert runs.now()["drift_count"] == 1  # held: one message
        assert runs.now()["drift_count"] == 1  # still there: nothing new
        drift = latest()
        assert (drift["status"], drift["files"]) == ("open", "held")
        assert metric("pg_schema_sync_drift_open_since_timestamp_seconds") > 0
        shop.sql(REVERT)  # production goes back to what the files say
        assert runs.now()["drift_count"] == 0  # resolved
        assert latest()["status"] == "resolved" and latest()["ended_at"]
        assert metric("pg_schema_sync_drift_open_since_timestamp_seconds") == 0
        d.send(signal.SIGTERM)
        assert d.wait_exit(20) == 0
    assert snapshot(tmp_path) == before  # check_only: not one byte written, no backup
    docs = received(httpserver)
    assert [doc["event"] for doc in docs] == ["drift", "resolved"]
    assert docs[0]["drift"]["files"] == "held" and "check_only" in docs[0]["drift"]["held_because"]
    assert "files not refreshed (check_only" in docs[0]["title"]
    assert docs[0]["url"] == docs[1]["url"] == f"{PUBLIC}/targets/default"
    assert docs[1]["resolved_fingerprint"] == docs[0]["drift"]["fingerprint"]


def test_daemon_failed_verify_holds_the_drift_and_resolves_it_when_production_reverts(
    shop: Database, cluster: ScratchCluster, tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    assert run_cli("sync", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": shop.dsn}).code == 0
    # A verify login that may create databases but is no superuser: installing a dump that
    # gives objects to their owners fails, so every verification fails.
    cluster.psql("postgres", "CREATE ROLE held_verifier LOGIN CREATEDB")
    before = snapshot(tmp_path)
    env = env_for(
        shop,
        httpserver,
        verify="require",
        verify_dsn=cluster.dsn("postgres", user="held_verifier"),
        failure_alert_after="2",
        sync_on_start="false",
    )
    try:
        with DaemonProcess(tmp_path, env) as d:
            runs = Runs(d)
            d.wait_for("daemon.started")
            shop.sql(HOTFIX)
            first = runs.now()
            assert (first["event"], first["cause"]) == ("sync.failed", "verify")
            assert runs.now()["consecutive_failures"] == 2  # the failure message
            shop.sql(REVERT)
            assert runs.now()["event"] == "sync.finished"  # recovered, and resolved
            d.send(signal.SIGTERM)
            assert d.wait_exit(20) == 0
    finally:
        cluster.psql("postgres", "DROP ROLE held_verifier")
    docs = received(httpserver)
    assert [doc["event"] for doc in docs] == ["drift", "failure", "recovered", "resolved"]
    assert docs[0]["drift"]["files"] == "held"
    assert "verification failed" in docs[0]["drift"]["held_because"]
    assert "/backups/default/schema-sync-" in docs[0]["url"]  # the failed candidate's page
    assert docs[1]["failure"]["cause"] == "verify"
    # The files never changed: only the failed candidate's backup was added.
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k.startswith("sql/")} == {
        k: v for k, v in before.items() if k.startswith("sql/")
    }
