"""Daemon state on disk and the `health` verdict.

The state file is written atomically after every run (and at start and stop), so a reader sees
either the previous state or the new one. The verdict is a pure function of the state, the
clock and the schedule, which is why the cron parsing lives here too: "recent enough" depends
on when the next runs were due.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from service.disk import files
from service.disk.legacy import STATE_NAME, legacy_paths
from service.disk.lock import LOCK_NAME
from service.settings.model import ENV_PREFIX, Settings, SettingsError

STATE_VERSION = 1
HEALTH_SLACK = timedelta(minutes=5)  # a run may take a while and the clock may be late

# --------------------------------------------------------------------------------------------
# Schedule

_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _day_number(token: str, expr: str) -> int:
    token = token.lower()
    if token[:3] in _DAYS and len(token) == 3:
        return _DAYS.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise ValueError(f"bad day of week {token!r} in {expr!r} (use 0-7 or sun-sat)")


def standard_day_of_week(expr: str) -> str:
    """A cron day-of-week field (0 or 7 = Sunday) as day names for APScheduler 3.

    APScheduler 3 numbers days from Monday = 0, so `0 3 * * 0` would run on Mondays; names
    mean the same thing to both, and expanding steps keeps `*/2` on cron's days.
    """
    days: set[int] = set()
    for part in expr.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in {expr!r}")
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            a, b = span.split("-", 1)
            lo, hi = _day_number(a, expr), _day_number(b, expr)
            if b.strip() == "7":
                hi = 7
            if hi < lo:
                raise ValueError(f"day-of-week range {span!r} runs backwards in {expr!r}")
        else:
            lo = _day_number(span, expr)
            hi = 6 if step_text else lo
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return "*" if len(days) == 7 else ",".join(_DAYS[d] for d in sorted(days))


def parse_schedule(expr: str, timezone: str) -> BaseTrigger:
    """A standard 5-field cron expression as an APScheduler trigger; SettingsError if invalid.

    Like cron, when both day-of-month and day-of-week are restricted a day matching either
    runs (APScheduler alone would require both).
    """
    try:
        tz: tzinfo = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"invalid setting timezone={timezone!r} (from {ENV_PREFIX}TIMEZONE or the config "
            "file): not an IANA time zone such as UTC or Europe/Berlin"
        ) from None
    try:
        fields_ = expr.split()
        if len(fields_) != 5:
            raise ValueError(
                f"expected 5 fields (minute hour day month weekday), got {len(fields_)}"
            )
        minute, hour, dom, month, dow = fields_
        dow = standard_day_of_week(dow)

        def cron(day: str, day_of_week: str) -> CronTrigger:
            return CronTrigger(
                minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week, timezone=tz
            )

        trigger: BaseTrigger = (
            OrTrigger([cron(dom, "*"), cron("*", dow)])
            if dom != "*" and dow != "*"
            else cron(dom, dow)
        )
        if trigger.get_next_fire_time(None, datetime.now(tz)) is None:
            # "0 0 30 2 *" (February 30th) parses, and would leave the daemon idle forever.
            raise ValueError("it never fires (no such date)")
        return trigger
    except ValueError as exc:
        raise SettingsError(
            f"invalid setting schedule={expr!r} (from {ENV_PREFIX}SCHEDULE or the config file): "
            f"{exc}; write a 5-field cron expression such as '*/15 * * * *'"
        ) from None


def fire_after(trigger: BaseTrigger, when: datetime, skip: int = 0) -> datetime | None:
    """The (skip+1)-th scheduled time strictly after `when`."""
    fire: datetime | None = None
    prev: datetime | None = None
    now = when + timedelta(microseconds=1)
    for _ in range(skip + 1):
        fire = trigger.get_next_fire_time(prev, now)
        if fire is None:
            return None
        prev, now = fire, fire + timedelta(microseconds=1)
    return fire


# --------------------------------------------------------------------------------------------
# State


@dataclass(frozen=True)
class DaemonState:
    """What the daemon knows about its runs; also what alerts need to survive a restart."""

    pid: int | None = None
    schedule: str = ""
    timezone: str = "UTC"
    daemon_started_at: datetime | None = None
    daemon_stopped_at: datetime | None = None
    last_run_id: str | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    last_failure_cause: str | None = None  # service.errors.Cause of the last failure
    last_drift_at: datetime | None = None
    last_drift_headline: str | None = None
    consecutive_failures: int = 0
    active_drift: str | None = None  # a held drift alerted and not yet resolved
    failure_alerted: bool = False
    refreshed_drift: str | None = None  # the drift last written into the files (alerts.py)
    # The catalog probe (docs/probe.md): most cycles of an unchanged database skip.
    last_probe_at: datetime | None = None
    last_probe_result: str | None = None  # unchanged | catalog changed | ... | error
    last_full_sync_at: datetime | None = None

    def to_json(self) -> str:
        data = {"version": STATE_VERSION, **asdict(self)}
        return json.dumps(data, default=_iso, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DaemonState:
        data = json.loads(text)
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in known:
                is_time = name.endswith("_at")
                values[name] = datetime.fromisoformat(value) if is_time and value else value
        return cls(**values)

    def updated(self, **changes: Any) -> DaemonState:
        return replace(self, **changes)


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in the state file")


def state_folder(settings: Settings) -> Path:
    """Where the daemon keeps its state and lock files: state_dir, else backup_dir; never the
    schema folder, which a user commits."""
    return (settings.state_dir or settings.backup_dir).absolute()


def default_paths(settings: Settings) -> tuple[Path, Path]:
    """(state file, lock file): in the state folder unless configured."""
    folder = state_folder(settings)
    state = settings.state_file.absolute() if settings.state_file else folder / STATE_NAME
    lock = settings.lock_file.absolute() if settings.lock_file else folder / LOCK_NAME
    return state, lock


def history_file(state_file: Path) -> Path:
    """The status page's history (service/disk/history.py): beside the state file, wherever
    that is configured or moved to, under the same name stem."""
    stem = state_file.name.removesuffix(".json").removesuffix("-state")
    return state_file.with_name(f"{stem}-history.json")


def old_paths(settings: Settings) -> tuple[Path | None, Path | None]:
    """(state file, lock file) where an older version kept them, beside the schema files;
    None where the setting names a file (it was never in the old default place)."""
    state, lock = legacy_paths(settings.schema_file.absolute().parent)
    return (None if settings.state_file else state), (None if settings.lock_file else lock)


def read_state(settings: Settings) -> tuple[Path, DaemonState | None]:
    """(where, the state) for `health`: the state folder's file, or, until the daemon of this
    version has started and moved it, the one an older version left beside the schema files."""
    path, _ = default_paths(settings)
    state = load_state(path)
    old, _ = old_paths(settings)
    if state is None and old is not None and old.is_file():
        return old, load_state(old)
    return path, state


def load_state(path: Path) -> DaemonState | None:
    """The saved state; None when there is none yet. Unreadable state raises ValueError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return DaemonState.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"state file {path} is unreadable ({exc})") from None


def save_state(path: Path, state: DaemonState) -> None:
    files.write_atomically(path, state.to_json().encode())


# --------------------------------------------------------------------------------------------
# Verdict


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


def _ago(now: datetime, then: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def deadline_after(
    when: datetime, trigger: BaseTrigger | None, max_age_s: float | None
) -> datetime | None:
    """Latest time the next success may come: max_age_s when set, else one missed run allowed."""
    if max_age_s is not None:
        return when + timedelta(seconds=max_age_s)
    second = fire_after(trigger, when, skip=1) if trigger is not None else None
    return second + HEALTH_SLACK if second is not None else None


def verdict(
    state: DaemonState | None,
    now: datetime,
    trigger: BaseTrigger | None,
    max_age_s: float | None = None,
) -> Verdict:
    """Healthy when the last success (or, before any, the start) is recent enough."""
    if state is None:
        return Verdict(False, "no state file: the daemon has not run in this folder yet")
    failing = ""
    if state.consecutive_failures:
        failing = f"; {state.consecutive_failures} failures in a row, last: {state.last_error}"
    stopped = state.daemon_stopped_at
    if stopped and (state.daemon_started_at is None or stopped >= state.daemon_started_at):
        return Verdict(False, f"the daemon stopped {_ago(now, stopped)}")
    since = state.last_success_at or state.daemon_started_at
    if since is None:
        return Verdict(False, "the daemon has not started a sync yet")
    deadline = deadline_after(since, trigger, max_age_s)
    what = "last successful sync" if state.last_success_at else "no successful sync since start"
    if deadline is not None and now > deadline:
        return Verdict(False, f"{what} {_ago(now, since)}, overdue since {deadline:%H:%M}{failing}")
    return Verdict(True, f"{what} {_ago(now, since)}{failing}")


def alive(
    state: DaemonState | None,
    now: datetime,
    trigger: BaseTrigger | None,
    max_age_s: float | None,
    sync_timeout_s: float,
) -> Verdict:
    """Is the daemon itself working, whatever the database answers? For a liveness probe:
    a restart cures a stuck daemon, never an unreachable database, so failed syncs count as
    activity here and only a daemon that stopped, or stopped trying, is reported."""
    if state is None:
        return Verdict(False, "no state file: the daemon has not run in this folder yet")
    stopped = state.daemon_stopped_at
    if stopped and (state.daemon_started_at is None or stopped >= state.daemon_started_at):
        return Verdict(False, f"the daemon stopped {_ago(now, stopped)}")
    moments = (
        state.daemon_started_at,
        state.last_started_at,
        state.last_finished_at,
        state.last_probe_at,
    )
    last = max((m for m in moments if m is not None), default=None)
    if last is None:
        return Verdict(False, "the daemon has not started yet")
    deadline = deadline_after(last, trigger, max_age_s)
    if deadline is not None:
        # A sync that started just before may run for up to sync_timeout_s.
        deadline += timedelta(seconds=sync_timeout_s)
        if now > deadline:
            return Verdict(
                False,
                f"stuck: no sync started or finished since {_ago(now, last)} "
                f"(due by {deadline:%H:%M})",
            )
    return Verdict(True, f"active {_ago(now, last)}")
