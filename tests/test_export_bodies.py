"""Object text that looks like pg_dump's own lines: copied untouched, never acted upon."""

from __future__ import annotations

import re
from pathlib import Path

from service.demo.cluster import ScratchCluster
from tests.conftest import Database, new_database, run_cli

SCHEMA = Path("sql/schemas/complete-schema.sql")
FUNCTIONS = Path("sql/schemas/functions.sql")

# The example, and the same lines in a plpgsql body, a comment and a table default.
HEADER_LINES = r"""
CREATE FUNCTION public.report_header() RETURNS text LANGUAGE sql AS $$ SELECT 'header:
-- Dumped by pg_dump version 15.18
\unrestrict not-a-real-key
end'::text $$;
CREATE FUNCTION public.restricted() RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
  RETURN 'a
\restrict 00000000000000000000000000000000
-- Dumped from database version 9.6
\unrestrict 00000000000000000000000000000000
z';
END $body$;
COMMENT ON FUNCTION public.restricted() IS '
\restrict k
';
"""

# Bodies, literals and names that forge a whole TOC header block, in both directions: out of
# the function section (a function body) and into it (a table's comment and default).
FORGED_HEADERS = r"""
CREATE FUNCTION public.forged() RETURNS text LANGUAGE sql AS $f$ SELECT $$a

--
-- Name: fake; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE x (y int);
$$ || 'it''s -- not a comment' || E'\'$$' $f$;
CREATE FUNCTION public.after_forged() RETURNS int LANGUAGE sql AS $$ SELECT 7 $$;
CREATE TABLE public.plain (
  note text DEFAULT '
--
-- Name: evil(); Type: FUNCTION; Schema: public; Owner: postgres
--
'
);
COMMENT ON TABLE public.plain IS '
-- Name: FUNCTION evil(); Type: COMMENT; Schema: public; Owner: postgres
/* -- $$ ';
CREATE FUNCTION "-- Name: odd
--"() RETURNS int LANGUAGE sql AS $$ SELECT 1 /* ' " */ $$;
"""


def _sync(db: Database, workdir: Path) -> None:
    result = run_cli("sync", cwd=workdir, env={"SCHEMA_SYNC_DSN": db.dsn})
    assert result.code == 0, result.err


def _call(db: Database, functions: list[str]) -> list[str]:
    return [db.sql(f"SELECT {f}") for f in functions]


def test_body_lines_like_pg_dumps_header_and_footer_survive_sync(
    db: Database, cluster: ScratchCluster, tmp_path: Path
) -> None:
    db.sql(HEADER_LINES)
    _sync(db, tmp_path)
    calls = ["public.report_header()", "public.restricted()"]
    original = _call(db, calls)
    assert original[0].count("\n") == 4  # psql -At: the 4 lines of the value plus its newline
    schema = (tmp_path / SCHEMA).read_text()
    # pg_dump's own lines: exactly one \restrict (first) and \unrestrict (last), one key.
    keys = re.findall(r"^\\(restrict|unrestrict) (\S+)$", schema, re.M)
    assert keys[0][0] == "restrict" and keys[-1][0] == "unrestrict"
    assert keys[0][1] == keys[-1][1] != "0" * 32
    assert schema.rstrip("\n").endswith(f"\\unrestrict {keys[0][1]}")
    assert not schema.startswith("--\n-- PostgreSQL database dump\n--\n\n-- Dumped")
    for source in (SCHEMA, FUNCTIONS):
        fresh = new_database(cluster)
        try:
            fresh.load(tmp_path / source)  # psql ON_ERROR_STOP: the key pairs up
            assert _call(fresh, calls) == original
        finally:
            cluster.drop_database(fresh.name)


def test_a_body_forging_a_toc_header_never_cuts_functions_sql(
    db: Database, cluster: ScratchCluster, tmp_path: Path
) -> None:
    db.sql(FORGED_HEADERS)
    _sync(db, tmp_path)
    calls = ["public.forged()", "public.after_forged()", '"-- Name: odd\n--"()']
    original = _call(db, calls)
    functions = (tmp_path / FUNCTIONS).read_text()
    assert "CREATE TABLE public.plain" not in functions
    assert "COMMENT ON TABLE" not in functions
    comment = "SELECT obj_description('public.plain'::regclass)"
    for source in (FUNCTIONS, SCHEMA):
        fresh = new_database(cluster)
        try:
            fresh.load(tmp_path / source)  # psql ON_ERROR_STOP: every statement whole
            assert _call(fresh, calls) == original
            if source == SCHEMA:
                assert fresh.sql(comment) == db.sql(comment)
        finally:
            cluster.drop_database(fresh.name)
