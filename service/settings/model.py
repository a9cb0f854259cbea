"""Typed settings: libpq variables, SCHEMA_SYNC_* variables, a .env file and a TOML config file.

Precedence, highest first: command-line flags, SCHEMA_SYNC_* environment, .env, the config
file, defaults. Standard libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD,
PGPASSFILE, PGSSLMODE) describe the production connection exactly as they do for psql; a
`dsn` (URI or keyword string) and the explicit connection fields override them.

Every field carries a `description` (and, when it has no default, `examples`): the settings
reference (settings/reference.py) turns them into `config --example`, the example config file
and the documentation's configuration page, so a new setting is documented by its declaration.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from service.errors import SettingsError
from service.settings.alerting import AlertFields
from service.settings.fields import Target
from service.settings.git import GitFields
from service.settings.links import check_public_url
from service.settings.locate import DOTENV, ENV_PREFIX, config_path
from service.settings.messages import SECRET_NAMES, describe_load_error, describe_validation_error
from service.settings.schedule import DaemonFields
from service.settings.shards import MAX_SHARDS, Shard, ShardError, shard_of
from service.settings.shards import resolve as resolve_shard
from service.settings.targets import ADDRESS_FIELDS, TargetOverrides, parse_targets
from service.settings.webhooks import WebhookSettings

SECRET_FIELDS = SECRET_NAMES  # masked in every message and in `config`

__all__ = [
    "ENV_PREFIX",
    "SECRET_FIELDS",
    "Settings",
    "SettingsError",
    "Target",
    "config_path",
    "load_settings",
]


class _OwnDotEnv(DotEnvSettingsSource):
    """A .env file's SCHEMA_SYNC_* variables only, as from the environment.

    A .env file is shared with other tools (docker compose reads it too): their variables are
    not ours to refuse, and pydantic-settings would pass every one of them on as an unknown
    setting. Unknown SCHEMA_SYNC_* names are reported as a warning (settings/unknown.py)."""

    def __call__(self) -> dict[str, Any]:
        if not self.env_vars:  # no .env (the usual case): nothing to look up per field
            return {}
        return EnvSettingsSource.__call__(self)


class Settings(Target, GitFields, AlertFields, DaemonFields, BaseSettings):
    """Service settings. Without `targets` the top level is the one target; with `targets`
    the top level holds the defaults every target inherits."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=DOTENV,
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="forbid",
    )

    pg_dump: str = Field(
        default="pg_dump",
        description="pg_dump to run: a path or a name on PATH; its major version must be at "
        "least the server's",
    )
    lock_wait_timeout_ms: int = Field(
        default=5_000,
        ge=0,
        description="pg_dump gives up rather than queue behind production DDL for longer "
        "(--lock-wait-timeout); also the catalog session's lock_timeout",
    )
    statement_timeout_ms: int = Field(
        default=120_000, ge=0, description="Bound on each catalog query of the read-only session"
    )
    # The whole sync's bound, network waits included (a half-open connection answers nothing).
    sync_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Bound on a whole sync, every network wait included (connect, queries, "
        "pg_dump): a half-open connection ends in a failure with cause timeout and an early retry",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="Log format: auto is JSON when the output is not a terminal"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description="Log level of the daemon; one-shot commands log warnings unless set",
    )

    # Verification (a server where the tool may CREATE DATABASE)
    verify: Literal["off", "warn", "require"] = Field(
        default="off",
        description="Verify each sync's files before promoting them: off | warn (promote "
        "anyway, log verify.failed) | require (promote only verified files)",
    )
    verify_dsn: SecretStr | None = Field(
        default=None,
        description="The verify server: a libpq DSN of a role that may CREATE DATABASE there, "
        "is a member of the roles owning objects in the files and finds their extensions",
        examples=["postgresql://verifier@test-db/postgres"],
    )
    verify_owners: bool = Field(
        default=True,
        description="false: verify installs the files without their OWNER TO statements and "
        "compares without owners (`verify --no-owners`), for a verify server where the verify "
        "role cannot be made a member of the owning roles",
    )

    # Backup retention (both unset: keep everything)
    retain_count: int | None = Field(
        default=None,
        ge=1,
        description="Keep the last N good backups (and the last N failed ones); unset with "
        "retain_days: keep every backup",
        examples=[10],
    )
    retain_days: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="... and every backup younger than D days",
        examples=[30],
    )

    # Many databases ([[targets]] tables, or SCHEMA_SYNC_TARGETS as a JSON list)
    targets: list[TargetOverrides] = Field(
        default_factory=list,
        description="Many databases: [[targets]] tables, each a name and what differs from the "
        "settings above (which become every target's defaults)",
    )
    max_concurrent_syncs: int = Field(
        default=4,
        ge=1,
        description="Syncs of different targets running at once (the daemon and `sync`)",
    )
    shard: str | None = Field(
        default=None,
        description="Serve only one shard of the [[targets]]: INDEX/COUNT, or auto (INDEX "
        "from a StatefulSet pod's name, COUNT from shard_count); unset: every target "
        "(docs/kubernetes.md)",
        examples=["0/3"],
    )
    shard_count: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SHARDS,
        description='The number of shards when shard = "auto"',
        examples=[3],
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return check_public_url(value) if value else None

    @field_validator("status_token")
    @classmethod
    def _token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use at least 16 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("targets", mode="wrap")
    @classmethod
    def _targets_named(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Validated here, not by pydantic's list handling, so each error names its target.
        if not isinstance(value, list):
            return handler(value)
        try:
            return parse_targets(value, SECRET_FIELDS)
        except ValueError as exc:
            raise PydanticCustomError("invalid_targets", "{detail}", {"detail": str(exc)}) from None

    @model_validator(mode="after")
    def _shard_usable(self) -> Settings:
        try:
            self.serving_shard()
        except ShardError as exc:
            detail = (
                f"invalid setting shard={self.shard!r} (from --shard, {ENV_PREFIX}SHARD or "
                f"the config file): {exc}"
            )
            raise PydanticCustomError("invalid_shard", "{detail}", {"detail": detail}) from None
        return self

    def serving_shard(self) -> Shard | None:
        """The shard this process serves (None: every target); 'auto' reads the pod's name."""
        return resolve_shard(self.shard, self.shard_count, os.environ)

    @model_validator(mode="after")
    def _targets_fit(self) -> Settings:
        if self.targets:
            for field in ("state_file", "lock_file"):
                if getattr(self, field) is not None:
                    raise PydanticCustomError(
                        "invalid_targets",
                        "{detail}",
                        {
                            "detail": f"invalid setting {field}: with [[targets]] each target "
                            "keeps its own in its state_dir; remove it (state_dir sets the "
                            "folder of all of them)"
                        },
                    )
            try:
                resolve(self)
            except ValueError as exc:
                raise PydanticCustomError(
                    "invalid_targets", "{detail}", {"detail": str(exc)}
                ) from None
        return self

    def resolved_targets(self) -> list[Settings]:
        """One complete Settings per target; [self] when no targets are listed."""
        return resolve(self)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, *file_sources(settings_cls, _config_path))


def file_sources(
    settings_cls: type[BaseSettings], config: Path | None
) -> list[PydanticBaseSettingsSource]:
    """The sources below the flags, highest first: environment, .env, the config file.
    Also what `config` asks, one source at a time, where each value came from."""
    sources: list[PydanticBaseSettingsSource] = [
        EnvSettingsSource(settings_cls),
        _OwnDotEnv(settings_cls),
    ]
    if config is not None:
        sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
    return sources


_config_path: Path | None = None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from all sources; raise SettingsError with one line on anything invalid."""
    global _config_path
    path = config_path(config)
    _config_path = path
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        nested: dict[str, Iterable[str]] = {"webhooks": WebhookSettings.model_fields}
        message = describe_validation_error(exc, path, Settings.model_fields, nested)
        raise SettingsError(message) from None
    except (ValueError, OSError) as exc:  # TOML syntax errors and unreadable files
        raise SettingsError(describe_load_error(exc, path)) from None
    finally:
        _config_path = None


# Target resolution is pure (no I/O): sync, check and verify keep taking one Settings and never
# learn that there are several. Without [[targets]] the top level is the one unnamed target.


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
        if value is not None and field not in ("schema_dir", "backup_dir", "git_workdir"):
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
        # A shared git_workdir would mix the targets' clones: each gets its own folder in it.
        git_workdir=target.git_workdir
        or (settings.git_workdir / target.name if settings.git_workdir else None),
        # Likewise the state folder: each target's state and lock files in their own folder.
        state_dir=settings.state_dir / target.name if settings.state_dir else None,
        state_file=None,
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


def select(
    resolved: list[Settings], name: str | None, shard: Shard | None = None
) -> list[Settings]:
    """All targets (of `shard`, when given), or the one called `name`; ValueError naming the
    configured ones, or the shard that serves it."""
    served = [s for s in resolved if shard is None or shard.serves(s.name)]
    if name is None:
        return served
    for s in resolved:
        if s.name == name:
            if shard is not None and not shard.serves(name):
                other = Shard(shard_of(name, shard.count), shard.count)
                raise ValueError(
                    f"target {name!r} is served by shard {other}, not by this shard {shard}: "
                    f"run the command there (pod <statefulset>-{other.index})"
                )
            return [s]
    names = ", ".join(s.name for s in resolved)
    raise ValueError(f"no target named {name!r}: configured targets are {names}")
