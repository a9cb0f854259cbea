"""Before verify installs anything: does the verify server have what the files need?

A verify that fails at the first missing role, then at the next, then at an extension, costs a
new user one round per problem. This reads the script once (production/dump_script.py) and
asks the server once, and reports every problem with its fix:
- the verify role may create databases;
- every role the files name exists there (owners, grantees, ALTER DEFAULT PRIVILEGES FOR ROLE);
- the verify role can SET ROLE to every role owning objects (ALTER ... OWNER TO needs it; a
  superuser always can), unless owners are left out (`verify --no-owners`);
- it is a member of every role of ALTER DEFAULT PRIVILEGES FOR ROLE;
- every extension of the files is available there (and, if it needs a superuser and is not
  trusted, the verify role is one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from service.compare.escape import visible
from service.production.dump_script import ScriptNeeds


@dataclass(frozen=True)
class Missing:
    """One thing the verify server lacks: what, and the statement or step that fixes it."""

    what: str
    fix: str

    def line(self) -> str:
        return f"{self.what}: {self.fix}"


async def check_server(
    admin: asyncpg.Connection, needs: ScriptNeeds, owners: bool, display_file: str
) -> list[Missing]:
    """Everything the verify server lacks for installing a script with these needs."""
    me = await admin.fetchrow(
        "SELECT current_user AS name, quote_ident(current_user) AS quoted, rolsuper, "
        "rolcreatedb FROM pg_catalog.pg_roles WHERE rolname = current_user"
    )
    assert me is not None
    user, quoted_user, superuser = me["name"], me["quoted"], me["rolsuper"]
    found: list[Missing] = []
    if not (superuser or me["rolcreatedb"]):
        found.append(
            Missing(f"{user} may not create databases", f"ALTER ROLE {quoted_user} CREATEDB;")
        )

    def at(line: int) -> str:
        return f"{display_file}:{line}"

    wanted = dict(needs.grantees)
    for group in (needs.default_privilege_roles, needs.owners if owners else {}):
        for role, line in group.items():
            wanted[role] = min(line, wanted.get(role, line))
    rows = await admin.fetch(
        "SELECT r AS name, quote_ident(r) AS quoted, a.rolname IS NOT NULL AS present, "
        "coalesce(a.rolsuper, false) AS superuser "
        "FROM unnest($1::text[]) r LEFT JOIN pg_catalog.pg_roles a ON a.rolname = r ORDER BY r",
        sorted(wanted),
    )
    quoted = {row["name"]: row["quoted"] for row in rows}
    absent = {row["name"] for row in rows if not row["present"]}
    superusers = {row["name"] for row in rows if row["superuser"]}
    for role in sorted(absent, key=lambda r: wanted[r]):
        why = _why(role, needs, owners)
        found.append(
            Missing(
                f"role {role} does not exist there ({why}, first at {at(wanted[role])})",
                f"CREATE ROLE {quoted[role]} NOLOGIN;",
            )
        )
    # PostgreSQL 16 split membership: ALTER ... OWNER TO needs the SET option of it.
    owner_mode = "SET" if admin.get_server_version().major >= 16 else "MEMBER"
    checks = [(needs.default_privilege_roles, "MEMBER")]
    if owners:
        checks.insert(0, (needs.owners, owner_mode))
    lacking: dict[str, int] = {}
    for group, mode in checks:
        present = [r for r in group if r not in absent and r != user]
        if superuser or not present:
            continue
        for row in await admin.fetch(
            "SELECT r FROM unnest($1::text[]) r WHERE NOT pg_catalog.pg_has_role(r, $2)",
            present,
            mode,
        ):
            lacking[row["r"]] = min(group[row["r"]], lacking.get(row["r"], group[row["r"]]))
    for role, line in sorted(lacking.items(), key=lambda item: item[1]):
        why = _why(role, needs, owners)
        # Membership in a superuser role is a way to become one (SET ROLE): never advised.
        fix = (
            f"verify with a superuser role ({role} is one there), or leave owners out"
            if role in superusers
            else f"GRANT {quoted.get(role, role)} TO {quoted_user};"
        )
        found.append(Missing(f"{user} is not a member of {role} ({why}, first at {at(line)})", fix))
    found += await _extensions(admin, needs, superuser, at)
    return found


def _why(role: str, needs: ScriptNeeds, owners: bool) -> str:
    if owners and role in needs.owners:
        return "it owns objects in the files"
    if role in needs.default_privilege_roles:
        return "ALTER DEFAULT PRIVILEGES FOR ROLE names it"
    return "the files grant it privileges"


async def _extensions(
    admin: asyncpg.Connection, needs: ScriptNeeds, superuser: bool, at: Callable[[int], str]
) -> list[Missing]:
    if not needs.extensions:
        return []
    rows = await admin.fetch(
        "SELECT e AS name, a.default_version IS NOT NULL AS available, "
        "coalesce(v.superuser AND NOT v.trusted, false) AS needs_superuser "
        "FROM unnest($1::text[]) e "
        "LEFT JOIN pg_catalog.pg_available_extensions a ON a.name = e "
        "LEFT JOIN pg_catalog.pg_available_extension_versions v "
        "  ON v.name = e AND v.version = a.default_version",
        sorted(needs.extensions),
    )
    found = []
    for row in sorted(rows, key=lambda r: needs.extensions[r["name"]]):
        name, line = row["name"], needs.extensions[row["name"]]
        where = f"CREATE EXTENSION at {at(line)}"
        if not row["available"]:
            found.append(
                Missing(
                    f"extension {name} is not available on the verify server ({where})",
                    "install its package there (the same major version as production's)",
                )
            )
        elif row["needs_superuser"] and not superuser:
            found.append(
                Missing(
                    f"extension {name} needs a superuser to create ({where})",
                    "verify with a superuser role on the verify server (CREATE EXTENSION of an "
                    "untrusted extension needs one)",
                )
            )
    return found


def report(server: str, missing: list[Missing], owners: bool) -> str:
    """The one message: a line saying nothing was installed, then one line per problem."""
    lines = [
        f"the verify server {server} is not ready for these files "
        f"({len(missing)} problem{'s' if len(missing) != 1 else ''}; nothing was installed):"
    ]
    # A role's name is the files' text, anyone's choice: one problem stays one line.
    lines += [f"  - {visible(m.line())}" for m in missing]
    if owners and any("is not a member of" in m.what for m in missing):
        lines.append(
            "  where memberships cannot be granted: `pg-schema-sync verify --no-owners` (or "
            "verify_owners = false) installs and compares without owners"
        )
    return "\n".join(lines)
