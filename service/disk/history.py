"""A target's recent cycles and its latest drift, kept beside the daemon's state file.

The status page shows what the state file forgets: the last sync that found a drift (its
objects and diffs, also after the daemon refreshed the files) and a timeline of the last
cycles. Bounded, whatever production holds: the last `keep` cycles, the drift's first
MAX_ITEMS objects, each diff clipped to MAX_DIFF characters and all of them together to
MAX_DIFF_TOTAL (the whole diff stays in the backup's sync-summary.md). Written atomically
(files.write_atomically), read back at start; an unreadable file is a fresh start, never a
daemon that cannot start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from service.disk import files

HISTORY_VERSION = 1
MAX_ITEMS = 1_000
MAX_DIFF = 64_000
MAX_DIFF_TOTAL = 1_000_000
MAX_ERROR = 1_000
REFRESHED, HELD = "refreshed", "held"  # what the daemon did with the drift's files
OPEN, RESOLVED = "open", "resolved"  # a held drift: still there, or gone without our write


@dataclass(frozen=True)
class ItemRecord:
    """One drifted object as the page shows it."""

    kind: str
    name: str
    change: str
    diff: str
    clipped: int = 0  # characters of the diff left out here (the backup has them)
    impact: str | None = None  # breaking | behavioural | compatible | cosmetic, when known
    reasons: tuple[str, ...] = ()
    from_name: str | None = None  # a rename's old name


@dataclass(frozen=True)
class DriftRecord:
    """The latest drift a sync found, and what became of it."""

    fingerprint: str
    headline: str
    found_at: datetime  # when a sync first found this drift
    last_seen_at: datetime  # the last sync that still found it
    items: tuple[ItemRecord, ...]
    total: int  # objects drifted (items may hold fewer)
    files: str  # REFRESHED: the daemon wrote production's schema into the files; HELD: not
    held_because: str | None = None  # why the files were not refreshed
    run_id: str | None = None
    backup: str | None = None  # the backup folder's name
    commit: str | None = None
    ended_at: datetime | None = None  # a held drift found gone (resolved) at

    @property
    def status(self) -> str:
        """refreshed (closed by our write), open (held, still there) or resolved."""
        if self.files == REFRESHED:
            return REFRESHED
        return RESOLVED if self.ended_at else OPEN


@dataclass(frozen=True)
class RunRecord:
    """One cycle of the timeline."""

    at: datetime  # when it finished
    kind: str  # full | skipped | failed
    drift: int = 0  # objects drifted (for a failed verify: the held candidate's)
    duration_s: float = 0.0
    run_id: str | None = None
    first_run: bool = False
    backup: str | None = None
    cause: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class History:
    runs: tuple[RunRecord, ...] = ()  # oldest first
    drift: DriftRecord | None = None

    def with_run(self, run: RunRecord, keep: int) -> History:
        clipped = replace(run, error=clip(run.error, MAX_ERROR) if run.error else None)
        return replace(self, runs=(*self.runs, clipped)[-keep:])

    def with_drift(self, drift: DriftRecord) -> History:
        """A sync found `drift`: the same drift as the last one keeps its first sighting."""
        last = self.drift
        if last is not None and last.fingerprint == drift.fingerprint and last.ended_at is None:
            drift = replace(drift, found_at=last.found_at)
        return replace(self, drift=drift)

    def drift_ended(self, at: datetime) -> History:
        """A sync found no drift: an open (held) one is resolved now; others stay as they are."""
        if self.drift is None or self.drift.status != OPEN:
            return self
        return replace(self, drift=replace(self.drift, ended_at=at))

    def to_json(self) -> bytes:
        doc = {
            "version": HISTORY_VERSION,
            "runs": [_plain(r.__dict__) for r in self.runs],
            "drift": _drift_doc(self.drift) if self.drift else None,
        }
        return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> History:
        """ValueError for anything but a history this version wrote."""
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("version") != HISTORY_VERSION:
            raise ValueError(f"not a status history (version {HISTORY_VERSION})")
        try:
            runs = tuple(RunRecord(**_times(r, ("at",))) for r in doc.get("runs") or [])
            raw = doc.get("drift")
            drift = None
            if raw:
                raw = _times(raw, ("found_at", "last_seen_at", "ended_at"))
                items = tuple(
                    ItemRecord(**{**i, "reasons": tuple(i.get("reasons") or ())})
                    for i in raw.pop("items")
                )
                drift = DriftRecord(**raw, items=items)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"damaged status history ({exc})") from None
        return cls(runs, drift)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_items(items: list[ItemRecord]) -> tuple[ItemRecord, ...]:
    """At most MAX_ITEMS items, each diff within MAX_DIFF, all within MAX_DIFF_TOTAL."""
    out: list[ItemRecord] = []
    room = MAX_DIFF_TOTAL
    for item in items[:MAX_ITEMS]:
        keep = max(0, min(len(item.diff), MAX_DIFF, room))
        room -= keep
        out.append(replace(item, diff=item.diff[:keep], clipped=len(item.diff) - keep))
    return tuple(out)


def load(path: Path) -> History | None:
    """The saved history; None when there is none yet. A damaged one raises ValueError."""
    try:
        data = files.read_regular(path)
    except FileNotFoundError:
        return None
    try:
        return History.from_json(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"status history {path} is unreadable ({exc})") from None


def save(path: Path, history: History) -> None:
    files.write_atomically(path, history.to_json())


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def _drift_doc(drift: DriftRecord) -> dict[str, Any]:
    doc = _plain({k: v for k, v in drift.__dict__.items() if k != "items"})
    doc["items"] = [{**i.__dict__, "reasons": list(i.reasons)} for i in drift.items]
    return doc


def _times(doc: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    out = dict(doc)
    for key in keys:
        if out.get(key):
            when = datetime.fromisoformat(out[key])
            if when.tzinfo is None:
                raise ValueError(f"{key} has no time zone")
            out[key] = when
    return out
