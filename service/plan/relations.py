"""Views, materialized views, sequences, indexes and statistics changed in place where
PostgreSQL lets them be; Recreate otherwise (none of them holds rows of its own that a
recreation would lose: a materialized view is filled again from its query)."""

from __future__ import annotations

import re

from service.plan import hazards
from service.plan.context import Ctx, Recreate, split_key
from service.plan.entries import Entry
from service.plan.facts import TableFacts
from service.plan.model import Change, Hazard, Rank, Statement
from service.plan.sqltext import fact_lines, option_pairs, quote_ident, quote_literal

_VIEW_LOCK = hazards.risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=hazards.ACCESS_EXCLUSIVE)
# pg_get_indexdef's storage parameters: `WITH (fillfactor='60', deduplicate_items='off')`
_INDEX_WITH = re.compile(r" WITH \((?:[^()']|'(?:[^']|'')*')*\)")
_INDEX_OPTION = re.compile(r"([^=,() ]+)='((?:[^']|'')*)'")


def _query(body: str) -> str:
    """The SELECT of a view's definition (what follows its `AS` line)."""
    at = body.find("\nAS\n")
    return body[at + 4 :] if at >= 0 else ""


def _shape(facts: TableFacts) -> list[tuple[str, str, str | None]]:
    return [(c.name, c.type, c.collation) for c in facts.columns]


def _options(ctx: Ctx, key: str, word: str, old: TableFacts, new: TableFacts) -> list[Statement]:
    out = []
    before, after = option_pairs(old.options), option_pairs(new.options)
    reset = [k for k in before if k not in after]
    if reset:
        sql = f"{word} {split_key(key)[1]} RESET ({', '.join(reset)})"
        out.append(ctx.statement(key, sql, Change.ALTER, _VIEW_LOCK))
    changed = [f"{k}={quote_literal(v)}" for k, v in after.items() if before.get(k) != v]
    if changed:
        sql = f"{word} {split_key(key)[1]} SET ({', '.join(changed)})"
        out.append(ctx.statement(key, sql, Change.ALTER, _VIEW_LOCK))
    return out


def _defaults(ctx: Ctx, key: str, word: str, old: TableFacts, new: TableFacts) -> list[Statement]:
    out = []
    for n in new.columns:
        o = old.column(n.name)
        before = o.expression if o else None
        if before != n.expression:
            column = quote_ident(n.name)
            clause = f"SET DEFAULT {n.expression}" if n.expression else "DROP DEFAULT"
            sql = f"{word} {split_key(key)[1]} ALTER COLUMN {column} {clause}"
            out.append(ctx.statement(key, sql, Change.ALTER, _VIEW_LOCK, replaces=True))
    return out


def view(ctx: Ctx, key: str) -> list[Statement]:
    old_row, new_row = ctx.old.rows[key], ctx.new.rows[key]
    old, new = ctx.facts(ctx.old, key), ctx.facts(ctx.new, key)
    if old is None or new is None:
        return []
    out: list[Statement] = []
    if _query(old_row.body) != _query(new_row.body):
        shape = _shape(old)
        if _shape(new)[: len(shape)] != shape:
            raise Recreate("its columns change (CREATE OR REPLACE VIEW only adds columns)")
        entry = ctx.main_entry(ctx.new, key)
        if entry is None or not entry.sql.startswith("CREATE VIEW "):
            raise Recreate
        sql = "CREATE OR REPLACE VIEW " + entry.sql[len("CREATE VIEW ") :]
        out.append(ctx.statement(key, sql, Change.ALTER, _VIEW_LOCK, new=[entry], replaces=True))
    else:
        out += _options(ctx, key, "ALTER VIEW", old, new)
    out += _defaults(ctx, key, "ALTER VIEW", old, new)
    return out


def materialized_view(ctx: Ctx, key: str) -> list[Statement]:
    old_row, new_row = ctx.old.rows[key], ctx.new.rows[key]
    old, new = ctx.facts(ctx.old, key), ctx.facts(ctx.new, key)
    if old is None or new is None:
        return []
    if _query(old_row.body) != _query(new_row.body) or _shape(old) != _shape(new):
        raise Recreate("its query changes")
    word, name = "ALTER MATERIALIZED VIEW", split_key(key)[1]
    out = _options(ctx, key, word, old, new)
    rewrite = hazards.alter_table("rewrite")
    if old.tablespace != new.tablespace:
        sql = f"{word} {name} SET TABLESPACE {quote_ident(new.tablespace or 'pg_default')}"
        out.append(ctx.statement(key, sql, Change.ALTER, rewrite))
    if old.access_method != new.access_method and new.access_method:
        sql = f"{word} {name} SET ACCESS METHOD {quote_ident(new.access_method)}"
        out.append(ctx.statement(key, sql, Change.ALTER, rewrite))
    return out


def _sequence_facts(body: str) -> tuple[bool, dict[str, str], str | None]:
    """(unlogged, {option word: whole option}, OWNED BY target) of a sequence's definition."""
    lines = fact_lines(body)
    unlogged = lines[0].startswith("CREATE UNLOGGED SEQUENCE")
    options: dict[str, str] = {}
    owned = None
    for line in lines[1:]:
        fact = line.strip()
        if fact.startswith("OWNED BY "):
            owned = fact[len("OWNED BY ") :]
            continue
        for part in _sequence_options(fact):
            word = "CYCLE" if part.endswith("CYCLE") else part.split(" ", 1)[0]
            options[word] = part
    return unlogged, options, owned


_SEQUENCE_OPTION = re.compile(
    r"AS \S+(?: \S+)*?(?= START| INCREMENT| MINVALUE| MAXVALUE| CACHE| NO CYCLE| CYCLE|$)"
    r"|START WITH -?\d+|INCREMENT BY -?\d+|MINVALUE -?\d+|MAXVALUE -?\d+|CACHE \d+|NO CYCLE|CYCLE"
)


def _sequence_options(fact: str) -> list[str]:
    return [m.group() for m in _SEQUENCE_OPTION.finditer(fact)]


def sequence(ctx: Ctx, key: str) -> list[Statement]:
    name = split_key(key)[1]
    old_unlogged, old, old_owned = _sequence_facts(ctx.old.rows[key].body)
    new_unlogged, new, new_owned = _sequence_facts(ctx.new.rows[key].body)
    out: list[Statement] = []
    owner_old = [e for e in ctx.old.entries_of.get(key, ()) if e.desc == "SEQUENCE OWNED BY"]
    owner_new = [e for e in ctx.new.entries_of.get(key, ()) if e.desc == "SEQUENCE OWNED BY"]
    if old_owned != new_owned and old_owned:
        # First, on its own: dropping the old owner column would drop the sequence too.
        sql = f"ALTER SEQUENCE {name} OWNED BY NONE"
        before: list[Entry | None] = [*owner_old] or [ctx.main_entry(ctx.old, key)]
        out.append(ctx.statement(key, sql, Change.ALTER, old=before, new=[], rank=Rank.DROP))
    changed = [v for k, v in new.items() if old.get(k) != v]
    if changed:
        sql = f"ALTER SEQUENCE {name} {' '.join(changed)}"
        out.append(ctx.statement(key, sql, Change.ALTER))
    if old_unlogged != new_unlogged:
        sql = f"ALTER SEQUENCE {name} SET {'UNLOGGED' if new_unlogged else 'LOGGED'}"
        out.append(ctx.statement(key, sql, Change.ALTER))
    if old_owned != new_owned and new_owned:
        sql = f"ALTER SEQUENCE {name} OWNED BY {new_owned}"
        after: list[Entry | None] = [*owner_new] or [ctx.main_entry(ctx.new, key)]
        out.append(ctx.statement(key, sql, Change.ALTER, old=[], new=after))
    return out


def _index_parts(body: str) -> tuple[str, dict[str, str], str | None, str | None, list[str]]:
    """(definition without storage parameters, the parameters, tablespace, partition
    parent, statistics lines) of an index's definition."""
    lines = fact_lines(body)
    definition, options = lines[0], {}
    found = list(_INDEX_WITH.finditer(definition))
    if found:
        last = found[-1]
        options = {k: v.replace("''", "'") for k, v in _INDEX_OPTION.findall(last.group())}
        definition = definition[: last.start()] + definition[last.end() :]
    tablespace = parent = None
    stats = []
    for line in lines[1:]:
        fact = line.strip()
        if fact.startswith("TABLESPACE "):
            tablespace = fact[len("TABLESPACE ") :]
        elif fact.startswith("PARTITION OF "):
            parent = fact[len("PARTITION OF ") :]
        else:
            stats.append(fact)
    return definition, options, tablespace, parent, stats


def index(ctx: Ctx, key: str) -> list[Statement]:
    name = split_key(key)[1]
    o_def, o_opts, o_space, o_parent, o_stats = _index_parts(ctx.old.rows[key].body)
    n_def, n_opts, n_space, n_parent, n_stats = _index_parts(ctx.new.rows[key].body)
    if o_def != n_def or (o_parent and o_parent != n_parent):
        raise Recreate("its definition changes")
    out: list[Statement] = []
    lock = hazards.risk(lock=hazards.SHARE_UPDATE_EXCLUSIVE)
    reset = [k for k in o_opts if k not in n_opts]
    if reset:
        out.append(
            ctx.statement(key, f"ALTER INDEX {name} RESET ({', '.join(reset)})", Change.ALTER, lock)
        )
    changed = [f"{k}={quote_literal(v)}" for k, v in n_opts.items() if o_opts.get(k) != v]
    if changed:
        sql = f"ALTER INDEX {name} SET ({', '.join(changed)})"
        out.append(ctx.statement(key, sql, Change.ALTER, lock))
    if o_space != n_space:
        sql = f"ALTER INDEX {name} SET TABLESPACE {n_space or 'pg_default'}"
        out.append(ctx.statement(key, sql, Change.ALTER, hazards.alter_table("rewrite")))
    if n_parent and not o_parent:
        sql = f"ALTER INDEX {n_parent} ATTACH PARTITION {name}"
        out.append(ctx.statement(key, sql, Change.ALTER))
    if o_stats != n_stats:
        columns = {s.split(" ")[2] for s in o_stats} - {s.split(" ")[2] for s in n_stats}
        for column in sorted(columns):
            sql = f"ALTER INDEX {name} ALTER COLUMN {column} SET STATISTICS -1"
            out.append(ctx.statement(key, sql, Change.ALTER, lock))
        for fact in n_stats:
            if fact not in o_stats:
                out.append(ctx.statement(key, f"ALTER INDEX {name} {fact}", Change.ALTER, lock))
    return out


def statistics(ctx: Ctx, key: str) -> list[Statement]:
    old, new = fact_lines(ctx.old.rows[key].body), fact_lines(ctx.new.rows[key].body)
    if old[0] != new[0]:
        raise Recreate("its definition changes")
    target = new[1].strip().removeprefix("STATISTICS ") if len(new) > 1 else "-1"
    sql = f"ALTER STATISTICS {split_key(key)[1]} SET STATISTICS {target}"
    return [
        ctx.statement(key, sql, Change.ALTER, hazards.risk(lock=hazards.SHARE_UPDATE_EXCLUSIVE))
    ]
