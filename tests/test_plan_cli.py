"""`pg-schema-sync plan` as a user runs it: what stdout and stderr say, and the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from service.demo.cluster import ScratchCluster
from tests.conftest import FIXTURES, Database, new_database, run_cli

SECRET = "plan-s3cret-Ünïcode"
CHANGES = """
ALTER TABLE shop.orders ADD COLUMN note text;
CREATE VIEW shop.paid AS SELECT id FROM shop.orders WHERE status = 'paid';
CREATE OR REPLACE FUNCTION shop.price(qty integer) RETURNS numeric LANGUAGE sql IMMUTABLE
    AS $$ SELECT qty * 2.0 $$;
"""


def _env(cluster: ScratchCluster, **more: str) -> dict[str, str]:
    return {"SCHEMA_SYNC_VERIFY_DSN": cluster.dsn("postgres"), **more}


def _pair(cluster: ScratchCluster) -> tuple[Database, Database]:
    old = new_database(cluster, FIXTURES / "shop.sql")
    new = new_database(cluster, FIXTURES / "shop.sql")
    new.sql(CHANGES)
    return old, new


def test_a_verified_plan_turns_from_into_to(cluster: ScratchCluster, tmp_path: Path) -> None:
    cluster.psql(
        "postgres",
        f"DROP ROLE IF EXISTS plan_user; CREATE ROLE plan_user LOGIN SUPERUSER PASSWORD '{SECRET}'",
    )
    old, new = _pair(cluster)
    try:
        source = cluster.tcp_dsn(old.name, "plan_user", SECRET)  # a password in the DSN
        env = _env(cluster, SCHEMA_SYNC_LOCK_WAIT_TIMEOUT_MS="1234")
        result = run_cli("plan", source, new.dsn, cwd=tmp_path, env=env)
        assert result.code == 0, result.err
        assert SECRET not in result.out + result.err
        lines = result.out.splitlines()
        assert lines[0] == "-- pg-schema-sync plan"
        assert lines[1] == f"-- from: plan_user@127.0.0.1:{cluster.port}/{old.name}"
        assert lines[3].startswith("-- verified: applied to a scratch copy of FROM")
        assert "SET lock_timeout = '1234ms';" in lines
        assert lines.index("BEGIN;") < lines.index("COMMIT;")
        assert "-- view shop.paid: create; lock: none" in lines
        assert "plan verified: " in result.err and "converges (3 statements" in result.err
        # What stdout printed, run by psql, gives FROM TO's schema.
        script = tmp_path / "plan.sql"
        script.write_text(result.out)
        old.load(script)
        same = run_cli("compare", "--json", old.dsn, new.dsn, cwd=tmp_path)
        assert (same.code, same.json()["changes"]) == (0, []), same.out
    finally:
        cluster.drop_database(old.name)
        cluster.drop_database(new.name)


def test_the_same_schema_is_nothing_to_do_and_json_lists_statements(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    old, new = _pair(cluster)
    try:
        same = run_cli("plan", "--no-verify", old.dsn, old.dsn, cwd=tmp_path)
        assert same.code == 0, same.err
        assert same.out.splitlines()[-1] == "-- nothing to do"
        assert "nothing to do" in same.err
        doc = run_cli("plan", "--json", "--no-verify", old.dsn, new.dsn, cwd=tmp_path)
        assert doc.code == 0, doc.err
        statements = doc.json()["statements"]
        assert {s["object"] for s in statements} == {
            "shop.orders",
            "shop.price(integer)",
            "shop.paid",
        }
        for s in statements:
            assert set(s) >= {"sql", "object", "kind", "change", "hazards", "transactional"}
        add = next(s for s in statements if s["object"] == "shop.orders")
        assert add["sql"] == "ALTER TABLE shop.orders ADD COLUMN note text"
        assert add["hazards"] == ["access_exclusive_lock"] and add["transactional"] is True
        assert doc.json()["verification"].startswith("NOT verified")
    finally:
        cluster.drop_database(old.name)
        cluster.drop_database(new.name)


def test_an_unsafe_change_is_no_plan_each_object_named(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    old, new = _pair(cluster)
    try:
        old.sql("ALTER TYPE shop.status ADD VALUE 'lost'")  # TO lacks it; orders.status holds it
        result = run_cli("plan", old.dsn, new.dsn, cwd=tmp_path, env=_env(cluster))
        assert result.code == 2, result.err
        assert result.out == ""
        refusals = [ln for ln in result.err.splitlines() if "cannot plan" in ln]
        assert refusals == [
            "pg-schema-sync: cannot plan type shop.status: enum labels are removed or "
            "reordered, and column data of shop.orders uses it: recreating the type would "
            "delete that data"
        ]
        assert "Traceback" not in result.err
    finally:
        cluster.drop_database(old.name)
        cluster.drop_database(new.name)


def test_a_plan_verification_rejects_is_printed_and_exits_1(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    # A security label as a provider would store it: no provider is loaded here, so the
    # plan's SECURITY LABEL statement fails on the scratch copy.
    old, new = _pair(cluster)
    try:
        new.sql(
            "INSERT INTO pg_catalog.pg_seclabel VALUES ('shop.orders'::regclass, "
            "'pg_catalog.pg_class'::regclass, 0, 'dummy', 'secret')"
        )
        result = run_cli("plan", old.dsn, new.dsn, cwd=tmp_path, env=_env(cluster))
        assert result.code == 1, result.err
        assert "SECURITY LABEL FOR dummy ON TABLE shop.orders IS 'secret';" in result.out
        assert "the plan fails: the plan:" in result.err
        assert 'security label provider "dummy" is not loaded' in result.err
        assert "plan NOT verified" in result.err
    finally:
        cluster.drop_database(old.name)
        cluster.drop_database(new.name)


def test_files_and_backups_are_sides(cluster: ScratchCluster, tmp_path: Path) -> None:
    """Revert production to the files: plan production -> files, and -> a backup."""
    production = new_database(cluster, FIXTURES / "shop.sql")
    try:
        env = _env(cluster, SCHEMA_SYNC_DSN=production.dsn)
        first = run_cli("sync", cwd=tmp_path, env=env)
        assert first.code == 0, first.err
        production.sql(
            "ALTER TABLE shop.orders ADD COLUMN hotfix integer; DROP VIEW shop.open_orders"
        )
        to_files = run_cli("plan", production.dsn, "files", cwd=tmp_path, env=env)
        assert to_files.code == 0, to_files.err
        assert "-- to:   files (sql/schemas/complete-schema.sql)" in to_files.out
        assert "ALTER TABLE shop.orders DROP COLUMN hotfix;" in to_files.out
        assert "CREATE VIEW shop.open_orders AS" in to_files.out
        backup = json.loads(run_cli("backups", "--json", cwd=tmp_path, env=env).out)[0]["name"]
        to_backup = run_cli("plan", "--json", production.dsn, backup, cwd=tmp_path, env=env)
        assert to_backup.code == 0, to_backup.err
        assert to_backup.json()["to"] == f"backup {backup}"
        sqls = [s["sql"] for s in to_backup.json()["statements"]]
        assert "ALTER TABLE shop.orders DROP COLUMN hotfix" in sqls
    finally:
        cluster.drop_database(production.name)


def test_bad_input_is_one_line_and_exit_2(cluster: ScratchCluster, tmp_path: Path) -> None:
    env = _env(cluster)
    dsn = cluster.dsn("postgres")
    cases = {
        (
            "plan",
            "--allow-hazards",
            "drop_everything",
            dsn,
            dsn,
        ): "unknown hazard 'drop_everything'",
        ("plan", "--apply", "files", dsn): "--apply needs FROM to be a database",
        ("plan", "mysql://root:pw@h/db", dsn): "not a libpq connection string",
        ("plan", "--apply", "--no-verify", dsn, dsn): "--apply runs only a verified plan",
        ("plan", "files", dsn): "does not exist: run `pg-schema-sync sync` first",
        ("plan", "schema-sync-20990101_000000", dsn): "schema-sync-20990101_000000",
    }
    for argv, expected in cases.items():
        result = run_cli(*argv, cwd=tmp_path, env=env)
        assert result.code == 2, (argv, result.err)
        assert expected in result.err, (argv, result.err)
        assert result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
        assert "pw@" not in result.err


def test_without_a_verify_server_files_cannot_be_a_side(tmp_path: Path) -> None:
    (tmp_path / "sql/schemas").mkdir(parents=True)
    (tmp_path / "sql/schemas/complete-schema.sql").write_text("CREATE TABLE t (a int);\n")
    result = run_cli("plan", "files", "host=/nowhere dbname=x", cwd=tmp_path)
    assert result.code == 2
    assert "set verify_dsn" in result.err and result.err.count("\n") == 1


def test_help_names_the_sides_and_exit_codes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "service", "plan", "--help"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "--allow-hazards" in proc.stdout and "backup name" in proc.stdout
