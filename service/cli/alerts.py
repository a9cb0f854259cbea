"""`pg-schema-sync alerts test`: one test message to every configured webhook, to check a setup.

The one-shot `sync` and `check` send no alerts (neither Sentry nor webhooks): their output and
exit code are the report, and only the daemon keeps the state that turns a persisting drift
into one message instead of one per run. This command is how a user sees a webhook work
before the first real drift.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from service.cli.common import EXIT_ERROR, EXIT_OK, add_target_option, chosen
from service.errors import SettingsError

if TYPE_CHECKING:
    from service.daemon.webhooks import Hook
    from service.settings.model import Settings
    from service.settings.webhooks import WebhookSettings


def register(sub: Any, common: argparse.ArgumentParser, filters: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "alerts",
        parents=[common],
        help="check the alert setup",
        description="Alert tools. `alerts test` posts a test message to every webhook.",
    )
    group = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    t = group.add_parser(
        "test",
        parents=[common],
        help="post a test message to every configured webhook",
        description=(
            "Posts one test message (event `test`) to each configured webhook, once, with the "
            "configured timeout, and prints what each receiver answered; the URLs are not "
            "printed (they are secrets). Exit 0 when every webhook accepted it, 2 otherwise."
        ),
    )
    add_target_option(t)
    t.set_defaults(handler=cmd_alerts_test)


async def cmd_alerts_test(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    import httpx  # the webhook client; only this command and the daemon need it

    from service.daemon.messages import render, test_event
    from service.daemon.webhooks import deliver, hooks_of
    from service.logs import get_logger

    settings, targets = chosen(args)
    # A webhook shared by several targets gets one message naming all of them.
    served: dict[WebhookSettings, tuple[Hook, list[Settings]]] = {}
    for target in targets:
        for hook in hooks_of(target.webhooks):
            served.setdefault(hook.settings, (hook, []))[1].append(target)
    if not served:
        raise SettingsError(
            "no webhooks configured: add a [[webhooks]] table (url, format) to the config file "
            "or set SCHEMA_SYNC_WEBHOOKS; `pg-schema-sync config --example` shows both"
        )
    log = get_logger(command="alerts test")
    failed = 0
    timeout = httpx.Timeout(settings.webhook_timeout_s)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        for hook, users in served.values():
            event = test_event(
                ", ".join(t.name for t in users),
                ", ".join(t.conninfo().display() for t in users),
                datetime.now(UTC),
            )
            body = render(hook.settings.format, event)
            result = await deliver(client, hook, "test", body, settings.webhook_timeout_s, 1, log)
            if result.ok:
                print(f"{hook.label}: delivered (HTTP {result.status})")
            else:
                failed += 1
                print(f"{hook.label}: failed: {result.cause}")
    return EXIT_ERROR if failed else EXIT_OK
