"""Pure: a run's outcome as the status page's history (service/disk/history.py), the state
file and the alert rules' gauges keep it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from service.compare.drift import Drift, DriftItem
from service.daemon.alerts import CHECK_ONLY, VERIFY_HELD
from service.daemon.health import DaemonState, deadline_after
from service.disk.history import (
    HELD,
    OPEN,
    REFRESHED,
    DriftRecord,
    History,
    ItemRecord,
    RunRecord,
    clip_items,
)
from service.sync import SyncOutcome

__all__ = [
    "CHECK_ONLY",
    "VERIFY_HELD",
    "drift_record",
    "failed_run",
    "full_run",
    "gauges",
    "item_record",
    "probe_fields",
]


def item_record(item: DriftItem) -> ItemRecord:
    """The one place a drift item's fields reach the history (impact, reasons and a rename's
    old name join here when the item carries them)."""
    return ItemRecord(
        item.kind,
        item.name,
        item.change.value,
        item.diff,
        impact=item.impact.value,
        reasons=tuple(item.reasons),
        from_name=item.from_name,
    )


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
        items=clip_items([item_record(i) for i in drift.worst_first()]),
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


def probe_fields(outcome: SyncOutcome, when: datetime) -> dict[str, Any]:
    """The state file's view of the run's probe."""
    decision = outcome.probe
    if decision is None:
        return {}
    result = decision.reason if decision.probe_error is None else "error"
    return {"last_probe_at": when, "last_probe_result": result}


def gauges(
    state: DaemonState, history: History, trigger: BaseTrigger | None, max_age_s: float | None
) -> tuple[float | None, float | None]:
    """(when the next success is due as `health` judges it, since when a held drift is open),
    as Unix times: what the alert rules compare with time()."""
    since = state.last_success_at or state.daemon_started_at
    due = deadline_after(since, trigger, max_age_s) if since else None
    drift = history.drift
    open_since = drift.found_at.timestamp() if drift and drift.status == OPEN else None
    return (due.timestamp() if due else None), open_since
