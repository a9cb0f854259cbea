"""Prove schema files reproduce production: install them into a scratch database, re-dump it
and compare with the export the files came from.

The scratch database gets a unique name naming its owner process
(pg_schema_sync_verify_<host>_<pid>_<start>_<random>) on the verify server, is created here
and always dropped here: after success, failure, errors and cancellation (the drop is
shielded); one left by a killed verify is dropped by the next verify on that server.
The files are installed by psql with ON_ERROR_STOP,
the password reaching psql only through its environment.

Before anything is created, the server is checked for everything the files need (roles,
memberships, extensions: verify_preflight.py) and every lack is reported at once. Without
owners (`verify --no-owners`, verify_owners = false) a copy without its OWNER TO statements is
installed, as `pg_dump --no-owner` would have written it, and compared without owners.
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg

from service.compare.drift import Change, Drift, compare, file_item, text_diff
from service.compare.inventory import Inventory
from service.disk import files, owner
from service.logs import get_logger, register_secret
from service.production.catalog import CatalogOptions, load_inventory
from service.production.conninfo import ConnInfo, ConnInfoError
from service.production.db import connect, quiet_passfile_warning
from service.production.dump_script import needs, without_owners
from service.production.export import (
    ExportError,
    ExportOptions,
    check_versions,
    export_schema,
    pg_dump_version,
    rekeyed,
    resolve_pg_dump,
)
from service.production.session import close_quickly
from service.production.snapshot import both, server_encoding
from service.settings.model import Settings
from service.verify_preflight import check_server, report
from service.verify_psql import ROUNDTRIP, Problem, VerifyError, install, parse_psql_error

__all__ = [
    "Problem",
    "VerifyError",
    "VerifyResult",
    "install",
    "parse_psql_error",
    "scratch_database",
    "verify_files",
]

SCRATCH_PREFIX = "pg_schema_sync_verify_"
DROP_TIMEOUT_S = 30.0  # DROP DATABASE ... WITH (FORCE) of a scratch database, at most


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
    the dump with the files (bytes) and its catalog with `reference` (objects).

    With `export_options.owners` off, the files' owners are left out of both: a copy without
    them is installed and compared, line numbers in problems still the file's own."""
    t0 = time.monotonic()
    owners = export_options.owners
    catalog_options = replace(catalog_options, owners=owners)
    shown = display_file or str(schema_file)
    dump_path = resolve_tool(export_options.pg_dump, "pg_dump")
    psql = resolve_tool(str(Path(dump_path).with_name("psql")), "psql")
    with tempfile.TemporaryDirectory(prefix="pg-schema-sync-verify-in-") as tmp:
        script = await asyncio.to_thread(files.read_regular, schema_file)
        lines: list[int] | None = None
        if not owners:
            schema_file, functions_file, lines = await asyncio.to_thread(
                _without_owners, script, schema_file, functions_file, Path(tmp)
            )
            reference = reference.without_owners() if reference is not None else None
        async with admin_session(server) as admin:
            missing = await check_server(admin, needs(script), owners, shown)
            del script
            if missing:
                raise VerifyError(report(server.display(), missing, owners))
            async with scratch_in(admin, server) as scratch:
                result = VerifyResult(scratch.dbname or "")
                problem = await install(psql, scratch, schema_file, shown)
                if problem is not None and lines is not None and problem.line:
                    problem = replace(problem, line=_original(lines, problem.line))
                if problem is None:
                    problem, result.drift = await round_trip(
                        scratch,
                        schema_file,
                        functions_file,
                        reference,
                        export_options,
                        catalog_options,
                    )
                result.problem = problem
    result.duration_s = time.monotonic() - t0
    return result


@contextlib.asynccontextmanager
async def admin_session(server: ConnInfo) -> AsyncIterator[asyncpg.Connection]:
    """A session on the verify server's maintenance database (or the DSN's own)."""
    admin_info = server if server.dbname else server.with_params(dbname="postgres")
    admin = await _admin_connect(admin_info)
    try:
        yield admin
    finally:
        await close_quickly(admin)


@contextlib.asynccontextmanager
async def scratch_in(admin: asyncpg.Connection, server: ConnInfo) -> AsyncIterator[ConnInfo]:
    """A fresh scratch database on `server` for the block's length (its connection info),
    dropped after it however it ends: shielded, so a cancelled block still drops it, but
    bounded, since over a frozen link it never would (the next verify drops it then: its
    owner is gone). Scratch databases of dead processes are dropped first."""
    name = scratch_name()
    await remove_abandoned(admin)
    try:
        await _create(admin, name, server)
        yield server.with_params(dbname=name)
    finally:
        drop = asyncio.ensure_future(_drop_within(admin, name, DROP_TIMEOUT_S))
        try:
            await asyncio.shield(drop)
        except asyncio.CancelledError:
            await drop
            raise


@contextlib.asynccontextmanager
async def scratch_database(server: ConnInfo) -> AsyncIterator[ConnInfo]:
    """A scratch database on `server` with its own admin session (what `plan` installs its
    sides into and proves its plans on)."""
    async with admin_session(server) as admin, scratch_in(admin, server) as scratch:
        yield scratch


def _without_owners(
    script: bytes, schema_file: Path, functions_file: Path | None, folder: Path
) -> tuple[Path, Path | None, list[int]]:
    """The files as pg_dump --no-owner would have written them, in `folder`; and for each line
    of the schema copy its line in the file (a problem names the file's own line)."""
    text, lines = without_owners(script)
    schema_copy = folder / schema_file.name
    schema_copy.write_bytes(rekeyed(text))
    functions_copy = None
    if functions_file is not None:
        functions_copy = folder / f"{functions_file.stem}.no-owners{functions_file.suffix}"
        stripped, _ = without_owners(files.read_regular(functions_file))
        functions_copy.write_bytes(rekeyed(stripped))
    return schema_copy, functions_copy, lines


def _original(lines: list[int], line: int) -> int:
    return lines[line - 1] if 0 < line <= len(lines) else line


def verify_options(settings: Settings) -> tuple[ExportOptions, CatalogOptions]:
    """What verify installs and compares: owners left out when the files have none
    (include_owners = false) or verify should not need them (verify_owners = false)."""
    owners = settings.include_owners and settings.verify_owners
    export = settings.export_options(settings.pg_dump, settings.lock_wait_timeout_ms)
    return replace(export, owners=owners), replace(settings.catalog_options(), owners=owners)


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
        with quiet_passfile_warning():
            conn: asyncpg.Connection = await asyncpg.connect(statement_cache_size=0, **kwargs)
        return conn
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        given = info.passfile_problem() or (
            "check the password in its passfile"
            if "passfile" in info.params
            else "check the password in verify_dsn"
            if info.password
            else "no password was given: add passfile=PATH (a 0600 .pgpass file) to verify_dsn, "
            "or keep the password in SCHEMA_SYNC_VERIFY_DSN"
        )
        raise VerifyError(
            f"authentication failed for verify server {where}: {exc}; {given}"
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


async def _drop_within(admin: asyncpg.Connection, name: str, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await _drop(admin, name)
    except TimeoutError:
        get_logger().warning(
            "verify.scratch_kept", database=name, error=f"no answer within {seconds:g} s"
        )
        admin.terminate()


async def _drop(admin: asyncpg.Connection, name: str) -> None:
    force = " WITH (FORCE)" if admin.get_server_version().major >= 13 else ""
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')


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
            # In the file's own encoding: the round trip is to reproduce its bytes.
            encoding = file_encoding(schema_file) or server_encoding(conn)
            again_options = replace(export_options, encoding=encoding)
            _, scratch_inventory = await both(
                export_schema(scratch, again_options, again_schema, again_functions),
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
            drift = Drift((file_item(label, Change.CHANGED, diff),))
        names = ", ".join(f"{i.change.value} {i.kind} {i.name}" for i in drift.items[:5])
        more = f" and {len(drift) - 5} more" if len(drift) > 5 else ""
        message = f"round trip differs: the files do not reproduce their export ({names}{more})"
        return Problem(ROUNDTRIP, message), drift


_ENCODING_LINE = re.compile(rb"\nSET client_encoding = '([A-Za-z0-9_]+)';\n")


def file_encoding(schema_file: Path) -> str | None:
    """The encoding pg_dump wrote the file in: its preamble's SET client_encoding."""
    with open(schema_file, "rb") as fh:
        found = _ENCODING_LINE.search(fh.read(4096))
    return found.group(1).decode() if found else None


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
