"""`check` answered by the probe alone, before the settings model is built.

A check whose inputs (command line, environment, .env, config file, this code) are exactly
those of an earlier check reads what that check resolved the settings to (settings/cache.py)
and probes production. When the probe finds nothing changed since the last full sync, that is
the answer, printed as a check that built the settings prints it. Anything else (no entry,
--full, a probe that finds a change or fails) goes the usual way: the settings are built and
production is read; the probe then runs once more (a tenth of a second, on drift only).

The same probe code decides both ways (runs.checking), so this path cannot skip where the
usual one would read.
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
    from service.probing import ProbeTarget
    from service.runs import Paths
    from service.settings.model import Settings


UNREACHED = frozenset({Cause.CONNECTION, Cause.AUTHENTICATION})


def applies(args: argparse.Namespace) -> bool:
    return getattr(args, "command", None) == "check" and not args.full


async def quick_check(argv: Sequence[str], args: argparse.Namespace) -> int | None:
    """The check's exit code when the probe answered it; None: run the usual check."""
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
    log = get_logger(run_id=uuid.uuid4().hex[:12])
    async with checking(target, paths, False, log) as (decision, _):
        if decision.probe_cause in UNREACHED and decision.probe_error is not None:
            # The usual check would meet the same wall again (twice: its probe, then its
            # read), a connect timeout each: say it now, as it would.
            raise SyncError(decision.probe_error, decision.probe_cause)
        if not decision.skip:
            return None
    from service.compare.drift import Drift

    return emit_drift(Drift(()), args.json, args.diff, FAIL_ON[args.fail_on])


def remember(
    argv: Sequence[str], args: argparse.Namespace, settings: Settings, one: Settings
) -> None:
    """After a check built the settings of one target: what a later check of the same inputs
    needs to skip building them. Nothing when the password would have to be kept."""
    if not applies(args) or _password_in_settings(one):
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
