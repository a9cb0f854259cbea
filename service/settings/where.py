"""Where in a file a setting was written: the line of a TOML key or table, of a .env variable.

Only for messages (an unknown key, `pg-schema-sync config`'s origins): the files are parsed
by tomllib and python-dotenv, never by these scans. TOML syntax is scanned just enough to skip
multi-line strings and arrays; a key it cannot place has no line, never a wrong one.
"""

from __future__ import annotations

import re
from pathlib import Path

_KEY = re.compile(r"""\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*[=.]""")
_TABLE = re.compile(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_ENV_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=")


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def toml_keys(path: Path) -> dict[tuple[str, int | None, str], int]:
    """(table, index of the array-of-tables entry or None, key) -> 1-based line, for the keys
    at the top of each table (table "" is the root)."""
    found: dict[tuple[str, int | None, str], int] = {}
    table, index = "", None
    counts: dict[str, int] = {}
    open_string: str | None = None  # the closing quotes of a multi-line string being skipped
    depth = 0  # open [ of a multi-line array being skipped
    for number, line in enumerate(_lines(path), start=1):
        if open_string is not None:
            if open_string in line:
                open_string = None
            continue
        if depth:
            depth = max(0, depth + line.count("[") - line.count("]"))
            continue
        header = _TABLE.match(line) if line.lstrip().startswith("[") else None
        if header is not None:
            table = header.group(1).strip()
            if line.lstrip().startswith("[["):
                index = counts.get(table, 0)
                counts[table] = index + 1
                found[(table, index, "")] = number
            else:
                index = None
                found[(table, None, "")] = number
            continue
        key = _KEY.match(line)
        if key is None:
            continue
        name = next(g for g in key.groups() if g is not None)
        found.setdefault((table, index, name), number)
        rest = line[key.end() :]
        for quotes in ('"""', "'''"):
            if rest.count(quotes) == 1:
                open_string = quotes
        if open_string is None and rest.count("[") > rest.count("]"):
            depth = rest.count("[") - rest.count("]")
    return found


def toml_line(path: Path, key: str, table: str = "", index: int | None = None) -> int | None:
    """The line of `key` in the root (or in `table`, entry `index`), or of the table itself
    when key is ""."""
    return toml_keys(path).get((table, index, key))


def dotenv_lines(path: Path) -> dict[str, int]:
    """Variable name (upper case) -> the 1-based line that sets it last (the one that counts)."""
    found: dict[str, int] = {}
    for number, line in enumerate(_lines(path), start=1):
        match = _ENV_LINE.match(line)
        if match:
            found[match.group(1).upper()] = number
    return found
