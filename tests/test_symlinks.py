"""Managed files that are symbolic links are refused by every reader, never followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Database, backup_names, run_cli
from tests.inproc import in_process

SECRET = "TOP-SECRET-contents-of-a-root-only-file"


def _everything_written(folder: Path) -> str:
    return "".join(
        p.read_text(errors="replace")
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    )


@pytest.mark.parametrize("managed", ["complete-schema.sql", "functions.sql", "inventory.json"])
def test_symlinked_schema_file_is_refused_by_every_reader_in_one_line(
    managed: str, db: Database, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {"SCHEMA_SYNC_DSN": db.dsn, "SCHEMA_SYNC_VERIFY_DSN": db.dsn}
    db.sql("CREATE TABLE t (id int)")
    assert in_process(["sync"], work, env, capfd).code == 0
    db.sql("CREATE TABLE u (id int)")
    assert in_process(["sync"], work, env, capfd).code == 0  # two backups: rollback has a target
    secret = tmp_path / "root-only.txt"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    link = work / "sql/schemas" / managed
    link.unlink()
    link.symlink_to(secret)
    db.sql("ALTER TABLE t ADD COLUMN x int")  # drift: sync would write a summary and a backup
    before = sorted(p.name for p in (work / "backups").iterdir())
    for args in (
        ["check", "--diff"],
        ["sync"],
        ["rollback"],
        ["backups", "diff", backup_names(work / "backups")[0], "current", "--diff"],
        ["verify"],
    ):
        result = in_process(args, work, env, capfd)
        assert result.code == 2, (args, result.out, result.err)
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.err, (args, result.err)
        assert "is a symbolic link" in lines[0] and managed in lines[0], (args, lines)
        assert SECRET not in result.out + result.err, args
    assert SECRET not in _everything_written(work)
    assert sorted(p.name for p in (work / "backups").iterdir()) == before
    assert link.is_symlink() and os.readlink(link) == str(secret)  # left for a person to see


def test_a_linked_managed_folder_is_a_deliberate_choice_and_works(
    db: Database, tmp_path: Path
) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    work = tmp_path / "work"
    (work / "sql").mkdir(parents=True)
    (work / "sql/schemas").symlink_to(real)
    db.sql("CREATE TABLE t (id int)")
    result = run_cli("sync", cwd=work, env={"SCHEMA_SYNC_DSN": db.dsn})
    assert result.code == 0, result.err
    assert (real / "complete-schema.sql").is_file()
