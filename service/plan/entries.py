"""pg_dump's table of contents with each entry's SQL: `pg_restore --verbose` output, parsed.

A plan creates objects with the SQL pg_dump writes for them: proven by every restore, and
exact for every family. `pg_dump -Fc` keeps the dependencies between entries (a plain dump
keeps only a few); `pg_restore --verbose -f -` prints each entry as plain SQL under a header
naming its dump id, its catalog row and its dependencies:

    --
    -- TOC entry 221 (class 1259 OID 16509)
    -- Dependencies: 9 906
    -- Name: trails; Type: TABLE; Schema: fam; Owner: postgres
    -- Data Pos: 0
    --

A header counts only where it starts outside every quote and comment (sqllex.Lexer, as the
export's splitter): a body may hold any text, header look-alikes included. The `SET
default_tablespace` / `default_table_access_method` lines pg_restore prints between entries
belong to the entry after them; each entry records the values in force where it stands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from service.production.dump_coverage import OUTSIDE_INVENTORY, TOC_KINDS
from service.production.sqllex import Lexer

_HEADER = re.compile(
    rb"--\n-- TOC entry (\d+) \(class (\d+) OID (\d+)\)\n"
    rb"(?:-- Dependencies:((?: \d+)*)\n)?"
    rb"-- (?:Data for )?Name: ([^\n]*)\n"
    rb"(?:-- Data Pos: [^\n]*\n)?"
    rb"--\n"
)
_CANDIDATE = re.compile(rb"\n--\n-- TOC entry ")
_SESSION = re.compile(rb"SET (default_tablespace|default_table_access_method) = ([^\n]*);\n\n\Z")
_FOOTER = re.compile(rb"\n--\n-- PostgreSQL database dump complete\n--\n")
# Longest first: "TEXT SEARCH CONFIGURATION" before "CONFIGURATION"-like prefixes.
_DESCS = sorted({*TOC_KINDS, *OUTSIDE_INVENTORY}, key=len, reverse=True)


class EntriesError(ValueError):
    """The text is not pg_restore --verbose output as this module knows it."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One TOC entry: what pg_restore would run for it, and where it stands."""

    dump_id: int
    classid: int  # 0 for entries of no catalog row of their own (comments, ACLs, ...)
    objid: int
    deps: tuple[int, ...]
    desc: str  # TABLE, INDEX, COMMENT, FK CONSTRAINT, ...
    tag: str  # pg_dump's unquoted name: `trails`, `segments segments_pkey`
    namespace: str | None
    sql: str  # the definition and its ALTER ... OWNER TO, as pg_restore prints them
    position: int  # order in pg_restore's output: a valid creation order
    session: tuple[tuple[str, str], ...] = ()  # SET default_tablespace / _table_access_method

    @property
    def catalog(self) -> tuple[int, int]:
        return (self.classid, self.objid)


@dataclass(frozen=True)
class Archive:
    """A database's entries by dump id, with the text that installs it all (for a scratch copy)."""

    entries: Mapping[int, Entry] = field(default_factory=dict)
    script: str = ""

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries.values())

    def by_catalog(self) -> dict[tuple[int, int], list[Entry]]:
        found: dict[tuple[int, int], list[Entry]] = {}
        for e in self:
            if e.classid:
                found.setdefault(e.catalog, []).append(e)
        return found


def parse(text: bytes) -> Archive:
    """The entries of `pg_restore --verbose -f -` output (UTF-8)."""
    lexer = Lexer()
    headers: list[tuple[int, re.Match[bytes]]] = []
    for found in _CANDIDATE.finditer(text):
        start = found.start() + 1
        if not lexer.top_level(text, start):
            continue  # inside a body: an object's text, not pg_restore's
        header = _HEADER.match(text, start)
        if header is None:
            raise EntriesError(f"unreadable TOC header at byte {start}")
        headers.append((start, header))
    if not headers:
        return Archive({}, text.decode())
    footer = _FOOTER.search(text, headers[-1][1].end())
    end_of_last = footer.start() + 1 if footer else len(text)
    entries: dict[int, Entry] = {}
    session: dict[str, str] = {}
    for n, (_, header) in enumerate(headers):
        stop = headers[n + 1][0] if n + 1 < len(headers) else end_of_last
        body = text[header.end() : stop].lstrip(b"\n")
        here = tuple(sorted(session.items()))
        while setting := _SESSION.search(body):  # they belong to the next entry
            session[setting.group(1).decode()] = setting.group(2).decode()
            body = body[: setting.start()]
        entry = _entry(header, body.decode(), n, here)
        entries[entry.dump_id] = entry
    return Archive(_owned_sequences(entries), text.decode())


def _owned_sequences(entries: dict[int, Entry]) -> dict[int, Entry]:
    """pg_dump makes a sequence OWNED BY a column depend on its table, to print it after the
    table; what needs the table is only its SEQUENCE OWNED BY entry. Moved there, so that a
    new column's default can use a new sequence (the column, not the sequence, needs the
    table)."""
    for owned in [e for e in entries.values() if e.desc == "SEQUENCE OWNED BY" and e.deps]:
        sequence = entries.get(owned.deps[0])
        if sequence is None or sequence.desc != "SEQUENCE":
            continue
        tables = tuple(d for d in sequence.deps if d in entries and entries[d].desc == "TABLE")
        if tables:
            keep = tuple(d for d in sequence.deps if d not in tables)
            entries[sequence.dump_id] = replace(sequence, deps=keep)
            entries[owned.dump_id] = replace(owned, deps=(*owned.deps, *tables))
    return entries


def _entry(
    header: re.Match[bytes], sql: str, position: int, session: tuple[tuple[str, str], ...]
) -> Entry:
    name = header.group(5).decode()
    desc, tag, namespace = _name_line(name)
    deps = tuple(int(d) for d in (header.group(4) or b"").split())
    return Entry(
        dump_id=int(header.group(1)),
        classid=int(header.group(2)),
        objid=int(header.group(3)),
        deps=deps,
        desc=desc,
        tag=tag,
        namespace=namespace,
        sql=_without_trailing_comments(sql),
        position=position,
        session=session,
    )


def _name_line(line: str) -> tuple[str, str, str | None]:
    """(desc, tag, namespace) of `Name: TAG; Type: DESC; Schema: NS; Owner: O`.

    Names are not quoted there; the last `; Type: <known description>; Schema: ` decides,
    as the export's splitter reads these lines."""
    best: tuple[int, str] | None = None
    for desc in _DESCS:
        at = line.rfind(f"; Type: {desc}; Schema: ")
        if at >= 0 and (best is None or at > best[0]):
            best = (at, desc)
    if best is None:
        raise EntriesError(f"unknown TOC entry type in {line[:120]!r}")
    at, desc = best
    rest = line[at + len(f"; Type: {desc}; Schema: ") :]
    namespace = rest.split("; Owner: ", 1)[0]
    return desc, line[:at], None if namespace == "-" else namespace


def _without_trailing_comments(sql: str) -> str:
    """The entry's SQL without pg_restore's own comment lines after it (`-- Completed on`),
    and with its ALTER ... OWNER TO line right under the definition (pg_restore leaves two
    blank lines between them)."""
    lines = sql.rstrip("\n").split("\n")
    while len(lines) > 1 and (lines[-1].startswith("-- ") or not lines[-1].strip()):
        lines.pop()
    text = "\n".join(lines)
    head, separator, owner = text.rpartition(";\n\n\nALTER ")
    if separator and "\n" not in owner and " OWNER TO " in owner:
        text = f"{head};\nALTER {owner}"
    return text + "\n"
