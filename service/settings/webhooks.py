"""The `[[webhooks]]` setting: where alerts go besides Sentry, and in which shape.

A webhook's URL is a secret (a Slack or Teams webhook URL is the only credential needed to post
into the channel), so it stays a SecretStr; messages and logs name a webhook by its index,
format and host only (`label`).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

WebhookFormat = Literal["slack", "teams", "json"]
# The alert events a webhook can subscribe to; the Sentry events have the same names.
WebhookEvent = Literal["drift", "resolved", "failure", "recovered"]
ALL_EVENTS: tuple[WebhookEvent, ...] = ("drift", "resolved", "failure", "recovered")


class WebhookSettings(BaseModel):
    """One webhook: its URL, the message format, a signing secret (json), the events it hears."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: SecretStr = Field(
        description="The webhook URL, a secret: whoever has it can post to the channel",
        examples=["https://hooks.slack.com/services/T000/B000/XXXX"],
    )
    format: WebhookFormat = Field(
        default="json", description="slack | teams | json (signed when secret is set)"
    )
    secret: SecretStr | None = Field(
        default=None,
        description="json: HMAC-SHA256 key of the signature header, at least 16 characters "
        "(a secret: prefer the environment)",
        examples=["replace-with-openssl-rand-hex-32"],
    )
    events: tuple[WebhookEvent, ...] = Field(
        default=ALL_EVENTS,
        description="The events this webhook hears: drift, resolved, failure, recovered",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        # The value is never echoed: the error names only what is wrong with it.
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host; paste the webhook URL as given")
        return value

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use at least 16 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("events")
    @classmethod
    def _some_events(cls, value: tuple[WebhookEvent, ...]) -> tuple[WebhookEvent, ...]:
        if not value:
            raise ValueError(f"list at least one of {', '.join(ALL_EVENTS)} (or remove events)")
        return value

    def host(self) -> str:
        return urlsplit(self.url.get_secret_value()).hostname or "?"


def webhook_label(index: int, hook: WebhookSettings) -> str:
    """`webhook[0] slack hooks.slack.com`: how logs and the CLI name a webhook (no URL)."""
    return f"webhook[{index}] {hook.format} {hook.host()}"
