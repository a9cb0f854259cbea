"""A changed table's columns: dropped, added (at the end), and each fact of a kept one."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from service.compare.casts import type_change
from service.compare.levels import Impact
from service.plan import hazards
from service.plan.context import Ctx, Refuse
from service.plan.entries import Entry
from service.plan.facts import Column, TableFacts, special_not_null
from service.plan.model import Change, Hazard, Rank, Statement
from service.plan.sides import PG_ATTRDEF
from service.plan.sqltext import (
    ident_at,
    option_pairs,
    options_clause,
    quote_ident,
    quote_literal,
    unquote,
)

_STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}
_COMPRESSION = {"p": "pglz", "l": "lz4"}
_IDENTITY = {"a": "ALWAYS", "d": "BY DEFAULT"}
# Type changes PostgreSQL makes without rewriting the table (binary-compatible).
_WIDER = ("character varying", "text")


@dataclass
class Table:
    """One table being altered: where its statements go and what they are tied to."""

    ctx: Ctx
    key: str
    word: str  # ALTER TABLE / ALTER FOREIGN TABLE
    name: str
    old: TableFacts
    new: TableFacts
    old_entry: Entry | None
    new_entry: Entry | None
    # In this order: what removes a part FROM's table entry has apart (a constraint, a
    # default: pg_dump's entries that depend on the table's), what changes the table, then
    # what makes a part TO has apart (its entries depend on the table's being done).
    first: list[Statement] = field(default_factory=list)
    out: list[Statement] = field(default_factory=list)
    last: list[Statement] = field(default_factory=list)

    @property
    def foreign(self) -> bool:
        return self.new.relkind == "f"

    def add(
        self,
        clause: str,
        what: str,
        change: Change = Change.ALTER,
        *,
        old: list[Entry | None] | None = None,
        new: list[Entry | None] | None = None,
        note: str = "",
        extra: frozenset[Hazard] = frozenset(),
        rank: int | None = None,
        only: bool = False,
        phase: str = "out",
        needs: list[Entry | None] | None = None,
        removes: bool = False,
    ) -> None:
        risk = hazards.alter_table(what)
        if self.foreign:  # a foreign table holds no rows here: nothing to rewrite or lose
            gone = {Hazard.DELETES_DATA, Hazard.REWRITES_TABLE, Hazard.VALIDATES_CONSTRAINT}
            risk = (risk[0] - gone, risk[1])
        risk = (risk[0] | extra, risk[1])
        head = f"{self.word} {'ONLY ' if only else ''}{self.name}"
        getattr(self, phase).append(
            self.ctx.statement(
                self.key,
                f"{head} {clause}",
                change,
                risk,
                old=([self.old_entry] if removes else []) if old is None else old,
                new=[self.new_entry] if new is None else new,
                note=note,
                rank=rank,
                needs=needs or (),
            )
        )

    def statements(self) -> list[Statement]:
        return [*self.first, *self.out, *self.last]

    def default_needs(self, column: Column) -> list[Entry | None]:
        """What TO's default of a column uses beyond its table (a sequence, a function), as
        pg_dump's separate DEFAULT entry says: made before the default is set."""
        entry = self.default_entry("new", column)
        if entry is None:
            return []
        own = self.new_entry.dump_id if self.new_entry else None
        found = [self.ctx.new.archive.entries.get(d) for d in entry.deps if d != own]
        return [e for e in found if e is not None]

    def default_entry(self, side: str, column: Column) -> Entry | None:
        """pg_dump's separate DEFAULT entry of a column, where it wrote one."""
        if column.default_oid is None:
            return None
        s = self.ctx.old if side == "old" else self.ctx.new
        return s.entry_of_catalog((PG_ATTRDEF, column.default_oid))


def spec(c: Column, not_null: bool = True) -> str:
    """A column's definition for ADD COLUMN (its NOT NULL left to notnull.py where it is a
    named or NOT VALID constraint)."""
    parts = [quote_ident(c.name), c.type]
    if c.collation:
        parts.append(f"COLLATE {c.collation}")
    if c.generated == "s":
        parts.append(f"GENERATED ALWAYS AS ({c.expression}) STORED")
    elif c.generated == "v":
        parts.append(f"GENERATED ALWAYS AS ({c.expression}) VIRTUAL")
    elif c.expression is not None:
        parts.append(f"DEFAULT {c.expression}")
    if c.not_null and not_null:
        parts.append("NOT NULL")
    if c.identity:
        parts.append(f"GENERATED {_IDENTITY[c.identity]} AS IDENTITY ({_sequence(c)})")
    return " ".join(parts)


def _sequence(c: Column) -> str:
    # No AS: an identity sequence has its column's type (naming it again is an error).
    return f"SEQUENCE NAME {c.identity_sequence} {c.identity_options}"


def columns(t: Table) -> None:
    """Drops, changes and additions of columns, in that order. A column a parent gives its
    children comes and goes with the parent's statement (ALTER TABLE recurses)."""
    old = {c.name: c for c in t.old.columns}
    new = {c.name: c for c in t.new.columns}
    same_parents = t.old.parents == t.new.parents
    result = [c.name for c in t.old.columns]  # the order the plan leaves, as it goes
    readd = []
    for c in t.old.columns:
        n = new.get(c.name)
        if n is None and c.local:
            _drop(t, c)
        elif (
            n is not None
            and c.local
            and not c.inherited
            and not n.local
            and n.inherited
            and same_parents
        ):
            # Declared here in FROM, only inherited in TO: the parent's ADD COLUMN brings it,
            # once this table's own column is gone (PostgreSQL would merge the two).
            _drop(t, c, note="its parent gives it in TO: it comes back from there")
        elif n is not None and not c.local and n.local and not n.inherited and same_parents:
            # Inherited in FROM, declared here in TO: the parent's DROP COLUMN takes it away.
            readd.append(n)
        else:
            continue
        result.remove(c.name)
    for c in t.old.columns:
        if c.name in new and c.name in result:
            _change(t, c, new[c.name])
    for c in [*readd, *(c for c in t.new.columns if c.name not in old)]:
        if c.local or not t.new.parents:
            _add(t, c, result)
    if result != [c.name for c in t.new.columns if c.name in result] or set(result) != set(new):
        t.ctx.column_order.add(t.key)


def _drop(t: Table, c: Column, note: str = "") -> None:
    t.add(
        f"DROP COLUMN {quote_ident(c.name)}",
        "drop column",
        Change.ALTER,
        new=[],
        note=note,
        removes=True,
        rank=Rank.DROP,
    )
    t.ctx.broken.add((t.key, c.num))
    t.ctx.dropped.add((t.key, c.num))
    t.ctx.gone_targets.add(f"COLUMN {t.name}.{quote_ident(c.name)}")


def _add(t: Table, c: Column, result: list[str]) -> None:
    order = [x.name for x in t.new.columns]
    result.append(c.name)
    note = ""
    if order[: len(result)] != result:
        note = f"added at the end: TO has it in position {order.index(c.name) + 1}"
    extra: frozenset[Hazard] = frozenset()
    if c.not_null and c.expression is None and not c.identity:
        extra = frozenset({Hazard.VALIDATES_CONSTRAINT})
        note = (note + "; " if note else "") + "NOT NULL without a default: fails on rows"
    what = "add column"
    if c.identity or c.generated == "s" or "nextval(" in (c.expression or ""):
        what = "add column rewriting"
    t.add(
        f"ADD COLUMN {spec(c, not _special(t, t.new, c))}",
        what,
        Change.ALTER,
        old=[],
        note=note,
        extra=extra,
        needs=t.default_needs(c),
    )
    _details(t, None, c)


def _change(t: Table, o: Column, n: Column) -> None:
    inherited = not o.local and not n.local and bool(t.new.parents)
    if o.generated != n.generated or (o.generated and o.expression != n.expression):
        _generation(t, o, n)
        return
    if not inherited and (o.type != n.type or o.collation != n.collation):
        if o.default is not None and o.default != n.default:
            _set_default(t, o, None)
            o = _without_default(o)
        _retype(t, o, n)
    if not inherited:
        _identity(t, o, n)  # an identity goes before a default comes, and the other way
    if o.default != n.default and not n.generated:
        _set_default(t, o, n.default, n)
    special = _special(t, t.old, o) or _special(t, t.new, n)  # notnull.py plans those
    if not inherited and o.not_null != n.not_null and not (o.identity or n.identity or special):
        verb = "SET NOT NULL" if n.not_null else "DROP NOT NULL"
        t.add(f"ALTER COLUMN {quote_ident(n.name)} {verb}", verb.lower())
    _details(t, o, n)


def _special(t: Table, facts: TableFacts, c: Column) -> bool:
    return special_not_null(facts, relname(t.name), c.name) is not None


def relname(table: str) -> str:
    """`sch."My Table"` -> `My Table`."""
    _, end = ident_at(table, 0)
    return unquote(ident_at(table, end + 1)[0]) if end < len(table) else unquote(table)


def _without_default(c: Column) -> Column:
    return replace(c, expression=None, default_oid=None)


def _retype(t: Table, o: Column, n: Column) -> None:
    context = "a" if o.type == n.type else t.ctx.env.casts.get((o.type, n.type))
    if context is None:
        raise Refuse(
            f"column {quote_ident(n.name)}: there is no cast from {o.type} to {n.type}; "
            "changing it needs a data migration"
        )
    clause = f"ALTER COLUMN {quote_ident(n.name)} TYPE {n.type}"
    if n.collation:
        clause += f" COLLATE {n.collation}"
    what = "type"
    if context == "e":
        clause += f" USING {quote_ident(n.name)}::{n.type}"
        what = "type lossy"
    elif o.type == n.type or (o.type.startswith(_WIDER[0]) and n.type in _WIDER):
        what = "type binary"
    # Breaking as the drift report judges a retype (compare/casts.py): not castable both ways
    # without being asked, or a narrower modifier.
    breaks = type_change(o.type, n.type) is Impact.BREAKING
    t.add(clause, what, removes=True, extra=frozenset({Hazard.BREAKS_CLIENTS} if breaks else ()))
    t.ctx.broken.add((t.key, o.num))


def _set_default(t: Table, o: Column, expression: str | None, n: Column | None = None) -> None:
    name = quote_ident(o.name)
    if o.default is not None:
        # Apart from the new one, first: the old default may use what the plan drops.
        old_entry = t.default_entry("old", o) or t.old_entry
        t.add(
            f"ALTER COLUMN {name} DROP DEFAULT",
            "default",
            old=[old_entry],
            new=[],
            only=True,
            phase="first",
        )
    if expression is not None and n is not None:
        t.add(
            f"ALTER COLUMN {name} SET DEFAULT {expression}",
            "default",
            old=[],
            needs=t.default_needs(n),
        )


def _generation(t: Table, o: Column, n: Column) -> None:
    """A generation expression changed, came or went."""
    name = quote_ident(n.name)
    if o.generated and not n.generated and n.expression is None:
        t.add(f"ALTER COLUMN {name} DROP EXPRESSION", "other", removes=True)
        _details(t, o, n)
        return
    if o.generated and o.generated == n.generated and t.ctx.old.data.version >= 170000:
        t.add(f"ALTER COLUMN {name} SET EXPRESSION AS ({n.expression})", "rewrite", removes=True)
        t.ctx.broken.add((t.key, o.num))
        _details(t, o, n)
        return
    # No statement turns one into the other: the column goes and comes back at the end.
    lost = "" if o.generated else " (its values are computed again)"
    _drop(t, o, note=f"dropped and added again: its generation changed{lost}")
    result = [c.name for c in t.old.columns if t.new.column(c.name) and c.name != o.name]
    _add(t, n, result)
    t.ctx.column_order.add(t.key)
    if not o.generated:
        t.out[-1] = _with(t.out[-1], Hazard.DELETES_DATA)


def _with(s: Statement, hazard: Hazard) -> Statement:
    return replace(s, hazards=s.hazards | {hazard})


def _identity(t: Table, o: Column, n: Column) -> None:
    name = quote_ident(n.name)
    if o.identity and not n.identity:
        t.add(f"ALTER COLUMN {name} DROP IDENTITY", "identity", removes=True)
        if o.not_null and not n.not_null:
            t.add(f"ALTER COLUMN {name} DROP NOT NULL", "drop not null")
    elif n.identity and not o.identity:
        if not o.not_null:
            t.add(f"ALTER COLUMN {name} SET NOT NULL", "set not null")
        t.add(
            f"ALTER COLUMN {name} ADD GENERATED {_IDENTITY[n.identity]} AS IDENTITY "
            f"({_sequence(n)})",
            "identity",
        )
    elif n.identity:
        if o.identity != n.identity:
            t.add(f"ALTER COLUMN {name} SET GENERATED {_IDENTITY[n.identity]}", "identity")
        if (o.identity_options, o.identity_type) != (n.identity_options, n.identity_type):
            options = " ".join(f"SET {o}" for o in _sequence_options(n))
            t.add(f"ALTER COLUMN {name} {options}", "identity")


def _sequence_options(c: Column) -> list[str]:
    """`INCREMENT BY 1 MINVALUE 1 ... NO CYCLE` -> its options one by one."""
    words = (c.identity_options or "").split()
    out, i = [], 0
    while i < len(words):
        if words[i] in ("INCREMENT", "START"):
            out.append(" ".join(words[i : i + 3]))
            i += 3
        elif words[i] == "NO":
            out.append(" ".join(words[i : i + 2]))
            i += 2
        elif words[i] == "CYCLE":
            out.append("CYCLE")
            i += 1
        else:
            out.append(" ".join(words[i : i + 2]))
            i += 2
    return out


def _details(t: Table, o: Column | None, n: Column) -> None:
    """Storage, compression, statistics, attribute and foreign options."""
    name = quote_ident(n.name)
    if (o.storage if o else n.type_storage) != n.storage:
        t.add(f"ALTER COLUMN {name} SET STORAGE {_STORAGE[n.storage]}", "storage")
    if (o.compression if o else None) != n.compression:
        method = _COMPRESSION.get(n.compression or "", "default")
        t.add(f"ALTER COLUMN {name} SET COMPRESSION {method}", "storage")
    if (o.statistics if o else None) != n.statistics:
        target = -1 if n.statistics is None else n.statistics
        t.add(f"ALTER COLUMN {name} SET STATISTICS {target}", "statistics")
    before, after = option_pairs(o.options if o else ()), option_pairs(n.options)
    reset = [k for k in before if k not in after]
    if reset:
        t.add(f"ALTER COLUMN {name} RESET ({', '.join(reset)})", "options")
    changed = [f"{k}={quote_literal(v)}" for k, v in after.items() if before.get(k) != v]
    if changed:
        t.add(f"ALTER COLUMN {name} SET ({', '.join(changed)})", "options")
    clause = options_clause(option_pairs(o.fdw_options if o else ()), option_pairs(n.fdw_options))
    if clause:
        t.add(f"ALTER COLUMN {name} {clause}", "options")
