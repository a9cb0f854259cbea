"""structlog set-up: JSON lines for machines, console for people, secrets scrubbed everywhere.

structlog is imported by the first event that passes the level, not by configure_logging: a
one-shot command that logs nothing (a `check` that finds its files current logs no warning)
answers sooner without it. Loggers before then are stand-ins that bind context like
structlog's and hand each event on once structlog is set up.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Literal, TextIO

from service.compare.escape import terminal_lines

if TYPE_CHECKING:
    pass

_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|dsn|pgpassword", re.IGNORECASE)
# Any scheme (postgresql+psycopg2://, mysql://, https://...): a DSN we reject still reaches
# error text before it is rejected, and its password must not.
_URI_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)\S*@")
# A token as the user name of an https URL (`https://TOKEN@github.com/...`): git takes it so.
_HTTP_USER = re.compile(r"(https?://)[^:/@\s]+@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret so any text containing it is scrubbed before it is logged or sent."""
    if value and len(value) >= 3:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """Remove passwords from free text: known secrets, URI userinfo, password=... pairs."""
    for secret in _known_secrets:
        text = text.replace(secret, "***")
    text = _URI_PASSWORD.sub(r"\1***@", text)
    text = _HTTP_USER.sub(r"\1***@", text)
    return _KEYWORD_PASSWORD.sub(r"\1***", text)


def scrub(value: Any, key: str = "") -> Any:
    if key and _SECRET_KEYS.search(key) and value not in (None, ""):
        return "***"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v) for v in value)
    return value


def _visible(value: Any) -> Any:
    if isinstance(value, str):
        return terminal_lines(value)
    if isinstance(value, dict):
        return {k: _visible(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_visible(v) for v in value)
    return value


def _visible_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return {k: _visible(v) for k, v in event_dict.items()}


def _scrub_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return {k: scrub(v, k) for k, v in event_dict.items()}


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_setup: tuple[str, str, TextIO] = ("auto", "warning", sys.stderr)
_threshold = _LEVELS["warning"]
_pending = False  # configure_logging was called; structlog is set up with the first event


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    global _setup, _threshold, _pending
    _setup, _threshold = (fmt, level, stream or sys.stderr), _LEVELS[level.lower()]
    _pending = True
    if "structlog" in sys.modules:  # already in use (the daemon imports it): set up now
        _structlog()


def _structlog() -> Any:
    """structlog, set up with the last configure_logging's format, level and stream."""
    global _pending
    import structlog

    if not _pending:
        return structlog
    fmt, level, stream = _setup
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    # JSON escapes control characters itself; a terminal would run them (object names from
    # production reach log events, and anyone with CREATE chooses those).
    shown: list[Any] = [] if as_json else [_visible_processor]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_processor,
            *shown,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _pending = False
    return structlog


class _Logger:
    """Stands in for structlog's bound logger until an event passes the level (module doc)."""

    __slots__ = ("_context",)

    def __init__(self, context: dict[str, Any]) -> None:
        self._context = context

    def bind(self, **context: Any) -> _Logger:
        return _Logger({**self._context, **context})

    def _emit(self, method: str, level: int, event: str, fields: dict[str, Any]) -> None:
        if _pending and level < _threshold:
            return  # what the set-up structlog would drop: it need not be imported for it
        real = _structlog().get_logger("pg-schema-sync").bind(**self._context)
        getattr(real, method)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", 10, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", 20, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", 30, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", 40, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._emit("exception", 40, event, fields)


def get_logger(**context: Any) -> Any:
    if "structlog" in sys.modules and not _pending:  # in use and set up: its own loggers
        return _structlog().get_logger("pg-schema-sync").bind(**context)
    return _Logger(context)
