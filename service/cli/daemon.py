"""The `run` and `health` commands; registered by cli.build_parser."""

from __future__ import annotations

import argparse
import sys

from service.cli.common import (
    add_shard_options,
    add_target_option,
    chosen,
    counted,
    settings_from,
    unknown_variables,
    warn_unknown_variables,
)
from service.compare.escape import visible
from service.errors import SettingsError

EXIT_HEALTHY, EXIT_UNHEALTHY = 0, 1  # Docker reserves 2 for HEALTHCHECK: never use it here

RUN_DESCRIPTION = """\
Run as a service: sync on a cron schedule, on request, and once at start.

schedule:
  `schedule` (SCHEMA_SYNC_SCHEDULE) is a standard 5-field cron expression evaluated in
  `timezone` (default '*/15 * * * *', UTC; 0 and 7 are Sunday; when both day fields are
  restricted either one matches, as in cron). `sync_on_start` (default true) syncs at once.
  Only one sync runs at a time: triggers arriving during a sync are merged into a single
  follow-up run; a fire time missed by more than `misfire_grace_s` is skipped. After a
  connection failure the sync is retried early with backoff (up to `retry_backoff_max_s`).

targets:
  With [[targets]] in the config (or SCHEMA_SYNC_TARGETS as a JSON list) every target runs on
  its own schedule (default: the global one); syncs of different targets overlap, at most
  `max_concurrent_syncs` (default 4) at a time, one at a time per target, so a slow or
  unreachable database never delays the others. --target NAME runs only that one.

shards:
  --shard INDEX/COUNT (SCHEMA_SYNC_SHARD) serves only the targets whose name hashes to shard
  INDEX of COUNT (rendezvous hashing: from COUNT to COUNT+1 shards about 1/(COUNT+1) of the
  targets move, all to the new shard). --shard auto takes INDEX from the pod name's ordinal
  (pg-schema-sync-3 -> 3; POD_NAME or HOSTNAME) and COUNT from --shard-count
  (SCHEMA_SYNC_SHARD_COUNT). A shard with no targets starts, logs shard.empty and stays
  healthy. `pg-schema-sync targets` lists where each target is served.

signals:
  SIGHUP, SIGUSR1   sync now, every target (e.g. `kill -HUP <pid>`,
                    `docker compose kill -s HUP <service>`)
  SIGTERM, SIGINT   graceful stop: no new syncs; a running sync gets `stop_grace_s`
                    (default 30 s) to finish, then it is cancelled (pg_dump is killed and the
                    files stay as they were)
  a second one      stop at once (exit 1)

output:
  Log events go to stdout: JSON lines when stdout is not a terminal (or with --log-format
  json); with targets each event of a run carries `target`. The daemon's own files live in
  the state folder (state_dir, default backup_dir; with targets each target's), never beside
  the schema files: a lock file (.pg-schema-sync.lock; all taken at start) allows one daemon
  per state folder, and the state file (.pg-schema-sync-state.json) is what `health` reads.
  Every write of the schema folder (a sync, a rollback, a prune; the daemon's or a hand-run
  one) holds that folder's own lock, so two configs sharing a schema folder never interleave.
  Files an older version left beside the schema files are moved there at start.

exit status:
  0  stopped by SIGTERM/SIGINT (after the grace period, the running sync was cancelled)
  1  stopped at once by a second signal
  2  could not start: invalid settings, another daemon holds the lock, metrics port taken
"""

HEALTH_DESCRIPTION = """\
Container health check: read the daemon's state file and print one line.

Exit 0 when the last successful sync is recent enough: within `health_max_age_s` when set,
otherwise before the second scheduled run after it plus 5 minutes (one missed run is fine).
Before the first success the daemon's start time counts instead. Exit 1 otherwise (also when
the daemon stopped, the state file is missing or the settings are invalid), with the reason.
With targets: exit 1 if any target is unhealthy; the first line names them, then one line per
target (--target NAME checks one). With --shard (or SCHEMA_SYNC_SHARD) only that shard's
targets, and the first line says which shard and how many of the configured targets it
serves; a shard with no targets is healthy.

--liveness asks a narrower question, for a Kubernetes livenessProbe: is the daemon itself
working? Syncs that fail (an unreachable database) count as work; exit 1 only when the daemon
stopped, or no sync of a target started or finished within the time the schedule allows
plus sync_timeout_s. A restart cures a stuck daemon, never a database.
Docker: HEALTHCHECK CMD pg-schema-sync health
"""


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: argparse.ArgumentParser,
    filters: argparse.ArgumentParser,
) -> None:
    p = sub.add_parser(
        "run",
        parents=[common, filters],
        help="run as a service: cron schedule, SIGHUP = sync now, SIGTERM = graceful stop",
        description=RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_option(p)
    add_shard_options(p)
    p.set_defaults(handler=cmd_run)
    p = sub.add_parser(
        "health",
        parents=[common],
        help="exit 0 if the daemon synced recently enough, else 1 (for HEALTHCHECK)",
        description=HEALTH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_option(p)
    add_shard_options(p)
    p.add_argument(
        "--liveness",
        action="store_true",
        help="only: is the daemon working (failed syncs count)? for a livenessProbe",
    )
    p.set_defaults(handler=cmd_health)


async def cmd_run(args: argparse.Namespace) -> int:
    # The daemon (APScheduler, Sentry, metrics) is imported only by the command that runs it:
    # every other command starts faster without it.
    from service.daemon.main import run_daemon
    from service.disk.lock import LockHeld
    from service.logs import configure_logging

    settings = settings_from(args, warn=False)
    # A service's log is its output: stdout, where container runtimes collect it.
    configure_logging(
        args.log_format or settings.log_format,
        args.log_level or settings.log_level,
        stream=sys.stdout,
    )
    warn_unknown_variables(unknown_variables())  # there too, with the daemon's other events
    try:
        return await run_daemon(settings, only=args.target)
    except LockHeld as exc:
        print(f"pg-schema-sync: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the lock or state file's folder: `sql` a file, a read-only folder
        where = exc.filename or "the schema folder"
        print(
            f"pg-schema-sync: cannot start: {exc.strerror or exc}: {where}; make the folder "
            "writable by this user, or point state_dir (or schema_file) elsewhere",
            file=sys.stderr,
        )
        return 2


async def cmd_health(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from service.daemon.health import alive, parse_schedule, read_state, verdict

    lines: list[tuple[str, bool, str]] = []  # (target, healthy, reason)
    try:
        settings, targets = chosen(args)
        shard = settings.serving_shard()
        configured = len(settings.resolved_targets())
        for target in targets:
            trigger = parse_schedule(target.schedule, target.timezone)
            state_path, state = read_state(target)
            now = datetime.now(UTC)
            if args.liveness:
                result = alive(state, now, trigger, target.health_max_age_s, target.sync_timeout_s)
            else:
                result = verdict(state, now, trigger, target.health_max_age_s)
            where = f" ({state_path})" if state is None else ""
            # The reason may quote the last error, and with it an object's name: shown safely.
            lines.append((target.name, result.healthy, visible(f"{result.reason}{where}")))
    except (SettingsError, ValueError) as exc:
        print(f"unhealthy: {exc}")
        return EXIT_UNHEALTHY
    good, bad = ("alive", "not alive") if args.liveness else ("healthy", "unhealthy")
    of_shard = f" (shard {shard}: {len(lines)} of {counted(configured)})" if shard else ""
    if shard is not None and not lines:
        print(f"{good}: shard {shard} serves none of {counted(configured)}")
        return EXIT_HEALTHY
    if not settings.targets:  # today's single target: today's one line
        [(_, healthy, reason)] = lines
        print(f"{good if healthy else bad}: {reason}{of_shard}")
        return EXIT_HEALTHY if healthy else EXIT_UNHEALTHY
    sick = [name for name, healthy, _ in lines if not healthy]
    if sick:
        print(f"{bad}: {len(sick)} of {counted(len(lines))}: {', '.join(sick)}{of_shard}")
    else:
        print(f"{good}: all {len(lines)} targets{of_shard}")
    for name, healthy, reason in lines:
        print(f"  {name}: {good if healthy else bad}: {reason}")
    return EXIT_UNHEALTHY if sick else EXIT_HEALTHY
