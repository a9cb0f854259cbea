"""The alert settings: Sentry, Prometheus metrics and webhooks. Kept apart so the model only
mixes them in; the webhook table itself is settings/webhooks.py."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from service.settings.webhooks import WebhookSettings


class AlertFields(BaseModel):
    """Where the daemon reports drift and failures."""

    # A mixin, never validated on its own: building its validator at import would be wasted
    # (pydantic builds the classes that are validated, Settings and TargetOverrides, on first use).
    model_config = ConfigDict(defer_build=True)

    # Alerts
    sentry_dsn: SecretStr | None = Field(
        default=None,
        description="Sentry project DSN; Sentry is off when unset (a secret: prefer the "
        "environment)",
        examples=["https://key@sentry.example/1"],
    )
    sentry_environment: str | None = Field(
        default=None, description="Sentry's environment tag", examples=["production"]
    )
    failure_alert_after: int = Field(
        default=3,
        ge=1,
        description="Consecutive failed syncs before one alert per failure streak",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Prometheus endpoint at /metrics on this port; off when unset",
        examples=[9187],
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the metrics endpoint binds; 0.0.0.0 in a container",
    )

    # The status page, on the metrics listener (docs/status-page.md)
    public_url: str | None = Field(
        default=None,
        description="Where people open the status page (behind your proxy): alerts, webhooks "
        "and commits link to the drift there; never holds a password",
        examples=["https://schema-sync.example.com"],
    )
    status_token: SecretStr | None = Field(
        default=None,
        description="The status page asks for this token (Bearer header or ?token=); open "
        "when unset; at least 16 characters",
        examples=["(openssl rand -hex 32)"],
    )
    status_history: int = Field(
        default=100, ge=2, le=10_000, description="Cycles kept per target for the timeline"
    )
    check_only: bool = Field(
        default=False,
        description="The daemon compares and alerts but writes nothing: no files, backups or "
        "commits",
    )

    # Webhook alerts (Slack, Teams, signed JSON): the same events as Sentry
    webhooks: list[WebhookSettings] = Field(
        default_factory=list,
        description="Where alerts go besides Sentry: [[webhooks]] tables (url, format, secret, "
        "events); each URL is a secret",
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="One webhook attempt, connect to answer"
    )
    webhook_attempts: int = Field(
        default=4,
        ge=1,
        le=10,
        description="Attempts per message; 5xx, 408, 429 and network errors are retried "
        "(1 s, 2 s, 4 s, jittered)",
    )
