"""pg_dump export and its normalisation, against a real server and a real pg_dump."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.export import (
    ExportError,
    ExportOptions,
    _Normalised,
    _Splitter,
    check_versions,
    export_schema,
    pg_dump_argv,
)
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
    assert '--schema="a"' in argv
    assert "--no-password" in argv  # never prompts: the password comes from the environment
    assert not any(a.startswith("--password") or "postgresql://" in a for a in argv)


def test_pg_dump_older_than_server_is_refused_with_what_to_install() -> None:
    too_old = r"pg_dump 14.2 is older than the server \(PostgreSQL 16\)"
    with pytest.raises(ExportError, match=too_old):
        check_versions(14, "14.2", 160_001)
    check_versions(16, "16.1", 150_004)  # newer pg_dump dumps older servers
