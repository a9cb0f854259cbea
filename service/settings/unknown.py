"""SCHEMA_SYNC_* variables that name no setting: a typo would otherwise be silently ignored.

The environment and the .env file are shared with other tools, so an unknown variable is a
warning at start (one line naming it and the nearest setting), never an error; a key of the
config file, which is ours alone, is an error (messages.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from service.settings.messages import ENV_PREFIX, nearest
from service.settings.where import dotenv_lines

# Read by the tool itself, not a field of the settings.
OTHER_VARIABLES = frozenset({ENV_PREFIX + "CONFIG"})


@dataclass(frozen=True)
class UnknownVariable:
    name: str
    source: str  # "environment" or ".env:LINE"
    nearest: str | None  # the nearest valid variable, if one is close


def unknown_variables(
    fields: Iterable[str], environ: Mapping[str, str], dotenv: Path | None = Path(".env")
) -> list[UnknownVariable]:
    """Each SCHEMA_SYNC_* variable of the environment and the .env file that sets nothing."""
    known = {ENV_PREFIX + f.upper() for f in fields} | OTHER_VARIABLES
    suffixes = [k.removeprefix(ENV_PREFIX) for k in known]
    found: list[UnknownVariable] = []
    sources: list[tuple[str, Iterable[str]]] = [("environment", environ)]
    at = dotenv_lines(dotenv) if dotenv is not None else {}
    sources.append((str(dotenv), at))
    for source, names in sources:
        for name in sorted(names):
            upper = name.upper()
            if not upper.startswith(ENV_PREFIX):
                continue
            # SCHEMA_SYNC_TARGETS__0__NAME: a nested part of a known setting.
            if upper.split("__", 1)[0] in known:
                continue
            guess = nearest(upper.removeprefix(ENV_PREFIX).lower(), (s.lower() for s in suffixes))
            where = f"{source}:{at[upper]}" if source != "environment" else source
            found.append(
                UnknownVariable(name, where, ENV_PREFIX + guess.upper() if guess else None)
            )
    return found
