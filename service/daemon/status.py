"""The daemon's side of the status page: its runners' state as plain data, and the listener.

`snapshot` runs on the event loop, between two awaits, so it reads every runner in one
consistent moment; the web package (service/web/) gets only that data and never touches a
runner. The listener also serves /metrics, so it starts whenever `metrics_port` is set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from service import __version__
from service.daemon.health import verdict
from service.daemon.metrics import Metrics
from service.daemon.runner import TargetRunner
from service.logs import register_secret
from service.settings.model import Settings, SettingsError
from service.web.auth import Gate, allowed_hosts
from service.web.model import Status, TargetStatus
from service.web.server import StatusServer


def watch_words(runner: TargetRunner) -> str | None:
    """Watch mode in words, for the page: None when it is off."""
    watcher = runner.watcher
    if watcher is None:
        return None
    words = f"probing every {watcher.interval:g} s"
    channel = runner.settings.listen_channel
    if channel:
        up = "listening" if watcher.listening else "not connected, polling only"
        words += f"; push on channel {channel} ({up})"
    return words


def target_status(runner: TargetRunner, now: datetime) -> TargetStatus:
    s, settings = runner.state, runner.settings
    judged = verdict(s, now, runner.trigger, settings.health_max_age_s)
    job = runner.job
    return TargetStatus(
        name=runner.name,
        source=settings.conninfo().display(),
        healthy=judged.healthy,
        health=judged.reason,
        schedule=settings.schedule,
        timezone=settings.timezone,
        check_only=settings.check_only,
        backup_dir=settings.backup_dir.absolute(),
        history=runner.history,
        running_since=s.last_started_at if runner.running is not None else None,
        next_run_at=job.next_run_time if job is not None else None,
        last_full_sync_at=s.last_full_sync_at,
        last_success_at=s.last_success_at,
        last_probe_at=s.last_probe_at,
        last_probe_result=s.last_probe_result,
        watch=watch_words(runner),
        consecutive_failures=s.consecutive_failures,
        last_error=s.last_error,
        last_error_cause=s.last_failure_cause,
        last_failure_at=s.last_failure_at,
        generation=runner.changes,
    )


def snapshot(runners: Sequence[TargetRunner], started_at: datetime) -> Status:
    now = datetime.now(UTC)
    targets = tuple(target_status(r, now) for r in runners)
    # What the daemon knows changed, or a target's health did (a deadline passing changes no
    # state, but does change the verdict).
    changes = sum(r.changes for r in runners)
    health = hashlib.sha256(bytes(t.healthy for t in targets)).hexdigest()[:8]
    return Status(
        generated_at=now,
        version=__version__,
        revision=f"{started_at.timestamp():.0f}-{changes}-{health}",
        targets=targets,
        daemon_started_at=started_at,
    )


async def serve(
    settings: Settings, runners: Sequence[TargetRunner], metrics: Metrics
) -> StatusServer:
    """Start the listener on metrics_host:metrics_port; SettingsError when it cannot."""
    assert settings.metrics_port is not None
    token = settings.status_token.get_secret_value() if settings.status_token else None
    register_secret(token)  # never in a log line, whatever quotes it
    started = datetime.now(UTC)
    server = StatusServer(
        lambda: snapshot(runners, started),
        metrics.render,
        Gate(token, allowed_hosts(settings.metrics_host, settings.public_url)),
        secure_cookie=bool(settings.public_url and settings.public_url.startswith("https:")),
    )
    try:
        await server.start(settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        raise SettingsError(
            f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} "
            f"({exc.strerror or exc}): choose a free metrics_port or unset it"
        ) from None
    return server
