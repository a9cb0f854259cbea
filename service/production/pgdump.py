"""Which pg_dump runs, and its version: what a skipped cycle asks of pg_dump without exporting.

Apart from export.py (the export itself, its splitter's regular expressions and the lexer) so
that a `check` the probe answers imports none of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil

from service.production.conninfo import tool_env


class ExportError(RuntimeError):
    """pg_dump could not produce an export; the message is one line meant for the user."""


_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


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
            path,
            "--version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=tool_env(),  # it connects nowhere: no password, no DSN
        )
    except OSError as exc:
        raise ExportError(f"cannot run {path} --version: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    except BaseException as exc:
        # Timed out or cancelled (the probe it runs beside failed): never left running, and
        # reaped here, while its event loop still runs (`check` may run a second one).
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(BaseException):
            await proc.wait()
        if isinstance(exc, TimeoutError):
            raise ExportError(f"cannot run {path} --version: no answer in 30 s") from None
        raise
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
