"""Git delivery state per target: last commit, push state, the failure streak, pending messages.

Saved beside the target's clone (in the folder the daemon owns), atomically, after every
delivery: the daemon retries an unpushed commit on the next cycle, `git status` shows it, and a
failure streak survives a restart so the alert is neither lost nor sent twice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from service.disk import files

MAX_PENDING = 20  # messages of syncs not yet committed (the repository was unreachable)


class PushState(StrEnum):
    NONE = "none"  # nothing committed yet
    PUSHED = "pushed"  # the remote branch holds the last commit
    PENDING = "pending"  # committed locally, push not tried yet or retried next cycle
    FAILED = "failed"  # the last attempt failed; retried next cycle
    OFF = "off"  # git_push = false: commits stay in the daemon's clone


@dataclass(frozen=True)
class GitState:
    repository: str | None = None
    branch: str | None = None
    last_commit: str | None = None
    last_commit_at: str | None = None
    last_subject: str | None = None
    pushed_commit: str | None = None
    push_state: str = PushState.NONE.value
    last_attempt_at: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    failure_alerted: bool = False
    fresh_branch: str | None = None  # where a sync's commit went when the branch conflicted
    pending_messages: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> GitState:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def updated(self, **changes: Any) -> GitState:
        return replace(self, **changes)


def load(path: Path) -> GitState:
    """The saved state; a fresh one when there is none or it is unreadable (then git's own
    refs still say what was pushed: nothing is lost, only the streak restarts)."""
    try:
        return GitState.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return GitState()


def save(path: Path, state: GitState) -> None:
    files.write_atomically(path, state.to_json().encode())


# Pure decisions: one alert per failure streak when it reaches `alert_after`, one on recovery.
ALERT_FAILING = "failing"
ALERT_RECOVERED = "recovered"


def after_attempt(
    state: GitState, ok: bool, error: str | None, alert_after: int
) -> tuple[GitState, str | None]:
    if ok:
        alert = ALERT_RECOVERED if state.failure_alerted else None
        return state.updated(last_error=None, consecutive_failures=0, failure_alerted=False), alert
    n = state.consecutive_failures + 1
    alert = ALERT_FAILING if n >= alert_after and not state.failure_alerted else None
    return (
        state.updated(
            last_error=error,
            consecutive_failures=n,
            failure_alerted=state.failure_alerted or alert is not None,
        ),
        alert,
    )


def with_pending(state: GitState, message: str) -> GitState:
    return state.updated(pending_messages=[*state.pending_messages, message][-MAX_PENDING:])
