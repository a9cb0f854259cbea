"""An object in both FROM and TO whose definition differs: the statements that change it in
place, or Recreate where PostgreSQL has none (drop it and create it as TO has it).

The owner, privileges and comments every definition may end with are changed here for all
kinds; each family's builder looks only at the body (the definition's first part)."""

from __future__ import annotations

from collections.abc import Callable

from service.compare.meta import OWNER_MATTERS
from service.plan import acl, hazards, relations, routines, shared, tables, types
from service.plan.context import Ctx, Recreate, Refuse, split_key
from service.plan.model import Change, Hazard, Statement

Builder = Callable[[Ctx, str], list[Statement]]


def _recreate(ctx: Ctx, key: str) -> list[Statement]:
    raise Recreate


BODY: dict[str, Builder] = {
    "table": tables.alter,
    "foreign table": tables.alter,
    "view": relations.view,
    "materialized view": relations.materialized_view,
    "sequence": relations.sequence,
    "index": relations.index,
    "function": routines.routine,
    "procedure": routines.routine,
    "trigger": routines.trigger,
    "rule": routines.rule,
    "policy": routines.policy,
    "event trigger": routines.event_trigger,
    "statistics": relations.statistics,
    "type": types.alter_type,
    "domain": types.domain,
    "extension": shared.extension,
    "text search configuration": shared.ts_configuration,
    "operator": shared.operator,
    "operator family": shared.operator_family,
    "foreign data wrapper": shared.foreign_data_wrapper,
    "server": shared.server,
    "user mapping": shared.user_mapping,
    "publication": shared.publication,
    "default privileges": shared.default_privileges,
    "security label": shared.security_label,
}


def change(ctx: Ctx, key: str) -> None:
    """Decide how `key` changes: in-place statements, recreate, or a refusal."""
    old, new = ctx.old.rows[key], ctx.new.rows[key]
    kind, name = split_key(key)
    statements: list[Statement] = []
    try:
        if old.body != new.body:
            statements += BODY.get(kind, _recreate)(ctx, key)
    except Recreate as why:
        ctx.recreate[key] = why.why or "it cannot be changed in place"
        return
    except Refuse as why:
        ctx.refuse(key, str(why))
        return
    options = ctx.env.catalog
    # Owners, privileges and comments make no state other statements depend on: they run
    # once the object is as TO has it (its own statements before them in this group).
    after = [ctx.main_entry(ctx.new, key)]
    if options.owners and old.owner != new.owner and new.owner:
        sql = f"ALTER {kind.upper()} {name} OWNER TO {new.owner}"
        risk = hazards.alter_table("owner") if kind == "table" else (frozenset(), hazards.NONE)
        if old.owner and kind in OWNER_MATTERS:
            # The old owner loses what owning gave it: to a client connecting as that role, a
            # privilege revoked (compare/meta.py judges the drift breaking the same way).
            risk = hazards.merge(risk, hazards.risk(Hazard.BREAKS_CLIENTS))
        statements.append(ctx.statement(key, sql, Change.ALTER, risk, old=[], new=[], needs=after))
    if options.privileges and old.acl != new.acl:
        before = acl.parse(old.acl)
        if old.owner and new.owner:
            before = acl.with_owner(before, old.owner, new.owner)
        for sql in acl.changes(before, acl.parse(new.acl)):
            # A privilege taken away breaks whoever used it (impact.py: breaking).
            revokes = sql.startswith("REVOKE ") or "\nREVOKE " in sql
            risk = hazards.risk(Hazard.BREAKS_CLIENTS) if revokes else hazards.risk()
            statements.append(
                ctx.statement(key, sql, Change.ALTER, risk, old=[], new=[], needs=after)
            )
    if options.comments and old.comments != new.comments:
        for sql in acl.comment_changes(old.comments, new.comments):
            statements.append(ctx.statement(key, sql, Change.ALTER, old=[], new=[], needs=after))
    ctx.in_place[key] = statements
