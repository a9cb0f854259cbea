"""`pg-schema-sync run`: cron schedule, sync-now signals, one sync at a time, graceful stop.

Shape (after arq's worker): signal handlers and the cron job only *request* a sync by setting
an event; one runner task turns requests into runs, one at a time, so any number of requests
arriving during a run become a single follow-up. Stopping stops the scheduler, gives a running
sync `stop_grace_s` to finish, then cancels it (sync.py kills pg_dump's process group and
leaves the files as they were). A second SIGTERM/SIGINT abandons the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from service import __version__
from service.alerts import Alerts, AlertState, retry_delay_s
from service.conninfo import ConnInfoError
from service.errors import Cause
from service.health import (
    DaemonState,
    default_paths,
    load_state,
    parse_schedule,
    save_state,
)
from service.lock import hold
from service.logs import get_logger, register_secret
from service.metrics import Metrics
from service.settings import Settings, SettingsError
from service.sync import SyncError, SyncOutcome, outcome_fields, sync_target

EXIT_STOPPED = 0  # stopped by a signal after a graceful stop (or a cancel after the grace)
EXIT_FORCED = 1  # a second signal abandoned the graceful stop
SENTRY_FLUSH_S = 2.0
CANCEL_WAIT_S = 10.0  # after cancelling: pg_dump is SIGKILLed; a started write may finish
FORCED_WAIT_S = 2.0
SYNC_NOW = (signal.SIGHUP, signal.SIGUSR1)
STOP = (signal.SIGTERM, signal.SIGINT)


def _now() -> datetime:
    return datetime.now(UTC)


class _SchedulerErrors(logging.Handler):
    """APScheduler logs through stdlib logging; pass its errors on as structured events."""

    def emit(self, record: logging.LogRecord) -> None:
        get_logger().error("scheduler.error", message=record.getMessage())


class Daemon:
    def __init__(
        self,
        settings: Settings,
        trigger: BaseTrigger,
        state_path: Path,
        alerts: Alerts,
        metrics: Metrics | None,
        state: DaemonState,
    ) -> None:
        self.settings, self.trigger, self.state_path = settings, trigger, state_path
        self.alerts, self.metrics, self.state = alerts, metrics, state
        self.log = get_logger()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()
        self._reason = "start"
        self._stop_signal = ""
        self._running: asyncio.Task[SyncOutcome] | None = None
        self._retry: asyncio.TimerHandle | None = None

    # -- requests (signal handlers and the cron job: set events, never raise) ------------------
    def request(self, reason: str) -> None:
        """Ask for a sync as soon as possible; requests made before it starts merge into it."""
        if self._stop.is_set():
            return
        if self._wake.is_set():
            self.log.debug("sync.coalesced", reason=reason)
            return
        self._reason = reason
        self._wake.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        if sig in SYNC_NOW:
            self.request(sig.name)
        elif self._stop.is_set():
            self._abort.set()
        else:
            self._stop_signal = sig.name
            self._stop.set()

    async def _on_schedule(self) -> None:
        self.request("schedule")

    def _on_missed(self, event: JobExecutionEvent) -> None:
        self.log.warning(
            "schedule.missed",
            scheduled_for=event.scheduled_run_time.isoformat(),
            misfire_grace_s=self.settings.misfire_grace_s,
        )

    # -- the run loop ------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (*SYNC_NOW, *STOP):
            loop.add_signal_handler(sig, self._on_signal, sig)
        scheduler = AsyncIOScheduler(timezone=str(self.settings.timezone))
        # coalesce: fire times missed while the loop was blocked (or the host asleep) run once;
        # misfire_grace_time: a fire time older than that is skipped rather than run late.
        job = scheduler.add_job(
            self._on_schedule,
            self.trigger,
            id="sync",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=self.settings.misfire_grace_s,
        )
        scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        scheduler.start()
        self._save(
            self.state.updated(
                pid=os.getpid(),
                schedule=self.settings.schedule,
                timezone=self.settings.timezone,
                daemon_started_at=_now(),
                daemon_stopped_at=None,
            )
        )
        self.log.info(
            "daemon.started",
            version=__version__,
            pid=os.getpid(),
            schedule=self.settings.schedule,
            timezone=self.settings.timezone,
            next_run=job.next_run_time.isoformat() if job.next_run_time else None,
            sync_on_start=self.settings.sync_on_start,
            stop_grace_s=self.settings.stop_grace_s,
            state_file=str(self.state_path),
            sentry=self.alerts.sentry,
            metrics=(
                f"{self.settings.metrics_host}:{self.settings.metrics_port}"
                if self.metrics
                else None
            ),
        )
        if self.settings.sync_on_start:
            self.request("start")
        runner = asyncio.create_task(self._runner(), name="sync-runner")
        try:
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait({runner, stop}, return_when=asyncio.FIRST_COMPLETED)
            if runner.done():  # the runner only ends on stop; anything else is a bug: show it
                stop.cancel()
                runner.result()
            return await self._shutdown(scheduler, runner)
        finally:
            for sig in (*SYNC_NOW, *STOP):
                loop.remove_signal_handler(sig)
            if scheduler.running:
                scheduler.shutdown(wait=False)
            if not runner.done():
                runner.cancel()
                with contextlib.suppress(BaseException):
                    await runner

    async def _runner(self) -> None:
        while True:
            await self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            await self._run_once(self._reason)

    async def _shutdown(self, scheduler: AsyncIOScheduler, runner: asyncio.Task[None]) -> int:
        busy = self._running is not None
        self.log.info(
            "daemon.stopping",
            signal=self._stop_signal,
            schedule=self.settings.schedule,
            sync_running=busy,
            grace_s=self.settings.stop_grace_s if busy else 0,
        )
        scheduler.shutdown(wait=False)
        if self._retry:
            self._retry.cancel()
        self._wake.set()  # an idle runner wakes, sees the stop and returns
        forced = False
        if not await self._wait(runner, self.settings.stop_grace_s):
            forced = self._abort.is_set()
            if self._running is not None:
                self.log.warning(
                    "sync.cancelling",
                    why="second signal" if forced else "grace period over",
                    grace_s=self.settings.stop_grace_s,
                )
                self._running.cancel()
            if not forced:
                await self._wait(runner, CANCEL_WAIT_S)
                forced = self._abort.is_set()
            if not runner.done():
                # Even when told to go now, give the cancel a moment: it SIGKILLs pg_dump's
                # group and removes temp files, which takes milliseconds.
                await asyncio.wait({runner}, timeout=FORCED_WAIT_S)
        self._save(self.state.updated(daemon_stopped_at=_now()))
        code = EXIT_FORCED if forced else EXIT_STOPPED
        self.log.info("daemon.stopped", exit_code=code, forced=forced)
        return code

    async def _wait(self, task: asyncio.Task[None], limit_s: float) -> bool:
        """Wait for `task` at most `limit_s` seconds, or until a second stop signal."""
        if self._abort.is_set():
            return task.done()
        abort = asyncio.create_task(self._abort.wait())
        try:
            await asyncio.wait({task, abort}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abort.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await abort
        return task.done()

    # -- one run -----------------------------------------------------------------------------
    async def _run_once(self, reason: str) -> None:
        run_id = uuid.uuid4().hex[:12]
        if self._retry:
            self._retry.cancel()
            self._retry = None
        # Bound here, the run_id reaches every event of the run, sync.py's included.
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            log = get_logger()
            self._save(self.state.updated(last_run_id=run_id, last_started_at=_now()))
            log.info("sync.started", reason=reason)
            t0 = time.monotonic()
            self._running = asyncio.create_task(sync_target(self.settings, run_id=run_id))
            try:
                outcome = await self._running
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise
                log.warning("sync.cancelled", duration_s=round(time.monotonic() - t0, 3))
                self._save(self.state.updated(last_finished_at=_now()))
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
                self._running = None

    def _alert_state(self) -> AlertState:
        s = self.state
        return AlertState(s.active_drift, s.consecutive_failures, s.failure_alerted)

    # The run's closing event (sync.finished / sync.failed) is logged last, after the alerts,
    # the state file and the metrics: whoever waits for it finds all of them up to date.
    def _succeeded(self, outcome: SyncOutcome, log: Any) -> None:
        finished = _now()
        drift = outcome.drift if not outcome.first_run else None
        backup = str(outcome.backup) if outcome.backup else None
        alert = self.alerts.succeeded(
            self._alert_state(), outcome.drift, outcome.first_run, backup, log
        )
        self._save(
            self.state.updated(
                last_finished_at=finished,
                last_success_at=finished,
                last_error=None,
                consecutive_failures=alert.consecutive_failures,
                active_drift=alert.active_drift,
                failure_alerted=alert.failure_alerted,
                last_drift_at=finished if drift else self.state.last_drift_at,
                last_drift_headline=drift.headline() if drift else self.state.last_drift_headline,
            )
        )
        if self.metrics:
            self.metrics.succeeded(outcome.duration_s, len(drift) if drift else 0, time.time())
        log.info(
            "sync.finished",
            **outcome_fields(outcome),
            counts=outcome.counts,
            headline="first sync" if outcome.first_run else outcome.drift.headline(),
        )

    def _failed(
        self, error: str, cause: Cause, error_class: str, duration: float, log: Any
    ) -> None:
        alert = self.alerts.failed(self._alert_state(), error, cause, log)
        delay = retry_delay_s(cause, alert.consecutive_failures, self.settings.retry_backoff_max_s)
        self._save(
            self.state.updated(
                last_finished_at=_now(),
                last_failure_at=_now(),
                last_error=error,
                consecutive_failures=alert.consecutive_failures,
                failure_alerted=alert.failure_alerted,
            )
        )
        if self.metrics:
            self.metrics.failed(duration, cause.value)
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

    def _save(self, state: DaemonState) -> None:
        # Synchronous on purpose: a few hundred bytes, and nothing can cancel it half-way.
        self.state = state
        try:
            save_state(self.state_path, state)
        except OSError as exc:  # a full disk must not end the daemon; health will show it
            self.log.error("state.write_failed", path=str(self.state_path), error=str(exc))


async def run_daemon(settings: Settings) -> int:
    """Validate, lock the folder, start Sentry and metrics, run until stopped."""
    trigger = parse_schedule(settings.schedule, settings.timezone)
    state_path, lock_path = default_paths(settings)
    log = get_logger()
    try:
        info = settings.conninfo()
    except ConnInfoError as exc:
        raise SettingsError(str(exc)) from None
    register_secret(info.password)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("apscheduler").addHandler(_SchedulerErrors())
    logging.getLogger("apscheduler").propagate = False
    with hold(lock_path):
        try:
            state = load_state(state_path) or DaemonState()
        except ValueError as exc:
            log.warning("state.unreadable", error=str(exc))
            state = DaemonState()
        metrics = None
        if settings.metrics_port is not None:
            metrics = Metrics()
            try:
                metrics.serve(settings.metrics_port, settings.metrics_host)
            except OSError as exc:
                raise SettingsError(
                    f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} "
                    f"({exc.strerror or exc}): choose a free metrics_port or unset it"
                ) from None
        alerts = Alerts(settings.name, info.display(), settings.failure_alert_after)
        try:
            dsn = settings.sentry_dsn.get_secret_value() if settings.sentry_dsn else None
            alerts.start_sentry(dsn, settings.sentry_environment)
        except Exception as exc:  # sentry_sdk raises its own BadDsn
            raise SettingsError(
                f"invalid setting sentry_dsn=*** (from SCHEMA_SYNC_SENTRY_DSN or the config "
                f"file): {exc}"
            ) from None
        code = EXIT_FORCED
        try:
            daemon = Daemon(settings, trigger, state_path, alerts, metrics, state)
            code = await daemon.run()
            return code
        finally:
            # After a forced stop, do not wait on Sentry: the user asked to go now.
            alerts.close(SENTRY_FLUSH_S if code == EXIT_STOPPED else 0.0)
            if metrics:
                metrics.stop()
