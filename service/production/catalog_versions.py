"""The catalog queries as each supported server major needs them: the one place that knows.

catalog_queries.py is written for the newest catalogs. A server that lacks a column or a
catalog the queries read gets, instead of that fragment, an expression meaning "this feature
does not exist here" (NULL, an empty relation): the object's definition then reads exactly as
it would on a newer server where the feature is unused, so a major upgrade alone is no drift.

Columns added in a later major only ever need a stand-in on older servers; columns that were
renamed (pg_collation.colliculocale -> colllocale in 17) are read through to_jsonb in the
query itself. Each fragment must occur verbatim in the query text: tests/test_versions.py
fails when a query is rewritten and a fragment no longer matches, and runs every query on a
real server of every supported major.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from service.production.catalog_queries import QUERIES, Query
from service.production.catalog_queries_extra import EXTRA_QUERIES

OLDEST_SUPPORTED = 13  # see docs/versions.md
NEWEST_TESTED = 18


@dataclass(frozen=True)
class Fragment:
    since: int  # first major whose catalog has it
    newest: str  # as written in catalog_queries.py
    older: str  # what servers before `since` read instead


FRAGMENTS: tuple[Fragment, ...] = (
    # 14: multirange types (pg_range.rngmultitypid).
    Fragment(14, "rg.rngmultitypid::regtype", "NULL::regtype"),
    # 14: subscripting handlers of base types (pg_type.typsubscript).
    Fragment(14, "NULLIF(ty.typsubscript, 0)::regproc", "NULL::regproc"),
    # 14: column compression (pg_attribute.attcompression).
    Fragment(14, "a.attcompression", 'NULL::"char"'),
    # 15: publication column lists, row filters and FOR TABLES IN SCHEMA.
    Fragment(15, "pr.prattrs::int2[]", "NULL::int2[]"),
    Fragment(15, "pr.prqual", "NULL::pg_catalog.pg_node_tree"),
    Fragment(
        15,
        "pg_catalog.pg_publication_namespace pn",
        "(SELECT NULL::oid AS pnnspid, NULL::oid AS pnpubid WHERE false) pn",
    ),
)


class UnsupportedServer(ValueError):
    """The server is older than the oldest major the catalog queries are written for."""


def check_supported(server_version_num: int, where: str = "the server") -> None:
    """Refuse a server whose catalog the queries cannot read, in one line."""
    major = server_version_num // 10_000
    if major < OLDEST_SUPPORTED:
        raise UnsupportedServer(
            f"PostgreSQL {major} at {where} is not supported: pg-schema-sync reads the "
            f"catalogs of PostgreSQL {OLDEST_SUPPORTED} to {NEWEST_TESTED} and {major}'s lack "
            f"columns it needs; upgrade the server to {OLDEST_SUPPORTED} or newer"
        )


def queries_for(server_version_num: int) -> tuple[Query, ...]:
    """Every family's query, with each fragment this server's catalog lacks replaced by its
    stand-in."""
    check_supported(server_version_num)
    major = server_version_num // 10_000
    missing = [f for f in FRAGMENTS if major < f.since]
    every = (*QUERIES, *EXTRA_QUERIES)
    if not missing:
        return every
    return tuple(dataclasses.replace(q, sql=_rewrite(q.sql, missing)) for q in every)


def _rewrite(sql: str, fragments: list[Fragment]) -> str:
    for f in fragments:
        sql = sql.replace(f.newest, f.older)
    return sql
