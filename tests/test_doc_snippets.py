"""Every snippet the README and the docs mark as runnable runs, as a reader would run it.

Each page is one session: a fresh project folder, its own copy of the demo's production
database, the marked snippets in order (docs/development/docs.md, *Runnable snippets*).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from tests.doc_snippets import ROOT, MarkError, Snippet, pages, snippets

DEMO_SCHEMA = ROOT / "service" / "demo" / "sql" / "production.sql"
TIMEOUT_S = 180
FAILED_AT = "doc-snippet: failed at line"


def runnable_pages() -> list[str]:
    """Pages with a runnable snippet, and pages whose marks are broken (their test then fails)."""
    found = []
    for page in pages():
        try:
            marked = bool(snippets(page))
        except MarkError:
            marked = True
        if marked:
            found.append(page.relative_to(ROOT).as_posix())
    return found


@pytest.fixture(scope="module")
def template(cluster: ScratchCluster) -> Iterator[str]:
    """The demo's production schema, loaded once; each page gets a copy (CREATE ... TEMPLATE)."""
    name = f"docs_{uuid.uuid4().hex[:8]}"
    cluster.create_database(name, DEMO_SCHEMA)
    yield name
    cluster.drop_database(name)


class Session:
    """One page's reader: a project folder, a database, an environment like a user's shell."""

    def __init__(self, cluster: ScratchCluster, database: str, folder: Path) -> None:
        self.cluster, self.database = cluster, database
        self.project, home = folder / "project", folder / "home"
        self.project.mkdir()
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
        tools = [str(Path(sys.executable).parent), str(cluster.clientdir), str(cluster.bindir)]
        env.update(
            PATH=os.pathsep.join([*tools, env.get("PATH", "/usr/bin:/bin")]),
            HOME=str(home),
            PGHOST=str(cluster.sockdir),
            PGPORT=str(cluster.port),
            PGUSER=cluster.superuser,
            PGDATABASE=database,
        )
        self.env = env

    def run(self, snippet: Snippet) -> None:
        argv, stdin = self.command(snippet)
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                cwd=self.project,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{snippet.where}: the {snippet.language} snippet ran over {TIMEOUT_S} s")
        kind = "set-up" if snippet.setup else f"{snippet.language} snippet"
        failed_at = re.findall(rf"^{FAILED_AT} (\d+)$", proc.stderr, re.MULTILINE)
        from_last = bool(failed_at) and int(failed_at[-1]) - 1 in last_command(snippet.code)
        problem = ""
        if proc.returncode != snippet.exit:
            problem = f"exited {proc.returncode}, expected {snippet.exit}"
        elif snippet.exit and snippet.language in ("sh", "bash") and not from_last:
            # The expected status must come from the last command, not from an earlier one
            # that failed by chance with the same status (bash -e stops at the first).
            problem = f"exited {snippet.exit}, but not from its last command"
        if problem:
            pytest.fail(
                f"{snippet.where}: the {kind} {problem}\n--- code\n{snippet.code}"
                f"--- stdout\n{proc.stdout[-3000:]}--- stderr\n{proc.stderr[-3000:]}",
                pytrace=False,
            )

    def command(self, snippet: Snippet) -> tuple[list[str], str | None]:
        if snippet.language in ("sh", "bash"):
            trap = f"trap 'echo \"{FAILED_AT} $LINENO\" >&2' ERR\n"  # one line: code's n is n+1
            return ["bash", "-e", "-o", "pipefail", "-c", trap + snippet.code], None
        if snippet.language == "python":
            return [sys.executable, "-c", snippet.code], None
        if snippet.language == "sql":
            psql = str(self.cluster.clientdir / "psql")
            return [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"], snippet.code
        return self.config_file(snippet)

    def config_file(self, snippet: Snippet) -> tuple[list[str], str | None]:
        """Write a TOML snippet where its first line says, then load it as the settings would."""
        first = snippet.code.splitlines()[0] if snippet.code.strip() else ""
        relative = Path(first.removeprefix("#").strip())
        assert first.startswith("#") and relative.suffix == ".toml", (
            f"{snippet.where}: a runnable toml snippet starts with '# path/to/file.toml'"
        )
        target = (self.project / relative).resolve()
        assert target.is_relative_to(self.project.resolve()), f"{snippet.where}: outside"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(snippet.code)
        load = (
            "import sys; from pathlib import Path; "
            "from service.settings.model import SettingsError, load_settings\n"
            "try:\n    load_settings(Path(sys.argv[1]))\n"
            "except SettingsError as exc:\n    sys.exit(f'invalid config: {exc}')\n"
        )
        return [sys.executable, "-c", load, str(target)], None


def last_command(code: str) -> range:
    """The 1-based lines of a shell snippet's last command (with its continuation lines)."""
    lines = code.rstrip("\n").split("\n")
    end = len(lines)
    while end > 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    start = end
    while start > 1 and lines[start - 2].rstrip().endswith("\\"):
        start -= 1
    return range(start, end + 1)


def roles(cluster: ScratchCluster) -> set[str]:
    return set(cluster.psql("postgres", "SELECT rolname FROM pg_roles").split())


@pytest.mark.parametrize("page", runnable_pages())
def test_marked_snippets_run(
    page: str, cluster: ScratchCluster, template: str, tmp_path: Path
) -> None:
    marked = snippets(ROOT / page)
    database = f"docs_page_{uuid.uuid4().hex[:8]}"
    before = roles(cluster)
    cluster.psql("postgres", f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    try:
        session = Session(cluster, database, tmp_path)
        for snippet in marked:
            session.run(snippet)
    finally:
        cluster.drop_database(database)
        for role in sorted(roles(cluster) - before):  # roles are cluster-wide: leave none
            cluster.psql("postgres", f'DROP ROLE "{role}"')


def test_every_run_mark_leads_to_a_runnable_fence() -> None:
    problems = []
    for page in pages():
        try:
            snippets(page)
        except MarkError as exc:
            problems.append(str(exc))
    assert problems == []


def test_the_first_hour_is_tested() -> None:
    """The README's own steps and the webhook receiver stay marked."""
    readme = [s.code for s in snippets(ROOT / "README.md")]
    assert any("pg_read_all_data" in code for code in readme)
    assert "pg-schema-sync sync\n" in readme and "pg-schema-sync check\n" in readme
    marked = [s for p in pages() for s in snippets(p)]
    assert {s.language for s in marked} >= {"sh", "python", "sql", "toml"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<!-- run -->\nSome prose.\n", "must be followed by a fence"),
        ("<!-- run -->\n```json\n{}\n```\n", "cannot run a json fence"),
        ("<!-- run: exit=one -->\n```sh\ntrue\n```\n", "unknown run option"),
        ("<!-- run -->\n```sh\ntrue\n", "never closed"),
        ("<!-- run -->\n", "end of the page"),
        ("<!-- run-setup pg-schema-sync sync -->\n", "lines ending in '-->'"),
        ("<!-- runn -->\n```sh\ntrue\n```\n", "unreadable run mark"),
    ],
)
def test_a_broken_mark_is_an_error_not_a_skipped_snippet(
    text: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.doc_snippets.ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(MarkError, match=problem):
        snippets(page)


def test_marks_inside_a_fence_are_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.doc_snippets.ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text(
        "````markdown\n<!-- run -->\n```sh\nfalse\n```\n````\n\n"
        "- In a list:\n\n  <!-- run: exit=1 -->\n  ```sh\n  false\n  ```\n"
    )
    (only,) = snippets(page)
    assert (only.code, only.exit, only.line) == ("false\n", 1, 12)


@pytest.mark.parametrize(
    ("code", "passes"),
    [
        ("true\nfalse\n", True),
        ("true\ntest 1 = \\\n  2   # a drift\n\n", True),
        ("false\ntrue\n", False),  # bash -e stopped early with the status the mark expects
        ("true\n", False),
    ],
)
def test_an_expected_failure_comes_from_the_last_command(
    code: str, passes: bool, cluster: ScratchCluster, tmp_path: Path
) -> None:
    session = Session(cluster, "postgres", tmp_path)
    snippet = Snippet("page.md", 3, "sh", code, exit=1)
    if passes:
        session.run(snippet)
    else:
        with pytest.raises(pytest.fail.Exception):
            session.run(snippet)
