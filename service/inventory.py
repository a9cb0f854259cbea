"""The inventory: every user object of a database as (kind, name) -> normalised definition."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT = 1


@dataclass(frozen=True, slots=True)
class DbObject:
    """One user object; `name` is readable and stable: `public.find_route(integer, integer)`."""

    kind: str
    name: str
    definition: str

    @property
    def key(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.definition.encode()).hexdigest()


@dataclass(frozen=True)
class Inventory:
    """All objects keyed by `kind name`; plain data, no connection to anything."""

    objects: Mapping[str, DbObject] = field(default_factory=dict)

    @classmethod
    def of(cls, objects: Iterable[DbObject]) -> Inventory:
        by_key: dict[str, DbObject] = {}
        for obj in objects:
            if obj.key in by_key and by_key[obj.key].definition != obj.definition:
                # Two catalog rows with one name (should not happen): keep both definitions.
                obj = DbObject(
                    obj.kind, obj.name, by_key[obj.key].definition + "\n" + obj.definition
                )
            by_key[obj.key] = obj
        return cls(dict(sorted(by_key.items())))

    def __iter__(self) -> Iterator[DbObject]:
        return iter(self.objects.values())

    def __len__(self) -> int:
        return len(self.objects)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(o.kind for o in self).items()))

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "counts": self.counts(),
            "objects": [
                {
                    "kind": o.kind,
                    "name": o.name,
                    "fingerprint": o.fingerprint,
                    "definition": o.definition,
                }
                for o in self
            ],
        }
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Inventory:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a pg-schema-sync inventory (format {FORMAT!r})")
        return cls.of(DbObject(o["kind"], o["name"], o["definition"]) for o in doc["objects"])
