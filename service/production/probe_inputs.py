"""What the probe reads besides the catalogs: inputs of the files that no DDL writes.

The files depend on the catalog, on the pinned session settings (pins.py), on the settings
digest (probing.py: the client's options, pg_dump's path and version, the filters) and on these,
which can be neither pinned nor put in the digest, so their effective values join the
fingerprint and a change forces one full read:
- the connecting role's superuser flag and which of the privileged catalogs it may read: a
  role made superuser (ALTER ROLE ... SUPERUSER writes pg_authid, which the probe reads only
  by name) makes pg_dump print subscriptions it skipped before, with a warning;
- the version of the library behind the database's default collation (glibc or ICU, as the
  server reports it now, not as recorded in pg_database): the catalog queries order some lines
  by text in that collation, and an OS upgrade can change the order with no DDL at all.
The server's version (major and minor, deparsing changes between minors) is part of the digest
(probe.py), and encoding, lc_collate, lc_ctype and the locale provider are columns of
pg_database, hashed by content. docs/output-settings.md lists every input with its verdict.
"""

from __future__ import annotations

# Catalogs the probe reads in full only when the role may (superuser or granted), else through
# what a non-superuser may see (these statements): which of the two is one of the role's facts.
PRIVILEGED: dict[str, str] = {
    "pg_user_mapping": (
        "SELECT count(*), sum(pg_catalog.hashtextextended("
        "(u.umid, u.srvid, u.umuser, u.umoptions)::text, 0))"
        " FROM pg_catalog.pg_user_mappings u"
    ),
    "pg_subscription": (
        "SELECT count(*), sum(pg_catalog.hashtextextended("
        "(s.oid, s.subname, s.subowner, s.subenabled, s.subslotname, s.subpublications)::text,"
        " 0)) FROM pg_catalog.pg_subscription s"
        " WHERE s.subdbid = (SELECT oid FROM pg_catalog.pg_database"
        " WHERE datname = pg_catalog.current_database())"
    ),
}


def privileged_present(present: dict[str, list[str]]) -> list[str]:
    """The privileged catalogs of this server, in PRIVILEGED's order (the bitmask's)."""
    return [c for c in PRIVILEGED if c in present]


# Bit 0 of the session part: superuser; bit i+1: the i-th privileged catalog is readable.
SUPERUSER_BIT = 1


def session_part(privileged: list[str]) -> str:
    """The role's facts as one bitmask (the count column; the sum column stays 0)."""
    bits = " + ".join(
        f"CASE WHEN pg_catalog.has_table_privilege('pg_catalog.{name}', 'SELECT')"
        f" THEN {1 << (i + 1)} ELSE 0 END"
        for i, name in enumerate(privileged)
    )
    return (
        "SELECT 'session'::text, (CASE WHEN r.rolsuper THEN 1 ELSE 0 END"
        f"{' + ' + bits if bits else ''})::int8, 0::numeric"
        " FROM pg_catalog.pg_roles r WHERE r.rolname = current_user"
    )


def readable_mask(privileged: list[str], readable: set[str]) -> int:
    """The part of session_part's bitmask a statement built for `readable` assumes."""
    return sum(1 << (i + 1) for i, name in enumerate(privileged) if name in readable)


def collation_part(database_columns: list[str]) -> str:
    """The default collation's library version as the server finds it now.

    15+: pg_database_collation_actual_version (glibc or ICU, per the database's provider).
    13-14: the database's collation is libc's; every libc collation but C and POSIX reports
    glibc's version, so one of them stands for it."""
    if "datlocprovider" in database_columns:
        version = "pg_catalog.pg_database_collation_actual_version(d.oid)"
    else:
        version = (
            "CASE WHEN d.datcollate IN ('C', 'POSIX') THEN NULL ELSE"
            " (SELECT pg_catalog.pg_collation_actual_version(c.oid)"
            " FROM pg_catalog.pg_collation c WHERE c.collprovider = 'c'"
            " AND c.collcollate NOT IN ('C', 'POSIX') ORDER BY c.oid LIMIT 1) END"
        )
    return (
        "SELECT 'collation version'::text, 1::int8,"
        f" pg_catalog.hashtextextended(coalesce({version}, ''), 0)::numeric"
        " FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()"
    )
