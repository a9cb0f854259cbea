"""Pure: which removed object is an added one under another name.

A removed object and an added one of the same kind are one renamed object when the removed
definition, read with the renames found so far, equals the added one once each side's own
name is set aside: `ALTER TABLE a RENAME TO b`, `ALTER ... SET SCHEMA`, `ALTER SCHEMA
RENAME`. Names are replaced only where they are code (sqlnames.py), so a function
body, which a rename leaves as it was, must match as it is.

Renames are found in rounds: a table renamed together with the sequence its column default
names is found once the sequence is, and the other way round. In a round each side's names
of objects still unpaired read as one placeholder, so two objects that depend on each other
can pair in the same round. Every pair is then checked against all pairs found: the removed
definition, with every rename applied, must be the added one exactly. A pair that fails is
dropped (and the check repeated), so a near-miss stays removed + added; and where two
candidates match equally, nothing is paired: we never guess.

An object whose key changed only because of other renames (a trigger of a renamed table,
a function whose argument type was renamed, every table of a renamed schema) is paired too,
as one that follows: its own name did not change.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from service.compare.impact_relations import RELATION_KINDS
from service.compare.inventory import DbObject
from service.compare.levels import Impact
from service.compare.sqlnames import NameKey, Names, names_in, replace_names
from service.compare.sqltext import first_name, routine_name, split_qualified

_QUALIFIED = RELATION_KINDS | {
    "sequence",
    "type",
    "domain",
    "collation",
    "conversion",
    "statistics",
    "text search configuration",
    "text search dictionary",
    "text search parser",
    "text search template",
}
_ROUTINES = frozenset({"function", "procedure", "aggregate"})
_ON_TABLE = frozenset({"trigger", "policy", "rule"})
# What a rename of each kind breaks: a client names tables, functions, types... in its SQL;
# no client statement names an index, an extended statistics object, a trigger, a policy or a
# rule (only DDL does), so renaming one of those is cosmetic.
COSMETIC_RENAMES = frozenset({"index", "statistics", "trigger", "policy", "rule"})
MAX_ROUNDS = 20

_SELF = "\x00"  # the object's own name: NUL never occurs in a PostgreSQL text
_OTHER = "\x01"  # a name of an object not paired yet, on either side


def _referenced(obj: DbObject) -> list[NameKey]:
    """The names other definitions use for this object, as replace_names looks them up."""
    return list(_referenced_by(obj.kind, obj.name))


@functools.lru_cache(maxsize=65_536)
def _referenced_by(kind: str, name: str) -> tuple[NameKey, ...]:
    return tuple(_names_of(kind, name))


def _names_of(kind: str, name: str) -> list[NameKey]:
    if kind == "schema":
        return [("p", name), ("s", name)]
    if kind in _ROUTINES:
        return [("q", routine_name(name))]
    if kind == "index":
        return [("q", name), ("INDEX", split_qualified(name)[1])]
    if kind in _QUALIFIED:
        keys: list[NameKey] = [("q", name)]
        if kind in RELATION_KINDS:  # a view's query names columns `relation.column`
            keys.append(("p", split_qualified(name)[1]))
        return keys
    return []


def _own(obj: DbObject) -> list[NameKey]:
    """The names this object's own definition uses for itself."""
    if obj.kind in _ON_TABLE:
        bare, _ = first_name(obj.name)
        return [(obj.kind.upper(), bare)]
    return _referenced(obj)


def _texts(keys: Iterable[NameKey]) -> dict[str, str]:
    return {space: text for space, text in keys}


@dataclass(frozen=True)
class Pair:
    old: DbObject
    new: DbObject
    own: bool  # its own name changed; False: it only follows other renames
    follows: tuple[str, ...] = ()  # reasons: the renames its definition follows

    @property
    def impact(self) -> Impact:
        if self.own and self.new.kind not in COSMETIC_RENAMES:
            return Impact.BREAKING
        return Impact.COSMETIC

    @property
    def reasons(self) -> tuple[str, ...]:
        if self.own:  # what it follows besides is in the diff; the rename is the news
            return (f"{self.new.kind} {self.old.name} renamed to {self.new.name}",)
        return self.follows


@dataclass
class Renames:
    """The pairs found, and the old names -> new names they make (to read old texts)."""

    pairs: list[Pair] = field(default_factory=list)
    names: dict[NameKey, str] = field(default_factory=dict)
    origin: dict[NameKey, Pair] = field(default_factory=dict)
    sources: dict[str, frozenset[NameKey]] = field(default_factory=dict)  # by old key
    roots: dict[str, tuple[str, ...]] = field(default_factory=dict)  # follower -> its causes

    def read_old(
        self, text: str, skip: frozenset[NameKey] = frozenset()
    ) -> tuple[str, tuple[str, ...]]:
        """`text` (an old definition) with every rename applied, and the renames it follows."""
        if not self.names:
            return text, ()
        seen: set[NameKey] = set()
        read = replace_names(text, lambda k: None if k in skip else self.names.get(k), seen)
        return read, self.causes(seen)

    def causes(self, keys: Iterable[NameKey]) -> tuple[str, ...]:
        """The renames behind these names: a table that only moved with its renamed schema
        is not a cause; the schema is."""
        out: dict[str, None] = {}
        for key in sorted(keys):
            pair = self.origin.get(key)
            if pair is None:
                continue
            if pair.own:
                out[_follows(pair)] = None
            else:
                out.update(dict.fromkeys(self.roots.get(pair.old.key, ())))
        return tuple(out)

    def _find_roots(self) -> None:
        """For each pair that only follows, the own renames it follows, through any chain of
        followers (a view of a table of a renamed schema): one walk from each own rename
        over the followers that name it, so a chain of 10,000 costs 10,000 steps, not n^2."""
        followers: dict[str, list[Pair]] = defaultdict(list)  # old key -> pairs naming it
        for pair in self.pairs:
            for key in self.sources.get(pair.old.key, ()):
                named = self.origin.get(key)
                if named is not None and named.old.key != pair.old.key:
                    followers[named.old.key].append(pair)
        found: dict[str, dict[str, None]] = defaultdict(dict)
        for root in sorted((p for p in self.pairs if p.own), key=lambda p: p.old.key):
            reason = _follows(root)
            todo, seen = [root.old.key], {root.old.key}
            while todo:
                for pair in followers.get(todo.pop(), ()):
                    if pair.own or pair.old.key in seen:
                        continue
                    seen.add(pair.old.key)
                    found[pair.old.key][reason] = None
                    todo.append(pair.old.key)
        self.roots = {key: tuple(reasons) for key, reasons in found.items()}


def _follows(pair: Pair) -> str:
    return f"follows {pair.new.kind} {pair.old.name} renamed to {pair.new.name}"


def find_renames(removed: Sequence[DbObject], added: Sequence[DbObject]) -> Renames:
    found = Renames()
    if not removed or not added:
        return found
    read = {o.key: names_in(o.definition) for o in (*removed, *added)}  # once each
    old_left = {o.key: o for o in removed}
    new_left = {o.key: o for o in added}
    tentative: list[tuple[DbObject, DbObject]] = []
    for _ in range(MAX_ROUNDS):
        round_pairs = _round(old_left, new_left, _name_map(tentative), read)
        if not round_pairs:
            break
        for old, new in round_pairs:
            tentative.append((old, new))
            del old_left[old.key], new_left[new.key]
    while tentative:  # every pair must hold with all the others; drop the ones that do not
        names = _name_map(tentative)
        kept = [(o, n) for o, n in tentative if _explains(o, n, names, read[o.key])]
        if len(kept) == len(tentative):
            break
        tentative = kept
    names = _name_map(tentative)
    origin: dict[NameKey, Pair] = {}
    for old, new in tentative:
        own_keys = frozenset(_own(old))

        def others(k: NameKey, own: frozenset[NameKey] = own_keys) -> str | None:
            return None if k in own else names.get(k)

        mapped = replace_names(old.name, others)
        pair = Pair(old, new, own=mapped != new.name)
        found.pairs.append(pair)
        for key in _referenced(old):
            origin[key] = pair
    found.names, found.origin = names, origin
    for pair in found.pairs:  # the names each pair's definition holds of other renames
        seen: set[NameKey] = set()
        own = frozenset(_own(pair.old))

        def others_of(k: NameKey, own: frozenset[NameKey] = own) -> str | None:
            return None if k in own else names.get(k)

        read[pair.old.key].render(others_of, seen)
        found.sources[pair.old.key] = frozenset(seen)
    found._find_roots()
    found.pairs = [
        Pair(p.old, p.new, p.own, found.causes(found.sources[p.old.key])) for p in found.pairs
    ]
    return found


def _name_map(pairs: Iterable[tuple[DbObject, DbObject]]) -> dict[NameKey, str]:
    """Old name -> new name for every name a pair's object is referred to by."""
    out: dict[NameKey, str] = {}
    for old, new in pairs:
        new_texts = _texts(_referenced(new))
        for space, text in _referenced(old):
            if space in new_texts and new_texts[space] != text:
                out[(space, text)] = new_texts[space]
    return out


def _round(
    old_left: dict[str, DbObject],
    new_left: dict[str, DbObject],
    names: dict[NameKey, str],
    read: dict[str, Names],
) -> list[tuple[DbObject, DbObject]]:
    old_others = {k for o in old_left.values() for k in _referenced(o)}
    new_others = {k for o in new_left.values() for k in _referenced(o)}
    groups: dict[tuple[str, str], tuple[list[DbObject], list[DbObject]]] = defaultdict(
        lambda: ([], [])
    )
    for obj in old_left.values():
        own = frozenset(_own(obj))

        def old_name(k: NameKey, own: frozenset[NameKey] = own) -> str | None:
            if k in own:
                return _SELF
            return _OTHER if k in old_others else names.get(k)

        groups[(obj.kind, read[obj.key].render(old_name))][0].append(obj)
    for obj in new_left.values():
        own = frozenset(_own(obj))

        def new_name(k: NameKey, own: frozenset[NameKey] = own) -> str | None:
            return _SELF if k in own else _OTHER if k in new_others else None

        groups[(obj.kind, read[obj.key].render(new_name))][1].append(obj)
    out: list[tuple[DbObject, DbObject]] = []
    for olds, news in groups.values():
        if len(olds) == 1 and len(news) == 1:
            out.append((olds[0], news[0]))
        elif olds and news:  # alike: only a key that follows the renames tells them apart
            by_name = {n.name: n for n in news}
            for old in olds:
                mapped = replace_names(old.name, names.get)
                if mapped in by_name and mapped != old.name:
                    out.append((old, by_name.pop(mapped)))
    return out


def _explains(old: DbObject, new: DbObject, names: dict[NameKey, str], read: Names) -> bool:
    """Does `old`, read with every rename and its own new name, give exactly `new`?"""
    if len(_own(old)) != len(_own(new)):
        return False
    own = dict(zip(_own(old), (text for _, text in _own(new)), strict=True))
    return read.render(lambda k: own.get(k) or names.get(k)) == new.definition
