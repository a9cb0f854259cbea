"""The status page served by a running daemon (a real child process, a real cluster): what a
reader sees after a hot fix, hostile names kept as text, the token, and the paths it refuses."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
from markupsafe import escape

from service.compare.escape import visible
from service.demo.cluster import ScratchCluster, free_port
from service.disk import files
from tests.conftest import FIXTURES, Database, new_database, run_cli
from tests.daemon_proc import DaemonProcess

TOKEN = "Status-Token-0123456789abcdef"
PUBLIC = "https://schema-sync.example.test"
SCHEMA = Path(__file__).parent.parent / "docs" / "status-api.schema.json"
HOTFIX = (
    "CREATE OR REPLACE FUNCTION shop.price(qty integer) RETURNS numeric "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT qty * 1.75 $$"
)
# Names from production that must stay text: markup, script, quotes, control characters.
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>document.title='pwned'</script>"
QUOTES = "q'uo\"te&amp;"
CONTROL = "red\x1b[31m\x07bell"


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Running:
    daemon: DaemonProcess
    base: str
    folder: Path
    db: Database

    def get(self, path: str, auth: bool = True, **kw: object) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
        if auth:
            headers["Authorization"] = f"Bearer {TOKEN}"
        return httpx.get(self.base + path, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def running(cluster: ScratchCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A daemon that synced a baseline, then found a hot-fixed function and hostile names."""
    db = new_database(cluster, FIXTURES / "shop.sql")
    folder = tmp_path_factory.mktemp("status")
    port = free_port()
    env = {
        "SCHEMA_SYNC_DSN": db.dsn,
        "SCHEMA_SYNC_SCHEDULE": "0 0 1 1 *",  # only start-up and SIGHUP run
        "SCHEMA_SYNC_METRICS_PORT": str(port),
        "SCHEMA_SYNC_PUBLIC_URL": PUBLIC,
        "SCHEMA_SYNC_STATUS_TOKEN": TOKEN,
        "SCHEMA_SYNC_LOG_LEVEL": "debug",
    }
    try:
        with DaemonProcess(folder, env) as d:
            d.wait_for("sync.finished", timeout=60)  # the baseline
            statements = [HOTFIX]
            statements += [f"CREATE TABLE public.{quoted(n)} (id int)" for n in (IMG, QUOTES)]
            statements.append(f"CREATE VIEW public.{quoted(SCRIPT)} AS SELECT 1 AS one")
            statements.append(f"CREATE SEQUENCE public.{quoted(CONTROL)}")
            db.sql("; ".join(statements))
            d.send(signal.SIGHUP)
            d.wait_for("sync.finished", count=2, timeout=60)
            yield Running(d, f"http://127.0.0.1:{port}", folder, db)
            d.send(signal.SIGTERM)
            assert d.wait_exit(20) == 0
    finally:
        cluster.drop_database(db.name)


def test_the_page_shows_the_hot_fix_its_diff_and_the_backups(running: Running) -> None:
    page = running.get("/")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    html = page.text
    assert "shop.price(qty integer)" in html or "shop.price(integer)" in html
    assert re.search(r'<span class="add">\+.*1\.75', html), "the diff's added line"
    assert "files refreshed" in html
    backups = sorted(p.name for p in (running.folder / "backups").glob("schema-sync-*"))
    assert len(backups) == 2 and all(f"/backups/default/{b}" in html for b in backups)
    assert "healthy" in html and "<svg" in html and 'class="drift"' in html


def test_hostile_names_stay_text_everywhere(running: Running) -> None:
    html = running.get("/").text
    body = html[html.index("<body>") :]
    # Ours: one <script> (refresh.js, in the head), no image, no inline handler at all.
    assert (
        "<img" not in body
        and "<script" not in body
        and "onerror=alert" not in re.sub(r"&lt;img src=x onerror=alert\(1\)&gt;", "", body)
    )
    assert "\x1b" not in html and "\x07" not in html
    # The API keeps names exact (JSON escapes what it must); the page shows each as text.
    items = running.get("/api/status").json()["targets"][0]["latest_drift"]["items"]
    hostile = [i["name"] for i in items if i["name"].startswith("public.")]
    assert len(hostile) == 4, hostile
    for raw, name in ((IMG, "img"), (SCRIPT, "script"), (QUOTES, "te&amp;"), (CONTROL, "bell")):
        [exact] = [n for n in hostile if name in n]
        assert raw.replace('"', '""') in exact or raw in exact, (raw, exact)
        assert str(escape(visible(exact))) in body, exact
    assert "red\\x1b[31m\\x07bell" in body  # control characters written out, not run


def test_every_answer_carries_the_security_headers(running: Running) -> None:
    for path, auth in [("/", True), ("/api/status", True), ("/nope", True), ("/", False)]:
        response = running.get(path, auth=auth)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "'unsafe-inline'" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    # Nothing on the page loads from elsewhere: every src and href is our own.
    html = running.get("/").text
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith(("/", "#")), url


def test_api_status_follows_its_documented_schema(running: Running) -> None:
    response = running.get("/api/status?diffs=1")
    doc = response.json()
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    [target] = doc["targets"]
    drift = target["latest_drift"]
    assert (drift["status"], drift["files"]) == ("refreshed", "refreshed")
    fixed = [i for i in drift["items"] if i["name"].startswith("shop.price")]
    assert fixed and "1.75" in fixed[0]["diff"] and fixed[0]["change"] == "changed"
    assert [r["kind"] for r in target["timeline"]] == ["full", "full"]
    assert target["timeline"][0]["first_run"] and target["timeline"][1]["drift"] == drift["total"]
    assert target["healthy"] and target["source"].endswith(running.db.name)
    # Scripts poll cheaply: the same state answers 304 to its ETag.
    etag = response.headers["ETag"]
    assert etag == f'"{doc["revision"]}"'
    assert running.get("/api/status", headers={"If-None-Match": etag}).status_code == 304
    # The page carries the same revision: its refresh script compares the two.
    assert f'<meta name="revision" content="{doc["revision"]}">' in running.get("/").text


def test_backup_page_renders_the_summary_and_serves_exactly_its_files(running: Running) -> None:
    doc = running.get("/api/status").json()
    backup = doc["targets"][0]["latest_drift"]["backup"]
    page = running.get(f"/backups/default/{backup}")
    assert page.status_code == 200
    assert '<pre><code class="language-diff">' in page.text  # the summary's fences
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text and "<img" not in page.text
    folder = running.folder / "backups" / backup
    for name in (files.BACKUP_SCHEMA, files.BACKUP_SUMMARY, files.BACKUP_MANIFEST):
        got = running.get(f"/backups/default/{backup}/{name}")
        assert got.status_code == 200 and got.content == (folder / name).read_bytes()
        assert got.headers["Content-Disposition"].startswith("attachment;")
        assert "sandbox" in got.headers["Content-Security-Policy"]


def test_no_path_leaves_the_listed_backups(running: Running) -> None:
    backups = running.folder / "backups"
    [first, second] = sorted(p.name for p in backups.glob("schema-sync-*"))
    secret = running.folder / "outside.txt"
    secret.write_text("not for the page")
    # A backup folder that is a link, and a link inside a real backup, pointing outside.
    os.symlink(running.folder, backups / "schema-sync-20990101_000000")
    os.symlink(secret, backups / first / "notes.txt")
    (backups / first / files.BACKUP_MANIFEST).rename(backups / first / "manifest.saved")
    os.symlink(secret, backups / first / files.BACKUP_MANIFEST)
    try:
        for path in [
            "/backups/default/..",
            "/backups/default/%2e%2e/%2e%2e/outside.txt",
            "/backups/default/..%2F..%2Foutside.txt",
            f"/backups/default/{first}/..%2F..%2F..%2Foutside.txt",
            f"/backups/default/{first}/notes.txt",  # not one of a backup's files
            f"/backups/default/{first}/{files.BACKUP_MANIFEST}",  # a link now
            "/backups/default/schema-sync-20990101_000000",  # a linked folder
            "/backups/default/schema-sync-20990101_000000/outside.txt",
            f"/backups/other/{second}",  # no such target
            "/backups/default/schema-sync-19990101_000000",
            "/targets/%3Cscript%3E",
            "/static/../../etc/passwd",
            "/static/style.css%00",
        ]:
            response = running.get(path)
            assert response.status_code == 404, path
            assert "not for the page" not in response.text, path
        listed = [b["name"] for b in running.get("/api/status").json()["targets"][0]["backups"]]
        assert listed == [second, first]
    finally:
        (backups / "schema-sync-20990101_000000").unlink()
        (backups / first / "notes.txt").unlink()
        (backups / first / files.BACKUP_MANIFEST).unlink()
        (backups / first / "manifest.saved").rename(backups / first / files.BACKUP_MANIFEST)


def test_the_token_is_needed_checked_and_never_logged(running: Running) -> None:
    for path in ("/", "/api/status", "/metrics", "/targets/default"):
        denied = running.get(path, auth=False)
        assert denied.status_code == 401 and TOKEN not in denied.text, path
        assert denied.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = running.get("/", auth=False, headers={"Authorization": "Bearer " + TOKEN[:-1] + "X"})
    assert wrong.status_code == 401
    assert running.get("/metrics").status_code == 200  # Prometheus: `authorization:` credentials
    # A link with ?token= sets a cookie and drops the token from the address.
    clicked = running.get(f"/targets/default?token={TOKEN}", auth=False)
    assert clicked.status_code == 303 and clicked.headers["Location"] == "/targets/default"
    cookie = clicked.cookies.get("pg_schema_sync_token")
    assert cookie and TOKEN not in cookie
    assert "HttpOnly" in clicked.headers["Set-Cookie"]
    with_cookie = running.get(
        "/targets/default", auth=False, cookies={"pg_schema_sync_token": cookie}
    )
    assert with_cookie.status_code == 200
    assert running.get("/static/style.css", auth=False).status_code == 200  # nothing secret
    for line in running.daemon.lines + running.daemon.err_lines:
        assert TOKEN not in line
    requests = running.daemon.named("status_page.request")
    assert requests and all("token" not in e["path"] for e in requests)


def test_only_reads_and_only_by_its_own_name(running: Running) -> None:
    assert (
        httpx.post(running.base + "/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code
        == 405
    )
    # A page that points its own host name at 127.0.0.1 (DNS rebinding) is refused.
    rebound = running.get("/", headers={"Host": "evil.example:80"})
    assert rebound.status_code == 421 and "shop" not in rebound.text
    assert running.get("/", headers={"Host": "localhost"}).status_code == 200


def test_the_daemon_refuses_a_port_that_is_taken(running: Running, tmp_path: Path) -> None:
    port = running.base.rsplit(":", 1)[1]
    result = run_cli(
        "run",
        cwd=tmp_path,
        env={"SCHEMA_SYNC_DSN": running.db.dsn, "SCHEMA_SYNC_METRICS_PORT": port},
    )
    assert result.code == 2
    assert (
        result.err.strip()
        .splitlines()[-1]
        .startswith(f"pg-schema-sync: cannot serve metrics on 127.0.0.1:{port}")
    )
