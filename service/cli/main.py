"""The `pg-schema-sync` command line: the parser and its shared flags, and `main`. The
commands themselves live in one module per group; decisions live below the CLI.

Building the parser imports only the command modules, which import nothing heavy at their top
(tests/test_startup.py holds them to it): `--help` and `--version` answer before pydantic,
asyncpg or structlog would have loaded. A command pulls in what it needs when it runs.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from service import __version__
from service.cli import alerts, backups, config, daemon, git, plan, quick, sync, targets, verify
from service.cli.common import EXIT_ERROR
from service.errors import SettingsError, SyncError

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
            "SCHEMA_SYNC_* variables, .env and config/pg-schema-sync.toml "
            "(`pg-schema-sync config` shows them and where each came from). "
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
    # Each command group registers itself (one line each): module.register(sub, common,
    # filters) adds subparsers whose handler(args) -> int.
    for group in (sync, verify, plan, backups, daemon, git, alerts, targets, config):
        group.register(sub, common, filters)
    return parser


def run() -> NoReturn:
    """The console command: `main`, then out without tearing the interpreter down.

    Finalisation frees every object one at a time and unloads every module: after a sync of a
    large schema (10^5 inventory objects) tens of milliseconds that nobody waits for. What
    exiting must still do is done here: the exit handlers (Sentry sends what it holds) and
    the flush of stdout and stderr (a failed flush is exit 120, as Python's own). Where a
    thread other than this one is still running, Python exits as usual, waiting for it."""
    code = main()
    others = threading.enumerate()
    if any(t.is_alive() and not t.daemon for t in others if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # --help and --version exit here
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a check's cache keys on
    import asyncio

    from service.compare.escape import visible
    from service.logs import configure_logging
    from service.production.conninfo import ConnInfoError

    handler: Handler = args.handler
    configure_logging(args.log_format or "auto", args.log_level or "warning")
    try:
        if quick.applies(args):  # a check or sync the probe answers: no settings model built
            code = asyncio.run(quick.quick_run(args.argv, args))
            if code is not None:
                return code
        return asyncio.run(handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (SettingsError, SyncError, ConnInfoError) as exc:
        # The message may quote an object name or a server's words: no raw control characters.
        print(f"pg-schema-sync: {visible(str(exc), keep=chr(10))}", file=sys.stderr)
        return EXIT_ERROR
