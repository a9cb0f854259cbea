"""Whole objects: creating one with the SQL pg_dump writes for it in TO, dropping one."""

from __future__ import annotations

import re

from service.plan import acl, hazards
from service.plan.context import Ctx, split_key
from service.plan.entries import Entry
from service.plan.model import Change, Part, Rank, Statement
from service.plan.sqltext import ident_at, quote_ident, quote_literal, top_level

# Entries whose SQL builds a relation: the SET default_tablespace / default_table_access_method
# pg_restore printed before them matter.
_RELATION_ENTRIES = {"TABLE", "MATERIALIZED VIEW", "INDEX", "CONSTRAINT"}
# What `DROP <word>` calls a kind where it is not the kind upper-cased.
_DROP_WORD = {"language": "LANGUAGE"}
_TABLES = ("table", "materialized view")


def create(ctx: Ctx, key: str, recreated: bool = False) -> list[Statement]:
    """Statements creating `key` as it is in TO."""
    row = ctx.new.rows[key]
    entries = ctx.new.entries_of.get(key, ())
    note = f"created again: {ctx.recreate.get(key) or 'it cannot be changed in place'}"
    note = note if recreated else ""
    if row.kind == "security label":
        target = ctx.new.key_of.get((row.classid or 0, row.objid or 0))
        needs = _main(ctx, target)
        return [ctx.statement(key, row.body, Change.CREATE, new=[], needs=needs, note=note)]
    if row.kind == "user mapping":
        return [_user_mapping(ctx, key)]
    if not entries:
        return _from_definition(ctx, key, note)
    out: list[Statement] = []
    existing = _on_existing_table(ctx, entries)
    for e in entries:
        if _only_comments(e.sql):
            continue
        sql = e.sql
        part = Part.TRANSACTION
        if e.desc == "EXTENSION":
            sql = row.body  # pg_dump leaves the version out: create the one TO has
        elif e.desc == "COLLATION":
            sql = _collation(row.body, row.name, row.owner) or sql
        concurrently = ctx.env.concurrently and e.desc == "INDEX" and existing
        if concurrently:
            sql = sql.replace("CREATE INDEX ", "CREATE INDEX CONCURRENTLY ", 1)
            sql = sql.replace("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX CONCURRENTLY ", 1)
            part = Part.AFTER
        risk = hazards.create(row.kind, e.desc, existing, concurrently)
        rank = Rank.LATE if row.kind == "default privileges" else Rank.NORMAL
        session = e.session if e.desc in _RELATION_ENTRIES else ()
        out.append(
            ctx.statement(
                key,
                sql,
                Change.CREATE,
                risk,
                old=[],
                new=[e],
                part=part,
                rank=rank,
                note=note,
                session=session,
            )
        )
        if e.catalog == (row.classid, row.objid):
            undo = _default_privileges_undone(ctx, key)
            out += [ctx.statement(key, sql, Change.CREATE, old=[], new=[e]) for sql in undo]
        if e.desc == "MATERIALIZED VIEW":
            # pg_dump writes WITH NO DATA (the data is restored apart): fill it, as TO has it.
            refresh = f"REFRESH MATERIALIZED VIEW {row.name}"
            out.append(ctx.statement(key, refresh, Change.CREATE, old=[], new=[e], note=note))
    return out


def drop(ctx: Ctx, key: str, recreated: bool = False) -> list[Statement]:
    """Statements dropping `key` as it is in FROM."""
    row = ctx.old.rows[key]
    kind, name = split_key(key)
    entries = list(ctx.old.entries_of.get(key, ()))
    note = "created again below" if recreated else ""
    concurrently = False
    if kind == "default privileges":
        return [
            ctx.statement(key, sql, Change.DROP, old=entries, note=note)
            for sql in _default_privileges(row.body)
        ]
    if kind == "security label":
        target = ctx.old.key_of.get((row.classid or 0, row.objid or 0))
        sql = _label_removed(row.body)
        return [ctx.statement(key, sql, Change.DROP, old=_main(ctx, target, old=True), note=note)]
    if kind == "subscription":
        # Without a slot of its own the drop needs no publisher (pg_dump creates them so).
        sql = (
            f"ALTER SUBSCRIPTION {name} DISABLE;\n"
            f"ALTER SUBSCRIPTION {name} SET (slot_name = NONE);\nDROP SUBSCRIPTION {name}"
        )
    elif kind == "index" and ctx.env.concurrently and not _table_goes(ctx, key):
        concurrently = True
        sql = f"DROP INDEX CONCURRENTLY {name}"
    else:
        sql = f"DROP {_DROP_WORD.get(kind, kind.upper())} {name}"
        if is_base_type(row.kind, row.body):
            # Its input and output functions and it depend on each other: as pg_dump's own
            # DROP, CASCADE takes them along (dependants.implied leaves their drops out).
            sql += " CASCADE"
    risk = hazards.drop(kind, recreated, concurrently)
    part = Part.BEFORE if concurrently else Part.TRANSACTION
    return [ctx.statement(key, sql, Change.DROP, risk, old=entries, part=part, note=note)]


def is_base_type(kind: str, body: str) -> bool:
    return kind == "type" and "\n    INPUT = " in body


def _main(ctx: Ctx, key: str | None, old: bool = False) -> list[Entry | None]:
    if key is None:
        return []
    return [ctx.main_entry(ctx.old if old else ctx.new, key)]


def _only_comments(sql: str) -> bool:
    return all(not ln.strip() or ln.startswith("--") for ln in sql.splitlines())


def _on_existing_table(ctx: Ctx, entries: tuple[Entry, ...]) -> bool:
    """Whether these entries build on a table that holds rows already (one in FROM that
    stays), so that an index or constraint on it is built over its data."""
    for e in entries:
        for dep in e.deps:
            target = ctx.new.archive.entries.get(dep)
            if target is None or target.desc not in ("TABLE", "MATERIALIZED VIEW"):
                continue
            table = ctx.new.entry_keys.get(dep)
            if table is not None and table in ctx.old.rows and table not in ctx.recreate:
                return True
    return False


def _table_goes(ctx: Ctx, key: str) -> bool:
    """Whether the table an index of FROM is on is dropped too (then no CONCURRENTLY)."""
    for e in ctx.old.entries_of.get(key, ()):
        for dep in e.deps:
            table = ctx.old.entry_keys.get(dep)
            if table is not None and split_key(table)[0] in _TABLES:
                return table in ctx.removed
    return False


def _from_definition(ctx: Ctx, key: str, note: str) -> list[Statement]:
    """Objects pg_dump writes no entry for, because initdb makes them (schema public, the
    plpgsql extension): their definition, owner, privileges and comments."""
    row = ctx.new.rows[key]
    kind, name = split_key(key)
    sqls = [row.body]
    if row.owner and ctx.env.catalog.owners:
        sqls.append(f"ALTER {kind.upper()} {name} OWNER TO {row.owner}")
    if ctx.env.catalog.privileges:
        sqls += acl.changes(set(), acl.parse(row.acl))
    if ctx.env.catalog.comments:
        sqls += acl.comment_changes(None, row.comments)
    return [ctx.statement(key, sql, Change.CREATE, note=note) for sql in sqls]


def _default_privileges(body: str) -> list[str]:
    """The statements taking one default-privileges object back to no grants at all."""
    head, _, lines = body.partition("\n")
    return acl.changes(acl.parse(lines), set(), acl.default_prefix(head))


# What ALTER DEFAULT PRIVILEGES calls an object kind, and what GRANT calls it.
_DEFAULT_OBJECTS = {
    "table": ("TABLES", "TABLE"), "view": ("TABLES", "TABLE"),
    "materialized view": ("TABLES", "TABLE"), "foreign table": ("TABLES", "TABLE"),
    "sequence": ("SEQUENCES", "SEQUENCE"), "function": ("FUNCTIONS", "FUNCTION"),
    "procedure": ("FUNCTIONS", "PROCEDURE"), "aggregate": ("FUNCTIONS", "FUNCTION"),
    "type": ("TYPES", "TYPE"), "domain": ("TYPES", "DOMAIN"), "schema": ("SCHEMAS", "SCHEMA"),
}  # fmt: skip


def _default_privileges_undone(ctx: Ctx, key: str) -> list[str]:
    """Statements taking back what FROM's default privileges may have given an object the
    plan just created (they apply to whoever runs the plan), so that its privileges are the
    default ones before TO's are set, as pg_dump's entries expect."""
    kind, name = split_key(key)
    if kind not in _DEFAULT_OBJECTS:
        return []
    objects, word = _DEFAULT_OBJECTS[kind]
    schema = ident_at(name, 0)[0] if kind != "schema" else None
    grants: set[acl.Grant] = set()
    for head, lines in ctx.old.default_privileges:
        if not head.endswith(" ON " + objects):
            continue
        if " IN SCHEMA " in head:
            in_schema = ident_at(head, head.index(" IN SCHEMA ") + len(" IN SCHEMA "))[0]
            if in_schema != schema:
                continue
        for g in acl.parse(lines):
            grants.add(
                acl.Grant(g.verb, f"{word} {name}", g.grantee, "", g.grantable, "", g.privilege)
            )
    return acl.changes(grants, set())


def _label_removed(body: str) -> str:
    """`SECURITY LABEL FOR p ON x IS 'l'` -> `... IS NULL`."""
    flags = top_level(body)
    at = body.rfind(" IS ")
    while at >= 0 and not flags[at + 1]:
        at = body.rfind(" IS ", 0, at)
    return body[:at] + " IS NULL"


def _user_mapping(ctx: Ctx, key: str) -> Statement:
    """CREATE USER MAPPING with TO's options as the server keeps them (a password too: the
    mapping does not work without it; run.py registers it as a secret for the logs)."""
    row = ctx.new.rows[key]
    _, name = split_key(key)
    options = ctx.env.new_options.get(key)
    head = row.body.split("\n", 1)[0]
    if options:
        pairs = []
        for option in options:
            k, _, v = option.partition("=")
            pairs.append(f"{quote_ident(k)} {quote_literal(v)}")
        head += f" OPTIONS ({', '.join(pairs)})"
    server = "server " + name.split(" SERVER ", 1)[1]
    return ctx.statement(key, head, Change.CREATE, new=[], needs=_main(ctx, server))


_ANY_ENCODING = re.compile(r"PROVIDER = libc\n    LC_COLLATE = '(C|POSIX)'\n    LC_CTYPE = '\1'\n")


def _collation(body: str, name: str, owner: str | None) -> str | None:
    """A libc C or POSIX collation for any encoding (made FROM the built-in one, as CREATE
    COLLATION with a locale cannot make it; pg_dump's text would tie it to one encoding)."""
    found = _ANY_ENCODING.search(body)
    if found is None or "ENCODING = " in body:
        return None
    sql = f'CREATE COLLATION {name} FROM pg_catalog."{found.group(1)}"'
    return sql + (f";\nALTER COLLATION {name} OWNER TO {owner}" if owner else "")
