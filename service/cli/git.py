"""The `git status` command: each target's last delivered commit and its push state."""

from __future__ import annotations

import argparse
import json
from typing import Any

from service.cli.common import EXIT_OK, add_target_option, chosen


def register(sub: Any, common: argparse.ArgumentParser, filters: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "git",
        parents=[common],
        help="git delivery: last commit and push state per target",
        description=(
            "With git_repository set, each sync that writes files commits them to git_branch "
            "(default schema-sync/<target>) in a clone the daemon owns, and pushes. "
            "`git status` shows per target the last commit, whether it reached the remote, "
            "and the last error. Exit 0."
        ),
    )
    gsub = p.add_subparsers(dest="git_command", metavar="SUBCOMMAND", required=True)
    s = gsub.add_parser("status", parents=[common], help="last commit and push state")
    s.add_argument("--json", action="store_true", help="print one JSON object per target name")
    add_target_option(s)
    s.set_defaults(handler=cmd_git_status)


async def cmd_git_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from service.delivery.clone import scrub_url
    from service.delivery.config import GitConfig
    from service.delivery.git import load_state

    _, targets = chosen(args)
    docs: dict[str, Any] = {}
    for target in targets:
        cfg = GitConfig.of(target)
        state = load_state(target)
        if cfg is None or state is None:
            docs[target.name] = {"enabled": False}
            continue
        doc = {"enabled": True, **asdict(state), "branch": cfg.branch}
        doc["repository"] = scrub_url(cfg.repository)  # a token may be its user name
        doc["pending_commits"] = len(doc.pop("pending_messages"))
        docs[target.name] = doc
    if args.json:
        print(json.dumps(docs, indent=1))
        return EXIT_OK
    for name, doc in docs.items():
        prefix = f"{name}: " if len(docs) > 1 else ""
        if not doc["enabled"]:
            print(f"{prefix}git delivery off (set git_repository to turn it on)")
            continue
        commit = (doc["last_commit"] or "")[:12] or "no commit yet"
        print(f"{prefix}{doc['repository']} {doc['branch']}: {commit} push {doc['push_state']}")
        if doc["last_subject"]:
            print(f"  last commit: {doc['last_subject']} ({doc['last_commit_at']})")
        if doc["last_error"]:
            print(f"  {doc['consecutive_failures']} failures in a row, last: {doc['last_error']}")
        if doc["pending_commits"]:
            print(f"  {doc['pending_commits']} sync(s) waiting to be committed")
        if doc["fresh_branch"]:
            print(f"  conflicting changes: a sync's commit went to {doc['fresh_branch']}")
    return EXIT_OK
