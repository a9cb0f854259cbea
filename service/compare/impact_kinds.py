"""Pure: what a change means for indexes, triggers, rules, policies, extensions, casts,
default privileges, and the kinds read line by line (operators, text search, servers, ...);
relations, routines and types have modules of their own.

Each function takes the old and the new body lines (meta.Shape.body) and returns the parts
it recognises; the lines each kind has are in service/production/catalog_queries*.py.
"""

from __future__ import annotations

import re

from service.compare.levels import Impact, Part
from service.compare.meta import parse_privileges
from service.compare.sqltext import enclosed, find_top, first_name, split_top

Body = tuple[str, ...]


def change_word(was: object, now: object) -> str:
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
            parts.append(Part(impact_of.get(key, default), f"{key} {change_word(was, now)}"))
    return parts


# -- indexes -------------------------------------------------------------------------------------


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
