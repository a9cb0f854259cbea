"""A stamp of the catalog's committed state: equal stamps at two moments, no DDL in between.

Why the shared snapshot alone is not enough: pg_get_functiondef, pg_get_viewdef and the other
deparsing functions (the inventory's and pg_dump's own) read the catalog through the system
caches, which always see the latest committed state, not the transaction's snapshot. So a
function replaced while the catalog queries run shows its new text in the inventory and its
old one in pg_dump's MVCC read. Every DDL statement writes new catalog row versions (new xmin);
VACUUM and ANALYZE update pg_class in place and keep it. So the visible rows' (count, sum of
xmin) of the catalogs the inventory reads are the same at two moments only if no DDL committed
between them (a later change and its undo still leave new xmins). Temporary objects of other
sessions are left out: applications create them all the time and they are never exported.
"""

from __future__ import annotations

import asyncpg

_NOT_TEMP_RELATION = "(SELECT oid FROM pg_catalog.pg_class WHERE relpersistence <> 't')"
_NOT_TEMP_SCHEMA = "(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname !~ '^pg_(toast_)?temp_')"
_ROWS = [
    "pg_catalog.pg_class WHERE relpersistence <> 't'",
    f"pg_catalog.pg_attribute WHERE attrelid IN {_NOT_TEMP_RELATION}",
    f"pg_catalog.pg_attrdef WHERE adrelid IN {_NOT_TEMP_RELATION}",
    f"pg_catalog.pg_index WHERE indrelid IN {_NOT_TEMP_RELATION}",
    f"pg_catalog.pg_trigger WHERE tgrelid IN {_NOT_TEMP_RELATION}",
    f"pg_catalog.pg_rewrite WHERE ev_class IN {_NOT_TEMP_RELATION}",
    f"pg_catalog.pg_constraint WHERE connamespace IN {_NOT_TEMP_SCHEMA}",
    f"pg_catalog.pg_type WHERE typnamespace IN {_NOT_TEMP_SCHEMA}",
    f"pg_catalog.pg_namespace WHERE oid IN {_NOT_TEMP_SCHEMA}",
    *(
        f"pg_catalog.{table}"
        for table in (
            "pg_proc",
            "pg_aggregate",
            "pg_description",
            "pg_extension",
            "pg_policy",
            "pg_default_acl",
            "pg_cast",
            "pg_collation",
            "pg_statistic_ext",
            "pg_event_trigger",
            "pg_foreign_data_wrapper",
            "pg_foreign_server",
            "pg_publication",
            "pg_enum",
            "pg_sequence",
            "pg_inherits",
            "pg_operator",
            "pg_range",
            # the families of catalog_queries_extra (CATALOGS_READ there), as far as every
            # role may read them: user mappings and subscriptions are superuser-only tables
            "pg_opclass",
            "pg_opfamily",
            "pg_amop",
            "pg_amproc",
            "pg_am",
            "pg_ts_parser",
            "pg_ts_template",
            "pg_ts_dict",
            "pg_ts_config",
            "pg_ts_config_map",
            "pg_conversion",
            "pg_language",
            "pg_transform",
            "pg_seclabel",
        )
    ),
]
STAMP_SQL = (
    "SELECT count(*), coalesce(sum(x), 0)::text FROM ("
    + " UNION ALL ".join(f"SELECT xmin::text::bigint AS x FROM {rows}" for rows in _ROWS)
    + ") AS rows"
)


async def catalog_stamp(conn: asyncpg.Connection) -> tuple[int, str]:
    """The stamp as `conn`'s current snapshot sees the catalog."""
    row = await conn.fetchrow(STAMP_SQL)
    assert row is not None
    return int(row[0]), str(row[1])
