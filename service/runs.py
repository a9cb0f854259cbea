"""What every run holds before it reads production: its folders, the folder's lock, one time
bound, and the probe that may skip the read.

Light on purpose: a `check` the probe answers (cli/quick.py) imports this, and none of the
read itself (sync.py: the snapshot, the comparison, the backups).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.disk import lock
from service.errors import Cause, SyncError
from service.probing import Decision, ProbeTarget, probe_and_decide

if TYPE_CHECKING:
    from service.settings.model import Settings


@dataclass(frozen=True)
class Paths:
    schema_file: Path
    functions_file: Path
    inventory_file: Path
    backup_dir: Path
    write_lock: Path  # the folder whose flock every writer holds (disk/lock.py)

    @classmethod
    def of(cls, settings: Settings) -> Paths:
        # Relative paths resolve against the working directory (the container's workdir).
        schema = settings.schema_file.absolute()
        return cls(
            schema,
            settings.functions_file.absolute(),
            settings.inventory_file.absolute(),
            settings.backup_dir.absolute(),
            schema.parent,
        )

    @property
    def managed(self) -> tuple[Path, Path, Path]:
        return (self.schema_file, self.functions_file, self.inventory_file)


@contextlib.asynccontextmanager
async def locked(
    how: Callable[..., contextlib.AbstractAsyncContextManager[None]], paths: Paths, log: Any
) -> AsyncIterator[None]:
    """The folder's lock taken `how` (lock.writing or lock.reading), its failures one line."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(
                how(
                    paths.write_lock,
                    on_wait=lambda holder: log.warning(
                        "lock.waiting", holder=holder, folder=str(paths.write_lock)
                    ),
                )
            )
        except lock.LockHeld as exc:
            raise SyncError(str(exc), Cause.LOCK) from None
        except OSError as exc:
            raise SyncError(
                f"cannot lock the folder {paths.write_lock} ({exc.strerror or exc}): "
                "it must be a folder this user can create and open",
                Cause.DISK,
            ) from None
        yield


def deadline_of(target: ProbeTarget) -> float:
    """One bound over a whole run: the probe and the read it may lead to."""
    return asyncio.get_running_loop().time() + target.sync_timeout_s


@contextlib.asynccontextmanager
async def bounded(target: ProbeTarget, what: str, deadline: float) -> AsyncIterator[None]:
    """sync_timeout_s over a whole run (the probe, then the read): the last bound on every
    network wait (pg_dump has no per-query timeout of its own). Running out cancels the run:
    pg_dump's group is killed, started writes finish, the files stay as they were."""
    try:
        async with asyncio.timeout_at(deadline):
            yield
    except TimeoutError:
        raise SyncError(
            f"{what} timed out after {target.sync_timeout_s:g} s (sync_timeout_s): "
            f"{target.conninfo.display()} stopped answering or is too slow; previous "
            "files are intact, will retry (raise sync_timeout_s for a very large schema)",
            Cause.TIMEOUT,
        ) from None


async def probe(target: ProbeTarget, paths: Paths, full: bool, log: Any) -> Decision:
    decision = await probe_and_decide(target, list(paths.managed), paths.backup_dir, full)
    fp = decision.fingerprint
    log.debug(
        "probe.finished",
        result=decision.reason,
        duration_s=round(fp.duration_s, 4) if fp else None,
        changed_catalogs=decision.changed_catalogs or None,
        error=decision.probe_error,
    )
    return decision


@contextlib.asynccontextmanager
async def checking(
    target: ProbeTarget, paths: Paths, full: bool, log: Any
) -> AsyncIterator[tuple[Decision, float]]:
    """A check's first step: the folder's read lock, held until the block ends, and the probe
    under the run's deadline; yields (the probe's decision, the deadline).

    Shared: checks run side by side, but never while a sync or rollback is halfway through
    replacing the files (a mix of old and new files would read as drift that is not there)."""
    async with locked(lock.reading, paths, log):
        deadline = deadline_of(target)
        async with bounded(target, "check", deadline):
            decision = await probe(target, paths, full, log)
        yield decision, deadline
