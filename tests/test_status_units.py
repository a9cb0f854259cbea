"""The status page's parts without a daemon: history on disk, the chart, the templates'
escaping, the token gate, the summary renderer, the backup listing, the settings."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.compare.drift import Change, Drift, DriftItem
from service.daemon.health import history_file
from service.daemon.recording import drift_record
from service.disk import history
from service.disk.backups import Manifest, write_manifest
from service.disk.history import (
    HELD,
    MAX_DIFF,
    MAX_DIFF_TOTAL,
    MAX_ITEMS,
    REFRESHED,
    History,
    ItemRecord,
    RunRecord,
)
from service.settings.links import backup_path, drift_url, page_url, target_path
from service.settings.model import SettingsError, load_settings
from service.web import pages
from service.web.auth import Gate, allowed_hosts
from service.web.chart import timeline
from service.web.listing import Listing
from service.web.model import Status, TargetStatus
from service.web.summary import summary_html

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BIDI = "admin\u202e\u2066txt.exe"
HUGE = "<script>alert(1)</script>" + "ü" * 10_000 + "\"'\x00\x1b[2J"


def item(
    name: str, diff: str = "--- files/x\n+++ production/x\n@@ -1 +1 @@\n-a\n+b\n"
) -> DriftItem:
    return DriftItem("table", name, Change.CHANGED, diff)


def status_of(*targets: TargetStatus) -> Status:
    return Status(NOW, "0.1.0", "rev-1", targets, NOW)


def target(hist: History, **kw: object) -> TargetStatus:
    base = TargetStatus(
        "default",
        "reader@db:5432/app",
        True,
        "last successful sync 1m ago",
        "*/15 * * * *",
        "UTC",
        False,
        Path("/nonexistent-backups"),
        hist,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


# -- history ----------------------------------------------------------------------------------


def test_history_round_trips_and_keeps_only_the_last_cycles(tmp_path: Path) -> None:
    h = History()
    for i in range(30):
        h = h.with_run(RunRecord(NOW + timedelta(minutes=i), "full", drift=i), keep=10)
    drift = drift_record(Drift((item(HUGE),)), NOW, "run1", None, tmp_path / "schema-sync-x", "c0")
    h = h.with_drift(drift)
    path = tmp_path / "h.json"
    history.save(path, h)
    back = history.load(path)
    assert back == h and [r.drift for r in back.runs] == list(range(20, 30))
    assert back.drift is not None and back.drift.items[0].name == HUGE  # exact, any character


def test_history_bounds_a_huge_drift(tmp_path: Path) -> None:
    big = Drift(tuple(item(f"t{i}", "x" * 100_000) for i in range(MAX_ITEMS + 50)))
    record = drift_record(big, NOW, None, None, None, None)
    assert len(record.items) == MAX_ITEMS and record.total == MAX_ITEMS + 50
    kept = sum(len(i.diff) for i in record.items)
    assert kept == MAX_DIFF_TOTAL and record.items[0].clipped == 100_000 - MAX_DIFF
    assert record.items[-1].diff == "" and record.items[-1].clipped == 100_000
    history.save(tmp_path / "h.json", History(drift=record))
    assert (tmp_path / "h.json").stat().st_size < 2 * MAX_DIFF_TOTAL


def test_a_damaged_history_is_one_clear_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    for text in ("{", "[]", '{"version": 99}', '{"version": 1, "runs": [{"at": "x"}]}'):
        path.write_text(text)
        with pytest.raises(ValueError, match=r"status history .* is unreadable"):
            history.load(path)
    assert history.load(tmp_path / "missing.json") is None


def test_the_history_lives_beside_the_state_file_wherever_it_is() -> None:
    assert history_file(Path("/a/.pg-schema-sync-state.json")) == Path(
        "/a/.pg-schema-sync-history.json"
    )
    assert history_file(Path("/state/app.json")) == Path("/state/app-history.json")


def test_a_held_drift_opens_and_resolves_a_refreshed_one_is_closed_at_once() -> None:
    held = drift_record(Drift((item("a"),)), NOW, None, "check_only", None, None)
    h = History().with_drift(held)
    assert h.drift is not None and (h.drift.files, h.drift.status) == (HELD, "open")
    later = replace(held, found_at=NOW + timedelta(hours=1), last_seen_at=NOW + timedelta(hours=1))
    h = h.with_drift(later)
    assert h.drift is not None and h.drift.found_at == NOW  # the same drift: first sighting kept
    h = h.drift_ended(NOW + timedelta(hours=2))
    assert h.drift is not None and h.drift.status == "resolved"
    refreshed = drift_record(Drift((item("a"),)), NOW, None, None, None, None)
    h = History().with_drift(refreshed).drift_ended(NOW)
    assert h.drift is not None and (h.drift.files, h.drift.status) == (REFRESHED, REFRESHED)


# -- the chart ----------------------------------------------------------------------------------


def test_timeline_marks_failures_full_height_and_scales_drift() -> None:
    runs = [
        RunRecord(NOW, "full", first_run=True),
        RunRecord(NOW, "skipped"),
        RunRecord(NOW, "full", drift=1),
        RunRecord(NOW, "full", drift=1000),
        RunRecord(NOW, "failed", cause="connection"),
    ]
    chart = timeline(runs, width=100, height=50)
    css = [b.css for b in chart.bars]
    assert css == ["first", "skipped", "drift", "drift", "failed"]
    heights = [b.height for b in chart.bars]
    assert heights[4] == 50 and heights[3] == 50 and 3 < heights[2] < heights[3]
    assert chart.bars[-1].x + chart.bars[-1].width <= 100  # newest at the right edge
    assert "failed (connection)" in chart.bars[4].title
    assert chart.summary == "5 cycles: 2 with drift, 1 failed"
    assert timeline([]).bars == ()


# -- the templates ------------------------------------------------------------------------------


def test_hostile_names_and_errors_render_as_text() -> None:
    drift = drift_record(
        Drift((item(HUGE, f"--- a\n+++ b\n+{HUGE}\n"), item(BIDI))), NOW, None, None, None, None
    )
    error = "connection to postgresql://app:Hunter2-pw@db/app failed: <b>boom</b>\x1b[31m"
    t = target(
        History((RunRecord(NOW, "failed", cause="connection", error=error),), drift),
        consecutive_failures=1,
        last_error=error,
        last_error_cause="connection",
        last_failure_at=NOW,
    )
    html = pages.index(status_of(t), {"default": []}, "etag")
    body = html[html.index("<body>") :]
    assert "<script>alert" not in body and "<b>boom" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "ü" * 10_000 in body
    assert "\x00" not in html and "\x1b" not in html and "\\x1b[2J" in body
    assert "\u202e" not in html and "admin\\u202e\\u2066txt.exe" in body
    assert "Hunter2-pw" not in html and "postgresql://app:***@db/app" in html
    assert "&#34;&#39;" in body  # the quotes: escaped, so no attribute can be closed
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/refresh.js" defer>']


def test_the_overview_keeps_its_diffs_within_a_budget_the_target_page_shows_all() -> None:
    items = tuple(item(f"t{i}", "+" + "x" * 50_000 + "\n") for i in range(8))
    drift = drift_record(Drift(items), NOW, None, None, None, None)
    t = target(History(drift=drift))
    overview = pages.index(status_of(t, replace(t, name="other")), {}, "e")
    page = pages.target_page(status_of(t), t, [], "e")
    each = max(pages.OVERVIEW_DIFF_CHARS // 2, pages.OVERVIEW_DIFF_MIN) // 50_002  # 2 targets
    assert each >= 1 and overview.count('<pre class="diff">') == 2 * each
    assert page.count('<pre class="diff">') == 8
    assert "Diff not shown on the overview" in overview


def test_impact_orders_the_items_when_the_drift_has_it() -> None:
    items = [
        ItemRecord("table", "c", "changed", "", impact="compatible"),
        ItemRecord("table", "b", "removed", "", impact="breaking"),
        ItemRecord("table", "a", "changed", "", impact=None),
    ]
    assert [s.item.name for s in pages.shown_items(items, None)] == ["b", "c", "a"]


# -- the gate -----------------------------------------------------------------------------------


def test_the_token_passes_by_header_query_or_cookie_and_nothing_else() -> None:
    gate = Gate("T0ken-T0ken-T0ken-1", None)
    ok = {"Authorization": "Bearer T0ken-T0ken-T0ken-1"}
    assert gate.admits(ok, None, None)
    assert gate.admits({"Authorization": "bearer   T0ken-T0ken-T0ken-1 "}, None, None)
    assert gate.admits({}, "T0ken-T0ken-T0ken-1", None)
    assert gate.admits({}, None, gate.cookie_value())
    for headers, query, cookie in [
        ({}, None, None),
        ({"Authorization": "Basic T0ken-T0ken-T0ken-1"}, None, None),
        ({"Authorization": "Bearer T0ken-T0ken-T0ken-"}, None, None),
        ({}, "T0ken-T0ken-T0ken-1\x00", None),
        ({}, None, "T0ken-T0ken-T0ken-1"),  # the cookie is an HMAC, not the token itself
        ({}, "\udcff", None),  # undecodable query bytes
    ]:
        assert not gate.admits(headers, query, cookie), (headers, query, cookie)
    assert Gate(None, None).admits({}, None, None)


def test_a_loopback_listener_answers_only_to_loopback_names_and_public_url() -> None:
    hosts = allowed_hosts("127.0.0.1", "https://schema-sync.example:8443/x")
    gate = Gate(None, hosts)
    for good in ("127.0.0.1:9187", "localhost", "[::1]:9187", "schema-sync.example", "127.0.0.2"):
        assert gate.host_allowed(good), good
    for bad in ("evil.example", "evil.example:9187", "127.0.0.1.evil.example", "", "[::1"):
        assert not gate.host_allowed(bad), bad
    assert allowed_hosts("0.0.0.0", None) is None  # noqa: S104 - any name may reach it
    assert allowed_hosts("::1", None) is not None


# -- the summary --------------------------------------------------------------------------------


def test_summary_fences_become_pre_and_nothing_becomes_markup_or_a_request() -> None:
    text = (
        "# Schema sync\n\n| a | b |\n|---|---|\n| `x` | 1 |\n\n"
        "<script>alert(1)</script>\n\n[click](javascript:alert(1)) ![i](http://evil/i.png) "
        "<http://evil/> \x1b[31m\n\n```diff\n-<img src=x onerror=alert(1)>\n+ok\n```\n"
    )
    html, clipped = summary_html(text)
    assert not clipped
    assert '<pre><code class="language-diff">-&lt;img src=x onerror=alert(1)&gt;' in html
    assert "<table>" in html and "<script>" not in html and "<img" not in html
    assert "<a " not in html and "href" not in html and "src=" not in html.replace("src=x", "")
    assert "\x1b" not in html and "\\x1b[31m" in html
    _, clipped = summary_html("x" * 3_000_000)
    assert clipped


# -- the listing --------------------------------------------------------------------------------


def test_listing_rereads_a_backup_only_when_its_folder_changed(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    folder = backups / "schema-sync-20261201_120000"
    folder.mkdir(parents=True)
    manifest = Manifest(status="started", kind="sync", created_at=NOW)
    write_manifest(folder, manifest)
    (backups / "schema-sync-20261201_130000").symlink_to(tmp_path)  # never listed
    (backups / "schema-sync-20261201_140000").write_text("a file, not a backup")
    listing = Listing()
    rows, sig1 = listing.backups("default", backups)
    assert [(r.name, r.status) for r in rows] == [(folder.name, "started")]
    assert listing.backups("default", backups)[1] == sig1
    time.sleep(0.01)
    write_manifest(folder, manifest.finished("done"))  # tmp + rename: the folder's mtime moves
    rows, sig2 = listing.backups("default", backups)
    assert rows[0].status == "done" and sig2 != sig1
    assert rows[0].files == ("manifest.json",)
    assert listing.find("default", backups, "..") is None
    assert listing.find("default", backups, "schema-sync-20261201_130000") is None
    assert listing.backups("default", tmp_path / "missing")[0] == []


# -- links and settings -------------------------------------------------------------------------


def test_links_quote_every_part() -> None:
    assert target_path("db.eu-1") == "/targets/db.eu-1"
    assert backup_path("a/b", "../x") == "/backups/a%2Fb/..%2Fx"
    assert page_url(None, "/x") is None
    assert drift_url("https://s.example/", "app", None) == "https://s.example/targets/app"
    assert drift_url("https://s.example", "app", "b1") == "https://s.example/backups/app/b1"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("schema-sync.internal", "not an http(s) URL"),
        ("javascript:alert(1)", "not an http(s) URL"),
        ("https://bot:Secret-pw1@s.example", "must not hold a user or password"),
        ("https://s.example/?a=1", "must not hold a query"),
        ("https://s.example/<x>", "characters a chat message would break on"),
    ],
)
def test_a_bad_public_url_is_one_line_that_never_echoes_it(
    value: str, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError) as raised:
        load_settings(public_url=value)
    message = str(raised.value)
    assert why in message and "\n" not in message and "Secret-pw1" not in message
    assert message.startswith("invalid setting public_url=***")


def test_a_short_status_token_is_refused_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCHEMA_SYNC_STATUS_TOKEN", "short-Tok")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "at least 16 characters" in str(raised.value) and "short-Tok" not in str(raised.value)
    monkeypatch.setenv("SCHEMA_SYNC_STATUS_TOKEN", "long-enough-token-0123")
    settings = load_settings(public_url="https://s.example/")
    assert settings.public_url == "https://s.example"
    assert "long-enough" not in repr(settings)


def test_listing_of_a_running_daemon_sees_what_each_writer_changes(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    old = backups / "schema-sync-20261201_100000"
    new = backups / "schema-sync-20261201_110000"
    for folder in (old, new):
        folder.mkdir(parents=True)
        write_manifest(folder, Manifest(status="done", kind="sync", created_at=NOW))
    write_manifest(new, Manifest(status="started", kind="sync", created_at=NOW))
    listing = Listing()
    rows, _ = listing.backups("default", backups, generation=5)
    assert [r.status for r in rows] == ["done", "started"]
    time.sleep(0.01)
    # A run finishing its backup: a started one is looked at on every view.
    write_manifest(new, Manifest(status="done", kind="sync", created_at=NOW))
    assert [r.status for r in listing.backups("default", backups, 5)[0]] == ["done", "done"]
    time.sleep(0.01)  # past the file system clock's tick: the folder's mtime moves
    # The runner ran (generation 6) and folded a repeated failure into its newest backup.
    write_manifest(new, Manifest(status="failed", kind="sync", created_at=NOW, attempts=2))
    assert [r.attempts for r in listing.backups("default", backups, 6)[0]] == [1, 2]
    time.sleep(0.01)
    # A backup made by hand: the folder's own mtime moves, everything is listed again.
    third = backups / "schema-sync-20261201_120000"
    third.mkdir()
    write_manifest(third, Manifest(status="done", kind="rollback", created_at=NOW))
    rows, _ = listing.backups("default", backups, 6)
    assert [r.name for r in rows] == [old.name, new.name, third.name]
    assert rows[2].kind == "rollback"


def test_a_section_is_rendered_again_only_when_what_it_shows_changed() -> None:
    drift = drift_record(Drift((item("a"),)), NOW, None, None, None, None)
    t = target(History((RunRecord(NOW, "full"),), drift), generation=1)
    first = pages.section(t, [], False, None, None, True)
    same = replace(t)  # a new snapshot of an unchanged target: equal, not identical
    assert pages.section(same, [], False, None, None, True) is first
    sicker = replace(t, healthy=False, health="overdue since 12:00")
    changed = pages.section(sicker, [], False, None, None, True)
    assert changed is not first and "overdue since 12:00" in changed
    ran = replace(t, history=t.history.with_run(RunRecord(NOW, "failed", cause="disk"), 10))
    assert "failed (disk)" in pages.section(ran, [], False, None, None, True)
