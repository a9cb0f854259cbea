"""structlog set-up: JSON lines for machines, console for people, secrets scrubbed everywhere."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

from service.compare.escape import terminal_lines

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


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    stream = stream or sys.stderr
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


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("pg-schema-sync").bind(**context)
