"""The `plan` command: the SQL that turns one schema into another, proven before it is shown.

Only the parser is built at import time; everything the command runs is imported when it
runs (`pg-schema-sync --help` must stay fast)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser, filters: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "plan",
        parents=[common, filters],
        help="print the SQL that turns FROM's schema into TO's, verified",
        description=(
            "Prints on stdout the SQL that turns FROM's schema into TO's, in dependency "
            "order, each statement with its object, hazards and lock in a comment. FROM and "
            "TO are each a libpq DSN, `files` (the target's schema file) or a backup name "
            "(schema-sync-YYYYMMDD_HHMMSS); files and backups are installed into a scratch "
            "database on the verify server first. With a verify server (verify_dsn) the plan "
            "is proven: applied to a scratch copy of FROM and compared with TO. Exit 0 a "
            "complete plan, 1 printed but verification found differences (named on stderr), "
            "2 no plan (bad input, or an object that cannot be planned safely)."
        ),
    )
    p.add_argument("source", metavar="FROM", help="DSN, `files` or a backup name")
    p.add_argument("target_side", metavar="TO", help="DSN, `files` or a backup name")
    p.add_argument("--json", action="store_true", help="print the statements as JSON")
    p.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="prove the plan on a scratch copy of FROM (default: on when verify_dsn is set)",
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="after a successful verification, run the plan against FROM (a DSN)",
    )
    p.add_argument(
        "--allow-hazards",
        metavar="KIND[,KIND]",
        default="",
        help="with --apply: run statements with these hazards too (deletes_data, "
        "rewrites_table, access_exclusive_lock, index_build, breaks_clients, "
        "not_transactional, validates_constraint)",
    )
    p.add_argument(
        "--concurrently",
        action="store_true",
        help="build and drop indexes of existing tables CONCURRENTLY (outside the transaction)",
    )
    p.add_argument(
        "--target",
        metavar="NAME",
        default=None,
        help="the [[targets]] entry whose files, backups and settings are meant",
    )
    p.set_defaults(handler=cmd_plan)


async def cmd_plan(args: argparse.Namespace) -> int:
    from service.cli.plan_run import run

    return await run(args)
