"""`pg-schema-sync ARGS` run inside the test process: what a user sees (exit code, stdout,
stderr) without an interpreter start-up per command (~1-3 s each on a loaded machine)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import structlog

from service.cli.main import main
from tests.conftest import CliResult


def in_process(
    args: list[str], cwd: Path, env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> CliResult:
    """Like run_cli: its own environment (no PG*/SCHEMA_SYNC_* of ours) and folder."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith(("PG", "SCHEMA_SYNC_"))]:
            mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        mp.chdir(cwd)
        capfd.readouterr()
        # main() points structlog at this test's captured stderr, which is closed after it:
        # later in-process code must log where it did before.
        logging_before = structlog.get_config()
        try:
            code = main(args)
        finally:
            structlog.configure(**logging_before)
        out, err = capfd.readouterr()
    result = CliResult.__new__(CliResult)
    result.code, result.out, result.err = code, out, err
    return result
