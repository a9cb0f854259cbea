"""The session settings that shape the text of the files: one list, pinned in every session
that reads the schema (pg_dump's, the catalog's, the probe's, verify's re-dump).

Where the text comes from: pg_dump and the catalog queries print constants (column defaults,
view and check bodies, function settings) through the types' output functions and the
deparser, and names through quote_ident; those read the session's settings. pg_dump fixes a few
itself right after connecting (setup_connection in pg_dump.c, ConnectDatabase in
pg_backup_db.c): search_path '', DateStyle ISO, IntervalStyle postgres, extra_float_digits 3
(and timeouts, row_security off, synchronize_seqscans off, which print nothing). The rest it
takes from the server, so ALTER SYSTEM SET timezone changed a timestamptz default in the
schema file; quote_all_identifiers it sets only when asked to (--quote-all-identifiers).

How each session gets them, and why a client or the server cannot override them:
- pg_dump: `options` in the connection string on its command line, after the client's own
  options (PGOPTIONS, the DSN's `options`, re-escaped so none can swallow what follows). A
  startup option is of source "client", above postgresql.conf, ALTER SYSTEM and ALTER
  DATABASE/ROLE ... SET; within one options string the later -c wins. In the connection
  string, not in PGOPTIONS: libpq takes a service file's `options` over PGOPTIONS, and the
  connection string over both. pg_dump's own SETs come after and agree (same values).
- asyncpg sessions: startup parameters (server_settings), the same source "client".
- Only a SET in the session beats them, and only one thing runs SQL in it before us: a login
  event trigger (PostgreSQL 17+; session_preload_libraries can too). check() finds that, and
  a pooler that drops startup options it does not track (pgbouncer without them in
  ignore_startup_parameters refuses the connection instead).

client_encoding is pinned apart: asyncpg always speaks UTF8 (its own startup parameter);
pg_dump gets --encoding=<the database's server_encoding>, which is what it prints when nobody
configured client_encoding, so the files of such a server stay as they were.

Not pinned, and why they cannot change the files: lc_time (only to_char's TM patterns, which
no deparser evaluates), lc_messages (messages, not output; superuser-only), lc_collate and
lc_ctype (fixed per database; in the probe's pg_database hash), xmloption and xmlbinary (input
and xml functions only; xml_out prints the value as stored), default_text_search_config (a
regconfig is printed by name), TimeZone abbreviations (timezone_abbreviations only parses
input), row_security, statement_timeout, lock_timeout (pg_dump sets them; they print nothing).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Pin:
    name: str
    value: str
    why: str


PINS: tuple[Pin, ...] = (
    Pin(
        "TimeZone",
        "UTC",
        "timestamptz constants (defaults, view and check bodies) print in the session's zone; "
        "pg_dump sets none: '2020-01-01 00:00:00+00' became '2019-12-31 19:00:00-05'",
    ),
    Pin(
        "DateStyle",
        "ISO, MDY",
        "date and timestamp constants; pg_dump sets ISO (the catalog session did not)",
    ),
    Pin(
        "IntervalStyle",
        "postgres",
        "interval constants; pg_dump sets postgres, the catalog session did not: "
        "'1 day 02:00:00' read as '1 2:00:00' under sql_standard",
    ),
    Pin(
        "extra_float_digits",
        "3",
        "float constants (and function costs and rows); pg_dump sets 3: the shortest exact text",
    ),
    Pin(
        "quote_all_identifiers",
        "off",
        "every name printed by the deparser and quote_ident; pg_dump sets it only when asked",
    ),
    Pin("bytea_output", "hex", "bytea constants ('\\x01ff' or '\\001\\377'); pg_dump sets none"),
    Pin(
        "standard_conforming_strings",
        "on",
        "how backslashes in literals are written (and pg_dump's SET line); pg_dump reads it",
    ),
    Pin(
        "search_path",
        "",
        "names outside pg_catalog print schema-qualified; pg_dump sets '' as well",
    ),
    Pin("lc_monetary", "C", "money constants ('$12.50' or '12,50 €'); pg_dump sets none"),
    Pin(
        "lc_numeric",
        "C",
        "no deparser output uses it today (numeric_out ignores it); pinned so an extension's "
        "output function cannot make it show",
    ),
)
BY_NAME = {p.name: p for p in PINS}


def server_settings() -> dict[str, str]:
    """For asyncpg.connect(server_settings=...): startup parameters, source "client"."""
    return {p.name: p.value for p in PINS}


def split_options(options: str) -> list[str]:
    """A libpq `options` string as the server splits it (pg_split_opts): whitespace separates,
    a backslash takes the next character literally."""
    words: list[str] = []
    word: list[str] = []
    in_word = escaped = False
    for ch in options:
        if escaped:
            word.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = in_word = True
        elif ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            word.append(ch)
            in_word = True
    if in_word:
        words.append("".join(word))
    return words


def _escape_option(word: str) -> str:
    return re.sub(r"([\s\\])", r"\\\1", word)


def pg_dump_options(client_options: str | None) -> str:
    """The `options` pg_dump connects with: the client's own first, each word re-escaped (a
    trailing backslash cannot escape the separator and swallow a pin), then the pins."""
    words = split_options(client_options or "")
    for pin in PINS:
        words += ["-c", f"{pin.name}={pin.value}"]
    return " ".join(_escape_option(w) for w in words)


def conninfo_value(value: str) -> str:
    """A value for a libpq keyword=value connection string: single-quoted, escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def digest_text() -> str:
    """What the pins are, for the settings digest: changing the list rewrites the files."""
    text = "\n".join(f"{p.name}={p.value}" for p in PINS) + "\nclient_encoding=server_encoding"
    return hashlib.sha256(text.encode()).hexdigest()


class PinsOverridden(RuntimeError):
    """Something set a pinned setting inside the session after it started."""


_SHOWN = "SELECT n, pg_catalog.current_setting(n) FROM unnest($1::text[]) AS n"


def _same(pin: Pin, shown: str) -> bool:
    if pin.name == "search_path":
        return shown in ("", '""')
    return shown.replace(" ", "").lower() == pin.value.replace(" ", "").lower()


async def check(conn: asyncpg.Connection) -> None:
    """One round trip: the session shows every pin. A login event trigger (or a preloaded
    library) that SETs one would change pg_dump's session the same way, after its options."""
    rows = await conn.fetch(_SHOWN, [p.name for p in PINS])
    wrong = [(str(r[0]), str(r[1])) for r in rows if not _same(BY_NAME[r[0]], str(r[1]))]
    if wrong:
        shown = ", ".join(f"{n} = {v!r} (pinned {BY_NAME[n].value!r})" for n, v in wrong)
        raise PinsOverridden(
            f"{shown}: a login event trigger or session_preload_libraries set it after login, "
            "or a pooler dropped the startup options (pgbouncer's ignore_startup_parameters); "
            "pg_dump's session would print the schema with it: make the trigger leave this "
            "role alone (IF current_user = '...' THEN RETURN), or connect past the pooler"
        )
