"""The status page in a real browser: headless Chromium loads it from a running daemon, a
screenshot is kept (test-artifacts/, printed), and the DOM it built is checked for the hot
fix and for hostile names that must not have become markup or script."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster, free_port
from tests.conftest import FIXTURES, Database, new_database
from tests.daemon_proc import DaemonProcess

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
HOTFIX = (
    "CREATE OR REPLACE FUNCTION shop.price(qty integer) RETURNS numeric "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT qty * 1.75 $$"
)
IMG = "<img src=x onerror=document.title='pwned'>"
SCRIPT = "<script>document.title='pwned'</script>"
FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI: Chromium's sandbox refuses to start as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--window-size=1280,1400",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: ./dev test installs Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install chromium, or ./dev test)")
    return found


def browse(*args: str, timeout: float = 90) -> tuple[str, str]:
    """Run Chromium with a fresh profile; it is killed (its whole group) whatever happens."""
    with tempfile.TemporaryDirectory(prefix="pg-schema-sync-chromium-") as profile:
        proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            else:  # its helpers (zygote, GPU process) may outlive it
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        return out, err


class Dom(HTMLParser):
    """Every element and attribute the browser ended up with, and the text it shows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in_title = False
        self.title = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        # The document's title: the first <title> (the chart's bars have their own).
        self._in_title = tag == "title" and not self.title

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


def test_chromium_shows_the_hot_fix_and_hostile_names_stay_text(
    shop: Database, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "SCHEMA_SYNC_DSN": shop.dsn,
        "SCHEMA_SYNC_SCHEDULE": "0 0 1 1 *",
        "SCHEMA_SYNC_METRICS_PORT": str(port),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    shot.unlink(missing_ok=True)
    with DaemonProcess(tmp_path, env) as d:
        d.wait_for("sync.finished", timeout=60)
        shop.sql(
            f"{HOTFIX}; "
            f'CREATE TABLE public."{IMG}" (id int); '
            f'CREATE VIEW public."{SCRIPT}" AS SELECT 1 AS one'
        )
        d.send(signal.SIGHUP)
        d.wait_for("sync.finished", count=2, timeout=60)
        url = f"http://127.0.0.1:{port}/"
        _, shot_log = browse(f"--screenshot={shot}", url)
        dom_html, dom_log = browse("--dump-dom", url)
        d.send(signal.SIGTERM)
        assert d.wait_exit(20) == 0
    print(f"\nscreenshot of the status page: {shot}")
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot_log[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one

    dom = Dom()
    dom.feed(dom_html)
    text = "".join(dom.text)
    assert "shop.price" in text and "1.75" in text, "the hot-fixed function and its diff"
    # The hostile names are in the page as the text they are ...
    assert IMG in text and SCRIPT in text
    # ... and nothing of them became an element, an attribute or a script that ran.
    scripts = [a for tag, a in dom.tags if tag == "script"]
    assert scripts == [{"src": "/static/refresh.js", "defer": ""}]
    assert not [tag for tag, _ in dom.tags if tag in ("img", "iframe", "object", "embed")]
    handlers = [(tag, k) for tag, a in dom.tags for k in a if k.startswith("on")]
    assert handlers == []
    assert dom.title == "Status · pg-schema-sync" and "pwned" not in dom.title
    # Our own page lives within its policy: no inline style or script was refused.
    for log in (shot_log, dom_log):
        assert "Content Security Policy" not in log, log[-3000:]
