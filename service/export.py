"""pg_dump --schema-only as an asyncio subprocess, normalised while it streams to disk.

Normalising makes two exports of an unchanged database byte-identical:
- the `-- Dumped from/by ... version` lines are dropped (they change on minor upgrades);
- the random `\\restrict` key of newer pg_dumps is replaced by one derived from the
  file's own content: deterministic, yet not guessable by whoever writes object
  definitions (the key would have to be a fixed point of sha256 of text containing it).
Functions, procedures and aggregates (with their owner, comment and grant entries) are
copied into a second file as they pass, in pg_dump's own deterministic order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from service.conninfo import ConnInfo


class ExportError(RuntimeError):
    """pg_dump could not produce an export; the message is one line meant for the user."""


@dataclass(frozen=True)
class ExportOptions:
    pg_dump: str = "pg_dump"
    schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    owners: bool = True
    privileges: bool = True
    comments: bool = True
    lock_wait_timeout_ms: int = 5_000


@dataclass(frozen=True)
class ExportResult:
    schema_file: Path
    functions_file: Path
    pg_dump_version: str


_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_DROPPED = (b"-- Dumped from database version", b"-- Dumped by pg_dump version")
_HEADER_RE = re.compile(rb"^-- (?:Data for )?Name: (.*); Type: ([A-Z ]+); Schema: ")
_FUNCTION_TYPES = {b"FUNCTION", b"PROCEDURE", b"AGGREGATE"}
_FUNCTION_NAME_PREFIXES = (b"FUNCTION ", b"PROCEDURE ", b"AGGREGATE ")
KEY_PLACEHOLDER = b"0" * 32


def resolve_pg_dump(pg_dump: str) -> str:
    path = shutil.which(pg_dump)
    if path is None:
        raise ExportError(
            f"pg_dump not found ({pg_dump!r}): install the PostgreSQL client "
            "(apt-get install postgresql-client) or set pg_dump to its path"
        )
    return path


async def pg_dump_version(pg_dump: str) -> tuple[int, str]:
    """(major, full version string) of a pg_dump binary."""
    path = resolve_pg_dump(pg_dump)
    try:
        proc = await asyncio.create_subprocess_exec(
            path, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    except (OSError, TimeoutError) as exc:
        raise ExportError(f"cannot run {path} --version: {exc}") from exc
    text = out.decode(errors="replace").strip()
    match = _VERSION_RE.search(text)
    if proc.returncode != 0 or not match:
        raise ExportError(f"{path} does not look like pg_dump: {text or err.decode().strip()!r}")
    major = int(match.group(1))
    full = f"{major}.{match.group(2)}" if match.group(2) else str(major)
    return major, full


def check_versions(pg_dump_major: int, pg_dump_full: str, server_version_num: int) -> None:
    """pg_dump refuses servers newer than itself; say so before starting it."""
    server_major = server_version_num // 10_000
    if pg_dump_major < server_major:
        raise ExportError(
            f"pg_dump {pg_dump_full} is older than the server (PostgreSQL {server_major}): "
            f"install pg_dump {server_major} or newer (postgresql-client-{server_major}) "
            "and point the pg_dump setting at it"
        )


def pg_dump_argv(path: str, options: ExportOptions) -> list[str]:
    """The command line; connection details travel in the environment, never here."""
    argv = [
        path,
        "--schema-only",
        "--no-password",
        f"--lock-wait-timeout={options.lock_wait_timeout_ms}ms",
    ]
    argv += [f"--schema={_exact(s)}" for s in options.schemas]
    argv += [f"--exclude-schema={_exact(s)}" for s in options.exclude_schemas]
    if not options.owners:
        argv.append("--no-owner")
    if not options.privileges:
        argv.append("--no-privileges")
    if not options.comments:
        argv.append("--no-comments")
    return argv


def _exact(name: str) -> str:
    """pg_dump -n takes a psql pattern; double quotes make it one exact, case-kept name."""
    return '"' + name.replace('"', '""') + '"'


class _Normalised:
    """One output file being written: restrict-key placeholder patched in at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in finish()
        self.body = hashlib.sha256()
        self.key_offset: int | None = None
        self.restricted = False

    def restrict(self) -> None:
        self.restricted = True
        self.fh.write(b"\\restrict ")
        self.key_offset = self.fh.tell()
        self.fh.write(KEY_PLACEHOLDER + b"\n")

    def write(self, line: bytes) -> None:
        self.body.update(line)
        self.fh.write(line)

    def finish(self) -> None:
        if self.restricted and self.key_offset is not None:
            key = self.body.hexdigest()[:32].encode()
            self.fh.write(b"\\unrestrict " + key + b"\n")
            self.fh.seek(self.key_offset)
            self.fh.write(key)
        self.fh.flush()
        self.fh.close()

    def abort(self) -> None:
        self.fh.close()
        self.path.unlink(missing_ok=True)


class _Splitter:
    """Routes pg_dump's lines: everything to the schema file, function entries also aside."""

    def __init__(self, schema: _Normalised, functions: _Normalised) -> None:
        self.schema, self.functions = schema, functions
        self.in_preamble = True
        self.in_function = False
        self.pending_separator = False  # a "--" line whose section is decided by the next line

    def feed(self, line: bytes) -> None:
        if line.startswith(b"\\"):
            if line.startswith(b"\\restrict "):
                self.schema.restrict()
                self.functions.restrict()
                return
            if line.startswith(b"\\unrestrict "):
                return
        if line == b"--\n" and not self.pending_separator:
            self.pending_separator = True
            return
        if line.startswith(b"-- "):
            if line.startswith(_DROPPED):
                return
            header = _HEADER_RE.match(line)
            if header:
                self.in_preamble = False
                name, kind = header.group(1), header.group(2)
                self.in_function = kind in _FUNCTION_TYPES or (
                    kind in (b"COMMENT", b"ACL") and name.startswith(_FUNCTION_NAME_PREFIXES)
                )
        if self.pending_separator:
            self.pending_separator = False
            self._route(b"--\n")
        self._route(line)

    def _route(self, line: bytes) -> None:
        self.schema.write(line)
        if self.in_preamble or self.in_function:
            self.functions.write(line)

    def close(self) -> None:
        if self.pending_separator:
            self.pending_separator = False
            self._route(b"--\n")


async def export_schema(
    info: ConnInfo, options: ExportOptions, schema_out: Path, functions_out: Path
) -> ExportResult:
    """Run pg_dump and stream its normalised output into the two given paths."""
    path = resolve_pg_dump(options.pg_dump)
    _, version = await pg_dump_version(path)
    argv = pg_dump_argv(path, options)
    schema = _Normalised(schema_out)
    functions = _Normalised(functions_out)
    splitter = _Splitter(schema, functions)
    # Own process group: cancelling kills pg_dump and anything it started, nothing else.
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=info.child_env(),
        start_new_session=True,
    )
    stderr_task = asyncio.create_task(_read_all(proc.stderr))
    try:
        assert proc.stdout is not None
        async for line in _lines(proc.stdout):
            splitter.feed(line)
        splitter.close()
        returncode = await proc.wait()
        err = await stderr_task
        if returncode != 0:
            raise ExportError(_pg_dump_failure(returncode, err, info))
        schema.finish()
        functions.finish()
        return ExportResult(schema_out, functions_out, version)
    except BaseException:
        _kill_group(proc)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(proc.wait(), timeout=5)
        stderr_task.cancel()
        schema.abort()
        functions.abort()
        raise


async def _lines(stream: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """Lines of a stream, read in large chunks (a big schema has millions of lines)."""
    rest = b""
    while chunk := await stream.read(1 << 20):
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for part in parts:
            yield part + b"\n"
    if rest:
        yield rest + b"\n"


async def _read_all(stream: asyncio.StreamReader | None) -> bytes:
    return await stream.read() if stream is not None else b""


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _pg_dump_failure(returncode: int, stderr: bytes, info: ConnInfo) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "")
    detail = detail.removeprefix("pg_dump: ").removeprefix("error: ")
    if info.password:
        detail = detail.replace(info.password, "***")
    if returncode < 0:
        return f"pg_dump was killed by signal {-returncode} while exporting {info.display()}"
    return f"pg_dump failed on {info.display()} (exit {returncode}): {detail}"
