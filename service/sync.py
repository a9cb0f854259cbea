"""One run: export || catalog -> drift -> files -> report. Never imports the daemon.

What only a full read needs (the snapshot and its catalog queries, backups and their summary,
verify, git delivery) is imported where it is used: a skipped cycle (`check` or `sync` whose
probe found nothing changed) is a command that should answer at once, and it needs none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from service.compare.drift import (
    FILES_VS_PRODUCTION,
    Change,
    Drift,
    DriftItem,
    compare,
    file_item,
    text_diff,
)
from service.compare.inventory import Inventory
from service.disk import files, lock
from service.errors import Cause, SyncError
from service.logs import get_logger, register_secret
from service.probing import (
    UNCHANGED,
    Decision,
    ProbeTarget,
    record_full_sync,
    session_limits,
)
from service.runs import Paths, bounded, checking, deadline_of, locked, probe
from service.settings.links import drift_url

if TYPE_CHECKING:
    from service.delivery.git import GitResult
    from service.disk.backups import Manifest
    from service.production.conninfo import ConnInfo
    from service.production.export import ExportOptions
    from service.production.snapshot import Snapshot
    from service.settings.model import Settings

T = TypeVar("T")


class VerifyFailed(SyncError):
    """verify = require and the new files failed: previous files kept, candidate in the backup."""

    def __init__(self, message: str, outcome: SyncOutcome) -> None:
        super().__init__(message, Cause.VERIFY)
        self.outcome = outcome


@dataclass
class SyncOutcome:
    run_id: str
    started_at: datetime
    drift: Drift
    first_run: bool
    counts: dict[str, int]
    server_version: str
    pg_dump_version: str
    source: str
    files_written: list[Path] = field(default_factory=list)
    backup: Path | None = None
    duration_s: float = 0.0
    verify: str = "off"  # off | passed | failed | error (could not run)
    verify_problem: str | None = None
    pruned: list[Path] = field(default_factory=list)
    git: GitResult | None = None  # git delivery: its commit id names the change in alerts
    skipped: str | None = None  # "unchanged": the probe matched the last full sync; no read
    probe: Decision | None = None


@contextlib.asynccontextmanager
async def writing(paths: Paths, log: Any) -> AsyncIterator[None]:
    """The folder's write lock (disk/lock.py), then the leftovers of killed runs cleaned."""
    async with locked(lock.writing, paths, log):
        try:
            for gone in files.remove_leftovers(paths.backup_dir, paths.managed):
                log.info("leftover.removed", path=str(gone))
        except OSError as exc:  # housekeeping: never the reason a run fails
            log.warning("leftover.remove_failed", error=str(exc))
        yield


# --------------------------------------------------------------------------------------------
# Comparing with the files on disk


def read_disk_inventory(path: Path) -> Inventory | None:
    """The inventory saved by the last sync; None when absent or unreadable (a first run)."""
    try:
        return Inventory.from_json(files.read_regular(path).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, OSError) as exc:
        get_logger().warning("inventory.unreadable", path=str(path), error=str(exc))
        return None


def object_drift(
    inventory: Inventory, paths: Paths, staged_inventory: Path | None = None
) -> tuple[Drift, bool]:
    """(drift of the objects against the last sync's inventory on disk, first_run)."""
    if staged_inventory is not None and files.same_bytes(staged_inventory, paths.inventory_file):
        # The JSON is deterministic: equal bytes are equal inventories, and the old one need
        # not be loaded (at 10,000 tables that parse alone held ~70 MB).
        return Drift(()), False
    old = read_disk_inventory(paths.inventory_file)
    first_run = old is None
    drift = compare(old or Inventory(), inventory, not first_run, FILES_VS_PRODUCTION)
    return drift, first_run


def file_drift(snapshot: Snapshot, paths: Paths, drift: Drift, first_run: bool) -> Drift:
    """`drift` plus the files whose bytes differ though no object did (edited by hand,
    another pg_dump), named as changed files."""
    extra: list[DriftItem] = []
    for fresh, on_disk in (
        (snapshot.schema_file, paths.schema_file),
        (snapshot.functions_file, paths.functions_file),
    ):
        if not files.same_bytes(fresh, on_disk) and not first_run and not drift:
            change = Change.CHANGED if on_disk.exists() else Change.ADDED
            label = _display_path(on_disk)
            diff = file_diff(on_disk, fresh, label)
            extra.append(file_item(label, change, diff))
    return Drift(drift.items + tuple(extra))


MAX_FILE_DIFF_BYTES = 4 << 20


def file_diff(old: Path, new: Path, label: str) -> str:
    """Unified diff of two files on disk, for modest sizes (difflib is not for huge files)."""
    sizes = [p.stat().st_size if p.exists() else 0 for p in (old, new)]
    if max(sizes) > MAX_FILE_DIFF_BYTES:
        return f"(files too large to diff here: run `diff -u {old} <new export>`)\n"
    texts = [
        files.read_regular(p).decode("utf-8", errors="replace") if p.exists() else ""
        for p in (old, new)
    ]
    return text_diff(texts[0], texts[1], label, FILES_VS_PRODUCTION)


def _display_path(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


# --------------------------------------------------------------------------------------------
# The commands' pipelines


async def _read_and_compare(
    settings: Settings,
    paths: Paths,
    staging: Path,
    run_id: str,
    started: datetime,
    digests: dict[str, str] | None = None,
) -> tuple[Snapshot, SyncOutcome]:
    """Export and inventory production into `staging`, and compare with the files on disk.

    `digests`, for a run that may keep the staged files: filled with their sha256 (backup file
    name -> digest), taken as they are flushed to disk while the read's closing check runs,
    so that writing a backup finds them durable and hashed."""
    # Whether a link is read (no drift: the files are compared byte for byte) or replaced
    # (drift: promoted over it) would depend on production; refuse it, always, up front.
    files.refuse_links(paths.schema_file, paths.functions_file, paths.inventory_file)
    info = settings.conninfo()
    register_secret(info.password)
    staged = _staged_inventory(staging)

    def stage_and_compare(inventory: Inventory) -> tuple[Drift, bool]:
        _write_inventory(inventory, staged)
        return object_drift(inventory, paths, staged)

    async def while_exporting(inventory: Inventory) -> tuple[Drift, bool]:
        # In a thread: the event loop keeps draining pg_dump's output meanwhile.
        return await _uncancellable(asyncio.to_thread(stage_and_compare, inventory))

    async def settle() -> None:
        assert digests is not None
        kept = {name: staging / name for name in files.BACKUP_RESTORABLE}
        digests.update(await _uncancellable(asyncio.to_thread(files.settle, kept)))

    from service.production.snapshot import take_snapshot

    snapshot, compared = await take_snapshot(
        info,
        settings.catalog_options(),
        _export_options(settings),
        staging / files.BACKUP_SCHEMA,
        staging / files.BACKUP_FUNCTIONS,
        session_limits(settings),
        then=while_exporting,
        exported=settle if digests is not None else None,
    )
    assert compared is not None
    first_run = compared[1]
    drift = await asyncio.to_thread(file_drift, snapshot, paths, *compared)
    outcome = SyncOutcome(
        run_id=run_id,
        started_at=started,
        drift=drift,
        first_run=first_run,
        counts=snapshot.inventory.counts(),
        server_version=snapshot.server_version,
        pg_dump_version=snapshot.pg_dump_version,
        source=info.display(),
    )
    return snapshot, outcome


def skipped_outcome(run_id: str, started: datetime, t0: float, decision: Decision) -> SyncOutcome:
    """The outcome of a cycle the probe skipped: the last full sync's answer, no drift."""
    record = decision.record
    assert record is not None
    return SyncOutcome(
        run_id=run_id,
        started_at=started,
        drift=Drift(()),
        first_run=False,
        counts=dict(record.counts),
        server_version="",
        pg_dump_version=record.pg_dump_version,
        source=decision.reason,
        duration_s=time.monotonic() - t0,
        skipped=UNCHANGED,
        probe=decision,
    )


async def check_target(
    settings: Settings, full: bool = False, run_id: str | None = None
) -> SyncOutcome:
    """Compare production with the files on disk; write nothing (the probe's record neither)."""
    started, t0 = datetime.now(UTC), time.monotonic()
    run_id = run_id or uuid.uuid4().hex[:12]
    paths = Paths.of(settings)
    target = ProbeTarget.of(settings, list(paths.managed))
    log = get_logger(run_id=run_id)
    async with checking(target, paths, full, log) as (decision, deadline):
        if decision.skip:
            return skipped_outcome(run_id, started, t0, decision)
        with tempfile.TemporaryDirectory(prefix="pg-schema-sync-check-") as tmp:
            async with bounded(target, "check", deadline):
                _, outcome = await _read_and_compare(settings, paths, Path(tmp), run_id, started)
    outcome.probe = decision
    outcome.duration_s = time.monotonic() - t0
    return outcome


async def sync_target(
    settings: Settings, run_id: str | None = None, full: bool = False
) -> SyncOutcome:
    """One sync: on drift (or first run) write the files atomically and a backup folder.

    The probe runs first: when the catalog, the files and the settings are as the last full
    sync left them, nothing is read or written (`outcome.skipped`). `full` forces the read."""
    started, t0 = datetime.now(UTC), time.monotonic()
    run_id = run_id or uuid.uuid4().hex[:12]
    log = get_logger(run_id=run_id)
    paths = Paths.of(settings)
    target = ProbeTarget.of(settings, list(paths.managed))
    server = None
    if settings.verify != "off":  # before the probe: a misconfigured verify fails every cycle
        from service.verify import VerifyError, verify_server

        try:
            server = verify_server(settings)
        except VerifyError as exc:
            raise SyncError(f"verify = {settings.verify}: {exc}", Cause.VERIFY) from None
    deadline = deadline_of(target)  # one bound over the probe and the read it may lead to
    async with bounded(target, "sync", deadline):
        decision = await probe(target, paths, full, log)
    if decision.skip:
        outcome = skipped_outcome(run_id, started, t0, decision)
        outcome.source = settings.conninfo().display()
        if settings.git_repository:
            # Nothing to read, but a push that failed earlier is retried every cycle.
            async with writing(paths, log):
                outcome.git = await deliver_to_git(settings, paths, outcome, log)
            outcome.duration_s = time.monotonic() - t0
        return outcome
    from service.disk import backups

    async with writing(paths, log):
        try:
            for interrupted in backups.mark_interrupted(paths.backup_dir):
                log.warning("backup.interrupted", backup=str(interrupted))
        except OSError as exc:  # bookkeeping only: listing already shows such backups as failed
            log.warning("backup.mark_failed", error=str(exc), backup_dir=str(paths.backup_dir))
        try:
            # The export is staged beside the backups, not in sql/: an unchanged database must
            # not cause a single byte to be written under sql/ (editors, git and CI watch it).
            with files.staging_dir(paths.backup_dir) as staging:
                staged: dict[str, str] = {}
                async with bounded(target, "sync", deadline):
                    snapshot, outcome = await _read_and_compare(
                        settings, paths, staging, run_id, started, staged
                    )
                written: dict[str, str] | None = None
                if outcome.drift or outcome.first_run:
                    await _write(settings, server, snapshot, paths, outcome, log, staged)
                    # What was written, not what is there now: a file edited since is drift
                    # the next probe must see.
                    written = {
                        str(path): staged[name]
                        for path, name in zip(paths.managed, files.BACKUP_RESTORABLE, strict=True)
                    }
                else:
                    log.debug("sync.unchanged")
                if snapshot.fingerprint is not None:
                    # The files now match production as the snapshot read it: record that.
                    await _uncancellable(
                        asyncio.to_thread(
                            record_full_sync,
                            settings,
                            list(paths.managed),
                            paths.backup_dir,
                            snapshot.fingerprint,
                            outcome.pg_dump_version,
                            outcome.counts,
                            written,
                        )
                    )
        except OSError as exc:  # a full disk or a read-only folder, at any step
            # A full disk fails a write(), which names no file: say both places, not a guess.
            where = exc.filename or f"{paths.backup_dir} or {paths.schema_file.parent}"
            raise SyncError(
                f"cannot write schema files or backup ({exc.strerror or exc}: {where}); "
                "previous files are intact",
                Cause.DISK,
            ) from None
        outcome.probe = decision
        outcome.git = await deliver_to_git(settings, paths, outcome, log)
        outcome.pruned = await asyncio.to_thread(apply_retention, settings, paths, log)
    outcome.duration_s = time.monotonic() - t0
    return outcome


async def deliver_to_git(
    settings: Settings, paths: Paths, outcome: SyncOutcome, log: Any
) -> GitResult | None:
    """Commit (and push) what this sync wrote, or catch up on what an earlier one could not
    commit; None when git delivery is off. Never fails the sync: the files are in place."""
    if not settings.git_repository:
        return None
    from service.delivery.git import deliver
    from service.delivery.message import CommitFacts, sync_message

    inventory = paths.inventory_file
    digest = await asyncio.to_thread(files.sha256_file, inventory) if inventory.exists() else None
    facts = CommitFacts(
        target=settings.name,
        source=outcome.source,
        backup=outcome.backup.name if outcome.backup else None,
        inventory_sha256=digest,
        run_id=outcome.run_id,
        page=drift_url(settings.public_url, settings.name, outcome.backup.name)
        if outcome.backup and settings.public_url
        else None,
    )
    message = None
    if outcome.files_written:
        objects = sum(outcome.counts.values())
        message = sync_message(facts, outcome.drift, outcome.first_run, objects)
    schema_files = [paths.schema_file, paths.functions_file, paths.inventory_file]
    return await deliver(settings, schema_files, facts, message, log)


async def _uncancellable(work: Awaitable[T]) -> T:
    """Let a started write finish even when the run is cancelled, then pass the cancel on."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def _write(
    settings: Settings,
    server: ConnInfo | None,
    snapshot: Snapshot,
    paths: Paths,
    outcome: SyncOutcome,
    log: Any,
    staged: dict[str, str],
) -> None:
    """Backup (status started), verify, promote, status done. Anything stopping it in between
    leaves the previous files and a backup marked failed (barman's order)."""
    from service.disk import backups
    from service.disk.retention import DONE, FAILED

    inventory_json = _staged_inventory(snapshot.schema_file.parent)  # by _read_and_compare
    manifest = await _uncancellable(
        asyncio.to_thread(_write_backup, snapshot, inventory_json, paths, outcome, staged)
    )
    assert outcome.backup is not None
    try:
        if server is not None:
            await _verify_candidate(settings.verify, server, settings, snapshot, outcome, log)
        if settings.verify == "require" and outcome.verify != "passed":
            reason = f"verification {outcome.verify}: {outcome.verify_problem}"
            await _uncancellable(
                asyncio.to_thread(
                    backups.write_manifest,
                    outcome.backup,
                    manifest.finished(FAILED, reason=reason, verify=outcome.verify),
                )
            )
            outcome.backup = await _uncancellable(
                asyncio.to_thread(backups.merge_repeated_failure, outcome.backup)
            )
            raise VerifyFailed(
                f"{reason}; previous files kept, candidate kept in "
                f"{_display_path(outcome.backup)} (marked failed)",
                outcome,
            )
        await _uncancellable(asyncio.to_thread(_promote, snapshot, inventory_json, paths, outcome))
        done = manifest.finished(DONE, verify=outcome.verify)
        await _uncancellable(asyncio.to_thread(backups.write_manifest, outcome.backup, done))
    except VerifyFailed:
        raise
    except BaseException as exc:
        reason = "cancelled" if isinstance(exc, asyncio.CancelledError) else str(exc)
        failed = manifest.finished(FAILED, reason=reason or type(exc).__name__)
        with contextlib.suppress(OSError):
            await _uncancellable(asyncio.to_thread(backups.write_manifest, outcome.backup, failed))
        raise


async def _verify_candidate(
    mode: str,
    server: ConnInfo,
    settings: Settings,
    snapshot: Snapshot,
    outcome: SyncOutcome,
    log: Any,
) -> None:
    """Verify the copy kept in the backup, so errors name a file that stays around."""
    from service.verify import VerifyError, log_outcome, verify_files, verify_options

    assert outcome.backup is not None
    schema = outcome.backup / files.BACKUP_SCHEMA
    export, catalog = verify_options(settings)
    try:
        async with asyncio.timeout(settings.sync_timeout_s):  # the verify server's network too
            result = await verify_files(
                server,
                schema,
                outcome.backup / files.BACKUP_FUNCTIONS,
                snapshot.inventory,
                export,
                catalog,
                display_file=_display_path(schema),
            )
    except TimeoutError:
        problem = f"verify server {server.display()} gave no answer within sync_timeout_s"
        outcome.verify, outcome.verify_problem = "error", problem
        log_outcome(log, mode, None, problem, outcome.backup)
        return
    except VerifyError as exc:
        outcome.verify, outcome.verify_problem = "error", str(exc)
        log_outcome(log, mode, None, str(exc), outcome.backup)
        return
    outcome.verify = "passed" if result.passed else "failed"
    outcome.verify_problem = result.problem.one_line() if result.problem else None
    log_outcome(log, mode, result, outcome.verify_problem, outcome.backup)


def _write_backup(
    snapshot: Snapshot,
    inventory_json: Path,
    paths: Paths,
    outcome: SyncOutcome,
    staged: dict[str, str],
) -> Manifest:
    """The candidate files in a new backup folder whose manifest says "started": the staged
    files linked into it (settled: flushed and hashed while the read was checked)."""
    from service.compare.report import SummaryFacts, render_summary
    from service.disk import backups
    from service.disk.retention import STARTED

    hashes = {name: staged[name] for name in files.BACKUP_RESTORABLE}
    summary = render_summary(
        SummaryFacts(
            when=outcome.started_at,
            run_id=outcome.run_id,
            source=outcome.source,
            server_version=outcome.server_version,
            pg_dump_version=outcome.pg_dump_version,
            counts=outcome.counts,
            drift=outcome.drift,
            first_run=outcome.first_run,
            file_hashes=hashes,
        )
    )
    manifest = backups.Manifest(
        status=STARTED,
        kind="sync",
        created_at=outcome.started_at,
        run_id=outcome.run_id,
        files=hashes,
        drift=outcome.drift.counts(),
        first_run=outcome.first_run,
    )
    outcome.backup = files.create_backup(
        paths.backup_dir,
        outcome.started_at,
        {
            files.BACKUP_SCHEMA: snapshot.schema_file,
            files.BACKUP_FUNCTIONS: snapshot.functions_file,
            files.BACKUP_INVENTORY: inventory_json,
            files.BACKUP_SUMMARY: summary.encode(),
            files.BACKUP_MANIFEST: manifest.to_json(),
        },
        linked=files.BACKUP_RESTORABLE,
    )
    return manifest


def _staged_inventory(staging: Path) -> Path:
    """Where a run stages its inventory JSON: beside the export, in the staging folder."""
    return staging / files.BACKUP_INVENTORY


def _write_inventory(inventory: Inventory, path: Path) -> None:
    """One object at a time, beside the export: the JSON is ~30 MB at 10,000 tables."""
    with open(path, "wb") as fh:
        inventory.write_json(fh)


def _promote(snapshot: Snapshot, inventory_json: Path, paths: Paths, outcome: SyncOutcome) -> None:
    """Copy the new files into place (backups/ and sql/ may be different volumes)."""
    # The inventory goes last: while it is old, the next run still sees the drift.
    files.copy_atomically(snapshot.schema_file, paths.schema_file)
    files.copy_atomically(snapshot.functions_file, paths.functions_file)
    files.copy_atomically(inventory_json, paths.inventory_file)
    outcome.files_written = [paths.schema_file, paths.functions_file, paths.inventory_file]


def apply_retention(settings: Settings, paths: Paths, log: Any) -> list[Path]:
    """Delete the backups the retention policy no longer needs; never fails the run."""
    from service.disk import backups
    from service.disk.retention import Policy

    return backups.apply_policy(paths, Policy(settings.retain_count, settings.retain_days), log)


def _export_options(settings: Settings) -> ExportOptions:
    return settings.export_options(settings.pg_dump, settings.lock_wait_timeout_ms)


def outcome_fields(outcome: SyncOutcome) -> dict[str, Any]:
    """The facts of a run for log events."""
    return {
        "drift_count": len(outcome.drift),
        **({"impact": outcome.drift.impacts()} if outcome.drift else {}),
        "first_run": outcome.first_run,
        "objects": sum(outcome.counts.values()),
        "files_written": [str(p) for p in outcome.files_written],
        "backup": str(outcome.backup) if outcome.backup else None,
        "duration_s": round(outcome.duration_s, 3),
        "verify": outcome.verify,
        "pruned": [str(p) for p in outcome.pruned],
        **({"git_commit": outcome.git.commit} if outcome.git and outcome.git.commit else {}),
        **({"skipped": outcome.skipped} if outcome.skipped else {}),
        **({"full_reason": outcome.probe.reason} if outcome.probe and not outcome.skipped else {}),
    }


__all__ = [
    "Cause",
    "Paths",
    "SyncError",
    "SyncOutcome",
    "VerifyFailed",
    "apply_retention",
    "check_target",
    "outcome_fields",
    "session_limits",
    "sync_target",
]
