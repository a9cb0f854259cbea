"""Backup folders as history: manifests, listing, diff, rollback and pruning.

Each folder under backups/ holds the files of one sync (or rollback) and a manifest.json
whose status is written as "started" before the work begins and set to "done" or "failed"
at the end (barman's backup.info habit), so an interrupted run never looks like a good
backup. Every write goes through service.files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from service.compare.drift import Change, Drift, compare, file_item, text_diff
from service.compare.inventory import Inventory
from service.disk import files
from service.disk.retention import DONE, FAILED, STARTED, UNKNOWN, BackupFacts, Policy, decide

MANIFEST_FORMAT = 1
INTERRUPTED = "interrupted: the run stopped before finishing; its files were not promoted"
CURRENT = "current"  # the name `backups diff` understands for the files in sql/schemas/
FILE_FOR = {  # backup file name -> attribute of SchemaPaths it is restored to
    files.BACKUP_SCHEMA: "schema_file",
    files.BACKUP_FUNCTIONS: "functions_file",
    files.BACKUP_INVENTORY: "inventory_file",
}


class BackupError(RuntimeError):
    """A backup cannot be used as asked; the message is one line saying what to do."""


class SchemaPaths(Protocol):
    """Where the current files live (service.sync.Paths has exactly these)."""

    @property
    def schema_file(self) -> Path: ...
    @property
    def functions_file(self) -> Path: ...
    @property
    def inventory_file(self) -> Path: ...
    @property
    def backup_dir(self) -> Path: ...


@dataclass(frozen=True)
class Manifest:
    status: str  # started | done | failed
    kind: str  # sync | rollback | snapshot
    created_at: datetime
    finished_at: datetime | None = None
    run_id: str | None = None
    reason: str | None = None  # why it failed, or what a snapshot is for
    files: Mapping[str, str] = field(default_factory=dict)  # file name -> sha256
    drift: Mapping[str, int] = field(default_factory=dict)  # change -> count
    first_run: bool = False
    verify: str = "off"  # off | passed | failed | error
    restored_from: str | None = None
    attempts: int = 1  # runs that produced these same failing files (see merge_repeated_failure)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)

    def finished(self, status: str, **changes: Any) -> Manifest:
        return replace(self, status=status, finished_at=datetime.now(UTC), **changes)

    def to_json(self) -> bytes:
        doc = {
            "format": MANIFEST_FORMAT,
            "status": self.status,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "run_id": self.run_id,
            "reason": self.reason,
            "files": dict(self.files),
            "drift": dict(self.drift),
            "first_run": self.first_run,
            "verify": self.verify,
            "restored_from": self.restored_from,
            "attempts": self.attempts,
            "pid": self.pid,
            "host": self.host,
        }
        return (json.dumps(doc, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """ValueError for anything but a well-formed manifest: one damaged file must read as
        one damaged backup, never as an exception that fails every later sync."""
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not a backup manifest (format {MANIFEST_FORMAT})")
        finished = doc.get("finished_at")
        for key in ("files", "drift"):
            if not isinstance(doc.get(key) or {}, dict):
                raise ValueError(f"{key!r} is not an object")
        return cls(
            status=str(doc["status"]),
            kind=str(doc.get("kind", "sync")),
            created_at=_aware(doc["created_at"], "created_at"),
            finished_at=_aware(finished, "finished_at") if finished else None,
            run_id=doc.get("run_id"),
            reason=doc.get("reason"),
            files={str(k): str(v) for k, v in (doc.get("files") or {}).items()},
            drift={str(k): int(v) for k, v in (doc.get("drift") or {}).items()},
            first_run=bool(doc.get("first_run", False)),
            verify=str(doc.get("verify", "off")),
            restored_from=doc.get("restored_from"),
            attempts=int(doc.get("attempts") or 1),
            pid=int(doc.get("pid") or 0),
            host=str(doc.get("host") or ""),
        )


def _aware(value: object, key: str) -> datetime:
    """A timestamp with its zone: a naive one cannot be compared with the others."""
    when = datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        raise ValueError(f"{key} {str(value)[:40]!r} has no time zone")
    return when


def write_manifest(folder: Path, manifest: Manifest) -> None:
    files.write_atomically(folder / files.BACKUP_MANIFEST, manifest.to_json())


def combined_hash(hashes: Mapping[str, str]) -> str | None:
    """One hash for the three restorable files; None unless all three are known."""
    if any(name not in hashes for name in files.BACKUP_RESTORABLE):
        return None
    text = "".join(f"{name} {hashes[name]}\n" for name in files.BACKUP_RESTORABLE)
    return hashlib.sha256(text.encode()).hexdigest()


def current_hashes(paths: SchemaPaths) -> dict[str, str]:
    """sha256 of the current schema files, under their backup names (missing ones left out)."""
    out = {}
    for name, attr in FILE_FOR.items():
        with contextlib.suppress(FileNotFoundError):
            out[name] = files.sha256_file(getattr(paths, attr))
    return out


# --------------------------------------------------------------------------------------------
# Reading the history


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest: Manifest | None  # None: made before manifests existed, or unreadable
    status: str
    created_at: datetime
    hashes: Mapping[str, str]
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def files_hash(self) -> str | None:
        return combined_hash(self.hashes)

    @property
    def kind(self) -> str:
        return self.manifest.kind if self.manifest else "sync"

    def facts(self) -> BackupFacts:
        return BackupFacts(self.name, self.created_at, self.status, self.files_hash)


def read_backup(folder: Path) -> Backup:
    created = _time_from_name(folder)
    try:
        manifest: Manifest | None = Manifest.from_json(
            (folder / files.BACKUP_MANIFEST).read_bytes()
        )
    except FileNotFoundError:
        manifest = None
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return Backup(folder, None, UNKNOWN, created, {}, f"unreadable manifest: {exc}")
    if manifest is not None:
        status, problem = manifest.status, None
        if status == STARTED and _abandoned(manifest):
            status, problem = FAILED, INTERRUPTED  # seen as failed before anyone marks it so
        return Backup(folder, manifest, status, manifest.created_at, manifest.files, problem)
    # Older backups have no manifest; they were renamed into place only when complete.
    present = [n for n in files.BACKUP_RESTORABLE if (folder / n).is_file()]
    if len(present) < len(files.BACKUP_RESTORABLE):
        return Backup(folder, None, UNKNOWN, created, {}, "no manifest and files missing")
    hashes = {n: files.sha256_file(folder / n) for n in present}
    return Backup(folder, None, DONE, created, hashes)


def list_history(backup_dir: Path) -> list[Backup]:
    """Every backup folder, oldest first."""
    return [read_backup(p) for p in files.list_backups(backup_dir)]


def _time_from_name(folder: Path) -> datetime:
    stamp = folder.name.removeprefix(files.BACKUP_PREFIX)[:15]
    try:
        return datetime.strptime(stamp, "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(folder.stat().st_mtime, UTC)


def _abandoned(m: Manifest) -> bool:
    """Started by a process on this host that is gone (another host's run may be going)."""
    return m.host == socket.gethostname() and m.pid != os.getpid() and not _alive(m.pid)


def mark_interrupted(backup_dir: Path) -> list[Path]:
    """At the start of a sync (one at a time per process): backups left "started" by a run
    that no longer exists, or by an earlier run of this process, become "failed"."""
    marked = []
    for backup in list_history(backup_dir):
        m = backup.manifest
        if m is None or m.status != STARTED or m.host != socket.gethostname():
            continue
        if m.pid == os.getpid() or not _alive(m.pid):
            write_manifest(backup.path, m.finished(FAILED, reason=INTERRUPTED))
            marked.append(backup.path)
    return marked


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------------------------
# Choosing a backup safely


def resolve(backup_dir: Path, arg: str) -> Backup:
    """The backup named by `arg` (a folder name, or a path to a folder directly in backups/).

    Rejects names that escape backups/, symlinks, and folders missing a restorable file."""
    root = Path(os.path.normpath(backup_dir.absolute()))
    shown = _shown(backup_dir)
    candidates = [Path(os.path.normpath(root / arg))]
    if not Path(arg).is_absolute():
        candidates.append(Path(os.path.normpath(Path.cwd() / arg)))
    folder = next((c for c in candidates if c.parent == root and c.name), None)
    if folder is None or not folder.name.startswith(files.BACKUP_PREFIX):
        raise BackupError(
            f"{arg!r} is not a backup folder inside {shown}: give a name listed by "
            "`pg-schema-sync backups`"
        )
    if folder.is_symlink():
        raise BackupError(f"{arg!r} is a symlink: give a real backup folder inside {shown}")
    if not folder.is_dir():
        raise BackupError(f"no backup {folder.name} in {shown}: see `pg-schema-sync backups`")
    if Path(os.path.realpath(folder)).parent != Path(os.path.realpath(root)):
        raise BackupError(f"{arg!r} resolves outside {shown}: refusing to use it")
    for name in files.BACKUP_RESTORABLE:
        path = folder / name
        if path.is_symlink():
            raise BackupError(f"backup {folder.name}: {name} is a symlink; refusing to use it")
        if not path.exists():
            raise BackupError(
                f"backup {folder.name} is missing {name}: choose another backup "
                "(pg-schema-sync backups)"
            )
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise BackupError(f"backup {folder.name}: {name} is not a regular file")
    return read_backup(folder)


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.absolute().relative_to(Path.cwd()))
    return str(path)


def check_intact(backup: Backup) -> None:
    """The files still have the hashes the manifest recorded (no silent damage or edits)."""
    for name, expected in backup.hashes.items():
        if name in files.BACKUP_RESTORABLE and files.sha256_file(backup.path / name) != expected:
            raise BackupError(
                f"backup {backup.name}: {name} does not match the sha256 in its manifest; "
                "it was damaged or edited: choose another backup"
            )


# --------------------------------------------------------------------------------------------
# Diff and prune


def inventory_of(paths: SchemaPaths, which: str) -> tuple[Inventory, Path, str]:
    """(inventory, schema file, label) of a backup name or `current`."""
    if which == CURRENT:
        path, schema = paths.inventory_file, paths.schema_file
        files.refuse_links(paths.schema_file, paths.functions_file, paths.inventory_file)
    else:
        backup = resolve(paths.backup_dir, which)
        path, schema = backup.path / files.BACKUP_INVENTORY, backup.path / files.BACKUP_SCHEMA
    try:
        return Inventory.from_json(files.read_regular(path).decode("utf-8")), schema, which
    except FileNotFoundError:
        raise BackupError(f"{which}: {path} does not exist") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{which}: {path} is not a readable inventory ({exc})") from None


def diff(paths: SchemaPaths, a: str, b: str) -> Drift:
    """Object drift going from `a` to `b`; a schema file differing with no object drift (edited
    by hand) is named as a changed file, as `check` does."""
    old, old_schema, _ = inventory_of(paths, a)
    new, new_schema, _ = inventory_of(paths, b)
    drift = compare(old, new, sides=(a, b))  # the headers name the two backups
    if not drift and not files.same_bytes(old_schema, new_schema):
        texts = [
            files.read_regular(p).decode("utf-8", errors="replace")
            for p in (old_schema, new_schema)
        ]
        label = files.BACKUP_SCHEMA
        diff = text_diff(texts[0], texts[1], label, (a, b))
        item = file_item(label, Change.CHANGED, diff)
        drift = Drift((item,))
    return drift


@dataclass(frozen=True)
class Pruned:
    backup: Backup
    keep: bool
    reason: str


def plan_prune(paths: SchemaPaths, policy: Policy, now: datetime | None = None) -> list[Pruned]:
    history = list_history(paths.backup_dir)
    current = combined_hash(current_hashes(paths))
    verdicts = decide([b.facts() for b in history], policy, now or datetime.now(UTC), current)
    return [Pruned(b, v.keep, v.reason) for b, v in zip(history, verdicts, strict=True)]


def prune(paths: SchemaPaths, policy: Policy, dry_run: bool = False) -> list[Pruned]:
    """Apply the retention policy; returns every verdict (deleted ones have keep=False)."""
    plan = plan_prune(paths, policy)
    if not dry_run:
        for p in plan:
            if not p.keep:
                files.remove_backup(p.backup.path)
    return plan


def merge_repeated_failure(folder: Path) -> Path:
    """A failed backup holding the same files as the failed one just before it is folded into
    that one (attempts + 1): under verify = require, a daemon retrying every few minutes must
    not fill backups/ with copies of one candidate. Returns the folder that keeps them."""
    history = list_history(folder.parent)
    names = [b.name for b in history]
    if folder.name not in names or names.index(folder.name) == 0:
        return folder
    i = names.index(folder.name)
    new, prev = history[i], history[i - 1]
    if not (new.manifest and prev.manifest and prev.status == FAILED == new.status):
        return folder
    if prev.manifest.kind != new.manifest.kind or prev.files_hash != new.files_hash:
        return folder
    merged = replace(
        prev.manifest,
        attempts=prev.manifest.attempts + 1,
        reason=new.manifest.reason,
        finished_at=new.manifest.finished_at,
        verify=new.manifest.verify,
    )
    write_manifest(prev.path, merged)
    files.remove_backup(folder)
    return prev.path


def apply_policy(paths: SchemaPaths, policy: Policy, log: Any) -> list[Path]:
    """Prune after a sync: log each deletion; a failure is logged, never raised."""
    if not policy.active:
        return []
    try:
        plan = prune(paths, policy)
    except OSError as exc:
        log.warning("retention.failed", error=str(exc), backup_dir=str(paths.backup_dir))
        return []
    for p in plan:
        if not p.keep:
            log.info("backup.pruned", backup=str(p.backup.path), reason=p.reason)
    return [p.backup.path for p in plan if not p.keep]


__all__ = [
    "CURRENT",
    "Backup",
    "BackupError",
    "Manifest",
    "combined_hash",
    "current_hashes",
    "diff",
    "list_history",
    "mark_interrupted",
    "plan_prune",
    "prune",
    "read_backup",
    "resolve",
    "write_manifest",
]
