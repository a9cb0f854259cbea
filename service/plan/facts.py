"""A table's facts one by one (plan/queries.py reads them), for ALTER TABLE statements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    num: int
    name: str
    type: str  # format_type: `character varying(10)`, `fam.mood`
    collation: str | None  # only where it is not the type's own
    default_oid: int | None  # the pg_attrdef row (a default or a generation expression)
    expression: str | None  # the default, or the generation expression
    generated: str  # '' plain, 's' stored, 'v' virtual (18)
    not_null: bool
    identity: str  # '' none, 'a' always, 'd' by default
    storage: str  # p plain, e external, m main, x extended
    type_storage: str  # the type's own (what the column has unless set)
    compression: str | None  # p (pglz), l (lz4), or None: the server's default
    statistics: int | None  # None: the default target
    options: tuple[str, ...]  # attoptions, `n_distinct=5`
    fdw_options: tuple[str, ...]
    local: bool  # declared here (not only inherited from a parent)
    inherited: int  # how many parents it comes from
    identity_sequence: str | None
    identity_options: str | None
    identity_type: str | None

    @classmethod
    def of(cls, r: Any) -> Column:
        return cls(
            r["num"],
            r["name"],
            r["type"],
            r["collation"],
            r["default_oid"],
            r["expression"],
            r["generated"] or "",
            r["not_null"],
            r["identity"] or "",
            r["storage"],
            r["type_storage"],
            r["compression"],
            r["statistics"],
            tuple(r["options"]),
            tuple(r["fdw_options"]),
            r["local"],
            r["inherited"],
            r["identity_sequence"],
            r["identity_options"],
            r["identity_type"],
        )

    @property
    def default(self) -> str | None:
        return self.expression if not self.generated else None


@dataclass(frozen=True)
class Constraint:
    oid: int
    name: str
    type: str  # c check, f foreign key, p primary key, u unique, x exclusion, n not null (18)
    definition: str  # pg_get_constraintdef: `CHECK ((x > 0)) NOT VALID`
    validated: bool
    local: bool
    inherited: int
    cloned: bool  # made on a partition by its parent's constraint
    deferrable: bool
    deferred: bool
    no_inherit: bool
    has_index: bool

    @classmethod
    def of(cls, r: Any) -> Constraint:
        return cls(
            r["oid"],
            r["name"],
            r["type"],
            r["definition"],
            r["validated"],
            r["local"],
            r["inherited"],
            r["cloned"],
            r["deferrable"],
            r["deferred"],
            r["no_inherit"],
            r["has_index"],
        )

    @property
    def from_parent(self) -> bool:
        """Made by a parent's constraint, not declared here: the parent's change brings it."""
        return self.cloned or (self.inherited > 0 and not self.local)


@dataclass(frozen=True)
class TableFacts:
    oid: int
    relkind: str  # r, p, f
    persistence: str  # p permanent, u unlogged
    options: tuple[str, ...]
    toast_options: tuple[str, ...]
    tablespace: str | None
    access_method: str | None
    rls: bool
    force_rls: bool
    replica_identity: str  # d, n, f, i
    replica_index: str | None
    cluster_index: str | None
    is_partition: bool
    bound: str | None
    partition_key: str | None
    parents: tuple[str, ...]
    of_type: str | None
    server: str | None
    server_options: tuple[str, ...]
    columns: tuple[Column, ...]
    constraints: tuple[Constraint, ...]

    @classmethod
    def of(
        cls, r: Any, columns: tuple[Column, ...], constraints: tuple[Constraint, ...]
    ) -> TableFacts:
        return cls(
            r["oid"],
            r["relkind"],
            r["persistence"],
            tuple(r["options"]),
            tuple(r["toast_options"]),
            r["tablespace"],
            r["access_method"],
            r["rls"],
            r["force_rls"],
            r["replica_identity"],
            r["replica_index"],
            r["cluster_index"],
            r["is_partition"],
            r["bound"],
            r["partition_key"],
            tuple(r["parents"]),
            r["of_type"],
            r["server"],
            tuple(r["server_options"]),
            columns,
            constraints,
        )

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def constraint(self, name: str) -> Constraint | None:
        return next((c for c in self.constraints if c.name == name), None)


def special_not_null(facts: TableFacts, relname: str, column: str) -> Constraint | None:
    """The column's NOT NULL constraint (PostgreSQL 18) where it is more than the column's
    plain NOT NULL: another name than SET NOT NULL gives it, NOT VALID, or NO INHERIT."""
    for c in facts.constraints:
        if c.type == "n" and c.local and not_null_column(c) == column:
            plain = c.name == f"{relname}_{column}_not_null" and c.validated and not c.no_inherit
            return None if plain else c
    return None


def not_null_column(c: Constraint) -> str:
    """The column of a NOT NULL constraint (`NOT NULL "Col" NOT VALID` -> `Col`)."""
    rest = c.definition[len("NOT NULL ") :]
    if rest.startswith('"'):
        end = 1
        while True:
            end = rest.index('"', end)
            if rest.startswith('""', end):
                end += 2
                continue
            return rest[1:end].replace('""', '"')
    return rest.split(" ", 1)[0]
