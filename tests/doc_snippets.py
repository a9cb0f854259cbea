"""The documentation's runnable snippets: how they are marked and found (docs/development/docs.md).

A fenced block right after `<!-- run -->` (or `<!-- run: exit=N -->`) is runnable; a
`<!-- run-setup ... -->` comment holds shell lines a page runs, unseen, before its next snippet.
Markers inside a fence are examples, not marks. A mark this module cannot read is an error, not
a silently skipped test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("sh", "bash", "python", "sql", "toml")
MARK = re.compile(r"<!--\s*run(?::(?P<options>[^>]*?))?\s*-->")
FENCE = re.compile(r"(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


class MarkError(ValueError):
    """A run mark that does not lead to a runnable fence."""


@dataclass(frozen=True)
class Snippet:
    page: str  # relative to the repository: README.md, docs/backups.md
    line: int  # the first line of the code, 1-based
    language: str  # one of LANGUAGES; "sh" for a setup
    code: str
    exit: int = 0  # the exit status the snippet must end with
    setup: bool = False

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """Every page a reader sees: the README and the site's Markdown."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def snippets(page: Path) -> list[Snippet]:
    """The page's runnable snippets and set-ups, in order; MarkError on a mark gone wrong."""
    name = page.relative_to(ROOT).as_posix()
    lines = page.read_text().splitlines()
    found: list[Snippet] = []
    fence: str | None = None  # the open fence's marker while inside one
    pending: tuple[int, int] | None = None  # (line of a run mark, its exit status)
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        opener = FENCE.match(text)
        if fence is not None:
            if opener and text.startswith(fence[0]) and len(opener["fence"]) >= len(fence):
                fence = None if not opener["info"].strip() else fence
        elif pending is not None and text:
            mark_line, status = pending
            if not opener:
                raise MarkError(f"{name}:{mark_line}: a run mark must be followed by a fence")
            language = opener["info"].split()[0] if opener["info"].split() else ""
            if language not in LANGUAGES:
                raise MarkError(
                    f"{name}:{mark_line}: cannot run a {language or 'plain'} fence "
                    f"(runnable: {', '.join(LANGUAGES)})"
                )
            body, end = _fence_body(lines, i, opener["fence"], name)
            found.append(Snippet(name, i + 2, language, body, exit=status))
            pending, i = None, end
        elif opener:
            fence = opener["fence"]
        elif re.match(r"<!--\s*run-setup\b", text):
            close = next((j for j in range(i, len(lines)) if "-->" in lines[j]), None)
            if close is None or close == i or lines[close].strip() != "-->":
                raise MarkError(f"{name}:{i + 1}: write a run-setup as lines ending in '-->'")
            code = "\n".join(lines[i + 1 : close]) + "\n"
            found.append(Snippet(name, i + 2, "sh", code, setup=True))
            i = close
        elif re.match(r"<!--\s*run", text):  # a typo'd mark is an error, not prose
            mark = MARK.fullmatch(text)
            if mark is None:
                raise MarkError(f"{name}:{i + 1}: unreadable run mark {text!r}")
            pending = (i + 1, _exit_status(mark["options"], f"{name}:{i + 1}"))
        i += 1
    if pending is not None:
        raise MarkError(f"{name}:{pending[0]}: a run mark at the end of the page")
    return found


def _fence_body(lines: list[str], start: int, marker: str, name: str) -> tuple[str, int]:
    """The code of the fence opened at `start` (indentation removed) and its closing line."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    for j in range(start + 1, len(lines)):
        text = lines[j].strip()
        if text.startswith(marker[0]) and set(text) == {marker[0]} and len(text) >= len(marker):
            code = [
                line[indent:] if line[:indent].isspace() else line for line in lines[start + 1 : j]
            ]
            return "\n".join(code) + "\n", j
    raise MarkError(f"{name}:{start + 1}: the fence is never closed")


def _exit_status(options: str | None, where: str) -> int:
    if options is None or not options.strip():
        return 0
    option = re.fullmatch(r"\s*exit=(\d{1,3})\s*", options)
    if option is None:
        raise MarkError(f"{where}: unknown run option {options.strip()!r} (known: exit=N)")
    return int(option[1])


def find(contains: str) -> Snippet:
    """The one runnable snippet, on any page, whose code holds `contains`."""
    hits = [s for p in pages() for s in snippets(p) if not s.setup and contains in s.code]
    assert len(hits) == 1, f"one marked snippet should hold {contains!r}, found {len(hits)}"
    return hits[0]
