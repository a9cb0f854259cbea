"""`check` and `sync` answered by the probe alone, before the settings model is built.

A check (or sync) whose inputs (command line, environment, .env, config file, this code) are
exactly those of an earlier one reads what that run resolved the settings to
(settings/cache.py) and probes production. When the probe finds nothing changed since the last
full sync, that is the answer, printed and logged as a run that built the settings would. A
sync is kept only where a skipped cycle needs nothing more of the settings: no git delivery
(a skipped cycle retries a failed push) and verify off (its settings are checked every cycle).
Anything else (no entry, --full, a probe that finds a change or fails) goes the usual way: the
settings are built and production is read; the probe then runs once more (a tenth of a
second, on drift only).

The same probe code decides both ways (runs.checking, runs.probe), so this path cannot skip
where the usual one would read.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.cli.common import FAIL_ON
from service.errors import Cause, SyncError

if TYPE_CHECKING:
    from service.probing import Decision, ProbeTarget
    from service.runs import Paths
    from service.settings.model import Settings


UNREACHED = frozenset({Cause.CONNECTION, Cause.AUTHENTICATION})


def applies(args: argparse.Namespace) -> bool:
    return getattr(args, "command", None) in ("check", "sync") and not args.full


async def quick_run(argv: Sequence[str], args: argparse.Namespace) -> int | None:
    """The command's exit code when the probe answered it; None: run the usual command."""
    from service.settings import cache

    key = cache.key(argv, args.config, os.environ)
    entry = cache.read(key, os.environ) if key is not None else None
    if entry is None:
        return None
    try:
        target, paths = _target_of(entry)
    except (KeyError, TypeError, ValueError):  # an entry of another shape: build afresh
        return None
    from service.cli.common import emit_drift, warn_unknown_variables
    from service.logs import configure_logging, get_logger
    from service.runs import checking

    configure_logging(entry["log_format"], entry["log_level"])
    warn_unknown_variables(entry["warnings"])
    if args.command == "sync":
        return await _quick_sync(target, paths)
    log = get_logger(run_id=uuid.uuid4().hex[:12])
    async with checking(target, paths, False, log) as (decision, _):
        _unreached(decision)
        if not decision.skip:
            return None
    from service.compare.drift import Drift

    return emit_drift(Drift(()), args.json, args.diff, FAIL_ON[args.fail_on])


async def _quick_sync(target: ProbeTarget, paths: Paths) -> int | None:
    """A sync whose probe finds nothing changed: as sync_target's skipped cycle, and logged
    and printed as cmd_sync would."""
    import time
    from datetime import UTC, datetime

    from service.cli.common import EXIT_OK, print_outcome
    from service.logs import get_logger
    from service.runs import bounded, deadline_of, probe
    from service.sync import outcome_fields, skipped_outcome

    started, t0 = datetime.now(UTC), time.monotonic()
    run_id = uuid.uuid4().hex[:12]
    async with bounded(target, "sync", deadline_of(target)):
        decision = await probe(target, paths, False, get_logger(run_id=run_id))
    _unreached(decision)
    if not decision.skip:
        return None
    log = get_logger(command="sync", target=target.name)
    log.info("sync.started")
    outcome = skipped_outcome(run_id, started, t0, decision)
    outcome.source = target.conninfo.display()
    log.info("sync.finished", **outcome_fields(outcome))
    print_outcome(outcome)
    return EXIT_OK


def _unreached(decision: Decision) -> None:
    """The usual run would meet the same wall again (twice: its probe, then its read), a
    connect timeout each: say it now, as it would."""
    if decision.probe_cause in UNREACHED and decision.probe_error is not None:
        raise SyncError(decision.probe_error, decision.probe_cause)


def remember(
    argv: Sequence[str], args: argparse.Namespace, settings: Settings, one: Settings
) -> None:
    """After a check or sync built the settings of one target: what a later run of the same
    inputs needs to skip building them. Nothing when the password would have to be kept, nor
    for a sync whose skipped cycle needs more of the settings (git delivery, verify)."""
    if not applies(args) or _password_in_settings(one):
        return
    if args.command == "sync" and (one.git_repository or one.verify != "off"):
        return
    from service.settings import cache

    key = cache.key(argv, args.config, os.environ)
    if key is None:
        return
    from service.cli.common import log_choice, unknown_variables
    from service.probing import ProbeTarget
    from service.runs import Paths

    paths = Paths.of(one)
    target = ProbeTarget.of(one, list(paths.managed))
    log_format, log_level = log_choice(args, settings)
    entry = {
        "log_format": log_format,
        "log_level": log_level,
        "warnings": unknown_variables(),
        "target": _fields_of(target, paths),
    }
    cache.write(key, entry, os.environ)


def _password_in_settings(one: Settings) -> bool:
    """A password other than PGPASSWORD's (the DSN's, the `password` setting) lives in the
    settings, and an entry would have to keep it: none is written."""
    from service.production.conninfo import ConnInfo

    if one.password is not None:
        return True
    return one.dsn is not None and ConnInfo.parse(one.dsn.get_secret_value()).password is not None


def _fields_of(target: ProbeTarget, paths: Paths) -> dict[str, Any]:
    return {
        "name": target.name,
        "params": dict(target.conninfo.params),  # the password is not a param: never here
        "pg_dump": target.pg_dump,
        "digest": target.digest,
        "full_sync_interval_s": target.full_sync_interval_s,
        "sync_timeout_s": target.sync_timeout_s,
        "statement_timeout_ms": target.limits.statement_timeout_ms,
        "lock_timeout_ms": target.limits.lock_timeout_ms,
        "paths": [str(p) for p in (*paths.managed, paths.backup_dir, paths.write_lock)],
    }


def _target_of(entry: dict[str, Any]) -> tuple[ProbeTarget, Paths]:
    from service.probing import ProbeTarget
    from service.production.conninfo import ConnInfo
    from service.production.db import SessionLimits
    from service.runs import Paths

    t = entry["target"]
    params = {str(k): str(v) for k, v in t["params"].items()}
    # As the settings would have it: a password only from PGPASSWORD (remember() keeps no
    # entry of settings holding one), read now.
    info = ConnInfo(params, os.environ.get("PGPASSWORD") or None)
    target = ProbeTarget(
        name=str(t["name"]),
        conninfo=info,
        pg_dump=str(t["pg_dump"]),
        digest=str(t["digest"]),
        full_sync_interval_s=float(t["full_sync_interval_s"]),
        sync_timeout_s=float(t["sync_timeout_s"]),
        limits=SessionLimits(
            statement_timeout_ms=int(t["statement_timeout_ms"]),
            lock_timeout_ms=int(t["lock_timeout_ms"]),
        ),
    )
    schema, functions, inventory, backup_dir, write_lock = (Path(p) for p in t["paths"])
    return target, Paths(schema, functions, inventory, backup_dir, write_lock)
