"""Pure: what a change means for every kind that is not a relation or a routine.

Each function takes the old and the new body lines (meta.Shape.body) and returns the parts
it recognises; the lines each kind has are in service/production/catalog_queries*.py.
"""

from __future__ import annotations

import re

from service.compare.casts import type_change
from service.compare.impact_constraints import constraint_changes
from service.compare.levels import Impact, Part
from service.compare.meta import parse_privileges
from service.compare.sqltext import enclosed, find_top, first_name, split_top

Body = tuple[str, ...]


def _change(was: object, now: object) -> str:
    return "added" if was is None else "removed" if now is None else "changed"


def line_key(line: str) -> str:
    """What a body line is about, without its value: `SFUNC`, `OPTIONS`, `OPERATOR 3`,
    `TABLE fam.t`, `ADD MAPPING FOR word`."""
    text = line.strip()
    if text.startswith("ADD MAPPING FOR "):  # a text search configuration's token type
        return "mapping for " + text[len("ADD MAPPING FOR ") :].partition(" WITH ")[0]
    for separator in (" = ", " WITH "):
        at = find_top(text, separator)
        if at > 0:
            return text[:at]
    words: list[str] = []
    rest = text
    while rest:
        word, rest = first_name(rest) if rest[0] == '"' else rest.partition(" ")[::2]
        if re.fullmatch(r"[A-Z][A-Z_]*|\d+", word):
            words.append(word)
            continue
        if words and words[-1] in ("TABLE", "SCHEMA", "FOR", "TYPE"):
            words.append(word)  # the name the line is about
        break
    return " ".join(words) or text.partition(" ")[0]


def keyed_parts(
    old: Body,
    new: Body,
    impact_of: dict[str, Impact],
    default: Impact,
    header: Impact = Impact.BREAKING,
    header_words: str = "definition changed",
) -> list[Part]:
    """Line by line, matched by line_key; the header line (CREATE ...) first."""
    parts: list[Part] = []
    if old[:1] != new[:1]:
        parts.append(Part(header, header_words))
    before = {line_key(ln): ln for ln in old[1:]}
    after = {line_key(ln): ln for ln in new[1:]}
    for key in dict.fromkeys([*before, *after]):
        was, now = before.get(key), after.get(key)
        if was != now:
            parts.append(Part(impact_of.get(key, default), f"{key} {_change(was, now)}"))
    return parts


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
            parts.append(Part(Impact.BEHAVIOURAL, f"default {_change(old_default, new_default)}"))
    if ("NOT NULL" in before) != ("NOT NULL" in after):
        if "NOT NULL" in after:
            parts.append(Part(Impact.BREAKING, "NOT NULL added"))
        else:
            parts.append(Part(Impact.COMPATIBLE, "NOT NULL dropped"))
    parts += constraint_changes(constraints[0], constraints[1])[0]
    return parts


# -- sequences and indexes -----------------------------------------------------------------------

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


def index_is_unique(body: Body) -> bool:
    return body[0].startswith("CREATE UNIQUE INDEX ")


def _without_options(line: str) -> tuple[str, str]:
    at = find_top(line, " WITH (")
    if at < 0:
        return line, ""
    end = enclosed(line, at + len(" WITH "))
    return line[:at] + line[end:], line[at:end]


def index_parts(old: Body, new: Body) -> list[Part]:
    parts: list[Part] = []
    was_unique, now_unique = index_is_unique(old), index_is_unique(new)
    if was_unique != now_unique:
        if now_unique:
            parts.append(Part(Impact.BREAKING, "now UNIQUE: duplicate values are refused"))
        else:
            parts.append(Part(Impact.BREAKING, "no longer UNIQUE: ON CONFLICT relying on it fails"))
    (old_core, old_options), (new_core, new_options) = (
        _without_options(old[0].replace("CREATE UNIQUE INDEX ", "CREATE INDEX ", 1)),
        _without_options(new[0].replace("CREATE UNIQUE INDEX ", "CREATE INDEX ", 1)),
    )
    if old_core != new_core:
        if was_unique or now_unique:
            parts.append(Part(Impact.BREAKING, "unique index definition changed"))
        else:
            parts.append(Part(Impact.BEHAVIOURAL, "index definition changed: query plans change"))
    if old_options != new_options:
        parts.append(Part(Impact.COSMETIC, "storage parameters changed"))
    changed = set(old[1:]) ^ set(new[1:])  # TABLESPACE, PARTITION OF, statistics targets
    for word in sorted({ln.strip().partition(" ")[0] for ln in changed}):
        what = {
            "TABLESPACE": "tablespace",
            "PARTITION": "parent index",
            "ALTER": "statistics target",
        }
        parts.append(Part(Impact.COSMETIC, f"{what.get(word, 'index settings')} changed"))
    return parts


# -- triggers, rules, policies -------------------------------------------------------------------

_STATES = {None: "enabled", "DISABLE": "disabled", "ENABLE REPLICA": "enabled for replicas only",
           "ENABLE ALWAYS": "enabled always"}  # fmt: skip


def firing_parts(kind: str, old: Body, new: Body) -> list[Part]:
    """Triggers and rules: the definition, then an optional state line."""

    def split(body: Body) -> tuple[Body, str | None]:
        if len(body) > 1 and body[-1].strip() in _STATES:
            return body[:-1], body[-1].strip()
        return body, None

    (old_text, old_state), (new_text, new_state) = split(old), split(new)
    parts: list[Part] = []
    if old_text != new_text:
        parts.append(Part(Impact.BEHAVIOURAL, f"{kind} changed"))
    if old_state != new_state:
        parts.append(Part(Impact.BEHAVIOURAL, f"{kind} {_STATES[new_state]}"))
    return parts


_COMMANDS = {"ALL": {"SELECT", "INSERT", "UPDATE", "DELETE"}}


def _policy(body: Body) -> dict[str, str]:
    out = {}
    for line in body[1:]:
        text = line.strip()
        for word in ("AS ", "FOR ", "TO ", "USING ", "WITH CHECK "):
            if text.startswith(word):
                out[word.strip()] = text[len(word) :]
                break
    return out


def policy_is_restrictive(body: Body) -> bool:
    return _policy(body).get("AS") == "RESTRICTIVE"


def policy_parts(old: Body, new: Body) -> list[Part]:
    before, after = _policy(old), _policy(new)
    parts: list[Part] = []
    restrictive = after.get("AS") == "RESTRICTIVE"
    if before.get("AS") != after.get("AS"):
        if restrictive:
            parts.append(Part(Impact.BREAKING, "now RESTRICTIVE"))
        else:
            parts.append(Part(Impact.COMPATIBLE, "now PERMISSIVE"))

    def wider(was: set[str], now: set[str], everyone: str) -> bool | None:
        """True: covers more than before; False: less; None: some of each."""
        if everyone in now and everyone not in was:
            return True
        if everyone in was and everyone not in now:
            return False
        if was <= now:
            return True
        return False if now <= was else None

    for key, everyone in (("FOR", "ALL"), ("TO", "PUBLIC")):
        was_text, now_text = before.get(key, ""), after.get(key, "")
        if was_text == now_text:
            continue
        was = (
            _COMMANDS.get(was_text, set(split_top(was_text)))
            if key == "FOR"
            else set(split_top(was_text))
        )
        now = (
            _COMMANDS.get(now_text, set(split_top(now_text)))
            if key == "FOR"
            else set(split_top(now_text))
        )
        grows = wider(was, now, everyone)
        # a permissive policy lets more through when it covers more, a restrictive one less
        looser = grows if not restrictive else (None if grows is None else not grows)
        impact = Impact.COMPATIBLE if looser else Impact.BREAKING
        parts.append(Part(impact, f"{key} {was_text} -> {now_text}"))
    for key in ("USING", "WITH CHECK"):
        was_expr, now_expr = before.get(key), after.get(key)
        if was_expr == now_expr:
            continue
        if now_expr in ("(true)", None if not restrictive else "(true)"):
            parts.append(Part(Impact.COMPATIBLE, f"{key} expression now lets every row through"))
        else:
            parts.append(Part(Impact.BREAKING, f"{key} expression changed: rows allowed differ"))
    if old[:1] != new[:1]:
        parts.append(Part(Impact.BREAKING, "definition changed"))
    return parts


# -- the rest ------------------------------------------------------------------------------------

_EXTENSION = re.compile(r"^CREATE EXTENSION (.+) WITH SCHEMA (.+) VERSION (.+)$", re.S)


def extension_parts(old: Body, new: Body) -> list[Part]:
    was, now = _EXTENSION.match(old[0]), _EXTENSION.match(new[0])
    if was is None or now is None:
        return [Part(Impact.BREAKING, "definition changed")]
    parts = []
    if was.group(2) != now.group(2):
        parts.append(Part(Impact.BREAKING, f"moved to schema {now.group(2)}"))
    if was.group(3) != now.group(3):
        parts.append(Part(Impact.BEHAVIOURAL, f"version {was.group(3)} -> {now.group(3)}"))
    return parts


_CONTEXTS = {" AS IMPLICIT": 2, " AS ASSIGNMENT": 1}


def _cast(line: str) -> tuple[str, int]:
    for suffix, level in _CONTEXTS.items():
        if line.endswith(suffix):
            return line[: -len(suffix)], level
    return line, 0


def cast_is_implicit(body: Body) -> bool:
    return _cast(body[0])[1] == 2


def cast_parts(old: Body, new: Body) -> list[Part]:
    (was_method, was), (now_method, now) = _cast(old[0]), _cast(new[0])
    names = ("explicit", "assignment", "implicit")
    parts = []
    if was != now:
        if now < was:
            parts.append(Part(Impact.BREAKING, f"context {names[was]} -> {names[now]}"))
        elif now == 2:  # an implicit cast can change which function a call resolves to
            parts.append(Part(Impact.BEHAVIOURAL, f"context {names[was]} -> {names[now]}"))
        else:
            parts.append(Part(Impact.COMPATIBLE, f"context {names[was]} -> {names[now]}"))
    if was_method != now_method:
        parts.append(Part(Impact.BEHAVIOURAL, "cast method changed"))
    return parts


def default_privilege_parts(old: Body, new: Body) -> list[Part]:
    """Privileges new objects will get: existing clients keep what they have."""

    def grants(body: Body) -> dict[tuple[str, str, str], str]:
        return {
            (g.verb, g.privilege, g.grantee): g.target
            for line in body[1:]
            for g in parse_privileges(line)
        }

    before, after = grants(old), grants(new)
    parts: list[Part] = []
    for key in sorted(before.keys() | after.keys()):
        if (key in before) == (key in after):
            continue
        verb, privilege, grantee = key
        objects = (after.get(key) or before.get(key) or "").lower()
        gives = (verb == "GRANT") == (key in after)
        if gives:
            parts.append(
                Part(Impact.COMPATIBLE, f"{privilege} on new {objects} granted to {grantee}")
            )
        else:
            parts.append(
                Part(
                    Impact.BEHAVIOURAL,
                    f"{privilege} on new {objects} no longer granted to {grantee}",
                )
            )
    return parts
