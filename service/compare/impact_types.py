"""Pure: what a change to a type, a domain or a sequence means.

Enums are lists of labels, composite types lists of attributes, ranges and base types
`    KEY = value` lines; a domain is its base type, collation, default, NOT NULL and
constraints; a sequence one option per line (catalog_queries.py, TYPES and SEQUENCES).
"""

from __future__ import annotations

from service.compare.casts import type_change
from service.compare.impact_constraints import constraint_changes
from service.compare.impact_kinds import Body, change_word, keyed_parts
from service.compare.levels import Impact, Part
from service.compare.sqltext import first_name

# -- types and domains ---------------------------------------------------------------------------


def type_parts(old: Body, new: Body) -> list[Part]:
    head_old, head_new = old[0], new[0]
    if head_old.endswith(" AS ENUM (") and head_new.endswith(" AS ENUM ("):
        return _enum_parts(list(old[1:-1]), list(new[1:-1]))
    if head_old.endswith(" AS (") and head_new.endswith(" AS ("):
        return _attribute_parts(old[1:-1], new[1:-1])
    if head_old.endswith(" AS RANGE (") and head_new.endswith(" AS RANGE ("):
        return keyed_parts(old, new, {"SUBTYPE": Impact.BREAKING}, Impact.BEHAVIOURAL)
    if head_old == head_new and head_old.endswith(" ("):  # a base type
        return keyed_parts(old, new, {}, Impact.BEHAVIOURAL)
    return [Part(Impact.BREAKING, "type redefined")]


def _enum_parts(old: list[str], new: list[str]) -> list[Part]:
    labels = [ln.strip() for ln in old], [ln.strip() for ln in new]
    before, after = labels
    parts: list[Part] = []
    renamed: dict[str, str] = {}
    if len(before) == len(after):  # ALTER TYPE ... RENAME VALUE keeps the label's place
        renamed = {a: b for a, b in zip(before, after, strict=True) if a != b}
        if any(a in after or b in before for a, b in renamed.items()):
            renamed = {}
    for a, b in renamed.items():
        parts.append(Part(Impact.BREAKING, f"enum label {a} renamed to {b}"))
    before = [renamed.get(x, x) for x in before]
    parts += [Part(Impact.BREAKING, f"enum label {x} removed") for x in before if x not in after]
    parts += [Part(Impact.COMPATIBLE, f"enum label {x} added") for x in after if x not in before]
    if [x for x in before if x in after] != [x for x in after if x in before]:
        parts.append(Part(Impact.BEHAVIOURAL, "enum labels reordered: they sort differently"))
    return parts


def _attribute_parts(old: Body, new: Body) -> list[Part]:
    def read(lines: Body) -> list[tuple[str, str]]:
        return [first_name(ln.strip()) for ln in lines]

    before, after = read(old), read(new)
    old_names, new_names = dict(before), dict(after)
    parts: list[Part] = []
    renamed: dict[str, str] = {}
    for i, (name, text) in enumerate(before):
        if name not in new_names and i < len(after):
            other, other_text = after[i]
            if other not in old_names and other_text == text:
                renamed[name] = other
                parts.append(Part(Impact.BREAKING, f"attribute {name} renamed to {other}"))
    for name, text in before:
        name = renamed.get(name, name)
        if name not in new_names:
            parts.append(Part(Impact.BREAKING, f"attribute {name} dropped"))
        elif new_names[name] != text:
            impact = type_change(text, new_names[name]) or Impact.BREAKING
            parts.append(Part(impact, f"attribute {name}: {text} -> {new_names[name]}"))
    kept = {renamed.get(n, n) for n in old_names}
    for name, _ in after:
        if name not in kept:  # a row value written without it no longer fits the type
            parts.append(Part(Impact.BREAKING, f"attribute {name} added"))
    return parts


def domain_parts(old: Body, new: Body) -> list[Part]:
    parts: list[Part] = []
    head = "CREATE DOMAIN "
    if old[0] != new[0]:
        was, now = old[0].partition(" AS ")[2], new[0].partition(" AS ")[2]
        if old[0].startswith(head) and new[0].startswith(head):
            parts.append(
                Part(type_change(was, now) or Impact.BREAKING, f"base type: {was} -> {now}")
            )
        else:
            parts.append(Part(Impact.BREAKING, "definition changed"))
    facts: list[dict[str, str]] = []
    constraints: list[dict[str, str]] = []
    for body in (old, new):
        found, checks = {}, {}
        for line in body[1:]:
            text = line.strip()
            if text.startswith("CONSTRAINT "):
                name, definition = first_name(text[len("CONSTRAINT ") :])
                checks[name] = definition
            else:
                word, _, rest = text.partition(" ")
                found["NOT NULL" if text == "NOT NULL" else word] = rest
        facts.append(found)
        constraints.append(checks)
    before, after = facts
    if before.get("COLLATE") != after.get("COLLATE"):
        parts.append(Part(Impact.BEHAVIOURAL, "collation changed"))
    if before.get("DEFAULT") != after.get("DEFAULT"):
        old_default, new_default = before.get("DEFAULT"), after.get("DEFAULT")
        if new_default is None and "NOT NULL" in after:
            parts.append(
                Part(Impact.BREAKING, "default dropped from a NOT NULL domain: inserts fail")
            )
        else:
            parts.append(
                Part(Impact.BEHAVIOURAL, f"default {change_word(old_default, new_default)}")
            )
    if ("NOT NULL" in before) != ("NOT NULL" in after):
        if "NOT NULL" in after:
            parts.append(Part(Impact.BREAKING, "NOT NULL added"))
        else:
            parts.append(Part(Impact.COMPATIBLE, "NOT NULL dropped"))
    parts += constraint_changes(constraints[0], constraints[1])[0]
    return parts


# -- sequences -----------------------------------------------------------------------------------

_SEQUENCE = ("AS", "START WITH", "INCREMENT BY", "MINVALUE", "MAXVALUE", "CACHE", "OWNED BY")


def _sequence(body: Body) -> dict[str, str]:
    out: dict[str, str] = {"UNLOGGED": "yes"} if body[0].startswith("CREATE UNLOGGED ") else {}
    for line in body[1:]:
        text = line.strip()
        if text in ("CYCLE", "NO CYCLE"):
            out["CYCLE"] = text
            continue
        key = next((k for k in _SEQUENCE if text.startswith(k + " ")), text)
        out[key] = text[len(key) + 1 :]
    return out


def sequence_parts(old: Body, new: Body) -> list[Part]:
    before, after = _sequence(old), _sequence(new)
    parts: list[Part] = []
    for key in dict.fromkeys([*before, *after]):
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        if key == "CACHE":
            parts.append(Part(Impact.COSMETIC, f"CACHE {was} -> {now}"))
        elif key == "OWNED BY":
            parts.append(Part(Impact.BEHAVIOURAL, f"OWNED BY {was or 'none'} -> {now or 'none'}"))
        elif key in ("CYCLE", "UNLOGGED"):
            parts.append(
                Part(Impact.BEHAVIOURAL, f"{now or 'logged' if key == 'UNLOGGED' else now}")
            )
        elif key in _SEQUENCE:  # numbers and a type name: no secret in them
            parts.append(Part(Impact.BEHAVIOURAL, f"{key} {was} -> {now}"))
        else:
            parts.append(Part(Impact.BREAKING, "definition changed"))
    return parts
