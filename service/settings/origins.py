"""Where each setting in effect came from: a flag, an environment variable, a .env line, a line
of the config file, or its default (`pg-schema-sync config`, as `git config --show-origin`).

The sources are asked one at a time with the same classes the model loads from
(model.file_sources), highest precedence first; the first that has a field is its origin.
Values shown are the validated settings', secrets masked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr
from pydantic_settings import TomlConfigSettingsSource

from service.settings.model import ENV_PREFIX, SECRET_FIELDS, Settings, file_sources
from service.settings.reference import ordered_rows, toml_value
from service.settings.where import dotenv_lines, toml_line

DOTENV = Path(".env")


@dataclass(frozen=True)
class Origin:
    kind: str  # flag | env | dotenv | file | default
    name: str = ""  # the flag or variable
    file: str = ""
    line: int | None = None

    def label(self) -> str:
        at = f"{self.file}:{self.line}" if self.line else self.file
        return {
            "flag": f"flag {self.name}",
            "env": f"env {self.name}",
            "dotenv": f"dotenv {at} {self.name}".rstrip(),
            "file": f"file {at}",
        }.get(self.kind, self.kind)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.kind,
            "name": self.name or None,
            "file": self.file or None,
            "line": self.line,
        }


@dataclass(frozen=True)
class Entry:
    name: str
    value: str  # a TOML literal, secrets masked; "" when unset
    data: Any  # the same as JSON data (None when unset)
    origin: Origin
    env: str
    secret: bool


def origins(
    config: Path | None, flags: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, Origin]:
    """Field -> where its value came from, for every field of the settings."""
    environ = os.environ if environ is None else environ
    env_source, dotenv_source, *rest = file_sources(Settings, config)
    from_env, from_dotenv = env_source(), dotenv_source()
    from_file = rest[0]() if rest else {}
    assert not rest or isinstance(rest[0], TomlConfigSettingsSource)
    dotenv_at = dotenv_lines(DOTENV)
    found: dict[str, Origin] = {}
    for name in Settings.model_fields:
        if name in flags:
            found[name] = Origin("flag", flags[name])
        elif name in from_env:
            found[name] = Origin("env", _variable(name, environ))
        elif name in from_dotenv:
            var = _variable(name, {v: "" for v in dotenv_at})
            found[name] = Origin("dotenv", var, str(DOTENV), dotenv_at.get(var.upper()))
        elif name in from_file and config is not None:
            # A list of tables is written as [[name]] tables, or inline as name = [...].
            line = toml_line(config, name) or toml_line(config, "", name, 0)
            found[name] = Origin("file", file=str(config), line=line)
        else:
            found[name] = Origin("default")
    return found


def _variable(field: str, names: Mapping[str, str]) -> str:
    """The variable that set `field` (names are matched case-insensitively, as by the
    settings; a nested one such as SCHEMA_SYNC_TARGETS__0__NAME shows as its parent's)."""
    wanted = (ENV_PREFIX + field).upper()
    for name in names:
        upper = name.upper()
        if upper == wanted or upper.startswith(wanted + "__"):
            return name if upper == wanted else f"{name.split('__')[0]}__..."
    return wanted


def entries(
    settings: Settings, where: Mapping[str, Origin], given: Mapping[str, Any] | None = None
) -> list[Entry]:
    """Every setting in effect, in the order of the settings reference (by section); `given`:
    values a flag sets outside the settings (--log-level, --log-format)."""
    out = []
    for name in (row.name for row in ordered_rows()):
        value = (given or {}).get(name, getattr(settings, name))
        out.append(
            Entry(
                name=name,
                value=shown(name, value),
                data=jsonable(name, value),
                origin=where[name],
                env=ENV_PREFIX + name.upper(),
                secret=name in SECRET_FIELDS or isinstance(value, SecretStr),
            )
        )
    return out


def shown(name: str, value: Any) -> str:
    """A value as TOML, with every secret masked: SecretStr values, a URL's user part."""
    if value is None or value == []:
        return "" if value is None else "[]"
    if name in SECRET_FIELDS and isinstance(value, str):
        return toml_value(_without_userinfo(value))
    return toml_value(value)  # SecretStr (also inside webhooks) -> "***"


def jsonable(name: str, value: Any) -> Any:
    """A value as JSON data, masked as `shown` masks it."""
    if isinstance(value, SecretStr):
        return "***"
    if name in SECRET_FIELDS and isinstance(value, str):
        return _without_userinfo(value)
    if isinstance(value, BaseModel):
        return {k: jsonable(k, getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, list | tuple):
        return [jsonable(name, v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _without_userinfo(value: str) -> str:
    """https://TOKEN@host/... -> https://***@host/...: a token can be passed as a user name."""
    if "://" not in value:
        return value
    parts = urlsplit(value)
    if "@" not in parts.netloc:
        return value
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"***@{host}").geturl()
