"""Installing a script with psql, and psql's errors as a Problem naming the file's own line.

psql runs with ON_ERROR_STOP in its own session (killed with its process group if the verify
is cancelled); the password reaches it only through its environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from service.production.conninfo import ConnInfo
from service.production.lifetime import run_to_end

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
