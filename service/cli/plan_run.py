"""What `plan` runs (imported when the command runs): the sides resolved from the arguments,
the plan made and proven, printed, and applied when asked."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from service.cli.common import only_one, settings_from
from service.compare.escape import visible
from service.disk import backups, files
from service.disk.backups import BackupError
from service.errors import SyncError
from service.logs import redact
from service.plan import render
from service.plan.apply import ApplyError, apply, forbidden
from service.plan.model import HAZARDS, Hazard
from service.plan.run import Request, Result, Source, make
from service.production.conninfo import ConnInfo, ConnInfoError
from service.settings.model import Settings
from service.sync import session_limits
from service.verify import VerifyError, verify_server

EXIT_OK, EXIT_DIFFERS, EXIT_NO_PLAN = 0, 1, 2
_BACKUP = re.compile(r"schema-sync-\d{8}_\d{6}\S*")


def is_backup(name: str) -> bool:
    return bool(_BACKUP.fullmatch(name))


def say(line: str) -> None:
    """One line on stderr; a password a plan carries (a subscription's, a user mapping's)
    written out as the logs write it."""
    print(f"pg-schema-sync: {redact(line)}", file=sys.stderr)


async def run(args: argparse.Namespace) -> int:
    # Files and backups are a target's: with several targets, --target names it. Two DSNs
    # need none (the settings' timeouts and verify_dsn are the same for all).
    local = any(s == "files" or is_backup(s) for s in (args.source, args.target_side))
    settings = only_one(args) if local or args.target else settings_from(args)
    try:
        allowed = _hazards(args.allow_hazards)
        if args.apply and (args.source == "files" or is_backup(args.source)):
            raise ValueError("--apply needs FROM to be a database (a DSN), not files or a backup")
        if args.apply and args.verify is False:
            raise ValueError("--apply runs only a verified plan: leave out --no-verify")
        source, target = _side(args.source, settings), _side(args.target_side, settings)
        server = verify_server(settings) if settings.verify_dsn is not None else None
        verify = args.verify if args.verify is not None else server is not None
        if verify and server is None:
            raise VerifyError("--verify needs a verify server: set verify_dsn, or use --no-verify")
        if args.apply and not verify:
            raise ValueError("--apply runs only a verified plan: set verify_dsn")
        request = Request(
            source, target, settings.catalog_options(),
            settings.export_options(settings.pg_dump, settings.lock_wait_timeout_ms),
            session_limits(settings), server, verify, args.concurrently,
        )  # fmt: skip
        result = await make(request)
    except (VerifyError, SyncError, ConnInfoError, BackupError, ValueError) as exc:
        say(visible(str(exc)))
        return EXIT_NO_PLAN
    return await _report(args, settings, result, verify, allowed)


async def _report(
    args: argparse.Namespace, settings: Settings, result: Result, verify: bool, allowed: set[Hazard]
) -> int:
    plan = result.plan
    header = render.Header(
        result.old.display, result.new.display, _status(result, verify),
        settings.lock_wait_timeout_ms, settings.statement_timeout_ms,
    )  # fmt: skip
    if plan.refusals:
        if args.json:
            print(render.json_text(plan, header), end="")
        for refusal in plan.refusals:
            say(f"cannot plan {visible(refusal.line())}")
        say(f"no plan: {len(plan.refusals)} object(s) cannot be planned safely")
        return EXIT_NO_PLAN
    print(render.json_text(plan, header) if args.json else render.script(plan, header), end="")
    sys.stdout.flush()
    proof = result.verification
    if proof is not None and not proof.passed:
        for line in proof.lines():
            say(f"still different after the plan: {visible(line)}")
        say("plan NOT verified: it does not turn FROM into TO (see above)")
        return EXIT_DIFFERS
    if proof is not None:
        n = len(plan.statements)
        say(
            f"plan verified: {visible(header.source)} -> {visible(header.target)} converges "
            f"({n} statement{'s' if n != 1 else ''}, {proof.duration_s:.1f} s)"
        )
    elif not plan.statements:
        say(f"nothing to do: {visible(header.source)} already has TO's schema")
    if args.apply:
        return await _apply(result, settings, allowed)
    return EXIT_OK


def _status(result: Result, verify: bool) -> str:
    proof = result.verification
    if not result.plan.statements:
        return "FROM already has TO's schema"
    if proof is None:
        return "NOT verified (--no-verify, or no verify server)" if not verify else "not verified"
    if proof.passed:
        return (
            f"verified: applied to a scratch copy of FROM, it gives TO ({proof.duration_s:.1f} s)"
        )
    return "verification FAILED: applied to a scratch copy of FROM, differences remain"


async def _apply(result: Result, settings: Settings, allowed: set[Hazard]) -> int:
    blocked = forbidden(result.plan, allowed)
    if blocked:
        for s in blocked:
            kinds = ", ".join(sorted(h.value for h in s.hazards - allowed))
            say(f"not applied: {visible(s.object)} ({s.change.value}) has hazards {kinds}")
        say("nothing applied: allow them with --allow-hazards KIND[,KIND] to apply this plan")
        return EXIT_NO_PLAN
    info = result.source_info
    assert info is not None  # --apply was refused for files and backups
    try:
        ran = await apply(
            info, result.plan, result.old.fingerprint,
            settings.lock_wait_timeout_ms, settings.statement_timeout_ms,
        )  # fmt: skip
    except ApplyError as exc:
        say(f"apply failed: {visible(str(exc))}")
        return EXIT_NO_PLAN
    say(f"applied {ran} statement{'s' if ran != 1 else ''} to {visible(info.display())}")
    return EXIT_OK


def _hazards(text: str) -> set[Hazard]:
    names = [h.strip() for h in text.split(",") if h.strip()]
    unknown = [h for h in names if h not in HAZARDS]
    if unknown:
        raise ValueError(
            f"--allow-hazards: unknown hazard {unknown[0]!r}; the hazards are {', '.join(HAZARDS)}"
        )
    return {Hazard(h) for h in names}


def _side(spec: str, settings: Settings) -> Source:
    """A side as named on the command line."""
    if spec == "files":
        path = settings.schema_file
        files.refuse_links(path)
        if not path.is_file():
            raise ValueError(f"{_show(path)} does not exist: run `pg-schema-sync sync` first")
        return Source(f"files ({_show(path)})", file=path)
    if is_backup(spec):
        backup = backups.resolve(settings.backup_dir, spec)
        backups.check_intact(backup)
        return Source(f"backup {spec}", file=backup.path / files.BACKUP_SCHEMA)
    info = ConnInfo.from_env().merged(ConnInfo.parse(spec))
    return Source(info.display(), dsn=info)


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
