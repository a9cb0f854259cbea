"""A live database's user objects as an Inventory, read from pg_catalog in one snapshot.

What is in it: every user object that pg_dump --schema-only would emit, minus members of
extensions (those come with CREATE EXTENSION, which is reported with its version) and
anything in pg_catalog, information_schema, pg_toast* and pg_temp*.

Kinds and names (names are quoted like quote_ident, schema-qualified where it applies):
  schema                `"Weird Schema"`
  extension             `postgis`
  table, foreign table  `public.trails` (columns, constraints, partitioning, RLS, ...)
  view, materialized view, sequence, index, collation, statistics, type, domain
                        `public.trails_geom_idx`
  function, procedure, aggregate
                        `public.find_route(integer, integer)`: identity argument types,
                        so overloads are distinct objects
  trigger, rule, policy `trail_touch ON public.trails`
  cast                  `(public.celsius AS numeric)`
  default privileges    `FOR ROLE app IN SCHEMA public ON TABLES` (no IN SCHEMA = global)
  operator              `public.===(integer, integer)`
  operator class, operator family
                        `public.int_ops USING btree`
  text search configuration, dictionary, parser, template; conversion
                        `public.english_nostop`
  security label        `selinux ON TABLE public.trails`
  event trigger, foreign data wrapper, server, publication, subscription, access method,
  language              `audit_ddl` (database-wide: left out under a `schemas` filter)
  transform             `FOR public.pair LANGUAGE plperl` (database-wide)
  user mapping          `FOR PUBLIC SERVER remote` (database-wide)

service/production/dump_coverage.py says which of these holds each kind of entry pg_dump
writes, and which entries are outside the inventory and why.

A definition is a normalised multi-line text, one fact per line, so a diff of two of them
reads like a schema change: an added column is one `+` line. Owner, privileges (GRANT/REVOKE
lines relative to the default ACL, sorted) and comments are appended as extra lines, each
switchable through CatalogOptions. No OID reaches the text: loading the same SQL into two
databases gives identical inventories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from service.compare.inventory import DbObject, Inventory
from service.production.catalog_queries import ANY_SCHEMA_MATCHES, Query
from service.production.catalog_versions import queries_for
from service.production.db import read_transaction
from service.production.schema_patterns import schema_regex

FETCH_ROWS = 2_000
T = TypeVar("T")


class NoMatchingSchemas(ValueError):
    """The `schemas` patterns match no schema: pg_dump -n would refuse to dump."""


@dataclass(frozen=True)
class CatalogOptions:
    schemas: tuple[str, ...] = ()  # pg_dump -n patterns: only these schemas; empty = all
    exclude_schemas: tuple[str, ...] = ()  # pg_dump -N patterns
    owners: bool = True
    privileges: bool = True
    comments: bool = True


async def load_inventory(
    conn: asyncpg.Connection, options: CatalogOptions = CatalogOptions()
) -> Inventory:
    """Every user object of the database `conn` is connected to, from one consistent snapshot:
    the caller's open transaction (snapshot.py shares it with pg_dump), else one of its own."""
    return Inventory.of(await _each_row(conn, options, lambda row: _object(row, options)))


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """One object as the catalog query returned it, its parts apart: what a plan builds
    statements from. `classid`/`objid` name its catalog row (a label's: the labelled one's)."""

    kind: str
    name: str
    body: str
    owner: str | None
    acl: str | None
    comments: str | None
    classid: int | None
    objid: int | None

    def object(self, options: CatalogOptions) -> DbObject:
        """The inventory object: exactly what load_inventory makes of the same row."""
        return _object(self, options)


_ROW_FIELDS = ("kind", "name", "body", "owner", "acl", "comments", "classid", "objid")


async def load_rows(
    conn: asyncpg.Connection, options: CatalogOptions = CatalogOptions()
) -> list[CatalogRow]:
    """The rows load_inventory reads, with their parts and catalog ids kept."""
    return await _each_row(conn, options, _row)


def _row(r: asyncpg.Record) -> CatalogRow:
    return CatalogRow(*(r[k] for k in _ROW_FIELDS))


async def _each_row(
    conn: asyncpg.Connection, options: CatalogOptions, make: Callable[[Any], T]
) -> list[T]:
    if conn.is_in_transaction():
        return await _read(conn, options, make)
    async with read_transaction(conn, isolation="repeatable_read"):
        return await _read(conn, options, make)


async def _read(
    conn: asyncpg.Connection, options: CatalogOptions, make: Callable[[Any], T]
) -> list[T]:
    objects: list[T] = []
    # As pg_dump does: deparsed names outside pg_catalog come out schema-qualified.
    # JIT would spend seconds compiling these wide one-off queries on big catalogs, and
    # parallel workers start with cold catalog caches: at 10,000 tables they cost ~1 s of
    # production CPU more than they save (measured on 2 cores).
    await conn.execute(
        "SELECT pg_catalog.set_config('search_path', '', true),"
        " pg_catalog.set_config('jit', 'off', true),"
        " pg_catalog.set_config('max_parallel_workers_per_gather', '0', true)"
    )
    schema_filter = (
        [schema_regex(p) for p in options.schemas],
        [schema_regex(p) for p in options.exclude_schemas],
    )
    if options.schemas and not await conn.fetchval(ANY_SCHEMA_MATCHES, schema_filter[0]):
        raise NoMatchingSchemas(
            "no schema matches the schemas patterns "
            f"{', '.join(repr(p) for p in options.schemas)} (pg_dump -n refuses them "
            "too); check the schemas setting or --schema"
        )
    for query in queries_for(server_version_num(conn)):
        if query.only_if and not await conn.fetchval(f"SELECT {query.only_if}"):
            continue
        if _wanted(query, options):
            # In batches: all 12,000 relation rows of a 10,000-table schema as records at
            # once were ~20 MB more peak memory than the objects made from them.
            cursor = await conn.cursor(query.sql, *(schema_filter if query.scoped else ()))
            while rows := await cursor.fetch(FETCH_ROWS):
                objects.extend(make(row) for row in rows)
    return objects


def server_version_num(conn: asyncpg.Connection) -> int:
    """As the server's server_version_num setting: 170004 for 17.4."""
    v = conn.get_server_version()
    return v.major * 10_000 + (v.micro if v.major >= 10 else v.minor * 100 + v.micro)


def _wanted(query: Query, options: CatalogOptions) -> bool:
    if query.whole_database and options.schemas:
        return False
    return options.privileges or not query.privileges_only


def _object(row: asyncpg.Record | CatalogRow, options: CatalogOptions) -> DbObject:
    if isinstance(row, CatalogRow):
        kind, name, body, owner = row.kind, row.name, row.body, row.owner
        acl, comments = row.acl, row.comments
    else:
        kind, name, body, owner = row["kind"], row["name"], row["body"], row["owner"]
        acl, comments = row["acl"], row["comments"]
    lines = [body]
    if options.owners and owner:
        lines.append(owner_statement(kind, name, owner))
    if options.privileges and acl:
        lines.append(acl)
    if options.comments and comments:
        lines.append(comments)
    return DbObject(kind, name, "\n".join(lines))


def owner_statement(kind: str, name: str, owner: str) -> str:
    """The owner line of a definition, which is also the SQL that sets it."""
    return f"ALTER {kind.upper()} {name} OWNER TO {owner}"
