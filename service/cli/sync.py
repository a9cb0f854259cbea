"""The `sync`, `check`, `compare` and `demo` commands: parse, call, print.

The pipeline (service.sync: asyncpg, pydantic) is imported by the handlers, not here: this
module is imported to build the parser."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from service.cli.common import (
    EXIT_OK,
    FAIL_ON,
    add_fail_on_option,
    add_shard_options,
    add_target_option,
    chosen,
    each_target,
    emit_drift,
    print_outcome,
    report_checks,
    report_syncs,
    settings_from,
)

if TYPE_CHECKING:
    from service.compare.drift import Drift
    from service.settings.model import Settings
    from service.sync import SyncOutcome


def register(sub: Any, common: argparse.ArgumentParser, filters: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "sync",
        parents=[common, filters],
        help="export production and update the schema files on drift",
        description=(
            "One sync: pg_dump --schema-only and a catalog inventory of production, compared with "
            "the files on disk. On drift (or the first run) the schema files are replaced "
            "atomically and a backup folder with the export, functions, inventory and "
            "sync-summary.md is created; when nothing drifted nothing is written. "
            "Exit 0 on success (drift or not), 2 on failure."
        ),
    )
    add_target_option(p)
    add_shard_options(p)
    _add_full_option(p)
    p.set_defaults(handler=cmd_sync)
    p = sub.add_parser(
        "check",
        parents=[common, filters],
        help="compare production with the files on disk; write nothing",
        description=(
            "Exit 0 when production matches the files, 1 on drift (with --fail-on: on a "
            "change at that impact or worse), 2 on error. Each change says its impact: "
            "breaking, behavioural, compatible or cosmetic."
        ),
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"drift": ..., "headline": ..., "impact": {...}, "changes": [...]} only',
    )
    p.add_argument("--diff", action="store_true", help="also print each changed object's diff")
    add_fail_on_option(p)
    add_target_option(p)
    add_shard_options(p)
    _add_full_option(p)
    p.set_defaults(handler=cmd_check)
    p = sub.add_parser(
        "compare",
        parents=[common, filters],
        help="compare two live databases",
        description=(
            "What differs going from FROM_DSN to TO_DSN (catalog inventories, no files). "
            "DSNs are libpq URIs or keyword strings, e.g. "
            "postgresql://user@/db?host=/socket/dir&port=5433 ; passwords belong in PGPASSWORD "
            "or a passfile, not on the command line. Exit 0 same, 1 drift (with --fail-on: "
            "a change at that impact or worse), 2 error."
        ),
    )
    p.add_argument("from_dsn", metavar="FROM_DSN")
    p.add_argument("to_dsn", metavar="TO_DSN")
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"drift": ..., "headline": ..., "impact": {...}, "changes": [...]} only',
    )
    p.add_argument("--diff", action="store_true", help="also print each changed object's diff")
    add_fail_on_option(p)
    p.set_defaults(handler=cmd_compare)
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="run the built-in demo on a throwaway local PostgreSQL",
        description=(
            "Starts a throwaway PostgreSQL, loads a sample trail-routing schema (PostGIS, "
            "pgRouting), syncs it, hot-fixes a function and adds a column, syncs again and "
            "prints the drift report. Cleans up after itself, also on Ctrl-C."
        ),
    )
    p.set_defaults(handler=cmd_demo)


def _add_full_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--full",
        action="store_true",
        help="read production in full even when the catalog probe finds nothing changed "
        "since the last full sync",
    )


async def cmd_sync(args: argparse.Namespace) -> int:
    from service.cli.quick import remember

    settings, targets = chosen(args)

    async def sync_one(target: Settings) -> SyncOutcome:
        return await _sync_one(target, args.full)

    if len(targets) == 1:
        remember(args.argv, args, settings, targets[0])  # for the next sync of these inputs
        outcome = await sync_one(targets[0])  # a SyncError becomes main()'s one line
        print_outcome(outcome)
        return EXIT_OK
    results = await each_target(targets, settings.max_concurrent_syncs, sync_one)
    return report_syncs(results, print_outcome)


async def _sync_one(settings: Settings, full: bool = False) -> SyncOutcome:
    from service.logs import get_logger
    from service.sync import outcome_fields, sync_target

    log = get_logger(command="sync", target=settings.name)
    log.info("sync.started")
    outcome = await sync_target(settings, full=full)
    log.info("sync.finished", **outcome_fields(outcome))
    return outcome


async def cmd_check(args: argparse.Namespace) -> int:
    from service.cli.quick import remember
    from service.sync import check_target

    settings, targets = chosen(args)
    if len(targets) == 1:
        remember(args.argv, args, settings, targets[0])  # for the next check of these inputs
        outcome = await check_target(targets[0], full=args.full)
        if outcome.first_run:
            _say_no_files(targets[0], args.json)
        return emit_drift(outcome.drift, args.json, args.diff, FAIL_ON[args.fail_on])

    async def drift_of(target: Settings) -> Drift:
        outcome = await check_target(target, full=args.full)
        if outcome.first_run:
            _say_no_files(target, True)  # on stderr: stdout holds the per-target reports
        return outcome.drift

    results = await each_target(targets, settings.max_concurrent_syncs, drift_of)
    fail_on = FAIL_ON[args.fail_on]
    emit = lambda drift: emit_drift(drift, False, args.diff, fail_on)  # noqa: E731
    return report_checks(results, args.json, emit, args.diff, fail_on)


def _say_no_files(target: Settings, to_stderr: bool) -> None:
    """A check before the first sync lists every object as added; say why, and what to do."""
    where = target.inventory_file.parent
    name = "" if target.name == "default" else f" (target {target.name})"
    print(
        f"no schema files yet in {where}{name}: every object in production is new to them; "
        "run `pg-schema-sync sync` to write them",
        file=sys.stderr if to_stderr else sys.stdout,
    )


async def cmd_compare(args: argparse.Namespace) -> int:
    from service.production.conninfo import ConnInfo
    from service.production.snapshot import compare_databases
    from service.sync import session_limits

    settings = settings_from(args)
    env = ConnInfo.from_env()
    source = env.merged(ConnInfo.parse(args.from_dsn))
    target = env.merged(ConnInfo.parse(args.to_dsn))
    options = settings.catalog_options()
    # The settings' statement and lock timeouts hold here too, as for check and sync.
    drift = await compare_databases(source, target, options, session_limits(settings))
    return emit_drift(drift, args.json, args.diff, FAIL_ON[args.fail_on])


async def cmd_demo(args: argparse.Namespace) -> int:
    from service.demo.run import run_demo

    return await run_demo(sys.stdout)
