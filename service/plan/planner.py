"""The plan from FROM's and TO's data: pure. Which objects are created, dropped, changed in
place or recreated (with their dependants), and the statements for each, in an order that
runs. A change that cannot be planned safely is a refusal: then there is no plan at all."""

from __future__ import annotations

from dataclasses import dataclass

from service.logs import get_logger
from service.plan import changes, dependants, members, objects
from service.plan.context import Ctx, Environment, split_key
from service.plan.model import Plan, Refusal, Statement
from service.plan.order import OrderError, order
from service.plan.sides import Side, SideData
from service.plan.sqltext import fact_lines


@dataclass(frozen=True)
class Outcome:
    """A plan, or the table facts the planner still needs (run.py reads them, asks again)."""

    plan: Plan
    needs: frozenset[str] = frozenset()  # inventory keys of tables whose facts are missing


def changed_keys(old: SideData, new: SideData) -> list[str]:
    objects_old, objects_new = old.inventory.objects, new.inventory.objects
    return sorted(
        k
        for k in objects_old.keys() & objects_new.keys()
        if objects_old[k].definition != objects_new[k].definition
    )


def make_plan(old: SideData, new: SideData, env: Environment) -> Outcome:
    ctx = Ctx(Side(old), Side(new), env)
    for key in changed_keys(old, new):
        changes.change(ctx, key)
    if not ctx.needs_tables:
        dependants.expand(ctx)
    if ctx.needs_tables:
        return Outcome(Plan(), frozenset(ctx.needs_tables))
    moved, groups = members.moves(ctx)
    for key in sorted(ctx.removed - moved):
        if not dependants.implied(ctx, key):
            groups.append(objects.drop(ctx, key))
    for key in sorted(ctx.recreate):
        if key in ctx.old.rows and not dependants.implied(ctx, key):
            groups.append(objects.drop(ctx, key, recreated=True))
        if key in ctx.new.rows:
            groups.append(objects.create(ctx, key, recreated=key in ctx.old.rows))
    for key in sorted(ctx.added - moved):
        groups.append(objects.create(ctx, key))
    for key in sorted(ctx.in_place):
        groups.append(_without_gone(ctx, ctx.in_place[key]))
    groups += [[s] for s in ctx.extra]
    if ctx.refusals:
        return Outcome(Plan(refusals=tuple(ctx.refusals)))
    try:
        ordered = order(groups, old.archive.entries, new.archive.entries, _drops_before(ctx))
    except OrderError as exc:
        get_logger().debug("plan.circle", statements=exc.statements)
        reason = "its statements depend on each other in a circle: no order runs them"
        refusals = tuple(Refusal(*split_key(o), reason) for o in exc.objects)
        return Outcome(Plan(refusals=refusals))
    return Outcome(Plan(tuple(ordered), (), frozenset(_reordered(ctx))))


def _drops_before(ctx: Ctx) -> dict[str, set[str]]:
    """Objects dropped (or recreated) -> those of them they depend on in FROM (pg_depend,
    auto dependencies aside: those go by themselves)."""
    gone = ctx.removed | ctx.recreate.keys()
    found: dict[str, set[str]] = {}
    for d in ctx.old.dependencies:
        if not d.auto and d.key in gone and d.ref in gone:
            found.setdefault(d.key, set()).add(d.ref)
    return found


def _without_gone(ctx: Ctx, statements: list[Statement]) -> list[Statement]:
    """Comments and grants of parts the plan drops (a column, a constraint) go with them."""
    out = []
    for s in statements:
        target = s.sql[len("COMMENT ON ") : -len(" IS NULL")]
        if (
            s.sql.startswith("COMMENT ON ")
            and s.sql.endswith(" IS NULL")
            and (target in ctx.gone_targets)
        ):
            continue
        if s.sql.startswith("REVOKE ") and " (" in s.sql.split(" ON ", 1)[0]:
            target = s.sql.split(" ON ", 1)[1].split(" FROM ", 1)[0].removeprefix("TABLE ")
            column = s.sql.split(" (", 1)[1].split(")", 1)[0]
            if f"COLUMN {target}.{column}" in ctx.gone_targets:
                continue
        out.append(s)
    return out


def _reordered(ctx: Ctx) -> set[str]:
    """Tables whose columns end up in another order than TO's: those the plan adds columns
    to, and the partitions and children that get the added columns from them."""
    tables = set(ctx.column_order)
    names = {split_key(k)[1]: k for k in tables}
    for key, row in ctx.new.rows.items():
        if row.kind != "table" or key in tables:
            continue
        for line in fact_lines(row.body):
            for name in names:
                if line.startswith(f"PARTITION OF {name} ") or (
                    line.startswith("INHERITS (")
                    and name in line[len("INHERITS (") : -1].split(", ")
                ):
                    tables.add(key)
    return tables
