"""What every command module shares: settings from the flags, `--target NAME`, the bounded run
over several targets with a report per target, and the printed drift.

With one target (today's unnamed one, or `--target NAME`) the commands behave and print exactly
as they always did; the several-targets helpers only add those forms. This module imports no
other command module, so each of them can import it.

It is imported to build the parser (`--help`), so it imports nothing heavy at the top: the
settings model (pydantic), logging (structlog) and asyncio come in with the first function
that needs them, when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from service.compare.escape import terminal_lines, visible
from service.compare.levels import Impact
from service.errors import SettingsError

if TYPE_CHECKING:
    from service.compare.drift import Drift
    from service.runs import Paths
    from service.settings.model import Settings
    from service.sync import SyncOutcome

T = TypeVar("T")
EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
# --fail-on: the least impact that makes a drift exit 1 (any: every drift, as before it existed)
FAIL_ON = {
    "breaking": Impact.BREAKING,
    "behavioural": Impact.BEHAVIOURAL,
    "compatible": Impact.COMPATIBLE,
    "any": Impact.COSMETIC,
}


def add_fail_on_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fail-on",
        choices=list(FAIL_ON),
        default="any",
        help="exit 1 only for a change at this impact or worse (breaking > behavioural > "
        "compatible > cosmetic); default any: every drift. A CI gate that tolerates additive "
        "drift uses --fail-on breaking",
    )


def add_target_option(parser: argparse.ArgumentParser, default: Any = None) -> None:
    parser.add_argument(
        "--target",
        metavar="NAME",
        default=default,
        help="only the [[targets]] entry called NAME (default: every target)",
    )


def counted(n: int, noun: str = "target") -> str:
    """`1 target`, `30 targets`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def add_shard_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard",
        metavar="INDEX/COUNT",
        help="serve only the targets that fall to shard INDEX of COUNT (0/3, 1/3, 2/3), or "
        "'auto': INDEX from the pod name's ordinal (pg-schema-sync-2 -> 2), COUNT from "
        "--shard-count (default: $SCHEMA_SYNC_SHARD; unset: every target)",
    )
    parser.add_argument(
        "--shard-count",
        type=int,
        metavar="N",
        help="the number of shards, for --shard auto (default: $SCHEMA_SYNC_SHARD_COUNT)",
    )


def shard_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--shard and --shard-count as settings: they beat SCHEMA_SYNC_SHARD(_COUNT)."""
    overrides: dict[str, Any] = {}
    if getattr(args, "shard", None) is not None:
        overrides["shard"] = args.shard
    if getattr(args, "shard_count", None) is not None:
        overrides["shard_count"] = args.shard_count
    return overrides


FILTER_FLAGS = {  # a flag's attribute -> (the setting it sets, the flag as typed)
    "schema": ("schemas", "--schema"),
    "exclude_schema": ("exclude_schemas", "--exclude-schema"),
    "no_owners": ("include_owners", "--no-owners"),
    "no_privileges": ("include_privileges", "--no-privileges"),
    "no_comments": ("include_comments", "--no-comments"),
}


def filter_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The filter flags as settings; they beat the config, a target's own filters included."""
    overrides: dict[str, Any] = {}
    for attr, (field, _) in FILTER_FLAGS.items():
        given = getattr(args, attr, None)
        if given:  # a list for --schema / --exclude-schema, True for the --no-* switches
            overrides[field] = False if given is True else given
    return overrides


def flags_given(args: argparse.Namespace) -> dict[str, str]:
    """Setting -> the flag that set it, for `config`'s origins."""
    given = {FILTER_FLAGS[a][0]: FILTER_FLAGS[a][1] for a in FILTER_FLAGS if getattr(args, a, None)}
    for attr, flag in (("log_format", "--log-format"), ("log_level", "--log-level")):
        if getattr(args, attr, None):
            given[attr] = flag
    return given


def chosen(args: argparse.Namespace) -> tuple[Settings, list[Settings]]:
    """(the settings, the targets the command addresses); SettingsError for an unknown name."""
    from service.settings.model import select

    settings = settings_from(args)
    try:
        shard = settings.serving_shard()
        targets = select(settings.resolved_targets(), getattr(args, "target", None), shard)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    flags = filter_overrides(args)
    return settings, [t.model_copy(update=flags) if flags else t for t in targets]


def only_one(args: argparse.Namespace) -> Settings:
    """The one target a folder-level command (verify, rollback, backups) works on."""
    _, targets = chosen(args)
    if len(targets) > 1:
        names = ", ".join(t.name for t in targets)
        raise SettingsError(
            f"several targets are configured ({names}): choose one with --target NAME"
        )
    return targets[0]


class Result(Generic[T]):
    """One target's outcome: its value, or the error (and its cause) that stopped it.

    A plain class, not a dataclass: dataclasses imports inspect, ast and dis, and this module
    is imported to build the parser."""

    __slots__ = ("cause", "error", "target", "value")

    def __init__(
        self,
        target: Settings,
        value: T | None = None,
        error: str | None = None,
        cause: str | None = None,
    ) -> None:
        self.target, self.value, self.error, self.cause = target, value, error, cause


async def each_target(
    targets: list[Settings], limit: int, work: Callable[[Settings], Awaitable[T]]
) -> list[Result[T]]:
    """`work` for every target, at most `limit` at a time; one failing never stops the rest."""
    import asyncio

    from service.errors import SyncError
    from service.production.conninfo import ConnInfoError

    slots = asyncio.Semaphore(limit)

    async def one(target: Settings) -> Result[T]:
        async with slots:
            try:
                return Result(target, await work(target))
            except SyncError as exc:
                return Result(target, error=str(exc), cause=exc.cause.value)
            except (SettingsError, ConnInfoError) as exc:
                return Result(target, error=str(exc), cause="settings")
            except Exception as exc:  # a bug in one target's run must not hide the others'
                return Result(target, error=f"{type(exc).__name__}: {exc}", cause="internal")

    return list(await asyncio.gather(*(one(t) for t in targets)))


def prefixed(name: str, show: Callable[[], object]) -> None:
    """What `show` prints, with the target's name before its first line."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        show()
    text = buffer.getvalue()
    print(f"{name}: {text}", end="" if text.endswith("\n") else "\n")


def report_syncs(results: list[Result[Any]], show: Callable[[Any], object]) -> int:
    """Each target's sync in config order, failures also on stderr; exit 2 if any failed."""
    failed = [r for r in results if r.error is not None]
    for r in results:
        if r.error is not None:
            error = visible(r.error)
            print(f"{r.target.name}: failed: {error}")
            print(f"pg-schema-sync: target {r.target.name}: {error}", file=sys.stderr)
        else:
            prefixed(r.target.name, lambda r=r: show(r.value))  # type: ignore[misc]
    done = len(results) - len(failed)
    tail = f"; failed: {', '.join(r.target.name for r in failed)}" if failed else ""
    print(f"synced {done} of {len(results)} targets{tail}")
    return EXIT_ERROR if failed else EXIT_OK


def report_checks(
    results: list[Result[Drift]],
    as_json: bool,
    emit: Callable[[Drift], object],
    with_diff: bool = False,
    fail_on: Impact = Impact.COSMETIC,
) -> int:
    """Each target's drift; exit 2 if any check failed, else 1 if any drifted (at `fail_on`
    or worse), else 0.

    --json prints one document: {"drift": any, "error": any, "targets": {name: document}},
    each target's document the single-target one, or {"error": ..., "cause": ...}.
    """
    errors = [r for r in results if r.error is not None]
    drifted = any(r.value for r in results if r.value is not None)
    if as_json:
        docs: dict[str, Any] = {}
        for r in results:
            if r.value is not None:
                docs[r.target.name] = r.value.as_json(with_diff)
            else:
                docs[r.target.name] = {"error": r.error, "cause": r.cause}
        print(json.dumps({"drift": drifted, "error": bool(errors), "targets": docs}))
    else:
        for r in results:
            if r.value is not None:
                prefixed(r.target.name, lambda r=r: emit(r.value))  # type: ignore[misc]
            else:
                print(f"{r.target.name}: error: {visible(r.error or '')}")
    if errors:
        return EXIT_ERROR
    failing = any(r.value.at_least(fail_on) for r in results if r.value is not None)
    return EXIT_DRIFT if failing else EXIT_OK


def settings_from(args: argparse.Namespace, warn: bool = True) -> Settings:
    from service.logs import configure_logging
    from service.settings.model import load_settings

    settings = load_settings(args.config, **filter_overrides(args), **shard_overrides(args))
    configure_logging(*log_choice(args, settings))
    if warn and getattr(args, "command", None) != "config":  # config lists them itself
        warn_unknown_variables(unknown_variables())
    return settings


def log_choice(
    args: argparse.Namespace, settings: Settings
) -> tuple[Literal["auto", "json", "console"], str]:
    """(log format, log level). One-shot commands speak through their output and exit code;
    their logs stay at warning unless a level was asked for (flag, SCHEMA_SYNC_LOG_LEVEL or the
    config file)."""
    explicit = "log_level" in settings.model_fields_set
    level = args.log_level or (settings.log_level if explicit else "warning")
    return args.log_format or settings.log_format, level


def unknown_variables() -> list[dict[str, str | None]]:
    """Each SCHEMA_SYNC_* variable (environment, .env) that sets nothing: a typo is otherwise
    silent. As the fields of its warning."""
    import os

    from service.settings.model import Settings
    from service.settings.unknown import unknown_variables as unknown

    return [
        {"variable": u.name, "source": u.source, "nearest": u.nearest}
        for u in unknown(Settings.model_fields, os.environ)
    ]


def warn_unknown_variables(unknown: list[dict[str, str | None]]) -> None:
    """One warning per variable that sets nothing."""
    from service.logs import get_logger

    for fields in unknown:
        get_logger().warning(
            "settings.unknown_variable",
            **fields,
            hint="not a setting, ignored; `pg-schema-sync config --example` lists every setting",
        )


def print_items(drift: Drift, with_diff: bool) -> None:
    """One line per changed object, breaking first, with its impact and reasons (and its
    diff): names from production are shown with their control characters written out, so
    none reaches the terminal raw."""
    for item in drift.worst_first():
        notes = "; ".join(item.notes())
        line = f"  {item.impact.value:<11} {item.change.value:<8} {item.what()}"
        print(visible(line + (f": {notes}" if notes else "")))
        if with_diff and item.diff:
            diff = terminal_lines(item.diff)  # only \n and \t are left to split on
            print("".join("    " + ln for ln in diff.splitlines(keepends=True)), end="")


def emit_drift(
    drift: Drift, as_json: bool, with_diff: bool, fail_on: Impact = Impact.COSMETIC
) -> int:
    """Print the drift; EXIT_DRIFT when a change at `fail_on` or worse is in it."""
    failing = drift.at_least(fail_on)
    if as_json:  # --diff: each change carries its diff (exact text; JSON escapes it)
        print(json.dumps(drift.as_json(with_diff)))
    elif not drift:
        print("in sync: no drift")
    else:
        print(f"drift: {drift.headline()}")
        print_items(drift, with_diff)
        if not failing:
            print(f"not failing: no change is {fail_on.value} or worse (--fail-on)")
    return EXIT_DRIFT if failing else EXIT_OK


def clear_errors(handler: Handler) -> Handler:
    """Errors a user can cause end in one line (a verify server's list of lacks: one line
    each), as the other commands' do; exit 2."""

    @functools.wraps(handler)
    async def run(args: argparse.Namespace) -> int:
        from service.disk.backups import BackupError
        from service.verify import VerifyError

        try:
            return await handler(args)
        except (BackupError, VerifyError, ValueError) as exc:
            print(f"pg-schema-sync: {visible(str(exc), keep=chr(10))}", file=sys.stderr)
            return EXIT_ERROR
        except OSError as exc:
            print(f"pg-schema-sync: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
            return EXIT_ERROR

    return run


def target_paths(args: argparse.Namespace) -> tuple[Settings, Paths]:
    """The one target's settings and folders (--target NAME when several are configured)."""
    from service.runs import Paths

    settings = only_one(args)
    return settings, Paths.of(settings)


def show_path(path: Path) -> str:
    """A path relative to the working directory when it is under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_outcome(outcome: SyncOutcome) -> None:
    """A sync's answer, as `sync` prints it."""
    if outcome.first_run:
        print(f"first sync: {sum(outcome.counts.values())} objects exported")
    elif outcome.drift:
        emit_drift(outcome.drift, as_json=False, with_diff=False)
    elif outcome.skipped:
        print("in sync: no drift, nothing written (catalog unchanged since the last full sync)")
    else:
        print("in sync: no drift, nothing written")
    for path in outcome.files_written:
        print(f"wrote {path}")
    if outcome.backup:
        print(f"backup {outcome.backup}")
    if outcome.git:
        print(outcome.git.line())
