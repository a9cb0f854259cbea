"""`pg-schema-sync run`: every target on its cron schedule, sync-now signals, graceful stop.

Shape (after arq's worker): signal handlers and the cron jobs only *request* a sync; each
target's runner (runner.py) turns its requests into runs, one at a time per target, any
number of requests arriving during a run becoming a single follow-up. Runs of different
targets overlap up to `max_concurrent_syncs` (a semaphore), so a slow or dead database holds
one slot, never the others. Stopping stops the scheduler, gives running syncs `stop_grace_s`
to finish, then cancels them (sync.py kills pg_dump's process group and leaves the files as
they were). A second SIGTERM/SIGINT abandons the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from service import __version__
from service.daemon.alerting import Alerts
from service.daemon.health import (
    DaemonState,
    default_paths,
    history_file,
    load_state,
    old_paths,
    parse_schedule,
)
from service.daemon.metrics import Metrics
from service.daemon.runner import TargetRunner
from service.daemon.webhooks import WebhookSender, hooks_of
from service.disk import history
from service.disk.legacy import move_state, retire_lock
from service.disk.lock import hold
from service.logs import get_logger, register_secret
from service.production.conninfo import ConnInfoError
from service.settings.model import Settings, SettingsError, select
from service.settings.shards import Shard, ShardError

EXIT_STOPPED = 0  # stopped by a signal after a graceful stop (or a cancel after the grace)
EXIT_FORCED = 1  # a second signal abandoned the graceful stop
SENTRY_FLUSH_S = 2.0
WEBHOOK_FLUSH_S = 5.0  # at a graceful stop, queued webhook messages get this long to go out
CANCEL_WAIT_S = 10.0  # after cancelling: pg_dump is SIGKILLed; a started write may finish
FORCED_WAIT_S = 2.0
SYNC_NOW = (signal.SIGHUP, signal.SIGUSR1)
STOP = (signal.SIGTERM, signal.SIGINT)


class _SchedulerErrors(logging.Handler):
    """APScheduler logs through stdlib logging; pass its errors on as structured events."""

    def emit(self, record: logging.LogRecord) -> None:
        get_logger().error("scheduler.error", message=record.getMessage())


class Daemon:
    """Signals, the scheduler and the stop for every target; each target's runs are its own."""

    def __init__(
        self,
        settings: Settings,
        runners: list[TargetRunner],
        triggers: list[BaseTrigger],
        stopping: asyncio.Event,
        alerts: Alerts,
        metrics: Metrics | None,
        shard: Shard | None = None,
        configured: int = 1,
    ) -> None:
        self.settings, self.runners, self.triggers = settings, runners, triggers
        self.alerts, self.metrics = alerts, metrics
        self.shard, self.configured = shard, configured
        self.log = get_logger()
        self._stop = stopping
        self._abort = asyncio.Event()
        self._stop_signal = ""
        self._by_job = {f"sync:{r.name}": r for r in runners}
        self._scheduler_stopped = False

    # -- requests (signal handlers and the cron jobs: set events, never raise) -----------------
    def request_all(self, reason: str) -> None:
        for runner in self.runners:
            runner.request(reason)

    def _on_signal(self, sig: signal.Signals) -> None:
        if sig in SYNC_NOW:
            self.request_all(sig.name)
        elif self._stop.is_set():
            self._abort.set()
        else:
            self._stop_signal = sig.name
            self._stop.set()

    def _on_missed(self, event: JobExecutionEvent) -> None:
        runner = self._by_job.get(event.job_id)
        self.log.warning(
            "schedule.missed",
            target=runner.name if runner else event.job_id,
            scheduled_for=event.scheduled_run_time.isoformat(),
            misfire_grace_s=self.settings.misfire_grace_s,
        )

    def _running(self) -> list[TargetRunner]:
        return [r for r in self.runners if r.running is not None]

    # -- the run loop ------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (*SYNC_NOW, *STOP):
            loop.add_signal_handler(sig, self._on_signal, sig)
        scheduler = AsyncIOScheduler(timezone=str(self.settings.timezone))
        jobs = []
        for runner, trigger in zip(self.runners, self.triggers, strict=True):
            # coalesce: fire times missed while the loop was blocked (or the host asleep) run
            # once; misfire_grace_time: a fire time older than that is skipped, not run late.
            runner.job = scheduler.add_job(
                runner.request,
                trigger,
                args=["schedule"],
                id=f"sync:{runner.name}",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=self.settings.misfire_grace_s,
            )
            jobs.append(runner.job)
        scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        scheduler.start()
        for runner in self.runners:
            runner.started(runner.settings.schedule, runner.settings.timezone)
        self._log_started(jobs)
        if self.settings.sync_on_start:
            self.request_all("start")
        loops = {
            asyncio.create_task(r.loop(), name=f"sync-runner:{r.name}"): r for r in self.runners
        }
        # Watch mode: each target's probe loop; they end on stop and are awaited below.
        watchers = [
            asyncio.create_task(r.watcher.run(), name=f"watch:{r.name}")
            for r in self.runners
            if r.watcher is not None
        ]
        try:
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait({*loops, stop}, return_when=asyncio.FIRST_COMPLETED)
            for task in loops:  # a runner only ends on stop; anything else is a bug: show it
                if task.done() and not self._stop.is_set():
                    stop.cancel()
                    task.result()
            return await self._shutdown(scheduler, loops)
        finally:
            for sig in (*SYNC_NOW, *STOP):
                loop.remove_signal_handler(sig)
            self._stop_scheduler(scheduler)
            for task in [*loops, *watchers]:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task

    def _stop_scheduler(self, scheduler: AsyncIOScheduler) -> None:
        # Once: AsyncIOScheduler stops in a loop callback, so `running` stays true until the
        # loop next runs; a second shutdown queued before that raises SchedulerNotRunningError
        # (seen with a shard of no targets, whose stop has nothing to await in between).
        if scheduler.running and not self._scheduler_stopped:
            self._scheduler_stopped = True
            scheduler.shutdown(wait=False)

    def _log_started(self, jobs: list[Any]) -> None:
        def next_run(job: Any) -> str | None:
            return job.next_run_time.isoformat() if job.next_run_time else None

        common: dict[str, Any] = {
            "version": __version__,
            "pid": os.getpid(),
            "sync_on_start": self.settings.sync_on_start,
            "stop_grace_s": self.settings.stop_grace_s,
            "sentry": self.alerts.sentry,
            "webhooks": len({h.settings for r in self.runners for h in r.alerts.hooks}),
            "metrics": (
                f"{self.settings.metrics_host}:{self.settings.metrics_port}"
                if self.metrics
                else None
            ),
            "targets": [r.name for r in self.runners],
            "shard": str(self.shard) if self.shard else None,
            "targets_configured": self.configured,
            "max_concurrent_syncs": self.settings.max_concurrent_syncs,
            "watch_interval_s": self.settings.watch_interval_s,
            "full_sync_interval_s": self.settings.full_sync_interval_s,
        }
        if len(self.runners) == 1:
            only = self.runners[0]
            self.log.info(
                "daemon.started",
                schedule=only.settings.schedule,
                timezone=only.settings.timezone,
                next_run=next_run(jobs[0]),
                state_file=str(only.state_path),
                **common,
            )
            return
        self.log.info("daemon.started", **common)
        for runner, job in zip(self.runners, jobs, strict=True):
            runner.log.info(
                "target.scheduled",
                schedule=runner.settings.schedule,
                timezone=runner.settings.timezone,
                next_run=next_run(job),
                state_file=str(runner.state_path),
                source=runner.alerts.source,
            )

    async def _shutdown(
        self, scheduler: AsyncIOScheduler, loops: dict[asyncio.Task[None], TargetRunner]
    ) -> int:
        busy = self._running()
        self.log.info(
            "daemon.stopping",
            signal=self._stop_signal,
            schedule=self.settings.schedule,
            sync_running=bool(busy),
            running=[r.name for r in busy],
            grace_s=self.settings.stop_grace_s if busy else 0,
        )
        self._stop_scheduler(scheduler)
        for task, runner in loops.items():
            runner.cancel_retry()
            if runner.running is None:  # idle or waiting for a slot: nothing to lose
                task.cancel()
        pending = set(loops)
        forced = False
        if not await self._wait(pending, self.settings.stop_grace_s):
            forced = self._abort.is_set()
            for runner in self._running():
                runner.log.warning(
                    "sync.cancelling",
                    why="second signal" if forced else "grace period over",
                    grace_s=self.settings.stop_grace_s,
                )
                if runner.running is not None:
                    runner.running.cancel()
            if not forced:
                await self._wait(pending, CANCEL_WAIT_S)
                forced = self._abort.is_set()
            if not all(t.done() for t in pending):
                # Even when told to go now, give the cancel a moment: it SIGKILLs pg_dump's
                # group and removes temp files, which takes milliseconds.
                await asyncio.wait(pending, timeout=FORCED_WAIT_S)
        for runner in self.runners:
            runner.stopped()
        code = EXIT_FORCED if forced else EXIT_STOPPED
        self.log.info("daemon.stopped", exit_code=code, forced=forced)
        return code

    async def _wait(self, tasks: set[asyncio.Task[None]], limit_s: float) -> bool:
        """Wait for all `tasks` at most `limit_s` seconds, or until a second stop signal."""
        if self._abort.is_set() or all(t.done() for t in tasks):
            return all(t.done() for t in tasks)
        every = asyncio.create_task(asyncio.wait(tasks))
        abort = asyncio.create_task(self._abort.wait())
        try:
            await asyncio.wait({every, abort}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for helper in (every, abort):
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
        return all(t.done() for t in tasks)


def _checked(target: Settings, fleet: bool) -> BaseTrigger:
    """The target's trigger; its settings' errors name the target when there are several."""
    try:
        trigger = parse_schedule(target.schedule, target.timezone)
        register_secret(target.conninfo().password)
        return trigger
    except (SettingsError, ConnInfoError) as exc:
        if not fleet:
            raise SettingsError(str(exc)) from None
        message, prefix = str(exc), "invalid setting "
        if message.startswith(prefix):
            message = f"{prefix}targets[{target.name}].{message.removeprefix(prefix)}"
        else:
            message = f"target {target.name}: {message}"
        raise SettingsError(message) from None


async def run_daemon(settings: Settings, only: str | None = None) -> int:
    """Validate, lock every target's folder, start Sentry and metrics, run until stopped."""
    fleet = bool(settings.targets)
    parse_schedule(settings.schedule, settings.timezone)  # the defaults' own errors first
    try:
        shard = settings.serving_shard()
        every = settings.resolved_targets()
        targets = select(every, only, shard)
    except (ShardError, ValueError) as exc:
        raise SettingsError(str(exc)) from None
    # Every target's settings are checked, not only this shard's: a config one shard refuses,
    # every shard refuses, and moving a target to another shard never reveals a broken one.
    checked = {t.name: _checked(t, fleet) for t in every}
    triggers = [checked[t.name] for t in targets]
    log = get_logger()
    if shard is not None and not targets:
        # Not an error: with more shards than a small fleet needs, some serve nothing.
        log.info(
            "shard.empty",
            shard=str(shard),
            targets_configured=len(every),
            message=f"shard {shard} serves none of the configured targets ({len(every)}); "
            "it stays up",
        )
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("apscheduler").addHandler(_SchedulerErrors())
    logging.getLogger("apscheduler").propagate = False
    with contextlib.ExitStack() as held:
        paths = [default_paths(t) for t in targets]
        for target, (state_path, lock_path) in zip(targets, paths, strict=True):
            # One lock per target's state folder, all or none; an older version's files
            # beside the schema files are retired first (disk/legacy.py).
            old_state, old_lock = old_paths(target)
            if old_lock is not None and old_lock != lock_path:
                retire_lock(old_lock)
            held.enter_context(hold(lock_path))
            if old_state is not None and move_state(old_state, state_path):
                log.info("state.moved", target=target.name, old=str(old_state), new=str(state_path))
            if old_state is not None:  # the status page's history went beside the state file
                move_state(history_file(old_state), history_file(state_path))
        metrics = None
        if settings.metrics_port is not None:
            metrics = Metrics(by_target=fleet)
            metrics.serving(
                len(targets),
                len(every),
                shard.index if shard else None,
                shard.count if shard else None,
            )
        alerts = Alerts(settings.name, "", settings.failure_alert_after)
        alerts.webhooks = WebhookSender(settings.webhook_timeout_s, settings.webhook_attempts)
        try:
            dsn = settings.sentry_dsn.get_secret_value() if settings.sentry_dsn else None
            register_secret(dsn)  # an error text quoting it must not reach a webhook
            alerts.start_sentry(dsn, settings.sentry_environment)
        except Exception as exc:  # sentry_sdk raises its own BadDsn
            raise SettingsError(
                f"invalid setting sentry_dsn=*** (from SCHEMA_SYNC_SENTRY_DSN or the config "
                f"file): {exc}"
            ) from None
        code = EXIT_FORCED
        server: Any = None
        try:
            stopping = asyncio.Event()
            slots = asyncio.Semaphore(settings.max_concurrent_syncs)
            runners = []
            for target, trigger, (state_path, _lock) in zip(targets, triggers, paths, strict=True):
                state, past = _remembered(state_path, target.name, log)
                runners.append(
                    TargetRunner(
                        target,
                        state_path,
                        alerts.for_target(
                            target.name,
                            target.conninfo().display(),
                            target.failure_alert_after,
                            in_fingerprint=fleet,
                            hooks=hooks_of(target.webhooks),
                            public_url=target.public_url,
                        ),
                        metrics,
                        state,
                        slots,
                        stopping,
                        trigger=trigger,
                        history=past,
                    )
                )
            if metrics is not None:
                # The listener (aiohttp, Jinja2) is imported only by a daemon that serves it.
                from service.daemon.status import serve

                server = await serve(settings, runners, metrics)
            daemon = Daemon(
                settings, runners, triggers, stopping, alerts, metrics, shard, len(every)
            )
            code = await daemon.run()
            return code
        finally:
            # After a forced stop, do not wait on Sentry: the user asked to go now.
            alerts.close(SENTRY_FLUSH_S if code == EXIT_STOPPED else 0.0)
            await alerts.webhooks.close(WEBHOOK_FLUSH_S if code == EXIT_STOPPED else 0.0)
            if server is not None:
                await server.stop()


def _remembered(
    state_path: Path, target: str, log: Any
) -> tuple[DaemonState, history.History | None]:
    """The target's saved state and status history; unreadable ones are a fresh start."""
    try:
        state = load_state(state_path) or DaemonState()
    except ValueError as exc:
        log.warning("state.unreadable", target=target, error=str(exc))
        state = DaemonState()
    try:
        past = history.load(history_file(state_path))
    except (ValueError, OSError) as exc:
        log.warning("history.unreadable", target=target, error=str(exc))
        past = None
    return state, past
