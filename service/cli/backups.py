"""The `rollback` and `backups` commands: parse, call, print. Decisions live elsewhere.

Imported to build the parser: what the commands need (the pipeline, pydantic, asyncpg) is
imported inside them."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.cli.common import (
    add_target_option,
    clear_errors,
    emit_drift,
    show_path,
    target_paths,
)

if TYPE_CHECKING:
    from service.delivery.git import GitResult
    from service.disk.backups import Backup
    from service.runs import Paths
    from service.settings.model import Settings

EXIT_OK, EXIT_FAILED = 0, 1


def register(sub: Any, common: argparse.ArgumentParser, filters: argparse.ArgumentParser) -> None:
    """Add `rollback` and `backups` to the main parser's subcommands."""
    p = sub.add_parser(
        "rollback",
        parents=[common, filters],
        help="restore the schema files from a backup (undoable)",
        description=(
            "Restores complete schema, functions and inventory from BACKUP, a folder name "
            "listed by `pg-schema-sync backups` (default: the good backup before the current "
            "files). Each file is replaced atomically, the inventory last, and the restore is "
            "recorded as a new backup, so `pg-schema-sync rollback` again undoes it. Files on "
            "disk that are in no backup are saved as a backup first. Paths outside backups/, "
            "symlinks, damaged or incomplete backups are refused. Exit 0 restored, 1 "
            "verification failed (nothing changed), 2 error."
        ),
    )
    p.add_argument("backup", nargs="?", metavar="BACKUP", help="backup folder name")
    p.add_argument(
        "--verify",
        action="store_true",
        help="verify the backup's files on the verify server first; restore only if they pass",
    )
    p.add_argument(
        "--force", action="store_true", help="also restore a backup whose status is not done"
    )
    add_target_option(p)
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser(
        "backups",
        parents=[common],
        help="list, compare and prune backup folders",
        description=(
            "Without a subcommand: list backups (time, kind, status, verification, drift "
            "summary, files' hash; * marks the one holding the current files)."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    add_target_option(p)
    p.set_defaults(handler=cmd_backups_list)
    bsub = p.add_subparsers(dest="backups_command", metavar="SUBCOMMAND")
    common = _unset_defaults(common)  # `backups --config X prune` must keep X
    add_target_option(common, default=argparse.SUPPRESS)  # `backups --target X prune` too
    b = bsub.add_parser("list", parents=[common], help="list backups (the default)")
    b.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the list as JSON"
    )
    b.set_defaults(handler=cmd_backups_list)
    b = bsub.add_parser(
        "diff",
        parents=[common],
        help="object drift between two backups (or a backup and `current`)",
        description=(
            "What changed going from A to B, object by object, in the same form as `check`. "
            "A and B are backup names or `current` (the files in sql/schemas/). "
            "Exit 0 same, 1 different, 2 error."
        ),
    )
    b.add_argument("a", metavar="A")
    b.add_argument("b", metavar="B")
    b.add_argument("--json", action="store_true", help='print {"drift": ..., "changes": [...]}')
    b.add_argument("--diff", action="store_true", help="also print each changed object's diff")
    b.set_defaults(handler=cmd_backups_diff)
    b = bsub.add_parser(
        "prune",
        parents=[common],
        help="delete backups the retention policy no longer needs",
        description=(
            "Applies retain_count / retain_days (or --keep-last / --keep-days): keeps the last "
            "N done backups (and the last N failed ones) and those younger than D days; never "
            "deletes the newest good backup, the one holding the current files, or one still "
            "being written. Also runs after each sync when a policy is set."
        ),
    )
    b.add_argument("--dry-run", action="store_true", help="say what would go; delete nothing")
    b.add_argument("--keep-last", type=int, metavar="N", help="override retain_count")
    b.add_argument("--keep-days", type=float, metavar="D", help="override retain_days")
    b.set_defaults(handler=cmd_backups_prune)


def _unset_defaults(parent: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The same options without defaults: argparse copies a subcommand's defaults over what
    the parent level parsed, which would silently drop `backups --config X prune`'s X."""
    quiet = argparse.ArgumentParser(add_help=False)
    for action in parent._actions:
        clone = copy.copy(action)
        clone.default = argparse.SUPPRESS
        quiet._add_action(clone)
    return quiet


# --------------------------------------------------------------------------------------------
# rollback


@clear_errors
async def cmd_rollback(args: argparse.Namespace) -> int:
    from service.logs import get_logger
    from service.sync import writing

    settings, paths = target_paths(args)
    # The whole command under the folder's write lock: the default target is decided from
    # the backups and files as they are, so no sync may change them meanwhile.
    async with writing(paths, get_logger(command="rollback")):
        return await _rollback(args, settings, paths)


async def _rollback(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    from service.cli.verify import print_verify, run_verify
    from service.disk import backups, files, rollback
    from service.disk.backups import BackupError

    if args.backup is not None:  # `rollback ''` is a mistake, not "the default backup"
        target = backups.resolve(paths.backup_dir, args.backup)
    else:
        history = backups.list_history(paths.backup_dir)
        target = rollback.default_target(history, backups.current_hashes(paths))
    if target.status != "done" and not args.force:
        why = f" ({target.manifest.reason})" if target.manifest and target.manifest.reason else ""
        raise BackupError(
            f"backup {target.name} is marked {target.status}{why}: its files never passed; "
            "use --force to restore it anyway"
        )
    if (target.manifest is None or not target.manifest.files) and not args.force:
        # Nothing recorded what its files should hash to: damage or edits would go unnoticed.
        what = "has no manifest" if target.manifest is None else "has a manifest listing no files"
        raise BackupError(
            f"backup {target.name} {what}, so its files cannot be checked: inspect it, then "
            "use --force to restore it anyway"
        )
    backups.check_intact(target)
    if args.verify:
        result = await run_verify(
            settings,
            target.path / files.BACKUP_SCHEMA,
            target.path / files.BACKUP_FUNCTIONS,
            target.path / files.BACKUP_INVENTORY,
        )
        if print_verify(result, f"backup {target.name}", False) != EXIT_OK:
            print("nothing restored")
            return EXIT_FAILED
    recorded = rollback.restore(paths, target, verified="passed" if args.verify else "off")
    print(f"restored {target.name}")
    for path in (paths.schema_file, paths.functions_file, paths.inventory_file):
        print(f"wrote {show_path(path)}")
    print(f"recorded as backup {recorded.name} (undo: pg-schema-sync rollback)")
    delivered = await _commit_rollback(settings, paths, recorded, target.name)
    if delivered is not None:
        print(delivered.line())
    return EXIT_OK


async def _commit_rollback(
    settings: Settings, paths: Paths, recorded: Path, restored_from: str
) -> GitResult | None:
    """A rollback is a change of the files like any sync: git delivery commits it too."""
    if not settings.git_repository:
        return None
    from service.delivery.git import deliver
    from service.delivery.message import CommitFacts, rollback_message
    from service.disk import files
    from service.logs import get_logger
    from service.production.conninfo import ConnInfoError

    try:
        source = settings.conninfo().display()
    except ConnInfoError:
        source = "-"
    facts = CommitFacts(
        target=settings.name,
        source=source,
        backup=recorded.name,
        inventory_sha256=files.sha256_file(paths.inventory_file),
    )
    schema_files = [paths.schema_file, paths.functions_file, paths.inventory_file]
    message = rollback_message(facts, restored_from)
    return await deliver(settings, schema_files, facts, message, get_logger(command="rollback"))


# --------------------------------------------------------------------------------------------
# backups


def _row(b: Backup, current: str | None) -> dict[str, Any]:
    from datetime import UTC

    m = b.manifest
    return {
        "name": b.name,
        "time": b.created_at.astimezone(UTC).isoformat(),
        "kind": b.kind,
        "status": b.status,
        "verify": m.verify if m else None,
        "drift": dict(m.drift) if m else None,
        "first_run": m.first_run if m else None,
        "reason": b.problem or (m.reason if m else None),
        "restored_from": m.restored_from if m else None,
        "attempts": m.attempts if m else 1,
        "files": dict(b.hashes),
        "files_hash": b.files_hash,
        "current": current is not None and b.files_hash == current,
    }


def _drift_text(row: dict[str, Any]) -> str:
    if row["kind"] == "rollback":
        return f"restored {row['restored_from']}"
    if row["first_run"]:
        return "first run"
    if not row["drift"]:
        return "-" if row["drift"] is None else "no object drift"
    return ", ".join(f"{n} {c}" for c, n in sorted(row["drift"].items()))


@clear_errors
async def cmd_backups_list(args: argparse.Namespace) -> int:
    from service.disk import backups

    _, paths = target_paths(args)
    current = backups.combined_hash(backups.current_hashes(paths))
    rows = [_row(b, current) for b in backups.list_history(paths.backup_dir)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return EXIT_OK
    if not rows:
        print(f"no backups in {show_path(paths.backup_dir)}")
        return EXIT_OK
    print(
        f"{'BACKUP':<33} {'TIME (UTC)':<19} {'KIND':<8} {'STATUS':<7} {'VERIFY':<7} "
        f"{'FILES':<12}  DRIFT"
    )
    for r in rows:
        when = r["time"][:19].replace("T", " ")  # ISO 8601 in UTC, as _row wrote it
        mark = "*" if r["current"] else " "
        print(
            f"{mark}{r['name']:<32} {when:<19} {r['kind']:<8} {r['status']:<7} "
            f"{r['verify'] or '-':<7} {(r['files_hash'] or '-')[:12]:<12}  {_drift_text(r)}"
        )
        if r["status"] != "done" and r["reason"]:
            again = f" ({r['attempts']} attempts)" if r["attempts"] > 1 else ""
            print(f"{'':<34}{r['reason']}{again}")
    print("* holds the current files")
    return EXIT_OK


@clear_errors
async def cmd_backups_diff(args: argparse.Namespace) -> int:
    from service.disk import backups
    from service.disk.backups import CURRENT

    _, paths = target_paths(args)
    for which in (args.a, args.b):
        if which != CURRENT:
            backups.resolve(paths.backup_dir, which)  # same path checks as rollback
    return emit_drift(backups.diff(paths, args.a, args.b), args.json, args.diff)


@clear_errors
async def cmd_backups_prune(args: argparse.Namespace) -> int:
    from service.disk import backups
    from service.disk.retention import Policy
    from service.logs import get_logger
    from service.sync import writing

    settings, paths = target_paths(args)
    if args.keep_days is not None and not (0 < args.keep_days < 36_500):
        raise ValueError(f"--keep-days {args.keep_days}: give a number of days from 0 to 36500")
    if args.keep_last is not None and args.keep_last < 1:
        raise ValueError(f"--keep-last {args.keep_last}: give a count of at least 1")
    policy = Policy(
        args.keep_last if args.keep_last is not None else settings.retain_count,
        args.keep_days if args.keep_days is not None else settings.retain_days,
    )
    if not policy.active:
        print(
            "no retention policy (retain_count / retain_days, or --keep-last / --keep-days): "
            "nothing to prune"
        )
        return EXIT_OK
    if args.dry_run:
        plan = backups.prune(paths, policy, dry_run=True)
    else:
        async with writing(paths, get_logger(command="prune")):
            plan = backups.prune(paths, policy, dry_run=False)
    verb = "would delete" if args.dry_run else "deleted"
    for p in plan:
        print(f"{verb if not p.keep else 'keep':<12} {p.backup.name}  ({p.reason})")
    gone = sum(not p.keep for p in plan)
    print(f"{verb} {gone} of {len(plan)} backups")
    return EXIT_OK
