"""Owners, privileges and comments: the parts every object's definition may end with.

Privileges are written in the inventory as GRANT/REVOKE lines relative to the object's
default ACL (catalog_queries._acl), one line per grantee, grantor and grant option. Going
from FROM's lines to TO's: every line of FROM's that TO lacks is undone (a GRANT revoked, a
REVOKE of a default privilege granted back), then every line of TO's that FROM lacks is
applied. Both sides' lines are relative to the same default ACL once the owner is the same:
so an owner change runs first, and FROM's lines are read with the new owner in the old one's
place (ALTER ... OWNER TO moves the old owner's grants to the new one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.plan.sqltext import comment_targets

_TAIL = re.compile(
    r" (TO|FROM) (PUBLIC|\"(?:[^\"]|\"\")*\"|[^\s\"]+)"
    r"( WITH GRANT OPTION)?"
    r"(?: GRANTED BY (\"(?:[^\"]|\"\")*\"|[^\s\"]+))?\Z"
)
_HEAD = re.compile(
    r"(GRANT|REVOKE) ([A-Z]+(?: [A-Z]+)?(?:, [A-Z]+(?: [A-Z]+)?)*)"
    r"(?: \((\"(?:[^\"]|\"\")*\"|[^\s\")]+)\))? ON "
)


@dataclass(frozen=True, order=True)
class Grant:
    """One privilege of one line: `GRANT SELECT ON TABLE t TO r WITH GRANT OPTION`."""

    verb: str  # GRANT: beyond the default ACL; REVOKE: a default privilege taken away
    target: str  # `TABLE fam.trails`, `FUNCTION f(integer)`, `TABLES` (default privileges)
    grantee: str  # as written: PUBLIC, a role name quoted as needed
    grantor: str  # '' for the owner
    grantable: bool
    column: str  # '' for the whole object
    privilege: str


def parse_line(line: str) -> list[Grant]:
    """The privileges of one ACL line, one Grant each."""
    head = _HEAD.match(line)
    tail = _TAIL.search(line)
    if head is None or tail is None or tail.start() < head.end():
        raise ValueError(f"not a privilege line: {line[:80]!r}")
    target = line[head.end() : tail.start()]
    return [
        Grant(
            head.group(1),
            target,
            tail.group(2),
            tail.group(4) or "",
            bool(tail.group(3)),
            head.group(3) or "",
            privilege,
        )
        for privilege in head.group(2).split(", ")
    ]


def parse(text: str | None) -> set[Grant]:
    return {g for line in (text or "").splitlines() if line for g in parse_line(line)}


def with_owner(grants: set[Grant], old: str, new: str) -> set[Grant]:
    """The grants after ALTER ... OWNER TO new: the old owner's are the new owner's, and what
    was granted to the new owner merges into the privileges an owner has anyway."""
    if old == new:
        return grants
    moved = {
        Grant(
            g.verb,
            g.target,
            new if g.grantee == old else g.grantee,
            new if g.grantor == old else g.grantor,
            g.grantable,
            g.column,
            g.privilege,
        )
        for g in grants
    }
    return {g for g in moved if not (g.verb == "GRANT" and g.grantee == new and not g.column)}


def changes(old: set[Grant], new: set[Grant], prefix: str = "") -> list[str]:
    """Statements taking `old` to `new`: undo what only `old` has, then apply what only
    `new` has. `prefix` goes before each (ALTER DEFAULT PRIVILEGES FOR ROLE ... )."""
    undo = [_flip(g) for g in sorted(old - new)]
    apply = sorted(new - old)
    return [prefix + s for s in _statements(undo)] + [prefix + s for s in _statements(apply)]


def _flip(g: Grant) -> Grant:
    return Grant(
        "REVOKE" if g.verb == "GRANT" else "GRANT",
        g.target,
        g.grantee,
        g.grantor,
        g.grantable,
        g.column,
        g.privilege,
    )


def _statements(grants: list[Grant]) -> list[str]:
    """One statement per (verb, target, grantee, grantor, grant option); REVOKEs first."""
    groups: dict[tuple[str, str, str, str, bool], list[Grant]] = {}
    for g in sorted(grants, key=lambda g: (g.verb != "REVOKE", g)):
        groups.setdefault((g.verb, g.target, g.grantee, g.grantor, g.grantable), []).append(g)
    out = []
    for (verb, target, grantee, grantor, grantable), items in groups.items():
        privileges = ", ".join(
            f"{g.privilege} ({g.column})" if g.column else g.privilege for g in items
        )
        if verb == "GRANT":
            option = " WITH GRANT OPTION" if grantable else ""
            text = f"GRANT {privileges} ON {target} TO {grantee}{option}"
        else:
            # Revoking a privilege also takes its grant option, and what was granted with it.
            text = f"REVOKE {privileges} ON {target} FROM {grantee}"
            text += " CASCADE" if grantable else ""
        if grantor:
            # As pg_dump does: GRANTED BY needs 14; the grant is made as its grantor.
            text = f"SET SESSION AUTHORIZATION {_literal_role(grantor)};\n{text};\n" + (
                "RESET SESSION AUTHORIZATION"
            )
        out.append(text)
    return out


def _literal_role(role: str) -> str:
    name = role[1:-1].replace('""', '"') if role.startswith('"') else role
    return "'" + name.replace("'", "''") + "'"


def default_prefix(head: str) -> str:
    """`ALTER DEFAULT PRIVILEGES FOR ROLE r IN SCHEMA s ON TABLES` (a default-privileges
    definition's first line, its name) -> the statement's start, without `ON TABLES` (each
    GRANT/REVOKE line says it)."""
    return head.rsplit(" ON ", 1)[0] + " "


def comment_changes(old: str | None, new: str | None) -> list[str]:
    """COMMENT statements taking one object's comments to another's (IS NULL for gone ones)."""
    before, after = comment_targets(old), comment_targets(new)
    out = [f"COMMENT ON {target} IS NULL" for target in before if target not in after]
    out += [s for target, s in after.items() if before.get(target) != s]
    return out
