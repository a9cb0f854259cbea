"""Schema patterns mean what they mean to pg_dump -n/-N: the translation, and pg_dump as oracle."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.demo.cluster import ScratchCluster
from service.production.catalog import CatalogOptions, NoMatchingSchemas
from service.production.schema_patterns import PatternError, schema_regex
from tests.conftest import Database, new_database, run_cli
from tests.test_catalog import inventory


@pytest.mark.parametrize(
    ("pattern", "regex"),
    [
        ("app", "^(app)$"),
        ("App", "^(app)$"),  # unquoted capitals fold, like identifiers
        ('"App"', "^(App)$"),
        ("app_*", "^(app_.*)$"),
        ("app_?", "^(app_.)$"),
        ('"a*"', "^(a\\*)$"),  # quoted: literal
        ('"q""uote"', '^(q"uote)$'),
        ('"a.b"', "^(a\\.b)$"),
        ("a|b", "^(a|b)$"),  # unquoted regex characters keep their meaning...
        ("[am]x+", "^([am]x+)$"),
        ('"a|b[c]"', "^(a\\|b\\[c\\])$"),  # ...and are literal when quoted
        ("d$x", "^(d\\$x)$"),  # except $, always literal
        ("t[]", "^(t\\[])$"),  # and [], an array type name rather than a class
        ('"with space"', "^(with space)$"),
        ('pre"Mid"*', "^(preMid.*)$"),  # quoting a part of the pattern
        ("Émile", "^(Émile)$"),  # only ASCII letters fold, as in pg_dump
        ("", "^()$"),
    ],
)
def test_pattern_becomes_pg_dumps_regex(pattern: str, regex: str) -> None:
    assert schema_regex(pattern) == regex


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("db.app", "cross-database references are not implemented: db.app"),
        ("a.b.c", "improper qualified name (too many dotted names): a.b.c"),
    ],
)
def test_dotted_patterns_are_refused_in_pg_dumps_words(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=re.escape(message)):
        schema_regex(pattern)


@given(st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s))
def test_a_quoted_name_matches_exactly_that_name(name: str) -> None:
    regex = re.compile(schema_regex('"' + name.replace('"', '""') + '"'))
    assert regex.fullmatch(name)
    assert not regex.fullmatch(name + "x") and not regex.fullmatch("x" + name)


@given(st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True))
def test_a_plain_lower_case_name_is_itself(name: str) -> None:
    assert schema_regex(name) == f"^({name})$"
    assert schema_regex(name.upper()) == f"^({name})$"


# Awkward schema names, each holding one table `t` so pg_dump's choice shows in its output.
SCHEMAS = [
    "public",
    "app_1",
    "app_22",
    "App_3",
    "Mixed",
    "mixed",
    "a.b",
    "axb",
    'q"uote',
    "re[gex]+",
    "with space",
    "d$ollar",
    "a|b",
    "a",
    "Émile",
]

PATTERN_SETS = [
    (["app_*"], []),
    (["APP_?"], []),
    (['"App_3"', "mixed"], []),
    (["Mixed"], []),
    (['"a.b"'], []),
    (["a?b"], []),  # ? is any character: a.b, axb and a|b
    (["a|b"], []),  # a regex alternative: the schemas a and b (only a exists)
    (['"a|b"'], []),
    (["re[gex]+", "mixed"], []),  # a regex class (reg, rex, ...) not the name "re[gex]+"
    (['"re[gex]+"', '"q""uote"', "with space", "d$ollar"], []),
    (["*"], ["app*", '"Mixed"']),
    ([], ["*_*", '"a.b"', "É*"]),
    (['pre"Mi"*', "*"], ["*x*"]),
    (["app_1", "nomatch"], []),  # one pattern matching nothing is fine without --strict-names
]


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(scope="module")
def awkward(cluster: ScratchCluster) -> Iterator[Database]:
    db = new_database(cluster)
    db.sql(";".join(f"CREATE SCHEMA IF NOT EXISTS {quoted(s)}" for s in SCHEMAS))
    db.sql(";".join(f"CREATE TABLE {quoted(s)}.t ()" for s in SCHEMAS))
    yield db
    cluster.drop_database(db.name)


def pg_dump(
    db: Database, include: list[str], exclude: list[str]
) -> subprocess.CompletedProcess[str]:
    argv = [str(db.cluster.clientdir / "pg_dump"), "--schema-only", "-d", db.dsn]
    argv += [f"--schema={p}" for p in include] + [f"--exclude-schema={p}" for p in exclude]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def pg_dump_tables(db: Database, include: list[str], exclude: list[str]) -> set[str]:
    dump = pg_dump(db, include, exclude)
    assert dump.returncode == 0, dump.stderr
    return {
        line[len("CREATE TABLE ") : -2]
        for line in dump.stdout.splitlines()
        if line.endswith(".t (")
    }


@pytest.mark.parametrize(("include", "exclude"), PATTERN_SETS)
async def test_the_inventory_selects_the_schemas_pg_dump_dumps(
    awkward: Database, include: list[str], exclude: list[str]
) -> None:
    options = CatalogOptions(schemas=tuple(include), exclude_schemas=tuple(exclude))
    inv = await inventory(awkward, options)
    ours = {o.name for o in inv if o.kind == "table"}
    assert ours == pg_dump_tables(awkward, include, exclude)
    assert ours  # every set selects something, so an empty answer cannot pass by accident


async def test_patterns_matching_no_schema_are_refused_like_pg_dump(awkward: Database) -> None:
    patterns = ["nomatch", '"APP_1"']
    dump = pg_dump(awkward, patterns, [])
    assert dump.returncode == 1 and "no matching schemas were found" in dump.stderr
    with pytest.raises(NoMatchingSchemas, match="no schema matches the schemas patterns"):
        await inventory(awkward, CatalogOptions(schemas=tuple(patterns)))


def test_compare_refuses_bad_patterns_in_one_line(awkward: Database, tmp_path: Path) -> None:
    dotted = run_cli("compare", "--schema", "db.app", awkward.dsn, awkward.dsn, cwd=tmp_path)
    assert dotted.code == 2 and dotted.err.count("\n") == 1, dotted.err
    assert "cross-database references are not implemented: db.app" in dotted.err
    assert "schemas" in dotted.err  # names the setting
    none = run_cli("compare", "--schema", "nomatch", awkward.dsn, awkward.dsn, cwd=tmp_path)
    assert none.code == 2 and none.err.count("\n") == 1, none.err
    assert "no schema matches the schemas patterns 'nomatch'" in none.err
