"""A command that answers at once: `--help` and `--version` import nothing heavy, and a `check`
whose probe finds nothing changed imports neither the full-read pipeline nor the daemon's.

What is asserted is what loads, never how long it takes (the timings are in `./dev bench`,
docs/benchmark.md): a heavy import added at the top of a command module fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Database, run_cli

ROOT = Path(__file__).resolve().parent.parent

# The libraries a parser must not need: settings (pydantic), database, alerts, scheduler,
# metrics, logging, and the event loop itself.
HEAVY = (
    "pydantic",
    "pydantic_settings",
    "asyncpg",
    "sentry_sdk",
    "httpx",
    "apscheduler",
    "prometheus_client",
    "structlog",
    "asyncio",
)

PROBE = """
import contextlib, io, json, sys
from service.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
roots = sorted({m.split(".")[0] for m in sys.modules} | {m for m in sys.modules})
print(json.dumps({"code": code, "out": out.getvalue(), "modules": roots}))
"""


def loaded(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run the command line in a fresh interpreter; what it printed and every module loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


COMMANDS = [
    (),
    ("sync",),
    ("check",),
    ("compare",),
    ("verify",),
    ("rollback",),
    ("backups",),
    ("backups", "prune"),
    ("run",),
    ("health",),
    ("git", "status"),
    ("alerts", "test"),
    ("config",),
    ("demo",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_imports_nothing_heavy(command: tuple[str, ...]) -> None:
    result = loaded(*command, "--help")
    assert result["code"] == 0
    assert "usage: pg-schema-sync" in str(result["out"])
    modules = set(result["modules"])  # type: ignore[call-overload]
    assert sorted(modules & set(HEAVY)) == []


def test_version_imports_nothing_heavy() -> None:
    result = loaded("--version")
    assert result["code"] == 0 and str(result["out"]).startswith("pg-schema-sync ")
    assert sorted(set(result["modules"]) & set(HEAVY)) == []  # type: ignore[call-overload]


def test_a_skipped_check_loads_no_full_read_and_no_daemon(db: Database, tmp_path: Path) -> None:
    db.sql("CREATE TABLE t (id int PRIMARY KEY)")
    env = {"SCHEMA_SYNC_DSN": db.dsn}
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
    result = loaded("check", cwd=tmp_path, env={**clean, **env})
    assert result["code"] == 0 and result["out"] == "in sync: no drift\n"
    modules = set(result["modules"])  # type: ignore[call-overload]
    unneeded = {
        "service.production.snapshot",  # the full read: pg_dump beside the catalog reader
        "service.verify",
        "service.delivery.git",
        "service.disk.backups",
        "service.daemon",
        "sentry_sdk",
        "httpx",
        "apscheduler",
        "prometheus_client",
        "structlog",  # nothing to log: its import is left to the first event
    }
    assert sorted(modules & unneeded) == []
