"""Functions and procedures (CREATE OR REPLACE where the signature allows), and what hangs
off a table by name: triggers, rules, policies; event triggers."""

from __future__ import annotations

from service.plan import hazards
from service.plan.context import Ctx, Recreate, split_key
from service.plan.model import Change, Hazard, Statement
from service.plan.sqltext import fact_lines, on_table

_ENABLE = {
    "DISABLE": "DISABLE",
    "ENABLE REPLICA": "ENABLE REPLICA",
    "ENABLE ALWAYS": "ENABLE ALWAYS",
}
_TABLE_LOCK = hazards.risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=hazards.ACCESS_EXCLUSIVE)


def _signature(body: str) -> tuple[str, str]:
    """pg_get_functiondef's first line (name, argument names, types, defaults) and its
    RETURNS line (absent for a procedure)."""
    lines = body.split("\n", 2)
    returns = lines[1] if len(lines) > 1 and lines[1].startswith(" RETURNS ") else ""
    return lines[0], returns


def routine(ctx: Ctx, key: str) -> list[Statement]:
    """CREATE OR REPLACE keeps the function (its grants, what depends on it) and sets every
    attribute as TO's definition says: possible when the argument list, names and defaults
    and the result stay; else the function is dropped and created again."""
    if _signature(ctx.old.rows[key].body) != _signature(ctx.new.rows[key].body):
        raise Recreate("its arguments or result change (CREATE OR REPLACE cannot)")
    entry = ctx.main_entry(ctx.new, key)
    word = "CREATE " + split_key(key)[0].upper() + " "
    if entry is None or not entry.sql.startswith(word):
        raise Recreate
    sql = word.replace("CREATE ", "CREATE OR REPLACE ", 1) + entry.sql[len(word) :]
    return [ctx.statement(key, sql, Change.ALTER, new=[entry], replaces=True)]


def _enabled(body: str) -> tuple[str, str]:
    """(definition, enable state) of a trigger's or rule's definition."""
    lines = fact_lines(body)
    state = lines[-1] if len(lines) > 1 and lines[-1] in _ENABLE else "ENABLE"
    return "\n".join(lines[:-1] if state != "ENABLE" else lines), state


def _enable(ctx: Ctx, key: str, what: str) -> list[Statement]:
    old_def, _ = _enabled(ctx.old.rows[key].body)
    new_def, state = _enabled(ctx.new.rows[key].body)
    if old_def != new_def:
        raise Recreate("its definition changes")
    name, table = on_table(split_key(key)[1])
    sql = f"ALTER TABLE {table} {state} {what} {name}"
    return [ctx.statement(key, sql, Change.ALTER, hazards.risk(lock=hazards.SHARE_ROW_EXCLUSIVE))]


def trigger(ctx: Ctx, key: str) -> list[Statement]:
    return _enable(ctx, key, "TRIGGER")


def rule(ctx: Ctx, key: str) -> list[Statement]:
    return _enable(ctx, key, "RULE")


def _policy_facts(body: str) -> dict[str, str]:
    """{"AS": ..., "FOR": ..., "TO": ..., "USING": ..., "WITH CHECK": ...} of a policy."""
    facts: dict[str, str] = {}
    for line in fact_lines(body)[1:]:
        fact = line.strip()
        for word in ("WITH CHECK", "AS", "FOR", "TO", "USING"):
            if fact.startswith(word + " "):
                facts[word] = fact[len(word) + 1 :]
                break
    return facts


def policy(ctx: Ctx, key: str) -> list[Statement]:
    """ALTER POLICY changes its roles and expressions; its command and kind, or an expression
    taken away, need it created again."""
    old, new = _policy_facts(ctx.old.rows[key].body), _policy_facts(ctx.new.rows[key].body)
    if (old.get("AS"), old.get("FOR")) != (new.get("AS"), new.get("FOR")):
        raise Recreate("its command or kind changes")
    if any(word in old and word not in new for word in ("USING", "WITH CHECK")):
        raise Recreate("an expression is taken away")
    clauses = [
        f"{word} {new[word]}"
        for word in ("TO", "USING", "WITH CHECK")
        if old.get(word) != new.get(word)
    ]
    sql = f"ALTER POLICY {split_key(key)[1]} {' '.join(clauses)}"
    return [ctx.statement(key, sql, Change.ALTER, _TABLE_LOCK, replaces=True)]


def event_trigger(ctx: Ctx, key: str) -> list[Statement]:
    old, new = fact_lines(ctx.old.rows[key].body), fact_lines(ctx.new.rows[key].body)
    state = new[-1].strip() if new[-1].strip() in _ENABLE else "ENABLE"
    old_def = old[:-1] if old[-1].strip() in _ENABLE else old
    new_def = new[:-1] if state != "ENABLE" else new
    if old_def != new_def:
        raise Recreate("its definition changes")
    return [ctx.statement(key, f"ALTER EVENT TRIGGER {split_key(key)[1]} {state}", Change.ALTER)]
