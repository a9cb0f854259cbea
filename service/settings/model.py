"""Typed settings: libpq variables, SCHEMA_SYNC_* variables, a .env file and a TOML config file.

Precedence, highest first: command-line flags, SCHEMA_SYNC_* environment, .env, the config
file, defaults. Standard libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD,
PGPASSFILE, PGSSLMODE) describe the production connection exactly as they do for psql; a
`dsn` (URI or keyword string) and the explicit connection fields override them.
"""

from __future__ import annotations

import os
import re
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
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from service.production.catalog import CatalogOptions
from service.production.conninfo import ConnInfo
from service.production.export import ExportOptions
from service.production.schema_patterns import check_patterns
from service.settings.fields import ConnectionFields, check_dsn
from service.settings.git import GitFields
from service.settings.links import check_public_url
from service.settings.shards import MAX_SHARDS, Shard, ShardError, shard_of
from service.settings.shards import resolve as resolve_shard
from service.settings.targets import ADDRESS_FIELDS, TargetOverrides, parse_targets
from service.settings.webhooks import WebhookSettings

ENV_PREFIX = "SCHEMA_SYNC_"
DEFAULT_CONFIG = Path("config/pg-schema-sync.toml")
SECRET_FIELDS = {
    "password",
    "dsn",
    "sentry_dsn",
    "verify_dsn",
    "git_repository",
    "webhooks",
    "status_token",
    "public_url",  # not secret, but refused when it holds a password: never echo it
}
EXAMPLES = {"webhooks": '[{"url": "https://hooks.slack.com/services/...", "format": "slack"}]'}


class SettingsError(ValueError):
    """Invalid configuration; the message is one line naming the field and the bad value."""


class Target(ConnectionFields):
    """One production database and where its schema files go."""

    name: str = "default"

    schemas: list[str] = Field(default_factory=list)
    exclude_schemas: list[str] = Field(default_factory=list)
    include_owners: bool = True
    include_privileges: bool = True
    include_comments: bool = True

    schema_file: Path = Path("sql/schemas/complete-schema.sql")
    functions_file: Path = Path("sql/schemas/functions.sql")
    inventory_file: Path = Path("sql/schemas/inventory.json")
    backup_dir: Path = Path("backups")

    @field_validator("dsn")
    @classmethod
    def _dsn_parses(cls, value: SecretStr | None) -> SecretStr | None:
        return check_dsn(value)

    @field_validator("schemas", "exclude_schemas")
    @classmethod
    def _pg_dump_patterns(cls, value: list[str]) -> list[str]:
        check_patterns(value)  # refused at start, in pg_dump's words, naming the field
        return value

    def conninfo(self, environ: dict[str, str] | None = None) -> ConnInfo:
        """libpq environment, then dsn, then explicit fields; the password never leaves SecretStr
        except into the ConnInfo that hands it to asyncpg and to pg_dump's environment."""
        info = ConnInfo.from_env(os.environ if environ is None else environ)
        if self.dsn is not None:
            info = info.merged(ConnInfo.parse(self.dsn.get_secret_value()))
        explicit = {
            "host": self.host,
            "port": str(self.port) if self.port else None,
            "user": self.user,
            "dbname": self.database,
            "passfile": str(self.passfile) if self.passfile else None,
            "sslmode": self.sslmode,
        }
        info = info.with_params(**{k: v for k, v in explicit.items() if v})
        if self.password is not None:
            info = ConnInfo(info.params, self.password.get_secret_value())
        return info

    def catalog_options(self) -> CatalogOptions:
        return CatalogOptions(
            schemas=tuple(self.schemas),
            exclude_schemas=tuple(self.exclude_schemas),
            owners=self.include_owners,
            privileges=self.include_privileges,
            comments=self.include_comments,
        )

    def export_options(self, pg_dump: str, lock_wait_timeout_ms: int) -> ExportOptions:
        return ExportOptions(
            pg_dump=pg_dump,
            schemas=tuple(self.schemas),
            exclude_schemas=tuple(self.exclude_schemas),
            owners=self.include_owners,
            privileges=self.include_privileges,
            comments=self.include_comments,
            lock_wait_timeout_ms=lock_wait_timeout_ms,
        )


class Settings(Target, GitFields, BaseSettings):
    """Service settings. Without `targets` the top level is the one target; with `targets`
    the top level holds the defaults every target inherits."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="forbid",
    )

    pg_dump: str = "pg_dump"
    lock_wait_timeout_ms: int = Field(default=5_000, ge=0)
    statement_timeout_ms: int = Field(default=120_000, ge=0)
    # The whole sync's bound, network waits included (a half-open connection answers nothing).
    sync_timeout_s: float = Field(default=600.0, gt=0)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Daemon (pg-schema-sync run)
    schedule: str = "*/15 * * * *"  # 5-field cron expression
    timezone: str = "UTC"
    sync_on_start: bool = True
    misfire_grace_s: int = Field(default=60, ge=1)
    stop_grace_s: float = Field(default=30.0, ge=0)
    state_file: Path | None = None  # default: .pg-schema-sync-state.json beside the schema file
    lock_file: Path | None = None  # default: .pg-schema-sync.lock beside the schema file
    health_max_age_s: int | None = Field(default=None, ge=1)  # default: 2 x schedule + 5 min
    retry_backoff_max_s: float = Field(default=300.0, ge=1)

    # Catalog probe: skipped cycles and watch mode (README "Catalog probe")
    full_sync_interval_s: float = Field(default=86_400.0, ge=0)  # 0: never skip a cycle
    watch_interval_s: float | None = Field(default=None, gt=0)  # probe every N s; off when unset
    watch_settle_s: float = Field(default=5.0, ge=0)  # fingerprint stable this long, then sync
    watch_settle_max_s: float = Field(default=60.0, gt=0)  # sync anyway after this long
    listen_channel: str | None = Field(  # push mode: LISTEN here (deploy/pg-schema-sync-notify.sql)
        default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$"
    )
    # Anyone who may connect may NOTIFY: a notification probes no sooner than this after the
    # previous probe began (docs/push-mode.md).
    listen_min_gap_s: float = Field(default=1.0, gt=0, le=3600)

    # Alerts
    sentry_dsn: SecretStr | None = None
    sentry_environment: str | None = None
    failure_alert_after: int = Field(default=3, ge=1)  # consecutive failures before an alert
    metrics_port: int | None = Field(default=None, ge=1, le=65535)  # Prometheus; off when unset
    metrics_host: str = "127.0.0.1"

    # The status page, on the metrics listener (docs/status-page.md)
    public_url: str | None = None  # where people open it: alerts and commits link there
    status_token: SecretStr | None = None  # Bearer or ?token=; the page is open when unset
    status_history: int = Field(default=100, ge=2, le=10_000)  # cycles kept per target
    # The daemon compares and alerts but writes nothing: no files, backups or commits.
    check_only: bool = False

    # Webhook alerts (Slack, Teams, signed JSON): the same events as Sentry
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)  # one attempt, all phases
    webhook_attempts: int = Field(default=4, ge=1, le=10)  # per message, with backoff

    # Verification (a server where the tool may CREATE DATABASE)
    verify: Literal["off", "warn", "require"] = "off"
    verify_dsn: SecretStr | None = None

    # Backup retention (both unset: keep everything)
    retain_count: int | None = Field(default=None, ge=1)
    retain_days: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    # Many databases ([[targets]] tables, or SCHEMA_SYNC_TARGETS as a JSON list)
    targets: list[TargetOverrides] = Field(default_factory=list)
    max_concurrent_syncs: int = Field(default=4, ge=1)  # the daemon's and `sync`'s bound
    # Several daemons splitting the targets (docs/kubernetes.md): INDEX/COUNT or "auto" (the
    # index from a StatefulSet pod's name, the count from shard_count); unset: every target.
    shard: str | None = None
    shard_count: int | None = Field(default=None, ge=1, le=MAX_SHARDS)

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
                            "keeps it beside its own schema files; remove it"
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
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        config = _config_path
        if config is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    def target(self) -> Target:
        return Target.model_validate({name: getattr(self, name) for name in Target.model_fields})


_config_path: Path | None = None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from all sources; raise SettingsError with one line on anything invalid."""
    global _config_path
    path = config or (
        Path(os.environ[ENV_PREFIX + "CONFIG"]) if os.environ.get(ENV_PREFIX + "CONFIG") else None
    )
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    if path is not None and not path.is_file():
        raise SettingsError(f"config file {path} does not exist: create it or fix --config")
    _config_path = path
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc, path)) from None
    except (ValueError, OSError) as exc:  # TOML syntax errors and unreadable files
        bad_env = re.search(r'field "(\w+)" from source "EnvSettingsSource"', str(exc))
        if bad_env:  # a list or table given as an environment variable that is not JSON
            name = ENV_PREFIX + bad_env.group(1).upper()
            example = EXAMPLES.get(bad_env.group(1), '[{"name": "app", "database": "app"}]')
            raise SettingsError(
                f"invalid setting {bad_env.group(1)} (from {name}): not valid JSON; write it "
                f"as JSON, e.g. {name}='{example}'"
            ) from None
        raise SettingsError(f"cannot read config file {path}: {exc}") from None
    finally:
        _config_path = None


def describe_validation_error(exc: ValidationError, config: Path | None) -> str:
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
    field = ".".join(str(p) for p in err["loc"]) or "settings"
    value = err.get("input")
    shown = "***" if set(map(str, err["loc"])) & SECRET_FIELDS else repr(value)
    env_name = ENV_PREFIX + field.upper().replace(".", "__")
    where = f" (from {env_name} or {config or 'the config file'})"
    if err["type"] == "extra_forbidden":
        return f"invalid setting {field}{where}: no such setting; see config/ for the list"
    return f"invalid setting {field}={shown}{where}: {err['msg']}"


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
