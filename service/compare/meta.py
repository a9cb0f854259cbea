"""Pure: what every definition ends with (owner, privileges, comments) and what a change to
them means; the body above them is each kind's own business (impact_*.py).

service/production/catalog.py appends to each body, in this order and each optional: the
owner line (`ALTER <KIND> <name> OWNER TO role`), GRANT/REVOKE lines relative to the default
privileges, and COMMENT lines. They are read from the end, so nothing in a body can pose as
one: a body line would have to come after them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.compare.inventory import DbObject
from service.compare.levels import Impact, Part
from service.compare.sqltext import find_top, logical_lines, mask

# Kinds whose owner holds privileges clients use: a new owner takes them from the old one.
OWNER_MATTERS = frozenset(
    {
        "table",
        "foreign table",
        "view",
        "materialized view",
        "sequence",
        "function",
        "procedure",
        "aggregate",
        "schema",
        "type",
        "domain",
    }
)
# Kinds whose body is made of GRANT/REVOKE lines itself, or that have no tail at all.
_NO_TAIL = frozenset({"default privileges", "security label"})


@dataclass(frozen=True)
class Shape:
    """A definition cut into its body lines and its tail."""

    body: tuple[str, ...]
    owner: str | None
    acl: tuple[str, ...]
    comments: tuple[str, ...]


def shape(obj: DbObject) -> Shape:
    lines = logical_lines(obj.definition)
    if obj.kind in _NO_TAIL:
        return Shape(tuple(lines), None, (), ())
    end = len(lines)
    while end > 1 and lines[end - 1].startswith("COMMENT ON "):
        end -= 1
    comments = tuple(lines[end:])
    acl_end = end
    while end > 1 and lines[end - 1].startswith(("GRANT ", "REVOKE ")):
        end -= 1
    acl = tuple(lines[end:acl_end])
    owner = None
    prefix = f"ALTER {obj.kind.upper()} {obj.name} OWNER TO "
    if end > 1 and lines[end - 1].startswith(prefix):
        owner = lines[end - 1][len(prefix) :]
        end -= 1
    return Shape(tuple(lines[:end]), owner, acl, comments)


def tail_parts(kind: str, name: str, old: Shape, new: Shape) -> list[Part]:
    parts: list[Part] = []
    if old.owner != new.owner and old.owner is not None and new.owner is not None:
        if kind in OWNER_MATTERS:
            # the old owner loses what owning gave it (unless a superuser, which we cannot
            # tell from here): to a client connecting as it, that is a privilege revoked
            loses = f"{old.owner} loses owner rights"
            parts.append(Part(Impact.BREAKING, f"owner {old.owner} -> {new.owner}: {loses}"))
        else:
            parts.append(Part(Impact.COSMETIC, f"owner {old.owner} -> {new.owner}"))
    parts += privilege_parts(old.acl, new.acl)
    parts += comment_parts(kind, name, old.comments, new.comments)
    return parts


# -- privileges ---------------------------------------------------------------------------------

_GRANT_OPTION = " WITH GRANT OPTION"


@dataclass(frozen=True)
class _Grant:
    verb: str  # GRANT: given beyond the defaults; REVOKE: taken from the defaults
    privilege: str
    column: str  # ` (col)` for a column privilege, else ''
    grantee: str
    grant_option: bool
    grantor: str
    target: str  # `TABLE fam.t`; `TABLES` in default privileges


def parse_privileges(line: str) -> list[_Grant]:
    """`GRANT SELECT, UPDATE (a) ON TABLE t TO r WITH GRANT OPTION GRANTED BY o` -> grants.
    Cut where the code is, so a name holding ` ON ` or ` TO ` cannot move a cut."""
    verb, _, rest = line.partition(" ")
    masked = mask(rest)
    on = find_top(rest, " ON ", masked=masked)
    if on < 0:
        return []
    privileges = rest[:on]
    column = ""
    if privileges.endswith(")") and (open_at := find_top(privileges, " (")) > 0:
        privileges, column = privileges[:open_at], privileges[open_at:]
    word = " TO " if verb == "GRANT" else " FROM "
    to = masked.rfind(word)
    if to < 0:
        return []
    target = rest[on + len(" ON ") : to]
    who = rest[to + len(word) :]
    grantor = ""
    by = mask(who).find(" GRANTED BY ")
    if by >= 0:
        who, grantor = who[:by], who[by + len(" GRANTED BY ") :]
    option = who.endswith(_GRANT_OPTION)
    who = who.removesuffix(_GRANT_OPTION)
    return [
        _Grant(verb, p, column, who, option, grantor, target) for p in privileges.split(", ") if p
    ]


def privilege_parts(old: tuple[str, ...], new: tuple[str, ...]) -> list[Part]:
    if old == new:
        return []
    before = {
        (g.verb, g.privilege, g.column, g.grantee): g for ln in old for g in parse_privileges(ln)
    }
    after = {
        (g.verb, g.privilege, g.column, g.grantee): g for ln in new for g in parse_privileges(ln)
    }
    parts: list[Part] = []
    for key in sorted(before.keys() | after.keys()):
        verb, privilege, column, grantee = key
        what = f"{privilege}{column}"
        was, now = before.get(key), after.get(key)
        if was is None or now is None:
            taken = (verb == "GRANT") == (now is None)
            if taken:
                parts.append(Part(Impact.BREAKING, f"{what} revoked from {grantee}"))
            else:
                parts.append(Part(Impact.COMPATIBLE, f"{what} granted to {grantee}"))
            continue
        if was.grant_option != now.grant_option:
            if was.grant_option:
                parts.append(
                    Part(Impact.BREAKING, f"grant option on {what} revoked from {grantee}")
                )
            else:
                parts.append(
                    Part(Impact.COMPATIBLE, f"grant option on {what} granted to {grantee}")
                )
        if was.grantor != now.grantor:
            parts.append(Part(Impact.COSMETIC, f"{what} for {grantee} granted by another role"))
    if not parts:  # lines we could not read: say so rather than call it nothing
        parts.append(Part(Impact.BREAKING, "privileges changed"))
    return parts


# -- comments -----------------------------------------------------------------------------------

_KEYWORDS = re.compile(r"^(?:[A-Z]+ )+")


def _comment_target(line: str) -> str:
    rest = line[len("COMMENT ON ") :]
    i = find_top(rest, " IS ")
    return rest[:i] if i >= 0 else rest


def comment_parts(kind: str, name: str, old: tuple[str, ...], new: tuple[str, ...]) -> list[Part]:
    if old == new:
        return []
    before = {_comment_target(ln): ln for ln in old}
    after = {_comment_target(ln): ln for ln in new}
    own = f"{kind.upper()} {name}"
    parts = []
    for target in sorted(before.keys() | after.keys()):
        if before.get(target) == after.get(target):
            continue
        change = (
            "added" if target not in before else "removed" if target not in after else "changed"
        )
        if target == own:
            parts.append(Part(Impact.COSMETIC, f"comment {change}"))
        else:  # `COLUMN fam.t.a` -> `column fam.t.a`: the keywords read as words
            words = _KEYWORDS.match(target)
            shown = target if words is None else words.group().lower() + target[words.end() :]
            parts.append(Part(Impact.COSMETIC, f"comment on {shown} {change}"))
    return parts
