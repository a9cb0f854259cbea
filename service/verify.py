"""Prove schema files reproduce production: install them into a scratch database, re-dump it
and compare with the export the files came from.

The scratch database gets a unique name naming its owner process
(pg_schema_sync_verify_<host>_<pid>_<start>_<random>) on the verify server, is created here
and always dropped here: after success, failure, errors and cancellation (the drop is
shielded); one left by a killed verify is dropped by the next verify on that server.
The files are installed by psql with ON_ERROR_STOP,
the password reaching psql only through its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from service.compare.drift import Change, Drift, DriftItem, compare, text_diff
from service.compare.inventory import Inventory
from service.disk import files, owner
from service.logs import get_logger, register_secret
from service.production.catalog import CatalogOptions, load_inventory
from service.production.conninfo import ConnInfo, ConnInfoError
from service.production.db import connect
from service.production.export import (
    ExportError,
    ExportOptions,
    check_versions,
    export_schema,
    pg_dump_version,
    resolve_pg_dump,
)
from service.production.lifetime import run_to_end
from service.production.session import close_quickly
from service.production.snapshot import both
from service.settings.model import Settings

SCRATCH_PREFIX = "pg_schema_sync_verify_"
INSTALL, EXTENSION, ROUNDTRIP = "install", "extension", "roundtrip"

_PSQL_ERROR = re.compile(r"^psql:(?P<file>.*):(?P<line>\d+): (?:ERROR|FATAL|PANIC):\s+(?P<msg>.*)$")
_PSQL_STATEMENT = re.compile(r"^psql:.*:\d+: STATEMENT:\s\s(?P<sql>.*)$")
_LINE_IN_STATEMENT = re.compile(r"^LINE (\d+):")
_EXTENSION_MISSING = re.compile(
    r'extension "(?P<name>[^"]+)" is not available|'
    r'could not open extension control file ".*/(?P<file>[^/"]+)\.control"'
)
_EXTENSION_DENIED = re.compile(r'permission denied to create extension "(?P<name>[^"]+)"')


class VerifyError(RuntimeError):
    """Verification could not run at all (server, privileges, tools); one line for the user."""


@dataclass(frozen=True)
class Problem:
    stage: str  # install | extension | roundtrip
    message: str
    file: str | None = None
    line: int | None = None

    def one_line(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else ""
        return f"{where}{self.message}"


@dataclass
class VerifyResult:
    database: str
    problem: Problem | None = None
    drift: Drift = field(default_factory=lambda: Drift(()))
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.problem is None


async def verify_files(
    server: ConnInfo,
    schema_file: Path,
    functions_file: Path | None,
    reference: Inventory | None,
    export_options: ExportOptions,
    catalog_options: CatalogOptions,
    display_file: str | None = None,
) -> VerifyResult:
    """Install `schema_file` into a fresh scratch database on `server`, re-dump it and compare
    the dump with the files (bytes) and its catalog with `reference` (objects)."""
    t0 = time.monotonic()
    dump_path = resolve_tool(export_options.pg_dump, "pg_dump")
    psql = resolve_tool(str(Path(dump_path).with_name("psql")), "psql")
    async with scratch_database(server) as scratch:
        result = VerifyResult(scratch.dbname or "")
        problem = await install(psql, scratch, schema_file, display_file)
        if problem is None:
            problem, result.drift = await round_trip(
                scratch, schema_file, functions_file, reference, export_options, catalog_options
            )
        result.problem = problem
    result.duration_s = time.monotonic() - t0
    return result


@contextlib.asynccontextmanager
async def scratch_database(server: ConnInfo) -> AsyncIterator[ConnInfo]:
    """A fresh scratch database on `server` (its connection info) for the block's length:
    dropped after it however it ends (the drop is shielded from cancellation)."""
    name = scratch_name()
    admin_info = server if server.dbname else server.with_params(dbname="postgres")
    admin = await _admin_connect(admin_info)
    try:
        await remove_abandoned(admin)
        try:
            await _create(admin, name, server)
            yield server.with_params(dbname=name)
        finally:
            drop = asyncio.ensure_future(_drop(admin, name))
            try:
                await asyncio.shield(drop)
            except asyncio.CancelledError:
                await drop
                raise
    finally:
        await close_quickly(admin)


def scratch_name() -> str:
    """pg_schema_sync_verify_<host>_<pid>_<start>_<random>: the owner is in the name, written
    in the same statement that creates it, so a killed verify's database can be told from a
    running one's (owner.py) and dropped by the next verify."""
    return SCRATCH_PREFIX + owner.tag().replace(".", "_") + "_" + secrets.token_hex(4)


_SCRATCH_OWNER = re.compile(re.escape(SCRATCH_PREFIX) + r"([0-9a-f]{8})_(\d+)_(\d+|x)_[0-9a-f]+")


async def remove_abandoned(admin: asyncpg.Connection) -> list[str]:
    """Drop the scratch databases whose owner process is gone (a killed verify's). Those of
    live processes, of other hosts and of older versions (no owner in the name) are kept."""
    names = await admin.fetch(
        "SELECT datname FROM pg_catalog.pg_database WHERE left(datname, length($1)) = $1",
        SCRATCH_PREFIX,
    )
    dropped = []
    for (name,) in names:
        found = _SCRATCH_OWNER.fullmatch(name)
        if found is None or owner.alive(".".join(found.groups())) is not False:
            continue
        try:
            await _drop(admin, name)
        except asyncpg.PostgresError as exc:  # not ours to drop (owner, privileges): leave it
            get_logger().warning("verify.scratch_kept", database=name, error=str(exc))
            continue
        get_logger().info("verify.scratch_removed", database=name)
        dropped.append(name)
    return dropped


def verify_server(settings: Settings) -> ConnInfo:
    """The verify server from verify_dsn alone: never production's PG* variables, so a missing
    host can never mean CREATE DATABASE on production."""
    if settings.verify_dsn is None:
        raise VerifyError(
            "verify_dsn is not set: set SCHEMA_SYNC_VERIFY_DSN (or verify_dsn in the config) to "
            "a server where this user may CREATE DATABASE, e.g. a test server"
        )
    try:
        info = ConnInfo.parse(settings.verify_dsn.get_secret_value())
    except (ConnInfoError, ValueError) as exc:
        raise VerifyError(f"invalid setting verify_dsn: {exc}") from None
    register_secret(info.password)
    return info


def resolve_tool(candidate: str, fallback: str) -> str:
    """psql beside the configured pg_dump (same version, understands its output), else PATH."""
    path = shutil.which(candidate) or shutil.which(fallback)
    if path is None:
        raise VerifyError(
            f"{fallback} not found: install the PostgreSQL client (postgresql-client)"
        )
    return path


async def _admin_connect(info: ConnInfo) -> asyncpg.Connection:
    where = info.display()
    try:
        kwargs = info.asyncpg_kwargs()
        kwargs["server_settings"] = {"application_name": "pg-schema-sync verify"}
        conn: asyncpg.Connection = await asyncpg.connect(statement_cache_size=0, **kwargs)
        return conn
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise VerifyError(
            f"authentication failed for verify server {where}: {exc}; check verify_dsn"
        ) from None
    except asyncpg.PostgresError as exc:
        raise VerifyError(f"cannot connect to verify server {where}: {exc}") from None
    except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        raise VerifyError(
            f"cannot connect to verify server {where}: {exc or type(exc).__name__}; "
            "is it running and is verify_dsn right?"
        ) from None


async def _create(admin: asyncpg.Connection, name: str, server: ConnInfo) -> None:
    # template0: nothing a local template1 gained may help the files install.
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    except asyncpg.InsufficientPrivilegeError:
        user = server.user or "the verify user"
        raise VerifyError(
            f"{user} may not create databases on the verify server {server.display()}: "
            f"grant it (ALTER ROLE {user} CREATEDB) or use another verify_dsn"
        ) from None
    except asyncpg.PostgresError as exc:
        raise VerifyError(f"cannot create scratch database {name}: {exc}") from None


async def _drop(admin: asyncpg.Connection, name: str) -> None:
    force = " WITH (FORCE)" if admin.get_server_version().major >= 13 else ""
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')


async def install(
    psql: str, info: ConnInfo, sql_file: Path, display_file: str | None = None
) -> Problem | None:
    """Run the file with psql, stopping at the first error; None when it all went in."""
    argv = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "ECHO=errors", "-f", str(sql_file)]
    env = {**info.child_env(), "PGAPPNAME": "pg-schema-sync verify"}
    returncode, err = await run_to_end(argv, env)
    if returncode == 0:
        return None
    return parse_psql_error(err.decode(errors="replace"), display_file or str(sql_file))


def parse_psql_error(stderr: str, display_file: str) -> Problem:
    """psql's `psql:FILE:LINE: ERROR: ...` (+ LINE n: / STATEMENT:) -> the exact file line.

    psql names the line where the failing statement ends; with the statement text echoed we
    find where it starts, and PostgreSQL's `LINE n:` points inside it."""
    lines = stderr.splitlines()
    for i, text in enumerate(lines):
        match = _PSQL_ERROR.match(text)
        if not match:
            continue
        end_line, message = int(match.group("line")), match.group("msg").strip()
        statement = _statement(lines, i + 1)
        line = end_line
        if statement is not None:
            start = end_line - (statement.count("\n"))
            inner = next(
                (int(m.group(1)) for t in lines[i + 1 :] if (m := _LINE_IN_STATEMENT.match(t))),
                None,
            )
            line = start + inner - 1 if inner else start
        return _classify(message, display_file, line)
    detail = next((t for t in lines if t.strip()), "psql failed without a message")
    raise VerifyError(detail.removeprefix("psql: ").removeprefix("error: "))


def _statement(lines: list[str], start: int) -> str | None:
    for j in range(start, len(lines)):
        match = _PSQL_STATEMENT.match(lines[j])
        if match:
            # The statement runs until the next psql: line (or the end).
            rest = []
            for k in range(j + 1, len(lines)):
                if lines[k].startswith("psql:"):
                    break
                rest.append(lines[k])
            return "\n".join([match.group("sql"), *rest]).rstrip("\n")
        if _PSQL_ERROR.match(lines[j]):
            return None
    return None


def _classify(message: str, file: str, line: int) -> Problem:
    missing = _EXTENSION_MISSING.search(message)
    if missing:
        ext = missing.group("name") or missing.group("file")
        return Problem(
            EXTENSION,
            f"extension {ext} is not installed on the verify server: install its package "
            f"there (the files need it): {message}",
            file,
            line,
        )
    denied = _EXTENSION_DENIED.search(message)
    if denied:
        return Problem(
            EXTENSION,
            f"extension {denied.group('name')} needs a superuser on the verify server: "
            f"verify as a superuser or make the extension trusted: {message}",
            file,
            line,
        )
    return Problem(INSTALL, f"ERROR: {message}", file, line)


async def round_trip(
    scratch: ConnInfo,
    schema_file: Path,
    functions_file: Path | None,
    reference: Inventory | None,
    export_options: ExportOptions,
    catalog_options: CatalogOptions,
) -> tuple[Problem | None, Drift]:
    """Re-dump the scratch database; it must give the same bytes and the same objects."""
    with tempfile.TemporaryDirectory(prefix="pg-schema-sync-verify-") as tmp:
        again_schema, again_functions = Path(tmp) / "schema.sql", Path(tmp) / "functions.sql"
        try:
            conn = await connect(scratch)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise VerifyError(f"cannot connect to the scratch database: {exc}") from None
        try:
            major, full = await pg_dump_version(resolve_pg_dump(export_options.pg_dump))
            check_versions(major, full, conn.get_server_version().major * 10_000)
            _, scratch_inventory = await both(
                export_schema(scratch, export_options, again_schema, again_functions),
                load_inventory(conn, catalog_options),
            )
        except ExportError as exc:
            raise VerifyError(f"re-dumping the scratch database failed: {exc}") from None
        finally:
            await close_quickly(conn)
        drift = compare(reference, scratch_inventory) if reference is not None else Drift(())
        pairs = [(schema_file, again_schema)]
        if functions_file is not None:
            pairs.append((functions_file, again_functions))
        differing = [(mine, again) for mine, again in pairs if not files.same_bytes(mine, again)]
        if not differing and not drift:
            return None, drift
        if not drift:  # same objects, different text: name the file and show where
            mine, again = differing[0]
            label = mine.name
            diff = text_diff(
                mine.read_text(errors="replace"), again.read_text(errors="replace"), label
            )
            drift = Drift((DriftItem("file", label, Change.CHANGED, diff),))
        names = ", ".join(f"{i.change.value} {i.kind} {i.name}" for i in drift.items[:5])
        more = f" and {len(drift) - 5} more" if len(drift) > 5 else ""
        message = f"round trip differs: the files do not reproduce their export ({names}{more})"
        return Problem(ROUNDTRIP, message), drift


def log_outcome(
    log: Any, mode: str, result: VerifyResult | None, error: str | None, backup: Path
) -> None:
    """`verify.passed` (info) or `verify.failed` (error under require, else warning); a
    `result` of None means verification could not run (stage "error")."""
    if result is not None and result.passed:
        log.info(
            "verify.passed",
            database=result.database,
            duration_s=round(result.duration_s, 3),
            backup=str(backup),
        )
        return
    problem = result.problem if result else None
    (log.error if mode == "require" else log.warning)(
        "verify.failed",
        mode=mode,
        stage=problem.stage if problem else "error",
        error=error,
        file=problem.file if problem else None,
        line=problem.line if problem else None,
        objects=[f"{i.change.value} {i.kind} {i.name}" for i in result.drift.items[:20]]
        if result
        else [],
        database=result.database if result else None,
        backup=str(backup),
        promoted=mode != "require",
    )
