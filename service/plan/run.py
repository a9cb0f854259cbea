"""`plan` end to end (I/O): each side made live (a DSN as it is; schema files or a backup
installed into a scratch database on the verify server, as `verify` does), both read in one
snapshot each, the plan made (planner.py, pure), then proven on a scratch copy of FROM."""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from service.errors import SyncError
from service.logs import get_logger, register_secret
from service.plan import proof
from service.plan.context import Environment
from service.plan.model import Plan
from service.plan.planner import changed_keys, make_plan
from service.plan.reader import Reader
from service.plan.sides import SideData
from service.production.catalog import CatalogOptions
from service.production.conninfo import ConnInfo
from service.production.db import SessionLimits
from service.production.export import ExportOptions
from service.verify import VerifyError, install, scratch_database

_FACT_KINDS = ("table", "foreign table", "view", "materialized view")
_OPTION_KINDS = {"foreign data wrapper", "server", "user mapping"}
MAX_ROUNDS = 4  # the planner asks for table facts it lacks at most this often


@dataclass(frozen=True)
class Source:
    """One side as the user named it: a live database, or schema files to install."""

    display: str  # for the plan's header and messages: no password
    dsn: ConnInfo | None = None
    file: Path | None = None


@dataclass(frozen=True)
class Request:
    source: Source  # FROM
    target: Source  # TO
    catalog: CatalogOptions
    export: ExportOptions
    limits: SessionLimits
    verify_server: ConnInfo | None = None  # where files are installed and plans proven
    verify: bool = True
    concurrently: bool = False


@dataclass
class Result:
    plan: Plan
    old: SideData
    new: SideData
    verification: proof.Proof | None = None
    plan_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    source_info: ConnInfo | None = None  # FROM, where it is a database (for --apply)


async def make(request: Request) -> Result:
    """Read both sides, plan, and (unless asked not to) prove the plan."""
    log = get_logger(command="plan")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pg-schema-sync-plan-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            old_info, new_info = await asyncio.gather(
                stack.enter_async_context(_live(request, request.source, workdir)),
                stack.enter_async_context(_live(request, request.target, workdir)),
            )
            old_reader = await Reader.open(old_info, request.limits)
            stack.push_async_callback(old_reader.close)
            new_reader = await Reader.open(new_info, request.limits)
            stack.push_async_callback(new_reader.close)
            old, new = await asyncio.gather(
                old_reader.read(request.catalog, request.export, workdir),
                new_reader.read(request.catalog, request.export, workdir),
            )
            old = replace(old, display=request.source.display)
            new = replace(new, display=request.target.display)
            _register_secrets(new)
            read_s = time.monotonic() - t0
            plan, old, new = await plan_sides(request, old_reader, new_reader, old, new)
        plan_s = time.monotonic() - t0
        log.info(
            "plan.made",
            statements=len(plan.statements),
            refusals=len(plan.refusals),
            read_s=round(read_s, 3),
            plan_s=round(plan_s, 3),
        )
        result = Result(
            plan, old, new, None, plan_s, {"read_s": read_s}, source_info=request.source.dsn
        )
        if request.verify and plan.statements and not plan.refusals:
            result.verification = await prove(request, plan, old, new, workdir)
        return result


async def prove(
    request: Request, plan: Plan, old: SideData, new: SideData, workdir: Path
) -> proof.Proof:
    if request.verify_server is None:
        raise VerifyError("no verify server: set verify_dsn, or plan with --no-verify")
    return await proof.prove(
        request.verify_server, plan, old, new, request.catalog, request.export, workdir
    )


@contextlib.asynccontextmanager
async def _live(request: Request, source: Source, workdir: Path) -> AsyncIterator[ConnInfo]:
    """The side as a database to read: its DSN, or its files installed into a scratch one."""
    if source.dsn is not None:
        register_secret(source.dsn.password)
        yield source.dsn
        return
    assert source.file is not None
    if request.verify_server is None:
        raise VerifyError(
            f"{source.display} must be installed into a scratch database first: set "
            "verify_dsn (SCHEMA_SYNC_VERIFY_DSN) to a server where this user may CREATE DATABASE"
        )
    psql = proof.psql_of(request.export)
    async with scratch_database(request.verify_server) as info:
        problem = await install(psql, info, source.file, source.display)
        if problem is not None:
            raise VerifyError(f"{source.display} does not install: {problem.one_line()}")
        yield info


async def plan_sides(
    request: Request, old_reader: Reader, new_reader: Reader, old: SideData, new: SideData
) -> tuple[Plan, SideData, SideData]:
    """The planner, given what it needs: table facts, cast contexts, update paths, options."""
    wanted = {k for k in changed_keys(old, new) if old.rows[k].kind in _FACT_KINDS}
    env = Environment(catalog=request.catalog, concurrently=request.concurrently)
    for _ in range(MAX_ROUNDS):
        old, new = await _with_facts(old_reader, new_reader, old, new, wanted)
        env = await _environment(env, old_reader, new_reader, old, new)
        outcome = make_plan(old, new, env)
        if not outcome.needs:
            return outcome.plan, old, new
        wanted |= outcome.needs
    raise SyncError("the planner kept asking for more table facts: this is a bug, please report")


async def _with_facts(
    old_reader: Reader, new_reader: Reader, old: SideData, new: SideData, keys: set[str]
) -> tuple[SideData, SideData]:
    async def read(reader: Reader, data: SideData) -> SideData:
        missing = {k for k in keys if k in data.rows and k not in data.tables}
        oids = {data.rows[k].objid or 0: k for k in missing}
        facts = await reader.tables(oids)
        tables = dict(data.tables)
        tables.update({oids[oid]: f for oid, f in facts.items()})
        return replace(data, tables=tables)

    return await asyncio.gather(read(old_reader, old), read(new_reader, new))


async def _environment(
    env: Environment, old_reader: Reader, new_reader: Reader, old: SideData, new: SideData
) -> Environment:
    casts = dict(env.casts)
    for key, facts in old.tables.items():
        target = new.tables.get(key)
        for column in facts.columns if target else ():
            after = target.column(column.name) if target else None
            pair = (column.type, after.type) if after else None
            if pair and pair[0] != pair[1] and pair not in casts:
                context = await old_reader.cast_context(*pair)
                casts[pair] = context or await new_reader.cast_context(*pair)
    paths = dict(env.update_paths)
    for key in changed_keys(old, new):
        if old.rows[key].kind == "extension":
            path = _extension_path(old.rows[key].body, new.rows[key].body)
            if path and path not in paths:
                paths[path] = await old_reader.update_path(*path)
    old_options, new_options = dict(env.old_options), dict(env.new_options)
    for data, reader, found in ((old, old_reader, old_options), (new, new_reader, new_options)):
        for key, row in data.rows.items():
            if row.kind in _OPTION_KINDS and key not in found and _wants_options(key, old, new):
                found[key] = await reader.options(row.classid or 0, row.objid or 0)
                if row.kind == "user mapping":
                    for option in found[key]:
                        if option.startswith("password="):
                            register_secret(option.partition("=")[2])
    return replace(
        env, casts=casts, update_paths=paths, old_options=old_options, new_options=new_options
    )


_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)")


def _register_secrets(side: SideData) -> None:
    """The passwords TO's subscriptions connect with: a plan carries them (pg_dump's text);
    logs and messages must not."""
    for entry in side.archive:
        if entry.desc == "SUBSCRIPTION":
            for found in _PASSWORD.finditer(entry.sql):
                register_secret(found.group(1).strip("'"))


def _wants_options(key: str, old: SideData, new: SideData) -> bool:
    """Options are read for objects that change or are created, and every user mapping's
    (one may be created again with its server)."""
    if key.startswith("user mapping ") or key not in old.rows or key not in new.rows:
        return key in new.rows or key.startswith("user mapping ")
    return old.inventory.objects[key].definition != new.inventory.objects[key].definition


def _extension_path(old: str, new: str) -> tuple[str, str, str] | None:
    from service.plan.shared import _extension_facts, _unliteral
    from service.plan.sqltext import unquote

    name, _, old_version = _extension_facts(old)
    _, _, new_version = _extension_facts(new)
    if old_version == new_version:
        return None
    return unquote(name), _unliteral(old_version), _unliteral(new_version)
