"""Who hears about what: the pure decisions behind every log event, Sentry event and webhook.

The decisions are pure functions of (alert state, what happened); `Alerts` only carries them
out (alerting.py). What a person hears about a drift depends on what the daemon did with it:

- refreshed: the daemon wrote production's schema into the files (and a backup, and a
  commit): one message, "drift detected, files refreshed (backup, commit)". The drift ended
  with that write, so no "resolved" follows.
- held: the files were not refreshed (verify = "require" failed, or `check_only`): one
  message when found; it stays open, and "resolved" comes when a later sync finds production
  and the files agreeing again without the daemon having written them (production reverted,
  or someone updated the files).

A drift is one message while it persists (fingerprint = the drift's own hash, also Sentry's
grouping), an error after N consecutive failures, an info message on recovery. Every payload
passes through the same scrubber as the logs. docs/alerts-events.md lists the sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from service.errors import Cause
from service.logs import scrub


def retry_delay_s(cause: Cause, failures: int, cap_s: float, base_s: float = 5.0) -> float | None:
    """Seconds until an early retry, doubling per failure; None: wait for the schedule.

    Only connection failures are retried early: they are usually a restart or a network blip,
    while a wrong password or a broken pg_dump will not fix itself in a few seconds.
    """
    if cause not in (Cause.CONNECTION, Cause.TIMEOUT) or failures < 1:
        return None
    return float(min(cap_s, base_s * 2 ** min(failures - 1, 20)))


# --------------------------------------------------------------------------------------------
# Pure decisions


class Notice(StrEnum):
    DRIFT_REFRESHED = "drift_refreshed"  # new drift, files refreshed: one message, no resolve
    DRIFT_HELD = "drift_held"  # new drift, files not refreshed: one message, open until it ends
    DRIFT_KNOWN = "drift_known"  # the drift already told: log only
    DRIFT_RESOLVED = "drift_resolved"  # a held drift ended without our write: log + message
    FAILURE_ALERT = "failure_alert"  # N-th failure in a row: Sentry error
    RECOVERED = "recovered"  # success after an alerted failure streak: log + Sentry info


# Why a drift's files were not refreshed, as messages and the status page say it.
CHECK_ONLY = "check_only: this daemon writes no files"
VERIFY_HELD = "verification failed, previous files kept"


@dataclass(frozen=True)
class AlertState:
    active_drift: str | None = None  # a held drift told and still open (waits for "resolved")
    consecutive_failures: int = 0
    failure_alerted: bool = False
    # The drift the daemon last wrote into the files. Found again (someone reset the files to
    # an older commit), it is the same news: logged, not sent again.
    refreshed_drift: str | None = None


def after_success(
    state: AlertState, drift_fingerprint: str | None, first_run: bool, refreshed: bool
) -> tuple[AlertState, list[Notice]]:
    """A completed sync; `refreshed`: it wrote the files. A first run is the baseline, not
    drift: it alerts nobody."""
    notices = [Notice.RECOVERED] if state.failure_alerted else []
    new_state, drift_notices = _after_drift(state, drift_fingerprint, first_run, refreshed)
    return replace(new_state, consecutive_failures=0, failure_alerted=False), [
        *notices,
        *drift_notices,
    ]


def after_held_failure(
    state: AlertState, drift_fingerprint: str, alert_after: int
) -> tuple[AlertState, list[Notice]]:
    """verify = "require" failed: a drift whose files were held back, and a failed sync."""
    state, drift_notices = _after_drift(state, drift_fingerprint, False, refreshed=False)
    state, failure_notices = after_failure(state, alert_after)
    return state, [*drift_notices, *failure_notices]


def _after_drift(
    state: AlertState, fingerprint: str | None, first_run: bool, refreshed: bool
) -> tuple[AlertState, list[Notice]]:
    if first_run:  # a new baseline: nothing before it is remembered
        notices = [Notice.DRIFT_RESOLVED] if state.active_drift is not None else []
        return replace(state, active_drift=None, refreshed_drift=None), notices
    if fingerprint is None:
        # The last refreshed drift stays remembered: files reset to an older commit bring it
        # back without production changing, and that is not news.
        notices = [Notice.DRIFT_RESOLVED] if state.active_drift is not None else []
        return replace(state, active_drift=None), notices
    if refreshed:
        # A held drift the daemon now wrote (verify passed at last) ends with the write too.
        known = fingerprint == state.refreshed_drift
        notice = Notice.DRIFT_KNOWN if known else Notice.DRIFT_REFRESHED
        return replace(state, active_drift=None, refreshed_drift=fingerprint), [notice]
    notice = Notice.DRIFT_KNOWN if fingerprint == state.active_drift else Notice.DRIFT_HELD
    return replace(state, active_drift=fingerprint, refreshed_drift=None), [notice]


def after_failure(state: AlertState, alert_after: int) -> tuple[AlertState, list[Notice]]:
    """A failed sync: one alert per failure streak, when it reaches `alert_after`."""
    failures = state.consecutive_failures + 1
    if failures >= alert_after and not state.failure_alerted:
        return replace(state, consecutive_failures=failures, failure_alerted=True), [
            Notice.FAILURE_ALERT
        ]
    return replace(state, consecutive_failures=failures), []


def scrub_event(event: Any, _hint: Any = None) -> Any:
    """Sentry's before_send/before_breadcrumb: the log scrubber over the whole payload."""
    return scrub(event)
