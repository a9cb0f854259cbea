"""The command as a user installs it: a wheel from `uv build` in a fresh venv, run from the
user's own folder (paths are relative to the working directory, not to the clone)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Database, backup_names

REPO = Path(__file__).resolve().parent.parent


def _uv() -> str:
    uv = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed")
    return uv


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc.stdout


def test_wheel_installs_into_a_fresh_venv_and_syncs_into_the_working_folder(
    db: Database, tmp_path: Path
) -> None:
    uv = _uv()
    dist, venv, project = tmp_path / "dist", tmp_path / "venv", tmp_path / "my-project"
    project.mkdir()
    _run([uv, "build", "--wheel", "-q", "-o", str(dist)], REPO)
    [wheel] = dist.glob("pg_schema_sync-*.whl")
    _run([uv, "venv", "-q", str(venv)], tmp_path)
    # Pinned to uv.lock's versions, as the container and `uv tool install .` get them.
    pins = _run([uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"], REPO)
    (tmp_path / "pins.txt").write_text(pins)
    _run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(venv / "bin/python"),
            "-r",
            str(tmp_path / "pins.txt"),
            str(wheel),
        ],
        tmp_path,
    )
    command = str(venv / "bin/pg-schema-sync")
    assert "usage: pg-schema-sync" in _run([command, "--help"], project)
    db.sql("CREATE TABLE t (id int)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
    env["SCHEMA_SYNC_DSN"] = db.dsn
    before = (
        sorted(p.name for p in (REPO / "backups").iterdir()) if (REPO / "backups").exists() else []
    )
    out = _run([command, "sync"], project, env)
    assert "first sync" in out
    assert (project / "sql/schemas/complete-schema.sql").is_file()  # where it was run
    assert len(backup_names(project / "backups")) == 1
    after = (
        sorted(p.name for p in (REPO / "backups").iterdir()) if (REPO / "backups").exists() else []
    )
    assert after == before  # nothing written into the tool's own clone
