"""Object names are attacker-controlled text: they must not inject markdown into
sync-summary.md nor raw escape sequences into a terminal, and JSON must keep them exact."""

from __future__ import annotations

import re
from pathlib import Path

from service.demo.cluster import ScratchCluster
from tests.conftest import Database, run_cli

# Each name fits PostgreSQL's 63 bytes; together they try every trick at once.
HEADING = "x\n# Injected heading\n"
IMAGE = "![pwned](http://evil.example/i.png)"
SCRIPT = "<script>alert(1)</script>"
ESCAPES = "\x1b[2J\x1b[31mred\x1b]0;title\x07"
TICKS = "a` **bold** `b"
BODY = "SELECT '```\n# Injected from a body\n<img src=x onerror=alert(1)>'::text"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _hostile(db: Database) -> None:
    statements = [f"CREATE TABLE public.{_quote(n)} (id int)" for n in (HEADING, IMAGE, TICKS)]
    statements.append(f"CREATE VIEW public.{_quote(SCRIPT)} AS SELECT 1 AS one")
    statements.append(f"CREATE SEQUENCE public.{_quote(ESCAPES)}")
    statements.append(
        f"CREATE FUNCTION public.{_quote('body' + chr(27) + '[5m')}() RETURNS text "
        f"LANGUAGE sql AS $body$ {BODY} $body$"
    )
    db.sql("; ".join(statements))


def _outside_code(markdown: str) -> str:
    """The text a markdown viewer would interpret: fenced blocks and code spans removed
    (CommonMark: a fence closes only on a run of at least its own length)."""
    kept, fence = [], ""
    for line in markdown.split("\n"):
        run = re.match(r"(`{3,}|~{3,})", line)
        if fence:
            closes = run and run.group(1)[0] == fence[0] and len(run.group(1)) >= len(fence)
            if run and closes and not line[len(run.group(1)) :].strip():
                fence = ""
            continue
        if run:
            fence = run.group(1)
            continue
        kept.append(re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", line))
    return "\n".join(kept)


def test_hostile_names_stay_text_in_the_summary_and_on_the_terminal(
    db: Database, cluster: ScratchCluster, tmp_path: Path
) -> None:
    env = {"SCHEMA_SYNC_DSN": db.dsn}
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    _hostile(db)
    synced = run_cli("sync", cwd=tmp_path, env=env)
    assert synced.code == 0, synced.err
    summary = sorted((tmp_path / "backups").glob("*/sync-summary.md"))[-1]
    text = summary.read_text()
    assert "\x1b" not in text and "\x07" not in text
    rendered = _outside_code(text)
    headings = [ln for ln in rendered.split("\n") if ln.lstrip().startswith("#")]
    assert all(h.startswith(("# Schema sync", "## ", "### ", "#### ")) for h in headings), headings
    assert not any("Injected" in h for h in headings), headings
    for raw in ("![", "<script", "<img", "**bold**"):
        assert raw not in rendered, raw
    # Every name is still there, readable, once per list line.
    assert "x\\n# Injected heading\\n" in text and "\\x1b[31mred" in text

    assert "\x1b" not in synced.out + synced.err  # sync lists the drifted names too

    db.sql(f"DROP SEQUENCE public.{_quote(ESCAPES)}; DROP TABLE public.{_quote(HEADING)}")
    shown = run_cli("check", "--diff", cwd=tmp_path, env=env)
    assert shown.code == 1, shown.err
    assert "\x1b" not in shown.out + shown.err and "\x07" not in shown.out
    assert "\\x1b[2J\\x1b[31mred\\x1b]0;title\\x07" in shown.out  # visible, not obeyed
    listed = [ln for ln in shown.out.splitlines() if ln.startswith("  breaking    removed")]
    assert len(listed) == 2, shown.out  # a newline in a name does not start a new line

    as_json = run_cli("check", "--json", cwd=tmp_path, env=env).json()
    names = [c["name"] for c in as_json["changes"]]
    assert any(ESCAPES in n for n in names) and any(HEADING in n for n in names), names
