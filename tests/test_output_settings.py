"""The files depend on the schema alone: the settings that shape their text are pinned in every
session that reads production (pg_dump's, the catalog's, the probe's), whatever postgresql.conf,
ALTER SYSTEM, ALTER DATABASE/ROLE ... SET, PGOPTIONS or the DSN's `options` say.

Each case changes one setting in one place, syncs in full and compares the three files byte for
byte with the ones written before; a plain sync afterwards is a skipped cycle (the probe's
fingerprint does not move with the settings either). A cluster of its own: ALTER SYSTEM and
ALTER ROLE reach every database of a cluster, the session-wide one included.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from service.demo.cluster import ScratchCluster
from service.errors import SyncError
from service.production.db import connect
from service.settings.model import Settings
from service.sync import sync_target

# A default of each type whose text depends on a setting, a view and a function (whose names
# quote_all_identifiers would quote), a comment outside ASCII (client_encoding).
SCHEMA = r"""
CREATE SCHEMA app;
CREATE TABLE app.shaped (
    id int PRIMARY KEY,
    at timestamptz DEFAULT '2020-01-01 00:00:00+00',
    day date DEFAULT '2020-03-04',
    span interval DEFAULT '1 day 2 hours',
    raw bytea DEFAULT '\x01ff',
    price money DEFAULT '12.50',
    third real DEFAULT '0.33333334',
    path text DEFAULT E'a\\b',
    CHECK (span < '3 days'::interval)
);
CREATE VIEW app.recent AS
    SELECT id, at FROM app.shaped WHERE at > '2019-06-01 12:00:00+00'::timestamptz;
CREATE FUNCTION app.cutoff() RETURNS timestamptz LANGUAGE sql
    AS $$ SELECT '2021-02-03 04:05:06+00'::timestamptz $$;
COMMENT ON TABLE app.shaped IS 'prix en euros: café';
"""

FILES = ("complete-schema.sql", "functions.sql", "inventory.json")

# (setting, a value that changes pg_dump's or the catalog's text when it is not pinned)
SHAPING = [
    ("TimeZone", "America/New_York"),
    ("DateStyle", "SQL, DMY"),
    ("IntervalStyle", "sql_standard"),
    ("extra_float_digits", "0"),
    ("quote_all_identifiers", "on"),
    ("bytea_output", "escape"),
    ("standard_conforming_strings", "off"),
    ("lc_monetary", "de_DE.UTF-8"),
    ("client_encoding", "LATIN1"),
    ("search_path", "app, public"),
]
NEEDS_LOCALE = {"lc_monetary": "de_DE.utf8"}


def _has_locale(name: str) -> bool:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False).stdout
    return name.lower() in out.lower().split()


def _cases() -> list[object]:
    marks: list[object] = []
    for name, value in SHAPING:
        locale = NEEDS_LOCALE.get(name)
        skip = locale is not None and not _has_locale(locale)
        if skip and os.environ.get("PG_SCHEMA_SYNC_REQUIRE_SERVERS"):
            raise RuntimeError(f"locale {locale} missing: ./dev test generates it")
        mark = pytest.mark.skipif(skip, reason=f"no {locale} locale (./dev test makes it)")
        marks.append(pytest.param(name, value, id=name, marks=mark))
    return marks


_BOOT_ZONE = "UTC"


@pytest.fixture(scope="module")
def server() -> Iterator[ScratchCluster]:
    global _BOOT_ZONE
    with ScratchCluster() as c:
        c.create_database("shop")
        c.psql("shop", SCHEMA)
        _BOOT_ZONE = c.psql("postgres", "SHOW TimeZone").strip()
        yield c


@pytest.fixture(scope="module")
def settings(server: ScratchCluster, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    out = tmp_path_factory.mktemp("pinned")
    return settings_for(server.dsn("shop"), out)


def settings_for(dsn: str, out: Path) -> Settings:
    return Settings(
        dsn=SecretStr(dsn),
        schema_file=out / "sql" / FILES[0],
        functions_file=out / "sql" / FILES[1],
        inventory_file=out / "sql" / FILES[2],
        backup_dir=out / "backups",
    )


def read_files(settings: Settings) -> dict[str, bytes]:
    return {name: (settings.schema_file.parent / name).read_bytes() for name in FILES}


@pytest.fixture(scope="module")
async def baseline(settings: Settings) -> dict[str, bytes]:
    first = await sync_target(settings)
    assert first.first_run
    written = read_files(settings)
    schema = written[FILES[0]].decode()
    # What the pins print (pg_dump's own choices, and UTC, hex, C where it sets none).
    assert "DEFAULT '2020-01-01 00:00:00+00'::timestamp with time zone" in schema
    assert "DEFAULT '1 day 02:00:00'::interval" in schema
    assert "DEFAULT '\\x01ff'::bytea" in schema
    assert "DEFAULT '$12.50'::money" in schema
    assert "SET client_encoding = 'UTF8';" in schema
    return written


@pytest.fixture
async def clean_server(
    server: ScratchCluster, settings: Settings, baseline: dict[str, bytes]
) -> AsyncIterator[ScratchCluster]:
    """The server as it was after the case, and the files as the baseline wrote them (a case
    that failed left the files it wrote)."""
    yield server
    os.environ.pop("PGOPTIONS", None)  # monkeypatch puts back what was there, after this
    server.psql("postgres", "ALTER SYSTEM RESET ALL")
    server.psql("postgres", "ALTER DATABASE shop RESET ALL")
    server.psql("postgres", "ALTER ROLE postgres RESET ALL")
    server.psql("postgres", "ALTER ROLE postgres IN DATABASE shop RESET ALL")
    server.psql("postgres", "SELECT pg_reload_conf()")
    _wait_for_setting(server, "TimeZone", _BOOT_ZONE)
    if read_files(settings) != baseline:
        await sync_target(settings, full=True)


def _show(server: ScratchCluster, name: str) -> str:
    return server.psql("shop", f"SHOW {name}").strip()


def sql_value(name: str, value: str) -> str:
    """As ALTER ... SET takes it: a list setting unquoted (quoted, it is one element)."""
    return value if name == "search_path" else f"'{value}'"


def options_value(value: str) -> str:
    """As -c takes it in PGOPTIONS: a space escaped with a backslash."""
    return value.replace(" ", "\\ ")


async def assert_same_files(settings: Settings, baseline: dict[str, bytes], where: str) -> None:
    full = await sync_target(settings, full=True)
    changed = [f"{i.kind} {i.name}" for i in full.drift.items]
    assert changed == [], f"{where}: a full sync rewrote {changed}"
    assert read_files(settings) == baseline, where
    plain = await sync_target(settings)
    assert plain.skipped == "unchanged", (where, plain.probe)


@pytest.mark.parametrize(("name", "value"), _cases())
async def test_a_setting_changed_on_the_server_leaves_the_files_byte_identical(
    clean_server: ScratchCluster,
    settings: Settings,
    baseline: dict[str, bytes],
    name: str,
    value: str,
) -> None:
    clean_server.psql("postgres", f"ALTER SYSTEM SET {name} = {sql_value(name, value)}")
    clean_server.psql("postgres", "SELECT pg_reload_conf()")
    _wait_for_setting(clean_server, name, value)
    await assert_same_files(settings, baseline, f"ALTER SYSTEM SET {name} = {value!r}")


def _wait_for_setting(server: ScratchCluster, name: str, value: str) -> None:
    """A reload reaches new sessions once the postmaster has read the file: wait for it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shown = server.psql(
            "postgres", f"SELECT reset_val FROM pg_settings WHERE lower(name) = lower('{name}')"
        ).strip()
        if shown.lower().replace(" ", "") == value.lower().replace(" ", ""):
            return
        time.sleep(0.05)
    pytest.fail(f"the server did not take {name} = {value!r}")


@pytest.mark.parametrize(("name", "value"), _cases())
async def test_a_setting_in_pgoptions_leaves_the_files_byte_identical(
    clean_server: ScratchCluster,
    settings: Settings,
    baseline: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv("PGOPTIONS", f"-c {name}={options_value(value)}")
    full = await sync_target(settings, full=True)
    assert [f"{i.kind} {i.name}" for i in full.drift.items] == [], f"PGOPTIONS {name}"
    assert read_files(settings) == baseline


async def test_role_and_database_settings_leave_the_files_byte_identical(
    clean_server: ScratchCluster, settings: Settings, baseline: dict[str, bytes]
) -> None:
    usable = [(n, v) for n, v in SHAPING if n not in NEEDS_LOCALE or _has_locale(NEEDS_LOCALE[n])]
    for scope in ("DATABASE shop", "ROLE postgres", "ROLE postgres IN DATABASE shop"):
        for name, value in usable:
            clean_server.psql("postgres", f"ALTER {scope} SET {name} = {sql_value(name, value)}")
        assert _show(clean_server, "IntervalStyle") == "sql_standard"
        await assert_same_files(settings, baseline, f"ALTER {scope} SET ...")
        clean_server.psql("postgres", f"ALTER {scope} RESET ALL")


async def test_options_in_the_dsn_cannot_override_the_pins(
    server: ScratchCluster, baseline: dict[str, bytes], settings: Settings, tmp_path: Path
) -> None:
    # Every shaping setting at once, and a trailing backslash that would escape the space in
    # front of whatever is appended after it (the pins) if the options were pasted as they are.
    options = " ".join(f"-c {n}={options_value(v)}" for n, v in SHAPING)
    for tail in ("", " -c application_name=x\\"):
        dsn = server.dsn("shop") + "&options=" + quote(options + tail)
        other = settings_for(dsn, tmp_path / f"dsn{len(tail)}")
        first = await sync_target(other)
        assert first.first_run
        assert read_files(other) == baseline, f"options={options + tail!r}"


async def test_client_options_are_in_the_settings_digest(
    clean_server: ScratchCluster,
    settings: Settings,
    baseline: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pinned settings in PGOPTIONS no longer change the files, but other options may (a role,
    # row_security...): a cycle whose client options changed reads in full, once.
    await sync_target(settings)  # an earlier case's ALTER ... RESET moved pg_db_role_setting
    assert (await sync_target(settings)).skipped == "unchanged"
    monkeypatch.setenv("PGOPTIONS", "-c TimeZone=Pacific/Auckland")
    moved = await sync_target(settings)
    assert moved.skipped is None and moved.probe is not None
    assert moved.probe.reason == "settings changed"
    assert read_files(settings) == baseline
    assert (await sync_target(settings)).skipped == "unchanged"
    monkeypatch.delenv("PGOPTIONS")
    assert (await sync_target(settings)).probe.reason == "settings changed"  # type: ignore[union-attr]


async def test_sessions_of_the_tool_show_the_pinned_values(
    clean_server: ScratchCluster, settings: Settings
) -> None:
    for name, value in SHAPING:
        if name not in NEEDS_LOCALE or _has_locale(NEEDS_LOCALE[name]):
            setting = f"{name} = {sql_value(name, value)}"
            clean_server.psql("postgres", f"ALTER ROLE postgres SET {setting}")
    conn = await connect(settings.conninfo())
    try:
        rows = await conn.fetch(
            "SELECT n, pg_catalog.current_setting(n) FROM unnest($1::text[]) n",
            [n for n, _ in SHAPING] + ["lc_numeric"],
        )
        shown = {str(r[0]): str(r[1]) for r in rows}
    finally:
        await conn.close()
    assert shown == {
        "TimeZone": "UTC",
        "DateStyle": "ISO, MDY",
        "IntervalStyle": "postgres",
        "extra_float_digits": "3",
        "quote_all_identifiers": "off",
        "bytea_output": "hex",
        "standard_conforming_strings": "on",
        "lc_monetary": "C",
        "lc_numeric": "C",
        "client_encoding": "UTF8",
        "search_path": "",
    }


def test_pins_reach_pg_dump_after_the_clients_options() -> None:
    # Checked on the argv (no connection): the pins come last in `options`, so a client's own
    # -c for the same setting, earlier in the same string, loses.
    from service.production.conninfo import ConnInfo
    from service.production.export import ExportOptions, pg_dump_argv

    info = ConnInfo.parse("host=/tmp dbname=x options='-c TimeZone=Asia/Tokyo'")
    argv = pg_dump_argv("/usr/bin/pg_dump", ExportOptions(encoding="UTF8"), info)
    dbname = next(a for a in argv if a.startswith("--dbname="))
    assert dbname.index("TimeZone=Asia/Tokyo") < dbname.index("TimeZone=UTC")
    assert "--encoding=UTF8" in argv


LOGIN_TRIGGER = """
CREATE FUNCTION public.local_zone() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_user <> 'exempt' THEN
        PERFORM pg_catalog.set_config('TimeZone', 'America/New_York', false);
    END IF;
END $$;
CREATE EVENT TRIGGER local_zone ON login EXECUTE FUNCTION public.local_zone();
"""


async def test_a_login_trigger_that_sets_a_pinned_setting_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    # Login event triggers (17+) run SQL in every new session, after its startup options: a SET
    # there would reach pg_dump's session too. The catalog session sees it and says so.
    from tests.test_versions import installed

    bindir = installed("17")
    with ScratchCluster(bindir) as c:
        c.psql("postgres", "CREATE ROLE exempt LOGIN SUPERUSER")
        c.create_database("shop")
        c.psql("shop", SCHEMA + LOGIN_TRIGGER)
        dump = str(installed("clients-18") / "pg_dump")
        caught = settings_for(c.dsn("shop"), tmp_path / "caught").model_copy(
            update={"pg_dump": dump}
        )
        with pytest.raises(SyncError) as err:
            await sync_target(caught)
        message = str(err.value)
        assert "TimeZone = 'America/New_York' (pinned 'UTC')" in message
        assert "a login event trigger" in message and "\n" not in message
        assert not caught.schema_file.exists()
        exempt = settings_for(c.dsn("shop", "exempt"), tmp_path / "exempt").model_copy(
            update={"pg_dump": dump}
        )
        assert (await sync_target(exempt)).first_run
        schema = exempt.schema_file.read_text()
        assert "DEFAULT '2020-01-01 00:00:00+00'::timestamp with time zone" in schema
