"""Many databases: `[[targets]]` in the config, each resolved into a complete Settings.

A target lists only what differs from the global settings; everything else is inherited. The
resolution is pure (no I/O): sync, check and verify keep taking one Settings and never learn
that there are several. Without `[[targets]]` the top level is the one unnamed target, exactly
as before.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator

from service.connfields import ConnectionFields, check_dsn

if TYPE_CHECKING:
    from service.settings import Settings

DEFAULT_NAME = "default"  # the unnamed target of a config without [[targets]]
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A target's own dsn replaces these inherited fields (the credentials stay inherited: one
# reader role and one passfile for a fleet is the common case).
ADDRESS_FIELDS = ("host", "port", "user", "database", "sslmode")


class TargetOverrides(ConnectionFields):
    """One `[[targets]]` table: a name, and whatever differs from the global settings."""

    name: str  # connection fields: inherited from ConnectionFields, all optional
    # what to export
    schemas: list[str] | None = None
    exclude_schemas: list[str] | None = None
    include_owners: bool | None = None
    include_privileges: bool | None = None
    include_comments: bool | None = None
    pg_dump: str | None = None  # e.g. a newer client for one newer server
    lock_wait_timeout_ms: int | None = Field(default=None, ge=0)
    statement_timeout_ms: int | None = Field(default=None, ge=0)
    # where files go: default <folder of the global schema_file>/<name>, <backup_dir>/<name>
    schema_dir: Path | None = None
    backup_dir: Path | None = None
    # schedule, health, alerts, verification, retention
    schedule: str | None = None
    timezone: str | None = None
    health_max_age_s: int | None = Field(default=None, ge=1)
    failure_alert_after: int | None = Field(default=None, ge=1)
    verify: Literal["off", "warn", "require"] | None = None
    verify_dsn: SecretStr | None = None
    retain_count: int | None = Field(default=None, ge=1)
    retain_days: float | None = Field(default=None, gt=0)

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError(
                "use 1-63 letters, digits, '_', '-' or '.', starting with a letter or digit "
                "(it names the target's folders)"
            )
        return value

    @field_validator("dsn", "verify_dsn")
    @classmethod
    def _dsn_parses(cls, value: SecretStr | None) -> SecretStr | None:
        return check_dsn(value)


def parse_targets(raw: list[Any], secret_fields: set[str]) -> list[TargetOverrides]:
    """Validate every table; ValueError with one line per invalid field, naming the target
    (each line "what<TAB>why", so the caller can say where the setting came from)."""
    parsed: list[TargetOverrides] = []
    lines: list[str] = []
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        label = f"targets[{name}]" if isinstance(name, str) and name else f"targets[{index}]"
        try:
            parsed.append(TargetOverrides.model_validate(item))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"])
                where = f"{label}.{field}" if field else label
                if err["type"] == "extra_forbidden":
                    lines.append(f"{where}\tno such target setting; see config/ for the list")
                    continue
                hidden = set(map(str, err["loc"])) & secret_fields
                shown = "***" if hidden else repr(err.get("input"))
                message = err["msg"].removeprefix("Value error, ")
                lines.append(f"{where}={shown}\t{message}")
    names = [item.get("name") for item in raw if isinstance(item, dict)]
    for name in sorted({n for n in names if isinstance(n, str) and names.count(n) > 1}):
        lines.append(f"targets[{name}].name\tthe name is used twice; names must differ")
    if lines:
        raise ValueError("\n".join(lines))
    return parsed


def resolve(settings: Settings) -> list[Settings]:
    """One fully-resolved Settings per target (the settings themselves when none is listed)."""
    if not settings.targets:
        return [settings]
    resolved = [_resolve_one(settings, t) for t in settings.targets]
    _check_folders(resolved)
    return resolved


def _resolve_one(settings: Settings, target: TargetOverrides) -> Settings:
    update: dict[str, Any] = {}
    for field in TargetOverrides.model_fields:
        value = getattr(target, field)
        if value is not None and field not in ("schema_dir", "backup_dir"):
            update[field] = value
    if target.dsn is not None:
        for field in ADDRESS_FIELDS:
            update.setdefault(field, None)
        update.setdefault("dsn", target.dsn)
    folder = target.schema_dir or settings.schema_file.parent / target.name
    update.update(
        schema_file=folder / settings.schema_file.name,
        functions_file=folder / settings.functions_file.name,
        inventory_file=folder / settings.inventory_file.name,
        backup_dir=target.backup_dir or settings.backup_dir / target.name,
        state_file=None,  # beside the target's schema file, as the lock file
        lock_file=None,
        targets=[],
    )
    return settings.model_copy(update=update)


def _check_folders(resolved: list[Settings]) -> None:
    """Two targets writing one folder would overwrite each other's files and backups."""
    owners: dict[Path, str] = {}
    for s in resolved:
        for kind, path in (("schema_dir", s.schema_file.parent), ("backup_dir", s.backup_dir)):
            key = path.absolute()
            other = owners.get(key)
            if other is not None and other != s.name:
                raise ValueError(
                    f"targets[{s.name}].{kind}\t{path} is also used by target {other}; "
                    "give each target its own folder"
                )
            owners[key] = s.name


def select(resolved: list[Settings], name: str | None) -> list[Settings]:
    """All targets, or the one called `name`; ValueError naming the configured ones."""
    if name is None:
        return resolved
    for s in resolved:
        if s.name == name:
            return [s]
    names = ", ".join(s.name for s in resolved)
    raise ValueError(f"no target named {name!r}: configured targets are {names}")
