"""The classification reads definitions quote by quote: what production writes into a name, a
default, a comment or a body cannot pose as another fact (a grant, NOT NULL, a return type)
or hide one. Pure: definition texts in the catalog's format, no database."""

from __future__ import annotations

import pytest

from service.compare.casts import parse_type, type_change
from service.compare.drift import Change, Drift, DriftItem
from service.compare.impact import classify
from service.compare.inventory import DbObject
from service.compare.levels import Impact
from service.compare.sqlnames import replace_names
from service.compare.sqltext import logical_lines, quoted_spans

TABLE = """CREATE TABLE app.t (
    id integer NOT NULL
    {column}
)
ALTER TABLE app.t OWNER TO app
GRANT SELECT ON TABLE app.t TO reader
{comment}"""


def table(column: str = "note text", comment: str = "COMMENT ON TABLE app.t IS 'x'") -> DbObject:
    return DbObject("table", "app.t", TABLE.format(column=column, comment=comment))


def verdict(old: DbObject, new: DbObject) -> tuple[str, tuple[str, ...]]:
    found = classify(old, new)
    return found.impact.value, found.reasons


CASES = [
    pytest.param(
        table(),
        table(comment="COMMENT ON TABLE app.t IS 'x\nREVOKE SELECT ON TABLE app.t FROM reader'"),
        ("cosmetic", ("comment changed",)),
        id="a comment holding a REVOKE line is a comment",
    ),
    pytest.param(
        table(column='"x NOT NULL" integer'),
        table(column='"x NOT NULL" bigint'),
        ("breaking", ('column "x NOT NULL": integer -> bigint',)),
        id="a column named NOT NULL is a name",
    ),
    pytest.param(
        table(column="note text DEFAULT 'a'::text"),
        table(column="note text DEFAULT 'a\n    b text NOT NULL'::text"),
        ("behavioural", ("column note: default changed",)),
        id="a default holding a newline and NOT NULL is a default",
    ),
    pytest.param(
        table(column="note text DEFAULT E'a\\\\'::text"),
        table(column="note text DEFAULT E'a\\' NOT NULL'::text"),  # \' escapes the quote
        ("behavioural", ("column note: default changed",)),
        id="an E'' string's escapes are read as escapes",
    ),
    pytest.param(
        DbObject(
            "function",
            "app.f()",
            "CREATE OR REPLACE FUNCTION app.f()\n RETURNS integer\n LANGUAGE sql\n"
            "AS $function$SELECT 1$function$",
        ),
        DbObject(
            "function",
            "app.f()",
            "CREATE OR REPLACE FUNCTION app.f()\n RETURNS integer\n LANGUAGE sql\n"
            "AS $function$SELECT 1\n RETURNS bigint\n SECURITY DEFINER$function$",
        ),
        ("behavioural", ("function body changed",)),
        id="a body holding attribute lines is a body",
    ),
    pytest.param(
        DbObject("widget", "app.w", "CREATE WIDGET app.w (a)"),
        DbObject("widget", "app.w", "CREATE WIDGET app.w (b)"),
        ("breaking", ("definition changed",)),
        id="a kind no rule knows is assumed the worst",
    ),
    pytest.param(
        table(column="note text"),
        table(column="note text UNPARSED THING"),
        ("breaking", ("column note: text -> text UNPARSED THING",)),
        id="a column line no rule reads is assumed the worst",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_what_production_writes_cannot_pose_as_another_fact(
    old: DbObject, new: DbObject, expected: tuple[str, tuple[str, ...]]
) -> None:
    assert verdict(old, new) == expected


def test_quotes_are_found_as_psql_finds_them() -> None:
    text = "a$b $1 'it''s' E'\\'x' \"q\"\"x\" $f$ 'not' $x$ $f$ $$ '' $$ 'open"
    found = [text[s.start : s.end] for s in quoted_spans(text)]
    assert found == ["'it''s'", "E'\\'x'", '"q""x"', "$f$ 'not' $x$ $f$", "$$ '' $$"]
    assert logical_lines("a 'b\nc' d\ne") == ["a 'b\nc' d", "e"]
    # a tag closes at its next occurrence; one left without a partner quotes nothing
    repeated = "$a$ x $a$ y $a$ z"
    assert [repeated[s.start : s.end] for s in quoted_spans(repeated)] == ["$a$ x $a$"]


def test_names_are_replaced_only_where_they_are_code() -> None:
    text = (
        "CREATE TABLE app.t (\n    n integer DEFAULT nextval('app.s'::regclass)\n"
        "    \"app.t\" text DEFAULT 'app.t'::text\n)\n"
        "AS $body$SELECT app.t.n FROM app.t$body$\nCOMMENT ON COLUMN app.t.n IS 'app.t'"
    )
    renamed = {("q", "app.t"): "app.u", ("q", "app.s"): "app.r"}
    seen: set[tuple[str, str]] = set()
    assert replace_names(text, renamed.get, seen) == (
        "CREATE TABLE app.u (\n    n integer DEFAULT nextval('app.r'::regclass)\n"
        "    \"app.t\" text DEFAULT 'app.t'::text\n)\n"
        "AS $body$SELECT app.t.n FROM app.t$body$\nCOMMENT ON COLUMN app.u.n IS 'app.t'"
    )
    assert seen == set(renamed)


@pytest.mark.parametrize(
    ("old", "new", "impact"),
    [
        ("text", "character varying", Impact.COMPATIBLE),
        ("character varying(10)", "text", Impact.COMPATIBLE),
        ("text", "character varying(10)", Impact.BREAKING),
        ("integer", "bigint", Impact.BREAKING),
        ("integer[]", "bigint[]", Impact.BREAKING),
        ("integer", "integer[]", Impact.BREAKING),
        ("numeric", "numeric(10,2)", Impact.BREAKING),
        ("numeric(10,2)", "numeric", Impact.COMPATIBLE),
        ("interval(3)", "interval", Impact.COMPATIBLE),
        ("interval", "interval year to month", Impact.BEHAVIOURAL),
        ("character(3)", "character(4)", Impact.BREAKING),
        ("public.geometry(Point,4326)", "public.geometry(Point,3857)", Impact.BREAKING),
        ('app."My Type"', 'app."My Type"', None),
    ],
)
def test_a_type_change_is_judged_by_its_casts_and_modifiers(
    old: str, new: str, impact: Impact | None
) -> None:
    assert type_change(old, new) is impact


def test_type_names_are_read_with_their_modifiers() -> None:
    assert parse_type("timestamp(3) with time zone[]") == ("timestamp with time zone", "3", 1)
    assert parse_type("bpchar") == ("character", None, 0)
    assert parse_type("interval day to second(2)") == ("interval", "day to second(2)", 0)


def test_the_fingerprint_of_a_drift_does_not_move_with_its_verdict() -> None:
    # Open drifts were alerted under the fingerprint of (change, kind, name, diff) per item,
    # in key order: an upgrade that adds impacts must not make them look new.
    import hashlib

    items = (
        DriftItem("table", "app.t", Change.CHANGED, "--- files/table app.t\n+++ production/x\n"),
        DriftItem("view", "app.v", Change.REMOVED, "-x\n"),
    )
    before = hashlib.sha256()
    for item in items:
        diff = item.diff.replace("--- files/", "--- a/").replace("+++ production/", "+++ b/")
        before.update(f"{item.change}\0{item.kind}\0{item.name}\0{diff}\n".encode())
    judged = tuple(
        DriftItem(i.kind, i.name, i.change, i.diff, Impact.COSMETIC, ("why",)) for i in items
    )
    assert Drift(items).fingerprint() == Drift(judged).fingerprint() == before.hexdigest()[:32]
