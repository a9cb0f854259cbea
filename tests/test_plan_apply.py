"""`plan --apply` against a throwaway database: it runs only a verified plan, only with the
hazards allowed, stops at the first error naming it, and never runs a plan made for a schema
that changed since."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from service.plan.apply import ApplyError, apply
from service.plan.model import Change, Plan, Statement
from tests.conftest import FIXTURES, Database, new_database, run_cli


def _env(cluster: ScratchCluster) -> dict[str, str]:
    return {"SCHEMA_SYNC_VERIFY_DSN": cluster.dsn("postgres")}


def _events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(ln) for ln in stderr.splitlines() if ln.startswith("{")]


def test_apply_runs_a_verified_plan_and_from_gets_tos_schema(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    old = new_database(cluster, FIXTURES / "shop.sql")
    new = new_database(cluster, FIXTURES / "shop.sql")
    try:
        new.sql(
            "ALTER TABLE shop.orders ADD COLUMN note text;"
            "CREATE VIEW shop.paid AS SELECT id FROM shop.orders WHERE status = 'paid'"
        )
        result = run_cli(
            "plan", "--apply", "--allow-hazards", "access_exclusive_lock",
            "--log-format", "json", "--log-level", "info", old.dsn, new.dsn,
            cwd=tmp_path, env=_env(cluster),
        )  # fmt: skip
        assert result.code == 0, result.err
        assert "applied 2 statements to" in result.err
        events = _events(result.err)
        assert [e["object"] for e in events if e["event"] == "plan.apply.statement"] == [
            "table shop.orders", "view shop.paid",
        ]  # fmt: skip
        assert any(e["event"] == "plan.apply.committed" for e in events)
        same = run_cli("compare", "--json", old.dsn, new.dsn, cwd=tmp_path)
        assert (same.code, same.json()["changes"]) == (0, []), same.out
    finally:
        cluster.drop_database(old.name)
        cluster.drop_database(new.name)


def test_hazards_are_refused_unless_allowed_and_nothing_runs(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    old = new_database(cluster, FIXTURES / "shop.sql")
    new = new_database(cluster, FIXTURES / "shop.sql")
    try:
        old.sql("INSERT INTO shop.orders (total) VALUES (1), (2)")
        new.sql("ALTER TABLE shop.orders DROP COLUMN updated_at CASCADE")
        refused = run_cli("plan", "--apply", old.dsn, new.dsn, cwd=tmp_path, env=_env(cluster))
        assert refused.code == 2, refused.err
        assert "not applied: table shop.orders (alter) has hazards " in refused.err
        assert "deletes_data" in refused.err and "nothing applied" in refused.err
        assert "ALTER TABLE shop.orders DROP COLUMN updated_at;" in refused.out  # shown anyway
        columns = "SELECT count(*) FROM information_schema.columns WHERE column_name = 'updated_at'"
        assert old.sql(columns).strip() == "1"
        allowed = run_cli(
            "plan", "--apply", "--allow-hazards",
            "deletes_data,breaks_clients,access_exclusive_lock", old.dsn, new.dsn,
            cwd=tmp_path, env=_env(cluster),
        )  # fmt: skip
        assert allowed.code == 0, allowed.err
        assert old.sql(columns).strip() == "0"
        assert old.sql("SELECT count(*) FROM shop.orders").strip() == "2"  # rows kept
    finally:
        cluster.drop_database(old.name)
        cluster.drop_database(new.name)


def test_a_failure_halfway_outside_the_transaction_stops_there(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    """Verification copies FROM's schema, not its rows: a unique index that FROM's rows
    break passes it and fails on FROM. Built CONCURRENTLY (outside the transaction), after
    the transaction committed and after another index was built."""
    old = new_database(cluster, FIXTURES / "shop.sql")
    new = new_database(cluster, FIXTURES / "shop.sql")
    try:
        old.sql("INSERT INTO shop.orders (total) VALUES (5), (5)")
        new.sql(
            "ALTER TABLE shop.orders ADD COLUMN note text;"
            "CREATE INDEX a_total_idx ON shop.orders (total);"
            "CREATE UNIQUE INDEX b_total_key ON shop.orders (total)"
        )
        result = run_cli(
            "plan", "--apply", "--concurrently", "--allow-hazards",
            "access_exclusive_lock,not_transactional", old.dsn, new.dsn,
            cwd=tmp_path, env=_env(cluster),
        )  # fmt: skip
        assert result.code == 2, result.err
        assert "plan verified" in result.err
        failure = next(ln for ln in result.err.splitlines() if "apply failed" in ln)
        assert "statement 3 of 3 (index shop.b_total_key: create, after the transaction)" in failure
        assert "UniqueViolationError" in failure
        assert "the 2 before it stay applied" in failure
        assert "leaves an invalid index" in failure
        indexes = old.sql(
            "SELECT string_agg(c.relname || ':' || i.indisvalid, ',' ORDER BY c.relname) "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname LIKE '%total%'"
        ).strip()
        assert indexes == "a_total_idx:true,b_total_key:false"
        assert "note" in old.sql("SELECT string_agg(attname, ',') FROM pg_attribute "
                                 "WHERE attrelid = 'shop.orders'::regclass")  # fmt: skip
    finally:
        cluster.drop_database(old.name)
        cluster.drop_database(new.name)


async def test_a_plan_for_a_schema_that_changed_since_is_not_run(
    cluster: ScratchCluster, db: Database
) -> None:
    plan = Plan(
        (Statement("CREATE TABLE public.t (a integer)", "table", "public.t", Change.CREATE),)
    )
    with pytest.raises(ApplyError, match="changed since the plan was made: nothing applied"):
        await apply(db.conninfo, plan, "a fingerprint of another moment", 1000, 10_000)
    assert db.sql("SELECT count(*) FROM pg_class WHERE relname = 't'").strip() == "0"
