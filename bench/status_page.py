"""The status page's render time: 100 targets with 50 backups each (the goal: under 100 ms).

`python -m bench.status_page [--targets 100 --backups 50 --requests 20]` runs on its own;
`python -m bench` (./dev bench) adds its section to docs/benchmark.md.

How: the backup folders are written to disk as a sync writes them (manifest, summary, the
three schema files), each target gets a full history (the last 100 cycles, a drift of five
objects with their diffs), and the status page's own server (service/web/server.py) is
started in this process on a loopback port. A request's time is its wall time as a client
sees it over HTTP: the daemon's state read, the backup listing, the rendering and the
transfer. The first request reads every manifest (cold); later ones find the listing cached
and re-stat each backup folder (warm). The render alone (templates, from data in memory) is
timed apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from service.compare.drift import Change, Drift, DriftItem
from service.daemon.recording import drift_record
from service.demo.cluster import free_port
from service.disk import files
from service.disk.backups import Manifest
from service.disk.history import History, RunRecord
from service.logs import configure_logging
from service.web import pages
from service.web.auth import Gate
from service.web.model import Status, TargetStatus
from service.web.server import StatusServer

GOAL_MS = 100.0
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class PageFigures:
    targets: int
    backups: int
    requests: int
    write_s: float = 0.0
    load: str = ""  # the host's load average while measuring (a shared machine)
    cold_ms: float = 0.0  # the first GET /: every manifest read
    index_ms: list[float] = field(default_factory=list)  # warm GET /
    index_cpu_ms: list[float] = field(default_factory=list)  # its CPU, server and client
    changed_ms: list[float] = field(default_factory=list)  # GET / when every target changed
    changed_cpu_ms: list[float] = field(default_factory=list)
    target_ms: list[float] = field(default_factory=list)  # warm GET /targets/<one>
    api_ms: list[float] = field(default_factory=list)  # warm GET /api/status
    render_ms: list[float] = field(default_factory=list)  # pages.index from memory
    render_cpu_ms: list[float] = field(default_factory=list)
    index_bytes: int = 0
    api_bytes: int = 0


def _diff(name: str) -> str:
    body = "".join(f" line {i} of {name}\n" for i in range(40))
    return f"--- files/{name}\n+++ production/{name}\n@@ -1,41 +1,41 @@\n-old\n+new\n{body}"


def build(root: Path, targets: int, backups: int) -> list[TargetStatus]:
    """The folders and the daemon's view of them, as a fleet would leave them."""
    out = []
    for t in range(targets):
        name = f"t{t:03d}"
        folder = root / "backups" / name
        for b in range(backups):
            created = NOW - timedelta(minutes=15 * (backups - b))
            # Written plainly, without a sync's fsyncs: the page reads them, how they were
            # written does not matter here, and 25,000 fsyncs would take minutes.
            path = folder / files.backup_name(created)
            path.mkdir(parents=True)
            (path / files.BACKUP_SCHEMA).write_bytes(b"CREATE TABLE x (id int);\n" * 40)
            (path / files.BACKUP_FUNCTIONS).write_bytes(b"-- functions\n")
            (path / files.BACKUP_INVENTORY).write_bytes(b'{"objects": {}}\n')
            (path / files.BACKUP_SUMMARY).write_text(f"# Schema sync {created}\n\nNone.\n")
            manifest = Manifest(
                status="done",
                kind="sync",
                created_at=created,
                finished_at=created,
                files={k: "0" * 64 for k in files.BACKUP_RESTORABLE},
                drift={"changed": 1} if b % 7 == 0 else {},
                first_run=b == 0,
            )
            (path / files.BACKUP_MANIFEST).write_bytes(manifest.to_json())
        runs = tuple(
            RunRecord(
                NOW - timedelta(minutes=15 * (100 - i)),
                "failed" if i % 31 == 0 else ("skipped" if i % 4 else "full"),
                drift=5 if i % 17 == 0 else 0,
                cause="connection" if i % 31 == 0 else None,
            )
            for i in range(100)
        )
        items = tuple(
            DriftItem("function", f"app.f{i}(integer)", Change.CHANGED, _diff(f"app.f{i}"))
            for i in range(5)
        )
        drift = drift_record(Drift(items), NOW, "r1", None, folder / "schema-sync-x", "c0ffee")
        out.append(
            TargetStatus(
                name=name,
                source=f"reader@db{t}.internal:5432/app",
                healthy=t % 9 != 0,
                health="last successful sync 3m ago",
                schedule="*/15 * * * *",
                timezone="UTC",
                check_only=False,
                backup_dir=folder,
                history=History(runs, drift),
                next_run_at=NOW + timedelta(minutes=15),
                last_full_sync_at=NOW,
                last_success_at=NOW,
                last_probe_at=NOW,
                last_probe_result="unchanged",
                generation=0,  # as a daemon's runner tells the page; unchanged between views
            )
        )
    return out


async def _timed(client: httpx.AsyncClient, path: str) -> tuple[float, int, float]:
    """(wall ms, bytes, CPU ms of this whole process: the server's threads and the client)."""
    t0, c0 = time.perf_counter(), time.process_time()
    response = await client.get(path)
    elapsed = (time.perf_counter() - t0) * 1000
    cpu = (time.process_time() - c0) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: HTTP {response.status_code}")
    return elapsed, len(response.content), cpu


async def _serve_and_time(status: Status, figs: PageFigures) -> None:
    # A second state in which every target changed (its health text, its runner's
    # generation): alternating the two, every section of the page is rendered afresh.
    other = replace(
        status,
        targets=tuple(
            replace(t, health="last successful sync 4m ago", generation=1) for t in status.targets
        ),
    )
    now = [status]
    server = StatusServer(lambda: now[0], lambda: b"", Gate(None, None))
    port = free_port()
    await server.start("127.0.0.1", port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            figs.cold_ms, figs.index_bytes, _ = await _timed(client, "/")
            middle = status.targets[len(status.targets) // 2].name
            for _ in range(figs.requests):
                wall, _, cpu = await _timed(client, "/")
                figs.index_ms.append(wall)
                figs.index_cpu_ms.append(cpu)
                figs.target_ms.append((await _timed(client, f"/targets/{middle}"))[0])
                took, figs.api_bytes, _ = await _timed(client, "/api/status")
                figs.api_ms.append(took)
            for i in range(figs.requests):
                now[0] = other if i % 2 == 0 else status
                wall, _, cpu = await _timed(client, "/")
                figs.changed_ms.append(wall)
                figs.changed_cpu_ms.append(cpu)
            backups, etag = server._listings(status)
            for i in range(figs.requests):
                state = other if i % 2 == 0 else status  # every section rendered afresh
                t0, c0 = time.perf_counter(), time.thread_time()
                pages.index(state, backups, etag)
                figs.render_cpu_ms.append((time.thread_time() - c0) * 1000)
                figs.render_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        await server.stop()


def measure(targets: int = 100, backups: int = 50, requests: int = 20) -> PageFigures:
    figs = PageFigures(targets, backups, requests)
    configure_logging("console", "warning", stream=sys.stderr)  # no line per request
    root = Path(tempfile.mkdtemp(prefix="pg-schema-sync-bench-page-"))
    try:
        t0 = time.perf_counter()
        status = Status(NOW, "bench", "rev", tuple(build(root, targets, backups)), NOW)
        figs.write_s = time.perf_counter() - t0
        asyncio.run(_serve_and_time(status, figs))
        figs.load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return figs


def markdown(f: PageFigures, judge: bool = True) -> str:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ms (max {max(values):.1f})"

    warm = statistics.median(f.index_ms)
    changed = statistics.median(f.changed_ms)
    changed_cpu = statistics.median(f.changed_cpu_ms)

    def mark(ok: bool) -> str:
        return "**pass**" if ok else "**FAIL**"

    verdict = (
        f"nothing changed: {mark(warm < GOAL_MS)} ({warm / GOAL_MS:.2f}x); every target changed: "
        f"{mark(changed < GOAL_MS)} on wall time ({changed / GOAL_MS:.2f}x), "
        f"{mark(changed_cpu < GOAL_MS)} on CPU time ({changed_cpu / GOAL_MS:.2f}x)"
        if judge
        else "not judged (quick)"
    )
    return "\n".join(
        [
            "## Status page: render time",
            "",
            f"{f.targets} targets with {f.backups} backups each ({f.targets * f.backups:,} "
            f"backup folders on disk), a 100-cycle history and a 5-object drift per target; "
            f"medians of {f.requests} requests over loopback HTTP to the daemon's own server "
            f"(bench/status_page.py). Load average while measuring (1/5/15 min): {f.load} on "
            f"{os.cpu_count()} cores: wall times on a busy shared host include waiting for a "
            "core, CPU times do not. CPU times of a request are this whole process's: the "
            "server's threads and the HTTP client together.",
            "",
            "| request | wall time | CPU time | size |",
            "|---|---|---|---|",
            f"| `GET /`, first (reads every manifest) | {f.cold_ms:.0f} ms | | "
            f"{f.index_bytes / 1e6:.2f} MB |",
            f"| `GET /`, nothing changed since the last view | {med(f.index_ms)} | "
            f"{med(f.index_cpu_ms)} | {f.index_bytes / 1e6:.2f} MB |",
            f"| `GET /`, every target changed since the last view | {med(f.changed_ms)} | "
            f"{med(f.changed_cpu_ms)} | {f.index_bytes / 1e6:.2f} MB |",
            f"| `GET /targets/<one>` | {med(f.target_ms)} | | |",
            f"| `GET /api/status` | {med(f.api_ms)} | | {f.api_bytes / 1e6:.2f} MB |",
            f"| render of `/` alone, every target changed (data in memory) | "
            f"{med(f.render_ms)} | {med(f.render_cpu_ms)} | |",
            "",
            f"Goal: `GET /` under {GOAL_MS:.0f} ms for 100 targets x 50 backups: {verdict}.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.status_page", description=__doc__)
    p.add_argument("--targets", type=int, default=100)
    p.add_argument("--backups", type=int, default=50)
    p.add_argument("--requests", type=int, default=20)
    args = p.parse_args(argv)
    figs = measure(args.targets, args.backups, args.requests)
    print(f"(wrote {args.targets * args.backups:,} backup folders in {figs.write_s:.1f} s)")
    print(markdown(figs, judge=(args.targets, args.backups) == (100, 50)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
