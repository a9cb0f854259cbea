"""Pure: what a change to a table's or a domain's constraints means.

Constraints are lines `    CONSTRAINT name definition` (pg_get_constraintdef), matched by
name; one gone and one come with the same definition is a rename.
"""

from __future__ import annotations

from service.compare.levels import Impact, Part
from service.compare.sqltext import mask

_TYPES = (
    ("PRIMARY KEY", "PRIMARY KEY"),
    ("UNIQUE", "UNIQUE constraint"),
    ("CHECK", "CHECK constraint"),
    ("FOREIGN KEY", "FOREIGN KEY"),
    ("EXCLUDE", "EXCLUDE constraint"),
    ("NOT NULL", "NOT NULL constraint"),
)
# Clients name these in ON CONFLICT (the columns, or ON CONSTRAINT name): dropping or renaming
# one fails upserts that rely on it.
_ARBITERS = ("PRIMARY KEY", "UNIQUE", "EXCLUDE")
_FLAGS = (" NOT VALID", " NO INHERIT", " NOT ENFORCED", " INITIALLY DEFERRED", " DEFERRABLE")


def constraint_type(definition: str) -> tuple[str, str]:
    """(type keyword, label for reasons) of a constraint definition."""
    for word, label in _TYPES:
        if definition.startswith(word):
            return word, label
    return "", "constraint"


def _split_flags(definition: str) -> tuple[str, set[str]]:
    flags: set[str] = set()
    found = True
    while found:
        found = False
        for flag in _FLAGS:
            if definition.endswith(flag) and mask(definition).endswith(flag):
                definition = definition[: -len(flag)]
                flags.add(flag.strip())
                found = True
    return definition, flags


def constraint_changes(
    old: dict[str, str], new: dict[str, str]
) -> tuple[list[Part], dict[str, str]]:
    parts: list[Part] = []
    gone = [n for n in old if n not in new]
    came = [n for n in new if n not in old]
    renamed: dict[str, str] = {}
    gone_by: dict[str, list[str]] = {}
    came_by: dict[str, list[str]] = {}
    for name in gone:
        gone_by.setdefault(old[name], []).append(name)
    for name in came:
        came_by.setdefault(new[name], []).append(name)
    for definition, names in gone_by.items():  # one gone, one come, the same definition
        same = came_by.get(definition, [])
        if len(names) == 1 and len(same) == 1:
            renamed[names[0]] = same[0]
    for old_name, new_name in renamed.items():
        word, label = constraint_type(old[old_name])
        impact = Impact.BREAKING if word in _ARBITERS else Impact.COSMETIC
        parts.append(Part(impact, f"{label} {old_name} renamed to {new_name}"))
    for name in gone:
        if name in renamed:
            continue
        word, label = constraint_type(old[name])
        if word in _ARBITERS:
            parts.append(
                Part(Impact.BREAKING, f"{label} {name} dropped: ON CONFLICT relying on it fails")
            )
        else:
            parts.append(Part(Impact.COMPATIBLE, f"{label} {name} dropped"))
    for name in came:
        if name not in renamed.values():
            parts.append(Part(Impact.BREAKING, f"{constraint_type(new[name])[1]} {name} added"))
    for name in old.keys() & new.keys():
        if old[name] != new[name]:
            parts += _constraint_changed(name, old[name], new[name])
    return parts, renamed


def _constraint_changed(name: str, old: str, new: str) -> list[Part]:
    word, label = constraint_type(new)
    (old_core, old_flags), (new_core, new_flags) = _split_flags(old), _split_flags(new)
    what = f"{label} {name}"
    if old_core != new_core:
        if word == "FOREIGN KEY" and constraint_type(old)[0] == word:
            actions = _fk_action_parts(what, old_core, new_core)
            if actions is not None:
                return actions + _flag_parts(what, old_flags, new_flags)
        return [Part(Impact.BREAKING, f"{what} changed"), *_flag_parts(what, old_flags, new_flags)]
    return _flag_parts(what, old_flags, new_flags)


def _flag_parts(what: str, old: set[str], new: set[str]) -> list[Part]:
    parts: list[Part] = []
    rules = {
        # (flag, gained): (impact, words)
        ("NOT VALID", False): (Impact.COSMETIC, "validated"),
        ("NOT VALID", True): (Impact.COMPATIBLE, "no longer validated"),
        ("DEFERRABLE", True): (Impact.COMPATIBLE, "now DEFERRABLE"),
        ("DEFERRABLE", False): (Impact.BREAKING, "no longer DEFERRABLE"),
        ("INITIALLY DEFERRED", True): (Impact.BEHAVIOURAL, "now INITIALLY DEFERRED"),
        ("INITIALLY DEFERRED", False): (Impact.BREAKING, "no longer INITIALLY DEFERRED"),
        ("NO INHERIT", True): (Impact.BEHAVIOURAL, "now NO INHERIT"),
        ("NO INHERIT", False): (Impact.BREAKING, "now inherited by child tables"),
        ("NOT ENFORCED", True): (Impact.COMPATIBLE, "no longer enforced"),
        ("NOT ENFORCED", False): (Impact.BREAKING, "now enforced"),
    }
    for flag in sorted(old ^ new):
        impact, words = rules[(flag, flag in new)]
        parts.append(Part(impact, f"{what} {words}"))
    return parts


_CASCADING = ("CASCADE", "SET NULL", "SET DEFAULT")


def _fk_action_parts(what: str, old: str, new: str) -> list[Part] | None:
    """Parts when only ON UPDATE / ON DELETE differ; None when the key itself changed."""
    (old_ref, old_actions), (new_ref, new_actions) = _fk_actions(old), _fk_actions(new)
    if old_ref != new_ref:
        return None
    parts: list[Part] = []
    for event in ("ON UPDATE", "ON DELETE"):
        was, now = old_actions.get(event, "NO ACTION"), new_actions.get(event, "NO ACTION")
        if was == now:
            continue
        words = f"{what}: {event} {was} -> {now}"
        if was.startswith(_CASCADING) and not now.startswith(_CASCADING):
            parts.append(Part(Impact.BREAKING, words))  # what used to cascade is now refused
        else:
            parts.append(Part(Impact.BEHAVIOURAL, words))
    return parts


def _fk_actions(core: str) -> tuple[str, dict[str, str]]:
    masked = mask(core)
    cuts = sorted(i for e in (" ON UPDATE ", " ON DELETE ") if (i := masked.rfind(e)) >= 0)
    if not cuts:
        return core, {}
    actions: dict[str, str] = {}
    for n, at in enumerate(cuts):
        end = cuts[n + 1] if n + 1 < len(cuts) else len(core)
        event, action = core[at + 1 : at + 10], core[at + 11 : end]
        actions[event] = action
    return core[: cuts[0]], actions
