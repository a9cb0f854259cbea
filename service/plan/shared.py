"""Database-wide and catalog-like objects changed in place: extensions, text search
configurations, operators and their families, foreign data wrappers, servers, user mappings,
publications, default privileges and security labels."""

from __future__ import annotations

import re

from service.plan import acl, hazards
from service.plan.context import Ctx, Recreate, Refuse, split_key
from service.plan.model import Change, Rank, Statement
from service.plan.sqltext import (
    fact_lines,
    ident_at,
    option_pairs,
    options_clause,
    qualified_at,
    unquote,
)


def _extension_facts(body: str) -> tuple[str, str, str]:
    """(name, schema, version literal) of `CREATE EXTENSION x WITH SCHEMA s VERSION 'v'`."""
    name, end = ident_at(body, len("CREATE EXTENSION "))
    schema, end = ident_at(body, end + len(" WITH SCHEMA "))
    return name, schema, body[end + len(" VERSION ") :]


def extension(ctx: Ctx, key: str) -> list[Statement]:
    name, old_schema, old_version = _extension_facts(ctx.old.rows[key].body)
    _, new_schema, new_version = _extension_facts(ctx.new.rows[key].body)
    out = []
    if old_version != new_version:
        path = (unquote(name), _unliteral(old_version), _unliteral(new_version))
        if not ctx.env.update_paths.get(path):
            raise Refuse(
                f"FROM's server has no update path from version {old_version} to "
                f"{new_version} (ALTER EXTENSION UPDATE cannot get there)"
            )
        sql = f"ALTER EXTENSION {name} UPDATE TO {new_version}"
        out.append(ctx.statement(key, sql, Change.ALTER, hazards.risk(), replaces=True))
    if old_schema != new_schema:
        out.append(
            ctx.statement(
                key, f"ALTER EXTENSION {name} SET SCHEMA {new_schema}", Change.ALTER, replaces=True
            )
        )
    return out


def _unliteral(literal: str) -> str:
    return literal[1:-1].replace("''", "'") if literal.startswith("'") else literal


def ts_configuration(ctx: Ctx, key: str) -> list[Statement]:
    old, new = fact_lines(ctx.old.rows[key].body), fact_lines(ctx.new.rows[key].body)
    if old[0] != new[0]:
        raise Recreate("its parser changes")
    name = split_key(key)[1]

    def mappings(lines: list[str]) -> dict[str, str]:
        found = {}
        for line in lines[1:]:
            token, _, dicts = line.strip().removeprefix("ADD MAPPING FOR ").partition(" WITH ")
            found[token] = dicts
        return found

    before, after = mappings(old), mappings(new)
    head = f"ALTER TEXT SEARCH CONFIGURATION {name}"
    out = [f"{head} DROP MAPPING FOR {t}" for t in before if t not in after]
    for token, dicts in after.items():
        if token not in before:
            out.append(f"{head} ADD MAPPING FOR {token} WITH {dicts}")
        elif before[token] != dicts:
            out.append(f"{head} ALTER MAPPING FOR {token} WITH {dicts}")
    # Mappings taken away or changed stop using a dictionary the plan may drop.
    return [
        ctx.statement(key, sql, Change.ALTER, replaces=" ADD MAPPING " not in sql) for sql in out
    ]


_OPERATOR_SETTABLE = ("RESTRICT", "JOIN")


def operator(ctx: Ctx, key: str) -> list[Statement]:
    """ALTER OPERATOR ... SET changes its estimators (13 to 16: only those)."""

    def facts(body: str) -> dict[str, str]:
        return {line.strip().split(" = ")[0]: line.strip() for line in fact_lines(body)[1:-1]}

    old, new = facts(ctx.old.rows[key].body), facts(ctx.new.rows[key].body)
    differing = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    if not differing <= set(_OPERATOR_SETTABLE):
        raise Recreate("its definition changes")
    settings = [new.get(k, f"{k} = NONE") for k in _OPERATOR_SETTABLE if k in differing]
    sql = f"ALTER OPERATOR {split_key(key)[1]} SET ({', '.join(settings)})"
    return [ctx.statement(key, sql, Change.ALTER, replaces=True)]


def operator_family(ctx: Ctx, key: str) -> list[Statement]:
    """Members come and go with ALTER OPERATOR FAMILY ... ADD / DROP."""
    old, new = fact_lines(ctx.old.rows[key].body), fact_lines(ctx.new.rows[key].body)
    if old[0] != new[0]:
        raise Recreate
    before = [line.strip() for line in old[1:]]
    after = [line.strip() for line in new[1:]]
    head = f"ALTER OPERATOR FAMILY {split_key(key)[1]}"
    out = [f"{head} DROP {_member_types(m)}" for m in before if m not in after]
    out += [f"{head} ADD {m}" for m in after if m not in before]
    return [ctx.statement(key, sql, Change.ALTER, replaces=" DROP " in sql) for sql in out]


def _member_types(member: str) -> str:
    """`OPERATOR 1 =(integer,integer)` -> `OPERATOR 1 (integer,integer)`;
    `FUNCTION 1 (integer, integer) f(integer)` -> `FUNCTION 1 (integer, integer)`."""
    word, number, rest = member.split(" ", 2)
    if word == "OPERATOR":
        rest = rest.split(" FOR ORDER BY ")[0]
        return f"OPERATOR {number} {rest[rest.index('(') :]}"
    return f"FUNCTION {number} {rest[: rest.index(')') + 1]}"


def _facts(body: str) -> dict[str, str]:
    """`    WORD value` lines of a definition -> {WORD: value} (first word(s) upper case)."""
    out = {}
    for line in fact_lines(body)[1:]:
        fact = line.strip()
        for word in ("FOREIGN DATA WRAPPER", "HANDLER", "VALIDATOR", "OPTIONS", "TYPE", "VERSION"):
            if fact.startswith(word + " ") or fact.startswith(word + "("):
                out[word] = fact[len(word) :].strip()
                break
    return out


def _options(ctx: Ctx, key: str) -> str:
    return options_clause(
        option_pairs(ctx.env.old_options.get(key, ())),
        option_pairs(ctx.env.new_options.get(key, ())),
    )


def foreign_data_wrapper(ctx: Ctx, key: str) -> list[Statement]:
    old, new = _facts(ctx.old.rows[key].body), _facts(ctx.new.rows[key].body)
    name = split_key(key)[1]
    clauses = []
    for word in ("HANDLER", "VALIDATOR"):
        if old.get(word) != new.get(word):
            clauses.append(f"{word} {new[word]}" if word in new else f"NO {word}")
    if old.get("OPTIONS") != new.get("OPTIONS") and (options := _options(ctx, key)):
        clauses.append(options)
    if not clauses:
        return []
    replaces = any(c.startswith(("HANDLER", "VALIDATOR", "NO ")) for c in clauses)
    return [
        ctx.statement(
            key,
            f"ALTER FOREIGN DATA WRAPPER {name} {' '.join(clauses)}",
            Change.ALTER,
            replaces=replaces,
        )
    ]


def server(ctx: Ctx, key: str) -> list[Statement]:
    old, new = _facts(ctx.old.rows[key].body), _facts(ctx.new.rows[key].body)
    name = split_key(key)[1]
    for word in ("TYPE", "FOREIGN DATA WRAPPER"):
        if old.get(word) != new.get(word):
            raise Recreate(f"its {word.lower()} changes")
    clauses = []
    if old.get("VERSION") != new.get("VERSION"):
        if "VERSION" not in new:
            raise Recreate("its version is taken away")
        clauses.append(f"VERSION {new['VERSION']}")
    if old.get("OPTIONS") != new.get("OPTIONS") and (options := _options(ctx, key)):
        clauses.append(options)
    return [ctx.statement(key, f"ALTER SERVER {name} {c}", Change.ALTER) for c in clauses]


def user_mapping(ctx: Ctx, key: str) -> list[Statement]:
    options = _options(ctx, key)
    if not options:
        return []
    return [ctx.statement(key, f"ALTER USER MAPPING {split_key(key)[1]} {options}", Change.ALTER)]


def _publication_facts(body: str) -> tuple[str, dict[str, str], list[str], str]:
    """(head incl. FOR ALL TABLES, {table: its line}, schemas, WITH line) of a publication."""
    lines = [line.strip() for line in fact_lines(body)]
    head, tables, schemas, options = lines[0], {}, [], ""
    for fact in lines[1:]:
        if fact == "FOR ALL TABLES":
            head += " " + fact
        elif fact.startswith("TABLES IN SCHEMA "):
            schemas.append(fact[len("TABLES IN SCHEMA ") :])
        elif fact.startswith("TABLE "):
            table, _ = qualified_at(fact, len("TABLE "))
            tables[table] = fact[len("TABLE ") :]
        elif fact.startswith("WITH ("):
            options = fact
    return head, tables, schemas, options


def publication(ctx: Ctx, key: str) -> list[Statement]:
    old_head, old_tables, old_schemas, old_options = _publication_facts(ctx.old.rows[key].body)
    new_head, new_tables, new_schemas, new_options = _publication_facts(ctx.new.rows[key].body)
    if old_head != new_head:
        raise Recreate("FOR ALL TABLES changes")
    name = split_key(key)[1]
    head = f"ALTER PUBLICATION {name}"
    # Membership statements are tied to all of the publication's entries on each side: a
    # table leaves before it is dropped and joins once it is created.
    old_entries = list(ctx.old.entries_of.get(key, ()))
    new_entries = list(ctx.new.entries_of.get(key, ()))
    out = []
    lock = hazards.risk(lock=hazards.SHARE_UPDATE_EXCLUSIVE)
    for table, line in old_tables.items():
        if new_tables.get(table) != line:
            sql = f"{head} DROP TABLE {table}"
            out.append(ctx.statement(key, sql, Change.ALTER, lock, old=old_entries, new=[]))
    for schema in old_schemas:
        if schema not in new_schemas:
            sql = f"{head} DROP TABLES IN SCHEMA {schema}"
            out.append(ctx.statement(key, sql, Change.ALTER, old=old_entries, new=[]))
    for table, line in new_tables.items():
        if old_tables.get(table) != line:
            sql = f"{head} ADD TABLE {line}"
            out.append(ctx.statement(key, sql, Change.ALTER, lock, old=[], new=new_entries))
    for schema in new_schemas:
        if schema not in old_schemas:
            sql = f"{head} ADD TABLES IN SCHEMA {schema}"
            out.append(ctx.statement(key, sql, Change.ALTER, old=[], new=new_entries))
    if old_options != new_options:
        # The definition prints the boolean as the catalog's text does (t / f).
        options = re.sub(r"= t\)$", "= true)", re.sub(r"= f\)$", "= false)", new_options))
        out.append(ctx.statement(key, f"{head} SET {options[len('WITH ') :]}", Change.ALTER))
    return out


def default_privileges(ctx: Ctx, key: str) -> list[Statement]:
    old_head, _, old_lines = ctx.old.rows[key].body.partition("\n")
    _, _, new_lines = ctx.new.rows[key].body.partition("\n")
    sqls = acl.changes(acl.parse(old_lines), acl.parse(new_lines), acl.default_prefix(old_head))
    return [ctx.statement(key, sql, Change.ALTER, rank=Rank.LATE) for sql in sqls]


def security_label(ctx: Ctx, key: str) -> list[Statement]:
    return [ctx.statement(key, ctx.new.rows[key].body, Change.ALTER)]
