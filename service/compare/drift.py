"""Pure drift decisions: two inventories in, a list of named changes with diffs out."""

from __future__ import annotations

import difflib
import hashlib
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from service.compare.inventory import DbObject, Inventory
from service.compare.levels import ORDER, Assessment, Impact

if TYPE_CHECKING:
    # The classification and rename matching are imported where a comparison runs: a
    # skipped cycle (`check` when the probe found nothing changed) needs only Drift.
    from service.compare.renames import Renames


def _odd_line_break(text: str) -> bool:
    """Has a line break str.splitlines knows besides \\n (difflib's callers split with it)."""
    # Nine substring tests are ~10x faster than one regex character class here.
    return (
        "\r" in text
        or "\x0b" in text
        or "\x0c" in text
        or "\x1c" in text
        or "\x1d" in text
        or "\x1e" in text
        or "\x85" in text
        or "\u2028" in text
        or "\u2029" in text
    )


class Change(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    RENAMED = "renamed"


@dataclass(frozen=True, slots=True)
class DriftItem:
    kind: str
    name: str  # for a rename, the new name
    change: Change
    diff: str  # unified diff of the definition (old -> new); the whole text for added/removed
    # What it means to clients (service/compare/impact.py). An item made without a verdict
    # counts as breaking: nothing unjudged slips under `check --fail-on breaking`.
    impact: Impact = Impact.BREAKING
    reasons: tuple[str, ...] = ()
    from_name: str | None = None  # a rename's old name

    def as_json(self, with_diff: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "change": self.change.value,
            "impact": self.impact.value,
            "reasons": list(self.reasons),
        }
        if self.from_name is not None:
            doc["from"] = self.from_name
        if with_diff:
            doc["diff"] = self.diff
        return doc

    def what(self) -> str:
        """`table fam.paths (from fam.trails)`: the object, raw names."""
        head = f"{self.kind} {self.name}"
        return head + (f" (from {self.from_name})" if self.from_name is not None else "")

    def line(self) -> str:
        """`renamed table fam.paths (from fam.trails)`: what changed, in words, raw names."""
        return f"{self.change.value} {self.what()}"

    def notes(self) -> tuple[str, ...]:
        """The reasons that say more than line() does: not `table added`, nor a rename's."""
        said = {
            f"{self.kind} {self.change.value}",
            f"{self.kind} {self.from_name} renamed to {self.name}",
        }
        return tuple(r for r in self.reasons if r not in said)


def file_item(name: str, change: Change, diff: str) -> DriftItem:
    """A schema file whose bytes differ though no object did (edited by hand, or written by
    another pg_dump): what installs from it may differ from production, so look (behavioural)."""
    reason = "the file differs from a fresh export though no object changed"
    return DriftItem("file", name, change, diff, Impact.BEHAVIOURAL, (reason,))


@dataclass(frozen=True)
class Drift:
    items: tuple[DriftItem, ...]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        """Items by change: added, removed, changed, renamed."""
        return {c.value: n for c, n in Counter(i.change for i in self.items).items()}

    def impacts(self) -> dict[str, int]:
        """Items by impact, worst first, levels without items left out."""
        found = Counter(i.impact for i in self.items)
        return {level.value: found[level] for level in ORDER if found[level]}

    @property
    def impact(self) -> Impact | None:
        """The worst item's impact; None without drift."""
        return min((i.impact for i in self.items), key=lambda i: i.rank, default=None)

    def worst_first(self) -> tuple[DriftItem, ...]:
        """The items, breaking first; in key order within a level."""
        return tuple(sorted(self.items, key=lambda i: i.impact.rank))

    def at_least(self, floor: Impact) -> bool:
        """Is there an item at `floor` or worse?"""
        return any(i.impact.at_least(floor) for i in self.items)

    def impact_counts(self) -> str:
        """`2 breaking, 1 behavioural, 2 compatible`."""
        return ", ".join(f"{n} {level}" for level, n in self.impacts().items())

    def headline(self) -> str:
        """`5 changes (2 breaking, 1 behavioural, 2 compatible)` or `no drift`."""
        if not self.items:
            return "no drift"
        noun = "change" if len(self.items) == 1 else "changes"
        return f"{len(self.items)} {noun} ({self.impact_counts()})"

    def fingerprint(self) -> str:
        """Stable hash of what drifted: the same unresolved drift always hashes the same."""
        h = hashlib.sha256()
        for item in self.items:
            diff = _as_a_b(item.diff)
            h.update(f"{item.change}\0{item.kind}\0{item.name}\0{diff}\n".encode())
        return h.hexdigest()[:32]

    def as_json(self, with_diff: bool = False) -> dict[str, Any]:
        return {
            "drift": bool(self),
            "headline": self.headline(),
            "impact": self.impacts(),
            "changes": [i.as_json(with_diff) for i in self.worst_first()],
        }


def _as_a_b(diff: str) -> str:
    """The diff with its header's sides named a/ and b/: which side is which is for readers,
    not part of what drifted. Fingerprints then do not move when the labels do (they were a/
    and b/ before the labels said files/ and production/, so a drift already alerted on is
    still the same drift after an upgrade)."""
    head = diff.split("\n", 2)
    if len(head) == 3 and head[0].startswith("--- ") and head[1].startswith("+++ "):
        old, new = head[0][4:].partition("/"), head[1][4:].partition("/")
        if old[1] and new[1]:
            return f"--- a/{old[2]}\n+++ b/{new[2]}\n{head[2]}"
    return diff


# Which side of a diff is which, for readers: `---`/`+++` lines say files/... and production/...
# rather than git's a/ and b/, which tell nobody which one is production.
FILES_VS_PRODUCTION = ("files", "production")
Sides = tuple[str, str]


def compare(old: Inventory, new: Inventory, diffs: bool = True, sides: Sides = ("a", "b")) -> Drift:
    """What changed going from `old` to `new`, keyed by object; no I/O, no database.

    A removed object and an added one that are one object renamed make one `renamed` item
    (renames.py); each item says what it means to clients (impact.py).
    `diffs=False` leaves each item's diff empty: a first sync lists every object as added and
    nobody reads those diffs, which at 10,000 tables would cost tens of MB.
    """
    from service.compare.impact import classify
    from service.compare.impact_relations import column_renames
    from service.compare.renames import find_renames

    changes = _changes(old, new)
    renames = find_renames(
        [o for _, o, c in changes if c is Change.REMOVED],
        [o for _, o, c in changes if c is Change.ADDED],
    )
    renamed_from = {p.new.key: p for p in renames.pairs}
    gone = {p.old.key for p in renames.pairs}
    columns = {
        obj.name: found
        for key, obj, change in changes
        if change is Change.CHANGED
        and obj.kind in ("table", "foreign table")
        and (found := column_renames(old.objects[key], obj))
    }
    items: list[DriftItem] = []
    for key, obj, change in changes:
        if key in gone:
            continue  # told once, as its new self
        pair = renamed_from.get(key)
        if pair is not None:
            diff = text_diff(pair.old.definition, obj.definition, pair.old.key, sides, key)
            items.append(
                DriftItem(
                    obj.kind,
                    obj.name,
                    Change.RENAMED,
                    diff if diffs else "",
                    pair.impact,
                    pair.reasons,
                    pair.old.name,
                )
            )
            continue
        if not diffs:
            diff = ""
        elif change is Change.ADDED:
            diff = whole_diff(obj.definition, key, "+", sides)
        elif change is Change.REMOVED:
            diff = whole_diff(obj.definition, key, "-", sides)
        else:
            diff = text_diff(old.objects[key].definition, obj.definition, key, sides)
        if change is Change.CHANGED:
            verdict = _changed(old.objects[key], obj, renames, columns)
        elif change is Change.ADDED:
            verdict = classify(None, obj)
        else:
            verdict = classify(obj, None)
        items.append(DriftItem(obj.kind, obj.name, change, diff, verdict.impact, verdict.reasons))
    return Drift(tuple(items))


def _changed(
    before: DbObject, after: DbObject, renames: Renames, columns: dict[str, dict[str, str]]
) -> Assessment:
    """A changed object, read with the renames applied: an index whose table was renamed
    (or whose column was) changed only in the name it holds, which is cosmetic; what else
    changed is judged as is."""
    from service.compare.impact import classify
    from service.compare.sqltext import rename_words

    text, follows = renames.read_old(before.definition)
    table = _attached_to(after)
    if table in columns:
        text = rename_words(text, columns[table])
        follows += tuple(
            f"follows column {a} of {table} renamed to {b}" for a, b in columns[table].items()
        )
    if not follows:
        return classify(before, after)
    if text == after.definition:
        return Assessment(Impact.COSMETIC, follows)
    verdict = classify(DbObject(before.kind, before.name, text), after)
    return Assessment(verdict.impact, verdict.reasons + follows)


def _attached_to(obj: DbObject) -> str | None:
    """The table an index, trigger, rule or policy belongs to (its columns are bare names),
    or whose column owns a sequence."""
    if obj.kind in ("trigger", "rule", "policy"):
        return obj.name.rpartition(" ON ")[2]
    if obj.kind == "sequence" and "\n    OWNED BY " in obj.definition:
        from service.compare.sqltext import name_parts

        owner = obj.definition.partition("\n    OWNED BY ")[2].partition("\n")[0]
        parts = name_parts(owner)
        return f"{parts[0]}.{parts[1]}" if len(parts) == 3 else None
    if obj.kind == "index":
        head = obj.definition.partition("\n")[0]
        on = head.partition(" ON ")[2].removeprefix("ONLY ")
        return on.partition(" USING ")[0] or None
    return None


def text_diff(
    old: str, new: str, label: str, sides: Sides = ("a", "b"), new_label: str | None = None
) -> str:
    """Unified diff of two texts, labelled SIDE/LABEL (a/ and b/ unless told which is which);
    a renamed object's new side is labelled with its new key."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{sides[0]}/{label}",
        tofile=f"{sides[1]}/{new_label or label}",
        n=3,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def whole_diff(text: str, label: str, sign: str = "+", sides: Sides = ("a", "b")) -> str:
    """text_diff("", text, label) for `+`, text_diff(text, "", label) for `-`, without difflib.

    A first sync adds every object: difflib's matcher per object was most of compare()'s time.
    """
    if not text:
        return ""
    if _odd_line_break(text):  # lines as str.splitlines cuts them, like difflib's input
        lines = text.splitlines(keepends=True)
        count = len(lines)
        body = "".join(sign + ln if ln.endswith("\n") else sign + ln + "\n" for ln in lines)
    else:  # the usual case, only \n: one replace, no per-line Python
        count = text.count("\n") + (not text.endswith("\n"))
        body = sign + text.replace("\n", "\n" + sign)
        body = body[: -len(sign)] if text.endswith("\n") else body + "\n"
    span = "1" if count == 1 else f"1,{count}"
    hunk = f"@@ -0,0 +{span} @@\n" if sign == "+" else f"@@ -{span} +0,0 @@\n"
    head = f"--- {sides[0]}/{label}\n+++ {sides[1]}/{label}\n"
    return head + hunk + body


def _changes(old: Inventory, new: Inventory) -> list[tuple[str, DbObject, Change]]:
    """(key, object, change) in key order; for a removed object, its old version."""
    out: list[tuple[str, DbObject, Change]] = []
    for key in sorted(old.objects.keys() | new.objects.keys()):
        before, after = old.objects.get(key), new.objects.get(key)
        if after is not None and before is None:
            out.append((key, after, Change.ADDED))
        elif before is not None and after is None:
            out.append((key, before, Change.REMOVED))
        elif before is not None and after is not None and before.definition != after.definition:
            out.append((key, after, Change.CHANGED))
    return out
