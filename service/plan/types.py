"""Types and domains. An enum gains labels in place (ALTER TYPE ... ADD VALUE, at their
place); a composite type its attributes; a domain its default, NOT NULL and constraints.
What PostgreSQL cannot change in place is created again -- unless a table column holds
values of the type, whose data a recreation would delete: then the change is refused."""

from __future__ import annotations

from service.plan import hazards
from service.plan.context import Ctx, Recreate, Refuse, split_key
from service.plan.model import Change, Hazard, Part, Statement
from service.plan.sides import PG_CLASS
from service.plan.sqltext import fact_lines, ident_at


def _labels(body: str) -> list[str]:
    """An enum's labels as written (quoted literals), in order."""
    return [line.strip() for line in fact_lines(body)[1:-1]]


def _used_by_columns(ctx: Ctx, key: str) -> list[str]:
    """The table columns of FROM whose type is this one (or one built on it)."""
    found = []
    for d in ctx.old.dependants.get(key, ()):
        kind = split_key(d.key)[0]
        if kind in ("table", "materialized view") and d.part[0] == PG_CLASS and d.subid:
            found.append(d.key)
    return sorted(set(found))


def _recreate_unless_used(ctx: Ctx, key: str, why: str) -> None:
    tables = _used_by_columns(ctx, key)
    if tables:
        raise Refuse(
            f"{why}, and column data of {', '.join(split_key(t)[1] for t in tables[:3])} "
            "uses it: recreating the type would delete that data"
        )
    raise Recreate(why)


def alter_type(ctx: Ctx, key: str) -> list[Statement]:
    old, new = ctx.old.rows[key].body, ctx.new.rows[key].body
    head_old, head_new = old.split("\n", 1)[0], new.split("\n", 1)[0]
    if head_old != head_new:
        _recreate_unless_used(ctx, key, "its kind changes")
    if head_new.endswith(" AS ENUM ("):
        return _enum(ctx, key)
    if head_new.endswith(" AS ("):
        return _composite(ctx, key)
    _recreate_unless_used(ctx, key, "its definition changes")
    return []


def _enum(ctx: Ctx, key: str) -> list[Statement]:
    name = split_key(key)[1]
    old, new = _labels(ctx.old.rows[key].body), _labels(ctx.new.rows[key].body)
    if [label for label in new if label in old] != old:
        _recreate_unless_used(ctx, key, "enum labels are removed or reordered")
    out = []
    for i, label in enumerate(new):
        if label in old:
            continue
        where = f" AFTER {new[i - 1]}" if i > 0 else f" BEFORE {new[1]}" if len(new) > 1 else ""
        sql = f"ALTER TYPE {name} ADD VALUE {label}{where}"
        # Outside the transaction: a label added in a transaction cannot be used before it
        # commits, and a later statement of the plan may use it.
        out.append(ctx.statement(key, sql, Change.ALTER, old=[], part=Part.BEFORE))
    return out


def _attributes(body: str) -> list[tuple[str, str]]:
    """A composite type's (quoted name, type and collation) pairs, in order."""
    out = []
    for line in fact_lines(body)[1:-1]:
        fact = line.strip()
        ident, end = ident_at(fact, 0)
        out.append((ident, fact[end + 1 :]))
    return out


def _composite(ctx: Ctx, key: str) -> list[Statement]:
    name = split_key(key)[1]
    old, new = _attributes(ctx.old.rows[key].body), _attributes(ctx.new.rows[key].body)
    old_names, new_names = [n for n, _ in old], [n for n, _ in new]
    kept = [n for n in old_names if n in new_names]
    if new_names[: len(kept)] != kept:
        # Attribute order is a composite value's meaning (row literals): no appending here.
        _recreate_unless_used(ctx, key, "its attributes change order")
    typed = _typed_tables(ctx, key)
    cascade = " CASCADE" if typed else ""
    risk = (
        hazards.risk(
            Hazard.REWRITES_TABLE, Hazard.ACCESS_EXCLUSIVE_LOCK, lock=hazards.ACCESS_EXCLUSIVE
        )
        if typed
        else hazards.risk()
    )
    actions = [f"DROP ATTRIBUTE {n}{cascade}" for n in old_names if n not in new_names]
    new_of = dict(new)
    for n, spec in old:
        if n in new_of and new_of[n] != spec:
            actions.append(f"ALTER ATTRIBUTE {n} TYPE {new_of[n]}{cascade}")
    out = [
        ctx.statement(key, f"ALTER TYPE {name} {a}", Change.ALTER, risk, replaces=True)
        for a in actions
    ]
    for n, spec in new:
        if n not in old_names:
            sql = f"ALTER TYPE {name} ADD ATTRIBUTE {n} {spec}{cascade}"
            out.append(ctx.statement(key, sql, Change.ALTER, risk, old=[]))
    return out


def _typed_tables(ctx: Ctx, key: str) -> bool:
    return any(
        split_key(d.key)[0] == "table" and not d.subid for d in ctx.old.dependants.get(key, ())
    )


def _domain_facts(body: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(head with collation, {DEFAULT/NOT NULL: fact}, {constraint name: definition})."""
    lines = [line.strip() for line in fact_lines(body)]
    head = lines[0]
    facts: dict[str, str] = {}
    constraints: dict[str, str] = {}
    for fact in lines[1:]:
        if fact.startswith("COLLATE "):
            head += " " + fact
        elif fact.startswith("DEFAULT "):
            facts["DEFAULT"] = fact[len("DEFAULT ") :]
        elif fact == "NOT NULL":
            facts["NOT NULL"] = fact
        elif fact.startswith("CONSTRAINT "):
            ident, end = ident_at(fact, len("CONSTRAINT "))
            constraints[ident] = fact[end + 1 :]
    return head, facts, constraints


def domain(ctx: Ctx, key: str) -> list[Statement]:
    name = split_key(key)[1]
    old_head, old, old_cons = _domain_facts(ctx.old.rows[key].body)
    new_head, new, new_cons = _domain_facts(ctx.new.rows[key].body)
    if old_head != new_head:
        _recreate_unless_used(ctx, key, "its base type or collation changes")
    out = []
    scan = hazards.risk(Hazard.VALIDATES_CONSTRAINT, lock=hazards.SHARE)
    for c, definition in old_cons.items():
        if c not in new_cons or (
            new_cons[c] != definition and new_cons[c] + " NOT VALID" != definition
        ):
            sql = f"ALTER DOMAIN {name} DROP CONSTRAINT {c}"
            out.append(ctx.statement(key, sql, Change.ALTER, replaces=True))
            if c not in new_cons:
                ctx.gone_targets.add(f"CONSTRAINT {c} ON DOMAIN {name}")
    if old.get("DEFAULT") != new.get("DEFAULT"):
        clause = f"SET DEFAULT {new['DEFAULT']}" if "DEFAULT" in new else "DROP DEFAULT"
        out.append(ctx.statement(key, f"ALTER DOMAIN {name} {clause}", Change.ALTER, replaces=True))
    if ("NOT NULL" in old) != ("NOT NULL" in new):
        clause = "SET NOT NULL" if "NOT NULL" in new else "DROP NOT NULL"
        # NOT NULL added to a domain: a client writing NULL through it now fails (breaking).
        risk = _breaking(scan) if "NOT NULL" in new else hazards.risk()
        out.append(ctx.statement(key, f"ALTER DOMAIN {name} {clause}", Change.ALTER, risk))
    for c, definition in new_cons.items():
        before = old_cons.get(c)
        if before == definition:
            continue
        if before is not None and before == definition + " NOT VALID":
            sql = f"ALTER DOMAIN {name} VALIDATE CONSTRAINT {c}"
            out.append(ctx.statement(key, sql, Change.ALTER, scan))
            continue
        # A domain constraint added or changed can refuse values clients write (breaking).
        risk = scan if not definition.endswith(" NOT VALID") else hazards.risk()
        risk = _breaking(risk)
        sql = f"ALTER DOMAIN {name} ADD CONSTRAINT {c} {definition}"
        out.append(ctx.statement(key, sql, Change.ALTER, risk))
    return out


def _breaking(risk: hazards.Risk) -> hazards.Risk:
    return risk[0] | {Hazard.BREAKS_CLIENTS}, risk[1]
