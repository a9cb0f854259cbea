"""`pg-schema-sync rollback`, `backups` and `backups diff` on backups made by real syncs."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from service.disk.files import BACKUP_INVENTORY, BACKUP_MANIFEST, BACKUP_SCHEMA, list_backups
from tests.conftest import FIXTURES, NO_DRIFT, Database, new_database, run_cli

SCHEMA = Path("sql/schemas/complete-schema.sql")
FUNCTIONS = Path("sql/schemas/functions.sql")
INVENTORY = Path("sql/schemas/inventory.json")
FILES = (SCHEMA, FUNCTIONS, INVENTORY)


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


@pytest.fixture
def two_syncs(shop: Database, tmp_path: Path) -> tuple[Path, Path]:
    """Backups A (first sync) and B (after a hot-fix); the files on disk are B's."""
    env = {"SCHEMA_SYNC_DSN": shop.dsn}
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    shop.sql(
        "CREATE OR REPLACE FUNCTION shop.price(qty integer) RETURNS numeric "
        "LANGUAGE sql IMMUTABLE AS $$ SELECT qty * 1.75 $$;"
        "ALTER TABLE shop.orders ADD COLUMN note text;"
    )
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    a, b = list_backups(tmp_path / "backups")
    return a, b


def on_disk(workdir: Path) -> dict[Path, bytes]:
    return {p: (workdir / p).read_bytes() for p in FILES}


def in_backup(backup: Path) -> dict[Path, bytes]:
    names = ("production-schema.sql", "production-functions.sql", "inventory.json")
    return {p: (backup / n).read_bytes() for p, n in zip(FILES, names, strict=True)}


def test_rollback_restores_byte_identical_files_and_can_be_undone(
    two_syncs: tuple[Path, Path], shop: Database, tmp_path: Path
) -> None:
    a, b = two_syncs
    b_files = on_disk(tmp_path)
    assert b_files == in_backup(b)

    result = run_cli("rollback", cwd=tmp_path)
    assert result.code == 0, result.err
    assert f"restored {a.name}" in result.out
    assert on_disk(tmp_path) == in_backup(a)
    recorded = list_backups(tmp_path / "backups")[-1]
    assert f"recorded as backup {recorded.name}" in result.out
    m = json.loads((recorded / BACKUP_MANIFEST).read_text())
    assert (m["kind"], m["status"], m["restored_from"]) == ("rollback", "done", a.name)
    assert in_backup(recorded) == in_backup(a)
    # Production still has the hot-fix: check now reports it against the restored files.
    check = run_cli("check", "--json", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": shop.dsn})
    assert check.code == 1
    assert {
        "kind": "function",
        "name": "shop.price(integer)",
        "change": "changed",
        "impact": "behavioural",
        "reasons": ["function body changed"],
    } in check.json()["changes"]

    undo = run_cli("rollback", cwd=tmp_path)
    assert undo.code == 0, undo.err
    assert f"restored {b.name}" in undo.out
    assert on_disk(tmp_path) == b_files
    assert not [p for p in (tmp_path / "sql/schemas").iterdir() if p.name.startswith(".")]


def test_rollback_to_a_named_backup(two_syncs: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = two_syncs
    result = run_cli("rollback", f"backups/{a.name}", cwd=tmp_path)
    assert result.code == 0, result.err
    assert on_disk(tmp_path) == in_backup(a)


def test_rollback_keeps_hand_edited_files_as_a_backup_first(
    two_syncs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, _ = two_syncs
    with open(tmp_path / SCHEMA, "a") as fh:
        fh.write("-- a local note nobody committed\n")
    edited = on_disk(tmp_path)
    assert run_cli("rollback", a.name, cwd=tmp_path).code == 0
    snapshot = next(
        p
        for p in list_backups(tmp_path / "backups")
        if json.loads((p / BACKUP_MANIFEST).read_text())["kind"] == "snapshot"
    )
    assert in_backup(snapshot) == edited
    assert run_cli("rollback", cwd=tmp_path).code == 0  # undo brings the edit back
    assert on_disk(tmp_path) == edited


def _outside(tmp_path: Path, a: Path) -> Path:
    elsewhere = tmp_path / "elsewhere" / a.name
    shutil.copytree(a, elsewhere)
    (elsewhere / BACKUP_SCHEMA).write_text("DROP TABLE everything;\n")
    return elsewhere


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t, a: "../elsewhere/" + a.name, "is not a backup folder inside backups"),
        (lambda t, a: str(_outside(t, a)), "is not a backup folder inside backups"),
        (lambda t, a: f"{a.name}/../../elsewhere", "is not a backup folder inside backups"),
        (lambda t, a: "/etc", "is not a backup folder inside backups"),
        (lambda t, a: "schema-sync-20000101_000000", "no backup schema-sync-20000101_000000"),
    ],
    ids=["dotdot", "absolute-outside", "dotdot-inside-name", "etc", "missing"],
)
def test_rollback_rejects_paths_outside_backups(
    two_syncs: tuple[Path, Path], tmp_path: Path, make: object, message: str
) -> None:
    a, _ = two_syncs
    before = on_disk(tmp_path)
    arg = make(tmp_path, a)  # type: ignore[operator]
    result = run_cli("rollback", arg, cwd=tmp_path)
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert line.startswith("pg-schema-sync: ") and message in line, line
    assert on_disk(tmp_path) == before


def test_rollback_rejects_symlinks_damage_and_missing_files(
    two_syncs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, _ = two_syncs
    before = on_disk(tmp_path)
    elsewhere = _outside(tmp_path, a)
    backups = tmp_path / "backups"
    (backups / "schema-sync-20990101_000000").symlink_to(elsewhere, target_is_directory=True)
    linked_file = backups / "schema-sync-20990101_000001"
    shutil.copytree(a, linked_file)
    (linked_file / BACKUP_SCHEMA).unlink()
    (linked_file / BACKUP_SCHEMA).symlink_to(elsewhere / BACKUP_SCHEMA)
    incomplete = backups / "schema-sync-20990101_000002"
    shutil.copytree(a, incomplete)
    (incomplete / BACKUP_INVENTORY).unlink()
    damaged = backups / "schema-sync-20990101_000003"
    shutil.copytree(a, damaged)
    with open(damaged / BACKUP_SCHEMA, "a") as fh:
        fh.write("DROP TABLE shop.orders;\n")
    for name, message in (
        ("schema-sync-20990101_000000", "is a symlink"),
        ("schema-sync-20990101_000001", f"{BACKUP_SCHEMA} is a symlink"),
        ("schema-sync-20990101_000002", f"is missing {BACKUP_INVENTORY}"),
        ("schema-sync-20990101_000003", "does not match the sha256 in its manifest"),
    ):
        result = run_cli("rollback", name, cwd=tmp_path)
        assert result.code == 2, (name, result.out)
        [line] = result.err.strip().splitlines()
        assert message in line, line
    assert on_disk(tmp_path) == before


def test_rollback_verify_restores_only_files_that_pass(
    two_syncs: tuple[Path, Path], cluster: ScratchCluster, tmp_path: Path
) -> None:
    a, _ = two_syncs
    before = on_disk(tmp_path)
    cluster.psql("postgres", "CREATE ROLE rb_verifier LOGIN CREATEDB")
    try:
        env = {"SCHEMA_SYNC_VERIFY_DSN": cluster.dsn("postgres", user="rb_verifier")}
        # The verify role cannot give objects to their owner: said before anything is
        # installed, and nothing is restored.
        failed = run_cli("rollback", "--verify", a.name, cwd=tmp_path, env=env)
        assert failed.code == 2, failed.err
        assert "rb_verifier is not a member of postgres" in failed.err
        assert on_disk(tmp_path) == before
    finally:
        cluster.psql("postgres", "DROP ROLE rb_verifier")
    env = {"SCHEMA_SYNC_VERIFY_DSN": cluster.dsn()}
    passed = run_cli("rollback", "--verify", a.name, cwd=tmp_path, env=env)
    assert passed.code == 0, passed.out + passed.err
    assert f"verify passed: backup {a.name}" in passed.out
    assert on_disk(tmp_path) == in_backup(a)
    recorded = list_backups(tmp_path / "backups")[-1]
    assert json.loads((recorded / BACKUP_MANIFEST).read_text())["verify"] == "passed"


def test_backups_lists_status_drift_and_hashes(
    two_syncs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = two_syncs
    result = run_cli("backups", cwd=tmp_path)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "BACKUP",
        "TIME",
        "(UTC)",
        "KIND",
        "STATUS",
        "VERIFY",
        "FILES",
        "DRIFT",
    ]
    assert lines[1].startswith(f" {a.name}") and "first run" in lines[1]
    assert lines[2].startswith(f"*{b.name}") and "2 changed" in lines[2]
    rows = run_cli("backups", "list", "--json", cwd=tmp_path).json()
    assert [(r["first_run"], r["status"], r["current"]) for r in rows] == [
        (True, "done", False),
        (False, "done", True),
    ]
    assert rows[1]["drift"] == {"changed": 2}
    schema_hash = hashlib.sha256((tmp_path / SCHEMA).read_bytes()).hexdigest()
    assert rows[1]["files"]["production-schema.sql"] == schema_hash
    assert rows[1]["files_hash"][:12] in lines[2]


def test_backups_diff_prints_the_same_form_as_check(
    two_syncs: tuple[Path, Path], shop: Database, tmp_path: Path
) -> None:
    a, b = two_syncs
    diff = run_cli("backups", "diff", "--json", a.name, b.name, cwd=tmp_path)
    assert diff.code == 1, diff.err
    assert [(c["kind"], c["name"], c["change"]) for c in diff.json()["changes"]] == [
        ("function", "shop.price(integer)", "changed"),
        ("table", "shop.orders", "changed"),
    ]
    assert diff.json()["headline"] == "2 changes (1 behavioural, 1 compatible)"
    same = run_cli("backups", "diff", "--json", b.name, "current", cwd=tmp_path)
    assert (same.code, same.json()) == (0, NO_DRIFT)
    text = run_cli("backups", "diff", "--diff", a.name, "current", cwd=tmp_path)
    assert "behavioural changed  function shop.price(integer)" in text.out
    assert "1.75" in text.out
    bad = run_cli("backups", "diff", "../x", "current", cwd=tmp_path)
    assert bad.code == 2 and "is not a backup folder inside backups" in bad.err
