"""One side of a plan as read (SideData), and the indexes the planner asks it through: which
inventory object a catalog row, a pg_dump entry or a pg_depend row belongs to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from service.compare.inventory import Inventory
from service.plan.entries import Archive, Entry
from service.plan.facts import TableFacts
from service.production.catalog import CatalogRow

Catalog = tuple[int, int]
# Catalogs' own OIDs: fixed since they were created, the same on every server.
PG_TYPE, PG_PROC, PG_CLASS, PG_ATTRDEF, PG_CONSTRAINT, PG_REWRITE = (
    1247,
    1255,
    1259,
    2604,
    2606,
    2618,
)
# Kinds whose rows do not name a catalog row of their own: a security label's ids are the
# labelled object's.
_NOT_IDENTITY = {"security label"}
# Entries the planner writes itself rather than copying pg_dump's: a label needs its
# provider's name, a mapping's options are read apart (pg_dump's has no dependencies).
_OWN_SQL = {"SECURITY LABEL", "USER MAPPING"}


@dataclass(frozen=True)
class SideData:
    """Everything a plan reads of one side, taken at one moment."""

    display: str  # where it came from, no password
    version: int  # server_version_num
    rows: Mapping[str, CatalogRow]  # by inventory key
    inventory: Inventory
    archive: Archive
    holders: Mapping[Catalog, Catalog]  # a part's catalog row -> its object's
    # pg_depend between user objects: (classid, objid, objsubid, refclassid, refobjid,
    # refobjsubid, deptype)
    depends: tuple[tuple[int, int, int, int, int, int, str], ...]
    fingerprint: str  # the catalog probe's, at the moment read
    tables: Mapping[str, TableFacts] = field(default_factory=dict)  # changed ones, by key
    # Extension members: (extension, type, identity) as pg_identify_object names them.
    members: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Dependency:
    """`key` (through its part `part`, column `subid`) depends on `ref` (through its part
    `ref_part`, column `ref_subid`)."""

    key: str
    part: Catalog
    subid: int
    ref: str
    ref_part: Catalog
    ref_subid: int
    auto: bool  # deptype 'a': goes by itself when what it depends on goes


class Side:
    """Lookups over one side's data; built once per plan."""

    def __init__(self, data: SideData) -> None:
        self.data = data

    @property
    def rows(self) -> Mapping[str, CatalogRow]:
        return self.data.rows

    @property
    def archive(self) -> Archive:
        return self.data.archive

    @cached_property
    def key_of(self) -> dict[Catalog, str]:
        """Catalog row -> inventory key, for objects that are a row of their own."""
        return {
            (r.classid, r.objid): key
            for key, r in self.rows.items()
            if r.classid is not None and r.objid is not None and r.kind not in _NOT_IDENTITY
        }

    def holder(self, catalog: Catalog) -> str | None:
        """The inventory object a catalog row is, or is part of."""
        seen = 0
        while catalog not in self.key_of:
            parent = self.data.holders.get(catalog)
            if parent is None or seen > 16:
                return None
            catalog, seen = parent, seen + 1
        return self.key_of[catalog]

    def chain(self, catalog: Catalog) -> list[Catalog]:
        """The catalog rows from `catalog` up to its object's (both included)."""
        out = [catalog]
        while out[-1] not in self.key_of and out[-1] in self.data.holders and len(out) < 16:
            out.append(self.data.holders[out[-1]])
        return out

    @cached_property
    def entry_keys(self) -> dict[int, str | None]:
        """Dump id -> the inventory object the entry belongs to (None: written by the planner
        itself, or outside the inventory)."""
        entries = self.archive.entries
        types = {(e.namespace, e.tag): e.dump_id for e in entries.values() if e.desc == "TYPE"}
        found: dict[int, str | None] = {}

        def key(entry: Entry, depth: int = 0) -> str | None:
            if entry.dump_id in found:
                return found[entry.dump_id]
            result: str | None = None
            if entry.desc in _OWN_SQL:
                result = None
            elif entry.classid:
                result = self.holder(entry.catalog)
            elif entry.desc == "SHELL TYPE":
                base = types.get((entry.namespace, entry.tag))
                result = key(entries[base], depth + 1) if base is not None else None
            elif entry.deps and depth < 16 and entry.deps[0] in entries:
                result = key(entries[entry.deps[0]], depth + 1)
            found[entry.dump_id] = result
            return result

        for entry in entries.values():
            key(entry)
        return found

    @cached_property
    def entries_of(self) -> dict[str, tuple[Entry, ...]]:
        """Inventory key -> its entries, in dump order."""
        grouped: dict[str, list[Entry]] = {}
        for entry in sorted(self.archive.entries.values(), key=lambda e: e.position):
            k = self.entry_keys.get(entry.dump_id)
            if k is not None:
                grouped.setdefault(k, []).append(entry)
        return {k: tuple(v) for k, v in grouped.items()}

    def entry_of_catalog(self, catalog: Catalog) -> Entry | None:
        """The entry pg_dump wrote for exactly this catalog row (a constraint, a default)."""
        found = self._by_catalog.get(catalog)
        return found[0] if found else None

    @cached_property
    def _by_catalog(self) -> dict[Catalog, list[Entry]]:
        return self.archive.by_catalog()

    def entry_ids(self, key: str) -> tuple[int, ...]:
        return tuple(e.dump_id for e in self.entries_of.get(key, ()))

    @cached_property
    def dependencies(self) -> tuple[Dependency, ...]:
        """pg_depend rows resolved to inventory objects (rows within one object left out)."""
        out: list[Dependency] = []
        for classid, objid, subid, refclassid, refobjid, refsubid, deptype in self.data.depends:
            key = self.holder((classid, objid))
            ref = self.holder((refclassid, refobjid))
            if key is None or ref is None:
                continue
            if key == ref:  # within one object: PostgreSQL keeps its own parts in step
                continue
            out.append(
                Dependency(
                    key,
                    (classid, objid),
                    subid,
                    ref,
                    (refclassid, refobjid),
                    refsubid,
                    deptype == "a",
                )
            )
        return tuple(out)

    @cached_property
    def depends_of(self) -> dict[str, list[Dependency]]:
        """Dependant inventory key -> its dependencies."""
        found: dict[str, list[Dependency]] = {}
        for d in self.dependencies:
            found.setdefault(d.key, []).append(d)
        return found

    @cached_property
    def labels(self) -> dict[Catalog, list[str]]:
        """A labelled object's catalog row -> its security labels' keys."""
        found: dict[Catalog, list[str]] = {}
        for key, r in self.rows.items():
            if r.kind == "security label" and r.classid is not None and r.objid is not None:
                found.setdefault((r.classid, r.objid), []).append(key)
        return found

    @cached_property
    def default_privileges(self) -> list[tuple[str, str]]:
        """(first line, grant lines) of each default-privileges object."""
        return [
            (r.body.partition("\n")[0], r.body.partition("\n")[2])
            for r in self.rows.values()
            if r.kind == "default privileges"
        ]

    @cached_property
    def dependants(self) -> dict[str, list[Dependency]]:
        """Referenced inventory key -> the dependencies on it."""
        found: dict[str, list[Dependency]] = {}
        for d in self.dependencies:
            found.setdefault(d.ref, []).append(d)
        return found

    def table(self, key: str) -> TableFacts | None:
        return self.data.tables.get(key)
