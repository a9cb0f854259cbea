"""Delivering webhook alerts without ever holding up a sync.

`submit` only renders the message and puts it on the webhook's own bounded queue; one worker
task per webhook posts its messages in order (a drift before its resolution), with a timeout
per attempt, a bounded number of attempts and exponential backoff with jitter between them.
One webhook hanging never delays another's messages. A full queue drops its oldest message
(when a receiver comes back, the latest state is what matters) and logs `alert.dropped`.
Closing flushes for a bounded time, then cancels and logs what was left.

The URL is a secret: logs name a webhook by index, format and host (`webhook[0] slack
hooks.slack.com`), and error texts pass through the scrubber, which knows every URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from service import __version__
from service.daemon.messages import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertEvent,
    render,
    signature,
)
from service.logs import get_logger, redact, register_secret
from service.settings.webhooks import WebhookSettings, webhook_label

QUEUE_SIZE = 100  # messages per webhook; a queue this long means the receiver is down
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
MAX_RESPONSE_SHOWN = 200  # characters of an error response worth logging (Slack: "no_team")


@dataclass(frozen=True)
class Hook:
    """A configured webhook and how it is named in logs (its place in the settings list)."""

    index: int
    settings: WebhookSettings

    @property
    def label(self) -> str:
        return webhook_label(self.index, self.settings)

    def wants(self, event: str) -> bool:
        return event == "test" or event in self.settings.events


def hooks_of(webhooks: list[WebhookSettings]) -> tuple[Hook, ...]:
    """Hooks for a settings list; their URLs and secrets become known to the scrubber."""
    for hook in webhooks:
        register_secret(hook.url.get_secret_value())
        register_secret(hook.secret.get_secret_value() if hook.secret else None)
    return tuple(Hook(i, w) for i, w in enumerate(webhooks))


@dataclass(frozen=True)
class Delivery:
    ok: bool
    attempts: int
    status: int | None = None
    cause: str | None = None  # why the last attempt failed, without the URL


# -- pure decisions ---------------------------------------------------------------------------


def backoff_s(failed_attempts: int, base_s: float, cap_s: float, rand: float) -> float:
    """Wait before the next attempt: doubling, capped, the upper half jittered (`rand` in
    [0, 1)) so that many daemons hitting one recovering receiver do not retry in lockstep."""
    full = min(cap_s, base_s * float(2 ** min(failed_attempts - 1, 30)))
    return full / 2 + full / 2 * rand


def retryable(status: int) -> bool:
    """5xx, 408 and 429 may pass on a later attempt; other 4xx (a deleted or mistyped webhook,
    a payload the receiver refuses) will not, so they fail at once."""
    return status >= 500 or status in (408, 429)


def retry_after_s(value: str | None, cap_s: float) -> float | None:
    """A 429/503's Retry-After in seconds (the date form is ignored), at most `cap_s`."""
    try:
        return min(cap_s, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def headers_for(
    hook: WebhookSettings, event: str, body: bytes, delivery_id: str, now: int
) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": f"pg-schema-sync/{__version__}"}
    if hook.format == "json":
        headers[EVENT_HEADER] = event
        headers[DELIVERY_HEADER] = delivery_id  # the same on every attempt: receivers dedupe
        headers[TIMESTAMP_HEADER] = str(now)
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = signature(hook.secret.get_secret_value(), now, body)
    return headers


# -- one message, all its attempts --------------------------------------------------------------


async def deliver(
    client: httpx.AsyncClient,
    hook: Hook,
    event: str,
    body: bytes,
    timeout_s: float,
    attempts: int,
    log: Any,
    delivery_id: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Delivery:
    """POST `body` until a 2xx, a final refusal or `attempts` tries; never raises for I/O."""
    delivery_id = delivery_id or uuid.uuid4().hex
    url = hook.settings.url.get_secret_value()
    cause, status = "not sent", None
    for attempt in range(1, attempts + 1):
        wait: float | None = None
        # Signed at each attempt: the timestamp is when this request left, so a receiver's
        # replay window holds also for a retry that waited in backoff.
        headers = headers_for(hook.settings, event, body, delivery_id, int(time.time()))
        try:
            # One bound for the whole attempt: httpx's timeouts are per phase, and a receiver
            # dripping one byte a second would never trip a read timeout.
            async with (
                asyncio.timeout(timeout_s),
                client.stream("POST", url, content=body, headers=headers) as response,
            ):
                status = response.status_code
                # An answer's body is only read on an error, and only its start: a receiver
                # cannot make the daemon hold a large response in memory.
                head = b"" if 200 <= status < 300 else await _head(response)
            if 200 <= status < 300:
                return Delivery(True, attempt, status)
            text = " ".join(head.decode(errors="replace")[:MAX_RESPONSE_SHOWN].split())
            cause = f"HTTP {status}" + (f": {text}" if text else "")
            if not retryable(status):
                return Delivery(False, attempt, status, _clean(cause, url))
            wait = retry_after_s(response.headers.get("Retry-After"), BACKOFF_CAP_S)
        except (TimeoutError, httpx.TimeoutException):
            cause, status = f"timeout after {timeout_s:g} s", None
        except httpx.HTTPError as exc:  # refused, reset, DNS, TLS, protocol errors
            cause, status = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, None
        if attempt < attempts:
            delay = (
                wait
                if wait is not None
                else backoff_s(attempt, BACKOFF_BASE_S, BACKOFF_CAP_S, random.random())
            )
            log.info(
                "alert.retrying",
                webhook=hook.label,
                alert=event,
                attempt=attempt,
                cause=_clean(cause, url),
                retry_in_s=round(delay, 2),
            )
            await sleep(delay)
    return Delivery(False, attempts, status, _clean(cause, url))


async def _head(response: httpx.Response, limit: int = 4 * MAX_RESPONSE_SHOWN) -> bytes:
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= limit:
            break
    return head[:limit]


def _clean(text: str, url: str) -> str:
    return redact(text.replace(url, "<webhook url>"))


# -- the queues ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    event: AlertEvent
    body: bytes
    log: Any
    delivery_id: str


class _Channel:
    """One webhook's queue and the worker that empties it."""

    def __init__(self, hook: Hook, size: int) -> None:
        self.hook = hook
        self.queue: asyncio.Queue[_Job] = asyncio.Queue(size)
        self.current: _Job | None = None
        self.worker: asyncio.Task[None] | None = None


class WebhookSender:
    """Every webhook of every target of one process; `submit` never blocks or raises."""

    def __init__(self, timeout_s: float, attempts: int, queue_size: int = QUEUE_SIZE) -> None:
        self.timeout_s, self.attempts, self.queue_size = timeout_s, attempts, queue_size
        self._channels: dict[WebhookSettings, _Channel] = {}
        self._client: httpx.AsyncClient | None = None
        self._closing = False

    def submit(self, hooks: tuple[Hook, ...], event: AlertEvent) -> None:
        """Queue `event` for each hook that wants it; called from a sync's bookkeeping."""
        # The run's context (run_id, target) goes into the job: the worker runs outside it.
        log = get_logger(**structlog.contextvars.get_contextvars())
        for hook in hooks:
            if not hook.wants(event.event):
                continue
            try:
                self._enqueue(hook, event, log)
            except Exception as exc:  # alerting must never break a sync
                log.warning("alert.failed", webhook=hook.label, alert=event.event, cause=str(exc))

    def _enqueue(self, hook: Hook, event: AlertEvent, log: Any) -> None:
        if self._closing:
            log.warning("alert.dropped", webhook=hook.label, alert=event.event, reason="stopping")
            return
        body = render(hook.settings.format, event)
        channel = self._channel(hook)
        if channel.queue.full():
            old = channel.queue.get_nowait()
            channel.queue.task_done()
            old.log.warning(
                "alert.dropped",
                webhook=hook.label,
                alert=old.event.event,
                reason=f"queue full ({self.queue_size})",
            )
        channel.queue.put_nowait(_Job(event, body, log, uuid.uuid4().hex))

    def _channel(self, hook: Hook) -> _Channel:
        channel = self._channels.get(hook.settings)
        if channel is None:
            channel = self._channels[hook.settings] = _Channel(hook, self.queue_size)
            # A fresh context: the worker outlives the run that happened to create it, and
            # must not stamp that run's id on every later message.
            channel.worker = asyncio.get_running_loop().create_task(
                self._work(channel),
                name=f"webhook:{hook.index}:{hook.settings.format}",
                context=contextvars.Context(),
            )
        return channel

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # No redirects: a 3xx must not carry the body (and signature) to another host.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s), follow_redirects=False
            )
        return self._client

    async def _work(self, channel: _Channel) -> None:
        while True:
            job = await channel.queue.get()
            channel.current = job
            try:
                result = await deliver(
                    self._http(),
                    channel.hook,
                    job.event.event,
                    job.body,
                    self.timeout_s,
                    self.attempts,
                    job.log,
                    job.delivery_id,
                )
                fields = {"webhook": channel.hook.label, "alert": job.event.event}
                if result.ok:
                    job.log.info(
                        "alert.sent", **fields, status=result.status, attempts=result.attempts
                    )
                else:
                    job.log.warning(
                        "alert.failed", **fields, cause=result.cause, attempts=result.attempts
                    )
            except Exception as exc:  # a bug here must not end the worker: log, carry on
                job.log.exception("alert.failed", webhook=channel.hook.label, cause=repr(exc))
            finally:
                channel.current = None
                channel.queue.task_done()

    async def close(self, timeout_s: float) -> None:
        """Deliver what is queued for at most `timeout_s`, then drop the rest (logged)."""
        self._closing = True
        channels = list(self._channels.values())
        if channels and timeout_s > 0:
            drained = [asyncio.create_task(c.queue.join()) for c in channels]
            try:
                await asyncio.wait(drained, timeout=timeout_s)
            finally:
                for task in drained:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        for channel in channels:
            left = [channel.current] if channel.current else []
            while not channel.queue.empty():
                left.append(channel.queue.get_nowait())
                channel.queue.task_done()
            if channel.worker is not None:
                channel.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await channel.worker
            for job in left:
                job.log.warning(
                    "alert.dropped",
                    webhook=channel.hook.label,
                    alert=job.event.event,
                    reason="shutdown: not delivered in time",
                )
        if self._client is not None:
            await self._client.aclose()
            self._client = None
