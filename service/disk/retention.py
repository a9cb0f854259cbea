"""Pure retention: which backup folders are obsolete under a policy. Deleting is elsewhere.

barman's split: this module only decides; service.backups deletes what it is told. Rules:
- a finished backup ("done") is kept while it is one of the newest `keep_last` done backups
  or younger than `keep_days`; failed ones the same, counted among failed ones, so a streak
  of failed verifications never pushes good backups out;
- always kept, whatever the policy: the newest done backup (the last known good files), the
  newest backup holding the current files (what you would roll back to after an accident),
  and backups still being written or whose manifest cannot be read ("started", "unknown");
- with neither keep_last nor keep_days set, nothing is obsolete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

DONE, FAILED, STARTED, UNKNOWN = "done", "failed", "started", "unknown"


@dataclass(frozen=True)
class Policy:
    keep_last: int | None = None
    keep_days: float | None = None

    def __post_init__(self) -> None:
        if self.keep_last is not None and self.keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, not {self.keep_last}")
        if self.keep_days is not None and self.keep_days <= 0:
            raise ValueError(f"keep_days must be positive, not {self.keep_days}")

    @property
    def active(self) -> bool:
        return self.keep_last is not None or self.keep_days is not None


@dataclass(frozen=True)
class BackupFacts:
    """What retention needs to know about one backup folder."""

    name: str
    created_at: datetime
    status: str  # done | failed | started | unknown
    files_hash: str | None = None  # combined hash of its schema, functions and inventory


@dataclass(frozen=True)
class Verdict:
    name: str
    keep: bool
    reason: str


def decide(
    backups: Sequence[BackupFacts],
    policy: Policy,
    now: datetime,
    current_hash: str | None = None,
) -> list[Verdict]:
    """One verdict per backup, in the order given (oldest first is the convention)."""
    newest_first = sorted(backups, key=lambda b: b.created_at, reverse=True)
    newest_done = next((b.name for b in newest_first if b.status == DONE), None)
    newest_current = (
        next((b.name for b in newest_first if b.files_hash == current_hash), None)
        if current_hash
        else None
    )
    rank: dict[str, int] = {}
    seen = {DONE: 0, FAILED: 0}
    for b in newest_first:
        if b.status in seen:
            seen[b.status] += 1
            rank[b.name] = seen[b.status]
    cutoff = now - timedelta(days=policy.keep_days) if policy.keep_days is not None else None
    return [_verdict(b, policy, cutoff, rank, newest_done, newest_current) for b in backups]


def _verdict(
    b: BackupFacts,
    policy: Policy,
    cutoff: datetime | None,
    rank: dict[str, int],
    newest_done: str | None,
    newest_current: str | None,
) -> Verdict:
    if b.status in (STARTED, UNKNOWN):
        return Verdict(b.name, True, f"status {b.status}")
    if b.name == newest_done:
        return Verdict(b.name, True, "newest good backup")
    if b.name == newest_current:
        return Verdict(b.name, True, "holds the current files")
    if not policy.active:
        return Verdict(b.name, True, "no retention policy")
    if policy.keep_last is not None and rank.get(b.name, 0) <= policy.keep_last:
        return Verdict(b.name, True, f"among the last {policy.keep_last} {b.status}")
    if cutoff is not None and b.created_at > cutoff:
        return Verdict(b.name, True, f"younger than {policy.keep_days:g} days")
    return Verdict(b.name, False, _why_obsolete(b, policy))


def _why_obsolete(b: BackupFacts, policy: Policy) -> str:
    parts = []
    if policy.keep_last is not None:
        parts.append(f"not among the last {policy.keep_last} {b.status}")
    if policy.keep_days is not None:
        parts.append(f"older than {policy.keep_days:g} days")
    return " and ".join(parts)


def obsolete(
    backups: Sequence[BackupFacts],
    policy: Policy,
    now: datetime,
    current_hash: str | None = None,
) -> list[str]:
    """Names of the backups the policy no longer needs."""
    return [v.name for v in decide(backups, policy, now, current_hash) if not v.keep]
