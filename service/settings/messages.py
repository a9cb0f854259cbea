"""The one-line messages of invalid settings: what, where it came from, what to do.

Kept apart from the model so they can be read (and tested) without building it; the model
passes its field names in. An unknown name gets the nearest valid one and a pointer to
`pg-schema-sync config --example`, which prints every setting with its description.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from service.settings.where import toml_line

ENV_PREFIX = "SCHEMA_SYNC_"
EXAMPLE_HINT = "`pg-schema-sync config --example` lists every setting"
SECRET_NAMES = {
    "password",
    "dsn",
    "sentry_dsn",
    "verify_dsn",
    "git_repository",
    "webhooks",
    "status_token",
    "public_url",  # not secret, but refused when it holds a password: never echo it
}
JSON_EXAMPLES = {"webhooks": '[{"url": "https://hooks.slack.com/services/...", "format": "slack"}]'}


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest valid name to a mistyped one, if any is close enough to be meant."""
    pool = sorted(set(candidates))
    lowered = name.lower()
    if lowered in pool:  # only the case differs
        return lowered
    close = difflib.get_close_matches(lowered, pool, n=1, cutoff=0.6)
    if close:
        return close[0]
    # A prefix or a part of a longer name: `retain` for retain_count, `timeout` for ...
    for candidate in pool:
        if len(lowered) >= 4 and (candidate.startswith(lowered) or lowered in candidate):
            return candidate
    return None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    guess = nearest(name, candidates)
    return f"did you mean {guess}? " if guess else ""


def describe_validation_error(
    exc: ValidationError,
    config: Path | None,
    fields: Iterable[str],
    nested: dict[str, Iterable[str]] | None = None,
) -> str:
    """One line for the first error (one per invalid field of a target), naming the field,
    the value (masked for secrets), where it came from and, for an unknown name, the nearest."""
    err = exc.errors()[0]
    if err["type"] == "invalid_shard":  # already the whole line
        return str(err["ctx"]["detail"])
    if err["type"] == "invalid_targets":  # already one line per invalid field of a target
        where = f" (from {ENV_PREFIX}TARGETS or {config or 'the config file'})"
        lines = []
        for line in str(err["ctx"]["detail"]).splitlines():
            what, tab, why = line.partition("\t")
            lines.append(f"invalid setting {what}{where}: {why}" if tab else line)
        return "\n".join(lines)
    loc = [str(p) for p in err["loc"]]
    field = ".".join(loc) or "settings"
    if err["type"] == "extra_forbidden":
        return _unknown(loc, config, list(fields), nested or {})
    value = err.get("input")
    shown = "***" if set(loc) & SECRET_NAMES else repr(value)
    env_name = ENV_PREFIX + field.upper().replace(".", "__")
    where = f" (from {env_name} or {config or 'the config file'})"
    return f"invalid setting {field}={shown}{where}: {err['msg']}"


def _unknown(
    loc: list[str], config: Path | None, fields: list[str], nested: dict[str, Iterable[str]]
) -> str:
    """An unknown key: only the config file can hold one (environment variables and .env
    entries that name no setting are warned about, not refused)."""
    name = loc[-1]
    if len(loc) == 1:
        line = toml_line(config, name) if config is not None else None
        where = f"{config}:{line}" if line else str(config or "the config file")
        return f"unknown setting {name} in {where}: {did_you_mean(name, fields)}{EXAMPLE_HINT}"
    parent = loc[0]
    what = ".".join(loc)
    candidates = nested.get(parent, ())
    return (
        f"unknown setting {what} in {config or 'the config file'}: "
        f"{did_you_mean(name, candidates)}{EXAMPLE_HINT}"
    )


def describe_load_error(exc: Exception, config: Path | None) -> str:
    """A TOML syntax error or unreadable file, or a list given as an environment variable
    that is not JSON."""
    bad_env = re.search(r'field "(\w+)" from source "EnvSettingsSource"', str(exc))
    if bad_env is None:
        bad_env = re.search(r'field "(\w+)" from source "_OwnDotEnv"', str(exc))
    if bad_env:
        field = bad_env.group(1)
        name = ENV_PREFIX + field.upper()
        example = JSON_EXAMPLES.get(field, '[{"name": "app", "database": "app"}]')
        return (
            f"invalid setting {field} (from {name}): not valid JSON; write it "
            f"as JSON, e.g. {name}='{example}'"
        )
    return f"cannot read config file {config}: {exc}"
