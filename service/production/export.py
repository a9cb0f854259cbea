"""pg_dump --schema-only as an asyncio subprocess, normalised while it streams to disk.

Normalising makes two exports of an unchanged database byte-identical:
- the `-- Dumped from/by ... version` lines of pg_dump's header are dropped (they change on
  minor upgrades);
- the random `\\restrict` key of newer pg_dumps (header and footer) is replaced by one
  derived from the file's own content: deterministic, yet not guessable by whoever writes
  object definitions (the key would have to be a fixed point of sha256 of text containing it).
Only pg_dump's own header and footer are edited, found by their place in the output; the
same text inside an object (a body, a literal) is copied as it is.
Functions, procedures and aggregates (with their owner, comment and grant entries) are
copied into a second file as they pass, in pg_dump's own deterministic order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from service.production import pins
from service.production.conninfo import ConnInfo
from service.production.lifetime import die_with_parent

# Re-exported where the export's callers have always found them; pgdump.py holds them so that
# the probe can ask pg_dump's version without importing the export.
from service.production.pgdump import ExportError as ExportError
from service.production.pgdump import check_versions as check_versions
from service.production.pgdump import pg_dump_version as pg_dump_version
from service.production.pgdump import resolve_pg_dump as resolve_pg_dump
from service.production.sqllex import Lexer


@dataclass(frozen=True)
class ExportOptions:
    pg_dump: str = "pg_dump"
    schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    owners: bool = True
    privileges: bool = True
    comments: bool = True
    lock_wait_timeout_ms: int = 5_000
    # pg_export_snapshot() of the catalog session: pg_dump then reads the same moment.
    snapshot: str | None = None
    # The database's server_encoding (pins.py says why); None: whatever the server says.
    encoding: str | None = None


@dataclass(frozen=True)
class ExportResult:
    schema_file: Path
    functions_file: Path
    pg_dump_version: str


# An entry's header line (groups 1, 2: name and type): the only lines the splitter acts on,
# and only where the lexer says they start outside every quote (sqllex.py says why).
_SPECIAL = rb"-- (?:Data for )?Name: (.*); Type: ([A-Z ]+); Schema: "
_SPECIAL_LINE = re.compile(_SPECIAL)  # matched at the start of a candidate line
# A header that makes its entry a function one, read as _SPECIAL reads it (the line's last
# "; Type: ...; Schema: " decides): a function, procedure or aggregate, or its comment or ACL.
_FUNCTION_ENTRY = (
    rb"(?:[^\n]*; Type: (?:FUNCTION|PROCEDURE|AGGREGATE)"
    rb"|(?:FUNCTION|PROCEDURE|AGGREGATE) [^\n]*; Type: (?:COMMENT|ACL))"
    rb"; Schema: (?![^\n]*; Type: [A-Z ]+; Schema: )"
)
_NAME = rb"-- (?:Data for )?Name: "
# Where the next line that matters may be, by section: outside the functions, a function
# entry's header; inside, any other header. pg_dump keeps functions together (a 10,000-table
# schema: 106,782 headers, 5 section changes), so the regex skips the other headers in C
# instead of Python handling each (0.8 s of CPU at 10k).
# Anchored on the newline before the line rather than `^` with re.MULTILINE: a literal first
# byte lets re skip ahead, 3x faster over a chunk. The chunk's first line is tried apart.
_ENTER_FUNCTIONS = _NAME + _FUNCTION_ENTRY
_LEAVE_FUNCTIONS = _NAME + rb"(?!" + _FUNCTION_ENTRY + rb")"
_NEXT = {
    False: (re.compile(rb"\n(?:" + _ENTER_FUNCTIONS + b")"), re.compile(_ENTER_FUNCTIONS)),
    True: (re.compile(rb"\n(?:" + _LEAVE_FUNCTIONS + b")"), re.compile(_LEAVE_FUNCTIONS)),
}
_FUNCTION_TYPES = {b"FUNCTION", b"PROCEDURE", b"AGGREGATE"}
_FUNCTION_NAME_PREFIXES = (b"FUNCTION ", b"PROCEDURE ", b"AGGREGATE ")
# pg_dump's own lines, known by where pg_dump prints them (RestoreArchive in
# pg_backup_archiver.c), never by what a line looks like: the header opens the output,
# before the fixed SET preamble and the first TOC entry -
#   "--\n-- PostgreSQL database dump\n--\n\n" [\restrict KEY\n\n] [-- Dumped from ...\n]
#   [-- Dumped by ...\n] "\n"
# and the footer `\unrestrict KEY\n\n` closes it, after the last entry, with the same key.
# The same text anywhere else is an object's (a body, a literal) and is copied untouched.
_HEADER = re.compile(
    rb"--\n-- PostgreSQL database dump\n--\n\n"
    rb"(?:\\restrict ([^\n]*)\n)?"
    rb"(\n?)"
    rb"(?:-- Dumped from database version [^\n]*\n)?"
    rb"(?:-- Dumped by pg_dump version [^\n]*\n)?"
)
_HEADER_MAX = 4096  # the header and preamble fit well within it; buffered until then
_STRINGS_OFF = b"\nSET standard_conforming_strings = off;\n"
KEY_PLACEHOLDER = b"0" * 32
KEEPALIVES = "keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3"


def pg_dump_argv(path: str, options: ExportOptions, info: ConnInfo | None = None) -> list[str]:
    """The command line; connection details travel in the environment, never here."""
    client_options = info.params.get("options") if info is not None else None
    argv = [
        path,
        "--schema-only",
        "--no-password",
        f"--lock-wait-timeout={options.lock_wait_timeout_ms}ms",
        # TCP keepalives (libpq reads them from no environment variable): a peer that vanished
        # is noticed in about a minute rather than the kernel's two hours. The session's pinned
        # settings after the client's own options (pins.py: why here and not in PGOPTIONS).
        # The rest of the connection still comes from the environment; nothing secret is here.
        f"--dbname={KEEPALIVES} options="
        + pins.conninfo_value(pins.pg_dump_options(client_options)),
    ]
    if options.encoding is not None:
        argv.append(f"--encoding={options.encoding}")
    if options.snapshot is not None:
        argv.append(f"--snapshot={options.snapshot}")
    # Patterns pass unchanged: the catalog side matches them exactly as pg_dump does.
    argv += [f"--schema={s}" for s in options.schemas]
    argv += [f"--exclude-schema={s}" for s in options.exclude_schemas]
    if not options.owners:
        argv.append("--no-owner")
    if not options.privileges:
        argv.append("--no-privileges")
    if not options.comments:
        argv.append("--no-comments")
    return argv


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


def rekeyed(data: bytes) -> bytes:
    """A normalised file after an edit (verify --no-owners drops its owners) with the
    `\\restrict` key _Normalised would have given the edited text: sha256 of everything but
    the key's two lines. A file without a key is returned as it is."""
    header = _HEADER.match(data)
    if header is None or header.group(1) is None:
        return data
    start, end = header.start(1) - len(b"\\restrict "), header.end(1) + 1
    footer = b"\\unrestrict " + header.group(1) + b"\n"
    at = data.rfind(footer)
    if at < end:
        return data
    body = data[:start] + data[end:at] + data[at + len(footer) :]
    key = hashlib.sha256(body).hexdigest()[:32].encode()
    return (
        data[:start]
        + b"\\restrict "
        + key
        + b"\n"
        + data[end:at]
        + b"\\unrestrict "
        + key
        + b"\n"
        + data[at + len(footer) :]
    )


class _Splitter:
    """Routes pg_dump's output: everything to the schema file, function entries also aside.

    Fed raw chunks; works on whole runs of lines between the few lines that matter (entry
    headers), found by one regex per chunk: per-line Python cost ~6 us, which at 10,000
    tables is seconds of CPU taken from pg_dump on a small box. A header counts only where
    it starts outside every quote and comment (sqllex.Lexer), so no body can end or start a
    section; pg_dump's header and footer lines are known by their place in the output.
    """

    def __init__(self, schema: _Normalised, functions: _Normalised) -> None:
        self.schema, self.functions = schema, functions
        self.to_functions = True  # the preamble (SET ...) goes to both files
        # A "--" line whose section is decided by the next line: the one above a header
        # belongs to the header's entry. Held back, not written, while this is set.
        self.pending_separator = False
        self.held_here = False  # the held "--" is the last line of the last run of lines
        self.partial: list[bytes] = []  # an incomplete last line, waiting for its newline
        self.head: bytes | None = b""  # the output's start, until the header is read
        self.footer: bytes | None = None  # `\\unrestrict KEY\n` once the header had \\restrict
        self.tail = b""  # what may be the footer: held until more output or the end
        self.lexer = Lexer()

    def feed(self, chunk: bytes) -> None:
        end = chunk.rfind(b"\n") + 1
        if not end:
            if chunk:
                self.partial.append(chunk)
            return
        if self.partial:
            self.partial.append(chunk[:end])
            self._frame(b"".join(self.partial))
            self.partial = []
        else:
            self._frame(chunk[:end] if end < len(chunk) else chunk)
        if end < len(chunk):
            self.partial.append(chunk[end:])

    def close(self) -> None:
        if self.partial:
            self._frame(b"".join(self.partial) + b"\n")
            self.partial = []
        if self.head is not None:
            self._hold_footer(self._header(self.head))
        if self.tail:
            assert self.footer is not None and self.tail.startswith(self.footer)
            self._lines(self.tail[len(self.footer) :])  # the footer line goes; its blank stays
            self.tail = b""
        if self.pending_separator:
            self.pending_separator = False
            self._route(b"--\n")

    def _frame(self, data: bytes) -> None:
        """Complete lines: the header first, then everything but a possible footer."""
        if self.head is not None:
            self.head += data
            if len(self.head) < _HEADER_MAX:
                return
            data = self._header(self.head)
        self._hold_footer(data)

    def _hold_footer(self, data: bytes) -> None:
        """The footer is the output's last non-blank line: hold such a line while it may be."""
        if self.footer is not None:
            data, self.tail = self.tail + data, b""
            at = data.rfind(self.footer)
            if (
                at >= 0
                and (at == 0 or data[at - 1] == 10)  # b"\n"
                and not data[at + len(self.footer) :].strip(b"\n")
            ):
                data, self.tail = data[:at], data[at:]
        if data:
            self._lines(data)

    def _header(self, data: bytes) -> bytes:
        """pg_dump's header: \\restrict replaced, version lines dropped; returns the rest."""
        self.head = None
        header = _HEADER.match(data)
        if header is None:  # not pg_dump's plain output as we know it: nothing is touched
            self._lines(data)
            return b""
        first_entry = data.find(b"\n--\n", header.end())
        preamble = data[header.end() : first_entry if first_entry >= 0 else len(data)]
        self.lexer.standard_strings = _STRINGS_OFF not in b"\n" + preamble
        self._lines(data[: data.index(b"\n\n") + 2])
        if header.group(1) is not None:
            self.footer = b"\\unrestrict " + header.group(1) + b"\n"
            self.schema.restrict()
            self.functions.restrict()
        if header.group(2):
            self._lines(header.group(2))
        return data[header.end() :]

    def _lines(self, data: bytes) -> None:
        """Complete lines (`data` ends with a newline)."""
        at = 0  # data[at:] is not written yet; it is all in the current section
        pos = 0  # where the next line that matters may start
        while (start := self._candidate(data, pos)) >= 0:
            pos = data.index(b"\n", start) + 1
            match = _SPECIAL_LINE.match(data, start)
            if match is None or not self.lexer.top_level(data, start):
                continue  # inside a quote or comment: an object's text, not pg_dump's
            kind = match.group(2)
            to_functions = kind in _FUNCTION_TYPES or (
                kind in (b"COMMENT", b"ACL") and match.group(1).startswith(_FUNCTION_NAME_PREFIXES)
            )
            if to_functions == self.to_functions:
                continue  # a header in the same section: plain text of it
            # An entry's header: the section changes here, with the "--" line above it.
            self._plain(data, at, start)
            self.to_functions = to_functions
            at = start
            if self.pending_separator:
                self.pending_separator = False
                if start > 0 and self.held_here:
                    at = start - 3  # it is right above: write it with the entry
                else:
                    self._route(b"--\n")
        self.lexer.end_block(data)
        self._plain(data, at, len(data))

    def _candidate(self, data: bytes, pos: int) -> int:
        """Start of the first line at or after `pos` that may change the section, or -1."""
        anywhere, first = _NEXT[self.to_functions]
        if pos == 0 and first.match(data):
            return 0
        found = anywhere.search(data, max(pos - 1, 0))  # the newline ending the line before
        return found.start() + 1 if found else -1

    def _plain(self, data: bytes, start: int, end: int) -> None:
        """Lines with no header among them: one section, one write per file."""
        if end <= start:
            self.held_here = False
            return
        held = self.pending_separator
        # A run of "--" lines at the end: they pair up (the second of two flushes the first),
        # so an odd run leaves its last one held for whatever line comes next.
        run_start = end
        while run_start - 3 >= start and data[run_start - 3 : run_start] == b"--\n":
            if run_start - 3 > start and data[run_start - 4] != 10:  # b"\n"
                break
            run_start -= 3
        run = (end - run_start) // 3
        if run_start == start:  # nothing but "--" lines: a held one pairs with the first
            self.pending_separator = held != (run % 2 == 1)
        else:
            self.pending_separator = run % 2 == 1
        stop = end - 3 if self.pending_separator else end
        self.held_here = stop < end  # the held "--" is data[stop:end]
        if held:
            self._route(b"--\n")
        if stop > start:
            self._route(data[start:stop] if start or stop < len(data) else data)

    def _route(self, text: bytes) -> None:
        self.schema.write(text)
        if self.to_functions:
            self.functions.write(text)


async def export_schema(
    info: ConnInfo,
    options: ExportOptions,
    schema_out: Path,
    functions_out: Path,
    version: str | None = None,
    started: asyncio.Event | None = None,
) -> ExportResult:
    """Run pg_dump and stream its normalised output into the two given paths.

    `version`: pg_dump's version if the caller already asked it (Debian's pg_dump is a Perl
    wrapper: every `--version` costs tens of milliseconds). `started` is set at pg_dump's
    first output: by then it has imported `options.snapshot` (it does so when it connects).
    """
    path = resolve_pg_dump(options.pg_dump)
    if version is None:
        _, version = await pg_dump_version(path)
    argv = pg_dump_argv(path, options, info)
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
        preexec_fn=die_with_parent(),  # fork-safe: one prctl call, looked up beforehand
    )
    stderr_task = asyncio.create_task(_read_all(proc.stderr))
    try:
        assert proc.stdout is not None
        # Large reads: a big schema is millions of lines, handled a chunk at a time.
        while chunk := await proc.stdout.read(1 << 20):
            if started is not None:
                started.set()
            splitter.feed(chunk)
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
