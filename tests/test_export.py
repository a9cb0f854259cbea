"""pg_dump export and its normalisation, against a real server and a real pg_dump."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

from bench import generate
from service.production.export import (
    _FUNCTION_NAME_PREFIXES,
    _FUNCTION_TYPES,
    _HEADER,
    ExportError,
    ExportOptions,
    _Normalised,
    _Splitter,
    check_versions,
    export_schema,
    pg_dump_argv,
)
from service.production.sqllex import Lexer
from tests.conftest import Database


async def _export(db: Database, out: Path, options: ExportOptions | None = None) -> bytes:
    await export_schema(db.conninfo, options or ExportOptions(), out / "s.sql", out / "f.sql")
    return (out / "s.sql").read_bytes()


async def test_two_exports_of_an_unchanged_database_are_byte_identical(
    db: Database, tmp_path: Path
) -> None:
    db.sql("CREATE TABLE t (id int PRIMARY KEY); COMMENT ON TABLE t IS 'x'")
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    first = await _export(db, tmp_path / "1")
    second = await _export(db, tmp_path / "2")
    assert first == second
    assert b"Dumped from" not in first and b"Dumped by" not in first


async def test_restrict_key_follows_content_and_pairs_up(db: Database, tmp_path: Path) -> None:
    db.sql("CREATE TABLE t (id int)")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    before = (await _export(db, tmp_path / "a")).decode()
    db.sql("COMMENT ON TABLE t IS 'changed'")
    after = (await _export(db, tmp_path / "b")).decode()
    keys = [re.findall(r"^\\(?:un)?restrict (\w+)$", text, re.M) for text in (before, after)]
    if not keys[0]:
        pytest.skip("this pg_dump has no \\restrict (older than 15.14)")
    assert len(set(keys[0])) == 1 and len(keys[0]) == 2  # \restrict and \unrestrict agree
    assert keys[0][0] != keys[1][0]  # a different schema gives a different key
    assert keys[0][0] != "0" * 32


def test_splitter_copies_function_entries_with_their_comments_and_grants(tmp_path: Path) -> None:
    dump = b"""--
-- PostgreSQL database dump
--

\\restrict abc

SET statement_timeout = 0;

--
-- Name: f(integer); Type: FUNCTION; Schema: public; Owner: me
--

CREATE FUNCTION public.f(a integer) RETURNS integer
    LANGUAGE sql
    AS $$select 1$$;

--
-- Name: FUNCTION f(a integer); Type: COMMENT; Schema: public; Owner: me
--

COMMENT ON FUNCTION public.f(a integer) IS 'hi';

--
-- Name: t; Type: TABLE; Schema: public; Owner: me
--

CREATE TABLE public.t (id integer);

--
-- Name: FUNCTION f(a integer); Type: ACL; Schema: public; Owner: me
--

GRANT ALL ON FUNCTION public.f(a integer) TO bob;

\\unrestrict abc
"""
    schema, functions = _Normalised(tmp_path / "s"), _Normalised(tmp_path / "f")
    splitter = _Splitter(schema, functions)
    for line in dump.splitlines(keepends=True):
        splitter.feed(line)
    splitter.close()
    schema.finish()
    functions.finish()
    fn = (tmp_path / "f").read_text()
    assert "CREATE FUNCTION public.f" in fn and "COMMENT ON FUNCTION" in fn
    assert "GRANT ALL ON FUNCTION" in fn
    assert "CREATE TABLE" not in fn
    assert fn.count("--\n-- Name:") == 3  # each entry keeps its header block, once
    full = (tmp_path / "s").read_text()
    assert "CREATE TABLE public.t" in full and "abc" not in full


def test_password_never_reaches_pg_dump_argv() -> None:
    argv = pg_dump_argv("/usr/bin/pg_dump", ExportOptions(schemas=("a",), owners=False))
    assert argv[:2] == ["/usr/bin/pg_dump", "--schema-only"]
    assert "--lock-wait-timeout=5000ms" in argv and "--no-owner" in argv
    assert "--schema=a" in argv  # a pattern, passed as given
    assert "--no-password" in argv  # never prompts: the password comes from the environment
    assert not any(a.startswith("--password") or "postgresql://" in a for a in argv)


def test_pg_dump_older_than_server_is_refused_with_what_to_install() -> None:
    too_old = r"pg_dump 14.2 is older than the server \(PostgreSQL 16\)"
    with pytest.raises(ExportError, match=too_old):
        check_versions(14, "14.2", 160_001)
    check_versions(16, "16.1", 150_004)  # newer pg_dump dumps older servers


# -- the chunked splitter against the line-by-line one it replaced ----------------------------

_REF_HEADER = re.compile(rb"^-- (?:Data for )?Name: (.*); Type: ([A-Z ]+); Schema: ")


class _LineSplitter:
    """The reference: one line at a time, the top-level lines known beforehand."""

    def __init__(self, schema: _Normalised, functions: _Normalised, top: set[int]) -> None:
        self.schema, self.functions, self.top = schema, functions, top
        self.in_preamble = True
        self.in_function = False
        self.pending_separator = False

    def feed(self, line: bytes, offset: int = -1) -> None:
        if line == b"--\n" and not self.pending_separator:
            self.pending_separator = True
            return
        if line.startswith(b"-- ") and offset in self.top:
            header = _REF_HEADER.match(line)
            if header:
                self.in_preamble = False
                name, kind = header.group(1), header.group(2)
                self.in_function = kind in _FUNCTION_TYPES or (
                    kind in (b"COMMENT", b"ACL") and name.startswith(_FUNCTION_NAME_PREFIXES)
                )
        if self.pending_separator:
            self.pending_separator = False
            self._route(b"--\n")
        self._route(line)

    def _route(self, line: bytes) -> None:
        self.schema.write(line)
        if self.in_preamble or self.in_function:
            self.functions.write(line)

    def close(self) -> None:
        if self.pending_separator:
            self.pending_separator = False
            self._route(b"--\n")


def _top_level_lines(body: bytes, standard_strings: bool) -> set[int]:
    """Offsets of the lines of `body` that start outside quotes, lexed in one piece."""
    lexer = Lexer(standard_strings)
    starts = [0] + [m.end() for m in re.finditer(rb"\n", body)]
    return {at for at in starts if at < len(body) and lexer.top_level(body, at)}


def _split_by_lines(dump: bytes, out: Path) -> tuple[bytes, bytes]:
    out.mkdir(exist_ok=True)
    schema, functions = _Normalised(out / "s"), _Normalised(out / "f")
    if dump and not dump.endswith(b"\n"):  # like the old reader: a last line gets its newline
        dump += b"\n"
    header = _HEADER.match(dump)
    body, key, standard = dump, None, True
    lead = b""
    if header:
        key = header.group(1)
        lead, body = dump[: dump.index(b"\n\n") + 2], dump[header.end() :]
        standard = b"SET standard_conforming_strings = off;" not in body.split(b"\n--\n")[0]
        footer = b"\\unrestrict " + key + b"\n" if key is not None else None
        at = body.rfind(footer) if footer else -1
        last = footer is not None and at >= 0 and (at == 0 or body[at - 1] == 10)
        if last and footer is not None and not body[at + len(footer) :].strip(b"\n"):
            body = body[:at] + body[at + len(footer) :]
    splitter = _LineSplitter(schema, functions, set())
    for line in lead.splitlines(keepends=True):
        splitter.feed(line)
    if key is not None:
        schema.restrict()
        functions.restrict()
    if header and header.group(2):
        splitter.feed(b"\n")
    splitter.top = _top_level_lines(body, standard)
    offset = 0
    for line in body.splitlines(keepends=True):
        splitter.feed(line, offset)
        offset += len(line)
    splitter.close()
    schema.finish()
    functions.finish()
    return (out / "s").read_bytes(), (out / "f").read_bytes()


def _split_in_chunks(dump: bytes, cuts: list[int], out: Path) -> tuple[bytes, bytes]:
    out.mkdir(exist_ok=True)
    schema, functions = _Normalised(out / "s"), _Normalised(out / "f")
    splitter = _Splitter(schema, functions)
    bounds = [0, *sorted(cuts), len(dump)]
    for start, end in itertools.pairwise(bounds):
        splitter.feed(dump[start:end])
    splitter.close()
    schema.finish()
    functions.finish()
    return (out / "s").read_bytes(), (out / "f").read_bytes()


_ENTRIES = b"""--
-- PostgreSQL database dump
--

\\restrict abcdef

-- Dumped from database version 15.18
-- Dumped by pg_dump version 15.18

SET statement_timeout = 0;

--
-- Name: f(integer); Type: FUNCTION; Schema: public; Owner: me
--

CREATE FUNCTION public.f(a integer) RETURNS integer
    LANGUAGE sql
    AS $$select 1$$;

--
-- Name: t; Type: TABLE; Schema: public; Owner: me
--

CREATE TABLE public.t (id integer);

--
-- Name: FUNCTION f(a integer); Type: ACL; Schema: public; Owner: me
--

GRANT ALL ON FUNCTION public.f(a integer) TO bob;

--
-- PostgreSQL database dump complete
--

\\unrestrict abcdef

"""


def test_a_chunk_boundary_anywhere_in_a_header_or_restrict_line_changes_nothing(
    tmp_path: Path,
) -> None:
    expected = _split_by_lines(_ENTRIES, tmp_path / "ref")
    assert b"CREATE TABLE" not in expected[1] and b"GRANT ALL ON FUNCTION" in expected[1]
    for cut in range(1, len(_ENTRIES)):  # every cut point, header and \\restrict lines included
        assert _split_in_chunks(_ENTRIES, [cut], tmp_path / "new") == expected, cut
    assert _split_in_chunks(_ENTRIES, list(range(1, len(_ENTRIES))), tmp_path / "new") == expected


def test_chunked_splitter_agrees_with_the_line_splitter_on_odd_inputs(tmp_path: Path) -> None:
    # Runs of "--" lines pair up, \\restrict lines inside a held separator, a last line
    # without a newline, look-alikes of the lines that matter: all as the line splitter did.
    vocabulary = [
        b"--\n",
        b"--\n",
        b"---\n",
        b"x--\n",
        b"\n",
        b"SELECT 1;\n",
        b"\\restrict k\n",
        b"\\unrestrict k\n",
        b"\\restrictk\n",
        b"-- Dumped from database version 1\n",
        b"-- Dumped by pg_dump version 1\n",
        b"-- Name: f(); Type: FUNCTION; Schema: p; Owner: x\n",
        b"-- Name: t; Type: TABLE; Schema: p; Owner: x\n",
        b"-- Name: FUNCTION f(); Type: COMMENT; Schema: p; Owner: x\n",
        b"-- Data for Name: t; Type: TABLE DATA; Schema: p; Owner: x\n",
        b"-- Name: no type here\n",
        # the last "; Type: ...; Schema: " of a header decides, whatever the name holds
        b"-- Name: a; Type: FUNCTION; Schema: b; Type: TABLE; Schema: p; Owner: x\n",
        b"-- Name: a; Type: TABLE; Schema: b; Type: FUNCTION; Schema: p; Owner: x\n",
        b"-- Name: FUNCTION f(); Type: SECURITY LABEL; Schema: p; Owner: x\n",
        b"-- Name: PROCEDURE p(); Type: ACL; Schema: p; Owner: x\n",
        b"-- Name: AGGREGATE a(); Type: COMMENT; Schema: ; Type: ACL; Schema: p; Owner: x\n",
        b"-- Name: FUNCTIONS; Type: COMMENT; Schema: p; Owner: x\n",
        b"-- Name: p(); Type: PROCEDURE; Schema: p; Owner: x\n",
        # quotes and comments that hide what follows, open and closed across lines
        b"AS $$\n",
        b"$$;\n",
        b"AS $q$ x $$\n",
        b"$q$;\n",
        b"'it''s\n",
        b"E'\\'\n",
        b"x$$\n",
        b'"a""\n',
        b"/* /*\n",
        b"*/\n",
        b"-- it's $$ /*\n",
    ]
    for seed in range(1500):  # half the seeds of the old fuzz: its reference now lexes too
        rng = random.Random(seed)
        dump = b"".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 25)))
        if rng.random() < 0.3:
            dump += rng.choice([b"--", b"x", b"\\restrict k", b"-- Name: g; Type: FUNCTION; S"])
        expected = _split_by_lines(dump, tmp_path / "ref")
        cuts = [rng.randint(0, len(dump)) for _ in range(rng.randint(0, 6))]
        assert _split_in_chunks(dump, cuts, tmp_path / "new") == expected, (seed, dump, cuts)


async def test_export_of_a_large_schema_is_what_the_line_splitter_wrote(
    db: Database, tmp_path: Path
) -> None:
    script = tmp_path / "base.sql"
    script.write_text(generate.base_sql(60))
    db.load(script)
    proc = await asyncio.create_subprocess_exec(
        str(db.cluster.bindir / "pg_dump"), "--schema-only", "-d", db.dsn, stdout=PIPE
    )
    dump, _ = await proc.communicate()
    assert proc.returncode == 0
    assert len(dump) > 1 << 17  # more than a few chunks of the sizes below
    expected = _split_by_lines(dump, tmp_path / "ref")
    rng = random.Random(6)
    for cuts in (
        list(range(1 << 20, len(dump), 1 << 20)),
        [rng.randint(0, len(dump)) for _ in range(300)],
        list(range(0, len(dump), 4093)),
    ):
        assert _split_in_chunks(dump, cuts, tmp_path / "new") == expected
    (tmp_path / "export").mkdir()
    await export_schema(
        db.conninfo, ExportOptions(), tmp_path / "export" / "s.sql", tmp_path / "export" / "f.sql"
    )
    assert (tmp_path / "export" / "s.sql").read_bytes() == expected[0]
    assert (tmp_path / "export" / "f.sql").read_bytes() == expected[1]
