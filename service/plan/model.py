"""What a plan is made of: statements with what they risk, refusals, and the plan itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Hazard(StrEnum):
    """What a statement risks, in the one vocabulary of --allow-hazards and the JSON."""

    DELETES_DATA = "deletes_data"  # a dropped table or column, a type change that may truncate
    REWRITES_TABLE = "rewrites_table"  # every row written again, under its lock
    ACCESS_EXCLUSIVE_LOCK = "access_exclusive_lock"  # blocks reads and writes while it runs
    INDEX_BUILD = "index_build"  # a non-concurrent index build on an existing table
    # What a drift report calls breaking (compare/impact.py): a removed object or column, a
    # changed signature, a constraint or NOT NULL added, a retype, a privilege revoked.
    BREAKS_CLIENTS = "breaks_clients"
    NOT_TRANSACTIONAL = "not_transactional"  # runs outside the plan's transaction
    VALIDATES_CONSTRAINT = "validates_constraint"  # a full scan to prove a constraint


HAZARDS = tuple(h.value for h in Hazard)


class Change(StrEnum):
    CREATE = "create"
    ALTER = "alter"
    DROP = "drop"


class Part(StrEnum):
    """Where a statement runs: outside the transaction before it, inside, or after it."""

    BEFORE = "before"
    TRANSACTION = "transaction"
    AFTER = "after"


class Rank:
    """Tie-breaks between statements no dependency orders: drops first, then the creates
    and alterations in the order TO's pg_dump has them, then what must see them all."""

    DROP = 0
    NORMAL = 1
    LATE = 2


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a plan and everything said about it."""

    sql: str
    kind: str  # the inventory kind of the object it changes
    name: str  # the inventory name of that object
    change: Change
    hazards: frozenset[Hazard] = frozenset()
    lock: str = "none"  # the strongest table lock it takes, as PostgreSQL names it
    part: Part = Part.TRANSACTION
    note: str = ""  # said in the plan's comment (why it is planned this way)
    # Ordering, by pg_dump's dependencies: this statement removes the FROM state of these
    # entries (so it runs before whatever they depend on goes) and makes the TO state of
    # these (so it runs after whatever they depend on is there).
    from_entries: tuple[int, ...] = ()
    to_entries: tuple[int, ...] = ()
    needs: tuple[int, ...] = ()  # TO entries made before it, that it does not make itself
    rank: int = Rank.NORMAL
    position: int = 0  # tie-break within a rank (the entry's place in its dump)
    session: tuple[tuple[str, str], ...] = ()  # SET default_tablespace etc. it needs

    @property
    def object(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def transactional(self) -> bool:
        return self.part is Part.TRANSACTION

    def as_json(self) -> dict[str, Any]:
        return {
            "sql": self.sql,
            "object": self.name,
            "kind": self.kind,
            "change": self.change.value,
            "hazards": sorted(h.value for h in self.hazards),
            "transactional": self.transactional,
            "lock": self.lock,
        }


@dataclass(frozen=True)
class Refusal:
    """An object that cannot be planned safely, and why (one line for the user)."""

    kind: str
    name: str
    reason: str

    def line(self) -> str:
        return f"{self.kind} {self.name}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    """Statements in the order to run them; refusals mean there is no plan at all."""

    statements: tuple[Statement, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    # Tables whose columns the plan leaves in another order than TO's (added at the end):
    # verification compares their columns as a set, each column's definition exactly.
    column_order: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.statements)

    def part(self, part: Part) -> tuple[Statement, ...]:
        return tuple(s for s in self.statements if s.part is part)

    def hazards(self) -> frozenset[Hazard]:
        return frozenset(h for s in self.statements for h in s.hazards)
