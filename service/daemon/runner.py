"""One target inside the daemon: its requests, its runs one at a time, its state and alerts.

Requests (cron, signals, retries) only set an event; the runner's loop turns them into runs.
A run first takes a slot of the daemon-wide semaphore and only then clears the event, so every
request made before the run starts (also while it waited for a slot) merges into it. Targets
share nothing else: one target's failures, retries or slow server never hold up another's.

After each run the runner keeps its books: alerts, the state file (what `health` reads), the
status page's history (the cycle, and the drift a sync found) and the metrics. With
`check_only` a run is a `check`: it compares and alerts, and never writes the files.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from apscheduler.triggers.base import BaseTrigger

from service.daemon import recording
from service.daemon.alerting import Alerts
from service.daemon.alerts import AlertState, retry_delay_s
from service.daemon.health import DaemonState, history_file, save_state
from service.daemon.metrics import Metrics
from service.daemon.watch import Watcher
from service.disk import history as history_disk
from service.disk.history import History
from service.errors import Cause
from service.logs import get_logger
from service.settings.model import Settings
from service.sync import (
    SyncError,
    SyncOutcome,
    VerifyFailed,
    check_target,
    outcome_fields,
    sync_target,
)

# "Sync now" means now: these requests read production in full even when the probe matches.
FULL_REASONS = frozenset({"SIGHUP", "SIGUSR1"})
PROBE_STATE_EVERY_S = 60.0


def now() -> datetime:
    return datetime.now(UTC)


class TargetRunner:
    def __init__(
        self,
        settings: Settings,
        state_path: Path,
        alerts: Alerts,
        metrics: Metrics | None,
        state: DaemonState,
        slots: asyncio.Semaphore,
        stopping: asyncio.Event,
        trigger: BaseTrigger | None = None,
        history: History | None = None,
    ) -> None:
        self.settings, self.state_path, self.alerts = settings, state_path, alerts
        self.metrics, self.state, self.slots, self.stopping = metrics, state, slots, stopping
        self.trigger = trigger
        self.history_path = history_file(state_path)
        self.history = history or History()
        self.job: Any = None  # the scheduler's job for this target (its next_run_time)
        self.changes = 0  # grows with every change the status page would show
        self.name = settings.name
        self.log = get_logger(target=self.name)
        self.wake = asyncio.Event()
        self._reason = "start"
        self.running: asyncio.Task[SyncOutcome] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self.watcher = Watcher(self) if settings.watch_interval_s else None
        if settings.listen_channel and not settings.watch_interval_s:
            # Push mode is a hint on top of watch mode's polling, never a replacement.
            self.log.warning("listen.ignored", why="listen_channel needs watch_interval_s")

    # -- requests (never raise: called from signal handlers and the scheduler) ----------------
    def request(self, reason: str) -> None:
        """Ask for a sync as soon as possible; requests made before it starts merge into it."""
        if self.stopping.is_set():
            return
        if self.wake.is_set():
            self.log.debug("sync.coalesced", reason=reason)
            return
        self._reason = reason
        self.wake.set()

    def cancel_retry(self) -> None:
        if self._retry:
            self._retry.cancel()
            self._retry = None

    async def loop(self) -> None:
        while True:
            await self.wake.wait()
            if self.stopping.is_set():
                return
            async with self.slots:
                if self.stopping.is_set():
                    return
                self.wake.clear()
                await self.run_once(self._reason)
            if self.stopping.is_set():
                return

    def started(self, schedule: str, timezone: str) -> None:
        self.save(
            self.state.updated(
                pid=os.getpid(),
                schedule=schedule,
                timezone=timezone,
                daemon_started_at=now(),
                daemon_stopped_at=None,
            )
        )
        if self.metrics:
            self.metrics.declare(self.name)
            last = self.state.last_success_at
            self._export(last_success=last.timestamp() if last else None)

    def stopped(self) -> None:
        self.save(self.state.updated(daemon_stopped_at=now()))

    # -- one run -----------------------------------------------------------------------------
    async def run_once(self, reason: str) -> None:
        run_id = uuid.uuid4().hex[:12]
        self.cancel_retry()
        # Bound here, run_id and target reach every event of the run, sync.py's included.
        with structlog.contextvars.bound_contextvars(run_id=run_id, target=self.name):
            log = get_logger()
            self.save(self.state.updated(last_run_id=run_id, last_started_at=now()))
            log.info("sync.started", reason=reason)
            t0 = time.monotonic()
            full = reason in FULL_REASONS
            run = check_target if self.settings.check_only else sync_target
            self.running = asyncio.create_task(run(self.settings, run_id=run_id, full=full))
            self.changes += 1
            try:
                outcome = await self.running
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise
                log.warning("sync.cancelled", duration_s=round(time.monotonic() - t0, 3))
                self.save(self.state.updated(last_finished_at=now()))
            except VerifyFailed as exc:  # the drift was found, its files held back
                self._failed(
                    str(exc), exc.cause, "VerifyFailed", time.monotonic() - t0, log, exc.outcome
                )
            except SyncError as exc:
                self._failed(str(exc), exc.cause, "SyncError", time.monotonic() - t0, log)
            except Exception as exc:  # a bug must not end the daemon; log it in full
                log.exception("sync.crashed")
                message = f"{type(exc).__name__}: {exc}"
                self._failed(
                    message, Cause.INTERNAL, type(exc).__name__, time.monotonic() - t0, log
                )
            else:
                self._succeeded(outcome, log)
            finally:
                self.running = None
                self.changes += 1

    def _alert_state(self) -> AlertState:
        s = self.state
        return AlertState(
            s.active_drift, s.consecutive_failures, s.failure_alerted, s.refreshed_drift
        )

    def _held_because(self, outcome: SyncOutcome) -> str | None:
        """Why a found drift's files were not refreshed; None when they were (or no drift)."""
        if outcome.files_written or not outcome.drift or outcome.first_run:
            return None
        return recording.CHECK_ONLY if self.settings.check_only else "the files were not written"

    # The run's closing event (sync.finished / sync.failed) is logged last, after the alerts,
    # the state file and the metrics: whoever waits for it finds all of them up to date.
    def _succeeded(self, outcome: SyncOutcome, log: Any) -> None:
        finished = now()
        if outcome.skipped:
            self._skipped(outcome, finished, log)
            return
        drift = outcome.drift if not outcome.first_run else None
        backup = str(outcome.backup) if outcome.backup else None
        delivered = outcome.git
        commit = delivered.commit if delivered is not None else None
        held = self._held_because(outcome)
        alert = self.alerts.succeeded(
            self._alert_state(),
            outcome.drift,
            outcome.first_run,
            backup,
            log,
            commit=commit,
            held_because=held,
        )
        if delivered is not None and delivered.alert:  # pushes are retried by the next run
            self.alerts.git_delivery(
                delivered.alert,
                delivered.branch,
                delivered.error,
                delivered.consecutive_failures,
                log,
            )
        self.save(
            self.state.updated(
                last_finished_at=finished,
                last_success_at=finished,
                last_error=None,
                consecutive_failures=alert.consecutive_failures,
                active_drift=alert.active_drift,
                failure_alerted=alert.failure_alerted,
                refreshed_drift=alert.refreshed_drift,
                last_drift_at=finished if drift else self.state.last_drift_at,
                last_drift_headline=drift.headline() if drift else self.state.last_drift_headline,
                last_full_sync_at=finished,
                **recording.probe_fields(outcome, finished),
            )
        )
        history = self.history.with_run(recording.full_run(outcome, finished), self._keep)
        if drift:
            found = recording.drift_record(
                drift, finished, outcome.run_id, held, outcome.backup, commit
            )
            history = history.with_drift(found)
        elif not outcome.first_run:
            history = history.drift_ended(finished)
        self.keep(history)
        if self.metrics:
            self.metrics.succeeded(
                outcome.duration_s, drift.impacts() if drift else {}, time.time(), self.name
            )
            self._probe_metrics(outcome)
            self._export()
        log.info(
            "sync.finished",
            **outcome_fields(outcome),
            counts=outcome.counts,
            headline="first sync" if outcome.first_run else outcome.drift.headline(),
        )

    def _skipped(self, outcome: SyncOutcome, finished: datetime, log: Any) -> None:
        """A cycle the probe skipped: a success that repeats the last full sync's answer (no
        drift), so health, alerts and metrics treat it as one."""
        alert = self.alerts.succeeded(self._alert_state(), outcome.drift, False, None, log)
        self.save(
            self.state.updated(
                last_finished_at=finished,
                last_success_at=finished,
                last_error=None,
                consecutive_failures=alert.consecutive_failures,
                active_drift=alert.active_drift,
                failure_alerted=alert.failure_alerted,
                refreshed_drift=alert.refreshed_drift,
                **recording.probe_fields(outcome, finished),
            )
        )
        run = recording.full_run(outcome, finished)
        self.keep(self.history.with_run(run, self._keep).drift_ended(finished))
        if self.metrics:
            self.metrics.skipped(time.time(), self.name)
            self._probe_metrics(outcome)
            self._export()
        log.info("sync.finished", **outcome_fields(outcome), headline="skipped: unchanged")

    def _probe_metrics(self, outcome: SyncOutcome) -> None:
        fp = outcome.probe.fingerprint if outcome.probe else None
        if self.metrics and fp is not None:
            self.metrics.probed(fp.duration_s, self.name)
        if self.metrics and outcome.probe and outcome.probe.probe_error is not None:
            self.metrics.probe_failed(self.name)

    def _export(self, last_success: float | None = None) -> None:
        """The gauges that follow the state: what the alert rules read."""
        if self.metrics:
            due, open_since = recording.gauges(
                self.state, self.history, self.trigger, self.settings.health_max_age_s
            )
            self.metrics.target_state(
                self.state.consecutive_failures, due, open_since, last_success, self.name
            )

    @property
    def _keep(self) -> int:
        return self.settings.status_history

    def notification_received(self) -> None:
        """Push mode: a NOTIFY arrived (counted; the watcher decides whether it probes)."""
        if self.metrics:
            self.metrics.notified(self.name)

    def probe_seen(self, duration_s: float | None, result: str, trigger: str) -> None:
        """A watch probe's result: metrics always; the state file when the result changes or
        once a minute (not every few seconds: it is a file under sql/ by default)."""
        if self.metrics:
            self.metrics.watch_probe(trigger, self.name)
        if duration_s is not None and self.metrics:
            self.metrics.probed(duration_s, self.name)
        elif self.metrics:
            self.metrics.probe_failed(self.name)
        last = self.state.last_probe_at
        if (
            result != self.state.last_probe_result
            or last is None
            or (now() - last).total_seconds() >= PROBE_STATE_EVERY_S
        ):
            self.save(self.state.updated(last_probe_at=now(), last_probe_result=result))

    def _failed(
        self,
        error: str,
        cause: Cause,
        error_class: str,
        duration: float,
        log: Any,
        held: SyncOutcome | None = None,  # verify = "require" failed: the drift it held back
    ) -> None:
        state = self._alert_state()
        if held is not None:
            backup = str(held.backup) if held.backup else None
            alert = self.alerts.held_failure(state, held.drift, backup, error, log)
        else:
            alert = self.alerts.failed(state, error, cause, log)
        delay = retry_delay_s(cause, alert.consecutive_failures, self.settings.retry_backoff_max_s)
        finished = now()
        self.save(
            self.state.updated(
                last_finished_at=finished,
                last_failure_at=finished,
                last_error=error,
                last_failure_cause=cause.value,
                consecutive_failures=alert.consecutive_failures,
                failure_alerted=alert.failure_alerted,
                active_drift=alert.active_drift,
                refreshed_drift=alert.refreshed_drift,
            )
        )
        run_id = self.state.last_run_id or ""
        drift = held.drift if held is not None else None
        run = recording.failed_run(
            finished,
            duration,
            run_id,
            cause.value,
            error,
            len(drift) if drift else 0,
            held.backup if held is not None else None,
        )
        history = self.history.with_run(run, self._keep)
        if held is not None and drift:
            history = history.with_drift(
                recording.drift_record(
                    drift, finished, run_id, recording.VERIFY_HELD, held.backup, None
                )
            )
        self.keep(history)
        if self.metrics:
            self.metrics.failed(duration, cause.value, self.name)
            if drift:
                self.metrics.drift(drift.impacts(), self.name)
            self._export()
        if delay is not None:
            # A timer handle, not a task: nothing to await, nothing whose error could vanish.
            self._retry = asyncio.get_running_loop().call_later(delay, self.request, "retry")
        log.error(
            "sync.failed",
            error_class=error_class,
            cause=cause.value,
            error=error,
            consecutive_failures=alert.consecutive_failures,
            retry_in_s=delay,
            duration_s=round(duration, 3),
        )

    def save(self, state: DaemonState) -> None:
        # Synchronous on purpose: a few hundred bytes, and nothing can cancel it half-way.
        self.state = state
        self.changes += 1
        try:
            save_state(self.state_path, state)
        except OSError as exc:  # a full disk must not end the daemon; health will show it
            self.log.error("state.write_failed", path=str(self.state_path), error=str(exc))

    def keep(self, history: History) -> None:
        """The status page's history; bounded (disk/history.py), so synchronous like save."""
        self.history = history
        self.changes += 1
        try:
            history_disk.save(self.history_path, history)
        except OSError as exc:  # the page shows what is in memory; the next run tries again
            self.log.error("history.write_failed", path=str(self.history_path), error=str(exc))
