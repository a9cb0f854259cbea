"""Carrying out the alert decisions (alerts.py): log events, Sentry events, webhook messages.

Sentry is off unless a DSN is given; webhooks are queued (webhooks.py) and never hold up a
sync. With `public_url` set, every message links to the status page: a drift to its backup's
page (the diffs), anything else to the target's page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from service import __version__
from service.compare.drift import Drift, DriftItem
from service.compare.levels import Impact
from service.daemon import messages
from service.daemon.alerts import (
    VERIFY_HELD,
    AlertState,
    Notice,
    after_failure,
    after_held_failure,
    after_success,
    scrub_event,
)
from service.daemon.webhooks import Hook, WebhookSender
from service.errors import Cause
from service.settings.links import drift_url, page_url, target_path

MAX_NAMES_SENT = 50  # a drift over a whole schema still fits one readable Sentry event


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
        self.public_url: str | None = None  # the status page's address: messages link there

    def for_target(
        self,
        target: str,
        source: str,
        alert_after: int,
        in_fingerprint: bool = False,
        hooks: tuple[Hook, ...] = (),
        public_url: str | None = None,
    ) -> Alerts:
        """Alerts for one target sharing this one's Sentry client (started once per process)
        and webhook sender; `hooks` are the target's own webhooks."""
        child = Alerts(target, source, alert_after, in_fingerprint)
        child._sdk, child.sentry = self._sdk, self.sentry
        child.webhooks, child.hooks = self.webhooks, hooks
        child.public_url = public_url
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
            # No send_default_pii: unset is "no personal data" (sentry-sdk 2.x warns that the
            # option is deprecated whenever it is given, False included).
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
        held_because: str | None = None,  # why the files were not refreshed (check_only)
    ) -> AlertState:
        fingerprint = drift.fingerprint() if drift and not first_run else None
        refreshed = held_because is None
        new_state, notices = after_success(state, fingerprint, first_run, refreshed)
        for notice in notices:
            self._carry_out(notice, state, drift, fingerprint, backup, commit, held_because, log)
        return new_state

    def held_failure(
        self, state: AlertState, drift: Drift, backup: str | None, error: str, log: Any
    ) -> AlertState:
        """verify = "require" failed: the drift is told as held (files not refreshed), and the
        failure counts towards the streak like any other."""
        fingerprint = drift.fingerprint()
        new_state, notices = after_held_failure(state, fingerprint, self.alert_after)
        held = VERIFY_HELD
        for notice in notices:
            if notice is Notice.FAILURE_ALERT:
                self._failure_alert(new_state.consecutive_failures, error, Cause.VERIFY, log)
            else:
                self._carry_out(notice, state, drift, fingerprint, backup, None, held, log)
        return new_state

    def _carry_out(
        self,
        notice: Notice,
        state: AlertState,
        drift: Drift,
        fingerprint: str | None,
        backup: str | None,
        commit: str | None,
        held_because: str | None,
        log: Any,
    ) -> None:
        if notice in (Notice.DRIFT_REFRESHED, Notice.DRIFT_HELD, Notice.DRIFT_KNOWN):
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
                    new=notice is not Notice.DRIFT_KNOWN,
                    files="held" if held_because else "refreshed",
                )
        if notice in (Notice.DRIFT_REFRESHED, Notice.DRIFT_HELD):
            assert fingerprint is not None
            url = drift_url(self.public_url, self.target, _name(backup))
            self._send_drift(drift, fingerprint, backup, log, commit, held_because, url)
            self._notify(
                messages.drift_event(
                    self.target,
                    self.source,
                    drift,
                    fingerprint,
                    backup,
                    _now(),
                    commit,
                    held_because=held_because,
                    url=url,
                )
            )
        elif notice is Notice.DRIFT_RESOLVED:
            log.info("drift.resolved", fingerprint=state.active_drift)
            self._send(
                f"Schema drift resolved on {self.source}: production matches the files",
                "info",
                ["drift-resolved", self.target],
                {"drift_fingerprint": state.active_drift or ""},
                self._page(),
                log,
            )
            self._notify(
                messages.resolved_event(
                    self.target, self.source, state.active_drift, _now(), self._url()
                )
            )
        elif notice is Notice.RECOVERED:
            log.info("sync.recovered", after_failures=state.consecutive_failures)
            self._send(
                f"Schema sync recovered on {self.source} "
                f"after {state.consecutive_failures} failures",
                "info",
                ["sync-recovered", self.target],
                {},
                self._page(),
                log,
            )
            self._notify(
                messages.recovered_event(
                    self.target, self.source, state.consecutive_failures, _now(), self._url()
                )
            )

    def _url(self) -> str | None:
        return page_url(self.public_url, target_path(self.target))

    def _page(self) -> dict[str, dict[str, Any]]:
        url = self._url()
        return {"status_page": {"url": url}} if url else {}

    def failed(self, state: AlertState, error: str, cause: Cause, log: Any) -> AlertState:
        new_state, notices = after_failure(state, self.alert_after)
        if Notice.FAILURE_ALERT in notices:
            self._failure_alert(new_state.consecutive_failures, error, cause, log)
        return new_state

    def _failure_alert(self, n: int, error: str, cause: Cause, log: Any) -> None:
        self._send(
            f"Schema sync failing on {self.source} ({n} times in a row): {error}",
            "error",
            ["sync-failed", self.target, cause.value],
            {"cause": cause.value},
            {
                "failure": {"error": error, "cause": cause.value, "consecutive_failures": n},
                **self._page(),
            },
            log,
        )
        self._notify(
            messages.failure_event(
                self.target, self.source, error, cause.value, n, _now(), self._url()
            )
        )

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
        self,
        drift: Drift,
        fingerprint: str,
        backup: str | None,
        log: Any,
        commit: str | None,
        held_because: str | None,
        url: str | None,
    ) -> None:
        # Names only, no DDL: function bodies can hold secrets and Sentry is often a third
        # party; the full diff is in the backup's sync-summary.md and on the status page.
        # Reasons name objects, columns and roles, never values. The worst first, so a cut
        # keeps them.
        names = [_change_line(i) for i in drift.worst_first()[:MAX_NAMES_SENT]]
        if len(drift) > MAX_NAMES_SENT:
            names.append(f"... and {len(drift) - MAX_NAMES_SENT} more")
        worst = drift.impact or Impact.COSMETIC
        self._send(
            f"Schema drift on {self.source}: {drift.headline()}; "
            + messages.files_note(_name(backup), commit, held_because),
            "error" if worst is Impact.BREAKING else "warning",
            [fingerprint, self.target] if self.in_fingerprint else [fingerprint],
            {
                "drift_fingerprint": fingerprint,
                "drift_impact": worst.value,
                "files": "held" if held_because else "refreshed",
            },
            {
                "drift": {
                    "fingerprint": fingerprint,
                    "headline": drift.headline(),
                    "impact": drift.impacts(),
                    "changes": names,
                    "summary": f"{backup}/sync-summary.md" if backup else None,
                    "files": "held" if held_because else "refreshed",
                    **({"held_because": held_because} if held_because else {}),
                    **({"commit": commit} if commit else {}),
                    **({"url": url} if url else {}),
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


def _now() -> datetime:
    return datetime.now(UTC)


def _name(backup: str | None) -> str | None:
    """A backup folder's name (alerts get its path; pages and titles name it)."""
    return PurePath(backup).name if backup else None


def _change_line(item: DriftItem) -> str:
    """`breaking: changed table app.t: column b dropped` for Sentry's list of changes."""
    notes = "; ".join(item.notes())
    return f"{item.impact.value}: {item.line()}" + (f": {notes}" if notes else "")
