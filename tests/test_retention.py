"""Retention keeps what it must under any policy (hypothesis), and `backups prune` deletes
only what the policy gave up, on backups made by real syncs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.demo.cluster import ScratchCluster
from service.disk.retention import (
    DONE,
    FAILED,
    STARTED,
    UNKNOWN,
    BackupFacts,
    Policy,
    decide,
    obsolete,
)
from tests.conftest import FIXTURES, new_database, run_cli

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STATUSES = st.sampled_from([DONE, DONE, DONE, FAILED, STARTED, UNKNOWN])


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[BackupFacts], str | None]:
    ages = draw(st.lists(st.integers(0, 60 * 24 * 90), max_size=25, unique=True))
    backups = [
        BackupFacts(
            f"b{i:03d}",
            NOW - timedelta(minutes=age),
            draw(STATUSES),
            draw(st.sampled_from(["h1", "h2", "h3", None])),
        )
        for i, age in enumerate(sorted(ages, reverse=True))
    ]
    current = draw(st.sampled_from(["h1", "h2", "h4", None]))
    return backups, current


policies = st.builds(
    Policy,
    keep_last=st.none() | st.integers(1, 6),
    keep_days=st.none() | st.floats(0.01, 100, allow_nan=False),
)


@settings(max_examples=400, deadline=None)
@given(histories(), policies)
def test_retention_never_deletes_what_must_stay(
    history: tuple[list[BackupFacts], str | None], policy: Policy
) -> None:
    backups, current = history
    gone = set(obsolete(backups, policy, NOW, current))
    newest_first = sorted(backups, key=lambda b: b.created_at, reverse=True)
    newest_done = next((b for b in newest_first if b.status == DONE), None)
    if newest_done:
        assert newest_done.name not in gone
    holding_current = next((b for b in newest_first if current and b.files_hash == current), None)
    if holding_current:
        assert holding_current.name not in gone
    for b in backups:
        if b.status in (STARTED, UNKNOWN):
            assert b.name not in gone
        if policy.keep_days is not None and NOW - b.created_at < timedelta(days=policy.keep_days):
            assert b.name not in gone
    if policy.keep_last is not None:
        for status in (DONE, FAILED):
            newest = [b for b in newest_first if b.status == status][: policy.keep_last]
            assert not {b.name for b in newest} & gone
    if not policy.active:
        assert not gone


@settings(max_examples=300, deadline=None)
@given(histories(), policies)
def test_retention_deletes_everything_no_rule_keeps_and_is_idempotent(
    history: tuple[list[BackupFacts], str | None], policy: Policy
) -> None:
    backups, current = history
    verdicts = decide(backups, policy, NOW, current)
    assert [v.name for v in verdicts] == [b.name for b in backups]
    for v in verdicts:
        assert v.reason  # every verdict says why
    kept = [b for b, v in zip(backups, verdicts, strict=True) if v.keep]
    # Pruning what is left deletes nothing more: the kept set is stable.
    assert obsolete(kept, policy, NOW, current) == []


def test_policy_examples() -> None:
    day = timedelta(days=1)
    backups = [
        BackupFacts("a", NOW - 10 * day, DONE, "h1"),  # holds the current files
        BackupFacts("b", NOW - 9 * day, DONE, "h2"),
        BackupFacts("c", NOW - 8 * day, FAILED, "h3"),
        BackupFacts("d", NOW - 7 * day, FAILED, "h4"),
        BackupFacts("e", NOW - 2 * day, DONE, "h5"),
        BackupFacts("f", NOW - 1 * day, STARTED, "h6"),
    ]
    assert obsolete(backups, Policy(keep_last=1), NOW, "h1") == ["b", "c"]
    assert obsolete(backups, Policy(keep_days=3), NOW, "h1") == ["b", "c", "d"]
    assert obsolete(backups, Policy(keep_last=2, keep_days=3), NOW, "h1") == []
    assert obsolete(backups, Policy(), NOW, "h1") == []
    # An interrupted (failed) backup newer than every good one is never "the newest good".
    assert obsolete(backups[:4], Policy(keep_last=1), NOW, None) == ["a", "c"]
    with pytest.raises(ValueError, match="keep_last must be at least 1"):
        Policy(keep_last=0)


def test_prune_deletes_only_what_the_policy_gave_up(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    shop = new_database(cluster, FIXTURES / "shop.sql")
    env = {"SCHEMA_SYNC_DSN": shop.dsn}
    try:
        for i in range(4):  # four real backups, each a sync after a change
            if i:
                shop.sql(f"ALTER TABLE shop.orders ADD COLUMN c{i} int")
            assert run_cli("sync", cwd=tmp_path, env=env).code == 0
        listed = run_cli("backups", "--json", cwd=tmp_path).json()
        names = [b["name"] for b in listed]
        assert len(names) == 4 and [b["status"] for b in listed] == ["done"] * 4
        assert [b["current"] for b in listed] == [False, False, False, True]

        dry = run_cli("backups", "prune", "--dry-run", "--keep-last", "2", cwd=tmp_path)
        assert dry.code == 0, dry.err
        assert f"would delete {names[0]}" in dry.out and f"would delete {names[1]}" in dry.out
        assert "would delete 2 of 4 backups" in dry.out
        assert len(list((tmp_path / "backups").glob("schema-sync-*"))) == 4

        none = run_cli("backups", "prune", cwd=tmp_path)
        assert "no retention policy" in none.out
        assert len(list((tmp_path / "backups").glob("schema-sync-*"))) == 4

        # The configured policy also runs after each sync.
        shop.sql("ALTER TABLE shop.orders ADD COLUMN c9 int")
        synced = run_cli(
            "sync",
            "--log-format",
            "json",
            "--log-level",
            "info",
            cwd=tmp_path,
            env={**env, "SCHEMA_SYNC_RETAIN_COUNT": "2"},
        )
        assert synced.code == 0, synced.err
        pruned = [json.loads(ln) for ln in synced.err.splitlines() if '"backup.pruned"' in ln]
        assert sorted(Path(e["backup"]).name for e in pruned) == names[:3]
        left = sorted(p.name for p in (tmp_path / "backups").glob("schema-sync-*"))
        assert left[0] == names[3] and len(left) == 2
    finally:
        cluster.drop_database(shop.name)
