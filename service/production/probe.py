"""The catalog probe: one cheap read-only query whose answer changes whenever the schema does.

Why it is complete. Everything `pg_dump --schema-only` or the inventory prints is read from
catalog tables, and every DDL statement (CREATE, ALTER, DROP, CREATE OR REPLACE, GRANT,
REVOKE, COMMENT, SECURITY LABEL, ALTER DEFAULT PRIVILEGES, ALTER EXTENSION UPDATE, ALTER TYPE
ADD VALUE, ALTER SEQUENCE, ENABLE/DISABLE TRIGGER, ...) commits by inserting, deleting or
*transactionally* updating rows of those tables. A transactional insert or update gives the
row version the writing transaction's xid as `xmin`, an xid no visible row carried before;
a delete removes a row. So per catalog, (count of visible rows, sum of a 64-bit hash of each
row's xmin) changes on every insert, update and delete -- even an update that writes the same
bytes back (CREATE OR REPLACE with an identical body). The statement sees one MVCC snapshot:
uncommitted DDL (an open or prepared transaction) is invisible until it commits.

What xmin does not see, and how it is handled:
- In-place updates (heap_inplace_update) keep xmin. VACUUM and ANALYZE write relpages,
  reltuples, relallvisible, relfrozenxid, relminmxid and clear relhas* flags of pg_class that
  way, and pg_database's datfrozenxid/datminmxid. None of it is schema, which is why in-place
  updates are used for them. Old releases also flipped pg_index's indisvalid/indisready that
  way during CREATE INDEX CONCURRENTLY, which *is* schema: pg_class and pg_database are
  therefore hashed by content (every column but the volatile ones below), not by xmin, and
  pg_index's state flags by content besides its xmin.
- Freezing: since 9.4 a frozen tuple keeps its raw xmin (a flag bit marks it frozen), so the
  xmin column reads the same before and after VACUUM FREEZE, and VACUUM FULL of a catalog
  copies xmin. A pg_upgrade rewrites nothing either. tests/test_probe.py checks both.
- Transaction-id wraparound: xids repeat only after 2^32 transactions; for a false "same"
  the one changed row would need the exact xid it had 4 billion transactions earlier.

What it leaves out, so ordinary activity does not look like a schema change:
- pg_statistic, pg_statistic_ext_data (ANALYZE), pg_largeobject(_metadata) (data; a
  --schema-only dump has no large objects), pg_shdepend (pg_dump never reads it), catalogs
  only pg_dumpall reads (pg_auth_members, pg_parameter_acl, pg_replication_origin).
- pg_class's relfilenode, relpages, reltuples, relallvisible, relfrozenxid, relminmxid,
  relrewrite and relhas* flags: TRUNCATE, VACUUM FULL, CLUSTER, REINDEX and REFRESH
  MATERIALIZED VIEW give a table a new relfilenode through a transactional update; the
  relhas* facts live in pg_index, pg_rewrite, pg_trigger and pg_inherits, which are covered.
- Rows of temporary objects (pg_temp_N / pg_toast_temp_N and everything hanging off their
  relations): other sessions' temp tables are nobody's schema.
- Sequence state: nextval writes the sequence relation itself, never pg_sequence.

Schema filters are not applied: an object outside the chosen schemas can change what the
chosen ones print (renaming a type or function in another schema renames it in a column's
type or a default, with no row of the chosen schemas changing). So the probe is
conservative: DDL anywhere in the database leads to one full sync, which then reports only
what the filter keeps.

Roles are read by name (pg_roles, oid + rolname) rather than pg_authid, which only a superuser
may read; owners and grantees appear in a dump only by name. pg_user_mapping and
pg_subscription are read through what a non-superuser may see when it cannot read them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import asyncpg

from service.production import probe_inputs
from service.production.conninfo import ConnInfo
from service.production.db import SessionLimits
from service.production.probe_inputs import PRIVILEGED, privileged_present
from service.production.session import catalog_errors, close_quickly, open_session

# Catalogs fingerprinted by (count, sum of hash(xmin)). The second field names the column
# holding the row's relation or namespace, for leaving out temporary objects ("" = none).
XMIN_CATALOGS: dict[str, tuple[str, str]] = {
    # catalog: (kind of key column, key column)
    "pg_namespace": ("self", "oid"),
    "pg_attribute": ("rel", "attrelid"),
    "pg_attrdef": ("rel", "adrelid"),
    "pg_constraint": ("ns", "connamespace"),
    "pg_inherits": ("rel", "inhrelid"),
    "pg_partitioned_table": ("rel", "partrelid"),
    "pg_index": ("rel", "indrelid"),
    "pg_type": ("ns", "typnamespace"),
    "pg_enum": ("", ""),
    "pg_range": ("", ""),
    "pg_proc": ("ns", "pronamespace"),
    "pg_aggregate": ("", ""),
    "pg_operator": ("", ""),
    "pg_opclass": ("", ""),
    "pg_opfamily": ("", ""),
    "pg_amop": ("", ""),
    "pg_amproc": ("", ""),
    "pg_am": ("", ""),
    "pg_collation": ("", ""),
    "pg_conversion": ("", ""),
    "pg_language": ("", ""),
    "pg_cast": ("", ""),
    "pg_transform": ("", ""),
    "pg_rewrite": ("rel", "ev_class"),
    "pg_trigger": ("rel", "tgrelid"),
    "pg_event_trigger": ("", ""),
    "pg_policy": ("rel", "polrelid"),
    "pg_default_acl": ("", ""),
    "pg_init_privs": ("", ""),
    "pg_extension": ("", ""),
    "pg_foreign_data_wrapper": ("", ""),
    "pg_foreign_server": ("", ""),
    "pg_foreign_table": ("", ""),
    "pg_sequence": ("rel", "seqrelid"),
    "pg_statistic_ext": ("ns", "stxnamespace"),
    "pg_publication": ("", ""),
    "pg_publication_rel": ("", ""),
    "pg_publication_namespace": ("", ""),
    "pg_ts_config": ("", ""),
    "pg_ts_config_map": ("", ""),
    "pg_ts_dict": ("", ""),
    "pg_ts_parser": ("", ""),
    "pg_ts_template": ("", ""),
    "pg_description": ("obj", "classoid,objoid"),
    "pg_seclabel": ("obj", "classoid,objoid"),
    "pg_depend": ("dep", "classid,objid,refclassid,refobjid"),
    # shared catalogs: what a database's dump can show of them
    "pg_tablespace": ("", ""),
    "pg_shdescription": ("", ""),
    "pg_shseclabel": ("", ""),
    "pg_db_role_setting": ("db", "setdatabase"),
}

# Catalogs fingerprinted by content: every column except these (see the module docstring).
CONTENT_CATALOGS: dict[str, frozenset[str]] = {
    "pg_class": frozenset(
        {
            "relfilenode",
            "relpages",
            "reltuples",
            "relallvisible",
            "relallfrozen",  # 18+: written by VACUUM, like relallvisible
            "relfrozenxid",
            "relminmxid",
            "relrewrite",
            "relhasindex",
            "relhasrules",
            "relhastriggers",
            "relhassubclass",
        }
    ),
    # dathasloginevt (17+) mirrors pg_event_trigger, which is covered, and is reset lazily.
    "pg_database": frozenset({"datfrozenxid", "datminmxid", "datlastsysoid", "dathasloginevt"}),
}

# Never fingerprinted, each for a reason above; tests fail on a catalog in neither list.
IGNORED = frozenset(
    {
        "pg_statistic",
        "pg_statistic_ext_data",
        "pg_largeobject",
        "pg_largeobject_metadata",
        "pg_shdepend",
        "pg_auth_members",
        "pg_authid",  # read as pg_roles (name only)
        "pg_parameter_acl",
        "pg_replication_origin",
        "pg_subscription_rel",  # per-table replication sync state; binary-upgrade dumps only
    }
)

# Temporary namespaces and the objects in them, as (catalog oid << 32 | object oid) keys.
_TEMP = """nx AS (
    SELECT pg_catalog.age('3'::pg_catalog.xid)::int8 + 3 AS x
), tns AS (
    SELECT oid FROM pg_catalog.pg_namespace WHERE nspname ~ '^pg_(toast_)?temp_'
), trel AS (
    SELECT oid FROM pg_catalog.pg_class WHERE relnamespace IN (SELECT oid FROM tns)
), tkey AS (
    SELECT k FROM (
        SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass::oid::int8 * 4294967296
               + oid::int8 AS k FROM tns
        UNION ALL SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::oid::int8 * 4294967296
               + oid::int8 FROM trel
        UNION ALL SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::oid::int8 * 4294967296
               + oid::int8 FROM pg_catalog.pg_type WHERE typnamespace IN (SELECT oid FROM tns)
        UNION ALL SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass::oid::int8 * 4294967296
               + oid::int8 FROM pg_catalog.pg_constraint
               WHERE connamespace IN (SELECT oid FROM tns)
        UNION ALL SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass::oid::int8 * 4294967296
               + oid::int8 FROM pg_catalog.pg_attrdef WHERE adrelid IN (SELECT oid FROM trel)
        UNION ALL SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass::oid::int8 * 4294967296
               + oid::int8 FROM pg_catalog.pg_trigger WHERE tgrelid IN (SELECT oid FROM trel)
        UNION ALL SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass::oid::int8 * 4294967296
               + oid::int8 FROM pg_catalog.pg_rewrite WHERE ev_class IN (SELECT oid FROM trel)
        UNION ALL SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass::oid::int8 * 4294967296
               + oid::int8 FROM pg_catalog.pg_proc WHERE pronamespace IN (SELECT oid FROM tns)
        UNION ALL SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass::oid::int8 * 4294967296
               + oid::int8 FROM pg_catalog.pg_policy WHERE polrelid IN (SELECT oid FROM trel)
    ) keys
)"""

# hash(xmin) per row, summed. xmin::text::int8 would cost a text round trip per row (5x the
# scan itself at 10,000 tables); age(xmin) is integer arithmetic against one xid X that stays
# fixed for the whole transaction, so (X - age(xmin)) mod 2^32 gives xmin back. age() is
# INT_MAX for the special xids (bootstrap, frozen before 9.4): those rows hash as 0.
_HASH_XMIN = (
    "sum(pg_catalog.hashint8extended(CASE WHEN pg_catalog.age(xmin) = 2147483647 THEN 0"
    " ELSE ((SELECT x FROM nx) - pg_catalog.age(xmin)) & 4294967295 END, 0))"
)


def _key(classid: str, objid: str) -> str:
    return f"({classid}::int8 * 4294967296 + {objid}::int8)"


def _temp_filter(kind: str, columns: str) -> str:
    """SQL WHERE clause leaving out the rows of temporary objects ('' = keep every row)."""
    if kind == "self":
        return "WHERE oid NOT IN (SELECT oid FROM tns)"
    if kind == "ns":
        return f"WHERE {columns} NOT IN (SELECT oid FROM tns)"
    if kind == "rel":
        return f"WHERE {columns} NOT IN (SELECT oid FROM trel)"
    if kind == "obj":
        classid, objid = columns.split(",")
        return f"WHERE {_key(classid, objid)} NOT IN (SELECT k FROM tkey)"
    if kind == "dep":
        c, o, rc, ro = columns.split(",")
        return (
            f"WHERE {_key(c, o)} NOT IN (SELECT k FROM tkey)"
            f" AND {_key(rc, ro)} NOT IN (SELECT k FROM tkey)"
        )
    if kind == "db":
        return (
            f"WHERE {columns} IN (0, (SELECT oid FROM pg_catalog.pg_database"
            " WHERE datname = pg_catalog.current_database()))"
        )
    return ""


def build_query(present: dict[str, list[str]], readable: set[str]) -> str:
    """The probe's SQL for a server whose pg_catalog holds `present` (table -> columns)."""
    parts: list[str] = []
    for catalog, (kind, columns) in XMIN_CATALOGS.items():
        if catalog in present:
            parts.append(
                f"SELECT '{catalog}'::text, count(*), {_HASH_XMIN}"
                f" FROM pg_catalog.{catalog} {_temp_filter(kind, columns)}"
            )
    for catalog, volatile in CONTENT_CATALOGS.items():
        if catalog not in present:
            continue
        cols = ", ".join(f"t.{c}" for c in present[catalog] if c not in volatile)
        where = {
            "pg_class": "WHERE t.relnamespace NOT IN (SELECT oid FROM tns)",
            "pg_database": "WHERE t.datname = pg_catalog.current_database()",
        }[catalog]
        parts.append(
            f"SELECT '{catalog}'::text, count(*),"
            f" sum(pg_catalog.hashtextextended(({cols})::text, 0))"
            f" FROM pg_catalog.{catalog} t {where}"
        )
    # Old releases flipped these in place during CREATE/DROP INDEX CONCURRENTLY.
    parts.append(
        "SELECT 'pg_index flags'::text, count(*), sum(pg_catalog.hashtextextended("
        "(t.indexrelid, t.indisvalid, t.indisready, t.indislive, t.indisclustered,"
        " t.indisreplident)::text, 0)) FROM pg_catalog.pg_index t"
        " WHERE t.indrelid NOT IN (SELECT oid FROM trel)"
    )
    # Owners and grantees are printed by name: a role rename changes the dump.
    parts.append(
        "SELECT 'pg_roles'::text, count(*), sum(pg_catalog.hashtextextended("
        "(r.oid, r.rolname)::text, 0)) FROM pg_catalog.pg_roles r"
    )
    for catalog, fallback in PRIVILEGED.items():
        if catalog not in present:
            continue
        if catalog in readable:
            parts.append(
                f"SELECT '{catalog}'::text, count(*), {_HASH_XMIN} FROM pg_catalog.{catalog}"
            )
        else:
            parts.append(f"SELECT '{catalog}'::text, * FROM ({fallback}) f")
    # Inputs of the files that no DDL writes (probe_inputs.py says which and why).
    parts.append(probe_inputs.session_part(privileged_present(present)))
    parts.append(probe_inputs.collation_part(present.get("pg_database", [])))
    return f"WITH {_TEMP}\n" + "\nUNION ALL ".join(parts)


_SHAPE = """SELECT c.relname::text, array_agg(a.attname::text ORDER BY a.attnum)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
WHERE c.relnamespace = 'pg_catalog'::pg_catalog.regnamespace AND c.relkind = 'r'
  AND a.attnum > 0 AND NOT a.attisdropped
GROUP BY c.relname"""

_READABLE = """SELECT c::text FROM unnest($1::text[]) c
WHERE pg_catalog.has_table_privilege('pg_catalog.' || c, 'SELECT')"""


@dataclass(frozen=True)
class Fingerprint:
    """The probe's answer: a digest, and the per-catalog parts behind it (for the logs)."""

    digest: str
    parts: dict[str, str]
    server_version_num: int
    duration_s: float

    def changed_catalogs(self, other: dict[str, str]) -> list[str]:
        """Catalogs whose part differs from `other` (an earlier fingerprint's parts)."""
        names = set(self.parts) | set(other)
        return sorted(n for n in names if self.parts.get(n) != other.get(n))


# Built statements by (server version, role, database), with the readability they assume: a
# one-shot probe on a fresh connection then costs two round trips, not four. Cleared when a
# probe fails, rebuilt when the role's privileges moved (its session part says so).
_BUILT: dict[tuple[int, str, str], tuple[str, int]] = {}

_SESSION = """SELECT pg_catalog.current_setting('server_version_num')::int,
    current_user::text, pg_catalog.current_database()::text,
    pg_catalog.set_config('jit', 'off', false),
    pg_catalog.set_config('max_parallel_workers_per_gather', '0', false)"""


class Probe:
    """The probe on one connection. Its first call sets the session up: JIT off (compiling
    would take longer than the scans) and no parallel workers (cold caches); the connection
    is the probe's own (ProbeSession, the benchmark)."""

    def __init__(self) -> None:
        self._sql: str | None = None
        self._version = 0
        self._key: tuple[int, str, str] | None = None
        self._mask = 0  # which privileged catalogs the statement reads as readable

    @property
    def sql(self) -> str | None:
        """The statement built for the server probed (for the benchmark's lock check)."""
        return self._sql

    async def _build(self, conn: asyncpg.Connection) -> str:
        row = await conn.fetchrow(_SESSION)
        assert row is not None
        version, role, database = int(row[0]), str(row[1]), str(row[2])
        key = (version, role, database)
        built = _BUILT.get(key)
        if built is None:
            present = {r[0]: list(r[1]) for r in await conn.fetch(_SHAPE)}
            readable = {r[0] for r in await conn.fetch(_READABLE, list(PRIVILEGED))}
            mask = probe_inputs.readable_mask(privileged_present(present), readable)
            built = _BUILT[key] = (build_query(present, readable), mask)
        (self._sql, self._mask), self._version, self._key = built, version, key
        return self._sql

    async def fingerprint(self, conn: asyncpg.Connection) -> Fingerprint:
        """Run the probe on `conn`. Takes locks on catalog tables only (AccessShare)."""
        t0 = time.monotonic()
        for rebuilt in (False, True):
            sql = self._sql or await self._build(conn)
            try:
                rows = await conn.fetch(sql)  # one statement: one snapshot
            except asyncpg.PostgresError:
                _BUILT.clear()
                raise
            parts = {r[0]: f"{r[1]}:{r[2] or 0}" for r in rows}
            session = int(parts.get("session", "0:0").split(":")[0])
            if rebuilt or session & ~probe_inputs.SUPERUSER_BIT == self._mask:
                break
            # Granted or revoked since the statement was built: build it for what it may read.
            _BUILT.pop(self._key or (0, "", ""), None)
            self._sql = None
        text = "\n".join(f"{k}={v}" for k, v in sorted(parts.items()))
        digest = hashlib.sha256(f"server={self._version}\n{text}".encode()).hexdigest()
        return Fingerprint(digest, parts, self._version, time.monotonic() - t0)


def covered_catalogs() -> set[str]:
    """Every pg_catalog table the probe reads, or deliberately leaves out."""
    return set(XMIN_CATALOGS) | set(CONTENT_CATALOGS) | set(PRIVILEGED) | IGNORED


class ProbeSession:
    """Probes of one database, on a connection kept open between them when `keep_open`
    (reconnecting after any error: a dropped connection costs one failed probe at most)."""

    def __init__(self, info: ConnInfo, limits: SessionLimits, keep_open: bool) -> None:
        self.info, self.limits, self.keep_open = info, limits, keep_open
        self._probe = Probe()
        self._conn: asyncpg.Connection | None = None

    async def fingerprint(self) -> Fingerprint:
        """The fingerprint now; SyncError (cause connection or catalog) when it cannot say."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await open_session(self.info, self.limits)
            self._probe = Probe()
        try:
            with catalog_errors(self.info):
                return await self._probe.fingerprint(self._conn)
        except BaseException:
            await self.close()
            raise
        finally:
            if not self.keep_open:
                await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await close_quickly(conn)


async def probe_once(info: ConnInfo, limits: SessionLimits) -> Fingerprint:
    """One probe on a connection of its own."""
    return await ProbeSession(info, limits, keep_open=False).fingerprint()
