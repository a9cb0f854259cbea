"""`pg-schema-sync demo`: a throwaway production database, two syncs and the drift in between.

Nothing needs configuring: the demo starts its own PostgreSQL cluster, writes into a temp
folder and removes both when it ends, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO, TypeVar

from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from service.demo.cluster import ClusterError, ScratchCluster
from service.disk.files import BACKUP_SUMMARY
from service.production.conninfo import ConnInfo
from service.settings.model import Settings, SettingsError
from service.sync import SyncError, SyncOutcome, sync_target

SQL_DIR = Path(__file__).parent / "sql"
PRODUCTION_SQL = SQL_DIR / "production.sql"
HOTFIX_SQL = SQL_DIR / "hotfix.sql"
DATABASE = "trails_production"
REQUIRED_EXTENSIONS = ("postgis", "pgrouting")
# What hotfix.sql does, in the words the demo prints before running it.
HOTFIX_STEPS = (
    "CREATE OR REPLACE FUNCTION routing.find_route(...)  -- new body: skip closed trails",
    "ALTER TABLE trails.trails ADD COLUMN closed_reason text",
)
EXIT_TERMINATED = 128 + signal.SIGTERM

T = TypeVar("T")


class DemoError(RuntimeError):
    """The demo cannot go on; the message is one line saying what to do."""


async def run_demo(out: TextIO) -> int:
    """Run the whole demo, printing for a human; 0 on success, 1 on an expected failure."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def on_sigterm() -> None:
        # Only cancel: the finally blocks below stop the cluster and remove the temp folder.
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    handled = False
    with suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        handled = True
    try:
        await _demo(out)
        return 0
    except DemoError as exc:
        _say(out, f"demo failed: {exc}")
        return 1
    except asyncio.CancelledError:
        why = "SIGTERM" if terminated else "interrupted"
        _say(out, f"demo stopped ({why}); throwaway cluster and temp folder removed")
        if not terminated or task is None:
            raise  # Ctrl-C: asyncio.run turns this back into KeyboardInterrupt
        task.uncancel()
        return EXIT_TERMINATED
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)


async def _demo(out: TextIO) -> None:
    _say(out, "pg-schema-sync demo: a trail-routing database drifts away from its repository\n")
    workdir = Path(tempfile.mkdtemp(prefix="pg-schema-sync-demo-"))
    cluster: ScratchCluster | None = None
    try:
        with _step(out, "starting a throwaway PostgreSQL cluster"):
            cluster = _new_cluster()
            await _blocking(cluster.start)
        _say(
            out,
            f"    PostgreSQL {cluster.bindir.parent.name}, port {cluster.port}, {cluster.workdir}",
        )

        with _step(
            out, f"creating database {DATABASE} from service/demo/sql/{PRODUCTION_SQL.name}"
        ):
            await _blocking(cluster.psql, "postgres", f'CREATE DATABASE "{DATABASE}"')
            versions = await _blocking(_check_extensions, cluster)
            await _blocking(_load, cluster, PRODUCTION_SQL)
        _say(out, "    " + ", ".join(f"{name} {v}" for name, v in versions.items()))

        settings = _settings(cluster, workdir)
        with _step(out, f"first sync into {workdir}"):
            first = await _sync(settings)
        _report_first(out, first, workdir)

        with _step(out, f"hot-fixing production behind the repository's back ({HOTFIX_SQL.name})"):
            await _blocking(_load, cluster, HOTFIX_SQL)
        for line in HOTFIX_STEPS:
            _say(out, f"    {line}")

        with _step(out, "second sync"):
            second = await _sync(settings)
        _report_drift(out, second, workdir)
    finally:
        # Shielded so a second cancel cannot leave a postgres running or the folder behind.
        await asyncio.shield(_blocking(_cleanup, cluster, workdir))
    _say(out, "\ndone: throwaway cluster stopped, temp folder removed")


# -- steps ---------------------------------------------------------------------------------


def _new_cluster() -> ScratchCluster:
    try:
        return ScratchCluster()
    except ClusterError as exc:
        raise DemoError(str(exc)) from None


def _check_extensions(cluster: ScratchCluster) -> dict[str, str]:
    """{extension: version} for PostGIS and pgRouting, or a DemoError saying how to install."""
    names = ", ".join(f"'{n}'" for n in REQUIRED_EXTENSIONS)
    rows = cluster.psql(
        "postgres",
        f"SELECT name, default_version FROM pg_available_extensions WHERE name IN ({names})",
    )
    found = dict(line.split("|", 1) for line in rows.splitlines() if "|" in line)
    missing = [n for n in REQUIRED_EXTENSIONS if n not in found]
    if missing:
        major = cluster.bindir.parent.name
        raise DemoError(
            f"{' and '.join(missing)} not installed for PostgreSQL {major}: run `./dev setup` "
            f"or apt-get install postgresql-{major}-postgis-3 postgresql-{major}-pgrouting"
        )
    return {n: found[n] for n in REQUIRED_EXTENSIONS}


def _load(cluster: ScratchCluster, sql_file: Path) -> None:
    try:
        cluster.psql(DATABASE, file=sql_file)
    except ClusterError as exc:
        lines = str(exc).splitlines()
        error = next((line for line in lines if "ERROR:" in line), lines[0] if lines else "")
        raise DemoError(f"loading {sql_file.name} failed: {error.strip()}") from None


class _DemoSettings(Settings):
    """Settings from init kwargs and defaults only: the user's SCHEMA_SYNC_* variables, .env,
    config file and PG* variables describe their production, never the demo's cluster."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    def conninfo(self, environ: dict[str, str] | None = None) -> ConnInfo:
        return super().conninfo({})


def _settings(cluster: ScratchCluster, workdir: Path) -> Settings:
    sql = workdir / "sql" / "schemas"
    try:
        return _DemoSettings(
            dsn=SecretStr(cluster.dsn(DATABASE)),
            schema_file=sql / "complete-schema.sql",
            functions_file=sql / "functions.sql",
            inventory_file=sql / "inventory.json",
            backup_dir=workdir / "backups",
            pg_dump=str(cluster.bindir / "pg_dump"),  # the cluster's own version
        )
    except (SettingsError, ValueError) as exc:
        raise DemoError(f"demo settings rejected: {exc}") from None


async def _sync(settings: Settings) -> SyncOutcome:
    try:
        return await sync_target(settings)
    except SyncError as exc:
        raise DemoError(str(exc)) from None


def _cleanup(cluster: ScratchCluster | None, workdir: Path) -> None:
    if cluster is not None:
        # A Ctrl-C can kill pg_ctl after it launched the server but before start() returned;
        # the pid file says a server may be running, so stop it rather than orphan it.
        if (cluster.datadir / "postmaster.pid").exists():
            cluster.started = True
        cluster.stop()
    shutil.rmtree(workdir, ignore_errors=True)


# -- output --------------------------------------------------------------------------------


def _report_first(out: TextIO, outcome: SyncOutcome, workdir: Path) -> None:
    # Non-breaking spaces keep "1 materialized view" on one line when the list wraps.
    objects = ", ".join(
        f"{n} {kind}".replace(" ", "\u00a0") for kind, n in sorted(outcome.counts.items())
    )
    total = sum(outcome.counts.values())
    for line in textwrap.wrap(f"{total} objects: {objects}", 88, subsequent_indent="  "):
        _say(out, "    " + line.replace("\u00a0", " "))
    _say(out, "    wrote:")
    for path in outcome.files_written:
        _say(out, f"      {_rel(path, workdir):<40} {_size(path)}")
    if outcome.backup is not None:
        _say(out, f"      {_rel(outcome.backup, workdir) + '/':<40} backup of this run")


def _report_drift(out: TextIO, outcome: SyncOutcome, workdir: Path) -> None:
    drift = outcome.drift
    if not drift:
        _say(out, "    no drift found (unexpected: the hot-fix should have shown up)")
        return
    _say(out, f"\ndrift report: {drift.headline()}\n")
    for item in drift.worst_first():
        _say(out, f"  {item.impact.value:<11} {item.change:<8} {item.kind:<10} {item.name}")
        for reason in item.reasons:
            _say(out, f"      - {reason}")
        for line in item.diff.splitlines():
            _say(out, f"      {line}")
        _say(out, "")
    if outcome.backup is not None:
        _say(out, f"backup of this run: {outcome.backup}/")
        if (outcome.backup / BACKUP_SUMMARY).is_file():
            _say(out, f"  {BACKUP_SUMMARY} there is this report for reviewers (removed with the")
            _say(out, "  demo's temp folder when the demo ends)")
    written = ", ".join(_rel(p, workdir) for p in outcome.files_written)
    if written:
        _say(out, f"schema files updated: {written}")


def _rel(path: Path, base: Path) -> str:
    with suppress(ValueError):
        return str(path.relative_to(base))
    return str(path)


def _size(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        return ""
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} B"


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


@contextmanager
def _step(out: TextIO, what: str) -> Iterator[None]:
    """Print `what`, then `ok (N s)`, `failed` or `stopped` on the same line."""
    out.write(f"- {what} ... ")
    out.flush()
    t0 = time.monotonic()
    try:
        yield
    except (asyncio.CancelledError, KeyboardInterrupt):
        _say(out, "stopped")
        raise
    except BaseException:
        _say(out, "failed")
        raise
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        # A cancel that landed as an awaited call completed can be lost inside libraries
        # (asyncio.wait_for before 3.12); honour it here so Ctrl-C always stops the demo.
        _say(out, "stopped")
        raise asyncio.CancelledError
    _say(out, f"ok ({time.monotonic() - t0:.1f} s)")


async def _blocking(fn: Callable[..., T], *args: object) -> T:
    """Run a blocking call in a thread; when cancelled, let it finish first so the cleanup never
    races a half-started server (initdb, pg_ctl and psql run to completion or fail on their own)."""
    fut = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        with suppress(Exception):
            await fut
        raise
    except ClusterError as exc:
        raise DemoError(str(exc)) from None
