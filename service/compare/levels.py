"""Pure: the four impact levels of a drift, and how parts of one change add up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Impact(StrEnum):
    """What a change can do to a client that works against the old schema, worst first."""

    BREAKING = "breaking"  # it can fail against the new one
    BEHAVIOURAL = "behavioural"  # same interface, different behaviour
    COMPATIBLE = "compatible"  # it keeps working
    COSMETIC = "cosmetic"  # nothing a client can observe

    @property
    def rank(self) -> int:
        """0 for breaking, 3 for cosmetic: sorts the worst first."""
        return ORDER.index(self)

    def at_least(self, floor: Impact) -> bool:
        return self.rank <= floor.rank


ORDER: tuple[Impact, ...] = (
    Impact.BREAKING,
    Impact.BEHAVIOURAL,
    Impact.COMPATIBLE,
    Impact.COSMETIC,
)


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a change: its impact and a short sentence a person reads without the diff.

    Reasons name objects, columns, roles, types and settings, never values, expressions or
    bodies: they go where DDL does not (Sentry, chat webhooks), and a default or a SET value
    can hold a secret.
    """

    impact: Impact
    reason: str


@dataclass(frozen=True, slots=True)
class Assessment:
    impact: Impact
    reasons: tuple[str, ...]


def assess(parts: Iterable[Part], otherwise: Part) -> Assessment:
    """The worst part's impact; the reasons worst first, each once. `otherwise` stands in
    when no part was recognised (the definitions differ in a way no rule knows)."""
    found = list(parts) or [otherwise]
    found.sort(key=lambda p: p.impact.rank)  # stable: parts keep their order within a level
    reasons = tuple(dict.fromkeys(p.reason for p in found))
    return Assessment(found[0].impact, reasons)
