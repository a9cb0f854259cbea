"""The `targets` command: the configured targets and the shard each falls to; registered by
cli.build_parser. For a person asking which daemon (which pod) serves a database."""

from __future__ import annotations

import argparse
import json
from typing import Any

from service.cli.common import add_shard_options, add_target_option, counted

DESCRIPTION = """\
List the configured targets ([[targets]], or the one unnamed target) with the database each
reads and, when the number of shards is known, the shard that serves it.

The shard comes from rendezvous hashing of the target's name: the same on every machine and in
every release. In a StatefulSet shard INDEX is the pod <statefulset>-INDEX.

  targets --shard-count 3      every target and its shard of 3
  targets --shard 1/3          only what shard 1 of 3 serves
  targets --target billing --shard-count 3
                               which shard serves billing
  targets --all                with SCHEMA_SYNC_SHARD set (in a pod): every target, not only
                               this shard's

exit status: 0 listed, 2 invalid settings or an unknown --target
"""


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: argparse.ArgumentParser,
    filters: argparse.ArgumentParser,
) -> None:
    p = sub.add_parser(
        "targets",
        parents=[common],
        help="list the targets and the shard that serves each",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_option(p)
    add_shard_options(p)
    p.add_argument(
        "--all", action="store_true", help="every target, not only the shard's (the shard shown)"
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(handler=cmd_targets)


async def cmd_targets(args: argparse.Namespace) -> int:
    # The settings model and the shard arithmetic only for the command that needs them.
    from service.cli.common import settings_from
    from service.compare.escape import visible
    from service.settings.model import SettingsError, select
    from service.settings.shards import shard_of

    settings = settings_from(args)
    shard = settings.serving_shard()
    count = shard.count if shard is not None else settings.shard_count
    every = settings.resolved_targets()
    if args.target is not None:
        try:
            rows = select(every, args.target)  # named: shown wherever it is served
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
    elif shard is not None and not args.all:
        rows = [t for t in every if shard.serves(t.name)]
    else:
        rows = every
    listed: list[dict[str, Any]] = [
        {
            "name": t.name,
            "shard": shard_of(t.name, count) if count is not None else None,
            "source": t.conninfo().display(),
            "schema_dir": str(t.schema_file.parent),
        }
        for t in rows
    ]
    per_shard = None
    if count is not None:
        per_shard = [0] * count
        for t in every:
            per_shard[shard_of(t.name, count)] += 1
    if args.json:
        doc = {
            "shard": str(shard) if shard is not None else None,
            "shard_count": count,
            "configured": len(every),
            "per_shard": per_shard,
            "targets": listed,
        }
        print(json.dumps(doc))
        return 0
    if shard is not None and args.target is None and not args.all:
        print(f"shard {shard} serves {len(rows)} of {counted(len(every))}")
    elif per_shard is not None:
        counts = ", ".join(map(str, per_shard))
        print(f"{counted(len(every))} over {counted(len(per_shard), 'shard')} ({counts} per shard)")
    else:
        print(f"{counted(len(every))} (not sharded)")
    width = max((len(r["name"]) for r in listed), default=0)
    for r in listed:
        where = f"  shard {r['shard']}/{count}" if count is not None else ""
        print(f"  {r['name']:<{width}}{where}  {visible(r['source'])}  {r['schema_dir']}")
    return 0
