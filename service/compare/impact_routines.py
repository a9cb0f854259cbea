"""Pure: what a change to a function, procedure or aggregate means.

Functions and procedures are keyed by their identity argument types, so a changed signature
is one removed and one added object; what is left to change here is what pg_get_functiondef
prints around the same signature: argument names, modes and defaults, the return type, the
language, the attributes line (volatility, PARALLEL, STRICT, SECURITY DEFINER, LEAKPROOF,
COST, ROWS, SUPPORT), SET lines and the body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from service.compare.levels import Impact, Part
from service.compare.sqltext import enclosed, find_top, first_name, mask, split_top

_ATTRIBUTES = re.compile(
    r" (WINDOW|IMMUTABLE|STABLE|PARALLEL (?:SAFE|RESTRICTED)|STRICT|SECURITY DEFINER|LEAKPROOF"
    r"|COST \S+|ROWS \S+|SUPPORT \S+)"
)


@dataclass
class Routine:
    arguments: list[str] = field(default_factory=list)
    returns: str | None = None
    language: str | None = None
    transform: str | None = None
    attributes: dict[str, str] = field(default_factory=lambda: _attributes(""))
    settings: dict[str, str] = field(default_factory=dict)
    body: str = ""
    odd: list[str] = field(default_factory=list)


def parse_routine(body: tuple[str, ...]) -> Routine | None:
    if not body:
        return None
    header = body[0]
    for prefix in ("CREATE OR REPLACE FUNCTION ", "CREATE OR REPLACE PROCEDURE "):
        if header.startswith(prefix):
            break
    else:
        return None
    open_at = mask(header).find("(", len(prefix))  # the name's quotes are masked
    if open_at < 0:
        return None
    close = enclosed(header, open_at)
    routine = Routine(arguments=split_top(header[open_at + 1 : close - 1]))
    if header[close:].strip():
        routine.odd.append(header[close:])
    at = 1
    while at < len(body) and body[at].startswith(" "):
        line = body[at]
        if line.startswith(" RETURNS "):
            routine.returns = line[len(" RETURNS ") :]
        elif line.startswith(" LANGUAGE "):
            routine.language = line[len(" LANGUAGE ") :]
        elif line.startswith(" TRANSFORM "):
            routine.transform = line
        elif line.startswith(" SET "):
            key, value = first_name(line[len(" SET ") :])
            routine.settings[key] = value
        else:
            routine.attributes = _attributes(line)
            if _ATTRIBUTES.sub("", line).strip():
                routine.odd.append(line)
        at += 1
    routine.body = "\n".join(body[at:])
    return routine


def _attributes(line: str) -> dict[str, str]:
    out = {"volatility": "VOLATILE", "PARALLEL": "UNSAFE"}
    for word in _ATTRIBUTES.findall(line):
        if word in ("IMMUTABLE", "STABLE"):
            out["volatility"] = word
        elif word.startswith(("PARALLEL ", "COST ", "ROWS ", "SUPPORT ")):
            key, _, value = word.partition(" ")
            out[key] = value
        else:
            out[word] = "yes"
    return out


def routine_parts(kind: str, old_body: tuple[str, ...], new_body: tuple[str, ...]) -> list[Part]:
    before, after = parse_routine(old_body), parse_routine(new_body)
    if before is None or after is None:
        return [Part(Impact.BREAKING, "definition changed")]
    parts = _argument_parts(before.arguments, after.arguments)
    if before.returns != after.returns:
        parts.append(Part(Impact.BREAKING, f"return type: {before.returns} -> {after.returns}"))
    if before.language != after.language:
        parts.append(Part(Impact.BEHAVIOURAL, f"language {before.language} -> {after.language}"))
    if before.transform != after.transform:
        parts.append(Part(Impact.BEHAVIOURAL, "TRANSFORM changed"))
    parts += _attribute_parts(before.attributes, after.attributes)
    for key in sorted(before.settings.keys() | after.settings.keys()):
        was, now = before.settings.get(key), after.settings.get(key)
        if was != now:  # the setting's name only: a value can hold a secret
            change = "added" if was is None else "removed" if now is None else "changed"
            parts.append(Part(Impact.BEHAVIOURAL, f"SET {key} {change}"))
    if before.body != after.body:
        parts.append(Part(Impact.BEHAVIOURAL, f"{kind} body changed"))
    if before.odd != after.odd:
        parts.append(Part(Impact.BREAKING, "definition changed"))
    return parts


def _argument_parts(old: list[str], new: list[str]) -> list[Part]:
    if len(old) != len(new):  # the identity types are the same: OUT arguments came or went
        return [Part(Impact.BREAKING, "output arguments changed")]
    parts: list[Part] = []
    for n, (was, now) in enumerate(zip(old, new, strict=True), 1):
        if was == now:
            continue
        (was_arg, was_default), (now_arg, now_default) = _default(was), _default(now)
        if was_arg != now_arg:  # a name (named notation), a mode or an OUT type
            parts.append(Part(Impact.BREAKING, f"argument {n}: {was_arg} -> {now_arg}"))
        if was_default != now_default:
            if was_default is None:
                parts.append(Part(Impact.COMPATIBLE, f"argument {n} ({now_arg}): default added"))
            elif now_default is None:
                parts.append(
                    Part(
                        Impact.BREAKING,
                        f"argument {n} ({now_arg}): default dropped: calls that leave it out fail",
                    )
                )
            else:
                parts.append(Part(Impact.BEHAVIOURAL, f"argument {n} ({now_arg}): default changed"))
    return parts


def _default(argument: str) -> tuple[str, str | None]:
    at = find_top(argument, " DEFAULT ")
    if at < 0:
        return argument, None
    return argument[:at], argument[at + len(" DEFAULT ") :]


_ATTRIBUTE_WORDS = {
    "STRICT": "STRICT",
    "SECURITY DEFINER": "SECURITY DEFINER",
    "LEAKPROOF": "LEAKPROOF",
    "WINDOW": "WINDOW",
}


def _attribute_parts(old: dict[str, str], new: dict[str, str]) -> list[Part]:
    parts: list[Part] = []
    for key in dict.fromkeys([*old, *new]):
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        if key in _ATTRIBUTE_WORDS:
            parts.append(Part(Impact.BEHAVIOURAL, f"{key} {'added' if now else 'removed'}"))
        elif key == "volatility":
            parts.append(Part(Impact.BEHAVIOURAL, f"volatility {was} -> {now}"))
        else:
            parts.append(
                Part(Impact.BEHAVIOURAL, f"{key} {was or 'default'} -> {now or 'default'}")
            )
    return parts


# -- aggregates ----------------------------------------------------------------------------------


def _keyed(body: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in body[1:]:
        key, sep, value = line.strip().partition(" = ")
        out[key] = value if sep else "yes"
    return out


def aggregate_parts(old_body: tuple[str, ...], new_body: tuple[str, ...]) -> list[Part]:
    before, after = _keyed(old_body), _keyed(new_body)
    parts: list[Part] = []
    if old_body[:1] != new_body[:1]:
        parts.append(Part(Impact.BREAKING, "definition changed"))
    final = "FINALFUNC" in before or "FINALFUNC" in after
    for key in dict.fromkeys([*before, *after]):
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        change = "added" if was is None else "removed" if now is None else "changed"
        if key == "ARGUMENTS":
            parts.append(Part(Impact.BREAKING, "argument names or kinds changed"))
        elif key == "FINALFUNC" or (key == "STYPE" and not final):
            # the final function (or the state type, without one) is the result type
            parts.append(Part(Impact.BREAKING, f"{key} {change}: the result type can change"))
        else:
            parts.append(Part(Impact.BEHAVIOURAL, f"{key} {change}"))
    return parts
