"""Many databases: the `[[targets]]` tables of the config, parsed and validated.

A target lists only what differs from the global settings; everything else is inherited when
service.settings.model resolves it into a complete Settings. This module knows nothing of
Settings, so the model can import it and not the other way round.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator

from service.settings.fields import ConnectionFields, check_dsn
from service.settings.git import GitOverrides
from service.settings.messages import EXAMPLE_HINT, did_you_mean
from service.settings.webhooks import WebhookSettings

DEFAULT_NAME = "default"  # the unnamed target of a config without [[targets]]
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A target's own dsn replaces these inherited fields (the credentials stay inherited: one
# reader role and one passfile for a fleet is the common case).
ADDRESS_FIELDS = ("host", "port", "user", "database", "sslmode")


class TargetOverrides(ConnectionFields, GitOverrides):
    """One `[[targets]]` table: a name, and whatever differs from the global settings."""

    # A field without a description of its own is documented as overriding the top-level
    # setting of the same name (settings/reference.py).
    name: str = Field(
        description="The target's name (1-63 of A-Z a-z 0-9 _ - . , starting with a letter or "
        "digit): names its folders and --target NAME"
    )
    # connection fields: inherited from ConnectionFields, all optional
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
    schema_dir: Path | None = Field(
        default=None,
        description="Folder of the target's three schema files; default: <the folder of the "
        "top-level schema_file>/<name>",
        examples=["sql/trails"],
    )
    backup_dir: Path | None = Field(
        default=None,
        description="The target's backup folder; default: <backup_dir>/<name>",
        examples=["backups/trails"],
    )
    # schedule, health, alerts, verification, retention
    schedule: str | None = None
    timezone: str | None = None
    health_max_age_s: int | None = Field(default=None, ge=1)
    failure_alert_after: int | None = Field(default=None, ge=1)
    webhooks: list[WebhookSettings] | None = None  # replaces the global list; [] = none
    verify: Literal["off", "warn", "require"] | None = None
    check_only: bool | None = None
    verify_dsn: SecretStr | None = None
    retain_count: int | None = Field(default=None, ge=1)
    retain_days: float | None = Field(default=None, gt=0, allow_inf_nan=False)

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
                    nested = len(err["loc"]) > 1 and err["loc"][0] == "webhooks"
                    pool = WebhookSettings if nested else TargetOverrides
                    guess = did_you_mean(str(err["loc"][-1]), pool.model_fields)
                    lines.append(f"{where}\tno such target setting; {guess}{EXAMPLE_HINT}")
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
