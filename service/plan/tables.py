"""ALTER TABLE (and ALTER FOREIGN TABLE) for a table in both FROM and TO.

A table is never dropped and created again: that would delete its rows. Each fact is
changed by the subcommand PostgreSQL has for it, read from both sides' facts (queries.py);
what has none (a new partition key, a plain table becoming a partitioned one) is refused.
A foreign table holds no rows here: where it has no subcommand, it is created again."""

from __future__ import annotations

from dataclasses import replace

from service.plan import hazards
from service.plan.columns import Table, columns
from service.plan.context import Ctx, Recreate, Refuse, split_key
from service.plan.entries import Entry
from service.plan.facts import Constraint
from service.plan.model import Change, Hazard, Rank, Statement
from service.plan.notnull import not_null
from service.plan.sides import PG_CONSTRAINT, Side
from service.plan.sqltext import option_pairs, options_clause, quote_ident, quote_literal

_NOT_VALID = " NOT VALID"
_DEFERRAL = (" DEFERRABLE INITIALLY DEFERRED", " DEFERRABLE INITIALLY IMMEDIATE", " DEFERRABLE")
_REPLICA = {"d": "DEFAULT", "n": "NOTHING", "f": "FULL"}


def alter(ctx: Ctx, key: str) -> list[Statement]:
    kind, name = split_key(key)
    old, new = ctx.facts(ctx.old, key), ctx.facts(ctx.new, key)
    if old is None or new is None:
        return []  # run.py reads the facts and plans again
    if old.relkind != new.relkind:
        raise Refuse(
            "it becomes a partitioned table (or stops being one): that needs a new table "
            "and a copy of its rows"
        )
    if old.partition_key != new.partition_key:
        raise Refuse("its partition key changes: that needs a new table and a copy of its rows")
    if kind == "foreign table" and old.server != new.server:
        raise Recreate("its server changes")
    if not new.is_partition and new.parents != old.parents:
        merged = [
            c.name for c in new.columns
            if not c.local and c.inherited and (o := old.column(c.name)) is not None and o.local
        ]  # fmt: skip
        if merged:
            raise Refuse(
                f"it inherits in TO, and its column {quote_ident(merged[0])}, declared in it, "
                "would stay declared besides (ALTER TABLE INHERIT merges them): only a new "
                "table has it inherited alone"
            )
    word = "ALTER FOREIGN TABLE" if kind == "foreign table" else "ALTER TABLE"
    t = Table(
        ctx, key, word, name, old, new, ctx.main_entry(ctx.old, key), ctx.main_entry(ctx.new, key)
    )
    _detach(t)
    _constraints_dropped(t)
    columns(t)
    not_null(t)
    _properties(t)
    _constraints_added(t)
    _late(t)
    _attach(t)
    return t.statements()


def _entry(t: Table, side: str, c: Constraint) -> Entry | None:
    s = t.ctx.old if side == "old" else t.ctx.new
    return s.entry_of_catalog((PG_CONSTRAINT, c.oid))


def _constraint_pairs(t: Table) -> list[tuple[Constraint | None, Constraint | None]]:
    """(FROM's, TO's) constraint of each name this table declares itself (NOT NULL ones as
    PostgreSQL 18 names them are the column's NOT NULL, left to the column)."""
    old = {c.name: c for c in t.old.constraints if not c.from_parent and c.type != "n"}
    new = {c.name: c for c in t.new.constraints if not c.from_parent and c.type != "n"}
    return [(old.get(n), new.get(n)) for n in sorted(old.keys() | new.keys())]


def _same_but(o: Constraint, n: Constraint) -> str | None:
    """'validate' or 'deferral' where only that differs, else None."""
    if o.definition == n.definition + _NOT_VALID and not o.validated and n.validated:
        return "validate"
    if o.type == "f" and _undeferred(o.definition) == _undeferred(n.definition):
        return "deferral"
    return None


def _undeferred(definition: str) -> str:
    for suffix in _DEFERRAL:
        definition = definition.replace(suffix, "")
    return definition


def _constraints_dropped(t: Table) -> None:
    for o, n in _constraint_pairs(t):
        if o is None or (n is not None and o.definition == n.definition):
            continue
        if n is not None and _same_but(o, n):
            continue
        t.add(
            f"DROP CONSTRAINT {quote_ident(o.name)}",
            "drop constraint",
            Change.ALTER,
            old=[_entry(t, "old", o) or t.old_entry],
            new=[],
            phase="first",
            rank=Rank.DROP,
        )
        if n is None:
            t.ctx.gone_targets.add(f"CONSTRAINT {quote_ident(o.name)} ON {t.name}")


def _constraints_added(t: Table) -> None:
    # Those pg_dump writes inside CREATE TABLE first (tied to the table's entry), then those
    # it writes apart (their entries depend on the table's).
    pairs = _constraint_pairs(t)
    pairs.sort(key=lambda p: p[1] is not None and _entry(t, "new", p[1]) is not None)
    for o, n in pairs:
        if n is None or (o is not None and o.definition == n.definition):
            continue
        entry = _entry(t, "new", n) or t.new_entry
        same_but = _same_but(o, n) if o is not None else None
        if o is not None and same_but == "validate":
            t.add(f"VALIDATE CONSTRAINT {quote_ident(n.name)}", "validate constraint", phase="last")
            continue
        if o is not None and same_but == "deferral":
            deferral = "NOT DEFERRABLE"
            if n.deferrable:
                deferral = "DEFERRABLE INITIALLY " + ("DEFERRED" if n.deferred else "IMMEDIATE")
            t.add(
                f"ALTER CONSTRAINT {quote_ident(n.name)} {deferral}",
                "alter constraint",
                phase="last",
            )
            continue
        not_valid = n.definition.endswith(_NOT_VALID)
        what = {
            "f": "add foreign key not valid" if not_valid else "add foreign key",
            "p": "add index constraint",
            "u": "add index constraint",
            "x": "add index constraint",
        }.get(n.type, "add constraint not valid" if not_valid else "add constraint")
        # A constraint added, or changed (maybe tightened): rows a client writes today can
        # be refused, as the drift report says (impact.py: breaking).
        t.add(
            f"ADD CONSTRAINT {quote_ident(n.name)} {n.definition}",
            what,
            old=[],
            new=[entry],
            phase="last",
            extra=frozenset({Hazard.BREAKS_CLIENTS}),
        )


def _options(t: Table, old: tuple[str, ...], new: tuple[str, ...], prefix: str = "") -> None:
    before, after = option_pairs(old), option_pairs(new)
    reset = [prefix + k for k in before if k not in after]
    if reset:
        t.add(f"RESET ({', '.join(reset)})", "options")
    changed = [f"{prefix}{k}={quote_literal(v)}" for k, v in after.items() if before.get(k) != v]
    if changed:
        t.add(f"SET ({', '.join(changed)})", "options")


def _properties(t: Table) -> None:
    old, new = t.old, t.new
    if old.persistence != new.persistence:
        # Unlogged: emptied after a crash and absent on replicas (impact.py: breaking).
        unlogged = new.persistence == "u"
        breaks = frozenset({Hazard.BREAKS_CLIENTS}) if unlogged else frozenset()
        t.add("SET UNLOGGED" if unlogged else "SET LOGGED", "rewrite", extra=breaks)
    _options(t, old.options, new.options)
    _options(t, old.toast_options, new.toast_options, "toast.")
    if old.tablespace != new.tablespace:
        t.add(f"SET TABLESPACE {quote_ident(new.tablespace or 'pg_default')}", "rewrite")
    if old.access_method != new.access_method and new.access_method:
        t.add(f"SET ACCESS METHOD {quote_ident(new.access_method)}", "rewrite", removes=True)
    if old.rls != new.rls:
        t.add(("ENABLE" if new.rls else "DISABLE") + " ROW LEVEL SECURITY", "row security")
    if old.force_rls != new.force_rls:
        t.add(("FORCE" if new.force_rls else "NO FORCE") + " ROW LEVEL SECURITY", "row security")
    if old.of_type != new.of_type:
        if old.of_type:
            t.add("NOT OF", "other", removes=True)
        if new.of_type:
            t.add(f"OF {new.of_type}", "other")
    if not old.is_partition and not new.is_partition and old.parents != new.parents:
        for parent in old.parents:
            t.add(f"NO INHERIT {parent}", "inherit", removes=True)
        for parent in new.parents:
            t.add(f"INHERIT {parent}", "inherit")
    clause = options_clause(option_pairs(old.server_options), option_pairs(new.server_options))
    if clause:
        t.add(clause, "options")


def _late(t: Table) -> None:
    """Replica identity and CLUSTER ON name an index: after every index is there."""
    old, new = t.old, t.new
    if (old.replica_identity, old.replica_index) != (new.replica_identity, new.replica_index):
        if new.replica_identity == "i" and new.replica_index:
            clause = f"REPLICA IDENTITY USING INDEX {quote_ident(new.replica_index)}"
        else:
            clause = f"REPLICA IDENTITY {_REPLICA[new.replica_identity]}"
        index = _index_entries(t, new.replica_index)
        t.add(clause, "replica identity", new=[], needs=index, phase="last")
    if old.cluster_index != new.cluster_index:
        if new.cluster_index:
            index = _index_entries(t, new.cluster_index)
            clause = f"CLUSTER ON {quote_ident(new.cluster_index)}"
            t.add(clause, "cluster on", new=[], needs=index, phase="last")
        else:
            t.add("SET WITHOUT CLUSTER", "cluster on", phase="last")


def _index_entries(t: Table, index: str | None) -> list[Entry | None]:
    """TO's entry that builds the index `index` of this table (its own, or a constraint's)."""
    if not index:
        return []
    schema = t.name.rsplit(".", 1)[0] if "." in t.name else ""
    key = f"index {schema}.{quote_ident(index)}"
    if key in t.ctx.new.rows:
        return [t.ctx.main_entry(t.ctx.new, key)]
    constraint = t.new.constraint(index)
    return [_entry(t, "new", constraint)] if constraint else []


def _detach(t: Table) -> None:
    """A partition leaving its parent (or moving to another bound) goes first."""
    old, new = t.old, t.new
    moved = (old.parents, old.bound) != (new.parents, new.bound)
    if old.is_partition and (not new.is_partition or moved):
        entry = _attach_entry(t.ctx.old, t.key)
        t.add(
            f"DETACH PARTITION {t.name}",
            "detach partition",
            old=[entry or t.old_entry],
            new=[],
            phase="first",
        )
        t.first[-1] = _on_parent(t.first[-1], t.word, old.parents[0], t.name)


def _attach(t: Table) -> None:
    old, new = t.old, t.new
    moved = (old.parents, old.bound) != (new.parents, new.bound)
    if new.is_partition and (not old.is_partition or moved):
        entry = _attach_entry(t.ctx.new, t.key)
        sql = f"ALTER TABLE {new.parents[0]} ATTACH PARTITION {t.name} {new.bound}"
        risk = hazards.alter_table("attach partition")
        t.last.append(
            t.ctx.statement(t.key, sql, Change.ALTER, risk, old=[], new=[entry or t.new_entry])
        )


def _attach_entry(side: Side, key: str) -> Entry | None:
    return next((e for e in side.entries_of.get(key, ()) if e.desc == "TABLE ATTACH"), None)


def _on_parent(s: Statement, word: str, parent: str, name: str) -> Statement:
    return replace(s, sql=f"{word} {parent} DETACH PARTITION {name}")
