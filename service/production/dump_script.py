"""What a pg_dump script needs from the server it is installed on, and the script without owners.

Read with psql's own lexical rules (sqllex.py): only statements that start outside every quote
and comment are pg_dump's, so a function body or a quoted name that looks like
`ALTER TABLE t OWNER TO x;` is never taken for one. pg_dump writes the statements read here on
one line each, the role last (`ALTER TABLE s.t OWNER TO app_owner;`, `GRANT SELECT ON TABLE s.t
TO reader;`); a quoted name holding a newline continues the statement on lines that start
inside the quote, which belong to it.

- `needs`: the roles that own objects (the installing role must be able to SET ROLE to them),
  the roles granted privileges (they must exist), the roles of ALTER DEFAULT PRIVILEGES FOR
  ROLE (membership again), and the extensions (CREATE EXTENSION): each with the first line
  that needs it, for the verify server's checks before anything is installed.
- `without_owners`: the script as `pg_dump --no-owner` writes it (no OWNER TO statements,
  `Owner: -` in the entry headers), and for each of its lines the original line number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from service.production.sqllex import Lexer

_HEADER_OWNER = re.compile(rb"^(-- (?:Data for )?Name: .*; Type: .*; Schema: .*; Owner: )(.*)$")
_BARE = re.compile(rb"[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*")
_DEFAULT_PRIVILEGES = b"ALTER DEFAULT PRIVILEGES FOR ROLE "
_EXTENSION = re.compile(rb"CREATE EXTENSION (?:IF NOT EXISTS )?")


@dataclass
class ScriptNeeds:
    """Name -> first 1-based line that needs it."""

    owners: dict[str, int] = field(default_factory=dict)
    grantees: dict[str, int] = field(default_factory=dict)
    default_privilege_roles: dict[str, int] = field(default_factory=dict)
    extensions: dict[str, int] = field(default_factory=dict)

    def roles(self) -> dict[str, int]:
        """Every role the script names, with its first line."""
        found: dict[str, int] = {}
        for group in (self.owners, self.grantees, self.default_privilege_roles):
            for name, line in group.items():
                found[name] = min(line, found.get(name, line))
        return found


_CANDIDATE = re.compile(
    rb"^(?:ALTER |GRANT |REVOKE |CREATE EXTENSION |-- (?:Data for )?Name: )", re.MULTILINE
)


def statements(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(line, start, end) of each statement that may matter here (ALTER, GRANT, REVOKE,
    CREATE EXTENSION, an entry's header) and starts at a top-level line: that line and the
    lines after it that start inside a quote. Other lines are skipped by a regex in C; the
    lexer still reads every quote between, so a look-alike inside a body never counts."""
    lexer = Lexer()
    line, counted, last = 1, 0, 0
    for match in _CANDIDATE.finditer(data):
        at = match.start()
        if at < last or not lexer.top_level(data, at):
            continue
        end = at
        while True:
            nl = data.find(b"\n", end)
            end = len(data) if nl < 0 else nl + 1
            if end >= len(data) or lexer.top_level(data, end):
                break
        line += data.count(b"\n", counted, at)
        counted = at
        last = end
        yield line, at, end


def needs(data: bytes) -> ScriptNeeds:
    found = ScriptNeeds()
    for line, start, end in statements(data):
        text = data[start:end].rstrip()
        if not text.endswith(b";"):
            continue
        head = text[:32]
        if head.startswith(b"ALTER ") and b" OWNER TO " in text:
            role = _trailing_role(text[:-1], b" OWNER TO ")
            if role is not None:
                found.owners.setdefault(role, line)
        elif head.startswith(_DEFAULT_PRIVILEGES[:25]) and text.startswith(_DEFAULT_PRIVILEGES):
            role, _ = _leading_identifier(text, len(_DEFAULT_PRIVILEGES))
            if role is not None:
                found.default_privilege_roles.setdefault(role, line)
            for grantee in _grantees(text[:-1]):
                found.grantees.setdefault(grantee, line)
        elif head.startswith((b"GRANT ", b"REVOKE ")):
            for grantee in _grantees(text[:-1]):
                found.grantees.setdefault(grantee, line)
        elif head.startswith(b"CREATE EXTENSION "):
            match = _EXTENSION.match(text)
            if match:
                name, _ = _leading_identifier(text, match.end())
                if name is not None:
                    found.extensions.setdefault(name, line)
    return found


def _grantees(text: bytes) -> list[str]:
    """The roles at the end of GRANT ... TO a[, b] [WITH GRANT OPTION] or REVOKE ... FROM a."""
    for tail in (b" WITH GRANT OPTION", b" CASCADE"):
        text = text.removesuffix(tail)
    granted_by = text.rfind(b" GRANTED BY ")
    if granted_by >= 0 and _trailing_role(text, b" GRANTED BY ") is not None:
        text = text[:granted_by]
    roles: list[str] = []
    end = len(text)
    while True:
        parsed = _identifier_before(text, end)
        if parsed is None:
            return []
        name, begin = parsed
        roles.append(name)
        if text[:begin].endswith(b", "):
            end = begin - 2
            continue
        if text[:begin].endswith((b" TO ", b" FROM ")):
            # PUBLIC (bare) is every role, not one; "public" quoted would be a real role.
            return [r for r in roles if r != "PUBLIC"]
        return []


def _trailing_role(text: bytes, keyword: bytes) -> str | None:
    parsed = _identifier_before(text, len(text))
    if parsed is None or not text[: parsed[1]].endswith(keyword):
        return None
    return parsed[0]


def _identifier_before(text: bytes, end: int) -> tuple[str, int] | None:
    """The identifier ending at `end` (quoted or bare) and where it begins."""
    if end == 0:
        return None
    if text[end - 1 : end] == b'"':
        pos = end - 2
        while pos >= 0:
            if text[pos : pos + 1] == b'"':
                if pos > 0 and text[pos - 1 : pos] == b'"':
                    pos -= 2  # a doubled quote inside the name
                    continue
                return _unquote(text[pos:end]), pos
            pos -= 1
        return None
    begin = end
    while begin > 0 and _BARE.fullmatch(text[begin - 1 : end]) is not None:
        begin -= 1
    if begin == end:
        return None
    return text[begin:end].decode("utf-8", "replace"), begin


def _leading_identifier(text: bytes, start: int) -> tuple[str | None, int]:
    if text[start : start + 1] == b'"':
        pos = start + 1
        while True:
            close = text.find(b'"', pos)
            if close < 0:
                return None, start
            if text[close + 1 : close + 2] == b'"':
                pos = close + 2
                continue
            return _unquote(text[start : close + 1]), close + 1
    match = _BARE.match(text, start)
    if match is None:
        return None, start
    return match.group().decode("utf-8", "replace"), match.end()


def _unquote(quoted: bytes) -> str:
    return quoted[1:-1].replace(b'""', b'"').decode("utf-8", "replace")


def without_owners(data: bytes) -> tuple[bytes, list[int]]:
    """The script as pg_dump --no-owner writes it, and the original line of each of its lines.

    pg_dump writes an owner as `ALTER ... OWNER TO role;` plus one blank line after the
    object's own statement, and names it in the entry's header; --no-owner writes neither
    (the header says `Owner: -`)."""
    out: list[bytes] = []
    origin: list[int] = []
    kept_from, kept_line = 0, 1  # the stretch of input copied as it is, and its first line

    def keep(upto: int) -> None:
        lines = data.count(b"\n", kept_from, upto)
        out.append(data[kept_from:upto])
        origin.extend(range(kept_line, kept_line + lines))

    for line, start, end in statements(data):
        text = data[start:end].rstrip()
        if text.startswith(b"ALTER ") and text.endswith(b";") and b" OWNER TO " in text:
            if _trailing_role(text[:-1], b" OWNER TO ") is None:
                continue
            keep(start)
            gone = end + 1 if data[end : end + 1] == b"\n" else end  # and its blank line
            kept_from, kept_line = gone, line + data.count(b"\n", start, gone)
            continue
        header = _HEADER_OWNER.match(data[start:end].rstrip(b"\n"))
        if header is not None:
            keep(start)
            out.append(header.group(1) + b"-\n")
            origin.append(line)
            kept_from, kept_line = end, line + 1
    keep(len(data))
    if not data.endswith(b"\n") and data:
        origin.append(kept_line + data.count(b"\n", kept_from))
    return b"".join(out), origin
