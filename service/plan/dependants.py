"""What must go and come back with what the plan drops: FROM's dependants of every dropped or
recreated object, and of every column dropped or given another type.

PostgreSQL refuses to drop an object others depend on (and to retype a column a view reads):
each such dependant of FROM is dropped first and created again from TO's definition after.
A dependant that is part of a table -- a column default, a constraint -- is taken off the
table and put back; a table column whose type or generation uses the object is refused,
since recreating it would delete that column's data."""

from __future__ import annotations

from service.plan.context import Ctx, split_key
from service.plan.facts import TableFacts
from service.plan.model import Change, Rank
from service.plan.objects import is_base_type
from service.plan.sides import PG_ATTRDEF, PG_CLASS, PG_CONSTRAINT, Dependency
from service.plan.sqltext import quote_ident

# Kinds whose objects hold no data a drop and create would lose.
RECREATABLE = frozenset(
    {
        "view",
        "materialized view",
        "index",
        "trigger",
        "rule",
        "policy",
        "statistics",
        "function",
        "procedure",
        "aggregate",
        "operator",
        "operator class",
        "operator family",
        "cast",
        "conversion",
        "text search dictionary",
        "text search configuration",
        "text search parser",
        "text search template",
        "collation",
        "foreign table",
        "server",
        "user mapping",
        "event trigger",
        "transform",
        "access method",
        "language",
        "type",
        "domain",
        "foreign data wrapper",
        "security label",
        "publication",
    }
)
# What a retyped column takes with it: PostgreSQL rebuilds indexes, constraints and
# statistics on it itself, and refuses the type change while these use it.
_ON_RETYPED = frozenset(
    {"view", "materialized view", "rule", "policy", "trigger", "function", "procedure"}
)
_TABLES = frozenset({"table"})


def expand(ctx: Ctx) -> None:
    queue: list[tuple[str, int]] = [(k, 0) for k in sorted(ctx.removed | ctx.recreate.keys())]
    queue += sorted(ctx.broken)
    seen: set[tuple[str, int]] = set()
    while queue:
        ref, column = queue.pop(0)
        if (ref, column) in seen:
            continue
        seen.add((ref, column))
        for d in ctx.old.dependants.get(ref, ()):
            if column and d.ref_subid != column:
                continue
            for found in _handle(ctx, d, ref, column):
                queue.append((found, 0))
        if not column:
            queue += [(label, 0) for label in _labels_of(ctx, ref)]


def _handle(ctx: Ctx, d: Dependency, ref: str, column: int) -> list[str]:
    """Decide about one dependant; returns the keys newly recreated."""
    key = d.key
    if key in ctx.removed or key in ctx.recreate:
        return []
    kind = split_key(key)[0]
    if column and (ref, column) not in ctx.dropped and kind not in _ON_RETYPED:
        return []  # a retyped column: PostgreSQL rebuilds indexes and constraints on it
    if kind in RECREATABLE:
        if kind in ("type", "domain") and _has_columns(ctx, key):
            ctx.refuse(key, f"it uses {ref}, which the plan drops, and table columns hold it")
            return []
        ctx.recreate[key] = f"it depends on {ref}, which the plan drops or changes"
        if column:
            ctx.recreate[key] = f"it uses a column of {ref} the plan drops or retypes"
        ctx.in_place.pop(key, None)
        return [key]
    if kind in _TABLES:
        _table_part(ctx, d, ref)
    return []


def _has_columns(ctx: Ctx, key: str) -> bool:
    return any(
        split_key(d.key)[0] == "table" and d.part[0] == PG_CLASS and d.subid
        for d in ctx.old.dependants.get(key, ())
    )


def _labels_of(ctx: Ctx, key: str) -> list[str]:
    """Security labels on an object that is recreated: they go with it, and come back."""
    if key not in ctx.recreate or key not in ctx.old.rows:
        return []
    row = ctx.old.rows[key]
    found = []
    for k in ctx.old.labels.get((row.classid or 0, row.objid or 0), ()):
        if k in ctx.new.rows and k not in ctx.recreate:
            ctx.recreate[k] = f"it labels {key}, which is created again"
            found.append(k)
    return found


def _table_part(ctx: Ctx, d: Dependency, ref: str) -> None:
    """A part of a table depends on what goes: take the part off and put it back."""
    table = d.key
    chain = ctx.old.chain(d.part)
    old, new = ctx.facts(ctx.old, table), ctx.facts(ctx.new, table)
    if old is None or new is None:
        return
    _, name = split_key(table)
    for classid, objid in chain:
        if classid == PG_ATTRDEF:
            column = next((c for c in old.columns if c.default_oid == objid), None)
            if column is None or (table, column.num) in ctx.dropped:
                return
            target = new.column(column.name)
            if column.generated:
                ctx.refuse(
                    table,
                    f"generated column {quote_ident(column.name)} uses {ref}, which the plan drops",
                )
                return
            if target is None or target.default != column.default or table in ctx.recreate:
                return  # the table's own change replaces this default in two steps already
            _detach(
                ctx,
                table,
                (classid, objid),
                f"ALTER TABLE ONLY {name} ALTER COLUMN {quote_ident(column.name)}",
                "DROP DEFAULT",
                f"SET DEFAULT {target.default}",
            )
            return
        if classid == PG_CONSTRAINT:
            constraint = next((c for c in old.constraints if c.oid == objid), None)
            if constraint is None or constraint.from_parent:
                return
            same = new.constraint(constraint.name)
            if same is None or same.definition != constraint.definition:
                return  # dropped, or dropped and added, by the table's own change
            head = f"ALTER TABLE {name}"
            _detach(
                ctx,
                table,
                (classid, objid),
                head,
                f"DROP CONSTRAINT {quote_ident(constraint.name)}",
                f"ADD CONSTRAINT {quote_ident(constraint.name)} {same.definition}",
            )
            return
    if d.part[0] == PG_CLASS and d.subid and (table, d.subid) in ctx.broken:
        return  # the column is dropped or retyped by the table's own change, before
    what = f"column {_column(old, d.subid)}" if d.subid else "the table"
    ctx.refuse(table, f"{what} uses {ref}, which the plan must drop: that would delete its data")


def _column(facts: TableFacts, num: int) -> str:
    found = next((c for c in facts.columns if c.num == num), None)
    return quote_ident(found.name) if found else str(num)


def _detach(ctx: Ctx, table: str, part: tuple[int, int], head: str, off: str, on: str) -> None:
    if (table, part) in ctx.detached:
        return
    ctx.detached.add((table, part))
    old_entry = ctx.old.entry_of_catalog(part) or ctx.main_entry(ctx.old, table)
    new_entry = ctx.main_entry(ctx.new, table)
    note = "taken off while what it uses is dropped and created again"
    ctx.extra.append(
        ctx.statement(
            table, f"{head} {off}", Change.ALTER, old=[old_entry], new=[], rank=Rank.DROP, note=note
        )
    )
    ctx.extra.append(
        ctx.statement(table, f"{head} {on}", Change.ALTER, old=[], new=[new_entry], note="put back")
    )


def implied(ctx: Ctx, key: str) -> bool:
    """Whether dropping `key` is done by another drop of the plan: PostgreSQL drops an object
    with what it depends on automatically (an index with its table or column, a sequence
    with the column owning it, a security label with what it labels)."""
    gone = ctx.removed | ctx.recreate.keys()
    row = ctx.old.rows[key]
    if row.kind == "security label":
        return ctx.old.key_of.get((row.classid or 0, row.objid or 0)) in gone
    if row.kind == "function" and _io_function_of_dropped_type(ctx, key, gone):
        return True
    for d in ctx.old.depends_of.get(key, ()):
        if not d.auto or d.part != _own(ctx, key):
            continue
        if d.ref in gone and split_key(d.ref)[0] in (
            "table",
            "materialized view",
            "view",
            "foreign table",
        ):
            return True
        if d.ref_subid and (d.ref, d.ref_subid) in ctx.dropped:
            return True
    return False


def _io_function_of_dropped_type(ctx: Ctx, key: str, gone: set[str]) -> bool:
    """A base type's input/output function: the type's DROP ... CASCADE takes it along."""
    for d in ctx.old.dependants.get(key, ()):
        row = ctx.old.rows.get(d.key)
        if row is not None and d.key in gone and is_base_type(row.kind, row.body):
            return True
    return False


def _own(ctx: Ctx, key: str) -> tuple[int, int]:
    row = ctx.old.rows[key]
    return (row.classid or 0, row.objid or 0)
