"""The planner's working state: both sides, what is decided so far, and the one way every
builder makes a statement (so each carries its object, risk, part and dependency ties)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from service.plan import hazards
from service.plan.entries import Entry
from service.plan.facts import TableFacts
from service.plan.model import Change, Hazard, Part, Rank, Refusal, Statement
from service.plan.sides import Side
from service.production.catalog import CatalogOptions


@dataclass(frozen=True)
class Environment:
    """What the planner knows beyond the two sides' catalogs, all read beforehand."""

    # How a value of one type becomes another, as FROM's server (else TO's) says: 'i', 'a',
    # 'e' or None (catalog read by run.py for each column type change).
    casts: Mapping[tuple[str, str], str | None] = field(default_factory=dict)
    # (extension, from version, to version) -> FROM's server has an update path
    update_paths: Mapping[tuple[str, str, str], bool] = field(default_factory=dict)
    # Generic options (`key=value`, as the catalog keeps them) of foreign data wrappers,
    # servers and user mappings, by inventory key: FROM's and TO's. TO's user mappings carry
    # their passwords (a mapping needs it); nothing else is read for them.
    old_options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    new_options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    concurrently: bool = False  # indexes built and dropped CONCURRENTLY (outside the transaction)
    catalog: CatalogOptions = field(default_factory=CatalogOptions)


class Recreate(Exception):
    """A builder's answer: this change has no statement in place; drop and create it."""

    def __init__(self, why: str = "") -> None:
        super().__init__(why)
        self.why = why


class Refuse(Exception):
    """A builder's answer: this change cannot be planned safely."""


@dataclass
class Ctx:
    old: Side
    new: Side
    env: Environment
    refusals: list[Refusal] = field(default_factory=list)
    recreate: dict[str, str] = field(default_factory=dict)  # key -> why
    in_place: dict[str, list[Statement]] = field(default_factory=dict)
    extra: list[Statement] = field(default_factory=list)  # detached parts and the like
    column_order: set[str] = field(default_factory=set)
    # Columns whose FROM dependants cannot stay: (table key, attnum) dropped or retyped.
    broken: set[tuple[str, int]] = field(default_factory=set)
    dropped: set[tuple[str, int]] = field(default_factory=set)  # columns dropped, of those
    # Comment targets (`COLUMN t.c`, `CONSTRAINT c ON t`) that go with a dropped part.
    gone_targets: set[str] = field(default_factory=set)
    # Table parts the expansion takes off and puts back: (table key, part catalog row).
    detached: set[tuple[str, tuple[int, int]]] = field(default_factory=set)
    needs_tables: set[str] = field(default_factory=set)  # facts asked for but not read

    removed: set[str] = field(init=False)  # in FROM only
    added: set[str] = field(init=False)  # in TO only

    def __post_init__(self) -> None:
        self.removed = set(self.old.rows.keys() - self.new.rows.keys())
        self.added = set(self.new.rows.keys() - self.old.rows.keys())

    def refuse(self, key: str, reason: str) -> None:
        kind, name = _split(key)
        self.refusals.append(Refusal(kind, name, reason))

    def main_entry(self, side: Side, key: str) -> Entry | None:
        """The entry of the object's own catalog row (TABLE for a table), else its first."""
        entries = side.entries_of.get(key, ())
        row = side.rows.get(key)
        if row is not None:
            for e in entries:
                if e.catalog == (row.classid, row.objid):
                    return e
        return entries[0] if entries else None

    def facts(self, side: Side, key: str) -> TableFacts | None:
        found = side.table(key)
        if found is None:
            self.needs_tables.add(key)
        return found

    def statement(
        self,
        key: str,
        sql: str,
        change: Change,
        risk: hazards.Risk = (frozenset(), hazards.NONE),
        *,
        old: Iterable[Entry | None] | None = None,
        new: Iterable[Entry | None] | None = None,
        part: Part = Part.TRANSACTION,
        rank: int | None = None,
        note: str = "",
        session: tuple[tuple[str, str], ...] = (),
        needs: Iterable[Entry | None] = (),
        replaces: bool = False,
    ) -> Statement:
        """A statement on `key`. `old`/`new`: the FROM entries whose state it removes and the
        TO entries whose state it makes. By default a drop removes its object's FROM state; a
        change makes its TO state, and removes the FROM state only where it `replaces` a
        definition that may use what the plan drops (a view's query, a default): tied to both
        sides, two changes of objects that depend on each other could never be ordered."""
        kind, name = _split(key)
        if old is None:
            keep = change is Change.DROP or (change is Change.ALTER and replaces)
            old = [self.main_entry(self.old, key)] if keep else []
        if new is None:
            new = [self.main_entry(self.new, key)] if change is not Change.DROP else []
        old_e = [e for e in old if e is not None]
        new_e = [e for e in new if e is not None]
        if rank is None:
            rank = Rank.DROP if change is Change.DROP else Rank.NORMAL
        if new_e:
            position = max(e.position for e in new_e)
        elif old_e:
            position = -max(e.position for e in old_e)
        else:
            position = 0
        hazard_set, lock = risk
        if part is not Part.TRANSACTION:
            hazard_set = hazard_set | {Hazard.NOT_TRANSACTIONAL}
        return Statement(
            sql=sql.strip().removesuffix(";").rstrip(),
            kind=kind,
            name=name,
            change=change,
            hazards=hazard_set,
            lock=lock,
            part=part,
            note=note,
            from_entries=tuple(e.dump_id for e in old_e),
            to_entries=tuple(e.dump_id for e in new_e),
            needs=tuple(e.dump_id for e in needs if e is not None),
            rank=rank,
            position=position,
            session=session,
        )


def _split(key: str) -> tuple[str, str]:
    """`materialized view fam.x` -> ("materialized view", "fam.x"): kinds have spaces too."""
    for kind in _KINDS:
        if key.startswith(kind + " "):
            return kind, key[len(kind) + 1 :]
    kind, _, name = key.partition(" ")
    return kind, name


_KINDS = sorted(
    [
        "materialized view",
        "foreign table",
        "operator class",
        "operator family",
        "text search configuration",
        "text search dictionary",
        "text search parser",
        "text search template",
        "default privileges",
        "security label",
        "event trigger",
        "foreign data wrapper",
        "access method",
        "user mapping",
    ],
    key=len,
    reverse=True,
)


def split_key(key: str) -> tuple[str, str]:
    return _split(key)
