"""The settings reference, read from the model: one row per setting (name, type, default,
environment variable, description), grouped in sections. settings/documents.py renders it as
the commented example config and the documentation's configuration page; `config` shows values
with toml_value.

Nothing here is written by hand per setting: a field's declaration (type, default, bounds,
`description`, `examples`) is its documentation. Sections are named by the field that opens
them, in the model's order, so a new field joins the section it is declared in.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from service.settings.model import ENV_PREFIX, SECRET_FIELDS, Settings
from service.settings.targets import TargetOverrides


@dataclass(frozen=True)
class Section:
    first: str  # the field that opens it (model order)
    title: str
    intro: str = ""


# Printed in this order; each field belongs to the section opened last before it in the model.
SECTIONS = (
    Section(
        "dsn",
        "Production connection",
        "The standard libpq variables work exactly as for psql: PGHOST, PGPORT, PGUSER, "
        "PGDATABASE, PGPASSWORD, PGPASSFILE, PGSSLMODE. The settings below override them. Keep "
        "the password out of this file: use PGPASSWORD, SCHEMA_SYNC_PASSWORD or a passfile.",
    ),
    Section("name", "The target and what to export"),
    Section(
        "schema_file",
        "Where files go",
        "Relative paths resolve against the working directory. The schema folder holds only "
        "the three schema files; the tool's own files live in backup_dir (or state_dir).",
    ),
    Section("pg_dump", "Production safety"),
    Section("log_format", "Logging"),
    Section("schedule", "Daemon (pg-schema-sync run)"),
    Section("full_sync_interval_s", "Catalog probe: skipped cycles, watch mode, push mode"),
    Section("sentry_dsn", "Alerts and metrics"),
    Section(
        "public_url",
        "Status page (on the metrics listener: docs/status-page.md)",
    ),
    Section(
        "webhooks",
        "Webhook alerts (Slack, Microsoft Teams, signed JSON)",
        "The Sentry events, to each webhook: one message per distinct drift, one when it is "
        "resolved, one after failure_alert_after failed syncs in a row, one on recovery.",
    ),
    Section("verify", "Verification (pg-schema-sync verify; and inside sync)"),
    Section("retain_count", "Backup retention (unset: keep every backup)"),
    Section(
        "git_repository",
        "Git delivery (off unless git_repository is set)",
        "Each sync that writes files commits exactly those files to git_branch in a clone the "
        "daemon owns (git_workdir) and pushes, never forcing; a rollback commits too.",
    ),
    Section(
        "targets",
        "Many databases",
        "Without [[targets]] the settings above describe the one database. With them, the "
        "settings above are defaults every target inherits; each target's files go to "
        "<schema folder>/<name>/ and <backup_dir>/<name>/.",
    ),
)


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    default: str  # a TOML literal, or "" when unset
    env: str
    description: str
    example: str  # a TOML literal to show when there is no default, else ""
    secret: bool
    section: str


def field_rows(model: type[BaseModel], inherit: type[BaseModel] | None = None) -> list[Row]:
    """One row per field of `model`, in declaration order; a field without a description of
    its own takes the same-named field's of `inherit` (a target's overrides)."""
    rows: list[Row] = []
    section = ""
    starts = {s.first: s.title for s in SECTIONS}
    for name, info in model.model_fields.items():
        section = starts.get(name, section)
        description = info.description
        example = toml_value(info.examples[0], reveal=True) if info.examples else ""
        parent = inherit.model_fields.get(name) if inherit is not None else None
        if parent is not None:
            description = description or parent.description
            if not example:
                example = toml_value(parent.examples[0], reveal=True) if parent.examples else ""
            example = example or default_literal(parent)
        rows.append(
            Row(
                name=name,
                type=type_name(info),
                default=default_literal(info),
                env=ENV_PREFIX + name.upper(),
                description=description or "",
                example=example,
                secret=name in SECRET_FIELDS or _is_secret(info.annotation),
                section=section,
            )
        )
    return rows


def settings_rows() -> list[Row]:
    return field_rows(Settings)


def by_section(rows: list[Row]) -> Iterator[tuple[Section, list[Row]]]:
    for section in SECTIONS:
        members = [r for r in rows if r.section == section.title]
        if members:
            yield section, members


def ordered_rows() -> list[Row]:
    """The settings in the order the example and the reference page show them."""
    return [row for _, members in by_section(settings_rows()) for row in members]


def target_rows() -> list[Row]:
    """The keys of a [[targets]] table: its name first, then by section as the settings."""
    order = {s.title: i for i, s in enumerate(SECTIONS)}
    rows = field_rows(TargetOverrides, inherit=Settings)
    return sorted(rows, key=lambda r: (r.name != "name", order.get(r.section, len(order))))


def _is_secret(annotation: Any) -> bool:
    return SecretStr in (annotation, *get_args(annotation))


# --------------------------------------------------------------------------------------------
# Types and values


def type_name(info: FieldInfo) -> str:
    text = _type_text(info.annotation)
    bounds = []
    for item in info.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value:g}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            bounds.append(f"matching {pattern}")
    return f"{text} {', '.join(bounds)}" if bounds else text


def _type_text(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type_text(a) for a in inner)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple):
        item = _type_text(args[0]) if args else "value"
        return f"list of {item}s" if not item.startswith("one of") else f"list, each {item}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    names = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}
    if annotation is SecretStr:
        return "string (secret)"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def default_literal(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return toml_value(info.default_factory())  # type: ignore[call-arg]
    if info.default is PydanticUndefined or info.default is None:
        return ""
    return toml_value(info.default)


def toml_value(value: Any, reveal: bool = False) -> str:
    """A TOML literal of a setting's value; secrets as "***" unless `reveal` (examples)."""
    if isinstance(value, SecretStr):
        return json.dumps(value.get_secret_value()) if reveal else '"***"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Enum):
        return json.dumps(str(value.value))
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v, reveal) for v in value) + "]"
    if isinstance(value, BaseModel):
        value = {k: getattr(value, k) for k in type(value).model_fields}
    if isinstance(value, dict):
        pairs = (f"{k} = {toml_value(v, reveal)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(pairs) + "}"
    return json.dumps(str(value))
