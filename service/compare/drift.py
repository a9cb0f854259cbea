"""Pure drift decisions: two inventories in, a list of named changes with diffs out."""

from __future__ import annotations

import difflib
import hashlib
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.compare.inventory import DbObject, Inventory


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


@dataclass(frozen=True, slots=True)
class DriftItem:
    kind: str
    name: str
    change: Change
    diff: str  # unified diff of the definition (old -> new); the whole text for added/removed

    def as_json(self, with_diff: bool = False) -> dict[str, str]:
        doc = {"kind": self.kind, "name": self.name, "change": self.change.value}
        if with_diff:
            doc["diff"] = self.diff
        return doc


@dataclass(frozen=True)
class Drift:
    items: tuple[DriftItem, ...]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        return {c.value: n for c, n in Counter(i.change for i in self.items).items()}

    def headline(self) -> str:
        """`3 changes (1 added, 2 changed)` or `no drift`."""
        if not self.items:
            return "no drift"
        counts = ", ".join(f"{n} {c}" for c, n in sorted(self.counts().items()))
        noun = "change" if len(self.items) == 1 else "changes"
        return f"{len(self.items)} {noun} ({counts})"

    def fingerprint(self) -> str:
        """Stable hash of what drifted: the same unresolved drift always hashes the same."""
        h = hashlib.sha256()
        for item in self.items:
            diff = _as_a_b(item.diff)
            h.update(f"{item.change}\0{item.kind}\0{item.name}\0{diff}\n".encode())
        return h.hexdigest()[:32]

    def as_json(self, with_diff: bool = False) -> dict[str, Any]:
        return {"drift": bool(self), "changes": [i.as_json(with_diff) for i in self.items]}


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

    `diffs=False` leaves each item's diff empty: a first sync lists every object as added and
    nobody reads those diffs, which at 10,000 tables would cost tens of MB.
    """
    items: list[DriftItem] = []
    for key, obj, change in _changes(old, new):
        if not diffs:
            diff = ""
        elif change is Change.ADDED:
            diff = whole_diff(obj.definition, key, "+", sides)
        elif change is Change.REMOVED:
            diff = whole_diff(obj.definition, key, "-", sides)
        else:
            diff = text_diff(old.objects[key].definition, obj.definition, key, sides)
        items.append(DriftItem(obj.kind, obj.name, change, diff))
    return Drift(tuple(items))


def text_diff(old: str, new: str, label: str, sides: Sides = ("a", "b")) -> str:
    """Unified diff of two texts, labelled SIDE/LABEL (a/ and b/ unless told which is which)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{sides[0]}/{label}",
        tofile=f"{sides[1]}/{label}",
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
