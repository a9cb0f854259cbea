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


# What a child takes from our environment (allow-list, not deny-list: the daemon's own
# SCHEMA_SYNC_DSN, SCHEMA_SYNC_VERIFY_DSN, SENTRY_DSN and whatever else a container injects
# never reach pg_dump or psql): where programs are, HOME for ~/.pgpass and ~/.postgresql/
# certificates, the locale and time zone of its messages.
_TOOL_VARS = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PGSYSCONFDIR", "PGLOCALEDIR")
# libpq's connection-security variables that asyncpg has no use for but psql would honour;
# passed so pg_dump connects as psql would. No session settings (PGCLIENTENCODING,
# PGDATESTYLE, PGTZ...): they would change the export's bytes.
_LIBPQ_PASSTHROUGH = (
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLCERTMODE",
    "PGSSLMINPROTOCOLVERSION",
    "PGSSLMAXPROTOCOLVERSION",
    "PGSSLNEGOTIATION",
    "PGSSLCOMPRESSION",
    "PGGSSENCMODE",
    "PGGSSLIB",
    "PGKRBSRVNAME",
    "PGREQUIREAUTH",
    "PGREQUIREPEER",
    "PGCHANNELBINDING",
    "PGLOADBALANCEHOSTS",
)


def tool_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child that connects nowhere (`pg_dump --version`)."""
    src = os.environ if base is None else base
    return {
        k: v
        for k, v in src.items()
        if k in _TOOL_VARS or k in _LIBPQ_PASSTHROUGH or k.startswith("LC_")
    }


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
        elif _SCHEME_RE.match(dsn) or "=" not in dsn:
            # Never echo the text: a foreign URI (postgresql+psycopg2://, mysql://) carries its
            # password where we would not look for it, and it would reach logs and alerts.
            raise ConnInfoError(
                "not a libpq connection string: use postgresql://user@host:port/dbname or "
                "keyword=value pairs (host=... dbname=...); the text is not shown, it may "
                "hold a password"
            )
        else:
            params = _parse_keywords(dsn)
        password = params.pop("password", None)
        unknown = sorted(set(params) - set(_KEYWORD_TO_ENV))
        if unknown:
            raise ConnInfoError(f"unknown connection parameter {unknown[0][:40]!r}")
        _check_port(params.get("port"), "port in the connection string")
        return cls(params=params, password=password)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConnInfo:
        """The connection psql would make from PG* variables alone."""
        env = os.environ if environ is None else environ
        params = {kw: env[var] for var, kw in _ENV_TO_KEYWORD.items() if env.get(var)}
        password = params.pop("password", None)
        _check_port(params.get("port"), "PGPORT")
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
        # The first of a multi-host list (libpq's "5432,5433"); checked numeric when parsed.
        first = (self.params.get("port") or "").split(",")[0]
        return int(first) if first.isdigit() else 5432

    @property
    def user(self) -> str | None:
        return self.params.get("user")

    @property
    def dbname(self) -> str | None:
        return self.params.get("dbname")

    def passfile_problem(self) -> str | None:
        """Why the named passfile cannot give the password, or None. libpq and asyncpg both
        skip a passfile others can read (asyncpg with a Python warning on stderr) and then
        fail to authenticate: say so instead, with the fix."""
        path = self.params.get("passfile")
        if not path:
            return None
        try:
            st = os.stat(path)
        except OSError as exc:
            return f"passfile {path} cannot be read ({exc.strerror}): fix the path in passfile="
        if not os.path.isfile(path):
            return f"passfile {path} is not a file"
        if st.st_mode & 0o077:
            return (
                f"passfile {path} can be read by others (mode {st.st_mode & 0o777:04o}), so it "
                f"is ignored: chmod 600 {path}"
            )
        return None

    def display(self) -> str:
        """A readable description with no password in it."""
        user = self.user or _default_user()
        db = self.dbname or user
        return f"{user}@{self.host}:{self.port}/{db}"

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a libpq child (pg_dump, psql): an allow-list of ours plus this
        connection's parameters; the password only here, never in argv."""
        env = tool_env(base)
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


_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _check_port(value: str | None, where: str) -> None:
    """libpq takes a port list ("5432" or "5432,5433"); anything else fails late and obscurely."""
    if value is None or value == "":
        return
    for part in value.split(","):
        if part and not (part.isdigit() and 1 <= int(part) <= 65535):
            # PGPORT's value is shown; a DSN's is not (in "user:secret/db", a URI missing
            # its "@", the password is where the port would be).
            shown = f" {part[:20]!r}" if where.startswith("PG") else ""
            raise ConnInfoError(
                f"invalid {where}{shown}: a port is a number from 1 to 65535; fix {where}"
            )


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
                # Position only: the text near it may be a password.
                raise ConnInfoError(
                    f"cannot parse the connection string at character {pos + 1}: "
                    "expected keyword=value (quote values with spaces in single quotes)"
                )
            break
        key, value = match.group(1), match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key] = value
        pos = match.end()
    return params
