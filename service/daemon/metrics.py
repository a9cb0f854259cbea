"""Prometheus metrics; served at /metrics by the status page's listener (service/web/).

A registry of our own (plus the process collector for memory and CPU) rather than the global
one, so nothing imported by accident shows up on the endpoint. Every series a target will
have is created at start with its zero value (failures by each cause, cycles of each kind):
a counter that first appears at 1 is invisible to `increase()`, and the alert rules in
deploy/prometheus/ and the dashboard in deploy/grafana/ would miss a target's first failure.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector

from service.errors import Cause

_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
# Every level has a series (0 when none), so a rule on one level always has data.
IMPACTS = ("breaking", "behavioural", "compatible", "cosmetic")


class Metrics:
    """Run metrics; with several targets each series carries a `target` label (without, the
    series are exactly those of a single-database deployment)."""

    def __init__(self, by_target: bool = False) -> None:
        self.by_target = by_target
        per = ["target"] if by_target else []
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        ns = "pg_schema_sync"
        self.duration = Histogram(
            f"{ns}_sync_duration_seconds",
            "Duration of sync runs",
            [*per, "result"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            f"{ns}_last_success_timestamp_seconds",
            "Unix time of the last successful sync",
            per,
            registry=self.registry,
        )
        self.drift_objects = Gauge(
            f"{ns}_drift_objects",
            "Objects that differed between production and the files in the last sync, by "
            "impact (breaking, behavioural, compatible, cosmetic)",
            [*per, "impact"],
            registry=self.registry,
        )
        self.failures = Counter(
            f"{ns}_sync_failures", "Failed sync runs", [*per, "cause"], registry=self.registry
        )
        # The catalog probe: most cycles of an unchanged database are skipped, not synced.
        self.cycles = Counter(
            f"{ns}_cycles",
            "Successful cycles by kind: full (read production) or skipped (probe unchanged)",
            [*per, "kind"],
            registry=self.registry,
        )
        self.probe_duration = Histogram(
            f"{ns}_probe_duration_seconds",
            "Duration of catalog probes",
            per,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        # What this daemon serves: with shards, the sum of targets_served over the shards
        # equals targets_configured when every shard runs (docs/kubernetes.md has the alert).
        self.targets_served = Gauge(
            f"{ns}_targets_served", "Targets this daemon serves", registry=self.registry
        )
        self.targets_configured = Gauge(
            f"{ns}_targets_configured",
            "Targets in the configuration, every shard's together",
            registry=self.registry,
        )
        self.shard = Info(
            f"{ns}_shard", "The shard of the targets this daemon serves", registry=self.registry
        )
        # Push mode: notifications anyone who may connect can send, against the probes they
        # led to (rate-limited in watch.py); the two side by side show a flood.
        self.notifications = Counter(
            f"{ns}_listen_notifications",
            "NOTIFYs received on listen_channel",
            per,
            registry=self.registry,
        )
        self.watch_probes = Counter(
            f"{ns}_watch_probes",
            "Watch-mode probes run, by what started them: interval, notify or settle",
            [*per, "trigger"],
            registry=self.registry,
        )
        self.probe_failures = Counter(
            f"{ns}_probe_failures",
            "Catalog probes that failed (watch mode, or the probe before a cycle)",
            per,
            registry=self.registry,
        )
        # What the alert rules need, as the daemon judges it (service/daemon/health.py).
        self.consecutive_failures = Gauge(
            f"{ns}_consecutive_failures",
            "Failed syncs in a row (0 after a success)",
            per,
            registry=self.registry,
        )
        self.success_deadline = Gauge(
            f"{ns}_success_deadline_timestamp_seconds",
            "Unix time by which the next successful sync is due, as `health` judges it "
            "(health_max_age_s, or the second scheduled run plus 5 minutes); 0 when unknown",
            per,
            registry=self.registry,
        )
        self.drift_open_since = Gauge(
            f"{ns}_drift_open_since_timestamp_seconds",
            "Unix time a drift whose files were not refreshed (verify failed, check_only) was "
            "first found; 0 when no such drift is open",
            per,
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The exposition text for /metrics."""
        return generate_latest(self.registry)

    def declare(self, target: str = "") -> None:
        """Create every series of one target at zero (see the module docstring)."""
        t = self._of(target)
        for kind in ("full", "skipped"):
            self.cycles.labels(*t, kind)
        for result in ("success", "failure"):
            self.duration.labels(*t, result)
        for cause in Cause:
            self.failures.labels(*t, cause.value)
        self._drift(t, {})
        for trigger in ("interval", "notify", "settle"):
            self.watch_probes.labels(*t, trigger)
        if t:
            for metric in (
                self.notifications,
                self.last_success,
                self.probe_duration,
                self.probe_failures,
                self.consecutive_failures,
                self.success_deadline,
                self.drift_open_since,
            ):
                metric.labels(*t)

    def target_state(
        self,
        consecutive_failures: int,
        deadline: float | None,
        drift_open_since: float | None,
        last_success: float | None = None,
        target: str = "",
    ) -> None:
        """The gauges that follow the target's state (also restored from it at start)."""
        t = self._of(target)
        (self.consecutive_failures.labels(*t) if t else self.consecutive_failures).set(
            consecutive_failures
        )
        (self.success_deadline.labels(*t) if t else self.success_deadline).set(deadline or 0)
        (self.drift_open_since.labels(*t) if t else self.drift_open_since).set(
            drift_open_since or 0
        )
        if last_success is not None:
            (self.last_success.labels(*t) if t else self.last_success).set(last_success)

    def drift(self, by_impact: Mapping[str, int], target: str = "") -> None:
        """Drifted objects by impact (Drift.impacts()) of a sync whose files were held."""
        self._drift(self._of(target), by_impact)

    def probe_failed(self, target: str = "") -> None:
        t = self._of(target)
        (self.probe_failures.labels(*t) if t else self.probe_failures).inc()

    def serving(self, served: int, configured: int, index: int | None, count: int | None) -> None:
        """What this daemon serves; the shard info series only when the targets are sharded."""
        self.targets_served.set(served)
        self.targets_configured.set(configured)
        if index is not None and count is not None:
            self.shard.info({"shard": f"{index}/{count}", "index": str(index), "count": str(count)})

    def _of(self, target: str) -> tuple[str, ...]:
        return (target,) if self.by_target else ()

    def succeeded(
        self,
        duration_s: float,
        drift_objects: Mapping[str, int],
        finished_at: float,
        target: str = "",
    ) -> None:
        """`drift_objects`: drifted objects by impact (Drift.impacts())."""
        t = self._of(target)
        self.duration.labels(*t, "success").observe(duration_s)
        (self.last_success.labels(*t) if t else self.last_success).set(finished_at)
        self._drift(t, drift_objects)
        self.cycles.labels(*t, "full").inc()

    def _drift(self, t: tuple[str, ...], by_impact: Mapping[str, int]) -> None:
        for impact in IMPACTS:
            self.drift_objects.labels(*t, impact).set(by_impact.get(impact, 0))

    def skipped(self, finished_at: float, target: str = "") -> None:
        """A cycle the probe skipped: a success with no drift, without a sync duration."""
        t = self._of(target)
        (self.last_success.labels(*t) if t else self.last_success).set(finished_at)
        self._drift(t, {})
        self.cycles.labels(*t, "skipped").inc()

    def probed(self, duration_s: float, target: str = "") -> None:
        t = self._of(target)
        (self.probe_duration.labels(*t) if t else self.probe_duration).observe(duration_s)

    def notified(self, target: str = "") -> None:
        t = self._of(target)
        (self.notifications.labels(*t) if t else self.notifications).inc()

    def watch_probe(self, trigger: str, target: str = "") -> None:
        self.watch_probes.labels(*self._of(target), trigger).inc()

    def failed(self, duration_s: float, cause: str, target: str = "") -> None:
        t = self._of(target)
        self.duration.labels(*t, "failure").observe(duration_s)
        self.failures.labels(*t, cause).inc()
