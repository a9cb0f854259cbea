"""The inventory: every user object of a database as (kind, name) -> normalised definition."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

FORMAT = 1
# An owner as the catalog reader appends it to a definition (production/catalog.py `_object`):
# its own line after the body, before the grants and the comment; the role quoted if need be.
_OWNER_ROLE = re.compile(r'"(?:[^"]|"")*"|[^\s"]+')
_AFTER_OWNER = ("\nGRANT ", "\nREVOKE ", "\nCOMMENT ON ")

# What json.dumps(..., ensure_ascii=False) writes for a str (the C one where there is one).
_encode_string: Callable[[str], str] = json.encoder.encode_basestring


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

    def without_owners(self) -> Inventory:
        """The objects as read with owners left out (verify --no-owners compares these)."""
        return Inventory.of(DbObject(o.kind, o.name, _without_owner(o)) for o in self)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(o.kind for o in self).items()))

    def to_json(self) -> str:
        """`json.dumps(doc, indent=1, ensure_ascii=False)` of the document, plus a newline.

        Written out by hand around the C string encoder: with indent set, json.dumps uses
        its pure-Python encoder, ~1.5 s for the 37,000 objects of a 10,000-table schema.
        """
        buf = io.BytesIO()
        self.write_json(buf)
        return buf.getvalue().decode()

    def write_json(self, fh: BinaryIO) -> None:
        """Write exactly `to_json()`'s bytes, one object at a time: at 10,000 tables the
        whole text is ~30 MB, and building it (then encoding it) held that several times."""
        head = json.dumps({"format": FORMAT, "counts": self.counts()}, indent=1, ensure_ascii=False)
        if not self.objects:
            fh.write((head[:-2] + ',\n "objects": []\n}\n').encode())
            return
        fh.write((head[:-2] + ',\n "objects": [\n').encode())
        quote = _encode_string
        sep = ""
        for o in self:
            fh.write(
                (
                    f'{sep}  {{\n   "kind": {quote(o.kind)},\n   "name": {quote(o.name)},\n'
                    f'   "fingerprint": "{o.fingerprint}",\n'
                    f'   "definition": {quote(o.definition)}\n  }}'
                ).encode()
            )
            sep = ",\n"
        fh.write(b"\n ]\n}\n")

    @classmethod
    def from_json(cls, text: str) -> Inventory:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a pg-schema-sync inventory (format {FORMAT!r})")
        return cls.of(DbObject(o["kind"], o["name"], o["definition"]) for o in doc["objects"])


def _without_owner(obj: DbObject) -> str:
    marker = f"\nALTER {obj.kind.upper()} {obj.name} OWNER TO "
    text = obj.definition
    at = text.find(marker)
    while at >= 0:
        role = _OWNER_ROLE.match(text, at + len(marker))
        if role is not None:
            rest = text[role.end() :]
            if not rest or rest.startswith(_AFTER_OWNER):
                return text[:at] + rest
        at = text.find(marker, at + 1)
    return text
