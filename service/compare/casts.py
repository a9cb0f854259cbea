"""Pure: is a type change one a client can live with? PostgreSQL's built-in implicit casts.

compare/ reads no database, so the casts PostgreSQL applies implicitly (pg_cast rows with
castcontext = 'i', by format_type name) are written out here. tests/test_impact.py
checks this table against pg_cast of the test cluster, so a server that changes them fails
a test instead of silently misjudging a change (PostgreSQL 13 to 18 have the same set).
"""

from __future__ import annotations

import re

from service.compare.levels import Impact

IMPLICIT_CASTS: dict[str, tuple[str, ...]] = {
    '"char"': ("text",),
    "bigint": ("double precision", "numeric", "oid", "real", "regclass", "regcollation",
               "regconfig", "regdictionary", "regnamespace", "regoper", "regoperator",
               "regproc", "regprocedure", "regrole", "regtype"),
    "bit": ("bit", "bit varying"),
    "bit varying": ("bit", "bit varying"),
    "character": ("character", "character varying", "name", "text"),
    "character varying": ("character", "character varying", "name", "regclass", "text"),
    "cidr": ("inet",),
    "date": ("timestamp with time zone", "timestamp without time zone"),
    "integer": ("bigint", "double precision", "numeric", "oid", "real", "regclass",
                "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper",
                "regoperator", "regproc", "regprocedure", "regrole", "regtype"),
    "interval": ("interval",),
    "macaddr": ("macaddr8",),
    "macaddr8": ("macaddr",),
    "name": ("text",),
    "numeric": ("double precision", "numeric", "real"),
    "oid": ("regclass", "regcollation", "regconfig", "regdictionary", "regnamespace",
            "regoper", "regoperator", "regproc", "regprocedure", "regrole", "regtype"),
    "pg_dependencies": ("bytea", "text"),
    "pg_mcv_list": ("bytea", "text"),
    "pg_ndistinct": ("bytea", "text"),
    "pg_node_tree": ("text",),
    "real": ("double precision",),
    "regclass": ("oid",),
    "regcollation": ("oid",),
    "regconfig": ("oid",),
    "regdictionary": ("oid",),
    "regnamespace": ("oid",),
    "regoper": ("oid", "regoperator"),
    "regoperator": ("oid", "regoper"),
    "regproc": ("oid", "regprocedure"),
    "regprocedure": ("oid", "regproc"),
    "regrole": ("oid",),
    "regtype": ("oid",),
    "smallint": ("bigint", "double precision", "integer", "numeric", "oid", "real",
                 "regclass", "regcollation", "regconfig", "regdictionary", "regnamespace",
                 "regoper", "regoperator", "regproc", "regprocedure", "regrole", "regtype"),
    "text": ("character", "character varying", "name", "regclass"),
    "time with time zone": ("time with time zone",),
    "time without time zone": ("interval", "time with time zone", "time without time zone"),
    "timestamp with time zone": ("timestamp with time zone",),
    "timestamp without time zone": ("timestamp with time zone", "timestamp without time zone"),
}  # fmt: skip

_TIME = re.compile(r"^(timestamp|time)\((\d+)\)( with(?:out)? time zone)$")
_MOD = re.compile(r"^(.+?)\(([^()]*)\)$")
_LENGTHS = ("character varying", "bit varying")


def implicit_both_ways(a: str, b: str) -> bool:
    """Does PostgreSQL cast `a` to `b` and `b` to `a` without being asked (base names)?"""
    return b in IMPLICIT_CASTS.get(a, ()) and a in IMPLICIT_CASTS.get(b, ())


def parse_type(text: str) -> tuple[str, str | None, int]:
    """format_type's text -> (base name, type modifier or None, array dimensions)."""
    dims = 0
    while text.endswith("[]"):
        text, dims = text[:-2], dims + 1
    if m := _TIME.match(text):
        return m.group(1) + m.group(3), m.group(2), dims
    if text == "interval" or text.startswith(("interval ", "interval(")):
        mod = text[8:].strip()
        digits = re.fullmatch(r"\((\d+)\)", mod)
        return "interval", (digits.group(1) if digits else mod) or None, dims
    base, modifier = text, None
    if not text.startswith('"') and (m := _MOD.match(text)):
        base, modifier = m.group(1), m.group(2)
    return ("character" if base == "bpchar" else base), modifier, dims


def type_change(old: str, new: str) -> Impact | None:
    """The impact of a column (or attribute, or output column) going from type `old` to
    `new`; None when they are the same. A type PostgreSQL does not ship (a domain, an enum,
    an extension's type) is compared by name only: any change to one is breaking."""
    if old == new:
        return None
    old_base, old_mod, old_dims = parse_type(old)
    new_base, new_mod, new_dims = parse_type(new)
    if old_dims != new_dims:
        return Impact.BREAKING
    if old_base == new_base:
        return _modifier_change(old_base, old_mod, new_mod)
    if implicit_both_ways(old_base, new_base) and new_mod is None:
        return Impact.COMPATIBLE  # text <-> character varying: clients read and write alike
    return Impact.BREAKING


def _modifier_change(base: str, old: str | None, new: str | None) -> Impact:
    """Same base type, another modifier: wider is compatible, narrower can refuse values."""
    if base in _LENGTHS:  # a longer limit, or none, accepts every value it did
        if new is None or (old is not None and _int(new) >= _int(old)):
            return Impact.COMPATIBLE
        return Impact.BREAKING
    if base == "numeric":
        if new is None:
            return Impact.COMPATIBLE
        if old is None:
            return Impact.BREAKING  # an unconstrained numeric now refuses large values
        (old_p, old_s), (new_p, new_s) = _precision(old), _precision(new)
        if new_p - new_s < old_p - old_s:
            return Impact.BREAKING  # fewer integer digits: values that fit now overflow
        return Impact.BEHAVIOURAL if new_s < old_s else Impact.COMPATIBLE  # fewer: rounded
    if base.startswith(("time", "interval")):
        if old is not None and new is not None and old.isdigit() and new.isdigit():
            return Impact.COMPATIBLE if _int(new) >= _int(old) else Impact.BEHAVIOURAL
        if new is None and (old is None or old.isdigit()):
            return Impact.COMPATIBLE
        return Impact.BEHAVIOURAL  # other fields or precision: values are rounded, not refused
    return Impact.BREAKING  # a fixed length (character, bit) or a modifier we do not know


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1


def _precision(mod: str) -> tuple[int, int]:
    p, _, s = mod.partition(",")
    return _int(p), _int(s) if s else 0
