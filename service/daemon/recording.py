"""Pure: a run's outcome as the status page's history keeps it (service/disk/history.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from service.compare.drift import Drift, DriftItem
from service.daemon.alerts import CHECK_ONLY, VERIFY_HELD
from service.disk.history import HELD, REFRESHED, DriftRecord, ItemRecord, RunRecord, clip_items
from service.sync import SyncOutcome

__all__ = ["CHECK_ONLY", "VERIFY_HELD", "drift_record", "failed_run", "full_run", "item_record"]


def item_record(item: DriftItem) -> ItemRecord:
    """The one place a drift item's fields reach the history (impact, reasons and a rename's
    old name join here when the item carries them)."""
    return ItemRecord(item.kind, item.name, item.change.value, item.diff)


def drift_record(
    drift: Drift,
    at: datetime,
    run_id: str | None,
    held_because: str | None,
    backup: Path | None,
    commit: str | None,
) -> DriftRecord:
    return DriftRecord(
        fingerprint=drift.fingerprint(),
        headline=drift.headline(),
        found_at=at,
        last_seen_at=at,
        items=clip_items([item_record(i) for i in drift.items]),
        total=len(drift),
        files=HELD if held_because else REFRESHED,
        held_because=held_because,
        run_id=run_id,
        backup=backup.name if backup else None,
        commit=commit,
    )


def full_run(outcome: SyncOutcome, at: datetime) -> RunRecord:
    """A completed cycle: a full read, or one the probe skipped."""
    return RunRecord(
        at=at,
        kind="skipped" if outcome.skipped else "full",
        drift=0 if outcome.first_run else len(outcome.drift),
        duration_s=round(outcome.duration_s, 3),
        run_id=outcome.run_id,
        first_run=outcome.first_run,
        backup=outcome.backup.name if outcome.backup else None,
    )


def failed_run(
    at: datetime,
    duration_s: float,
    run_id: str,
    cause: str,
    error: str,
    drift: int = 0,
    backup: Path | None = None,
) -> RunRecord:
    return RunRecord(
        at=at,
        kind="failed",
        drift=drift,
        duration_s=round(duration_s, 3),
        run_id=run_id,
        backup=backup.name if backup else None,
        cause=cause,
        error=error,
    )
