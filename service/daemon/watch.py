"""Watch mode: probe a target every `watch_interval_s` and ask for a sync when its catalog moved.

The reference is the record the last full sync left (service/disk/record.py): a fingerprint
different from it is exactly what would make the next cycle read in full. On a change the
watcher waits until the fingerprint has been stable for `watch_settle_s` (a migration of 200
statements gives one sync, not 200), but never longer than `watch_settle_max_s`, then requests
a sync; the sync probes again and reads in full. A fingerprint it already asked about is not
asked about again, so a sync that keeps failing is left to the retry back-off.

Each probe takes a slot of the daemon-wide semaphore, like a sync. The connection is kept open
between probes when the interval is short (reconnecting costs more than the probe then), and
closed after each probe when it is long (a thousand idle sessions cost the server more).

Push mode (`listen_channel`): a second connection LISTENs for the notifications of the event
trigger in deploy/pg-schema-sync-notify.sql; one cuts the wait for the next probe short. The
probe still decides, and polling goes on, also while that connection is down. Any role that may
connect may NOTIFY the channel, so a notification is a hint that is rate-limited: a probe it
brings starts no sooner than `listen_min_gap_s` after the previous probe started (nor sooner
than ten times that probe's duration: a flood keeps the probing backend busy a tenth of the time
at most), and notifications arriving meanwhile, or during a probe, make one follow-up probe
together. Notifications received and probes run are counted apart in the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol

import asyncpg

from service.disk.record import read_record
from service.errors import SyncError
from service.production.db import SessionLimits
from service.production.probe import Fingerprint, ProbeSession
from service.production.session import close_quickly, open_session
from service.settings.model import Settings

KEEP_OPEN_MAX_S = 30.0  # keep the probe's connection open at intervals up to this
PROBE_DUTY_MAX = 0.1  # notifications never keep the probe busy more than this share of time


class Watched(Protocol):
    """What the watcher needs of its target's runner (runner.py)."""

    settings: Settings
    slots: asyncio.Semaphore
    stopping: asyncio.Event
    wake: asyncio.Event
    running: asyncio.Task[Any] | None
    log: Any

    def request(self, reason: str) -> None: ...

    def probe_seen(self, duration_s: float | None, result: str, trigger: str) -> None: ...

    def notification_received(self) -> None: ...


class Watcher:
    def __init__(self, runner: Watched) -> None:
        self.runner = runner
        s = runner.settings
        assert s.watch_interval_s is not None
        self.interval = s.watch_interval_s
        self.session = ProbeSession(
            s.conninfo(),
            SessionLimits(statement_timeout_ms=s.statement_timeout_ms),
            keep_open=self.interval <= KEEP_OPEN_MAX_S,
        )
        self.requested_for: str | None = None  # the fingerprint a sync was last asked for
        self._last_error: str | None = None
        self.poked = asyncio.Event()  # push mode: a NOTIFY arrived, probe now
        self.min_gap = s.listen_min_gap_s
        self._last_probe_at = -float("inf")  # monotonic start of the last probe
        self._last_probe_s = 0.0
        self._trigger = "interval"  # what started the probes of the current check
        self.listening = False  # push mode: the LISTEN connection is up (the status page)

    async def run(self) -> None:
        """Until the daemon stops; never raises but CancelledError (a bug is logged)."""
        channel = self.runner.settings.listen_channel
        listener = asyncio.create_task(self._listen(channel)) if channel else None
        try:
            while await self._next_turn():
                try:
                    await self.check()
                except Exception:  # a bug must not end the daemon
                    self.runner.log.exception("watch.crashed")
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            await self.session.close()

    async def _listen(self, channel: str) -> None:
        """Push mode: LISTEN on a connection of its own; a notification cuts the wait short.
        A lost connection is retried after 1 s, doubling up to the interval; meanwhile the
        polling goes on."""
        delay = 1.0
        while not self.runner.stopping.is_set():
            try:
                if await self._listen_once(channel):
                    delay = 1.0  # it was up: the next loss starts the back-off afresh
            except (SyncError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.runner.log.warning("listen.failed", error=str(exc), retry_in_s=delay)
            if not await self._sleep(delay):
                return
            delay = min(delay * 2, self.interval)

    async def _listen_once(self, channel: str) -> bool:
        """One LISTEN connection, until it is lost (True) or the daemon stops."""
        runner, lost = self.runner, asyncio.Event()
        conn = await open_session(self.session.info, self.session.limits)
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(channel, lambda *_: self._notified())
            runner.log.info("listen.started", channel=channel)
            self.listening = True
            waits = {
                asyncio.ensure_future(lost.wait()),
                asyncio.ensure_future(runner.stopping.wait()),
            }
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.listening = False
                for w in waits:
                    w.cancel()
            if lost.is_set():
                runner.log.warning("listen.lost", channel=channel)
                self.poked.set()  # whatever happened while it was down: probe now
            return lost.is_set()
        finally:
            await close_quickly(conn)

    def _notified(self) -> None:
        """A NOTIFY on the channel: only counted and remembered; _next_turn decides when."""
        self.runner.notification_received()
        self.poked.set()

    async def _next_turn(self) -> bool:
        """Wait for the next probe: `interval` after the last check, sooner on a notification,
        but not sooner than the gap after the last probe began (nor later than the poll).
        Notifications that arrive meanwhile (or came during the check) are all answered by
        this one probe."""
        poll_at = time.monotonic() + self.interval
        if not await self._sleep(self.interval, wake_on_notify=True):
            return False
        self._trigger = "interval"
        if self.poked.is_set():
            self._trigger = "notify"
            gap = max(self.min_gap, self._last_probe_s / PROBE_DUTY_MAX)
            wait = min(self._last_probe_at + gap, poll_at) - time.monotonic()
            if wait > 0 and not await self._sleep(wait):
                return False
        self.poked.clear()
        return True

    async def check(self) -> bool:
        """One watch step; True when it requested a sync."""
        runner = self.runner
        if runner.running is not None or runner.wake.is_set():
            return False  # a sync is running or queued: it probes and records itself
        record = read_record(runner.settings.backup_dir.absolute())
        if record is None:
            return False  # no full sync recorded yet: the schedule and retries handle it
        fp = await self._probe(record.fingerprint)
        if fp is None or fp.digest == record.fingerprint or fp.digest == self.requested_for:
            return False
        t0 = time.monotonic()
        settle, limit = runner.settings.watch_settle_s, runner.settings.watch_settle_max_s
        stable = settle <= 0
        while not stable and time.monotonic() - t0 < limit:
            if not await self._sleep(min(settle, max(0.0, limit - (time.monotonic() - t0)))):
                return False
            self._trigger = "settle"
            again = await self._probe(record.fingerprint)
            if again is None:
                return False
            stable, fp = again.digest == fp.digest, again
        self.requested_for = fp.digest
        runner.log.info(
            "watch.changed",
            changed_catalogs=fp.changed_catalogs(record.parts),
            waited_s=round(time.monotonic() - t0, 3),
            settled=stable,
        )
        runner.request("watch")
        return True

    async def _probe(self, recorded: str) -> Fingerprint | None:
        runner = self.runner
        async with runner.slots:
            if runner.stopping.is_set():
                return None
            self._last_probe_at = time.monotonic()
            try:
                fp = await self.session.fingerprint()
            except SyncError as exc:
                self._last_probe_s = time.monotonic() - self._last_probe_at
                if str(exc) != self._last_error:  # once per distinct error, not every interval
                    runner.log.warning("probe.failed", error=str(exc), cause=exc.cause.value)
                self._last_error = str(exc)
                runner.probe_seen(None, "error", self._trigger)
                return None
        self._last_probe_s = time.monotonic() - self._last_probe_at
        self._last_error = None
        result = "unchanged" if fp.digest == recorded else "changed"
        runner.probe_seen(fp.duration_s, result, self._trigger)
        return fp

    async def _sleep(self, seconds: float, wake_on_notify: bool = False) -> bool:
        """Sleep (cut short by a notification when asked), or return False at once when the
        daemon stops."""
        waits = [asyncio.ensure_future(self.runner.stopping.wait())]
        if wake_on_notify:
            waits.append(asyncio.ensure_future(self.poked.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return not self.runner.stopping.is_set()
