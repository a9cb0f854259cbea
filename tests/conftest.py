"""Shared fixtures: one real throwaway PostgreSQL cluster per test session."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.demo.cluster import ScratchCluster
from service.production.conninfo import ConnInfo
from service.production.db import connect

FIXTURES = Path(__file__).parent / "fixtures"
# What `check --json` and `compare --json` print when nothing drifted.
NO_DRIFT = {"drift": False, "headline": "no drift", "impact": {}, "changes": []}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--docker-tests",
        choices=("include", "only", "skip"),
        default="include",
        help="the tests marked docker: with the rest (default), only them, or all but them. "
        "Unlike -m it combines with the caller's own -m and -k (./dev test runs the two sets "
        "side by side).",
    )


# `check` and `sync` keep what they resolved the settings to in $XDG_CACHE_HOME
# (settings/cache.py): the tests' commands keep theirs in a folder of this session's, not in
# the user's ~/.cache. Made once, by the first process (pytest-xdist's workers inherit it), and
# removed by that process alone, after the workers: a worker done early must not pull it from
# under the others. uv keeps its own cache where it was (a fresh one would fetch the build
# backend again for every `uv build`).
_CACHE_PREFIX = "pg-schema-sync-test-cache-"
if Path(os.environ.get("XDG_CACHE_HOME", "/")).name.startswith(_CACHE_PREFIX):
    SETTINGS_CACHE, _CACHE_OWNER = Path(os.environ["XDG_CACHE_HOME"]), False
else:
    _cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    os.environ.setdefault("UV_CACHE_DIR", str(Path(_cache_home) / "uv"))
    SETTINGS_CACHE, _CACHE_OWNER = Path(tempfile.mkdtemp(prefix=_CACHE_PREFIX)), True
    os.environ["XDG_CACHE_HOME"] = str(SETTINGS_CACHE)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CACHE_OWNER:
        shutil.rmtree(SETTINGS_CACHE, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    # A terminated run unwinds like Ctrl-C, so fixtures still stop their servers: pg_ctl starts
    # PostgreSQL in a session of its own, which a killed pytest would leave running.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    choice = config.getoption("--docker-tests")
    if choice == "include":
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        wanted = (item.get_closest_marker("docker") is not None) == (choice == "only")
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def cluster() -> Iterator[ScratchCluster]:
    with ScratchCluster() as c:
        yield c


class Database:
    """A fresh database in the session cluster; `sql()` runs statements through psql."""

    def __init__(self, cluster: ScratchCluster, name: str) -> None:
        self.cluster, self.name = cluster, name

    @property
    def dsn(self) -> str:
        return self.cluster.dsn(self.name)

    @property
    def conninfo(self) -> ConnInfo:
        return self.cluster.conninfo(self.name)

    def sql(self, statements: str) -> str:
        return self.cluster.psql(self.name, statements)

    def load(self, path: Path) -> None:
        self.cluster.psql(self.name, file=path)


def new_database(cluster: ScratchCluster, *files: Path) -> Database:
    # Unique across processes and module copies (conftest can be imported twice).
    name = f"t_{uuid.uuid4().hex[:12]}"
    cluster.create_database(name, *files)
    return Database(cluster, name)


@pytest.fixture
def db(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster)
    yield d
    cluster.drop_database(d.name)


@pytest.fixture
async def conn(db: Database) -> AsyncIterator[asyncpg.Connection]:
    c = await connect(db.conninfo)
    yield c
    await c.close()


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code, self.out, self.err = proc.returncode, proc.stdout, proc.stderr

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> CliResult:
    """Run `pg-schema-sync ARGS` as a user would: a child process with its own environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The container tests' figures (image size, build time, ...) and the plan tests'
    convergence counts at the end of the output."""
    from tests.engine import FIGURES
    from tests.plan_support import CONVERGENCE

    if FIGURES:
        terminalreporter.section("docker")
        for line in FIGURES:
            terminalreporter.write_line(line)
    if CONVERGENCE:
        terminalreporter.section("plan convergence (directions)")
        for table, counts in sorted(CONVERGENCE.items()):
            terminalreporter.write_line(
                f"{table}: " + ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
            )


def backup_names(folder: Path) -> list[str]:
    """The backup folders a user would list (the probe's record file sits beside them)."""
    return sorted(p.name for p in folder.glob("schema-sync-*") if p.is_dir())
