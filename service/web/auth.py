"""Pure: who may read the status page.

`status_token` (optional): a request passes with `Authorization: Bearer TOKEN`, with
`?token=TOKEN` (a link someone can click; the page then sets a cookie and drops the token from
the address), or with that cookie. The comparison is over SHA-256 digests with
hmac.compare_digest: constant time, and blind to the token's length. The cookie holds an HMAC
of the token, not the token itself.

Without a token, the page is open to whoever reaches the port. Bound to a loopback address
(the default), it still refuses requests whose Host header names another site: a web page the
reader happens to visit could otherwise point its own host name at 127.0.0.1 (DNS rebinding)
and read the status page from inside the reader's browser.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

COOKIE = "pg_schema_sync_token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class Gate:
    token: str | None  # None: no token needed
    allowed_hosts: frozenset[str] | None  # None: any Host header

    def cookie_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"pg-schema-sync status cookie", "sha256").hexdigest()

    def admits(
        self, headers: Mapping[str, str], query_token: str | None, cookie: str | None
    ) -> bool:
        """True when no token is set, or the request carries it (header, query or cookie)."""
        if self.token is None:
            return True
        auth = headers.get("Authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() == "bearer" and _same(given.strip(), self.token):
            return True
        if query_token is not None and _same(query_token, self.token):
            return True
        return cookie is not None and _same(cookie, self.cookie_value())

    def host_allowed(self, host_header: str | None) -> bool:
        if self.allowed_hosts is None:
            return True
        host = _hostname(host_header or "")
        return host in self.allowed_hosts or _is_loopback_ip(host)


def _same(given: str, expected: str) -> bool:
    a = hashlib.sha256(given.encode(errors="surrogateescape")).digest()
    b = hashlib.sha256(expected.encode()).digest()
    return hmac.compare_digest(a, b)


def allowed_hosts(bind_host: str, public_url: str | None) -> frozenset[str] | None:
    """The Host headers to accept: any, unless the listener is bound to loopback only."""
    if not _is_loopback_ip(bind_host) and bind_host.lower() not in LOOPBACK_NAMES:
        return None  # 0.0.0.0 or a real interface: reached through names we cannot know
    names = set(LOOPBACK_NAMES) | {bind_host.lower()}
    if public_url:
        public = urlsplit(public_url).hostname
        if public:
            names.add(public.lower())
    return frozenset(names)


def _hostname(host_header: str) -> str:
    """`Host` without its port: `[::1]:9187` -> `::1`, `Example.org:80` -> `example.org`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
