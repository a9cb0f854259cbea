"""Which inventory kinds hold each kind of entry pg_dump --schema-only writes, and which not.

pg_dump labels every entry of its table of contents with a description (`pg_restore -l`
shows them: `221; 1259 16555 TABLE fam trails postgres`). Each description pg_dump 13 to 18
can write is either held by inventory objects of the kinds listed here, or deliberately left
out of the inventory for the reason given. tests/test_every_family.py dumps a database with
one object of every family and fails on an entry the inventory does not hold — and on a
description that is in neither table, the day a new pg_dump starts writing one.
"""

from __future__ import annotations

_RELATIONS = ("table", "foreign table", "view", "materialized view")
_ANY = ("*",)  # comments, privileges and labels belong to whichever object they name

# description -> the kinds whose objects hold it (a part, like a constraint, is in the
# definition of the object it belongs to).
TOC_KINDS: dict[str, tuple[str, ...]] = {
    "ACCESS METHOD": ("access method",),
    "ACL": _ANY,
    "AGGREGATE": ("aggregate",),
    "CAST": ("cast",),
    "CHECK CONSTRAINT": ("table", "foreign table", "domain"),
    "COLLATION": ("collation",),
    "COMMENT": _ANY,
    "CONSTRAINT": ("table", "foreign table", "domain"),
    "CONVERSION": ("conversion",),
    "DEFAULT": _RELATIONS,
    "DEFAULT ACL": ("default privileges",),
    "DOMAIN": ("domain",),
    "EVENT TRIGGER": ("event trigger",),
    "EXTENSION": ("extension",),
    "FK CONSTRAINT": ("table",),
    "FOREIGN DATA WRAPPER": ("foreign data wrapper",),
    "FOREIGN TABLE": ("foreign table",),
    "FUNCTION": ("function",),
    "INDEX": ("index",),
    "INDEX ATTACH": ("index",),
    "MATERIALIZED VIEW": ("materialized view",),
    "OPERATOR": ("operator",),
    "OPERATOR CLASS": ("operator class",),
    "OPERATOR FAMILY": ("operator family",),
    "POLICY": ("policy",),
    "PROCEDURAL LANGUAGE": ("language",),
    "PROCEDURE": ("procedure",),
    "PUBLICATION": ("publication",),
    "PUBLICATION TABLE": ("publication",),
    "PUBLICATION TABLES IN SCHEMA": ("publication",),
    "ROW SECURITY": ("table",),
    "RULE": ("rule",),
    "SCHEMA": ("schema",),
    "SECURITY LABEL": ("security label",),
    # identity sequences are part of their column, so of their table
    "SEQUENCE": ("sequence", "table"),
    "SEQUENCE OWNED BY": ("sequence",),
    "SERVER": ("server",),
    "SHELL TYPE": ("type",),
    "STATISTICS": ("statistics",),
    "SUBSCRIPTION": ("subscription",),
    "TABLE": ("table",),
    "TABLE ATTACH": ("table",),
    "TEXT SEARCH CONFIGURATION": ("text search configuration",),
    "TEXT SEARCH DICTIONARY": ("text search dictionary",),
    "TEXT SEARCH PARSER": ("text search parser",),
    "TEXT SEARCH TEMPLATE": ("text search template",),
    "TRANSFORM": ("transform",),
    "TRIGGER": ("trigger",),
    "TYPE": ("type",),
    "USER MAPPING": ("user mapping",),
    "VIEW": ("view",),
}

_DATA = "data, not schema: pg_dump --schema-only never writes it"
OUTSIDE_INVENTORY: dict[str, str] = {
    "ENCODING": "a session setting at the top of every dump, not an object",
    "STDSTRINGS": "a session setting at the top of every dump, not an object",
    "SEARCHPATH": "a session setting at the top of every dump, not an object",
    "DATABASE": "only with pg_dump --create: the database itself, not an object inside it",
    "DATABASE PROPERTIES": "only with pg_dump --create: the database's own settings",
    "TABLE DATA": _DATA,
    "SEQUENCE SET": _DATA + " (a sequence's current value)",
    "MATERIALIZED VIEW DATA": _DATA + " (REFRESH MATERIALIZED VIEW)",
    "BLOB": _DATA + " (large objects, 'LARGE OBJECT' from pg_dump 17)",
    "BLOBS": _DATA,
    "BLOB COMMENTS": _DATA + " (archives of pg_dump before 9.0)",
    "BLOB METADATA": _DATA + " (large objects, pg_dump 17+)",
    "LARGE OBJECT": _DATA + " (large objects, pg_dump 17+)",
    "LARGE OBJECTS": _DATA + " (large objects, pg_dump 17+)",
    "STATISTICS DATA": _DATA + " (the planner's statistics, pg_dump 18+)",
    "SUBSCRIPTION TABLE": "only with pg_dump --binary-upgrade (pg_upgrade's own state)",
}
