"""Pure: what one drifted object means to the clients of the database.

`classify(old, new)` takes the two inventory objects (None for the side where the object does
not exist) and returns an Assessment: the impact (breaking > behavioural > compatible >
cosmetic, the worst of its parts) and one short reason per part. No database is read: the
definitions (service/production/catalog_queries*.py) are parsed per kind. Where a change is
one no rule knows, it is called breaking: a CI gate on `--fail-on breaking` must never let an
unread change through.
"""

from __future__ import annotations

from collections.abc import Callable

from service.compare.impact_kinds import (
    Body,
    cast_is_implicit,
    cast_parts,
    default_privilege_parts,
    extension_parts,
    firing_parts,
    index_is_unique,
    index_parts,
    keyed_parts,
    policy_is_restrictive,
    policy_parts,
)
from service.compare.impact_relations import RELATION_KINDS, relation_parts
from service.compare.impact_routines import aggregate_parts, routine_parts
from service.compare.impact_types import domain_parts, sequence_parts, type_parts
from service.compare.inventory import DbObject
from service.compare.levels import Assessment, Impact, Part, assess
from service.compare.meta import shape, tail_parts

# Kinds no client names or sees: their objects come and go without a client noticing.
_UNSEEN = frozenset({"statistics"})
# Kinds that act on their own when something happens: adding or removing one changes what
# existing statements do, not whether they work.
_FIRING = frozenset({"trigger", "rule", "event trigger"})
# Kinds whose changes are behaviour (what runs, how it sorts or searches), line by line.
_BEHAVIOUR = frozenset(
    {
        "collation",
        "operator class",
        "operator family",
        "text search configuration",
        "text search dictionary",
        "text search parser",
        "text search template",
        "conversion",
        "access method",
        "language",
        "transform",
        "foreign data wrapper",
        "server",
        "user mapping",
        "publication",
        "subscription",
        "event trigger",
    }
)
_OPERATOR_PLANNER = {
    "RESTRICT": Impact.COSMETIC,  # selectivity estimators: the planner's guesses only
    "JOIN": Impact.COSMETIC,
}


def classify(old: DbObject | None, new: DbObject | None) -> Assessment:
    """The impact of going from `old` to `new` (either may be None: added, removed)."""
    if old is None and new is not None:
        return Assessment(*_added(new))
    if new is None and old is not None:
        impact, reason = _removed(old)
        return Assessment(impact, (reason,))
    assert old is not None and new is not None
    return assess(_changed(old, new), Part(Impact.BREAKING, "definition changed"))


# Kinds whose verdict on being added or removed depends on their body. Only these are read: a
# first sync lists all 37,000 objects of a 10,000-table schema as added.
_READ_WHEN_ADDED = frozenset({"policy", "index", "cast", "default privileges"})


def _added(obj: DbObject) -> tuple[Impact, tuple[str, ...]]:
    kind = obj.kind
    body = shape(obj).body if kind in _READ_WHEN_ADDED else ()
    if kind in _UNSEEN:
        return Impact.COSMETIC, (f"{kind} added",)
    if kind in _FIRING:
        return Impact.BEHAVIOURAL, (f"{kind} added",)
    if kind == "policy":
        if policy_is_restrictive(body):
            return Impact.BREAKING, ("restrictive policy added: fewer rows pass",)
        return Impact.COMPATIBLE, ("permissive policy added",)
    if kind == "index" and index_is_unique(body):
        return Impact.BREAKING, ("unique index added: duplicate values are refused",)
    if kind == "cast" and cast_is_implicit(body):
        return Impact.BEHAVIOURAL, ("implicit cast added: calls can resolve differently",)
    if kind == "security label":
        return Impact.BREAKING, ("security label added: access under its provider can change",)
    if kind == "default privileges":
        found = assess(default_privilege_parts(("",), body), Part(Impact.COMPATIBLE, "added"))
        return found.impact, found.reasons
    return Impact.COMPATIBLE, (f"{kind} added",)


def _removed(obj: DbObject) -> tuple[Impact, str]:
    kind = obj.kind
    body = shape(obj).body if kind in _READ_WHEN_ADDED else ()
    if kind in _UNSEEN:
        return Impact.COSMETIC, f"{kind} removed"
    if kind in _FIRING:
        return Impact.BEHAVIOURAL, f"{kind} removed"
    if kind == "policy":
        if policy_is_restrictive(body):
            return Impact.COMPATIBLE, "restrictive policy removed"
        return Impact.BREAKING, "permissive policy removed: rows it let through are refused"
    if kind == "index":
        if index_is_unique(body):
            return Impact.BREAKING, "unique index removed: ON CONFLICT relying on it fails"
        return Impact.BEHAVIOURAL, "index removed: queries that used it get slower"
    if kind == "default privileges":
        found = assess(default_privilege_parts(body, ("",)), Part(Impact.COMPATIBLE, "removed"))
        return found.impact, "; ".join(found.reasons)
    if kind == "security label":
        return Impact.BREAKING, "security label removed: access under its provider can change"
    return Impact.BREAKING, f"{kind} removed"


def _changed(old: DbObject, new: DbObject) -> list[Part]:
    kind = new.kind
    was, now = shape(old), shape(new)
    if kind in RELATION_KINDS:
        return relation_parts(old, new, was, now)  # its tail holds column privileges too
    rule = _RULES.get(kind)
    if rule is None:  # a kind nobody taught us: name the change, assume the worst
        parts = [Part(Impact.BREAKING, "definition changed")] if was.body != now.body else []
    elif was.body != now.body:
        parts = rule(was.body, now.body)
    else:
        parts = []
    return parts + tail_parts(kind, new.name, was, now)


def _keyed(
    kind: str, impact_of: dict[str, Impact], default: Impact
) -> Callable[[Body, Body], list[Part]]:
    def parts(old: Body, new: Body) -> list[Part]:
        return keyed_parts(old, new, impact_of, default, default, f"{kind} definition changed")

    return parts


def _always(impact: Impact, words: str) -> Callable[[Body, Body], list[Part]]:
    return lambda old, new: [Part(impact, words)]


_RULES: dict[str, Callable[[Body, Body], list[Part]]] = {
    "function": lambda old, new: routine_parts("function", old, new),
    "procedure": lambda old, new: routine_parts("procedure", old, new),
    "aggregate": aggregate_parts,
    "type": type_parts,
    "domain": domain_parts,
    "sequence": sequence_parts,
    "index": index_parts,
    "trigger": lambda old, new: firing_parts("trigger", old, new),
    "rule": lambda old, new: firing_parts("rule", old, new),
    "policy": policy_parts,
    "extension": extension_parts,
    "cast": cast_parts,
    "default privileges": default_privilege_parts,
    "operator": _keyed("operator", _OPERATOR_PLANNER, Impact.BEHAVIOURAL),
    "statistics": _always(Impact.COSMETIC, "statistics definition changed"),
    "security label": _always(
        Impact.BREAKING, "security label changed: access under its provider can change"
    ),
    "schema": _always(Impact.BREAKING, "definition changed"),
    **{kind: _keyed(kind, {}, Impact.BEHAVIOURAL) for kind in _BEHAVIOUR},
    "event trigger": lambda old, new: firing_parts("event trigger", old, new),
}
