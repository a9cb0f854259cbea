"""The connection fields shared by the top-level settings and each `[[targets]]` table."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from service.production.conninfo import ConnInfo, ConnInfoError

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

    model_config = ConfigDict(extra="forbid")

    dsn: SecretStr | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    database: str | None = None
    password: SecretStr | None = None
    passfile: Path | None = None
    sslmode: SslMode | None = None
