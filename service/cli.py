"""The `pg-schema-sync` commands: parse, configure, call, print. Decisions live elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from service import __version__, cli_backups, cli_targets
from service.catalog import CatalogOptions
from service.conninfo import ConnInfo, ConnInfoError
from service.drift import Drift
from service.logs import configure_logging, get_logger
from service.settings import Settings, SettingsError, load_settings
from service.sync import (
    SyncError,
    SyncOutcome,
    check_target,
    compare_databases,
    outcome_fields,
    sync_target,
)

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pg-schema-sync",
        description=(
            "Keep a repository's PostgreSQL schema files identical to a production database "
            "and report, object by object, what drifted."
        ),
        epilog=(
            "Connection: the standard libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE, "
            "PGPASSWORD, PGPASSFILE, PGSSLMODE) or SCHEMA_SYNC_DSN; settings also come from "
            "SCHEMA_SYNC_* variables, .env and config/pg-schema-sync.toml. "
            "Run `pg-schema-sync COMMAND --help` for each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML config file (default: $SCHEMA_SYNC_CONFIG, else config/pg-schema-sync.toml)",
    )
    common.add_argument(
        "--log-format", choices=["auto", "json", "console"], help="log format (stderr)"
    )
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument(
        "--schema",
        action="append",
        default=None,
        metavar="NAME",
        help="only this schema (repeatable; like pg_dump -n)",
    )
    filters.add_argument(
        "--exclude-schema",
        action="append",
        default=None,
        metavar="NAME",
        help="leave this schema out (repeatable; like pg_dump -N)",
    )
    filters.add_argument("--no-owners", action="store_true", help="ignore object owners")
    filters.add_argument("--no-privileges", action="store_true", help="ignore grants")
    filters.add_argument("--no-comments", action="store_true", help="ignore comments")

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
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
    cli_targets.add_target_option(p)
    p.set_defaults(handler=cmd_sync)
    p = sub.add_parser(
        "check",
        parents=[common, filters],
        help="compare production with the files on disk; write nothing",
        description="Exit 0 when production matches the files, 1 on drift, 2 on error.",
    )
    p.add_argument(
        "--json", action="store_true", help='print {"drift": ..., "changes": [...]} only'
    )
    p.add_argument("--diff", action="store_true", help="also print each changed object's diff")
    cli_targets.add_target_option(p)
    p.set_defaults(handler=cmd_check)
    p = sub.add_parser(
        "compare",
        parents=[common, filters],
        help="compare two live databases",
        description=(
            "What differs going from FROM_DSN to TO_DSN (catalog inventories, no files). "
            "DSNs are libpq URIs or keyword strings, e.g. "
            "postgresql://user@/db?host=/socket/dir&port=5433 ; passwords belong in PGPASSWORD "
            "or a passfile, not on the command line. Exit 0 same, 1 drift, 2 error."
        ),
    )
    p.add_argument("from_dsn", metavar="FROM_DSN")
    p.add_argument("to_dsn", metavar="TO_DSN")
    p.add_argument(
        "--json", action="store_true", help='print {"drift": ..., "changes": [...]} only'
    )
    p.add_argument("--diff", action="store_true", help="also print each changed object's diff")
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
    # Further command groups register themselves here (one line each):
    # module.register(sub, common, filters) adds subparsers whose handler(args) -> int.
    cli_backups.register(sub, common, filters)
    from service import cli_daemon

    cli_daemon.register(sub, common, filters)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    configure_logging(args.log_format or "auto", args.log_level or "warning")
    try:
        return asyncio.run(handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (SettingsError, SyncError, ConnInfoError) as exc:
        print(f"pg-schema-sync: {exc}", file=sys.stderr)
        return EXIT_ERROR


def settings_from(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config, **cli_targets.filter_overrides(args))
    # One-shot commands speak through their output and exit code; their logs stay at warning
    # unless a level was asked for (flag, SCHEMA_SYNC_LOG_LEVEL or the config file).
    explicit = "log_level" in settings.model_fields_set
    level = args.log_level or (settings.log_level if explicit else "warning")
    configure_logging(args.log_format or settings.log_format, level)
    return settings


async def cmd_sync(args: argparse.Namespace) -> int:
    settings, targets = cli_targets.chosen(args)
    if len(targets) == 1:
        outcome = await _sync_one(targets[0])  # a SyncError becomes main()'s one line
        print_outcome(outcome)
        return EXIT_OK
    results = await cli_targets.each_target(targets, settings.max_concurrent_syncs, _sync_one)
    return cli_targets.report_syncs(results, print_outcome)


async def _sync_one(settings: Settings) -> SyncOutcome:
    log = get_logger(command="sync", target=settings.name)
    log.info("sync.started")
    outcome = await sync_target(settings)
    log.info("sync.finished", **outcome_fields(outcome))
    return outcome


async def cmd_check(args: argparse.Namespace) -> int:
    settings, targets = cli_targets.chosen(args)
    if len(targets) == 1:
        outcome = await check_target(targets[0])
        return emit_drift(outcome.drift, args.json, args.diff)

    async def drift_of(target: Settings) -> Drift:
        return (await check_target(target)).drift

    results = await cli_targets.each_target(targets, settings.max_concurrent_syncs, drift_of)
    return cli_targets.report_checks(
        results, args.json, lambda drift: emit_drift(drift, False, args.diff)
    )


async def cmd_compare(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    env = ConnInfo.from_env()
    source = env.merged(ConnInfo.parse(args.from_dsn))
    target = env.merged(ConnInfo.parse(args.to_dsn))
    options: CatalogOptions = settings.catalog_options()
    drift = await compare_databases(source, target, options)
    return emit_drift(drift, args.json, args.diff)


async def cmd_demo(args: argparse.Namespace) -> int:
    from service.demo import run_demo

    return await run_demo(sys.stdout)


def emit_drift(drift: Drift, as_json: bool, with_diff: bool) -> int:
    if as_json:
        print(json.dumps(drift.as_json()))
    elif not drift:
        print("in sync: no drift")
    else:
        print(f"drift: {drift.headline()}")
        for item in drift.items:
            print(f"  {item.change.value:<8} {item.kind} {item.name}")
            if with_diff and item.diff:
                print("".join("    " + ln for ln in item.diff.splitlines(keepends=True)), end="")
    return EXIT_DRIFT if drift else EXIT_OK


def print_outcome(outcome: SyncOutcome) -> None:
    if outcome.first_run:
        print(f"first sync: {sum(outcome.counts.values())} objects exported")
    elif outcome.drift:
        emit_drift(outcome.drift, as_json=False, with_diff=False)
    else:
        print("in sync: no drift, nothing written")
    for path in outcome.files_written:
        print(f"wrote {path}")
    if outcome.backup:
        print(f"backup {outcome.backup}")
