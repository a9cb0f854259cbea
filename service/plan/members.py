"""Objects that join or leave an extension: the same object, a member on one side and an
object of its own on the other. ALTER EXTENSION ... ADD / DROP moves it; dropping and
creating it would break the extension (or fail: the member is still there)."""

from __future__ import annotations

from service.plan.context import Ctx, split_key
from service.plan.model import Change, Statement

# pg_identify_object's word for a kind, where it is not the inventory's.
_KINDS = {"foreign-data wrapper": "foreign data wrapper"}


def _normal(kind: str, name: str) -> tuple[str, str]:
    """What an inventory key and a member's identity have in common: pg_identify_object
    lists argument types without the space after each comma, built-in ones qualified."""
    return _KINDS.get(kind, kind), name.replace(", ", ",").replace("pg_catalog.", "")


def _members(
    members: tuple[tuple[str, str, str], ...],
) -> dict[tuple[str, str], tuple[str, str, str]]:
    return {_normal(kind, identity): (ext, kind, identity) for ext, kind, identity in members}


def moves(ctx: Ctx) -> tuple[set[str], list[list[Statement]]]:
    """(keys moved in or out of an extension, the statements that move them). An added object
    that FROM has as a member leaves its extension; a removed one TO has as a member joins."""
    old_members, new_members = _members(ctx.old.data.members), _members(ctx.new.data.members)
    extensions = {
        k.split(" ", 1)[1]
        for k in ctx.old.rows.keys() & ctx.new.rows.keys()
        if k.startswith("extension ")
    }
    moved: set[str] = set()
    groups: list[list[Statement]] = []
    for key in sorted(ctx.added | ctx.removed):
        kind, name = split_key(key)
        table = old_members if key in ctx.added else new_members
        found = table.get(_normal(kind, name))
        if found is None or found[0] not in extensions:
            continue
        extension, member_kind, identity = found
        verb = "DROP" if key in ctx.added else "ADD"
        sql = f"ALTER EXTENSION {extension} {verb} {member_kind.upper()} {identity}"
        if key in ctx.added:
            statement = ctx.statement(key, sql, Change.ALTER, old=[])
        else:
            statement = ctx.statement(key, sql, Change.ALTER, new=[])
        moved.add(key)
        groups.append([statement])
    return moved, groups
