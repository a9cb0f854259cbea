"""The daemon's one HTTP listener: /metrics, the status page, /api/status, backup downloads.

aiohttp's own server on the daemon's event loop (no thread of its own, no extra process).
The daemon's state is read on the loop (`source()`, cheap plain data); listing backups and
rendering run in two worker threads of the server's own, so neither a slow disk nor a large
page holds up a sync's bookkeeping, and at most MAX_WAITING requests queue for them (more
get 503: a flood of page views cannot pile up work). GET and HEAD only; no request body is
read. Every response carries a strict Content-Security-Policy (no inline script or style:
the stylesheet and the refresh script are served from /static), nosniff, no framing, no
referrer. A backup or file is served only under a name the listing returned, never a path
built from the request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from service.disk import files
from service.logs import get_logger, redact
from service.web.auth import COOKIE, Gate
from service.web.listing import Listing
from service.web.model import BackupRow, Status, TargetStatus, status_doc

T = TypeVar("T")
WORKERS = 2
MAX_WAITING = 16
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DOWNLOAD_CSP = "default-src 'none'; sandbox"
STATIC = {"style.css": "text/css", "refresh.js": "text/javascript"}
COOKIE_MAX_AGE_S = 7 * 86_400
CHUNK = 1 << 20
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StatusServer:
    def __init__(
        self,
        source: Callable[[], Status],
        metrics: Callable[[], bytes],
        gate: Gate,
        secure_cookie: bool = False,
    ) -> None:
        self.source, self.metrics_text, self.gate = source, metrics, gate
        self.secure_cookie = secure_cookie
        self.listing = Listing()
        self.log = get_logger()
        self._pool: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        self._runner: web.AppRunner | None = None
        self._static: dict[str, bytes] = {}
        self.app = web.Application(middlewares=[self._guard], client_max_size=1024)
        add = self.app.router.add_get
        add("/", self.index)
        add("/targets/{name}", self.target)
        add("/backups/{target}/{backup}", self.backup)
        add("/backups/{target}/{backup}/{file}", self.download)
        add("/api/status", self.api)
        add("/metrics", self.metrics)
        add("/static/{file}", self.static)

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port; OSError when that is impossible (port taken, bad address)."""
        _route_aiohttp_logs()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="status-page")
        self._slots = asyncio.Semaphore(WORKERS)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port, shutdown_timeout=1.0).start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- the guard around every request ---------------------------------------------------------
    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        t0 = time.monotonic()
        try:
            response = await self._checked(request, handler)
        except web.HTTPException as exc:
            response = self._error(exc.status, exc.reason, exc.headers)
        except Exception as exc:  # a bug must not show a traceback, nor end the daemon
            self.log.error(
                "status_page.error",
                path=request.path,
                error=redact(f"{type(exc).__name__}: {exc}"),
            )
            response = self._error(500, "Internal error: see the daemon's log")
        if not response.prepared:
            secure(response)
        self.log.debug(
            "status_page.request",
            method=request.method,
            path=request.path,  # never the query: it may hold the token
            status=response.status,
            duration_ms=round((time.monotonic() - t0) * 1000, 1),
        )
        return response

    async def _checked(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if not self.gate.host_allowed(request.headers.get("Host")):
            return self._error(421, "Unexpected Host header: open the page by its own address")
        if request.method not in ("GET", "HEAD"):
            return self._error(405, "Read-only: GET and HEAD only", {"Allow": "GET, HEAD"})
        if request.path.startswith("/static/"):
            static: web.StreamResponse = await handler(request)  # nothing secret in them
            return static
        given = request.query.get("token")
        if not self.gate.admits(request.headers, given, request.cookies.get(COOKIE)):
            return self._error(
                401,
                "This page needs the status token: open it as ...?token=TOKEN, or send "
                "Authorization: Bearer TOKEN",
                {"WWW-Authenticate": 'Bearer realm="pg-schema-sync"'},
            )
        if given is not None and self.gate.token and _is_page(request.path):
            # A clicked link with ?token=: keep a cookie instead, and the token out of the
            # address bar, the history and any screenshot of the page.
            rest = {k: v for k, v in request.query.items() if k != "token"}
            where = request.path + (f"?{urlencode(rest)}" if rest else "")
            response = web.Response(status=303, headers={"Location": where})
            response.set_cookie(
                COOKIE,
                self.gate.cookie_value(),
                max_age=COOKIE_MAX_AGE_S,
                path="/",
                httponly=True,
                samesite="Lax",
                secure=self.secure_cookie,
            )
            return response
        result: web.StreamResponse = await handler(request)
        return result

    def _error(self, code: int, message: str, headers: Any = None) -> web.Response:
        from service.web import pages  # Jinja2 loads at the first page, not at the start

        response = web.Response(
            text=pages.error_page(None, code, message),
            status=code,
            content_type="text/html",
            charset="utf-8",
        )
        for key in ("Allow", "WWW-Authenticate", "Retry-After", "Location"):
            if headers and key in headers:
                response.headers[key] = headers[key]
        return response

    # -- the pages --------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        status = self.source()

        def render() -> str:
            from service.web import pages

            backups, etag = self._listings(status)
            return pages.index(status, backups, etag)

        return _html(await self._work(render))

    async def target(self, request: web.Request) -> web.Response:
        status = self.source()
        target = self._target(status, request.match_info["name"])

        def render() -> str:
            from service.web import pages

            backups, etag = self._listings(status)
            return pages.target_page(status, target, backups[target.name], etag)

        return _html(await self._work(render))

    async def backup(self, request: web.Request) -> web.Response:
        status = self.source()
        target = self._target(status, request.match_info["target"])
        name = request.match_info["backup"]

        def render() -> str | None:
            from service.web import pages
            from service.web.summary import summary_html

            backups, etag = self._listings(status)
            row = next((r for r in backups[target.name] if r.name == name), None)
            if row is None:
                return None
            summary, clipped = None, False
            if files.BACKUP_SUMMARY in row.files:
                text = _read_text(target.backup_dir.absolute() / name / files.BACKUP_SUMMARY)
                if text is not None:
                    summary, clipped = summary_html(text)
            return pages.backup_page(status, row, summary, clipped, etag)

        html = await self._work(render)
        if html is None:
            raise web.HTTPNotFound(reason=f"No backup by that name for target {target.name}")
        return _html(html)

    async def download(self, request: web.Request) -> web.StreamResponse:
        status = self.source()
        target = self._target(status, request.match_info["target"])
        name, wanted = request.match_info["backup"], request.match_info["file"]
        row = await self._work(
            self.listing.find, target.name, target.backup_dir, name, target.generation
        )
        if row is None or wanted not in row.files:
            raise web.HTTPNotFound(reason="No such file in that backup")
        path = target.backup_dir.absolute() / row.name / wanted
        loop = asyncio.get_running_loop()
        try:
            fh = await loop.run_in_executor(self._pool, files.open_regular, path)
        except (OSError, files.LinkRefused):
            raise web.HTTPNotFound(reason="No such file in that backup") from None
        try:
            response = web.StreamResponse()
            kind = "application/json" if wanted.endswith(".json") else "text/plain"
            response.content_type, response.charset = kind, "utf-8"
            response.content_length = os.fstat(fh.fileno()).st_size
            response.headers["Content-Disposition"] = (
                f'attachment; filename="{target.name}-{row.name}-{wanted}"'
            )
            secure(response, DOWNLOAD_CSP)
            await response.prepare(request)
            if request.method != "HEAD":
                while chunk := await loop.run_in_executor(self._pool, fh.read, CHUNK):
                    await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            fh.close()

    async def api(self, request: web.Request) -> web.Response:
        status = self.source()
        with_diffs = request.query.get("diffs", "") in ("1", "true", "yes")
        unless = request.headers.get("If-None-Match")

        def render() -> tuple[str, str | None]:
            backups, etag = self._listings(status)
            if unless is not None and unless.strip() == f'"{etag}"':
                return etag, None
            doc = status_doc(status, backups, etag, with_diffs)
            return etag, json.dumps(doc, ensure_ascii=False, separators=(",", ":"))

        etag, body = await self._work(render)
        if body is None:
            return web.Response(status=304, headers={"ETag": f'"{etag}"'})
        response = web.Response(text=body, content_type="application/json", charset="utf-8")
        response.headers["ETag"] = f'"{etag}"'
        return response

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics_text(), headers={"Content-Type": PROMETHEUS_TYPE})

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        if name not in self._static:
            self._static[name] = (resources.files("service.web") / "static" / name).read_bytes()
        response = web.Response(body=self._static[name], content_type=STATIC[name])
        response.headers["Cache-Control"] = "no-cache"
        return response

    # -- helpers ----------------------------------------------------------------------------
    def _target(self, status: Status, name: str) -> TargetStatus:
        target = status.target(name)
        if target is None:
            raise web.HTTPNotFound(reason="No target by that name")
        return target

    def _listings(self, status: Status) -> tuple[dict[str, list[BackupRow]], str]:
        """Every target's backups, and the ETag of what the page shows (state + backups)."""
        out: dict[str, list[BackupRow]] = {}
        signature = [status.revision]
        for t in status.targets:
            out[t.name], sig = self.listing.backups(t.name, t.backup_dir, t.generation)
            signature.append(sig)
        return out, _digest("\0".join(signature))

    async def _work(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn` in a worker thread; 503 when too many requests already wait for one."""
        assert self._slots is not None
        if self._waiting >= MAX_WAITING:
            raise web.HTTPServiceUnavailable(
                reason="Busy: too many requests", headers={"Retry-After": "5"}
            )
        self._waiting += 1
        try:
            async with self._slots:
                return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._waiting -= 1


def secure(response: web.StreamResponse, csp: str = CSP) -> None:
    """The headers every answer carries."""
    h = response.headers
    h["Content-Security-Policy"] = csp
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "no-referrer"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h.setdefault("Cache-Control", "no-store")


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8")


def _is_page(path: str) -> bool:
    return not path.startswith(("/api/", "/metrics"))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _read_text(path: Path) -> str | None:
    try:
        return files.read_regular(path).decode("utf-8", errors="replace")
    except (OSError, files.LinkRefused):
        return None


class _AiohttpErrors(logging.Handler):
    """aiohttp logs protocol errors through stdlib logging: pass them on as structured events,
    scrubbed (a malformed request line could quote a ?token=)."""

    def emit(self, record: logging.LogRecord) -> None:
        error = ""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            error = redact(f"{type(exc).__name__}: {exc}")[:300]
        get_logger().warning("status_page.http_error", message=record.getMessage(), error=error)


def _route_aiohttp_logs() -> None:
    log = logging.getLogger("aiohttp")
    if not any(isinstance(h, _AiohttpErrors) for h in log.handlers):
        log.addHandler(_AiohttpErrors())
    log.setLevel(logging.WARNING)
    log.propagate = False
