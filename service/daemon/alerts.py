"""Who hears about what: log events for every run, Sentry only for what needs a person.

The decisions are pure functions of (alert state, what happened); `Alerts` only carries them
out. Sentry gets: a drift once per distinct drift (fingerprint = the drift's own hash, so
Sentry groups a persisting drift into one issue and we do not resend it every cycle) as an
error when a change in it is breaking and a warning otherwise, titled with the counts by
impact; an info
event when production and the files agree again, an error after N consecutive failures and an
info event on recovery. Every payload passes through the same scrubber as the logs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from service import __version__
from service.compare.drift import Drift, DriftItem
from service.compare.levels import Impact
from service.daemon import messages
from service.daemon.webhooks import Hook, WebhookSender
from service.errors import Cause
from service.logs import scrub

MAX_NAMES_SENT = 50  # a drift over a whole schema still fits one readable Sentry event


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
    DRIFT_NEW = "drift_new"  # a drift not alerted before: log + Sentry (error if breaking)
    DRIFT_KNOWN = "drift_known"  # the drift already alerted: log only
    DRIFT_RESOLVED = "drift_resolved"  # production and files agree again: log + Sentry info
    FAILURE_ALERT = "failure_alert"  # N-th failure in a row: Sentry error
    RECOVERED = "recovered"  # success after an alerted failure streak: log + Sentry info


@dataclass(frozen=True)
class AlertState:
    active_drift: str | None = None
    consecutive_failures: int = 0
    failure_alerted: bool = False


def after_success(
    state: AlertState, drift_fingerprint: str | None, first_run: bool
) -> tuple[AlertState, list[Notice]]:
    """A completed sync. A first run is the baseline, not drift: it alerts nobody."""
    notices: list[Notice] = []
    if state.failure_alerted:
        notices.append(Notice.RECOVERED)
    active = state.active_drift
    if drift_fingerprint is None or first_run:
        if active is not None:
            notices.append(Notice.DRIFT_RESOLVED)
        active = None
    elif drift_fingerprint == active:
        notices.append(Notice.DRIFT_KNOWN)
    else:
        notices.append(Notice.DRIFT_NEW)
        active = drift_fingerprint
    return AlertState(active, 0, False), notices


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


# --------------------------------------------------------------------------------------------
# Carrying them out


class Alerts:
    """Logs and Sentry events for one target. Sentry is off unless a DSN is given."""

    def __init__(
        self, target: str, source: str, alert_after: int, in_fingerprint: bool = False
    ) -> None:
        self.target, self.source, self.alert_after = target, source, alert_after
        # With several targets the same drift in two databases is two Sentry issues.
        self.in_fingerprint = in_fingerprint
        self.sentry = False
        self._sdk: Any = None  # sentry_sdk, imported only when used: it costs ~0.5 s at start
        self.webhooks: WebhookSender | None = None  # one sender (queues, client) per process
        self.hooks: tuple[Hook, ...] = ()  # this target's webhooks

    def for_target(
        self,
        target: str,
        source: str,
        alert_after: int,
        in_fingerprint: bool = False,
        hooks: tuple[Hook, ...] = (),
    ) -> Alerts:
        """Alerts for one target sharing this one's Sentry client (started once per process)
        and webhook sender; `hooks` are the target's own webhooks."""
        child = Alerts(target, source, alert_after, in_fingerprint)
        child._sdk, child.sentry = self._sdk, self.sentry
        child.webhooks, child.hooks = self.webhooks, hooks
        return child

    def start_sentry(self, dsn: str | None, environment: str | None) -> None:
        if not dsn:
            return
        import sentry_sdk

        # No default integrations: nothing is captured behind our back (the logging one would
        # turn APScheduler's log lines into events, the excepthook one tracebacks with locals),
        # and no local variables, which could hold the connection settings.
        sentry_sdk.init(
            dsn=dsn,
            environment=environment,
            release=f"pg-schema-sync@{__version__}",
            send_default_pii=False,
            include_local_variables=False,
            default_integrations=False,
            auto_enabling_integrations=False,
            max_breadcrumbs=0,
            before_send=scrub_event,
            before_breadcrumb=scrub_event,
        )
        self._sdk, self.sentry = sentry_sdk, True

    def close(self, timeout_s: float) -> None:
        """Send what is queued, waiting at most `timeout_s`; Sentry down must not hold us."""
        if self.sentry:
            self._sdk.get_client().close(timeout=timeout_s)
            self.sentry = False

    def succeeded(
        self,
        state: AlertState,
        drift: Drift,
        first_run: bool,
        backup: str | None,
        log: Any,
        commit: str | None = None,  # git delivery's commit of the refreshed files, if any
    ) -> AlertState:
        fingerprint = drift.fingerprint() if drift and not first_run else None
        new_state, notices = after_success(state, fingerprint, first_run)
        for notice in notices:
            if notice in (Notice.DRIFT_NEW, Notice.DRIFT_KNOWN):
                for item in drift.worst_first():
                    renamed = {"from": item.from_name} if item.from_name is not None else {}
                    log.warning(
                        "drift.detected",
                        kind=item.kind,
                        name=item.name,
                        change=item.change.value,
                        impact=item.impact.value,
                        reasons=list(item.reasons),
                        **renamed,
                        fingerprint=fingerprint,
                        new=notice is Notice.DRIFT_NEW,
                    )
            if notice is Notice.DRIFT_NEW:
                assert fingerprint is not None
                self._send_drift(drift, fingerprint, backup, log, commit)
                self._notify(
                    messages.drift_event(
                        self.target, self.source, drift, fingerprint, backup, _now(), commit
                    )
                )
            elif notice is Notice.DRIFT_RESOLVED:
                log.info("drift.resolved", fingerprint=state.active_drift)
                self._send(
                    f"Schema drift resolved on {self.source}: production matches the files",
                    "info",
                    ["drift-resolved", self.target],
                    {"drift_fingerprint": state.active_drift or ""},
                    {},
                    log,
                )
                self._notify(
                    messages.resolved_event(self.target, self.source, state.active_drift, _now())
                )
            elif notice is Notice.RECOVERED:
                log.info("sync.recovered", after_failures=state.consecutive_failures)
                self._send(
                    f"Schema sync recovered on {self.source} "
                    f"after {state.consecutive_failures} failures",
                    "info",
                    ["sync-recovered", self.target],
                    {},
                    {},
                    log,
                )
                self._notify(
                    messages.recovered_event(
                        self.target, self.source, state.consecutive_failures, _now()
                    )
                )
        return new_state

    def failed(self, state: AlertState, error: str, cause: Cause, log: Any) -> AlertState:
        new_state, notices = after_failure(state, self.alert_after)
        if Notice.FAILURE_ALERT in notices:
            n = new_state.consecutive_failures
            self._send(
                f"Schema sync failing on {self.source} ({n} times in a row): {error}",
                "error",
                ["sync-failed", self.target, cause.value],
                {"cause": cause.value},
                {"failure": {"error": error, "cause": cause.value, "consecutive_failures": n}},
                log,
            )
            self._notify(
                messages.failure_event(self.target, self.source, error, cause.value, n, _now())
            )
        return new_state

    def git_delivery(
        self, alert: str, branch: str, error: str | None, failures: int, log: Any
    ) -> None:
        """Git delivery's own streak (decided in service.delivery.state): one error when it
        reaches failure_alert_after, one info on recovery. The sync itself succeeded."""
        if alert == "failing":
            log.error("git.failure_alert", branch=branch, consecutive_failures=failures)
            self._send(
                f"Git delivery failing on {self.source} ({failures} times in a row, branch "
                f"{branch}): {error}; the commits wait in the daemon's clone",
                "error",
                ["git-delivery-failed", self.target],
                {"cause": "git"},
                {"git": {"branch": branch, "error": error, "consecutive_failures": failures}},
                log,
            )
        elif alert == "recovered":
            log.info("git.recovered", branch=branch)
            self._send(
                f"Git delivery recovered on {self.source} (branch {branch})",
                "info",
                ["git-delivery-recovered", self.target],
                {},
                {},
                log,
            )

    def _send_drift(
        self, drift: Drift, fingerprint: str, backup: str | None, log: Any, commit: str | None
    ) -> None:
        # Names only, no DDL: function bodies can hold secrets and Sentry is often a third
        # party; the full diff is in the backup's sync-summary.md. Reasons name objects,
        # columns and roles, never values. The worst first, so a cut keeps them.
        names = [_change_line(i) for i in drift.worst_first()[:MAX_NAMES_SENT]]
        if len(drift) > MAX_NAMES_SENT:
            names.append(f"... and {len(drift) - MAX_NAMES_SENT} more")
        worst = drift.impact or Impact.COSMETIC
        self._send(
            f"Schema drift on {self.source}: {drift.headline()}",
            "error" if worst is Impact.BREAKING else "warning",
            [fingerprint, self.target] if self.in_fingerprint else [fingerprint],
            {"drift_fingerprint": fingerprint, "drift_impact": worst.value},
            {
                "drift": {
                    "fingerprint": fingerprint,
                    "headline": drift.headline(),
                    "impact": drift.impacts(),
                    "changes": names,
                    "summary": f"{backup}/sync-summary.md" if backup else None,
                    **({"commit": commit} if commit else {}),
                }
            },
            log,
        )

    def _notify(self, event: messages.AlertEvent) -> None:
        """Queue the webhook messages; the sender's workers post them after the sync."""
        if self.webhooks is not None and self.hooks:
            self.webhooks.submit(self.hooks, event)

    def _send(
        self,
        message: str,
        level: str,
        fingerprint: list[str],
        tags: dict[str, str],
        contexts: dict[str, dict[str, Any]],
        log: Any,
    ) -> None:
        if not self.sentry:
            return
        try:
            # Only queues the event: the SDK's worker thread does the HTTP, so a slow or
            # unreachable Sentry never holds up a sync.
            event_id = self._sdk.capture_message(
                message,
                level=level,
                fingerprint=fingerprint,
                tags={"target": self.target, **tags},
                contexts=contexts,
            )
        except Exception as exc:  # alerting must never break a sync
            log.warning("alert.failed", error=f"{type(exc).__name__}: {exc}")
            return
        log.info("alert.sent", level=level, event_id=event_id, fingerprint=fingerprint)


def _change_line(item: DriftItem) -> str:
    """`breaking: changed table app.t: column b dropped` for Sentry's list of changes."""
    notes = "; ".join(item.notes())
    return f"{item.impact.value}: {item.line()}" + (f": {notes}" if notes else "")


def _now() -> datetime:
    return datetime.now(UTC)
