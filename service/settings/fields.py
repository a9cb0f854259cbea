"""The connection fields shared by the top-level settings and each `[[targets]]` table, and
Target: one database and where its files go (the top-level settings are one)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from service.production.conninfo import ConnInfo, ConnInfoError
from service.production.schema_patterns import check_patterns

if TYPE_CHECKING:  # asyncpg comes with them: only the commands that read a database pay for it
    from service.production.catalog import CatalogOptions
    from service.production.export import ExportOptions

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


def check_dsn(value: SecretStr | None) -> SecretStr | None:
    """A pydantic validator body: the value must parse as a libpq connection string."""
    if value is not None:
        try:
            ConnInfo.parse(value.get_secret_value())
        except (ConnInfoError, ValueError) as exc:
            raise ValueError(f"not a libpq connection string: {exc}") from None
    return value


class ConnectionFields(BaseModel):
    """Where a database is. The password stays a SecretStr until it reaches a child's env."""

    # A base, never validated on its own (see AlertFields): built with its subclasses.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    dsn: SecretStr | None = Field(
        default=None,
        description="Production as a libpq URI or keyword string; overrides the PG* variables "
        "(a secret when it holds a password: prefer PGPASSWORD or a passfile)",
        examples=["postgresql://schema_reader@db.internal:5432/app?sslmode=require"],
    )
    host: str | None = Field(
        default=None,
        description="Production host or socket folder (PGHOST)",
        examples=["db.internal"],
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Production port (PGPORT)", examples=[5432]
    )
    user: str | None = Field(
        default=None, description="The reading role (PGUSER)", examples=["schema_reader"]
    )
    database: str | None = Field(
        default=None, description="The database to keep files of (PGDATABASE)", examples=["app"]
    )
    password: SecretStr | None = Field(
        default=None,
        description="The reading role's password (PGPASSWORD); possible, but prefer the "
        "environment or a passfile to this file",
        examples=["..."],
    )
    passfile: Path | None = Field(
        default=None,
        description="A .pgpass file (mode 0600) holding the password (PGPASSFILE)",
        examples=["/run/secrets/pgpass"],
    )
    sslmode: SslMode | None = Field(
        default=None,
        description="disable | allow | prefer | require | verify-ca | verify-full (PGSSLMODE)",
        examples=["require"],
    )


class Target(ConnectionFields):
    """One production database and where its schema files go."""

    name: str = Field(
        default="default",
        description="The target's name: it names its folders and --target NAME "
        "(with [[targets]], each table's own name)",
    )

    schemas: list[str] = Field(
        default_factory=list,
        description='Only these schemas: pg_dump -n patterns ("Mixed", app_*); empty = all',
        examples=[["app", "billing_*"]],
    )
    exclude_schemas: list[str] = Field(
        default_factory=list,
        description="Leave these schemas out: pg_dump -N patterns",
        examples=[["audit"]],
    )
    include_owners: bool = Field(
        default=True, description="OWNER TO lines are exported and owner changes count as drift"
    )
    include_privileges: bool = Field(
        default=True, description="GRANT/REVOKE lines are exported and count as drift"
    )
    include_comments: bool = Field(
        default=True, description="COMMENT ON lines are exported and count as drift"
    )

    schema_file: Path = Field(
        default=Path("sql/schemas/complete-schema.sql"),
        description="The complete schema (pg_dump --schema-only, normalised); relative paths "
        "resolve against the working directory",
    )
    functions_file: Path = Field(
        default=Path("sql/schemas/functions.sql"),
        description="Functions, procedures and aggregates, also in the complete schema",
    )
    inventory_file: Path = Field(
        default=Path("sql/schemas/inventory.json"),
        description="Every object's normalised definition: what drift is decided on",
    )
    backup_dir: Path = Field(
        default=Path("backups"),
        description="The tool's own folder: one backup folder per change, the probe's record "
        "and (unless state_dir is set) the daemon's state and lock files",
    )

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
        from service.production.catalog import CatalogOptions

        return CatalogOptions(
            schemas=tuple(self.schemas),
            exclude_schemas=tuple(self.exclude_schemas),
            owners=self.include_owners,
            privileges=self.include_privileges,
            comments=self.include_comments,
        )

    def export_options(self, pg_dump: str, lock_wait_timeout_ms: int) -> ExportOptions:
        from service.production.export import ExportOptions

        return ExportOptions(
            pg_dump=pg_dump,
            schemas=tuple(self.schemas),
            exclude_schemas=tuple(self.exclude_schemas),
            owners=self.include_owners,
            privileges=self.include_privileges,
            comments=self.include_comments,
            lock_wait_timeout_ms=lock_wait_timeout_ms,
        )
