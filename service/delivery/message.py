"""Commit messages a reviewer wants: pure functions of what a sync or rollback did."""

from __future__ import annotations

from dataclasses import dataclass

from service.compare.drift import Drift
from service.compare.escape import visible

MAX_ITEMS_LISTED = 200  # a whole schema's drift still makes a message a person can scroll
MAX_MESSAGE_CHARS = 64_000


@dataclass(frozen=True)
class CommitFacts:
    """What a commit says besides the files: names only, never DDL or a password."""

    target: str
    source: str  # the production connection as ConnInfo.display() shows it: no password
    backup: str | None  # the backup folder's name
    inventory_sha256: str | None
    run_id: str | None = None
    page: str | None = None  # the status page showing this change (public_url set)


def sync_message(facts: CommitFacts, drift: Drift, first_run: bool, objects: int) -> str:
    if first_run:
        subject = f"schema: first sync of {facts.target} ({objects} objects)"
        body: list[str] = []
    elif drift:
        # The subject gives the counts by impact; the body one line per object, the worst
        # first, names with their control characters written out (a name holding a newline
        # must not start a line of the message, nor an escape sequence reach `git log`).
        subject = f"schema drift: {drift.impact_counts()}"
        body = [
            visible(f"{i.impact.value:<11} {i.change.value:<8} {i.what()}")
            + (f": {visible('; '.join(i.notes()))}" if i.notes() else "")
            for i in drift.worst_first()[:MAX_ITEMS_LISTED]
        ]
        if len(drift) > MAX_ITEMS_LISTED:
            body.append(f"... and {len(drift) - MAX_ITEMS_LISTED} more (see the backup's summary)")
    else:
        subject = "schema: files refreshed from production"
        body = []
    return _compose(subject, body, facts)


def rollback_message(facts: CommitFacts, restored_from: str) -> str:
    subject = f"schema rollback: restored {restored_from}"
    body = [f"The schema files were restored from backup {restored_from}."]
    return _compose(subject, body, facts)


def catch_up_message(facts: CommitFacts, pending: list[str]) -> str:
    """Files that reached disk without a commit (git was unreachable, or delivery was just
    switched on): the messages of the syncs it missed, when we still have them."""
    if len(pending) == 1:
        return pending[0]
    subject = "schema: files as of the last sync"
    body: list[str] = []
    if pending:
        subject = f"schema: {len(pending)} syncs while the repository was unreachable"
        for message in pending:
            body += ["", *("  " + ln for ln in message.splitlines())]
    return _compose(subject, body, facts)


def _compose(subject: str, body: list[str], facts: CommitFacts) -> str:
    trailer = [
        f"Target: {facts.target}",
        f"Source: {facts.source}",
        f"Backup: {facts.backup or '-'}",
        f"Inventory-SHA256: {facts.inventory_sha256 or '-'}",
    ]
    if facts.run_id:
        trailer.append(f"Run: {facts.run_id}")
    if facts.page:
        trailer.append(f"Status-Page: {facts.page}")
    parts = [subject, ""]
    if body:
        parts += [*body, ""]
    text = "\n".join(parts + trailer) + "\n"
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 40] + "\n... (message shortened)\n"
    return text
