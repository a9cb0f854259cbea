"""The benchmark's quick mode as CI runs it: correctness of the harness, no timing goals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_checks_correctness_and_prints_the_table(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Its own assertions held: the unchanged sync left sql/ alone, compare found 3 changes.
    assert "quick: correctness checks passed" in proc.stdout
    table = (tmp_path / "benchmark.md").read_text()
    assert table in proc.stdout  # the table it wrote is the table it printed
    for command in ("pg_dump", "sync (full)", "sync (unchanged)", "check", "compare"):
        assert f"| 50 | {command} |" in table
    assert "SIGHUP → sync.started" in table or "daemon figures skipped" in table
    assert not (tmp_path / "benchmark.png").exists()  # quick mode draws no chart
    assert "## Catalog probe" in table and "| 50 |" in table.split("## Catalog probe")[1]
    assert "## Status page: render time" in table and "not judged (quick)" in table
    # Start-up: the installed command against psql --version, a skipped check among them.
    startup = table.split("## Start-up (issue 22)")[1]
    for command in ("--version", "--help", "check"):
        assert f"| `{command}` |" in startup
    assert "## Targets (issue 22)" in table
