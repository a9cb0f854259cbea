"""`plan --apply` (I/O): a verified plan run against FROM itself.

The statements that cannot run in a transaction go one by one (before the transaction, then
after it); all the others in one transaction, which either commits whole or not at all. The
first error stops everything, naming the statement. Before anything runs, FROM's catalog
fingerprint must still be the one the plan was made from: a schema changed meanwhile gets
no plan made for another one."""

from __future__ import annotations

from typing import Any

import asyncpg

from service.logs import get_logger
from service.plan import render
from service.plan.model import Hazard, Part, Plan, Statement
from service.production.conninfo import ConnInfo
from service.production.probe import Probe
from service.production.session import close_quickly


class ApplyError(RuntimeError):
    """Applying stopped; the message says at which statement and what was left applied."""


def forbidden(plan: Plan, allowed: set[Hazard]) -> list[Statement]:
    """The statements whose hazards are not all allowed."""
    return [s for s in plan.statements if not s.hazards <= allowed]


async def apply(
    info: ConnInfo, plan: Plan, fingerprint: str, lock_timeout_ms: int, statement_timeout_ms: int
) -> int:
    """Run the plan on `info`; returns how many statements ran."""
    log = get_logger(command="plan", action="apply", target=info.display())
    kwargs = info.asyncpg_kwargs()
    kwargs["server_settings"] = {
        **kwargs.get("server_settings", {}),
        "application_name": "pg-schema-sync plan --apply",
        "lock_timeout": str(lock_timeout_ms),
        "statement_timeout": str(statement_timeout_ms),
    }
    try:
        conn: asyncpg.Connection = await asyncpg.connect(statement_cache_size=0, **kwargs)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ApplyError(f"cannot connect to {info.display()}: {exc}") from None
    try:
        now = (await Probe().fingerprint(conn)).digest
        if now != fingerprint:
            raise ApplyError(
                f"the schema of {info.display()} changed since the plan was made: nothing "
                "applied; make the plan again"
            )
        for line in render.SESSION:
            await conn.execute(line)
        done = 0
        session: dict[str, str] = {}
        total = len(plan.statements)
        for s in plan.part(Part.BEFORE):
            done += 1
            await _run(conn, s, done, total, session, log, "before the transaction")
        before = done
        transactional = plan.part(Part.TRANSACTION)
        if transactional:
            try:
                async with conn.transaction():
                    for s in transactional:
                        done += 1
                        await _run(conn, s, done, total, session, log, "in the transaction")
            except ApplyError as exc:
                kept = f"; the {before} before it stay applied" if before else ""
                raise ApplyError(f"{exc}; the transaction was rolled back{kept}") from None
            log.info("plan.apply.committed", statements=len(transactional))
        for s in plan.part(Part.AFTER):
            done += 1
            try:
                await _run(conn, s, done, total, session, log, "after the transaction")
            except ApplyError as exc:
                raise ApplyError(f"{exc}; the {done - 1} before it stay applied") from None
        return done
    finally:
        await close_quickly(conn)


async def _run(
    conn: asyncpg.Connection,
    s: Statement,
    n: int,
    total: int,
    session: dict[str, str],
    log: Any,
    where: str,
) -> None:
    for line in render.session_lines(s, session):
        await conn.execute(line)
    log.info("plan.apply.statement", n=n, of=total, object=s.object, change=s.change.value)
    try:
        await conn.execute(s.sql)
    except asyncpg.PostgresError as exc:
        log.error("plan.apply.failed", n=n, object=s.object, error=str(exc))
        first = s.sql.split("\n", 1)[0][:120]
        leftover = ""
        if " INDEX CONCURRENTLY " in first and first.startswith("CREATE "):
            leftover = (
                "; a failed CREATE INDEX CONCURRENTLY leaves an invalid index behind: drop it "
                f"(DROP INDEX CONCURRENTLY {s.name}) before applying again"
            )
        raise ApplyError(
            f"statement {n} of {total} ({s.object}: {s.change.value}, {where}) failed: "
            f"{type(exc).__name__}: {exc} -- {first}{leftover}"
        ) from None
