"""The one-shot pipeline end to end: `pg-schema-sync sync` / `check` against a real server."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from tests.conftest import FIXTURES, NO_DRIFT, Database, new_database, run_cli

SCHEMA = Path("sql/schemas/complete-schema.sql")
FUNCTIONS = Path("sql/schemas/functions.sql")
INVENTORY = Path("sql/schemas/inventory.json")


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


def env_for(db: Database, **extra: str) -> dict[str, str]:
    return {"SCHEMA_SYNC_DSN": db.dsn, **extra}


def backups(workdir: Path) -> list[Path]:
    root = workdir / "backups"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def snapshot_files(workdir: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtimes under sql/, folders included: a temp file created and removed there
    changes its folder's mtime, so "nothing written" means not even a temp file."""
    out = {}
    for p in sorted([workdir / "sql", *(workdir / "sql").rglob("*")]):
        content = p.read_bytes() if p.is_file() else b""
        out[str(p.relative_to(workdir))] = (content, p.stat().st_mtime_ns)
    return out


def test_first_sync_writes_installable_files_and_a_backup(
    shop: Database, cluster: ScratchCluster, tmp_path: Path
) -> None:
    result = run_cli("sync", cwd=tmp_path, env=env_for(shop))
    assert result.code == 0, result.err
    assert "first sync" in result.out
    for rel in (SCHEMA, FUNCTIONS, INVENTORY):
        assert (tmp_path / rel).stat().st_size > 0
    schema = (tmp_path / SCHEMA).read_text()
    assert "Dumped from database version" not in schema
    assert "Dumped by pg_dump version" not in schema
    assert 'CREATE TABLE "Küche"."Rezept Liste"' in schema
    functions = (tmp_path / FUNCTIONS).read_text()
    assert "CREATE FUNCTION shop.price(qty integer)" in functions
    assert "CREATE FUNCTION shop.price(qty integer, discount numeric)" in functions
    assert "CREATE TABLE" not in functions
    [backup] = backups(tmp_path)
    assert backup.name.startswith("schema-sync-")
    assert sorted(p.name for p in backup.iterdir()) == [
        "inventory.json",
        "manifest.json",
        "production-functions.sql",
        "production-schema.sql",
        "sync-summary.md",
    ]
    assert (backup / "production-schema.sql").read_bytes() == (tmp_path / SCHEMA).read_bytes()
    manifest = json.loads((backup / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((backup / name).read_bytes()).hexdigest() == digest, name
    summary = (backup / "sync-summary.md").read_text()
    assert "PostgreSQL 15" in summary and "| table |" in summary
    # The written file installs into an empty database exactly as psql would run it.
    fresh = new_database(cluster)
    fresh.load(tmp_path / SCHEMA)
    assert "Rezept Liste" in fresh.sql("SELECT relname FROM pg_class WHERE relname LIKE 'Rezept%'")
    # The backup is a copy no edit of the live files reaches (an editor writing in place).
    kept = (backup / "production-schema.sql").read_bytes()
    with open(tmp_path / SCHEMA, "r+b") as fh:
        fh.write(b"-- edited by hand\n")
    assert (backup / "production-schema.sql").read_bytes() == kept
    # ...and the next run notices the edit: the probe's record holds what the sync wrote.
    check = run_cli("check", "--json", cwd=tmp_path, env=env_for(shop))
    assert check.code == 1, check.err
    assert [c["name"] for c in check.json()["changes"]] == [str(SCHEMA)]


def test_unchanged_database_writes_nothing_and_makes_no_backup(
    shop: Database, tmp_path: Path
) -> None:
    assert run_cli("sync", cwd=tmp_path, env=env_for(shop)).code == 0
    before, backups_before = snapshot_files(tmp_path), backups(tmp_path)
    result = run_cli("sync", cwd=tmp_path, env=env_for(shop))
    assert result.code == 0, result.err
    assert "no drift, nothing written" in result.out
    assert snapshot_files(tmp_path) == before  # same bytes and same mtimes
    assert backups(tmp_path) == backups_before
    check = run_cli("check", "--json", cwd=tmp_path, env=env_for(shop))
    assert (check.code, check.json()) == (0, NO_DRIFT)


def test_hotfix_and_new_column_are_named_diffed_and_written(shop: Database, tmp_path: Path) -> None:
    assert run_cli("sync", cwd=tmp_path, env=env_for(shop)).code == 0
    old_schema = (tmp_path / SCHEMA).read_bytes()
    shop.sql(
        "CREATE OR REPLACE FUNCTION shop.price(qty integer) RETURNS numeric "
        "LANGUAGE sql IMMUTABLE AS $$ SELECT qty * 1.75 $$;"
        "ALTER TABLE shop.orders ADD COLUMN note text;"
    )
    check = run_cli("check", "--json", cwd=tmp_path, env=env_for(shop))
    assert check.code == 1, check.err
    changes = [
        {k: c[k] for k in ("kind", "name", "change", "impact")} for c in check.json()["changes"]
    ]
    assert changes == [  # the worst first
        {
            "kind": "function",
            "name": "shop.price(integer)",
            "change": "changed",
            "impact": "behavioural",
        },
        {"kind": "table", "name": "shop.orders", "change": "changed", "impact": "compatible"},
    ]
    assert not any(c["name"] == "shop.price(integer, numeric)" for c in changes)
    assert (tmp_path / SCHEMA).read_bytes() == old_schema  # check writes nothing

    result = run_cli("sync", cwd=tmp_path, env=env_for(shop))
    assert result.code == 0, result.err
    assert "behavioural changed  function shop.price(integer): function body changed" in result.out
    assert b"note text" in (tmp_path / SCHEMA).read_bytes()
    assert b"1.75" in (tmp_path / FUNCTIONS).read_bytes()
    latest = backups(tmp_path)[-1]
    summary = (latest / "sync-summary.md").read_text()
    assert "#### changed: function `shop.price(integer)`" in summary
    assert "### Behavioural (1)" in summary and "- `function body changed`" in summary
    assert "+" in summary and "1.75" in summary and "note text" in summary
    again = run_cli("check", "--json", cwd=tmp_path, env=env_for(shop))
    assert (again.code, again.json()["drift"]) == (0, False)


def test_hand_edited_file_is_reported_and_repaired(shop: Database, tmp_path: Path) -> None:
    assert run_cli("sync", cwd=tmp_path, env=env_for(shop)).code == 0
    pristine = (tmp_path / SCHEMA).read_bytes()
    with open(tmp_path / SCHEMA, "a") as fh:
        fh.write("-- local edit\n")
    check = run_cli("check", "--json", cwd=tmp_path, env=env_for(shop))
    assert check.code == 1
    [change] = check.json()["changes"]
    assert (change["kind"], change["name"], change["change"]) == ("file", str(SCHEMA), "changed")
    assert change["impact"] == "behavioural"
    assert run_cli("sync", cwd=tmp_path, env=env_for(shop)).code == 0
    assert (tmp_path / SCHEMA).read_bytes() == pristine


def test_schema_filter_limits_files_and_inventory(shop: Database, tmp_path: Path) -> None:
    # A pg_dump pattern: quoted, so the capital K is kept (unquoted it would be folded).
    result = run_cli("sync", "--schema", '"Küche"', cwd=tmp_path, env=env_for(shop))
    assert result.code == 0, result.err
    schema = (tmp_path / SCHEMA).read_text()
    assert '"Küche"."Rezept Liste"' in schema
    assert "shop.orders" not in schema
    shop.sql("ALTER TABLE shop.orders ADD COLUMN ignored int")
    check = run_cli("check", "--json", "--schema", '"Kü"*', cwd=tmp_path, env=env_for(shop))
    assert (check.code, check.json()["drift"]) == (0, False)


def _fake_pg_dump(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "bin" / "pg_dump"
    script.parent.mkdir(exist_ok=True)
    script.write_text("#!/bin/bash\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_pg_dump_missing_is_one_clear_line(shop: Database, tmp_path: Path) -> None:
    result = run_cli(
        "sync", cwd=tmp_path, env=env_for(shop, SCHEMA_SYNC_PG_DUMP="/nonexistent/pg_dump")
    )
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "pg-schema-sync: pg_dump not found ('/nonexistent/pg_dump'): install the PostgreSQL "
        "client (apt-get install postgresql-client) or set pg_dump to its path"
    ]
    assert not (tmp_path / "sql").exists() or not any((tmp_path / "sql").rglob("*.sql"))


def test_pg_dump_older_than_server_is_refused(shop: Database, tmp_path: Path) -> None:
    # A pg_dump older than the server cannot be produced on demand here: simulate its answer.
    fake = _fake_pg_dump(tmp_path, 'echo "pg_dump (PostgreSQL) 13.4"\n')
    result = run_cli("sync", cwd=tmp_path, env=env_for(shop, SCHEMA_SYNC_PG_DUMP=str(fake)))
    assert result.code == 2
    assert "pg_dump 13.4 is older than the server (PostgreSQL 15)" in result.err
    assert "install pg_dump 15 or newer" in result.err
    assert not (tmp_path / SCHEMA).exists()


def test_pg_dump_killed_mid_export_leaves_previous_files(shop: Database, tmp_path: Path) -> None:
    assert run_cli("sync", cwd=tmp_path, env=env_for(shop)).code == 0
    before, backups_before = snapshot_files(tmp_path), backups(tmp_path)
    shop.sql("ALTER TABLE shop.orders ADD COLUMN lost text")
    real = subprocess.run(["which", "pg_dump"], capture_output=True, text=True).stdout.strip()
    # Pass --version through; otherwise emit part of a real export and die by SIGKILL.
    fake = _fake_pg_dump(
        tmp_path,
        f'if [ "$1" = --version ]; then exec {real} --version; fi\n'
        f'{real} "$@" | head -c 3000\nkill -9 $$\n',
    )
    result = run_cli("sync", cwd=tmp_path, env=env_for(shop, SCHEMA_SYNC_PG_DUMP=str(fake)))
    assert result.code == 2
    assert "pg_dump was killed by signal 9" in result.err
    assert snapshot_files(tmp_path) == before
    assert backups(tmp_path) == backups_before
    leftovers = [p.name for p in (tmp_path / "sql/schemas").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_wrong_password_is_clear_writes_nothing_and_never_shows_the_password(
    shop: Database, cluster: ScratchCluster, tmp_path: Path
) -> None:
    secret = "Sup3r-Secret-pw"
    # A realistic read-only role: pg_dump needs to read every table it locks.
    shop.sql(
        f"CREATE ROLE app_reader LOGIN PASSWORD '{secret}'; GRANT pg_read_all_data TO app_reader"
    )
    try:
        wrong = "wrong-" + secret
        dsn = f"postgresql://app_reader@127.0.0.1:{cluster.port}/{shop.name}"
        result = run_cli("sync", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": dsn, "PGPASSWORD": wrong})
        assert result.code == 2
        [line] = result.err.strip().splitlines()
        assert "authentication failed for app_reader@127.0.0.1" in line
        assert wrong not in result.out + result.err
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
        assert backups(tmp_path) == []
        # Right password: works, and the password is in no file, argv or output.
        argv_log = tmp_path / "argv.log"
        real = subprocess.run(["which", "pg_dump"], capture_output=True, text=True).stdout.strip()
        spy = _fake_pg_dump(
            tmp_path,
            f'echo "$@" >> {argv_log}\nenv | grep -c "^PGPASSWORD=" >> {argv_log}\n'
            f'exec {real} "$@"\n',
        )
        ok = run_cli(
            "sync",
            "--log-level",
            "debug",
            cwd=tmp_path,
            env={"SCHEMA_SYNC_DSN": dsn, "PGPASSWORD": secret, "SCHEMA_SYNC_PG_DUMP": str(spy)},
        )
        assert ok.code == 0, ok.err
        assert secret not in ok.out + ok.err
        assert secret not in argv_log.read_text()
        assert "1" in argv_log.read_text().split()  # it did reach pg_dump, via the environment
        for p in tmp_path.rglob("*"):
            if p.is_file():
                assert secret.encode() not in p.read_bytes(), p
    finally:
        shop.sql("DROP OWNED BY app_reader; DROP ROLE app_reader")


def test_invalid_setting_is_one_line_naming_field_and_value(tmp_path: Path) -> None:
    result = run_cli("check", cwd=tmp_path, env={"SCHEMA_SYNC_LOCK_WAIT_TIMEOUT_MS": "soon"})
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert line.startswith("pg-schema-sync: invalid setting lock_wait_timeout_ms='soon'")
    assert "SCHEMA_SYNC_LOCK_WAIT_TIMEOUT_MS" in line


def test_libpq_environment_variables_select_the_database(shop: Database, tmp_path: Path) -> None:
    env = {
        "PGHOST": str(shop.cluster.sockdir),
        "PGPORT": str(shop.cluster.port),
        "PGUSER": shop.cluster.superuser,
        "PGDATABASE": shop.name,
    }
    result = run_cli("sync", cwd=tmp_path, env=env)
    assert result.code == 0, result.err
    assert "shop.orders" in (tmp_path / SCHEMA).read_text()


def test_config_file_paths_resolve_against_working_directory(
    shop: Database, tmp_path: Path
) -> None:
    config = tmp_path / "config" / "pg-schema-sync.toml"
    config.parent.mkdir()
    config.write_text(
        f'dsn = "{shop.dsn}"\nschema_file = "out/all.sql"\nfunctions_file = "out/fn.sql"\n'
        'inventory_file = "out/inventory.json"\nbackup_dir = "history"\n'
    )
    result = run_cli("sync", cwd=tmp_path)
    assert result.code == 0, result.err
    assert (tmp_path / "out/all.sql").exists() and (tmp_path / "out/fn.sql").exists()
    assert len(list((tmp_path / "history").glob("schema-sync-*"))) == 1


def test_compare_two_live_databases_by_socket_uri(cluster: ScratchCluster, shop: Database) -> None:
    other = new_database(cluster, FIXTURES / "shop.sql")
    same = run_cli("compare", "--json", shop.dsn, other.dsn, cwd=Path(os.getcwd()))
    assert (same.code, same.json()) == (0, NO_DRIFT)
    other.sql("DROP VIEW shop.open_orders")
    differ = run_cli("compare", "--json", shop.dsn, other.dsn, cwd=Path(os.getcwd()))
    assert differ.code == 1
    assert differ.json()["changes"] == [
        {
            "kind": "view",
            "name": "shop.open_orders",
            "change": "removed",
            "impact": "breaking",
            "reasons": ["view removed"],
        }
    ]


def test_hand_edited_inventory_is_named_as_the_object_it_changes(
    shop: Database, tmp_path: Path
) -> None:
    assert run_cli("sync", cwd=tmp_path, env=env_for(shop)).code == 0
    inventory = tmp_path / INVENTORY
    pristine = inventory.read_bytes()
    edited = pristine.replace(b"total numeric(10,2)", b"total numeric(12,2)", 1)
    assert edited != pristine
    inventory.write_bytes(edited)
    check = run_cli("check", "--json", cwd=tmp_path, env=env_for(shop))
    assert check.code == 1, check.err
    assert check.json()["changes"] == [
        {
            "kind": "table",
            "name": "shop.orders",
            "change": "changed",
            # the files say (12,2), production (10,2): values that fit the files overflow
            "impact": "breaking",
            "reasons": ["column total: numeric(12,2) -> numeric(10,2)"],
        }
    ]
    assert run_cli("sync", cwd=tmp_path, env=env_for(shop)).code == 0
    assert inventory.read_bytes() == pristine
