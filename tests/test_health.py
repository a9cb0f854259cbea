"""Health verdicts, the schedule as cron means it, the state file and the lock file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.daemon.health import (
    DaemonState,
    alive,
    fire_after,
    load_state,
    parse_schedule,
    save_state,
    standard_day_of_week,
    verdict,
)
from service.disk.lock import LockHeld, hold
from service.settings.model import SettingsError
from tests.conftest import run_cli

NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)  # a Friday
EVERY_15 = parse_schedule("*/15 * * * *", "UTC")
STATE = Path("backups/.pg-schema-sync-state.json")


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


# -- verdict -----------------------------------------------------------------------------------


def test_recent_success_is_healthy_and_one_missed_run_is_tolerated() -> None:
    state = DaemonState(daemon_started_at=ago(hours=5), last_success_at=ago(minutes=20))
    result = verdict(state, NOW, EVERY_15)
    assert result.healthy and result.reason == "last successful sync 20m ago"


def test_stale_success_is_unhealthy_and_names_the_failures() -> None:
    state = DaemonState(
        daemon_started_at=ago(hours=5),
        last_success_at=ago(minutes=40),  # due 11:30 and 11:45, +5 min slack -> 11:50
        consecutive_failures=3,
        last_error="cannot connect to app@db:5432/prod: refused",
    )
    result = verdict(state, NOW, EVERY_15)
    assert not result.healthy
    assert result.reason == (
        "last successful sync 40m ago, overdue since 11:50; 3 failures in a row, "
        "last: cannot connect to app@db:5432/prod: refused"
    )


def test_explicit_max_age_overrides_the_schedule() -> None:
    state = DaemonState(daemon_started_at=ago(hours=5), last_success_at=ago(minutes=40))
    assert verdict(state, NOW, EVERY_15, max_age_s=3600).healthy
    assert not verdict(state, NOW, EVERY_15, max_age_s=600).healthy


def test_before_the_first_success_the_start_time_counts() -> None:
    starting = DaemonState(daemon_started_at=ago(minutes=2))
    assert verdict(starting, NOW, EVERY_15).healthy
    stuck = DaemonState(daemon_started_at=ago(hours=2), consecutive_failures=8, last_error="x")
    result = verdict(stuck, NOW, EVERY_15)
    assert not result.healthy and result.reason.startswith("no successful sync since start 2h")


def test_no_state_or_a_stopped_daemon_is_unhealthy() -> None:
    assert not verdict(None, NOW, EVERY_15).healthy
    stopped = DaemonState(
        daemon_started_at=ago(hours=1),
        daemon_stopped_at=ago(minutes=1),
        last_success_at=ago(minutes=2),
    )
    assert verdict(stopped, NOW, EVERY_15).reason == "the daemon stopped 60s ago"
    restarted = DaemonState(
        daemon_started_at=ago(seconds=30),
        daemon_stopped_at=ago(minutes=1),
        last_success_at=ago(minutes=2),
    )
    assert verdict(restarted, NOW, EVERY_15).healthy


def test_liveness_counts_failing_syncs_as_work_and_flags_a_daemon_that_stopped_trying() -> None:
    # The database has been down for hours: unhealthy, yet the daemon keeps trying: alive.
    failing = DaemonState(
        daemon_started_at=ago(hours=5),
        last_success_at=ago(hours=4),
        last_started_at=ago(minutes=3),
        last_finished_at=ago(minutes=2),
        consecutive_failures=40,
    )
    assert not verdict(failing, NOW, EVERY_15).healthy
    result = alive(failing, NOW, EVERY_15, None, 600)
    assert result.healthy and result.reason == "active 2m ago"
    # Nothing started or finished for an hour on a 15-minute schedule: stuck.
    stuck = DaemonState(daemon_started_at=ago(hours=5), last_finished_at=ago(hours=1))
    result = alive(stuck, NOW, EVERY_15, None, 600)
    assert not result.healthy and result.reason.startswith("stuck: no sync started or finished")
    # A long first sync: started 20 minutes ago and still running is alive (and healthy).
    first = DaemonState(daemon_started_at=ago(minutes=21), last_started_at=ago(minutes=20))
    assert alive(first, NOW, EVERY_15, None, 600).healthy and verdict(first, NOW, EVERY_15).healthy
    # Its bound: the second run after its start (12:00) + 5 min + sync_timeout_s = 12:15.
    assert not alive(first, NOW + timedelta(minutes=16), EVERY_15, None, 600).healthy
    stopped = DaemonState(daemon_started_at=ago(hours=1), daemon_stopped_at=ago(minutes=1))
    assert not alive(stopped, NOW, EVERY_15, None, 600).healthy
    assert not alive(None, NOW, EVERY_15, None, 600).healthy


def test_weekday_schedule_tolerates_the_weekend() -> None:
    weekdays = parse_schedule("0 9 * * 1-5", "Europe/Berlin")
    friday = datetime(2026, 3, 6, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    monday_evening = datetime(2026, 3, 9, 17, 0, tzinfo=UTC)
    state = DaemonState(daemon_started_at=friday, last_success_at=friday)
    assert verdict(state, monday_evening, weekdays).healthy  # due Mon 09:00 and Tue 09:00
    assert not verdict(state, monday_evening + timedelta(days=1), weekdays).healthy


# -- schedule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("*/2", "sun,tue,thu,sat"),
        ("sat,sun", "sun,sat"),
        ("5-7", "sun,fri,sat"),
        ("*", "*"),
    ],
)
def test_day_of_week_means_what_cron_means(field: str, expected: str) -> None:
    assert standard_day_of_week(field) == expected


def test_sunday_zero_fires_on_sunday() -> None:
    sunday_3am = parse_schedule("0 3 * * 0", "UTC")
    fire = fire_after(sunday_3am, NOW)
    assert fire is not None and fire.strftime("%a %H:%M") == "Sun 03:00"


def test_day_of_month_or_day_of_week_like_cron() -> None:
    either = parse_schedule("0 0 13 * 5", "UTC")  # the 13th, and every Friday
    fires = [fire_after(either, NOW, skip=n) for n in range(3)]
    assert [f.strftime("%a %d") for f in fires if f] == ["Fri 13", "Fri 20", "Fri 27"]
    fires = [fire_after(either, datetime(2026, 4, 1, tzinfo=UTC), skip=n) for n in range(3)]
    assert [f.strftime("%a %d") for f in fires if f] == ["Fri 03", "Fri 10", "Mon 13"]


@pytest.mark.parametrize(
    ("schedule", "timezone", "message"),
    [
        ("*/15 * * *", "UTC", "schedule='*/15 * * *'"),
        ("61 * * * *", "UTC", "schedule='61 * * * *'"),
        ("0 3 * * 9", "UTC", "bad day of week '9'"),
        ("* * * * *", "Mars/Olympus", "timezone='Mars/Olympus'"),
    ],
)
def test_bad_schedule_is_one_line_naming_the_setting(
    schedule: str, timezone: str, message: str
) -> None:
    with pytest.raises(SettingsError) as err:
        parse_schedule(schedule, timezone)
    assert message in str(err.value) and "\n" not in str(err.value)


# -- files -------------------------------------------------------------------------------------


def test_state_round_trips_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = DaemonState(pid=42, last_success_at=NOW, active_drift="abc", consecutive_failures=2)
    save_state(path, state)
    assert load_state(path) == state
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert load_state(tmp_path / "missing.json") is None
    path.write_text("{not json")
    with pytest.raises(ValueError, match="state file"):
        load_state(path)


def test_lock_names_the_holder_and_is_free_again_after_release(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with hold(lock) as pid:
        assert lock.read_text().strip() == str(pid)
        with pytest.raises(LockHeld, match=rf"\(PID {pid}\) already runs"), hold(lock):
            pass
    assert lock.read_text() == ""
    with hold(lock):
        pass


# -- the command -------------------------------------------------------------------------------


def test_health_command_exit_codes_for_a_container_healthcheck(tmp_path: Path) -> None:
    missing = run_cli("health", cwd=tmp_path)
    assert missing.code == 1
    assert missing.out.startswith("unhealthy: no state file") and str(STATE) in missing.out
    now = datetime.now(UTC)
    save_state(tmp_path / STATE, DaemonState(daemon_started_at=now, last_success_at=now))
    assert run_cli("health", cwd=tmp_path).code == 0
    old = now - timedelta(hours=2)
    save_state(tmp_path / STATE, DaemonState(daemon_started_at=old, last_success_at=old))
    stale = run_cli("health", cwd=tmp_path)
    assert (stale.code, stale.out.count("\n")) == (1, 1)
    # Docker reserves exit 2: even invalid settings must answer 1.
    bad = run_cli("health", cwd=tmp_path, env={"SCHEMA_SYNC_SCHEDULE": "every day"})
    assert bad.code == 1 and "schedule='every day'" in bad.out
