"""Connection parameters: parsed like libpq, handed to asyncpg and to pg_dump without leaking."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

# Variables that libpq reads; the daemon's own copies are removed from children's env
# so a child only sees what we hand it on purpose (patroni's habit).
LIBPQ_ENV = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGOPTIONS",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGTARGETSESSIONATTRS",
)

_KEYWORD_TO_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "user": "PGUSER",
    "dbname": "PGDATABASE",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
    "service": "PGSERVICE",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}
_ENV_TO_KEYWORD = {v: k for k, v in _KEYWORD_TO_ENV.items()}


class ConnInfoError(ValueError):
    """A connection string that cannot be understood."""


@dataclass(frozen=True)
class ConnInfo:
    """libpq keyword parameters; the password is kept apart so it never reaches argv or logs."""

    params: Mapping[str, str] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, dsn: str) -> ConnInfo:
        """Parse a libpq URI (postgresql://...) or keyword/value string (host=... dbname=...)."""
        dsn = dsn.strip()
        if dsn.startswith(("postgresql://", "postgres://")):
            params = _parse_uri(dsn)
        elif "=" in dsn:
            params = _parse_keywords(dsn)
        else:
            params = {"dbname": dsn} if dsn else {}
        password = params.pop("password", None)
        unknown = sorted(set(params) - set(_KEYWORD_TO_ENV))
        if unknown:
            raise ConnInfoError(f"unknown connection parameter {unknown[0]!r}")
        return cls(params=params, password=password)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConnInfo:
        """The connection psql would make from PG* variables alone."""
        env = os.environ if environ is None else environ
        params = {kw: env[var] for var, kw in _ENV_TO_KEYWORD.items() if env.get(var)}
        password = params.pop("password", None)
        return cls(params=params, password=password)

    def merged(self, other: ConnInfo) -> ConnInfo:
        """Parameters of `other` override ours (explicit DSN over environment)."""
        return ConnInfo(
            params={**self.params, **other.params}, password=other.password or self.password
        )

    def with_params(self, **params: str) -> ConnInfo:
        return replace(self, params={**self.params, **params})

    @property
    def host(self) -> str:
        return self.params.get("host") or self.params.get("hostaddr") or "/var/run/postgresql"

    @property
    def port(self) -> int:
        return int(self.params.get("port") or 5432)

    @property
    def user(self) -> str | None:
        return self.params.get("user")

    @property
    def dbname(self) -> str | None:
        return self.params.get("dbname")

    def display(self) -> str:
        """A readable description with no password in it."""
        user = self.user or _default_user()
        db = self.dbname or user
        return f"{user}@{self.host}:{self.port}/{db}"

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a libpq child (pg_dump, psql): every PG* variable is ours."""
        env = {
            k: v for k, v in (os.environ if base is None else base).items() if k not in LIBPQ_ENV
        }
        for kw, value in self.params.items():
            env[_KEYWORD_TO_ENV[kw]] = value
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        return env

    def asyncpg_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for asyncpg.connect (it reads no PG* variables we did not choose)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user or _default_user(),
            "database": self.dbname or self.user or _default_user(),
            "password": self.password,
            "timeout": float(self.params.get("connect_timeout") or 10),
        }
        if "passfile" in self.params:
            kwargs["passfile"] = self.params["passfile"]
        sslmode = self.params.get("sslmode")
        kwargs["ssl"] = sslmode if sslmode else "prefer" if not self.host.startswith("/") else False
        if "application_name" in self.params:
            kwargs["server_settings"] = {"application_name": self.params["application_name"]}
        return kwargs


def _default_user() -> str:
    import getpass

    return os.environ.get("PGUSER") or getpass.getuser()


def _parse_uri(dsn: str) -> dict[str, str]:
    parts = urlsplit(dsn)
    params: dict[str, str] = {}
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        if user:
            params["user"] = unquote(user)
        if password:
            params["password"] = unquote(password)
    if netloc:
        host, port = _split_host_port(netloc)
        if host:
            params["host"] = unquote(host)
        if port:
            params["port"] = port
    path = parts.path.lstrip("/")
    if path:
        params["dbname"] = unquote(path)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        params[key] = value
    return params


def _split_host_port(netloc: str) -> tuple[str, str]:
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        return host, rest.lstrip(":")
    host, _, port = netloc.partition(":")
    return host, port


_KEYWORD_RE = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")


def _parse_keywords(dsn: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = 0
    while pos < len(dsn):
        match = _KEYWORD_RE.match(dsn, pos)
        if not match:
            if dsn[pos:].strip():
                raise ConnInfoError(
                    "cannot parse connection string near " + repr(dsn[pos : pos + 20])
                )
            break
        key, value = match.group(1), match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key] = value
        pos = match.end()
    return params
